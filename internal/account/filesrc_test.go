package account

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
