package account

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/pop3src"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// pop3Drop is a scripted POP3 server (plain TCP, USER/PASS) over a
// maildrop the test edits between sessions. DELE takes effect at QUIT, as
// RFC 1939 says; UIDLs are whatever the test gives, duplicates and reuse
// included.
type pop3Drop struct {
	mu    sync.Mutex
	msgs  []pop3Msg
	addr  string
	retrs []string // UIDLs retrieved, in order
	deles []string // UIDLs deleted at QUIT, in order

	noUIDL, noTOP bool // the server lacks these optional commands
	failQuit      bool // hang up at QUIT without applying the DELEs
	// grow: a message served once gains an X-UIDL field for later
	// sessions, as GNU Mailutils pop3d does.
	grow bool
}

type pop3Msg struct {
	uidl string
	raw  string // CRLF lines, no dot-stuffing needed in tests
}

func newPOP3Drop(t *testing.T, msgs ...pop3Msg) *pop3Drop {
	t.Helper()
	d := &pop3Drop{msgs: msgs}
	d.addr = testlib.Serve(t, nil, d.serve)
	return d
}

func (d *pop3Drop) set(msgs ...pop3Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.msgs = msgs
}

func (d *pop3Drop) uidls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, m := range d.msgs {
		out = append(out, m.uidl)
	}
	return out
}

func (d *pop3Drop) serve(c net.Conn) {
	d.mu.Lock()
	snapshot := append([]pop3Msg(nil), d.msgs...)
	d.mu.Unlock()
	deleted := map[int]bool{}
	fmt.Fprint(c, "+OK fake POP3\r\n")
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return // no QUIT: deletions roll back
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(cmd) {
		case "CAPA":
			fmt.Fprint(c, "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n")
		case "USER", "PASS":
			fmt.Fprint(c, "+OK\r\n")
		case "UIDL", "TOP":
			d.mu.Lock()
			missing := (cmd == "UIDL" && d.noUIDL) || (strings.ToUpper(cmd) == "TOP" && d.noTOP)
			d.mu.Unlock()
			if missing {
				fmt.Fprint(c, "-ERR unknown command\r\n")
				continue
			}
			if strings.ToUpper(cmd) == "TOP" {
				var n int
				fmt.Sscan(arg, &n)
				if n < 1 || n > len(snapshot) || deleted[n] {
					fmt.Fprint(c, "-ERR no such message\r\n")
					continue
				}
				header, _, _ := strings.Cut(snapshot[n-1].raw, "\r\n\r\n")
				fmt.Fprintf(c, "+OK\r\n%s\r\n\r\n.\r\n", header)
				continue
			}
			fallthrough
		case "LIST":
			fmt.Fprint(c, "+OK\r\n")
			for i, m := range snapshot {
				if deleted[i+1] {
					continue
				}
				if strings.ToUpper(cmd) == "LIST" {
					fmt.Fprintf(c, "%d %d\r\n", i+1, len(m.raw))
				} else {
					fmt.Fprintf(c, "%d %s\r\n", i+1, m.uidl)
				}
			}
			fmt.Fprint(c, ".\r\n")
		case "RETR", "DELE":
			var n int
			fmt.Sscan(arg, &n)
			if n < 1 || n > len(snapshot) || deleted[n] {
				fmt.Fprint(c, "-ERR no such message\r\n")
				continue
			}
			if strings.ToUpper(cmd) == "DELE" {
				deleted[n] = true
				fmt.Fprint(c, "+OK\r\n")
				continue
			}
			d.mu.Lock()
			d.retrs = append(d.retrs, snapshot[n-1].uidl)
			if d.grow {
				for i := range d.msgs {
					m := &d.msgs[i]
					if m.uidl == snapshot[n-1].uidl && !strings.Contains(m.raw, "X-UIDL:") {
						hdr, body, _ := strings.Cut(m.raw, "\r\n\r\n")
						m.raw = hdr + "\r\nX-UIDL: " + m.uidl + "\r\n\r\n" + body
					}
				}
			}
			d.mu.Unlock()
			fmt.Fprintf(c, "+OK\r\n%s.\r\n", snapshot[n-1].raw)
		case "QUIT":
			d.mu.Lock()
			if d.failQuit {
				d.failQuit = false
				d.mu.Unlock()
				return // hang up: the server rolls the DELEs back
			}
			var keep []pop3Msg
			for i, m := range snapshot {
				if deleted[i+1] {
					d.deles = append(d.deles, m.uidl)
					continue
				}
				keep = append(keep, m)
			}
			// Messages added by the test meanwhile stay too.
			keep = append(keep, d.msgs[min(len(snapshot), len(d.msgs)):]...)
			d.msgs = keep
			d.mu.Unlock()
			fmt.Fprint(c, "+OK bye\r\n")
			return
		default:
			fmt.Fprint(c, "-ERR unknown\r\n")
		}
	}
}

func popMsg(uidl, subject string) pop3Msg {
	return pop3Msg{uidl: uidl, raw: "Subject: " + subject + "\r\nMessage-Id: <" + subject + "@x>\r\n\r\nbody of " + subject + "\r\n"}
}

func newPOP3Rig(t *testing.T, d *pop3Drop, keep bool) *rig {
	t.Helper()
	host, port, _ := net.SplitHostPort(d.addr)
	up := pop3src.New(pop3src.Config{Keep: keep, Endpoint: source.Endpoint{Host: host, Port: port, Plaintext: true,
		Username: "u", Password: func() (string, error) { return "p", nil }, Timeout: 5 * time.Second}})
	r := newRig(t, newFake(0), keep)
	r.up.validity = 0 // POP3 has none: r.state looks up key validity 0
	r.acc.s.Upstream = up
	return r
}

// Two messages listed under one UIDL are each delivered once, and a
// ledger entry never gets the other one DELEted unseen.
func TestPOP3DuplicateUIDLs(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			d := newPOP3Drop(t, popMsg("dup", "first"), popMsg("dup", "second"), popMsg("u3", "third"))
			r := newPOP3Rig(t, d, keep)
			for i := 0; i < 3; i++ {
				r.mustPoll(t)
			}
			r.noDuplicates(t)
			for _, s := range []string{"first", "second", "third"} {
				if _, ok := r.p.committed[s]; !ok {
					t.Errorf("%q was not delivered", s)
				}
			}
			if keep && len(d.uidls()) != 3 {
				t.Errorf("keep yes: upstream holds %v", d.uidls())
			}
		})
	}
}

// Two messages share a UIDL; one of them was delivered (and is recorded)
// by an earlier poll whose QUIT failed. The next poll must not DELE either
// on the strength of that entry.
func TestPOP3DuplicateUIDLNeverDeletedByLedger(t *testing.T) {
	d := newPOP3Drop(t, popMsg("dup", "first"))
	r := newPOP3Rig(t, d, false)
	// Deliver "first" but lose the QUIT: the entry stays "delivered".
	key := r.keyPOP3()
	r.mustPoll(t)
	if r.state(t, "dup") != "removed" {
		t.Fatalf("after a good QUIT the entry is %q, want removed", r.state(t, "dup"))
	}
	// Now pretend the QUIT had failed: the ledger says delivered while
	// the server still holds it, and a second message arrives under the
	// same UIDL with the same size.
	entries, _ := r.l.Entries(context.Background(), key)
	if len(entries) != 1 || entries[0].Fingerprint == "" {
		t.Fatalf("entries %+v", entries)
	}
	e := entries[0]
	e.State = ledger.Delivered
	r.l.Record(context.Background(), key, e)
	d.set(popMsg("dup", "first"), popMsg("dup", "other"))
	d.mu.Lock()
	d.deles = nil
	d.mu.Unlock()
	r.mustPoll(t)
	if _, ok := r.p.committed["other"]; !ok {
		t.Errorf("the second message under the shared UIDL was not delivered")
	}
	d.mu.Lock()
	deles := append([]string(nil), d.deles...)
	d.mu.Unlock()
	// "other" is delivered and DELEted in the same session (by its
	// session number); "first", known only through the shared UIDL, stays.
	if len(deles) != 1 {
		t.Fatalf("DELEs at QUIT: %v, want only the message delivered in that session", deles)
	}
	if got := d.uidls(); len(got) != 1 {
		t.Fatalf("upstream holds %v", got)
	}
}

// A UIDL reused for a new message after the old one was deleted at QUIT:
// the new message is delivered, not DELEted unseen.
func TestPOP3UIDLReuse(t *testing.T) {
	for _, sameSize := range []bool{true, false} {
		t.Run(fmt.Sprintf("same size %v", sameSize), func(t *testing.T) {
			d := newPOP3Drop(t, popMsg("u1", "old"))
			r := newPOP3Rig(t, d, false)
			r.mustPoll(t)
			if len(d.uidls()) != 0 {
				t.Fatalf("not emptied: %v", d.uidls())
			}
			next := popMsg("u1", "new")
			if !sameSize {
				next = popMsg("u1", "newer-and-longer")
			}
			d.set(next)
			r.mustPoll(t)
			subj := strings.TrimPrefix(strings.SplitN(next.raw, "\r\n", 2)[0], "Subject: ")
			if _, ok := r.p.committed[subj]; !ok {
				t.Fatalf("the new message under a reused UIDL was not delivered (DELEd unseen?); committed: %v", keys(r.p.committed))
			}
			r.noDuplicates(t)
		})
	}
}

// A reused UIDL whose old entry is still "delivered" (the QUIT's answer
// was lost): the size decides. A different size is a new message,
// fetched; the same UIDL and size is taken for the old one.
func TestPOP3InterruptedRemovalChecksSize(t *testing.T) {
	d := newPOP3Drop(t, popMsg("u1", "new-message-longer"))
	r := newPOP3Rig(t, d, false)
	r.l.Record(context.Background(), r.keyPOP3(), ledgerEntry("u1", "delivered", 20))
	r.mustPoll(t)
	if _, ok := r.p.committed["new-message-longer"]; !ok {
		t.Fatalf("a message whose size differs from the recorded one was DELEted unseen")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (r *rig) keyPOP3() ledger.MailboxKey {
	return ledger.MailboxKey{Account: "acct", Mailbox: "INBOX"}
}

func ledgerEntry(uid, state string, size int64) ledger.Entry {
	return ledger.Entry{UID: uid, State: ledger.State(state), Size: size}
}

// A server without UIDL: messages are known by a fingerprint of their
// header (TOP). A refused message is not fetched again at every poll, and a
// delivered message whose QUIT failed is neither delivered again nor
// deleted on the strength of a fingerprint.
func TestPOP3WithoutUIDL(t *testing.T) {
	d := newPOP3Drop(t, popMsg("", "refuse-me"), popMsg("", "fine"))
	d.noUIDL = true
	r := newPOP3Rig(t, d, false)
	r.p.refuse = "refuse-me"
	d.failQuit = true
	r.mustPoll(t) // "fine" delivered and DELEd, but the QUIT is lost
	if len(d.uidls()) != 2 {
		t.Fatalf("upstream %v after a failed QUIT", d.uidls())
	}
	d.mu.Lock()
	d.retrs = nil
	d.mu.Unlock()
	for i := 0; i < 2; i++ {
		r.mustPoll(t)
	}
	d.mu.Lock()
	retrs := append([]string(nil), d.retrs...)
	d.mu.Unlock()
	if len(retrs) != 0 {
		t.Fatalf("fetched again: %d RETRs (the refused message is retried in a loop, or the delivered one duplicated)", len(retrs))
	}
	r.noDuplicates(t)
	if len(d.uidls()) != 2 {
		t.Fatalf("upstream %v: a message known only by a fingerprint was deleted", d.uidls())
	}
	// New mail still arrives, and is deleted in its own session.
	d.set(popMsg("", "refuse-me"), popMsg("", "fine"), popMsg("", "later"))
	r.mustPoll(t)
	if _, ok := r.p.committed["later"]; !ok || len(d.uidls()) != 2 {
		t.Fatalf("new mail: committed %v, upstream %d", keys(r.p.committed), len(d.uidls()))
	}
}

// Without UIDL or TOP, messages are known for one session only: the
// account still empties the maildrop (keep no).
func TestPOP3WithoutUIDLOrTOP(t *testing.T) {
	d := newPOP3Drop(t, popMsg("", "a"), popMsg("", "b"))
	d.noUIDL, d.noTOP = true, true
	r := newPOP3Rig(t, d, false)
	r.mustPoll(t)
	if len(r.p.committed) != 2 || len(d.uidls()) != 0 {
		t.Fatalf("committed %v, upstream %d", keys(r.p.committed), len(d.uidls()))
	}
}

// A message's identity follows it when another message comes to share its
// UIDL, and when it stops sharing it: no poll delivers it again.
func TestPOP3SharedUIDLComesAndGoes(t *testing.T) {
	d := newPOP3Drop(t, popMsg("u1", "first"))
	r := newPOP3Rig(t, d, true)
	r.mustPoll(t)
	d.set(popMsg("u1", "first"), popMsg("u1", "second")) // a buggy server reuses u1
	r.mustPoll(t)
	d.set(popMsg("u1", "second")) // another client deleted "first"
	r.mustPoll(t)
	d.set(popMsg("u1", "second"), popMsg("u1", "third"))
	r.mustPoll(t)
	r.mustPoll(t)
	r.noDuplicates(t)
	for _, s := range []string{"first", "second", "third"} {
		if _, ok := r.p.committed[s]; !ok {
			t.Errorf("%q was not delivered", s)
		}
	}
}

// A server that changes a message after serving it (Mailutils pop3d adds
// X-UIDL, so the same UIDL is listed larger next time): the message is
// recognised by its header, not delivered again, and with keep no still
// removed after a lost QUIT.
func TestPOP3MessageGrownUpstream(t *testing.T) {
	t.Run("keep yes", func(t *testing.T) {
		d := newPOP3Drop(t, popMsg("u1", "one"), popMsg("u2", "two"))
		d.grow = true
		r := newPOP3Rig(t, d, true)
		for i := 0; i < 3; i++ {
			r.mustPoll(t)
		}
		r.noDuplicates(t)
		if len(r.p.committed) != 2 || len(d.uidls()) != 2 {
			t.Fatalf("committed %v, upstream %v", keys(r.p.committed), d.uidls())
		}
	})
	t.Run("keep no, QUIT lost", func(t *testing.T) {
		d := newPOP3Drop(t, popMsg("u1", "one"))
		d.grow, d.failQuit = true, true
		r := newPOP3Rig(t, d, false)
		r.mustPoll(t)
		r.mustPoll(t)
		r.noDuplicates(t)
		if len(r.p.committed) != 1 || len(d.uidls()) != 0 {
			t.Fatalf("committed %v, upstream %v", keys(r.p.committed), d.uidls())
		}
	})
	// The same UIDL at another size with another header is a new message.
	t.Run("reused", func(t *testing.T) {
		d := newPOP3Drop(t, popMsg("u1", "one"))
		d.grow = true
		r := newPOP3Rig(t, d, true)
		r.mustPoll(t)
		d.set(popMsg("u1", "another-message"))
		r.mustPoll(t)
		if _, ok := r.p.committed["another-message"]; !ok {
			t.Fatalf("a new message under the reused UIDL was not delivered: %v", keys(r.p.committed))
		}
	})
}
