package imapsrc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// Close returns once the server has hung up after its LOGOUT reply: the
// server has then ended the session, so that the connection replacing
// this one is not counted with it against the provider's limit.
func TestCloseWaitsForTheServerToHangUp(t *testing.T) {
	hungUp := make(chan struct{})
	addr := testlib.Serve(t, nil, func(c net.Conn) {
		fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			if strings.HasPrefix(strings.ToUpper(rest), "LOGOUT") {
				fmt.Fprintf(c, "* BYE\r\n%s OK bye\r\n", tag)
				time.Sleep(200 * time.Millisecond) // the server's session ends a moment later
				close(hungUp)
				return // Serve closes the connection
			}
			fmt.Fprintf(c, "%s OK done\r\n", tag)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := testUpstream(addr, nil).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hungUp:
	default:
		t.Fatal("Close returned before the server hung up")
	}
}
