package null

import (
	"errors"
	"testing"

	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/types"
)

func TestRequestPool(t *testing.T) {
	tests := []struct {
		name        string
		space, pool string
		subPool     string
		v6          bool
		wantErr     error
		wantPool    string
	}{
		{name: "null space v4", space: AddressSpace, wantPool: "0.0.0.0/0"},
		{name: "null space v6", space: AddressSpace, v6: true, wantPool: "::/0"},
		{name: "local default", space: ipamapi.LocalDefault, wantPool: "0.0.0.0/0"},
		{name: "global default", space: ipamapi.GlobalDefault, v6: true, wantPool: "::/0"},
		{name: "empty space", space: "", wantPool: "0.0.0.0/0"},
		{name: "explicit all", space: AddressSpace, pool: "0.0.0.0/0", wantPool: "0.0.0.0/0"},
		{name: "unknown space", space: "bogus", wantErr: ipamapi.ErrInvalidAddressSpace},
		{name: "specific pool", space: AddressSpace, pool: "10.0.0.0/24", wantErr: ipamapi.ErrInvalidPool},
		{name: "sub-pool", space: AddressSpace, subPool: "10.0.0.0/24", wantErr: ipamapi.ErrInvalidSubPool},
	}
	a := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, nw, meta, err := a.RequestPool(tt.space, tt.pool, tt.subPool, nil, tt.v6)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !types.IsBadRequest(err) {
					t.Fatalf("RequestPool error = %v, want %v (bad request)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("RequestPool: %v", err)
			}
			if id != PoolID || nw.String() != tt.wantPool || meta != nil {
				t.Fatalf("RequestPool = %q, %v, %v; want %q, %s, nil", id, nw, meta, PoolID, tt.wantPool)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	a := New()
	local, global, err := a.GetDefaultAddressSpaces()
	if err != nil || local != AddressSpace || global != AddressSpace {
		t.Fatalf("GetDefaultAddressSpaces = %q, %q, %v", local, global, err)
	}
	addr, meta, err := a.RequestAddress(PoolID, nil, nil)
	if addr != nil || meta != nil || err != nil {
		t.Fatalf("RequestAddress = %v, %v, %v; want nil, nil, nil", addr, meta, err)
	}
	if _, _, err := a.RequestAddress("other", nil, nil); !errors.Is(err, ipamapi.ErrPoolNotFound) || !types.IsNotFound(err) {
		t.Fatalf("RequestAddress(other) error = %v, want ErrPoolNotFound", err)
	}
	if err := a.ReleaseAddress(PoolID, nil); err != nil {
		t.Fatalf("ReleaseAddress: %v", err)
	}
	if err := a.ReleasePool(PoolID); err != nil {
		t.Fatalf("ReleasePool: %v", err)
	}
	if c := a.Capabilities(); c != (ipamapi.Capability{}) {
		t.Fatalf("Capabilities = %+v, want zero", c)
	}
}
