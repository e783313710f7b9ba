package ledger

import (
	"slices"
	"testing"
)

// How an account shares out its connections is saved with its status and
// read back, for the status command in another process.
func TestStatusConnections(t *testing.T) {
	l, _ := open(t)
	want := Connections{Max: 3, Watched: []string{"INBOX", "Work"}, Polled: []string{"Lists", "Old"}}
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "idle", Connections: want}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := l.Status(bg, "a")
	if err != nil || !ok {
		t.Fatalf("status: %v %v", ok, err)
	}
	got := st.Connections
	if got.Max != want.Max || !slices.Equal(got.Watched, want.Watched) || !slices.Equal(got.Polled, want.Polled) {
		t.Fatalf("connections %+v, want %+v", got, want)
	}
}
