package commands

import (
	"bytes"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// status says which folders are watched with IDLE and which are polled
// instead, within max_connections.
func TestStatusShowsConnections(t *testing.T) {
	sts := []accountStatus{{AccountStatus: ledger.AccountStatus{Account: "gmail", State: "idle",
		Connections: ledger.Connections{Max: 3, Watched: []string{"INBOX", "Work"}, Polled: []string{"Lists"}}},
		Configured: true, Running: true}}
	var out bytes.Buffer
	if err := printStatus(&out, sts, true); err != nil {
		t.Fatal(err)
	}
	want := "connections: gmail: 3 connections (max_connections 3): poll + 2 IDLE (INBOX, Work); polled every poll_interval instead of watched: Lists\n"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("status:\n%s\nwant the line %q", out.String(), want)
	}
}
