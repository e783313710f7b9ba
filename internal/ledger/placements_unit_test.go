package ledger

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// Placements are recorded per global ID without repeats, read back in
// order, counted as label copies beyond one per message in the status,
// and forgotten with the account.
func TestPlacements(t *testing.T) {
	ctx := context.Background()
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok, err := l.PlacedOf(ctx, "a", "gm:1"); ok || err != nil {
		t.Fatalf("PlacedOf before any record: %v, %v", ok, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.RecordPlaced(ctx, "a", "gm:1", "a/INBOX/1/7", []string{"alice@example.org"}, []string{"INBOX", "label:Work"}))
	must(l.RecordPlaced(ctx, "a", "gm:1", "a/INBOX/1/7", []string{"alice@example.org"}, []string{"label:Work", `\Sent`}))
	must(l.RecordPlaced(ctx, "a", "gm:2", "a/INBOX/1/8", []string{"alice@example.org"}, []string{`\Archive`}))
	must(l.RecordPlaced(ctx, "b", "gm:1", "b/INBOX/1/7", []string{"bob@example.org"}, []string{"INBOX"}))
	p, ok, err := l.PlacedOf(ctx, "a", "gm:1")
	must(err)
	slices.Sort(p.Places)
	if !ok || p.Origin != "a/INBOX/1/7" || !slices.Equal(p.Accounts, []string{"alice@example.org"}) ||
		!slices.Equal(p.Places, []string{"INBOX", `\Sent`, "label:Work"}) {
		t.Errorf("PlacedOf = %+v, %v", p, ok)
	}
	must(l.SaveStatus(ctx, AccountStatus{Account: "a"}))
	st, _, err := l.Status(ctx, "a")
	must(err)
	if st.LabelCopies != 2 {
		t.Errorf("status counts %d label copies, want 2 (3 places of one message, 1 of another)", st.LabelCopies)
	}
	if _, err := l.ForgetAccount(ctx, "a", false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.PlacedOf(ctx, "a", "gm:1"); ok {
		t.Error("placements survive forgetting the account")
	}
	if _, ok, _ := l.PlacedOf(ctx, "b", "gm:1"); !ok {
		t.Error("forgetting one account forgot another's placements")
	}
}
