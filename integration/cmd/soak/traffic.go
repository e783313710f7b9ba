package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// pickSize: mostly a few KB (log-uniform, 300 B to 16 KB); a -large
// fraction around 1.5 MiB, a fifth of those right at maddy's 1 MiB
// in-memory spool limit.
func pickSize(r *rand.Rand) int {
	if r.Float64() < *largeFrac {
		if r.IntN(5) == 0 {
			return 1<<20 + r.IntN(601) - 300
		}
		return 1<<20 + 1<<18 + r.IntN(1<<19) // 1.25–1.75 MiB
	}
	return int(math.Exp(math.Log(300) + r.Float64()*(math.Log(16<<10)-math.Log(300))))
}

// appendLoop APPENDs messages to the account's upstream INBOX, straight to
// Dovecot (not through the fault proxy), at about -rate a second, until
// ctx ends.
func (a *account) appendLoop(ctx context.Context, k *soak, r *rand.Rand) {
	var c *imapclient.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	period := time.Duration(float64(time.Second) / *rate)
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(between(r, period/2, period*3/2)):
		}
		if c == nil {
			var err error
			if c, err = k.up.DialIMAP(a.upUser, a.upPass); err != nil {
				k.s.Fatalf("soak: %s: connecting the appender to Dovecot: %v", a.name, err)
			}
		}
		n := a.numBase + i
		raw := harness.Message(n, pickSize(r))
		m := &sent{n: n, size: len(raw), subject: fmt.Sprintf("Test message %d", n), sum: sha256.Sum256(raw), at: time.Since(k.start)}
		a.mu.Lock()
		a.sent = append(a.sent, m)
		a.bySubject[m.subject] = m
		a.mu.Unlock()
		data, err := harness.AppendIMAP(c, "INBOX", raw)
		if err != nil {
			// Local Dovecot, no proxy: this should not happen. The
			// message may or may not be upstream.
			a.mu.Lock()
			m.uncertain = true
			a.mu.Unlock()
			k.ev.logf(a.name, "APPEND of %q failed (%v): uncertain, reconnecting", m.subject, err)
			fmt.Printf("%s %s: APPEND failed: %v\n", k.since(), a.name, err)
			c.Close()
			c = nil
			continue
		}
		a.mu.Lock()
		m.uid, m.uidv = uint32(data.UID), data.UIDValidity
		a.mu.Unlock()
		k.ev.logf(a.name, "appended %q, %d bytes, upstream UID %d", m.subject, m.size, m.uid)
	}
}

// item is one message as scan read it.
type item struct {
	uid     uint32
	flags   []imap.Flag
	subject string // ENVELOPE's, when the body is not fetched
	raw     []byte // BODY.PEEK[], when fetched
}

// scan EXAMINEs folder and hands every message with UID >= since to fn, in
// the server's order, one at a time (bodies are never all in memory):
// UID, flags and either the ENVELOPE's Subject or the exact bytes.
func scan(c *imapclient.Client, folder string, since uint32, body bool, fn func(item)) error {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return err
	}
	since = max(since, 1)
	if sel.NumMessages == 0 || (sel.UIDNext != 0 && uint32(sel.UIDNext) <= since) {
		return nil
	}
	opts := &imap.FetchOptions{UID: true, Flags: true}
	if body {
		opts.BodySection = []*imap.FetchItemBodySection{{Peek: true}}
	} else {
		opts.Envelope = true
	}
	cmd := c.Fetch(imap.UIDSet{{Start: imap.UID(since), Stop: 0}}, opts)
	for md := cmd.Next(); md != nil; md = cmd.Next() {
		var it item
		for x := md.Next(); x != nil; x = md.Next() {
			switch x := x.(type) {
			case imapclient.FetchItemDataUID:
				it.uid = uint32(x.UID)
			case imapclient.FetchItemDataFlags:
				it.flags = x.Flags
			case imapclient.FetchItemDataEnvelope:
				if x.Envelope != nil {
					it.subject = x.Envelope.Subject
				}
			case imapclient.FetchItemDataBodySection:
				if x.Literal == nil {
					continue
				}
				it.raw = make([]byte, x.Literal.Size())
				if _, err := io.ReadFull(x.Literal, it.raw); err != nil {
					cmd.Close()
					return fmt.Errorf("reading UID %d: %w", it.uid, err)
				}
			}
		}
		if it.uid < since { // "since:*" includes the last message
			continue
		}
		fn(it)
	}
	return cmd.Close()
}

// refresh reads what maddy received for the account since the last call
// (ENVELOPE only): maddy's UIDs only grow.
func (a *account) refresh(k *soak) error {
	c, err := k.maddy.DialIMAP(a.local, localPass)
	if err != nil {
		return err
	}
	defer c.Close()
	a.mu.Lock()
	since := a.lastUID + 1
	a.mu.Unlock()
	err = scan(c, "INBOX", since, false, func(it item) {
		a.mu.Lock()
		a.copies[it.subject]++
		a.lastUID = max(a.lastUID, it.uid)
		a.mu.Unlock()
	})
	_ = c.Logout().Wait()
	return err
}

// progress: messages appended, appended ones maddy does not show yet
// (as of the last refresh; uncertain appends left out), and messages in
// maddy.
func (a *account) progress() (appended, missing, local int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.sent {
		if a.copies[m.subject] == 0 && !m.uncertain {
			missing++
		}
	}
	for _, n := range a.copies {
		local += n
	}
	return len(a.sent), missing, local
}

// upstreamCount is how many messages the account's upstream INBOX holds.
func (a *account) upstreamCount(k *soak) (int, error) {
	c, err := k.up.DialIMAP(a.upUser, a.upPass)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, err
	}
	_ = c.Logout().Wait()
	if st.NumMessages == nil {
		return 0, fmt.Errorf("STATUS without MESSAGES")
	}
	return int(*st.NumMessages), nil
}
