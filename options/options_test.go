package options

import (
	"testing"

	"github.com/netkit/libnetwork/types"
)

func TestGetters(t *testing.T) {
	m := map[string]interface{}{
		"s": "x", "b": true, "bs": "false", "i": 7, "f": float64(9), "is": "12",
		"fx": 1.5, "n": nil, "sm": map[string]string{"a": "b"},
		"gm": Generic{"a": "b"}, "bad": map[string]interface{}{"a": 1},
	}
	if v, ok, err := GetString(m, "s"); v != "x" || !ok || err != nil {
		t.Errorf("GetString: %q %v %v", v, ok, err)
	}
	if _, ok, err := GetString(m, "missing"); ok || err != nil {
		t.Errorf("GetString missing: %v %v", ok, err)
	}
	if _, ok, err := GetString(m, "n"); ok || err != nil {
		t.Errorf("GetString nil: %v %v", ok, err)
	}
	if _, _, err := GetString(m, "i"); !types.IsBadRequest(err) {
		t.Errorf("GetString of an int: %v", err)
	}
	if v, _, err := GetBool(m, "b"); !v || err != nil {
		t.Errorf("GetBool: %v %v", v, err)
	}
	if v, _, err := GetBool(m, "bs"); v || err != nil {
		t.Errorf("GetBool string: %v %v", v, err)
	}
	if _, _, err := GetBool(m, "s"); !types.IsBadRequest(err) {
		t.Errorf("GetBool of \"x\": %v", err)
	}
	for _, k := range []string{"i", "f", "is"} {
		if _, _, err := GetInt(m, k); err != nil {
			t.Errorf("GetInt %s: %v", k, err)
		}
	}
	for _, k := range []string{"fx", "s", "b"} {
		if _, _, err := GetInt(m, k); !types.IsBadRequest(err) {
			t.Errorf("GetInt %s: %v, want BadRequest", k, err)
		}
	}
	if v, _, err := GetStringMap(m, "gm"); err != nil || v["a"] != "b" {
		t.Errorf("GetStringMap of Generic: %v %v", v, err)
	}
	if _, _, err := GetStringMap(m, "bad"); !types.IsBadRequest(err) {
		t.Errorf("GetStringMap with an int value: %v", err)
	}
	if v, _, err := GetGeneric(m, "sm"); err != nil || v["a"] != "b" {
		t.Errorf("GetGeneric of map[string]string: %v %v", v, err)
	}
	if _, _, err := GetGeneric(m, "s"); !types.IsBadRequest(err) {
		t.Errorf("GetGeneric of a string: %v", err)
	}
}
