package account

// A property test of the account loop (issue 11): nothing lost, nothing
// twice, under every fault.
//
// Each run builds an in-memory upstream, IMAP-like or POP3-like, and a fake
// maddy pipeline, then polls (Account.Poll) through a seeded random plan of
// faults: a failed connect or SELECT, a cut while listing, a body cut short
// (part of the bytes, then an error), a FETCH response the loop did not ask
// for, a failed or half-done STORE, EXPUNGE, DELE or QUIT (QUIT may also
// apply the deletions and lose its +OK), temporary (451) and permanent
// (550) pipeline errors, maddy's storage failing to sync, a ledger that
// fails (closed under the loop's feet: right after a Commit, or while
// listing, fetching, removing, quitting), and crashes (a panic from the fake
// source or pipeline: a dying process, whose connection dies with it, or a
// pipeline bug that pollSafely would recover). Mail arrives between polls
// and during them; other IMAP clients flag \Deleted, undelete and expunge;
// an IMAP server may renumber a folder (new UIDVALIDITY); a POP3 server may
// give a UIDL deleted at QUIT to a later message, or list two messages under
// one UIDL, sometimes of the same size. After a crash or a ledger failure
// the run "restarts": a new ledger.Ledger on the same file, a new Account.
// Then faults stop, the run polls until a poll does nothing, and checks.
//
// The invariants, checked as the run goes (when a message is removed
// upstream, committed, or fetched) and at its end:
//
//   - lost, unrecorded: a message is removed upstream (IMAP: our STORE
//     \Deleted, after which anyone's EXPUNGE may take it; POP3: applied at
//     QUIT) only if maddy committed it and the ledger holds a delivered (or
//     removed) entry of it (same fingerprint) under the identity the loop
//     listed it by.
//   - keep: with keep yes nothing is ever removed upstream.
//   - twice: a message is committed at most once, plus once per crash or
//     ledger failure in its own Commit→Record window, tracked in the fake
//     pipeline: a Commit that panics after committing, or a Commit made
//     while, or just before, the ledger is closed. Anything else that
//     delivers a message again fails.
//   - partial: maddy commits exactly the upstream bytes under one added
//     Received field; a header no upstream message has was cut short.
//   - refetched: the loop never fetches a message the ledger held an entry
//     of (same fingerprint; too_large with the same size) when it began to
//     fetch.
//   - not-quiet: once faults stop, a poll does nothing within a few polls
//     (so a refused message is not fetched at every poll).
//   - undelivered: then every message still upstream and ours (not flagged
//     \Deleted by another client) was committed, unless refused, too large
//     or adopted at a first sync (first_sync new).
//   - refused-record: a refused (550, malformed header) or too large
//     message is still upstream and recorded as refused or too_large under
//     its identity.
//   - stranded, left: with keep no, a message maddy committed is gone
//     upstream; one we flagged \Deleted was expunged. Exceptions by
//     design: a server without UIDPLUS (the flag is all remote_pull does);
//     a message adopted after a renumbering (known by fingerprint only);
//     a POP3 message sharing its UIDL with another (Ambiguous: never
//     removed on the strength of the ledger); one another client flagged.
//   - adopted: first_sync new adopts only what was there before the folder
//     was first synced.
//   - unknown: maddy never gets a message it refuses, a message too large,
//     or one the server sent unasked.
//
// Flags (after -args): -prop.runs=N (default 2000, 300 with -short),
// -prop.base=S (first seed), -prop.seed=S (replay one run, whole trace).
// The report gives, for each broken invariant, its shortest failing run.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/exterrors"
	"github.com/foxcpp/maddy/framework/log"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

var (
	propSeed = flag.Uint64("prop.seed", 0, "TestPropertyAccountLoop: replay only this seed and print its trace")
	propRuns = flag.Int("prop.runs", 0, "TestPropertyAccountLoop: number of seeded runs (default 2000, 300 with -short)")
	propBase = flag.Uint64("prop.base", 1, "TestPropertyAccountLoop: seed of the first run")
)

// propKinds describes each invariant, in the order the report lists them.
var propKinds = []struct{ kind, desc string }{
	{"lost", "nothing lost: removed upstream a message maddy never committed"},
	{"unrecorded", "nothing lost: removed upstream a message the ledger has not recorded as delivered"},
	{"keep", "keep yes: removed a message upstream"},
	{"twice", "nothing twice: committed more often than crashes in its Commit→Record window allow"},
	{"partial", "no partial delivery: committed bytes that differ from the upstream message"},
	{"refetched", "fetched a message the ledger had already recorded"},
	{"not-quiet", "polls never became quiet once faults stopped"},
	{"undelivered", "eventually delivered: a message was never committed once faults stopped"},
	{"refused-record", "a refused or too large message is not recorded as such once faults stopped"},
	{"stranded", "keep no: a delivered message left flagged \\Deleted by us, never expunged"},
	{"left", "keep no: a delivered message left upstream"},
	{"adopted", "first_sync new: adopted a message that arrived after the first sync"},
	{"unknown", "maddy was handed a message it must never get: none upstream has it, refused, too large, or sent unasked"},
	{"panic", "the account loop panicked"},
	{"test", "the test itself failed"},
}

// The fault kinds a run may enable; each is a point where the fake upstream,
// the fake pipeline or the ledger fails.
var propFaultKinds = []string{
	// source
	"connect", "open", "list", "fingerprints", "fetch-cut", "body-cut", "unsolicited",
	"store-fail", "store-lost", "expunge-fail", "expunge-lost", "remove-no", "logout-fail",
	"dele-fail", "quit-fail", "quit-lost",
	// crashes of the process (a panic from the source)
	"crash-list", "crash-fetch", "crash-store", "crash-dele", "crash-quit-before", "crash-quit-after",
	// ledger failures (the ledger closed under the loop); maddy's storage
	// failing to sync before a removal
	"ledger-list", "ledger-fetch", "ledger-remove", "ledger-close", "ledger-commit", "sync-storage",
	// pipeline: temporary errors and crashes
	"start-451", "rcpt-451", "body-451", "commit-451",
	"crash-start", "crash-body", "crash-commit-before", "crash-commit-after",
}

type propConfig struct {
	pop3       bool
	keep       bool
	folders    []string
	noUIDPlus  bool // IMAP: Remove flags \Deleted and expunges nothing
	others     bool // IMAP: other clients flag, unflag and expunge
	renumber   bool // IMAP: the server may renumber a folder (new UIDVALIDITY)
	firstSync  bool // first_sync new: what is there at the first sync is adopted
	reuseUIDL  bool // POP3: a UIDL deleted at QUIT may name a later message
	dupUIDL    bool // POP3: a new message may be listed under a UIDL in use
	quitLost   bool // POP3: QUIT may delete, then lose its +OK
	maxPerPoll int
	maxSize    int64
	rounds     int
	faults     []string
}

func (c propConfig) String() string {
	var b strings.Builder
	if c.pop3 {
		b.WriteString("POP3")
	} else {
		fmt.Fprintf(&b, "IMAP folders=%d", len(c.folders))
	}
	fmt.Fprintf(&b, " keep=%v", c.keep)
	for _, f := range []struct {
		on   bool
		name string
	}{{c.firstSync, "first_sync-new"}, {c.noUIDPlus, "no-uidplus"}, {c.others, "other-clients"}, {c.renumber, "renumber"},
		{c.reuseUIDL, "reuse-uidl"}, {c.dupUIDL, "dup-uidl"}, {c.quitLost, "quit-lost"}} {
		if f.on {
			b.WriteString(" " + f.name)
		}
	}
	if c.maxPerPoll > 0 {
		fmt.Fprintf(&b, " max_messages_per_poll=%d", c.maxPerPoll)
	}
	if c.maxSize > 0 {
		fmt.Fprintf(&b, " max_message_size=%d", c.maxSize)
	}
	fmt.Fprintf(&b, " rounds=%d faults=%s", c.rounds, strings.Join(c.faults, ","))
	return b.String()
}

// propMsg is one upstream message, from its arrival to the end of the run.
type propMsg struct {
	serial    int
	id        string // "m17": its X-Prop-Id, which the fake pipeline reads
	raw       []byte
	size      int64
	fp        string // source.Fingerprint, as the loop records it
	refuse    string // "body" or "commit": the pipeline refuses it for good (550) there
	malformed bool   // its header cannot be parsed: the spool refuses it (554)
	tooLarge  bool   // over max_message_size
	adoptable bool   // present while its folder had never been synced (first_sync new)

	folder string
	uid    uint32 // IMAP
	uidl   string // POP3
	origin string // POP3: how it came by its UIDL, when shared or reused

	present     bool
	goneBy      string // "us" or "other"
	flagged     bool   // \Deleted
	flaggedByUs bool

	fetches   int
	commits   int
	allowance int // duplicates allowed: crashes and ledger failures in its Commit→Record window
}

type propFolder struct {
	name     string
	validity uint32
	nextUID  uint32
	msgs     []*propMsg // present, by ascending UID
}

type propLine struct {
	serial int // 0: about no one message
	text   string
}

type propViolation struct {
	kind string
	text string
	msg  *propMsg
	at   int // trace length when found
}

// propActivity is what the upstream and the pipeline saw during one poll.
type propActivity struct {
	fetched, removed, committed []string
}

func (a propActivity) idle() bool {
	return len(a.fetched) == 0 && len(a.removed) == 0 && len(a.committed) == 0
}

type propCrash struct {
	where     string
	recovered bool // a bug in the pipeline that pollSafely recovers: the process lives on
}

type propWorld struct {
	seed     uint64
	rng      *rand.Rand
	cfg      propConfig
	prob     map[string]float64
	faultsOn bool

	msgs     []*propMsg
	byID     map[string]*propMsg
	folders  map[string]*propFolder // IMAP
	drop     []*propMsg             // POP3 maildrop, in order
	freed    []*propMsg             // POP3: deleted at QUIT, UIDL reusable
	nextUIDL int

	dir, path  string
	led        *ledger.Ledger
	ledClosed  bool
	checker    *ledger.Ledger // a second handle on the ledger file, for the checks
	snap       map[ledger.MailboxKey]map[string]ledger.Entry
	unasked    *propMsg // being sent by the server unasked
	acc        *Account
	sess       *propSession
	restartDue string
	quiet      log.Logger

	pollNo     int
	fired      map[string]int // faults fired, by kind
	restarts   int
	removals   int // removals checked
	adopted    int // first_sync new: adopted at the first sync
	renumbers  int
	meanwhiles int // events during a poll
	act        propActivity
	trace      []propLine
	violations []propViolation
	aborted    bool
}

func (w *propWorld) note(m *propMsg, format string, args ...any) {
	l := propLine{text: fmt.Sprintf(format, args...)}
	if m != nil {
		l.serial = m.serial
		l.text = m.label() + ": " + l.text
	}
	w.trace = append(w.trace, l)
}

func (m *propMsg) label() string {
	if m.uidl != "" {
		return fmt.Sprintf("%s (UIDL %s)", m.id, m.uidl)
	}
	return fmt.Sprintf("%s (%s UID %d)", m.id, m.folder, m.uid)
}

func (w *propWorld) violate(kind string, m *propMsg, format string, args ...any) {
	v := propViolation{kind: kind, text: fmt.Sprintf(format, args...), msg: m}
	w.note(m, "VIOLATION %s: %s", kind, v.text)
	v.at = len(w.trace)
	w.violations = append(w.violations, v)
}

func (w *propWorld) fault(kind string) bool {
	p := w.prob[kind]
	if !w.faultsOn || p == 0 || w.rng.Float64() >= p {
		return false
	}
	w.note(nil, "fault: %s", kind)
	w.fired[kind]++
	return true
}

var errPropReset = errors.New("connection reset by peer")

// die is a crash of the whole process: the connection goes with it.
func (w *propWorld) die(where string) {
	w.note(nil, "CRASH: the process dies %s", where)
	if w.sess != nil {
		w.sess.kill("the process died")
	}
	w.restartDue = "the process died " + where
	panic(propCrash{where: where})
}

// crash is a panic in maddy's pipeline: either the process dies, or a bug
// that pollSafely recovers, the process living on.
func (w *propWorld) crash(where string) {
	if w.rng.IntN(2) == 0 {
		w.die(where)
	}
	w.note(nil, "PANIC in the pipeline %s (recovered, the process lives on)", where)
	panic(propCrash{where: where, recovered: true})
}

// closeLedger makes the ledger fail: every later call returns an error,
// until the "restart" after the poll opens it again.
func (w *propWorld) closeLedger(where string) {
	if w.ledClosed {
		return
	}
	w.note(nil, "LEDGER FAILS %s (closed)", where)
	w.led.Close()
	w.ledClosed = true
	w.restartDue = "the ledger failed " + where
}

// key is the message's ledger key; uid is the identity the loop sees it
// under: the IMAP UID, or for POP3 the UID as the session listed it (a
// UIDL, made unique as pop3src does when several messages share one).
func (w *propWorld) key(m *propMsg) ledger.MailboxKey {
	if w.cfg.pop3 {
		return ledger.MailboxKey{Account: "acct", Mailbox: "INBOX"}
	}
	return ledger.MailboxKey{Account: "acct", Mailbox: m.folder, UIDValidity: w.folders[m.folder].validity}
}

// snapEntry is the entry under uid in a snapshot of the mailbox's ledger
// entries, taken at the first call for the mailbox since w.snap was reset
// (at the start of each poll, and for the end checks).
func (w *propWorld) snapEntry(m *propMsg, uid string) (ledger.Entry, bool) {
	key := w.key(m)
	if w.snap == nil {
		w.snap = map[ledger.MailboxKey]map[string]ledger.Entry{}
	}
	snap, ok := w.snap[key]
	if !ok {
		entries, err := w.checker.Entries(context.Background(), key)
		if err != nil {
			w.violate("test", m, "reading the ledger: %v", err)
		}
		snap = map[string]ledger.Entry{}
		for _, e := range entries {
			snap[e.UID] = e
		}
		w.snap[key] = snap
	}
	e, ok := snap[uid]
	return e, ok
}

// entry is the ledger's entry under the message's identity uid, now.
func (w *propWorld) entry(m *propMsg, uid string) (ledger.Entry, bool) {
	entries, err := w.checker.Entries(context.Background(), w.key(m))
	if err != nil {
		w.violate("test", m, "reading the ledger: %v", err)
		return ledger.Entry{}, false
	}
	for _, e := range entries {
		if e.UID == uid {
			return e, true
		}
	}
	return ledger.Entry{}, false
}

func propEntryString(e ledger.Entry, ok bool) string {
	if !ok {
		return "no ledger entry"
	}
	return fmt.Sprintf("ledger entry %s (size %d, fingerprint %.8s)", e.State, e.Size, e.Fingerprint)
}

// removedByUs checks the moment a message is removed upstream by the loop.
func (w *propWorld) removedByUs(m *propMsg, uid, how string) {
	e, ok := w.entry(m, uid)
	w.removals++
	w.act.removed = append(w.act.removed, m.id)
	w.note(m, "%s; committed %d times, %s", how, m.commits, propEntryString(e, ok))
	if w.cfg.keep {
		w.violate("keep", m, "%s with keep yes", how)
	}
	if m.commits == 0 {
		w.violate("lost", m, "%s, but maddy never committed it (%s, origin: %s)", how, propEntryString(e, ok), m.originText())
		return
	}
	st := string(e.State)
	if !ok || (st != "delivered" && st != "removed") || (e.Fingerprint != "" && e.Fingerprint != m.fp) {
		w.violate("unrecorded", m, "%s, but under its key the ledger has %s, not a delivered entry of this message (fingerprint %.8s)",
			how, propEntryString(e, ok), m.fp)
	}
}

func (m *propMsg) originText() string {
	if m.origin == "" {
		return "a UIDL of its own"
	}
	return m.origin
}

// popListing lists a maildrop as pop3src.Mailbox.List does, in message
// order: a UIDL given to several messages (a buggy server) becomes "UIDL
// FP" for each, with the fingerprint of its header (TOP n 0) where the
// header parses; identities still alike get " #2", " #3"...; all of them
// are Ambiguous.
func popListing(drop []*propMsg) []source.Message {
	count := map[string]int{}
	for _, m := range drop {
		count[m.uidl]++
	}
	ids := make([]string, len(drop))
	out := make([]source.Message, len(drop))
	listed := map[string]int{}
	for i, m := range drop {
		ids[i] = m.uidl
		out[i] = source.Message{Size: m.size, Ambiguous: count[m.uidl] > 1}
		if count[m.uidl] > 1 && !m.malformed {
			out[i].Base, out[i].Fingerprint = m.uidl, m.fp
			ids[i] += " " + m.fp
		}
		listed[ids[i]]++
	}
	seen := map[string]int{}
	for i := range drop {
		out[i].UID = ids[i]
		if listed[ids[i]] > 1 {
			out[i].Ambiguous = true
			seen[ids[i]]++
			if seen[ids[i]] > 1 {
				out[i].UID += " #" + strconv.Itoa(seen[ids[i]])
			}
		}
	}
	return out
}

// gone removes a message from the upstream.
func (w *propWorld) gone(m *propMsg, by string) {
	m.present, m.goneBy = false, by
	if w.cfg.pop3 {
		if i := slices.Index(w.drop, m); i >= 0 {
			w.drop = slices.Delete(w.drop, i, i+1)
		}
		w.freed = append(w.freed, m)
		return
	}
	f := w.folders[m.folder]
	if i := slices.Index(f.msgs, m); i >= 0 {
		f.msgs = slices.Delete(f.msgs, i, i+1)
	}
}

// ---- messages and upstream events ----

func (w *propWorld) newMsg(targetSize int) *propMsg {
	m := &propMsg{serial: len(w.msgs) + 1, present: true}
	m.id = "m" + strconv.Itoa(m.serial)
	switch r := w.rng.IntN(100); {
	case r < 3:
		m.malformed = true
	case r < 7:
		m.refuse = "body"
	case r < 10:
		m.refuse = "commit"
	}
	var hdr string
	if m.malformed {
		hdr = fmt.Sprintf("this line of %s is not a header field\r\n\r\n", m.id)
	} else {
		hdr = fmt.Sprintf("From: Sender %d <s%d@example.net>\r\nDate: Mon, 02 Jan 2006 15:%02d:%02d +0000\r\n"+
			"Subject: property test %s\r\nMessage-Id: <%s.%d@example.net>\r\nX-Prop-Id: %s\r\n\r\n",
			m.serial, m.serial, m.serial/60%60, m.serial%60, m.id, m.id, w.seed, m.id)
	}
	n := w.rng.IntN(2500)
	if w.rng.IntN(10) == 0 {
		n = 0
	}
	if targetSize >= len(hdr) {
		n = targetSize - len(hdr)
	}
	var body bytes.Buffer
	for i := 0; body.Len() < n; i++ {
		fmt.Fprintf(&body, "%s line %d: the quick brown fox jumps over the lazy dog\r\n", m.id, i)
	}
	m.raw = append([]byte(hdr), body.Bytes()[:n]...)
	m.size = int64(len(m.raw))
	m.tooLarge = w.cfg.maxSize > 0 && m.size > w.cfg.maxSize
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.raw)))
	if err != nil {
		h = textproto.Header{} // as the spool leaves it
	}
	m.fp = source.Fingerprint(h, m.size)
	w.msgs = append(w.msgs, m)
	w.byID[m.id] = m
	return m
}

func (m *propMsg) traits() string {
	var t []string
	switch {
	case m.malformed:
		t = append(t, "malformed header")
	case m.refuse != "":
		t = append(t, "refused for good at "+m.refuse)
	}
	if m.tooLarge {
		t = append(t, "too large")
	}
	if m.origin != "" {
		t = append(t, m.origin)
	}
	return fmt.Sprintf("%d bytes %s", m.size, strings.Join(t, ", "))
}

func (w *propWorld) arrive() {
	if w.cfg.pop3 {
		var from *propMsg
		origin := ""
		if w.cfg.reuseUIDL && len(w.freed) > 0 && w.rng.IntN(5) < 2 {
			i := w.rng.IntN(len(w.freed))
			from = w.freed[i]
			w.freed = slices.Delete(w.freed, i, i+1)
			origin = "reuses the UIDL of " + from.id + ", deleted at QUIT"
		} else if w.cfg.dupUIDL && len(w.drop) > 0 && w.rng.IntN(4) == 0 {
			from = w.drop[w.rng.IntN(len(w.drop))]
			origin = "listed under the same UIDL as " + from.id + ", still there"
		}
		target := 0
		if from != nil && w.rng.IntN(3) == 0 {
			target = int(from.size)
			origin += ", same size"
		}
		m := w.newMsg(target)
		if from != nil {
			m.uidl, m.origin = from.uidl, origin
		} else {
			w.nextUIDL++
			m.uidl = fmt.Sprintf("U%04d", w.nextUIDL)
		}
		w.drop = append(w.drop, m)
		w.arrived(m, "INBOX")
		return
	}
	f := w.folders[w.cfg.folders[w.rng.IntN(len(w.cfg.folders))]]
	m := w.newMsg(0)
	m.folder, m.uid = f.name, f.nextUID
	f.nextUID++
	f.msgs = append(f.msgs, m)
	w.arrived(m, f.name)
}

// arrived notes an arrival; with first_sync new, a message that arrives
// while its folder was never synced may be adopted by the first sync.
func (w *propWorld) arrived(m *propMsg, folder string) {
	if w.cfg.firstSync {
		if _, seen, err := w.checker.Mailbox(context.Background(), "acct", folder); err == nil && !seen {
			m.adoptable = true
		}
	}
	w.note(m, "arrives: %s", m.traits())
}

// otherClients: another IMAP client flags \Deleted, undeletes, expunges.
func (w *propWorld) otherClients() {
	for _, name := range w.cfg.folders {
		f := w.folders[name]
		if w.rng.IntN(5) == 0 {
			var c []*propMsg
			for _, m := range f.msgs {
				if !m.flagged {
					c = append(c, m)
				}
			}
			if len(c) > 0 {
				m := c[w.rng.IntN(len(c))]
				m.flagged = true
				w.note(m, "another client flags it \\Deleted (committed %d times)", m.commits)
			}
		}
		if w.rng.IntN(7) == 0 {
			w.otherUnflag(f, false)
		}
		if w.rng.IntN(12) == 0 {
			for _, m := range slices.Clone(f.msgs) {
				if m.flagged {
					by := "other"
					if m.flaggedByUs {
						by = "us" // our flag, someone else's EXPUNGE: checked at our STORE
					}
					w.note(m, "another client's EXPUNGE takes it (committed %d times)", m.commits)
					w.gone(m, by)
				}
			}
		}
	}
}

func (w *propWorld) otherUnflag(f *propFolder, all bool) {
	var c []*propMsg
	for _, m := range f.msgs {
		if m.flagged && !m.flaggedByUs {
			c = append(c, m)
		}
	}
	if len(c) == 0 {
		return
	}
	if !all {
		c = c[w.rng.IntN(len(c)):][:1]
	}
	for _, m := range c {
		m.flagged = false
		w.note(m, "another client removes its \\Deleted flag")
	}
}

// renumber: the server rebuilt the folder, new UIDVALIDITY, new UIDs.
func (w *propWorld) renumber(f *propFolder) {
	w.renumbers++
	f.validity += 1 + uint32(w.rng.IntN(5))
	f.nextUID = 1
	w.note(nil, "the server renumbers %s: UIDVALIDITY %d", f.name, f.validity)
	for _, m := range f.msgs {
		old := m.uid
		m.uid = f.nextUID
		f.nextUID++
		w.note(m, "renumbered from UID %d", old)
	}
}

// meanwhile: while a poll runs, mail arrives and other clients act (a POP3
// session sees neither: its maildrop was locked at login).
func (w *propWorld) meanwhile() {
	if !w.faultsOn || w.rng.IntN(25) != 0 {
		return
	}
	w.note(nil, "meanwhile on the server, during the poll:")
	w.meanwhiles++
	if w.cfg.others && w.rng.IntN(2) == 0 {
		w.otherClients()
	} else {
		w.arrive()
	}
}

func (w *propWorld) events() {
	n := w.rng.IntN(3)
	if w.rng.IntN(8) == 0 {
		n += 4
	}
	for range n {
		w.arrive()
	}
	if w.cfg.others {
		w.otherClients()
	}
	if w.cfg.renumber && w.rng.IntN(25) == 0 {
		w.renumber(w.folders[w.cfg.folders[w.rng.IntN(len(w.cfg.folders))]])
	}
}

// ---- the fake upstream ----

type propUpstream struct{ w *propWorld }

func (u *propUpstream) Protocol() string {
	if u.w.cfg.pop3 {
		return "POP3"
	}
	return "IMAP"
}
func (u *propUpstream) Host() string { return "upstream.example" }

func (u *propUpstream) Connect(ctx context.Context) (source.Session, error) {
	w := u.w
	if w.fault("connect") {
		return nil, errors.New("dial tcp: connection refused")
	}
	s := &propSession{w: w}
	w.sess = s
	if w.cfg.pop3 {
		// The maildrop is locked and numbered at login.
		s.drop = slices.Clone(w.drop)
		for _, l := range popListing(s.drop) {
			s.uids = append(s.uids, l.UID)
		}
		s.dele = map[int]bool{}
		return propPOP3Session{s}, nil
	}
	return s, nil
}

// propPOP3Session is a POP3 session: its DELEs count only at a good QUIT.
type propPOP3Session struct{ *propSession }

func (propPOP3Session) DeferredRemoval() {}

type propSession struct {
	w      *propWorld
	dead   bool
	closed bool
	opened bool
	drop   []*propMsg   // POP3: the maildrop as numbered at login
	uids   []string     // POP3: the UID of each message as listed
	dele   map[int]bool // POP3: marked by DELE, applied at QUIT
}

func (s *propSession) kill(why string) {
	if s.dead {
		return
	}
	s.dead = true
	if len(s.dele) > 0 {
		s.w.note(nil, "POP3 connection lost (%s): the server rolls back %d DELEs", why, len(s.dele))
	}
	s.dele = nil
}

var errPropClosed = errors.New("use of closed network connection")

func (s *propSession) RemoteAddr() string { return "192.0.2.7" }
func (s *propSession) Abort()             { s.kill("aborted") }

func (s *propSession) Open(_ context.Context, name string) (source.Mailbox, error) {
	w := s.w
	if s.dead {
		return nil, errPropClosed
	}
	if w.fault("open") {
		return nil, &source.FolderError{Err: fmt.Errorf("SELECT %q: NO [UNAVAILABLE] try again later", name)}
	}
	if w.cfg.pop3 {
		if s.opened {
			return nil, fmt.Errorf("POP3 has only one mailbox; folder %q is not available", name)
		}
		s.opened = true
		return &propPOPBox{s: s}, nil
	}
	f := w.folders[name]
	if f == nil {
		return nil, fmt.Errorf("SELECT %s: NO no such mailbox", name)
	}
	return &propIMAPBox{s: s, f: f, validity: f.validity}, nil
}

func (s *propSession) Close(context.Context) error {
	w := s.w
	if s.closed {
		return errPropClosed
	}
	s.closed = true
	if s.dead {
		return errPropClosed
	}
	if !w.cfg.pop3 {
		if w.fault("logout-fail") {
			s.kill("LOGOUT failed")
			return errPropReset
		}
		s.dead = true
		return nil
	}
	if w.fault("quit-fail") {
		s.kill("QUIT failed")
		return fmt.Errorf("QUIT: %w", errPropReset)
	}
	if w.fault("crash-quit-before") {
		w.die("before QUIT")
	}
	if w.fault("ledger-close") {
		w.closeLedger("before QUIT")
	}
	nums := make([]int, 0, len(s.dele))
	for n := range s.dele {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		m := s.drop[n-1]
		w.removedByUs(m, s.uids[n-1], fmt.Sprintf("deleted at QUIT (message %d, listed as %q)", n, s.uids[n-1]))
		w.gone(m, "us")
	}
	s.dele = nil
	s.dead = true
	if w.fault("crash-quit-after") {
		w.die("after QUIT applied the deletions")
	}
	if w.cfg.quitLost && w.fault("quit-lost") {
		return fmt.Errorf("QUIT: %w (the server had deleted the messages)", errPropReset)
	}
	return nil
}

// fetchOne streams one message into the loop's spool and deliver.
func (s *propSession) fetchOne(m *propMsg, uid string, seen map[*propMsg]bool, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	w := s.w
	if s.dead {
		return errPropClosed
	}
	if w.fault("fetch-cut") {
		s.kill("cut before " + m.id)
		return errPropReset
	}
	if w.fault("crash-fetch") {
		w.die("while fetching " + m.id)
	}
	if w.fault("ledger-fetch") {
		w.closeLedger("while fetching " + m.id)
	}
	w.meanwhile()
	if !seen[m] {
		// Whether the ledger held an entry for this message when the
		// loop, done listing, began to fetch.
		seen[m] = true
		if e, ok := w.snapEntry(m, uid); ok && (e.Fingerprint == m.fp || (e.Fingerprint == "" && e.State == ledger.TooLarge && e.Size == m.size)) {
			w.violate("refetched", m, "fetched although the ledger has already recorded it: %s", propEntryString(e, ok))
		}
	}
	m.fetches++
	w.act.fetched = append(w.act.fetched, m.id)
	r := &propReader{data: m.raw, chunk: 1 + w.rng.IntN(len(m.raw)+1), err: io.EOF}
	cut := -1
	if w.fault("body-cut") {
		cut = w.rng.IntN(len(m.raw))
		if w.rng.IntN(3) == 0 { // near the end of the header, or the very end
			cut = max(0, min(len(m.raw)-1, w.headerLen(m)+w.rng.IntN(3)-1))
			if w.rng.IntN(2) == 0 {
				cut = len(m.raw) - 1
			}
		}
		r.data = m.raw[:cut]
		r.err = fmt.Errorf("reading message: %w after %d of %d bytes", errPropReset, cut, len(m.raw))
		r.withLast = w.rng.IntN(2) == 0
	}
	sp, err := spool(r)
	if cut >= 0 {
		s.kill(fmt.Sprintf("cut inside %s", m.id))
	}
	if err != nil {
		w.note(m, "fetched, spool failed: %v", err)
		return err
	}
	if cut >= 0 {
		w.note(m, "fetched, cut after %d of %d bytes, and the spool took it without an error", cut, len(m.raw))
	} else {
		w.note(m, "fetched")
	}
	return deliver(uid, sp)
}

func (w *propWorld) headerLen(m *propMsg) int {
	if i := bytes.Index(m.raw, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return len(m.raw)
}

// propReader hands out data in chunks, then err: io.EOF, or a cut
// connection, possibly along with the last chunk.
type propReader struct {
	data     []byte
	chunk    int
	err      error
	withLast bool
}

func (r *propReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data[:min(len(r.data), r.chunk)])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.withLast {
		return n, r.err
	}
	return n, nil
}

func (s *propSession) listFaults() error {
	w := s.w
	if s.dead {
		return errPropClosed
	}
	if w.fault("list") {
		s.kill("cut while listing")
		return errPropReset
	}
	if w.fault("crash-list") {
		w.die("while listing")
	}
	if w.fault("ledger-list") {
		w.closeLedger("while listing")
	}
	return nil
}

// propPOPBox mirrors pop3src.Mailbox over the in-memory maildrop.
type propPOPBox struct {
	s     *propSession
	byUID map[string]int
}

func (b *propPOPBox) UIDValidity() uint32 { return 0 }
func (b *propPOPBox) Complete() bool      { return true }

func (b *propPOPBox) List(context.Context, uint32) ([]source.Message, error) {
	if err := b.s.listFaults(); err != nil {
		return nil, err
	}
	b.byUID = map[string]int{}
	out := popListing(b.s.drop)
	for i, l := range out {
		b.byUID[l.UID] = i + 1
	}
	return out, nil
}

func (b *propPOPBox) Fetch(_ context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	seen := map[*propMsg]bool{}
	for _, uid := range uids {
		n, ok := b.byUID[uid]
		if !ok {
			continue
		}
		if b.s.dele[n] {
			continue // RETR -ERR: deleted in this session; pop3src skips it
		}
		if err := b.s.fetchOne(b.s.drop[n-1], uid, seen, spool, deliver); err != nil {
			return err
		}
	}
	if b.s.dead {
		return errPropClosed
	}
	return nil
}

// Fingerprints: TOP n 0 of each message, as pop3src does.
func (b *propPOPBox) Fingerprints(_ context.Context, uids []string) (map[string]string, error) {
	s, w := b.s, b.s.w
	if s.dead {
		return nil, errPropClosed
	}
	if w.fault("fingerprints") {
		s.kill("cut during TOP")
		return nil, fmt.Errorf("TOP: %w", errPropReset)
	}
	out := map[string]string{}
	for _, uid := range uids {
		if n, ok := b.byUID[uid]; ok {
			// As pop3src: a header that does not parse gives "".
			out[uid] = s.drop[n-1].fp
			if s.drop[n-1].malformed {
				out[uid] = ""
			}
		}
	}
	return out, nil
}

func (b *propPOPBox) Remove(_ context.Context, uids []string) ([]string, error) {
	s, w := b.s, b.s.w
	if s.dead {
		return nil, errPropClosed
	}
	var nums []int
	var marked []string
	for _, uid := range uids {
		if n, ok := b.byUID[uid]; ok {
			nums = append(nums, n)
			marked = append(marked, uid)
		}
	}
	if len(nums) == 0 {
		return nil, nil
	}
	if w.fault("ledger-remove") {
		w.closeLedger("before DELE")
	}
	var first error
	for _, n := range nums {
		if w.fault("crash-dele") {
			w.die("between DELEs")
		}
		if w.fault("dele-fail") {
			s.kill("cut during DELE")
			return nil, fmt.Errorf("DELE: %w", errPropReset)
		}
		m := s.drop[n-1]
		if s.dele[n] {
			w.note(m, "DELE %d: -ERR already deleted", n)
			if first == nil {
				first = fmt.Errorf("DELE: message %d: -ERR message already deleted", n)
			}
			continue
		}
		s.dele[n] = true
		w.note(m, "DELE %d (committed %d times)", n, m.commits)
	}
	if first != nil {
		return nil, first
	}
	return marked, nil
}

type propIMAPBox struct {
	s        *propSession
	f        *propFolder
	validity uint32
}

func (b *propIMAPBox) UIDValidity() uint32 { return b.validity }
func (b *propIMAPBox) Complete() bool      { return false }
func (b *propIMAPBox) UIDNext() uint32     { return b.f.nextUID }

func (b *propIMAPBox) Disposal(context.Context) (source.Removal, error) {
	if b.s.w.cfg.noUIDPlus {
		return source.Removal{Mode: source.RemoveFlagOnly}, nil
	}
	return source.Removal{}, nil
}

func (b *propIMAPBox) List(_ context.Context, floor uint32) ([]source.Message, error) {
	if err := b.s.listFaults(); err != nil {
		return nil, err
	}
	var out []source.Message
	for _, m := range b.f.msgs {
		if m.uid >= floor {
			out = append(out, source.Message{UID: ledger.FormatUID(m.uid), Size: m.size, Deleted: m.flagged})
		}
	}
	return out, nil
}

func (b *propIMAPBox) set(uids []string) map[uint32]bool {
	set := map[uint32]bool{}
	for _, u := range uids {
		if n, err := strconv.ParseUint(u, 10, 32); err == nil {
			set[uint32(n)] = true
		}
	}
	return set
}

func (b *propIMAPBox) Fetch(_ context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	set := b.set(uids)
	seen := map[*propMsg]bool{}
	var others []*propMsg
	for _, m := range b.f.msgs {
		if !set[m.uid] {
			others = append(others, m)
		}
	}
	if len(others) > 0 && b.s.w.fault("unsolicited") {
		// The server sends a message it was not asked for: the loop must
		// not deliver it on that account.
		m := others[b.s.w.rng.IntN(len(others))]
		seen[m] = true
		b.s.w.note(m, "sent unasked in the FETCH response")
		b.s.w.unasked = m
		err := b.s.fetchOne(m, ledger.FormatUID(m.uid), seen, spool, deliver)
		b.s.w.unasked = nil
		if err != nil {
			return err
		}
	}
	for _, m := range slices.Clone(b.f.msgs) {
		if !set[m.uid] || !m.present {
			continue
		}
		if err := b.s.fetchOne(m, ledger.FormatUID(m.uid), seen, spool, deliver); err != nil {
			return err
		}
	}
	if b.s.dead {
		return errPropClosed
	}
	return nil
}

func (b *propIMAPBox) Fingerprints(_ context.Context, uids []string) (map[string]string, error) {
	s, w := b.s, b.s.w
	if s.dead {
		return nil, errPropClosed
	}
	if w.fault("fingerprints") {
		s.kill("cut while fetching fingerprints")
		return nil, errPropReset
	}
	set := b.set(uids)
	out := map[string]string{}
	for _, m := range b.f.msgs {
		if set[m.uid] && !m.malformed { // imapsrc skips headers it cannot read
			out[ledger.FormatUID(m.uid)] = m.fp
		}
	}
	return out, nil
}

// Remove: UID STORE +FLAGS \Deleted, then UID EXPUNGE (with UIDPLUS).
func (b *propIMAPBox) Remove(_ context.Context, uids []string) ([]string, error) {
	s, w := b.s, b.s.w
	if len(uids) == 0 {
		return nil, nil
	}
	if s.dead {
		return nil, errPropClosed
	}
	w.meanwhile()
	set := b.set(uids)
	var targets []*propMsg
	for _, m := range b.f.msgs {
		if set[m.uid] {
			targets = append(targets, m)
		}
	}
	if w.fault("ledger-remove") {
		w.closeLedger("before STORE")
	}
	if w.fault("remove-no") {
		// The server refuses (NO: a read-only folder); the connection
		// lives on, and so does the poll.
		w.note(nil, "STORE refused (NO)")
		return nil, &source.FolderError{Err: errors.New("flagging \\Deleted: NO [NOPERM] refused")}
	}
	if w.fault("store-fail") {
		s.kill("cut before STORE")
		return nil, fmt.Errorf("flagging \\Deleted: %w", errPropReset)
	}
	for _, m := range targets {
		m.flagged, m.flaggedByUs = true, true
		w.removedByUs(m, ledger.FormatUID(m.uid), "flagged \\Deleted by us (STORE)")
	}
	if w.fault("store-lost") {
		s.kill("cut after STORE, its reply lost")
		return nil, fmt.Errorf("flagging \\Deleted: %w", errPropReset)
	}
	if w.fault("crash-store") {
		w.die("between STORE and EXPUNGE")
	}
	if w.cfg.noUIDPlus {
		return nil, nil
	}
	if w.fault("expunge-fail") {
		s.kill("cut before UID EXPUNGE")
		return nil, fmt.Errorf("UID EXPUNGE: %w", errPropReset)
	}
	for _, m := range targets {
		if m.present {
			w.note(m, "expunged by our UID EXPUNGE")
			w.gone(m, "us")
		}
	}
	if w.fault("expunge-lost") {
		s.kill("cut after UID EXPUNGE, its reply lost")
		return nil, fmt.Errorf("UID EXPUNGE: %w", errPropReset)
	}
	return uids, nil
}

// ---- the fake maddy pipeline ----
//
// Not testlib.Pipeline: this one fails or crashes the world at every step
// of maddy's delivery API (Start, AddRcpt, Body, Commit before and after
// committing), and records into the world's model rather than a list.

type propPipeline struct{ w *propWorld }

type propDelivery struct {
	w    *propWorld
	m    *propMsg
	hdr  textproto.Header
	body buffer.Buffer
}

func propTemp(step string) error {
	return &exterrors.SMTPError{Code: 451, EnhancedCode: exterrors.EnhancedCode{4, 3, 0}, Message: "storage busy at " + step}
}

func (p *propPipeline) Start(context.Context, *module.MsgMetadata, string) (module.Delivery, error) {
	w := p.w
	if w.fault("start-451") {
		return nil, propTemp("Start")
	}
	if w.fault("crash-start") {
		w.crash("in Start")
	}
	return &propDelivery{w: w}, nil
}

func (d *propDelivery) AddRcpt(context.Context, string, smtp.RcptOptions) error {
	if d.w.fault("rcpt-451") {
		return propTemp("AddRcpt")
	}
	return nil
}

func (d *propDelivery) Body(_ context.Context, h textproto.Header, b buffer.Buffer) error {
	w := d.w
	m := w.byID[h.Get("X-Prop-Id")]
	if m == nil {
		// Every upstream message with a header maddy can read has an
		// X-Prop-Id: a header without one was cut short.
		kind := "unknown"
		if h.Get("X-Prop-Id") == "" {
			kind = "partial"
		}
		w.violate(kind, nil, "Body got a header that is no upstream message's (X-Prop-Id %q, Subject %q): cut short?", h.Get("X-Prop-Id"), h.Get("Subject"))
		return propTemp("Body")
	}
	d.m = m
	if w.fault("body-451") {
		return propTemp("Body")
	}
	if w.fault("crash-body") {
		w.crash("in Body of " + m.id)
	}
	if m.refuse == "body" {
		w.note(m, "refused for good (550) at Body")
		return &exterrors.SMTPError{Code: 550, EnhancedCode: exterrors.EnhancedCode{5, 7, 1}, Message: "refused by policy"}
	}
	d.hdr, d.body = h, b
	return nil
}

func (d *propDelivery) Abort(context.Context) error { return nil }

func (d *propDelivery) Commit(context.Context) error {
	w, m := d.w, d.m
	if m == nil {
		return propTemp("Commit")
	}
	if w.fault("commit-451") {
		return propTemp("Commit")
	}
	if w.fault("crash-commit-before") {
		w.crash("in Commit of " + m.id + ", before committing")
	}
	if m.refuse == "commit" {
		w.note(m, "refused for good (550) at Commit")
		return &exterrors.SMTPError{Code: 550, EnhancedCode: exterrors.EnhancedCode{5, 7, 1}, Message: "refused by policy"}
	}
	w.commit(m, d.hdr, d.body)
	// The Commit→Record window: the loop records the message next. A
	// ledger that has failed, or fails now, makes that record fail; a
	// crash now loses it. Either may deliver the message once more.
	if w.ledClosed || w.fault("ledger-commit") {
		w.closeLedger("right after the Commit of " + m.id)
		m.allowance++
		w.note(m, "the ledger cannot record this Commit: one more delivery allowed (%d)", m.allowance)
		return nil
	}
	if w.fault("crash-commit-after") {
		m.allowance++
		w.note(m, "crash after this Commit, before its record: one more delivery allowed (%d)", m.allowance)
		w.crash("in Commit of " + m.id + ", after committing")
	}
	return nil
}

// commit is maddy storing the message for good.
func (w *propWorld) commit(m *propMsg, h textproto.Header, body buffer.Buffer) {
	m.commits++
	w.act.committed = append(w.act.committed, m.id)
	w.note(m, "COMMITTED (%d times now, %d allowed)", m.commits, 1+m.allowance)
	if m.commits > 1+m.allowance {
		w.violate("twice", m, "committed %d times; crashes or ledger failures in its Commit→Record window allow %d", m.commits, 1+m.allowance)
	}
	if m.refuse != "" || m.malformed || m.tooLarge {
		w.violate("unknown", m, "committed although it is %s", m.traits())
	}
	if m == w.unasked {
		w.violate("unknown", m, "committed although the loop did not ask for it (the server sent it unasked)")
	}
	var got bytes.Buffer
	hc := h.Copy()
	received := hc.Get("Received")
	hc.Del("Received")
	textproto.WriteHeader(&got, hc)
	if body != nil {
		r, err := body.Open()
		if err == nil {
			io.Copy(&got, r)
			r.Close()
		}
	}
	if !bytes.Equal(got.Bytes(), m.raw) || received == "" {
		w.violate("partial", m, "committed %d bytes (Received %q), the upstream message has %d", got.Len(), received, len(m.raw))
	}
}

// ---- the run ----

func (w *propWorld) settings() Settings {
	return Settings{
		Name: "acct", Upstream: &propUpstream{w}, Ledger: w.led, Log: w.quiet,
		Policy: policy.Policy{Folders: w.cfg.folders, Keep: w.cfg.keep, PollInterval: time.Minute,
			MaxMessageSize: w.cfg.maxSize, MaxMessagesPerPoll: w.cfg.maxPerPoll, FirstSyncNew: w.cfg.firstSync},
		SyncStorage: func() error {
			if w.fault("sync-storage") {
				return errors.New("syncfs: input/output error")
			}
			return nil
		},
		Target: &delivery.Target{Options: delivery.Options{Pipeline: &propPipeline{w}, Rcpts: []string{"alice@example.org"},
			Hostname: "mx.example.org"}, SpoolDir: filepath.Join(w.dir, "spool"), Log: w.quiet,
			MaxMessageSize: w.cfg.maxSize},
	}
}

// restart is maddy starting again: a new ledger handle, a new Account.
func (w *propWorld) restart(why string) bool {
	if !w.ledClosed {
		w.led.Close()
	}
	l, err := ledger.Open(w.path)
	if err != nil {
		w.violate("test", nil, "reopening the ledger: %v", err)
		w.aborted = true
		return false
	}
	w.led, w.ledClosed, w.restartDue = l, false, ""
	w.restarts++
	w.acc = New(w.settings())
	w.note(nil, "RESTART (%s): new ledger handle, new Account", why)
	return true
}

func (w *propWorld) poll() (err error) {
	w.pollNo++
	w.act = propActivity{}
	w.snap = nil
	w.unasked = nil
	w.note(nil, "poll %d starts", w.pollNo)
	var res PollResult
	func() {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			c, ok := p.(propCrash)
			if !ok {
				w.violate("panic", nil, "poll %d: %v\n%s", w.pollNo, p, debug.Stack())
				w.aborted = true
				err = fmt.Errorf("panic: %v", p)
				return
			}
			err = fmt.Errorf("crash %s", c.where)
		}()
		res, err = w.acc.Poll(context.Background())
	}()
	w.note(nil, "poll %d ends: %+v, error: %v", w.pollNo, res, err)
	w.sess = nil
	if w.restartDue != "" && !w.aborted {
		w.restart(w.restartDue)
	}
	return err
}

func newPropWorld(seed uint64, dir string) *propWorld {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w := &propWorld{seed: seed, rng: rng, byID: map[string]*propMsg{}, folders: map[string]*propFolder{},
		prob: map[string]float64{}, fired: map[string]int{}, dir: dir, path: filepath.Join(dir, "ledger.db"),
		quiet: testlib.Quiet("prop")}
	c := &w.cfg
	c.pop3 = rng.IntN(2) == 0
	c.keep = rng.IntN(5) == 0
	c.rounds = 3 + rng.IntN(9)
	c.firstSync = rng.IntN(6) == 0
	if rng.IntN(4) == 0 {
		c.maxPerPoll = 1 + rng.IntN(4)
	}
	if rng.IntN(5) == 0 {
		c.maxSize = int64(800 + rng.IntN(2000))
	}
	if c.pop3 {
		c.folders = []string{"INBOX"}
		c.reuseUIDL = rng.IntN(2) == 0
		c.dupUIDL = rng.IntN(3) == 0
		c.quitLost = rng.IntN(3) == 0
	} else {
		c.folders = []string{"INBOX"}
		if rng.IntN(3) == 0 {
			c.folders = append(c.folders, "Archive")
		}
		c.noUIDPlus = rng.IntN(6) == 0
		c.others = rng.IntN(2) == 0
		c.renumber = rng.IntN(4) == 0
		for i, name := range c.folders {
			w.folders[name] = &propFolder{name: name, validity: uint32(100 * (i + 1)), nextUID: 1 + uint32(rng.IntN(50))}
		}
	}
	// Some runs are calm, some a storm; each enables a few kinds of fault.
	intensity := 0.01 + 0.2*rng.Float64()*rng.Float64()
	for _, k := range propFaultKinds {
		if k == "quit-lost" && !c.quitLost {
			continue
		}
		if rng.IntN(5) < 2 {
			w.prob[k] = intensity * (0.5 + rng.Float64())
			c.faults = append(c.faults, k)
		}
	}
	return w
}

// propRun plays one seeded run and returns its world, violations included.
func propRun(seed uint64, tmp string) *propWorld {
	dir, err := os.MkdirTemp(tmp, "prop")
	w := newPropWorld(seed, dir)
	if err != nil {
		w.violate("test", nil, "temp dir: %v", err)
		return w
	}
	defer os.RemoveAll(dir)
	if w.led, err = ledger.Open(w.path); err != nil {
		w.violate("test", nil, "ledger: %v", err)
		return w
	}
	if w.checker, err = ledger.Open(w.path); err != nil {
		w.violate("test", nil, "ledger: %v", err)
		return w
	}
	defer func() {
		if !w.ledClosed {
			w.led.Close()
		}
		w.checker.Close()
	}()
	w.acc = New(w.settings())
	w.note(nil, "seed %d: %s", seed, w.cfg)

	for range w.rng.IntN(6) {
		w.arrive()
	}
	w.faultsOn = true
	for round := 0; round < w.cfg.rounds && !w.aborted; round++ {
		if round > 0 {
			w.events()
		}
		w.poll()
	}
	if w.aborted {
		return w
	}

	// Faults stop. Other clients may undelete what they flagged: those
	// messages must then be fetched too.
	w.faultsOn = false
	w.note(nil, "faults stop")
	if w.cfg.others && w.rng.IntN(2) == 0 {
		for _, name := range w.cfg.folders {
			w.otherUnflag(w.folders[name], true)
		}
	}
	limit := 6
	if w.cfg.maxPerPoll > 0 {
		limit += len(w.msgs) / w.cfg.maxPerPoll
	}
	quiet := false
	var last string
	for i := 0; i < limit && !w.aborted; i++ {
		err := w.poll()
		if err == nil && w.act.idle() {
			quiet = true
			break
		}
		last = fmt.Sprintf("error %v; fetched %v, removed %v, committed %v", err, w.act.fetched, w.act.removed, w.act.committed)
	}
	if w.aborted {
		return w
	}
	if !quiet {
		w.violate("not-quiet", nil, "%d polls without faults and none quiet; the last: %s", limit, last)
	}
	w.endChecks()
	return w
}

// endChecks: what must hold once the polls are quiet.
func (w *propWorld) endChecks() {
	w.note(nil, "end checks")
	w.snap = nil
	listed, amb := map[*propMsg]string{}, map[*propMsg]bool{}
	for i, l := range popListing(w.drop) {
		listed[w.drop[i]], amb[w.drop[i]] = l.UID, l.Ambiguous
	}
	for _, m := range w.msgs {
		if !m.present || (m.flagged && !m.flaggedByUs) {
			// Removed by us (checked then), taken by another client, or
			// flagged \Deleted by one: not ours.
			continue
		}
		uid := ledger.FormatUID(m.uid)
		if w.cfg.pop3 {
			uid = listed[m]
		}
		e, ok := w.snapEntry(m, uid)
		switch {
		case m.commits == 0 && ok && e.State == ledger.Adopted:
			// first_sync new: left upstream, never fetched, by design,
			// if it was there at the first sync.
			w.adopted++
			if !m.adoptable {
				w.violate("adopted", m, "adopted (recorded, never fetched) although it arrived after the first sync (%s)", m.traits())
			}
		case m.tooLarge:
			if !ok || e.State != ledger.TooLarge {
				w.violate("refused-record", m, "too large (%s), but under %q the ledger has %s", m.traits(), uid, propEntryString(e, ok))
			}
		case m.malformed || m.refuse != "":
			if !ok || e.State != ledger.Refused {
				w.violate("refused-record", m, "%s, but under %q the ledger has %s", m.traits(), uid, propEntryString(e, ok))
			}
		case m.commits == 0:
			w.violate("undelivered", m, "still upstream and never committed (%s, fetched %d times, under %q %s)", m.traits(), m.fetches, uid, propEntryString(e, ok))
		case w.cfg.keep:
		case ok && e.State == ledger.Adopted:
			// Known only by its fingerprint after a renumbering: never
			// deleted, by design.
		case amb[m]:
			// Listed with other messages under one UIDL: never removed
			// on the strength of the ledger, by design.
		case m.flaggedByUs:
			if !w.cfg.noUIDPlus {
				w.violate("stranded", m, "committed %d times, flagged \\Deleted by us and never expunged (%s)", m.commits, propEntryString(e, ok))
			}
		default:
			w.violate("left", m, "committed %d times and still upstream (%s)", m.commits, propEntryString(e, ok))
		}
	}
}

// ---- the test ----

type propResult struct {
	seed       uint64
	cfg        propConfig
	polls      int
	fired      map[string]int
	restarts   int
	removals   int
	msgs       int
	commits    int
	adopted    int
	renumbers  int
	meanwhiles int
	reused     int // POP3 messages under a UIDL deleted at QUIT
	shared     int // POP3 messages under a UIDL already in use
	windows    int // Commit→Record windows hit (duplicates allowed)
	duplicates int // commits beyond the first
	violations []propViolation
	reports    map[string]string // kind → the report of its first violation in this run
	traceLen   int
}

func (w *propWorld) result() *propResult {
	r := &propResult{seed: w.seed, cfg: w.cfg, polls: w.pollNo, violations: w.violations, reports: map[string]string{}, traceLen: len(w.trace),
		fired: w.fired, restarts: w.restarts, removals: w.removals, msgs: len(w.msgs),
		adopted: w.adopted, renumbers: w.renumbers, meanwhiles: w.meanwhiles}
	for _, m := range w.msgs {
		if strings.HasPrefix(m.origin, "reuses") {
			r.reused++
		} else if m.origin != "" {
			r.shared++
		}
		r.commits += m.commits
		r.windows += m.allowance
		r.duplicates += max(0, m.commits-1)
	}
	for _, v := range w.violations {
		if _, ok := r.reports[v.kind]; !ok {
			r.reports[v.kind] = w.report(v)
		}
	}
	return r
}

// report is one violation with the history of its message.
func (w *propWorld) report(v propViolation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d [%s]\n  %s: %s\n", w.seed, w.cfg, v.kind, v.text)
	var lines []string
	for _, l := range w.trace[:v.at] {
		global := l.serial == 0 && (strings.HasPrefix(l.text, "poll ") || strings.HasPrefix(l.text, "RESTART") ||
			strings.HasPrefix(l.text, "CRASH") || strings.HasPrefix(l.text, "PANIC") || strings.HasPrefix(l.text, "LEDGER") ||
			strings.HasPrefix(l.text, "faults stop") || strings.HasPrefix(l.text, "the server renumbers") ||
			strings.HasPrefix(l.text, "POP3 connection lost"))
		if global || (v.msg != nil && l.serial == v.msg.serial) || (v.msg == nil && l.serial == 0 && !strings.HasPrefix(l.text, "fault:")) {
			lines = append(lines, l.text)
		}
	}
	if len(lines) > 60 {
		fmt.Fprintf(&b, "    ... %d earlier lines\n", len(lines)-60)
		lines = lines[len(lines)-60:]
	}
	for _, l := range lines {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	fmt.Fprintf(&b, "  replay: go test -race -count=1 -run TestPropertyAccountLoop ./internal/account/ -v -args -prop.seed=%d", w.seed)
	return b.String()
}

func TestPropertyAccountLoop(t *testing.T) {
	tmp := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// fsync is free on tmpfs: the ledger's Sync costs nothing there.
		if d, err := os.MkdirTemp("/dev/shm", "remote_pull_prop"); err == nil {
			tmp = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	if *propSeed != 0 {
		w := propRun(*propSeed, tmp)
		for _, l := range w.trace {
			t.Log(l.text)
		}
		for _, v := range w.violations {
			t.Errorf("%s: %s", v.kind, v.text)
		}
		return
	}

	runs := *propRuns
	if runs <= 0 {
		runs = 2000
		if testing.Short() {
			runs = 300
		}
	}
	start := time.Now()
	results := make([]*propResult, runs)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), 8) { // SQLite gains little from more
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= runs {
					return
				}
				results[n] = propRun(*propBase+uint64(n), tmp).result()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	type kindStats struct {
		runs     []*propResult
		smallest *propResult
		count    int
	}
	stats := map[string]*kindStats{}
	failed, polls, imap := 0, 0, 0
	var total propResult
	total.fired = map[string]int{}
	for _, r := range results {
		polls += r.polls
		total.restarts += r.restarts
		total.removals += r.removals
		total.msgs += r.msgs
		total.commits += r.commits
		total.windows += r.windows
		total.duplicates += r.duplicates
		total.adopted += r.adopted
		total.renumbers += r.renumbers
		total.meanwhiles += r.meanwhiles
		total.reused += r.reused
		total.shared += r.shared
		for k, n := range r.fired {
			total.fired[k] += n
		}
		if !r.cfg.pop3 {
			imap++
		}
		if len(r.violations) > 0 {
			failed++
		}
		for kind := range r.reports {
			s := stats[kind]
			if s == nil {
				s = &kindStats{}
				stats[kind] = s
			}
			s.runs = append(s.runs, r)
			if s.smallest == nil || r.traceLen < s.smallest.traceLen {
				s.smallest = r
			}
		}
		for _, v := range r.violations {
			stats[v.kind].count++
		}
	}

	// One detailed report per broken invariant: its shortest run.
	for _, k := range propKinds {
		if s := stats[k.kind]; s != nil {
			t.Errorf("invariant broken: %s\n%s", k.desc, s.smallest.reports[k.kind])
		}
	}
	var sum strings.Builder
	fmt.Fprintf(&sum, "%d runs from seed %d (IMAP %d, POP3 %d), %d polls, in %v: %d runs broke an invariant\n",
		runs, *propBase, imap, runs-imap, polls, elapsed.Round(time.Millisecond), failed)
	fmt.Fprintf(&sum, "  exercised: %d messages, %d commits, %d upstream removals checked, %d restarts, "+
		"%d Commit→Record windows hit, %d duplicate deliveries;\n  %d POP3 UIDLs reused, %d shared, %d IMAP renumberings, "+
		"%d adopted at a first sync, %d events during a poll\n  faults fired:",
		total.msgs, total.commits, total.removals, total.restarts, total.windows, total.duplicates,
		total.reused, total.shared, total.renumbers, total.adopted, total.meanwhiles)
	for _, k := range propFaultKinds {
		fmt.Fprintf(&sum, " %s %d", k, total.fired[k])
	}
	sum.WriteString("\n")
	for _, k := range propKinds {
		s := stats[k.kind]
		if s == nil {
			continue
		}
		var seeds []string
		feat := map[string]int{}
		for _, r := range s.runs {
			if len(seeds) < 6 {
				seeds = append(seeds, strconv.FormatUint(r.seed, 10))
			}
			for _, f := range strings.Fields(r.cfg.String()) {
				if !strings.Contains(f, "=") || strings.HasPrefix(f, "keep=") {
					feat[f]++
				}
			}
		}
		var fs []string
		for f, n := range feat {
			fs = append(fs, fmt.Sprintf("%s %d", f, n))
		}
		sort.Strings(fs)
		fmt.Fprintf(&sum, "  %-15s %4d runs (%d violations), e.g. seeds %s\n  %15s among them: %s\n",
			k.kind, len(s.runs), s.count, strings.Join(seeds, " "), "", strings.Join(fs, ", "))
	}
	if failed > 0 {
		t.Errorf("summary: %s", sum.String())
	} else {
		t.Logf("summary: %s", sum.String())
	}
}
