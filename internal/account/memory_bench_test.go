package account

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
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
// message: the live heap, after a collection, sampled while the last
// batch of a first sync of n messages is being delivered, less the heap
// before the poll (the fake upstream's messages). Reported as
// heap-bytes/msg; the target is a pass bounded by a page, not
// the folder. Run with -benchtime=1x: each iteration is a whole import.
//
//	go test -run '^$' -bench FirstSyncHeap -benchtime=1x ./internal/account/
func BenchmarkFirstSyncHeap(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				peak := firstSyncHeap(b, n)
				b.ReportMetric(float64(peak)/float64(n), "heap-bytes/msg")
				b.ReportMetric(float64(peak)/(1<<20), "heap-MiB")
			}
		})
	}
}

// firstSyncHeap runs one first sync of n messages and returns the live
// heap the pass added, sampled at the last batch.
func firstSyncHeap(b *testing.B, n int) int64 {
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
	base := liveHeap()
	var peak int64
	up.forgetFetched = true
	up.onFetch = func(i int) {
		if i == n-batchSize/2 {
			peak = liveHeap() - base
		}
	}
	res, err := acc.pollSafely(context.Background())
	if err != nil || res.Delivered != n {
		b.Fatalf("poll: %+v, %v", res, err)
	}
	return peak
}

func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
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
