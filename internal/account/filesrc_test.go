package account

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source/filesrc"
)

func mboxOf(subjects ...string) string {
	var b strings.Builder
	for i, s := range subjects {
		fmt.Fprintf(&b, "From a Sun Dec  6 02:03:%02d 2026\nStatus: O\nSubject: %s\n\nbody of %s\n\n", i, s, s)
	}
	return b.String()
}

// An mbox through the account loop: a finished import delivers nothing
// more; a file cut short (another program rewriting it) and then restored
// delivers nothing twice; a rewrite with new flags and another order, and
// messages appended, deliver only the new ones.
func TestMboxAccount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(mboxOf("a", "b", "c"))
	r := newRig(t, newFake(0), true)
	r.acc.s.Upstream = filesrc.NewMbox(filesrc.MboxConfig{Path: path})
	delivered := func() int {
		t.Helper()
		return r.mustPoll(t).Delivered
	}
	if n := delivered(); n != 3 {
		t.Fatalf("first poll delivered %d", n)
	}
	if n := delivered(); n != 0 {
		t.Fatalf("unchanged file: %d delivered", n)
	}
	write(mboxOf("a")) // cut short mid-rewrite
	if n := delivered(); n != 0 {
		t.Fatalf("truncated file: %d delivered", n)
	}
	write(strings.ReplaceAll(mboxOf("c", "b", "a", "d"), "Status: O", "Status: RO")) // restored, reordered, read, one more
	if n := delivered(); n != 1 {
		t.Fatalf("rewritten file with one new message: %d delivered", n)
	}
	r.noDuplicates(t)
	for _, s := range []string{"a", "b", "c", "d"} {
		if _, ok := r.p.committed[s]; !ok {
			t.Errorf("%q not delivered", s)
		}
	}
}

// An mbox listed a page at a time, against the options that act on a
// folder's first sync or on part of a listing, and a retry of a message
// on a page already passed: each message is delivered once or adopted,
// none is skipped, and the first sync lasts until the last page.
func TestMboxPagesAccount(t *testing.T) {
	subjects := make([]string, 10)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("m%d", i)
	}
	setup := func(t *testing.T) (*rig, func(string)) {
		path := filepath.Join(t.TempDir(), "mbox")
		write := func(s string) {
			t.Helper()
			if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write(mboxOf(subjects...))
		r := newRig(t, newFake(0), true)
		r.acc.s.Upstream = filesrc.NewMbox(filesrc.MboxConfig{Path: path, PageMessages: 3})
		return r, write
	}
	// untilIdle polls while the account asks for more at once, as Run does.
	untilIdle := func(t *testing.T, r *rig) PollResult {
		t.Helper()
		var total PollResult
		for range 20 {
			res := r.mustPoll(t)
			total.Delivered += res.Delivered
			total.Adopted += res.Adopted
			if !res.More {
				return total
			}
		}
		t.Fatal("still more after 20 polls")
		return total
	}
	t.Run("all", func(t *testing.T) {
		r, _ := setup(t)
		first := r.mustPoll(t)
		// The progress goes on over the pages, by the whole file.
		if p := r.acc.Status().Progress; !first.More || p.Done != 3 || p.BytesTotal < 3*p.BytesDone {
			t.Errorf("after the first page: %+v, progress %+v", first, p)
		}
		if got := untilIdle(t, r); got.Delivered != 7 {
			t.Fatalf("delivered %d of 7 after the first page", got.Delivered)
		}
		if p := r.acc.Status().Progress; p.Total != 0 {
			t.Errorf("progress left after the import: %+v", p)
		}
		r.noDuplicates(t)
	})
	t.Run("restart", func(t *testing.T) {
		r, _ := setup(t)
		r.mustPoll(t)
		// A restart: a new upstream, the same ledger. It resumes at the
		// second page, not by reading the first again.
		path := r.acc.s.Upstream.(*filesrc.Mbox).Path()
		r.acc.s.Upstream = filesrc.NewMbox(filesrc.MboxConfig{Path: path, PageMessages: 3})
		if got := r.mustPoll(t); got.Delivered != 3 {
			t.Fatalf("first poll after the restart delivered %d, want the second page's 3", got.Delivered)
		}
		if got := untilIdle(t, r); got.Delivered != 4 {
			t.Fatalf("delivered %d of the last 4", got.Delivered)
		}
		r.noDuplicates(t)
	})
	t.Run("max_messages_per_poll", func(t *testing.T) {
		r, _ := setup(t)
		r.acc.s.MaxMessagesPerPoll = 2 // less than a page
		if got := untilIdle(t, r); got.Delivered != 10 {
			t.Fatalf("delivered %d of 10", got.Delivered)
		}
		r.noDuplicates(t)
	})
	t.Run("first_sync new", func(t *testing.T) {
		r, write := setup(t)
		r.acc.s.FirstSyncNew = true
		if got := untilIdle(t, r); got.Adopted != 10 || got.Delivered != 0 {
			t.Fatalf("first sync over pages: %+v, want all 10 adopted", got)
		}
		write(mboxOf(append(subjects, "new")...))
		if got := untilIdle(t, r); got.Delivered != 1 {
			t.Fatalf("after the first sync: %d delivered, want the new one", got.Delivered)
		}
		if _, ok := r.p.committed["new"]; !ok {
			t.Error("the appended message was not delivered")
		}
	})
	t.Run("retry on a passed page", func(t *testing.T) {
		r, _ := setup(t)
		r.p.refuse = "m1"
		if got := untilIdle(t, r); got.Delivered != 9 {
			t.Fatalf("delivered %d of 9", got.Delivered)
		}
		r.p.refuse = ""
		if _, err := r.l.Retry(context.Background(), "acct", []ledger.State{ledger.Refused}, "", nil); err != nil {
			t.Fatal(err)
		}
		if got := untilIdle(t, r); got.Delivered != 1 {
			t.Fatalf("after retry: %d delivered, want m1", got.Delivered)
		}
		if _, ok := r.p.committed["m1"]; !ok {
			t.Error("m1 not delivered after retry")
		}
		r.noDuplicates(t)
	})
}

// A Takeout import, then the same account switched to Gmail over IMAP
// (the account keeps its name, so its ledger): what Takeout delivered is
// recognised and only the mail that arrived since is delivered; by its
// Gmail ID (Takeout's From line) even where the bytes differ, and by its
// content (the same bytes, in INBOX its fingerprint under the new
// UIDVALIDITY) where the ID is not there.
func TestTakeoutThenIMAP(t *testing.T) {
	for _, c := range []struct {
		name, sender, body string
	}{{"by Gmail ID", "%d@xxx", "a longer body as Takeout had it %d"}, {"by content", "someone@example.org", "body %d"}} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "takeout.mbox")
			var b strings.Builder
			for i := 1; i <= 2; i++ {
				sender := c.sender
				if strings.Contains(sender, "%d") {
					sender = fmt.Sprintf(sender, 100+i)
				}
				fmt.Fprintf(&b, "From %s Tue Aug 13 04:44:16 +0000 2019\nX-GM-THRID: %d\nX-Gmail-Labels: Inbox,Opened\n"+
					"Subject: m%d\nMessage-Id: <m%d@x>\n\n"+c.body+"\n\n", sender, 100+i, i, i, i)
			}
			if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			up := newFake(3) // m1, m2 as in the export, m3 arrived since
			up.globalIDs = map[string]string{"INBOX/1": "gm:101", "INBOX/2": "gm:102", "INBOX/3": "gm:103",
				"Label/1": "gm:101", "Label/2": "gm:102", "Label/3": "gm:103"}
			r := newRig(t, up, true)
			r.acc.s.Dedupe = true
			r.acc.s.Upstream = filesrc.NewMbox(filesrc.MboxConfig{Path: path})
			if n := r.mustPoll(t).Delivered; n != 2 {
				t.Fatalf("Takeout delivered %d", n)
			}
			r.acc.s.Upstream = up
			r.acc.s.Folders = []string{"INBOX", "Label"}
			r.mustPoll(t)
			r.mustPoll(t)
			r.noDuplicates(t)
			if got := keys(r.p.committed); len(got) != 3 {
				t.Fatalf("committed %v, want m1 m2 m3 once each", got)
			}
		})
	}
}
