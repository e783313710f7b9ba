package account

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// BenchmarkFirstSyncHeap measures what a folder pass holds per listed
// message in a first sync of n messages of one folder (fake upstream, a
// delivery target that keeps nothing), three ways, each less the same
// figure before the poll (the fake upstream's messages):
//
//   - heap-bytes/msg, heap-MiB: the live heap, after a collection, while
//     the last batch is delivered: what the pass holds to its end.
//   - listed-bytes/msg: the live heap, after a collection, as List
//     returns: the listing as the source hands it over (with its spare
//     capacity), before the pass adds its own.
//   - peak-rss-MiB: the test process's peak RSS during the poll (VmHWM,
//     reset just before): all the garbage too, as the collector's pacing
//     lets it pile up, the fake's and SQLite's included. Noisier; 0 where
//     /proc cannot reset it. list-peak-rss-MiB is the same until List
//     returns.
//
// Run with -benchtime=1x: each iteration is a whole import.
//
//	go test -run '^$' -bench FirstSyncHeap -benchtime=1x ./internal/account/
func BenchmarkFirstSyncHeap(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				m := firstSyncHeap(b, n)
				b.ReportMetric(float64(m.lastBatch)/float64(n), "heap-bytes/msg")
				b.ReportMetric(float64(m.lastBatch)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(m.listed)/float64(n), "listed-bytes/msg")
				b.ReportMetric(float64(m.peakRSS)/(1<<20), "peak-rss-MiB")
				b.ReportMetric(float64(m.listPeakRSS)/(1<<20), "list-peak-rss-MiB")
			}
		})
	}
}

// passMemory is what a pass added to the process, as firstSyncHeap
// measures it.
type passMemory struct{ lastBatch, listed, peakRSS, listPeakRSS int64 }

// firstSyncHeap runs one first sync of n messages.
func firstSyncHeap(b *testing.B, n int) passMemory {
	b.Helper()
	up := newFake(n)
	l, err := ledger.Open(filepath.Join(b.TempDir(), "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	quiet := testlib.Quiet("bench")
	acc := New(Settings{
		Name: "acct", Upstream: up, Policy: policy.Policy{Folders: []string{"INBOX"}, Keep: true, PollInterval: time.Minute},
		Ledger: l, Log: quiet,
		Target: &delivery.Target{Options: delivery.Options{Pipeline: discardTarget{}, Rcpts: []string{"alice@example.org"},
			Hostname: "mx.example.org"}, SpoolDir: b.TempDir(), Log: quiet},
	})
	var m passMemory
	up.forgetFetched = true
	up.onFetch = func(i int) {
		if i == n-batchSize/2 {
			m.lastBatch = testlib.LiveHeap()
		}
	}
	up.onListed = func() { m.listPeakRSS, m.listed = testlib.PeakRSS(), testlib.LiveHeap() }
	debug.FreeOSMemory()
	base, baseRSS := testlib.LiveHeap(), testlib.ResetPeakRSS()
	res, err := acc.pollSafely(context.Background())
	if err != nil || res.Delivered != n {
		b.Fatalf("poll: %+v, %v", res, err)
	}
	if baseRSS > 0 {
		m.peakRSS = testlib.PeakRSS() - baseRSS
		m.listPeakRSS -= baseRSS
	} else {
		m.listPeakRSS = 0
	}
	m.lastBatch -= base
	m.listed -= base
	return m
}

// discardTarget is a maddy delivery target that keeps nothing, so that
// only the pass's own memory grows with the folder.
type discardTarget struct{}

func (discardTarget) Start(context.Context, *module.MsgMetadata, string) (module.Delivery, error) {
	return discardDelivery{}, nil
}

type discardDelivery struct{}

func (discardDelivery) AddRcpt(context.Context, string, smtp.RcptOptions) error { return nil }
func (discardDelivery) Body(_ context.Context, _ textproto.Header, b buffer.Buffer) error {
	r, err := b.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}
func (discardDelivery) Abort(context.Context) error  { return nil }
func (discardDelivery) Commit(context.Context) error { return nil }
