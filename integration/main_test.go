// Package integration holds remote_pull's end-to-end tests: a real Dovecot
// upstream and the custom maddy binary, started in temporary directories on
// loopback, with every result read back through maddy's own IMAP endpoint.
package integration

import (
	"os"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
