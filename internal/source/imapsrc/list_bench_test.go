package imapsrc

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// BenchmarkListHeap measures what List costs for a folder of n messages,
// listed from a scripted server whose FETCH responses are written from
// one buffer made beforehand (so that the server adds nothing while the
// client lists). Flags as a mailbox has them: 60% \Seen, 20% none, 20%
// \Seen \Answered, every 50th a keyword.
//
//   - listed-bytes/msg: the live heap as List returns, less before: the
//     listing as the account's folder pass receives and holds it.
//   - alloc-bytes/msg: all that List allocated (go-imap's parsing
//     included), most of it garbage at once.
//   - peak-rss-MiB: the process's peak RSS during List less before
//     (VmHWM, reset just before; 0 where /proc cannot reset it): the
//     listing and the garbage the collector let pile up meanwhile.
//
// Run with -benchtime=1x:
//
//	go test -run '^$' -bench ListHeap -benchtime=1x ./internal/source/imapsrc/
func BenchmarkListHeap(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			addr := listingServer(b, n, n+1, benchListing(n))
			for range b.N {
				up := testUpstream(addr, nil)
				ctx := context.Background()
				s, err := up.Connect(ctx)
				if err != nil {
					b.Fatal(err)
				}
				mb, err := s.Open(ctx, "INBOX")
				if err != nil {
					b.Fatal(err)
				}
				debug.FreeOSMemory()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				base, baseRSS := testlib.LiveHeap(), testlib.ResetPeakRSS()
				msgs, err := mb.List(ctx, 1)
				peak := testlib.PeakRSS()
				runtime.ReadMemStats(&after)
				listed := testlib.LiveHeap() - base
				if err != nil || len(msgs) != n {
					b.Fatalf("List: %d messages, %v", len(msgs), err)
				}
				runtime.KeepAlive(msgs)
				b.ReportMetric(float64(listed)/float64(n), "listed-bytes/msg")
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "alloc-bytes/msg")
				if baseRSS > 0 {
					b.ReportMetric(float64(peak-baseRSS)/(1<<20), "peak-rss-MiB")
				}
				s.Abort()
			}
		})
	}
}

// benchListing is the FETCH responses of a folder of n messages.
func benchListing(n int) []byte {
	var listing bytes.Buffer
	for i := 1; i <= n; i++ {
		flags := `\Seen`
		switch {
		case i%50 == 0:
			flags = `\Seen $Forwarded`
		case i%10 >= 8:
			flags = `\Seen \Answered`
		case i%10 >= 6:
			flags = ``
		}
		fmt.Fprintf(&listing, "* %d FETCH (UID %d RFC822.SIZE %d FLAGS (%s) INTERNALDATE \"02-Jan-2024 03:04:05 +0000\")\r\n",
			i, i, 2000+i%30000, flags)
	}
	return listing.Bytes()
}

// listingServer is a server with one folder, which it says holds exists
// messages up to UIDNEXT uidNext, and lists with the FETCH responses in
// listing, written as they are.
func listingServer(t testlib.T, exists, uidNext int, listing []byte) string {
	return serveScript(t, nil, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS] bench", func(c *scriptConn, tag, rest string) bool {
		switch cmd := strings.ToUpper(rest); {
		case strings.HasPrefix(cmd, "AUTHENTICATE"), strings.HasPrefix(cmd, "LOGIN"):
			fmt.Fprintf(c, "%s OK logged in\r\n", tag)
		case strings.HasPrefix(cmd, "SELECT"), strings.HasPrefix(cmd, "EXAMINE"):
			fmt.Fprintf(c, "* %d EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT %d] x\r\n%s OK [READ-WRITE] done\r\n", exists, uidNext, tag)
		case strings.HasPrefix(cmd, "UID FETCH"):
			c.Write(listing)
			fmt.Fprintf(c, "%s OK done\r\n", tag)
		case strings.HasPrefix(cmd, "LOGOUT"):
			fmt.Fprintf(c, "* BYE\r\n%s OK bye\r\n", tag)
			return false
		default:
			fmt.Fprintf(c, "%s BAD unknown\r\n", tag)
		}
		return true
	})
}
