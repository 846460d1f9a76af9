package types

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestProtocol(t *testing.T) {
	for _, p := range []Protocol{TCP, UDP, SCTP, ICMP} {
		if ParseProtocol(p.String()) != p {
			t.Errorf("round trip of %v", p)
		}
	}
	if ParseProtocol("nope") != 0 || Protocol(99).String() != "99" {
		t.Error("unknown protocols")
	}
}

func TestCopiesAreDeep(t *testing.T) {
	pb := PortBinding{Proto: TCP, IP: net.ParseIP("10.0.0.2"), Port: 80, HostIP: net.ParseIP("0.0.0.0"), HostPort: 8080}
	cp := pb.GetCopy()
	cp.IP[15] = 9
	if pb.IP[15] == 9 || !pb.Equal(&PortBinding{Proto: TCP, IP: net.ParseIP("10.0.0.2"), Port: 80, HostIP: net.ParseIP("0.0.0.0"), HostPort: 8080}) {
		t.Error("PortBinding.GetCopy is shallow or Equal is wrong")
	}
	n, err := ParseCIDR("10.1.2.3/24")
	if err != nil || n.String() != "10.1.2.3/24" || len(n.IP) != net.IPv4len {
		t.Errorf("ParseCIDR keeps the host part: %v %v", n, err)
	}
	if _, err := ParseCIDR("10.1.2.3"); !IsBadRequest(err) {
		t.Errorf("ParseCIDR without a mask: %v", err)
	}
	c := GetIPNetCopy(n)
	c.IP[0] = 99
	if n.IP[0] == 99 || !CompareIPNet(n, GetIPNetCopy(n)) {
		t.Error("GetIPNetCopy is shallow or CompareIPNet is wrong")
	}
	r := &StaticRoute{Destination: n, RouteType: NEXTHOP, NextHop: net.ParseIP("10.1.2.1")}
	rc := r.GetCopy()
	rc.NextHop[15] = 7
	if r.NextHop[15] == 7 {
		t.Error("StaticRoute.GetCopy is shallow")
	}
}

func TestErrorClasses(t *testing.T) {
	cause := errors.New("cause")
	for _, tc := range []struct {
		err error
		is  func(error) bool
	}{
		{BadRequestErrorf("x: %w", cause), IsBadRequest},
		{InvalidParameterErrorf("x"), IsBadRequest},
		{NotFoundErrorf("x"), IsNotFound},
		{ForbiddenErrorf("x"), IsForbidden},
		{InternalErrorf("x"), IsInternal},
		{InternalMaskableErrorf("x"), IsInternal},
	} {
		if !tc.is(fmt.Errorf("wrapped: %w", tc.err)) {
			t.Errorf("%v lost its class", tc.err)
		}
	}
	if !errors.Is(BadRequestErrorf("x: %w", cause), cause) {
		t.Error("%w does not unwrap to the cause")
	}
	var m MaskableError
	if !errors.As(InternalMaskableErrorf("x"), &m) {
		t.Error("InternalMaskableErrorf is not maskable")
	}
	for _, err := range []error{NoServiceErrorf("x"), NotImplementedErrorf("x"), TimeoutErrorf("x"), RetryErrorf("x")} {
		if err.Error() != "x" {
			t.Errorf("message %q", err.Error())
		}
	}
}
