package types

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

type namedNotFound string

func (e namedNotFound) Error() string { return string(e) + " not found" }
func (namedNotFound) NotFound()       {}

// Errorf keeps the class of its cause for plain type assertions, as v0.7
// callers write them, and errors.Is/As still reach the cause.
func TestErrorfKeepsClass(t *testing.T) {
	cause := namedNotFound("net1")
	err := Errorf("deleting network: %w", fmt.Errorf("driver: %w", cause))
	if _, ok := err.(NotFoundError); !ok {
		t.Fatalf("%T does not satisfy NotFoundError by type assertion", err)
	}
	var target namedNotFound
	if !errors.As(err, &target) || target != cause {
		t.Fatalf("errors.As lost the cause: %v", err)
	}
	if err.Error() != "deleting network: driver: net1 not found" {
		t.Fatalf("message %q", err.Error())
	}

	forb := Errorf("join: %w", ForbiddenErrorf("busy"))
	if _, ok := forb.(ForbiddenError); !ok {
		t.Fatalf("%T is not a ForbiddenError", forb)
	}
	if _, ok := forb.(BadRequestError); ok {
		t.Fatalf("%T took a class its cause does not have", forb)
	}

	im := Errorf("x: %w", InternalMaskableErrorf("y"))
	if _, ok := im.(InternalError); !ok {
		t.Errorf("internal maskable lost Internal: %T", im)
	}
	if _, ok := im.(MaskableError); !ok {
		t.Errorf("internal maskable lost Maskable: %T", im)
	}

	joined := Errorf("refresh: %w", errors.Join(fs.ErrNotExist, BadRequestErrorf("bad")))
	if _, ok := joined.(BadRequestError); !ok {
		t.Errorf("a joined error did not take its member's class: %T", joined)
	}

	plain := Errorf("x: %w", fs.ErrNotExist)
	if !errors.Is(plain, fs.ErrNotExist) {
		t.Error("errors.Is lost the cause of a classless error")
	}
	for _, is := range []func(error) bool{IsBadRequest, IsNotFound, IsForbidden, IsInternal} {
		if is(plain) {
			t.Errorf("a classless cause gave %v a class", plain)
		}
	}
}
