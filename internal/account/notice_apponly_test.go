package account

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// A refused client credentials grant is not fixed by oauth2-login (which
// refuses app-only accounts): the notice sends the owner to the admin's
// fix, the secret or the application's permissions, instead.
func TestNoticeAppOnlyRefused(t *testing.T) {
	r := newRig(t, newFake(1), true)
	r.acc.s.Notify = []string{"owner@example.org"}
	for _, tc := range []struct {
		err       error
		want, not string
	}{
		{&source.ReconsentError{AppOnly: true, Err: errors.New("invalid_client AADSTS7000222: expired secret")}, "client secret", "oauth2-login"},
		{&source.ReconsentError{Err: errors.New("invalid_grant")}, "oauth2-login", "client secret"},
	} {
		r.acc.mu.Lock()
		r.acc.status.State, r.acc.status.LastError = string(StateReconsent), tc.err.Error()
		r.acc.firstSeen = time.Now().Add(-48 * time.Hour)
		r.acc.mu.Unlock()
		_, text, err := r.acc.trouble(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, tc.want) || strings.Contains(text, tc.not) {
			t.Errorf("%v: notice\n%s\nwant %q, not %q", tc.err, text, tc.want, tc.not)
		}
	}
}
