package account

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// hostileReply is what a malicious or broken upstream may answer: terminal
// escapes (clear screen, set the window title, bell) and a megabyte.
var hostileReply = "NO [AUTHENTICATIONFAILED] \x1b[2J\x1b]0;owned\x07" + strings.Repeat("A", 1<<20)

func clean(s string) bool { return !strings.ContainsAny(s, "\x1b\x07") }

// The status keeps an upstream's error text bounded and without control
// characters, and a notice quoting it does too: the owner's mail reader
// and the admin's terminal get neither escapes nor a megabyte.
func TestHostileErrorTextIsSanitised(t *testing.T) {
	up := newFake(1)
	r := newRig(t, up, true)
	r.acc.s.Notify = []string{"owner@example.org"}
	err := &source.AuthError{Err: errors.New(hostileReply)}
	r.acc.report(PollResult{}, err, classify(err), time.Minute)
	st := r.acc.Status()
	if !clean(st.LastError) || len(st.LastError) > 2000 {
		t.Errorf("status last error: %d bytes, clean %v", len(st.LastError), clean(st.LastError))
	}
	for _, state := range []State{StateAuthFailed, StateReconsent, StateBackingOff} {
		r.acc.mu.Lock()
		r.acc.status.State, r.acc.status.LastError = string(state), hostileReply
		r.acc.firstSeen = time.Now().Add(-48 * time.Hour)
		r.acc.mu.Unlock()
		_, text, err := r.acc.trouble(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if text == "" {
			t.Fatalf("%s: no notice text", state)
		}
		if !clean(text) || len(text) > 4000 {
			t.Errorf("%s: notice text of %d bytes, clean %v", state, len(text), clean(text))
		}
	}
}
