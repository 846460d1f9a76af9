package types

import (
	"errors"
	"fmt"
)

// The error classes. An error belongs to a class when it has the class's
// marker method; callers test with errors.As against these interfaces, so a
// class survives wrapping with %w.

// BadRequestError is an error caused by invalid input from the caller.
type BadRequestError interface {
	error
	BadRequest()
}

// NotFoundError is an error for an object that does not exist.
type NotFoundError interface {
	error
	NotFound()
}

// ForbiddenError is an error for a request that is valid but not allowed in
// the current state.
type ForbiddenError interface {
	error
	Forbidden()
}

// NoServiceError is an error for a service (driver, plugin) that is not
// available.
type NoServiceError interface {
	error
	NoService()
}

// NotImplementedError is an error for an operation not implemented.
type NotImplementedError interface {
	error
	NotImplemented()
}

// TimeoutError is an error for an operation that timed out.
type TimeoutError interface {
	error
	Timeout()
}

// InternalError is an error of the library or the kernel, not of the caller.
type InternalError interface {
	error
	Internal()
}

// MaskableError is an error that a caller may choose to ignore.
type MaskableError interface {
	error
	Maskable()
}

// RetryError is an error for an operation that may succeed if retried.
type RetryError interface {
	error
	Retry()
}

type classified struct{ err error }

func (c classified) Error() string { return c.err.Error() }
func (c classified) Unwrap() error { return c.err }

type badRequest struct{ classified }

func (badRequest) BadRequest() {}

type notFound struct{ classified }

func (notFound) NotFound() {}

type forbidden struct{ classified }

func (forbidden) Forbidden() {}

type noService struct{ classified }

func (noService) NoService() {}

type notImplemented struct{ classified }

func (notImplemented) NotImplemented() {}

type timeout struct{ classified }

func (timeout) Timeout() {}

type internal struct{ classified }

func (internal) Internal() {}

type maskable struct{ classified }

func (maskable) Maskable() {}

type retry struct{ classified }

func (retry) Retry() {}

type internalMaskable struct{ classified }

func (internalMaskable) Internal() {}
func (internalMaskable) Maskable() {}

// BadRequestErrorf formats a BadRequestError; %w wraps as in fmt.Errorf.
func BadRequestErrorf(format string, a ...any) error {
	return badRequest{classified{fmt.Errorf(format, a...)}}
}

// InvalidParameterErrorf formats a BadRequestError for an invalid option or
// parameter value.
func InvalidParameterErrorf(format string, a ...any) error {
	return BadRequestErrorf(format, a...)
}

// NotFoundErrorf formats a NotFoundError.
func NotFoundErrorf(format string, a ...any) error {
	return notFound{classified{fmt.Errorf(format, a...)}}
}

// ForbiddenErrorf formats a ForbiddenError.
func ForbiddenErrorf(format string, a ...any) error {
	return forbidden{classified{fmt.Errorf(format, a...)}}
}

// NoServiceErrorf formats a NoServiceError.
func NoServiceErrorf(format string, a ...any) error {
	return noService{classified{fmt.Errorf(format, a...)}}
}

// NotImplementedErrorf formats a NotImplementedError.
func NotImplementedErrorf(format string, a ...any) error {
	return notImplemented{classified{fmt.Errorf(format, a...)}}
}

// TimeoutErrorf formats a TimeoutError.
func TimeoutErrorf(format string, a ...any) error {
	return timeout{classified{fmt.Errorf(format, a...)}}
}

// InternalErrorf formats an InternalError.
func InternalErrorf(format string, a ...any) error {
	return internal{classified{fmt.Errorf(format, a...)}}
}

// InternalMaskableErrorf formats an error that is both internal and
// maskable.
func InternalMaskableErrorf(format string, a ...any) error {
	return internalMaskable{classified{fmt.Errorf(format, a...)}}
}

// RetryErrorf formats a RetryError.
func RetryErrorf(format string, a ...any) error {
	return retry{classified{fmt.Errorf(format, a...)}}
}

// IsBadRequest reports whether err or an error it wraps is a BadRequestError.
func IsBadRequest(err error) bool { var e BadRequestError; return errors.As(err, &e) }

// IsNotFound reports whether err or an error it wraps is a NotFoundError.
func IsNotFound(err error) bool { var e NotFoundError; return errors.As(err, &e) }

// IsForbidden reports whether err or an error it wraps is a ForbiddenError.
func IsForbidden(err error) bool { var e ForbiddenError; return errors.As(err, &e) }

// IsInternal reports whether err or an error it wraps is an InternalError.
func IsInternal(err error) bool { var e InternalError; return errors.As(err, &e) }

// Errorf formats an error as fmt.Errorf does and gives it the class of the
// error it wraps with %w: the first error in the chain (depth first, as
// errors.As walks it) that belongs to a class decides it. Callers written
// for v0.7 test classes by plain type assertion (err.(types.ForbiddenError)),
// which a fmt.Errorf wrapper would defeat; the value Errorf returns
// satisfies the assertion and still unwraps to its cause for errors.Is and
// errors.As. An error whose chain has no class is returned as fmt.Errorf
// made it.
func Errorf(format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	if cause := classifiedCause(err); cause != nil {
		return classOf(cause, err)
	}
	return err
}

// classifiedCause returns the first error in err's tree that belongs to a
// class, or nil.
func classifiedCause(err error) error {
	if err == nil {
		return nil
	}
	if classOf(err, err) != nil {
		return err
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return classifiedCause(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if c := classifiedCause(e); c != nil {
				return c
			}
		}
	}
	return nil
}

// classOf returns err wrapped in the class that cause belongs to, or nil
// when cause belongs to none. An error in several classes keeps the first
// in this order; maskable internal errors keep both.
func classOf(cause, err error) error {
	c := classified{err}
	switch cause.(type) {
	case BadRequestError:
		return badRequest{c}
	case NotFoundError:
		return notFound{c}
	case ForbiddenError:
		return forbidden{c}
	case NoServiceError:
		return noService{c}
	case NotImplementedError:
		return notImplemented{c}
	case TimeoutError:
		return timeout{c}
	case InternalError:
		if _, ok := cause.(MaskableError); ok {
			return internalMaskable{c}
		}
		return internal{c}
	case MaskableError:
		return maskable{c}
	case RetryError:
		return retry{c}
	}
	return nil
}
