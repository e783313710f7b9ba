package account

import (
	"context"
	"strings"
	"testing"
	"time"
)

// notices: one per change of trouble, none again while it lasts (nor
// after a restart), one when it is over; through the account's pipeline.
func TestNotices(t *testing.T) {
	up := newFake(2)
	r := newRig(t, up, true)
	r.acc.s.Notify = []string{"owner@example.org"}
	bad := &refusingUpstream{fakeUpstream: up}
	ctx := context.Background()
	step := func() {
		t.Helper()
		res, err := r.acc.pollSafely(ctx)
		r.acc.report(res, err, classify(err), time.Minute)
		r.acc.checkNotice(ctx)
	}
	notices := func() []string {
		var out []string
		for subj := range r.p.committed {
			if strings.HasPrefix(subj, "remote_pull: ") {
				out = append(out, subj)
			}
		}
		return out
	}

	step() // all well: the two messages, no notice
	if n := notices(); len(n) != 0 {
		t.Fatalf("notices while all is well: %v", n)
	}
	r.acc.s.Upstream = bad
	step()
	step()
	if n := notices(); len(n) != 1 || n[0] != "remote_pull: account acct: auth failed" {
		t.Fatalf("after two refused logins: %v, want one auth failed notice", n)
	}
	body := string(r.p.committed["remote_pull: account acct: auth failed"])
	for _, want := range []string{"password_file", "systemctl reload maddy", "Auto-Submitted: auto-generated"} {
		if !strings.Contains(body, want) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
	// A restart while the trouble lasts says nothing new.
	r.acc = New(r.acc.s)
	step()
	if n := notices(); len(n) != 1 {
		t.Fatalf("after a restart: %v", n)
	}
	// Fixed: one notice that it works again.
	r.acc.s.Upstream = up
	step()
	step()
	if n := notices(); len(n) != 2 || r.p.committed["remote_pull: account acct works again"] == nil {
		t.Fatalf("after the fix: %v", n)
	}
	// A refused message waiting upstream is a trouble of its own.
	up.add(3)
	r.p.refuse = "m3"
	step()
	if r.p.committed["remote_pull: account acct: messages waiting upstream"] == nil {
		t.Fatalf("no notice for a refused message: %v", notices())
	}
	// notify off: nothing.
	r.acc.s.Notify = nil
	r.acc.s.Upstream = bad
	step()
	if n := notices(); len(n) != 3 {
		t.Fatalf("notices with notify off: %v", n)
	}
}
