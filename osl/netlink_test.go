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
