// Package options provides the untyped option map of the v0.7 API. The
// library turns these maps into typed configuration once, at the edge, with
// the helpers here, and rejects values of the wrong type with a BadRequest
// error instead of type-asserting deep inside a driver.
package options

import (
	"strconv"

	"github.com/netkit/libnetwork/types"
)

// Generic is a free-form map of options.
type Generic map[string]interface{}

// GetString returns m[key] as a string. ok is false when the key is absent;
// a value of another type is a BadRequest error.
func GetString(m map[string]interface{}, key string) (v string, ok bool, err error) {
	raw, ok := m[key]
	if !ok || raw == nil {
		return "", false, nil
	}
	s, isStr := raw.(string)
	if !isStr {
		return "", true, types.InvalidParameterErrorf("option %s: want a string, got %T (%v)", key, raw, raw)
	}
	return s, true, nil
}

// GetBool returns m[key] as a bool; the strings accepted by
// strconv.ParseBool are taken too.
func GetBool(m map[string]interface{}, key string) (v bool, ok bool, err error) {
	raw, ok := m[key]
	if !ok || raw == nil {
		return false, false, nil
	}
	switch x := raw.(type) {
	case bool:
		return x, true, nil
	case string:
		b, perr := strconv.ParseBool(x)
		if perr != nil {
			return false, true, types.InvalidParameterErrorf("option %s: %q is not a boolean", key, x)
		}
		return b, true, nil
	default:
		return false, true, types.InvalidParameterErrorf("option %s: want a boolean, got %T (%v)", key, raw, raw)
	}
}

// GetInt returns m[key] as an int; integer kinds, float64 holding an
// integer (as JSON decodes numbers) and decimal strings are taken.
func GetInt(m map[string]interface{}, key string) (v int, ok bool, err error) {
	raw, ok := m[key]
	if !ok || raw == nil {
		return 0, false, nil
	}
	switch x := raw.(type) {
	case int:
		return x, true, nil
	case int32:
		return int(x), true, nil
	case int64:
		return int(x), true, nil
	case uint16:
		return int(x), true, nil
	case uint32:
		return int(x), true, nil
	case float64:
		if x != float64(int(x)) {
			return 0, true, types.InvalidParameterErrorf("option %s: %v is not an integer", key, x)
		}
		return int(x), true, nil
	case string:
		n, perr := strconv.Atoi(x)
		if perr != nil {
			return 0, true, types.InvalidParameterErrorf("option %s: %q is not an integer", key, x)
		}
		return n, true, nil
	default:
		return 0, true, types.InvalidParameterErrorf("option %s: want an integer, got %T (%v)", key, raw, raw)
	}
}

// GetStringMap returns m[key] as a map[string]string; a Generic or
// map[string]interface{} whose values are all strings is taken too.
func GetStringMap(m map[string]interface{}, key string) (v map[string]string, ok bool, err error) {
	raw, ok := m[key]
	if !ok || raw == nil {
		return nil, false, nil
	}
	switch x := raw.(type) {
	case map[string]string:
		return x, true, nil
	case Generic:
		return stringValues(key, x)
	case map[string]interface{}:
		return stringValues(key, x)
	default:
		return nil, true, types.InvalidParameterErrorf("option %s: want a map of strings, got %T", key, raw)
	}
}

func stringValues(key string, in map[string]interface{}) (map[string]string, bool, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		s, ok := v.(string)
		if !ok {
			return nil, true, types.InvalidParameterErrorf("option %s.%s: want a string, got %T (%v)", key, k, v, v)
		}
		out[k] = s
	}
	return out, true, nil
}

// GetGeneric returns m[key] as a map of options; Generic,
// map[string]interface{} and map[string]string are taken.
func GetGeneric(m map[string]interface{}, key string) (v map[string]interface{}, ok bool, err error) {
	raw, ok := m[key]
	if !ok || raw == nil {
		return nil, false, nil
	}
	switch x := raw.(type) {
	case Generic:
		return x, true, nil
	case map[string]interface{}:
		return x, true, nil
	case map[string]string:
		out := make(map[string]interface{}, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out, true, nil
	default:
		return nil, true, types.InvalidParameterErrorf("option %s: want an option map, got %T", key, raw)
	}
}
