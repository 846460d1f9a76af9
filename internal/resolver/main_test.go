package resolver

import (
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

// The forwarder's tests run upstream servers on loopback addresses; as
// root they run in a throwaway network namespace, as every test of the
// repository does.
func TestMain(m *testing.M) { testutil.Main(m) }
