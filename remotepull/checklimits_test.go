package remotepull

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
)

// check shows the download budget, and does not connect to an account its
// provider paused (connecting during Gmail's suspension prolongs it).
func TestCheckLimits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	acc := &config.Account{Name: "gmail", Policy: policy.Policy{DownloadBudget: config.GmailIMAPBudget}}
	var out bytes.Buffer
	if err := checkLimits(ctx, &out, acc, path); err != nil || !strings.Contains(out.String(), "download_budget: 2400000000 bytes") {
		t.Fatalf("no ledger: %v\n%s", err, out.String())
	}
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.SetPause(ctx, "gmail", ledger.Pause{State: "over quota", Until: time.Now().Add(time.Hour), Episodes: 1}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := checkLimits(ctx, &out, acc, path); !errors.Is(err, errPaused) || !strings.Contains(out.String(), "paused: over quota until") {
		t.Fatalf("paused: %v\n%s", err, out.String())
	}
	if err := l.SetPause(ctx, "gmail", ledger.Pause{State: "over quota", Until: time.Now().Add(-time.Minute), Episodes: 1}); err != nil {
		t.Fatal(err)
	}
	if err := checkLimits(ctx, &out, acc, path); err != nil {
		t.Fatalf("after the pause: %v", err)
	}
}
