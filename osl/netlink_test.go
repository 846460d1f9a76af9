package osl

import (
	"errors"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestDumpRetriesInterrupted(t *testing.T) {
	calls := 0
	got, err := Dump(func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2}, nil
	})
	if err != nil || !slices.Equal(got, []int{1, 2}) || calls != 3 {
		t.Errorf("Dump after two interruptions: %v, %v in %d calls; want [1 2], nil in 3", got, err, calls)
	}

	// Interrupted every time: the last result, no error, after a bound.
	calls = 0
	got, err = Dump(func() ([]int, error) {
		calls++
		return []int{calls}, netlink.ErrDumpInterrupted
	})
	if !errors.Is(err, netlink.ErrDumpInterrupted) || !slices.Equal(got, []int{dumpRetries}) || calls != dumpRetries {
		t.Errorf("Dump always interrupted: %v, %v in %d calls; want [%d], ErrDumpInterrupted in %d", got, err, calls, dumpRetries, dumpRetries)
	}

	// Other errors are not retried.
	calls = 0
	boom := errors.New("boom")
	if _, err := Dump(func() ([]int, error) { calls++; return nil, boom }); !errors.Is(err, boom) || calls != 1 {
		t.Errorf("Dump with an error: %v in %d calls; want boom in 1", err, calls)
	}
}

func TestTombstoneNames(t *testing.T) {
	a, b := TombstoneName("gone"), TombstoneName("gone")
	if a == b || !IsTombstone(a, "gone") || !IsTombstone(b, "gone") || len(a) != len("gone")+10 {
		t.Errorf("TombstoneName gave %q and %q", a, b)
	}
	for _, tc := range []struct {
		name, prefix string
		n            int
		want         bool
	}{
		{"gone0123456789", "gone", 10, true},
		{"gone012345678", "gone", 10, false},
		{"gone012345678A", "gone", 10, false},
		{"eth0", "gone", 10, false},
		{"0123abcd", "", 8, true},
	} {
		if got := HasHexSuffix(tc.name, tc.prefix, tc.n); got != tc.want {
			t.Errorf("HasHexSuffix(%q, %q, %d) = %v", tc.name, tc.prefix, tc.n, got)
		}
	}
}
