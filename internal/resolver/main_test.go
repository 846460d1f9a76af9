package resolver

import (
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
