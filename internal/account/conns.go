package account

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/remote-pull/remote_pull/internal/policy"
)

// connBudget bounds an account's simultaneous upstream connections
// (max_connections): providers refuse a mailbox's connections past their
// own limit (Gmail 15, Microsoft 365 about 20), whoever opens them. A
// connection holds its place from before it is dialled until it is closed
// for good: a poll until its session has been closed or aborted, an IDLE
// watch until Watch has returned (it closes its connection first). So a
// reconnection never overlaps the connection it replaces.
type connBudget struct {
	account string
	sem     chan struct{} // one token per open connection; nil: no bound
}

func newConnBudget(account string, max int) *connBudget {
	b := &connBudget{account: account}
	if max > 0 {
		b.sem = make(chan struct{}, max)
	}
	return b
}

// take waits for a place for one connection, or returns ctx's error;
// release gives it back once the connection is closed.
func (b *connBudget) take(ctx context.Context) (release func(), err error) {
	if b.sem != nil {
		select {
		case b.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	connections.WithLabelValues(b.account).Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			connections.WithLabelValues(b.account).Dec()
			if b.sem != nil {
				<-b.sem
			}
		})
	}, nil
}

// ConnPlan is how an account shares out its connections: one for the
// polls (removals and everything else a poll does use the poll's
// session), one for each watched folder (IMAP IDLE needs a connection per
// folder).
type ConnPlan struct {
	Max int // max_connections; 0: no bound
	// Watched: the folders with an IDLE connection of their own.
	Watched []string
	// Polled: folders IDLE would watch that max_connections leaves to
	// the polls (every poll_interval).
	Polled []string
}

// PlanConnections shares out an account's connections: the poll's comes
// first; then, with IDLE (push: the upstream can), the folders IDLE
// watches get one each, in a fixed order: INBOX first (where most new mail
// arrives), then the named folders in the order of 'folders'. Those past
// max_connections are polled instead of watched. Folders only a pattern
// matches are polled in any case (their list changes from poll to poll).
func PlanConnections(pol policy.Policy, push bool) ConnPlan {
	plan := ConnPlan{Max: pol.MaxConnections}
	if !push || !pol.Idle {
		return plan
	}
	fs := policy.NewFolderSet(pol.Folders, pol.ExcludeFolders)
	var want []string
	if fs.Polls("INBOX") {
		want = append(want, "INBOX")
	}
	for _, f := range fs.Literal() {
		if !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	n := len(want)
	if plan.Max > 0 {
		n = min(n, plan.Max-1)
	}
	plan.Watched, plan.Polled = want[:n], want[n:]
	return plan
}

// String says the plan as 'check' and the status show it.
func (p ConnPlan) String() string {
	var s strings.Builder
	if n := 1 + len(p.Watched); n == 1 {
		s.WriteString("1 connection")
	} else {
		fmt.Fprintf(&s, "%d connections", n)
	}
	if p.Max > 0 {
		fmt.Fprintf(&s, " (max_connections %d)", p.Max)
	}
	s.WriteString(": poll")
	if len(p.Watched) > 0 {
		fmt.Fprintf(&s, " + %d IDLE (%s)", len(p.Watched), strings.Join(p.Watched, ", "))
	}
	if len(p.Polled) > 0 {
		fmt.Fprintf(&s, "; polled every poll_interval instead of watched: %s", strings.Join(p.Polled, ", "))
	}
	return s.String()
}
