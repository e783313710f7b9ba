package imapsrc

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// dripFetch sends a literal of size bytes in chunks every interval, then
// stalls for stall (0: not at all) before the rest.
func dripFetch(size, chunk int, every, stallAfterHalf time.Duration) func(net.Conn, string) bool {
	return func(c net.Conn, tag string) bool {
		body := ("Subject: slow\r\n\r\n" + strings.Repeat("y", size))[:size]
		fmt.Fprintf(c, "* 1 FETCH (UID 5 BODY[] {%d}\r\n", size)
		for i := 0; i < size; i += chunk {
			if stallAfterHalf > 0 && i >= size/2 && i-chunk < size/2 {
				time.Sleep(stallAfterHalf)
			}
			c.Write([]byte(body[i:min(i+chunk, size)]))
			time.Sleep(every)
		}
		fmt.Fprintf(c, ")\r\n%s OK done\r\n", tag)
		return true
	}
}

func fetchOnce(t *testing.T, addr string, deliver func() error) (int64, error) {
	t.Helper()
	_, mb := openInbox(t, testUpstream(addr, nil, func(c *Config) { c.Timeout = 300 * time.Millisecond }))
	n, _, _, err := fetchCount(mb, []string{"5"}, deliver)
	return n, err
}

// The timeout measures stalls, not work: a download that takes many times
// the timeout completes while bytes keep coming, and a delivery slower than
// the timeout does not count against the server.
func TestTimeoutMeasuresStalls(t *testing.T) {
	// 60 kB in 1 kB chunks every 20 ms: about 1.2 s, four times the timeout.
	addr, _ := fetchServer(t, false, dripFetch(60_000, 1000, 20*time.Millisecond, 0))
	start := time.Now()
	n, err := fetchOnce(t, addr, func() error { time.Sleep(time.Second); return nil })
	if err != nil || n != 60_000 {
		t.Fatalf("slow download: %d bytes, %v", n, err)
	}
	if time.Since(start) < 1200*time.Millisecond {
		t.Fatalf("took %v: the drip was not slow enough to exercise the timeout", time.Since(start))
	}
}

// A stall longer than the timeout, in the middle of a literal, ends the
// fetch with an error: nothing is delivered.
func TestStallEndsTheFetch(t *testing.T) {
	addr, _ := fetchServer(t, false, dripFetch(20_000, 1000, time.Millisecond, 2*time.Second))
	delivered := false
	_, err := fetchOnce(t, addr, func() error { delivered = true; return nil })
	if err == nil || delivered || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("err %v, delivered %v: want a stall error and no delivery", err, delivered)
	}
}
