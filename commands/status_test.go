package commands

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// A ledger written by an older version (or by hand) may hold the
// upstream's text raw: status prints it cleaned and bounded all the same.
func TestStatusPrintsUpstreamTextCleaned(t *testing.T) {
	hostile := "NO \x1b]0;owned\x07\x1b[2J" + strings.Repeat("A", 10000)
	sts := []accountStatus{{AccountStatus: ledger.AccountStatus{Account: "acct", State: "auth failed",
		LastError: hostile, Note: "note \x1b[31mred"}, Configured: true, Running: true}}
	var out bytes.Buffer
	if err := printStatus(&out, sts, true); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") || out.Len() > 2000 {
		t.Errorf("status output of %d bytes, control characters %v:\n%q", out.Len(), strings.ContainsAny(out.String(), "\x1b\x07"), out.String()[:min(out.Len(), 300)])
	}
}

// check's output quotes the upstream (greeting, capabilities, certificate
// and folder names): it reaches the terminal cleaned, lines kept.
func TestCheckOutputCleaned(t *testing.T) {
	var out bytes.Buffer
	w := cleanWriter{&out}
	fmt.Fprintf(w, "  folders: INBOX, \x1b[2Jevil\x07\n")
	fmt.Fprintf(w, "  logged in as alice\n")
	if strings.ContainsAny(out.String(), "\x1b\x07") || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("check output: %q", out.String())
	}
}

// The estimate goes by bytes where the sizes are known: a few large
// messages left do not make the end look near.
func TestProgressLineByBytes(t *testing.T) {
	p := ledger.Progress{Done: 90, Total: 100, BytesDone: 10e6, BytesTotal: 100e6, Started: time.Now().Add(-10 * time.Second)}
	got := progressLine(p)
	if !strings.Contains(got, "10.0 of 100.0 MB") || !strings.Contains(got, "about 1m30s left") {
		t.Errorf("progress %q", got)
	}
	p.BytesTotal, p.BytesDone = 0, 0
	if got := progressLine(p); !strings.Contains(got, "about 1s left") {
		t.Errorf("progress by messages %q", got)
	}
}

// A paused account shows when it connects again; a budget shows what is
// left of it and the days the bytes waiting upstream take.
func TestStatusShowsLimits(t *testing.T) {
	resume := time.Now().Add(59 * time.Minute)
	st := ledger.AccountStatus{Account: "gmail", State: "over quota", NextPoll: resume, ResumeAt: resume,
		Budget: 2_400_000_000, BudgetLeft: 400_000_000, PendingBytes: 12_400_000_000}
	sts := []accountStatus{{AccountStatus: st, Configured: true, Running: true, BudgetDays: budgetDays(st)}}
	var out bytes.Buffer
	if err := printStatus(&out, sts, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"paused: gmail: over quota, no connection until", "(in 5", // 58m59s or 59m0s
		"budget: gmail: 400 MB of 2.4 GB left in the last 24 hours; 12.4 GB waiting upstream, about 6 days at this budget"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}

// status --json has no null: a list is [] when empty, so that a script's
// `.connections.watched | length` works on an account that was never
// started, one that watches nothing, and a status the ledger stored with
// no lists. No account at all is [] too.
func TestStatusJSONHasNoNull(t *testing.T) {
	var stored ledger.Connections
	if err := json.Unmarshal([]byte(`{"max":1,"watched":null,"polled":null}`), &stored); err != nil {
		t.Fatal(err)
	}
	for _, sts := range [][]accountStatus{nil, {
		{AccountStatus: ledger.AccountStatus{Account: "new", State: "not started"}, Configured: true},
		{AccountStatus: ledger.AccountStatus{Account: "stored", State: "idle", Connections: stored}, Configured: true, Running: true},
		{AccountStatus: ledger.AccountStatus{Account: "watching", State: "idle",
			Connections: ledger.Connections{Max: 2, Watched: []string{"INBOX"}}}, Configured: true, Running: true},
	}} {
		var out bytes.Buffer
		if err := writeStatusJSON(&out, sts); err != nil {
			t.Fatal(err)
		}
		var got []map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil || got == nil || len(got) != len(sts) {
			t.Fatalf("status --json of %d accounts: %v\n%s", len(sts), err, out.String())
		}
		for _, st := range got {
			if path := nullIn(st, ""); path != "" {
				t.Errorf("%s: %s is null:\n%s", st["account"], path, out.String())
			}
			conns, _ := st["connections"].(map[string]any)
			for _, list := range []string{"watched", "polled"} {
				if _, ok := conns[list].([]any); !ok {
					t.Errorf("%s: connections.%s is %v, not a list", st["account"], list, conns[list])
				}
			}
		}
	}
}

// nullIn returns the path of a null in a decoded JSON value, or "".
func nullIn(v any, path string) string {
	switch v := v.(type) {
	case nil:
		return cmp.Or(path, ".")
	case map[string]any:
		for k, e := range v {
			if p := nullIn(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := nullIn(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
