package remotepull

import (
	"bytes"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/source/pop3src"
)

// check tells the connection plan the poll follows: the poll's
// connection, IDLE for the first folders, the rest polled.
func TestCheckReportsConnections(t *testing.T) {
	for _, c := range []struct {
		name string
		pol  policy.Policy
		pop3 bool
		want string
	}{
		{"past max_connections", policy.Policy{Idle: true, MaxConnections: 3, Folders: []string{"Work", "INBOX", "Lists", "Old"}}, false,
			"  connections: 3 connections (max_connections 3): poll + 2 IDLE (INBOX, Work); polled every poll_interval instead of watched: Lists, Old\n"},
		{"idle no", policy.Policy{MaxConnections: 10, Folders: []string{"INBOX", "Work"}}, false,
			"  connections: 1 connection (max_connections 10): poll\n"},
		{"POP3", policy.Policy{Idle: true, MaxConnections: 8, Folders: []string{"INBOX"}}, true,
			"  connections: 1 connection (max_connections 8): poll\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			acc := &config.Account{Name: "a", Policy: c.pol}
			if c.pop3 {
				checkConnections(&out, acc, pop3src.New(pop3src.Config{}))
			} else {
				checkConnections(&out, acc, imapsrc.New(imapsrc.Config{}))
			}
			if !strings.HasPrefix(out.String(), c.want) {
				t.Fatalf("check says\n%s\nwant\n%s", out.String(), c.want)
			}
		})
	}
}
