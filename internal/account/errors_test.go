package account

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/foxcpp/maddy/framework/exterrors"

	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// One classification feeds the back-off, the state, and the metric; a
// connection lost in the middle of a fetch or a removal is "connection",
// not "delivery".
func TestClassify(t *testing.T) {
	folder := &source.FolderError{Err: errors.New(`SELECT "Gone": NO`)}
	cases := []struct {
		name    string
		err     error
		class   errClass
		state   State
		metric  string
		backOff bool
	}{
		{"ok", nil, classOK, StateOK, "ok", false},
		{"auth", fmt.Errorf("connect: %w", &source.AuthError{Err: errors.New("NO")}), classAuth, StateAuthFailed, "auth", true},
		{"reconsent", &source.ReconsentError{Err: errors.New("invalid_grant")}, classReconsent, StateReconsent, "auth", true},
		{"busy", &source.BusyError{Err: errors.New("[IN-USE]")}, classBusy, StateBusy, "busy", true},
		{"one folder", fmt.Errorf("folder %q: %w", "Gone", folder), classFolder, StateFolderFailing, "folder", false},
		{"two folders", errors.Join(fmt.Errorf("a: %w", folder), fmt.Errorf("b: %w", folder)), classFolder, StateFolderFailing, "folder", false},
		{"folder and cut", errors.Join(folder, io.ErrUnexpectedEOF), classConnection, StateBackingOff, "connection", true},
		{"cut mid-fetch", fmt.Errorf("folder %q: %w", "INBOX", fmt.Errorf("reading from upstream: %w", source.ErrTruncated)), classConnection, StateBackingOff, "connection", true},
		{"cut mid-removal", errors.New("UID EXPUNGE: connection reset by peer"), classConnection, StateBackingOff, "connection", true},
		{"ledger", local(errors.New("ledger: disk I/O error")), classLocal, StateBackingOff, "delivery", true},
		{"delivery", &deliveryError{&exterrors.SMTPError{Code: 451}}, classLocal, StateBackingOff, "delivery", true},
		{"panic", fmt.Errorf("%w: boom", errInternal), classInternal, StateBackingOff, "internal", true},
		{"deadline", context.DeadlineExceeded, classConnection, StateBackingOff, "connection", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := classify(c.err)
			if got != c.class || got.state() != c.state || got.metric() != c.metric || got.backsOff() != c.backOff {
				t.Fatalf("classify = %v (state %q, metric %q, backs off %v), want %v (%q, %q, %v)",
					got, got.state(), got.metric(), got.backsOff(), c.class, c.state, c.metric, c.backOff)
			}
		})
	}
}

// The back-off doubles from its floor, which is longer after a refused
// login, and stays within its cap with jitter.
func TestBackoff(t *testing.T) {
	a := &Account{s: Settings{Policy: policy.Policy{PollInterval: 5 * time.Minute}}}
	for _, c := range []struct {
		class    errClass
		failures int
		lo, hi   time.Duration
	}{
		{classConnection, 1, 4 * time.Second, 6 * time.Second},
		{classConnection, 3, 16 * time.Second, 24 * time.Second},
		{classAuth, 1, 48 * time.Second, 72 * time.Second},
		{classBusy, 2, 96 * time.Second, 144 * time.Second},
		{classConnection, 40, 48 * time.Minute, 72 * time.Minute},
		{classReconsent, 1, time.Hour, time.Hour},
	} {
		if d := a.backoff(c.class, c.failures); d < c.lo || d > c.hi {
			t.Errorf("backoff(%v, %d) = %v, want %v..%v", c.class, c.failures, d, c.lo, c.hi)
		}
	}
}
