// Package pop3 is a POP3 client: RFC 1939 (USER/PASS, APOP, STAT, LIST,
// UIDL, RETR, DELE, RSET, NOOP, QUIT), RFC 2449 (CAPA, PIPELINING, extended
// response codes), RFC 2595 (STLS) and RFC 5034 (AUTH with any sasl.Client).
//
// It is written for a fetcher that must lose nothing and fetch nothing
// twice, so:
//
//   - Message bodies stream with bounded memory (Client.Retr,
//     Client.RetrEach) and are dot-unstuffed exactly. A body reader returns
//     io.EOF only after the terminating "." line; a connection that ends
//     early yields io.ErrUnexpectedEOF or the network error, so a partial
//     message is never mistaken for a whole one.
//   - Every operation honours its context: connection deadlines follow the
//     context's deadline (or Options.Timeout, refreshed on every read and
//     write so a slow but steady transfer survives and a stalled one does
//     not), and cancelling the context closes the connection.
//   - Deletions are committed only when the server answers +OK to QUIT
//     (Client.Quit). Any other ending, including Client.Close, leaves the
//     server to roll them back.
//   - After a network error, timeout, cancellation or an unparsable status
//     line the client is unusable: the error is sticky and the connection is
//     closed, because the command/reply stream can no longer be trusted.
//
// A Client is not safe for concurrent use. While a reader returned by
// Client.Retr is open, other commands fail; close or drain it first.
//
// A typical session:
//
//	c, err := pop3.NewClient(conn, nil)
//	caps, err := c.Capa(ctx) // errors.Is(err, pop3.ErrNoCapa): plain RFC 1939 server
//	err = c.StartTLS(ctx, &tls.Config{ServerName: host})
//	err = c.Login(ctx, user, pass)
//	uids, err := c.UIDL(ctx)
//	failed, err := c.RetrEach(ctx, nums, caps.Has("PIPELINING"), deliver)
//	err = c.Dele(ctx, delivered, caps.Has("PIPELINING"))
//	err = c.Quit(ctx) // only now are the deletions committed
package pop3
