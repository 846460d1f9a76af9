package libnetwork

import (
	"errors"
	"fmt"
	"testing"

	"github.com/netkit/libnetwork/types"
)

// The v0.7 error types and their classes.
var (
	_ types.NotFoundError   = ErrNoSuchNetwork("")
	_ types.NotFoundError   = ErrNoSuchEndpoint("")
	_ types.BadRequestError = ErrInvalidNetworkDriver("")
	_ types.BadRequestError = ErrInvalidJoin{}
	_ types.MaskableError   = ErrNoContainer{}
	_ types.BadRequestError = ErrInvalidID("")
	_ types.BadRequestError = ErrInvalidName("")
	_ error                 = ErrInvalidConfigFile("")
	_ types.NotFoundError   = NetworkTypeError("")
	_ types.ForbiddenError  = NetworkNameError("")
	_ types.NotFoundError   = &UnknownNetworkError{}
	_ types.ForbiddenError  = &ActiveEndpointsError{}
	_ types.NotFoundError   = &UnknownEndpointError{}
	_ types.ForbiddenError  = &ActiveContainerError{}
	_ types.BadRequestError = InvalidContainerIDError("")
)

func TestErrorClassesSurviveWrapping(t *testing.T) {
	for _, tc := range []struct {
		err   error
		check func(error) bool
	}{
		{ErrNoSuchNetwork("x"), types.IsNotFound},
		{NetworkNameError("x"), types.IsForbidden},
		{&ActiveEndpointsError{name: "n", id: "i"}, types.IsForbidden},
		{ErrInvalidJoin{}, types.IsBadRequest},
		{types.BadRequestErrorf("inner: %w", errors.New("cause")), types.IsBadRequest},
	} {
		wrapped := fmt.Errorf("context: %w", tc.err)
		if !tc.check(wrapped) {
			t.Errorf("%T lost its class when wrapped: %v", tc.err, wrapped)
		}
		if tc.err.Error() == "" {
			t.Errorf("%T has an empty message", tc.err)
		}
	}
	var m types.MaskableError
	if !errors.As(fmt.Errorf("x: %w", ErrNoContainer{}), &m) {
		t.Error("ErrNoContainer is not maskable through wrapping")
	}
}
