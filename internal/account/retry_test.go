package account

import (
	"context"
	"testing"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// remote-pull retry --duplicates: a message dedupe took for a copy is
// fetched again and delivered, by fingerprint and by global ID alike; the
// other duplicates stay as they are, and a later poll does not deliver
// the retried message a third time.
func TestRetryDuplicateDelivers(t *testing.T) {
	for _, gmail := range []bool{false, true} {
		up := newFake(3)
		if gmail {
			up.globalIDs = map[string]string{"INBOX/1": "gm:1", "INBOX/2": "gm:2", "INBOX/3": "gm:3",
				"Label/1": "gm:1", "Label/2": "gm:2", "Label/3": "gm:3"}
		}
		r := newRig(t, up, true)
		r.acc.s.Folders = []string{"INBOX", "Label"}
		r.acc.s.Dedupe = true
		r.mustPoll(t)
		if len(r.p.committed) != 3 {
			t.Fatalf("gmail %v: committed %v, want 3", gmail, keys(r.p.committed))
		}
		ctx := context.Background()
		n, err := r.l.Retry(ctx, "acct", []ledger.State{ledger.Duplicate}, "Label", []string{"2"})
		if err != nil || n != 1 {
			t.Fatalf("gmail %v: retry: %d %v", gmail, n, err)
		}
		r.mustPoll(t)
		if len(r.p.committed) != 4 {
			t.Fatalf("gmail %v: after retry --duplicates committed %v, want 4 (Label's 2 delivered)", gmail, keys(r.p.committed))
		}
		st, _ := r.l.States(ctx, ledger.MailboxKey{Account: "acct", Mailbox: "Label", UIDValidity: 1}, 0)
		for uid, want := range map[string]ledger.State{"1": ledger.Duplicate, "2": ledger.Delivered, "3": ledger.Duplicate} {
			if st[uid].State != want {
				t.Errorf("gmail %v: Label UID %s: %q, want %q", gmail, uid, st[uid].State, want)
			}
		}
		if r.mustPoll(t); len(r.p.committed) != 4 {
			t.Errorf("gmail %v: a later poll delivered again: %v", gmail, keys(r.p.committed))
		}
	}
}
