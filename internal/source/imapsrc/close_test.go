package imapsrc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Close returns once the server has hung up after its LOGOUT reply: the
// server has then ended the session, so that the connection replacing
// this one is not counted with it against the provider's limit.
func TestCloseWaitsForTheServerToHangUp(t *testing.T) {
	hungUp := make(chan struct{})
	addr := serveScript(t, nil, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake", func(c *scriptConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "LOGOUT") {
			fmt.Fprintf(c, "* BYE\r\n%s OK bye\r\n", tag)
			time.Sleep(200 * time.Millisecond) // the server's session ends a moment later
			close(hungUp)
			return false // Serve closes the connection
		}
		fmt.Fprintf(c, "%s OK done\r\n", tag)
		return true
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
