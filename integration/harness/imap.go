package harness

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// MailboxMessage is one message as an IMAP server returned it. (The name
// Message is taken by the corpus generator.)
type MailboxMessage struct {
	UID   uint32
	Flags []string // as the server spells them, e.g. `\Seen`
	Raw   []byte   // BODY.PEEK[]: the exact bytes
}

// HasFlag reports whether the message carries flag (case-insensitive, as
// IMAP flags are).
func (m MailboxMessage) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if bytes.EqualFold([]byte(f), []byte(flag)) {
			return true
		}
	}
	return false
}

// IMAPClient returns a client logged in to Dovecot as user, over IMAPS
// trusting d.CA (over plain IMAP when TLS is off). It is logged out in
// t.Cleanup.
func (d *Dovecot) IMAPClient(t T, user, password string) *imapclient.Client {
	t.Helper()
	c, err := d.DialIMAP(user, password)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			_ = c.Logout().Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		c.Close()
	})
	return c
}

// DialIMAP is IMAPClient for programs that handle the error themselves:
// the caller logs out and closes.
func (d *Dovecot) DialIMAP(user, password string) (*imapclient.Client, error) {
	var (
		c   *imapclient.Client
		err error
	)
	opts := &imapclient.Options{TLSConfig: d.CA.ClientConfig()}
	if d.IMAPSAddr != "" {
		c, err = imapclient.DialTLS(d.IMAPSAddr, opts)
	} else {
		c, err = imapclient.DialInsecure(d.IMAPAddr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("IMAP dial: %w", err)
	}
	return login(c, user, password)
}

// login logs c in, or closes it.
func login(c *imapclient.Client, user, password string) (*imapclient.Client, error) {
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("IMAP login as %q: %w", user, err)
	}
	return c, nil
}

// ListMessages EXAMINEs folder (read-only, so \Seen and \Recent are left
// alone) and returns every message, sorted by UID, with its flags and exact
// bytes (BODY.PEEK[]). The folder stays selected on c.
func ListMessages(t T, c *imapclient.Client, folder string) []MailboxMessage {
	t.Helper()
	msgs, err := listMessages(c, folder)
	if err != nil {
		t.Fatalf("harness: listing %q: %v", folder, err)
	}
	return msgs
}

func listMessages(c *imapclient.Client, folder string) ([]MailboxMessage, error) {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID:         true,
		Flags:       true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	var msgs []MailboxMessage
	for {
		md := cmd.Next()
		if md == nil {
			break
		}
		var m MailboxMessage
		for item := md.Next(); item != nil; item = md.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				m.UID = uint32(item.UID)
			case imapclient.FetchItemDataFlags:
				for _, f := range item.Flags {
					m.Flags = append(m.Flags, string(f))
				}
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					continue
				}
				// One allocation of the announced size: big messages
				// are held once.
				m.Raw = make([]byte, item.Literal.Size())
				if _, err := io.ReadFull(item.Literal, m.Raw); err != nil {
					cmd.Close()
					return nil, fmt.Errorf("reading message %d: %w", md.SeqNum, err)
				}
			}
		}
		msgs = append(msgs, m)
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	return msgs, nil
}

// AppendIMAP APPENDs msg to folder with flags over c, as a mail client
// would.
func AppendIMAP(c *imapclient.Client, folder string, msg []byte, flags ...imap.Flag) (*imap.AppendData, error) {
	cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return nil, err
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return cmd.Wait()
}

// MustAppendIMAP is AppendIMAP that fails the test on an error.
func MustAppendIMAP(t T, c *imapclient.Client, folder string, msg []byte, flags ...imap.Flag) {
	t.Helper()
	if _, err := AppendIMAP(c, folder, msg, flags...); err != nil {
		t.Fatalf("harness: APPEND to %s: %v", folder, err)
	}
}
