package imapsrc

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// scriptConn is one connection to a scripted IMAP server: replies are
// written to it, and what a command sends after its first line (a
// literal, a SASL response) is read from r.
type scriptConn struct {
	net.Conn
	r *bufio.Reader
}

// serveScript is a scripted IMAP server, over TLS when tlsCfg is set: it
// greets each connection with greeting, then hands every command line to
// answer (see runScript).
func serveScript(t testlib.T, tlsCfg *tls.Config, greeting string, answer func(c *scriptConn, tag, cmd string) bool) string {
	t.Helper()
	return testlib.Serve(t, tlsCfg, func(c net.Conn) { runScript(c, greeting, answer) })
}

// runScript writes greeting (none if empty) and hands each command line
// read from c to answer, split into its tag and the rest as sent, until
// the client hangs up or answer says the session is over.
func runScript(c net.Conn, greeting string, answer func(c *scriptConn, tag, cmd string) bool) {
	if greeting != "" {
		io.WriteString(c, greeting+"\r\n")
	}
	sc := &scriptConn{Conn: c, r: bufio.NewReader(c)}
	for {
		line, err := sc.r.ReadString('\n')
		if err != nil {
			return
		}
		tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !answer(sc, tag, cmd) {
			return
		}
	}
}
