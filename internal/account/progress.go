package account

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// A poll's progress (ledger.Progress: messages fetched of those it decided
// to fetch so far, folders being listed one after another) is kept in the
// status, so that a long first import shows as done of total, a rate and
// the time left.

var importMessages = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Namespace: "maddy", Subsystem: "remote_pull", Name: "poll_messages",
	Help: "The poll under way: messages it fetched (kind=done) of those it decided to fetch so far (kind=total); 0 between polls.",
}, []string{"account", "kind"})

func init() { prometheus.MustRegister(importMessages) }

// progressEvery bounds how often progress is saved for the status
// command: not at every message of a bulk import.
const progressEvery = 2 * time.Second

// planned adds n messages of the given bytes to fetch to the poll's
// progress.
func (a *Account) planned(n int, bytes int64) {
	a.mu.Lock()
	if a.progress.Started.IsZero() {
		a.progress.Started = time.Now()
	}
	a.progress.Total += n
	a.progress.BytesTotal += bytes
	a.mu.Unlock()
	importMessages.WithLabelValues(a.s.Name, "total").Add(float64(n))
}

// fetched counts one message of the poll done, of size bytes as listed,
// and saves the progress now and then.
func (a *Account) fetched(size int64) {
	a.mu.Lock()
	a.progress.Done++
	a.progress.BytesDone += size
	due := time.Since(a.progressSaved) >= progressEvery
	if due {
		a.progressSaved = time.Now()
	}
	a.mu.Unlock()
	importMessages.WithLabelValues(a.s.Name, "done").Inc()
	if due {
		a.publish()
	}
}

// unlisted records how much of a mailbox listed a page at a time lies
// past the page under way, so that the progress of a file import is by
// the whole file's bytes.
func (a *Account) unlisted(bytes int64) {
	a.mu.Lock()
	a.progressUnlisted = bytes
	a.mu.Unlock()
}

// progressDone clears the progress at the end of a poll that leaves
// nothing for the next one; one that does (More: a page of a file,
// max_messages_per_poll) goes on with the same progress.
func (a *Account) progressDone() {
	a.mu.Lock()
	a.progress = ledger.Progress{}
	a.progressUnlisted = 0
	a.mu.Unlock()
	importMessages.WithLabelValues(a.s.Name, "done").Set(0)
	importMessages.WithLabelValues(a.s.Name, "total").Set(0)
}
