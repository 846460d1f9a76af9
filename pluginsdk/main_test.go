package pluginsdk

import (
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
)

// TestServeTCP listens on 127.0.0.1; as root the tests run in a throwaway
// network namespace, as every test of the repository does.
func TestMain(m *testing.M) { testutil.Main(m) }
