package remotepull

import (
	"testing"

	"github.com/remote-pull/remote_pull/internal/delivery"
)

func TestTranslatePath(t *testing.T) {
	for _, c := range []struct{ name, from, to, want string }{
		{"Work/Clients", "/", ".", "Work.Clients"},
		{"Work/Clients/acme", "/", ".", "Work.Clients.acme"},
		{"Releases/v1.2", "/", ".", "Releases.v1_2"},         // a dot in a part stays in the part
		{"[Gmail]/Sent Mail", "/", ".", "[Gmail].Sent Mail"}, // spaces and brackets kept
		{"Work.Clients", ".", ".", "Work.Clients"},           // Dovecot Maildir++ to imapsql
		{"Work.Clients", ".", "/", "Work/Clients"},
		{"a/b.c", ".", "/", "a_b/c"},
		{"Work/Clients", "/", "", "Work/Clients"}, // a flat storage: as it is
		{"Work", "/", ".", "Work"},
	} {
		if got := delivery.MirrorPath(c.name, c.from, c.to); got != c.want {
			t.Errorf("MirrorPath(%q, %q, %q) = %q, want %q", c.name, c.from, c.to, got, c.want)
		}
	}
}
