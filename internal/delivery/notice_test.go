package delivery

import (
	"context"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// A notice quoting the upstream carries no control characters (nor a
// header line break in its subject) and stays a few kilobytes, whatever
// the caller passes.
func TestNoticeIsSanitised(t *testing.T) {
	var got []byte
	p := &testlib.Pipeline{Committed: func(m testlib.Message) { got = m.Raw }}
	tg := newTarget(t, p)
	hostile := "Last error: NO \x1b]0;owned\x07\x1b[2J" + strings.Repeat("A", 1<<20) + "\n"
	if _, err := tg.Notice(context.Background(), []string{"owner@example.org"}, "remote_pull: x\r\nBcc: evil@example.net", hostile); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(got), "\x1b\x07") || len(got) > 64<<10 {
		t.Errorf("notice of %d bytes with control characters %v", len(got), strings.ContainsAny(string(got), "\x1b\x07"))
	}
	if strings.Contains(string(got), "\r\nBcc:") {
		t.Error("a line break in the subject made a header field")
	}
}
