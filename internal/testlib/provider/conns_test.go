package provider_test

import (
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// A connection stops counting when the server hangs up after LOGOUT,
// before the client has closed its side: a real server's session ends
// there, and a client that waits for the hang-up may dial the next one
// without the two counted together.
func TestConnectionEndsAtHangUp(t *testing.T) {
	s := gmail(t, provider.Config{})
	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	if _, tagged := r.cmd("LOGOUT"); tagged[:2] != "OK" {
		t.Fatalf("LOGOUT: %q", tagged)
	}
	if l := r.line(); l != "EOF" {
		t.Fatalf("after LOGOUT: %q, want the server to hang up", l)
	}
	if n := s.Conns(); n != 0 {
		t.Fatalf("%d connections counted after the server hung up", n)
	}
}
