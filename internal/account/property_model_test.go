package account

// The model of TestPropertyAccountLoop (property_test.go): the world a run
// plays in, the fake IMAP and POP3 upstreams and the fake maddy pipeline.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
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
)

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

	date   time.Time // INTERNALDATE: kept by a MOVE or COPY
	copyOf *propMsg  // a copy a user made upstream: the same message, counted with its original

	fetches int
	*propTally
}

// propTally counts the deliveries of one message, shared by every copy of
// it upstream: the user expects it once, whichever folder it is in.
type propTally struct {
	commits   int
	allowance int // duplicates allowed: crashes and ledger failures in its Commit→Record window, forget, dedupe none

	committedAt time.Time // the clock at its first commit, for delete_after
	from        []string  // the folder of each commit, as the loop opened it
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
	refusals                    int // upstream operations refused for good (cfg.refuse, a missing move_to)
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
	server   []string               // IMAP: the server's folders, in LIST order
	opened   map[string][]string    // IMAP: the names the loop opened each folder by
	clock    time.Time              // the account's Settings.Now
	lastGood time.Time              // the clock at the last successful poll (status ok or folder failing)
	down     int                    // polls left in an outage: login refused
	outage   time.Duration          // how far the clock moves at each poll of the outage
	// downloads: the bytes each asked-for message sent, when (the
	// provider's count, for download_budget).
	downloads []propDownload
	drop      []*propMsg // POP3 maildrop, in order
	freed     []*propMsg // POP3: deleted at QUIT, UIDL reusable
	nextUIDL  int
	// firstSync: max_age's cutoff at each folder's first sync, as the
	// model reckons it when the loop opens a folder the ledger has not
	// synced yet (the last such open is the sync that counts).
	firstSync map[string]time.Time

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

	fetching   *propMsg // the message being fetched, for the placement check
	openedAs   string   // the folder name the loop last opened
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
func (w *propWorld) keys(m *propMsg) []ledger.MailboxKey {
	if w.cfg.pop3 {
		return []ledger.MailboxKey{{Account: "acct", Mailbox: "INBOX"}}
	}
	var keys []ledger.MailboxKey
	for _, name := range w.names(m.folder) {
		keys = append(keys, ledger.MailboxKey{Account: "acct", Mailbox: name, UIDValidity: w.folders[m.folder].validity})
	}
	return keys
}

// names are the names the loop may know an upstream folder by: INBOX as
// the server says it, and as folders spells it.
func (w *propWorld) names(folder string) []string {
	names := []string{folder}
	if folder == "INBOX" {
		for _, e := range w.cfg.folders {
			if strings.EqualFold(e, "INBOX") && !slices.Contains(names, e) {
				names = append(names, e)
			}
		}
	}
	return names
}

// snapEntry is the entry under uid in a snapshot of the mailbox's ledger
// entries, taken at the first call for the mailbox since w.snap was reset
// (at the start of each poll, and for the end checks).
func (w *propWorld) snapEntry(m *propMsg, uid string) (ledger.Entry, bool) {
	if w.snap == nil {
		w.snap = map[ledger.MailboxKey]map[string]ledger.Entry{}
	}
	for _, key := range w.keys(m) {
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
		if e, ok := snap[uid]; ok {
			return e, true
		}
	}
	return ledger.Entry{}, false
}

// entry is the ledger's entry under the message's identity uid, now.
func (w *propWorld) entry(m *propMsg, uid string) (ledger.Entry, bool) {
	for _, key := range w.keys(m) {
		entries, err := w.checker.Entries(context.Background(), key)
		if err != nil {
			w.violate("test", m, "reading the ledger: %v", err)
			return ledger.Entry{}, false
		}
		for _, e := range entries {
			if e.UID == uid {
				return e, true
			}
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
			out[i].Extra = &source.MessageExtra{Base: m.uidl, Fingerprint: m.fp}
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
	m := &propMsg{serial: len(w.msgs) + 1, present: true, propTally: &propTally{}, date: w.clock}
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
	f := w.folders[w.server[w.rng.IntN(len(w.server))]]
	if w.cfg.space && w.rng.IntN(2) == 0 {
		f = w.folders["INBOX"]
	}
	m := w.newMsg(0)
	if w.cfg.space && w.rng.IntN(8) == 0 {
		// Old mail arriving now (imported, or a delayed delivery): its
		// INTERNALDATE is days back.
		m.date = w.clock.Add(-time.Duration(1+w.rng.IntN(240)) * time.Hour)
	}
	w.place(m, f)
	w.arrived(m, f.name)
}

// place puts m in folder f under the folder's next UID.
func (w *propWorld) place(m *propMsg, f *propFolder) {
	m.folder, m.uid = f.name, f.nextUID
	f.nextUID++
	f.msgs = append(f.msgs, m)
	if w.cfg.firstSync {
		// first_sync new adopts what a folder holds at its first sync.
		m.adoptable = true
		for _, name := range w.names(f.name) {
			if _, seen, err := w.checker.Mailbox(context.Background(), "acct", name); err != nil || seen {
				m.adoptable = false
			}
		}
	}
}

// synced reports whether the ledger holds a sync of the folder.
func (w *propWorld) synced(folder string) bool {
	for _, name := range w.names(folder) {
		if _, seen, err := w.checker.Mailbox(context.Background(), "acct", name); err != nil || seen {
			return true
		}
	}
	return false
}

// opening: the loop opens folder f. If the ledger has never synced it,
// this may be its first sync, where max_age applies: docs/reference.md,
// max_age: "at a folder's first sync, a message whose arrival date is
// older than this is recorded (as adopted) ... The age is measured from
// the earlier of now and the account's last successful poll"; "After the
// first sync there is no age bound".
func (w *propWorld) opening(f *propFolder) {
	if w.cfg.maxAge == 0 || w.synced(f.name) {
		return
	}
	ref := w.clock
	if !w.lastGood.IsZero() && w.lastGood.Before(ref) {
		ref = w.lastGood
	}
	if w.firstSync == nil {
		w.firstSync = map[string]time.Time{}
	}
	w.firstSync[f.name] = ref.Add(-w.cfg.maxAge)
}

// oldAtFirstSync: max_age may have adopted m, in its folder's first sync.
func (w *propWorld) oldAtFirstSync(m *propMsg) bool {
	cutoff, ok := w.firstSync[m.folder]
	return w.cfg.maxAge > 0 && ok && m.date.Before(cutoff)
}

// arrived notes an arrival; with first_sync new, a message that arrives
// while its folder was never synced may be adopted by the first sync.
func (w *propWorld) arrived(m *propMsg, folder string) {
	if w.cfg.firstSync {
		m.adoptable = true
		for _, name := range w.names(folder) {
			if _, seen, err := w.checker.Mailbox(context.Background(), "acct", name); err != nil || seen {
				m.adoptable = false
			}
		}
	}
	w.note(m, "arrives: %s", m.traits())
}

// otherClients: another IMAP client flags \Deleted, undeletes, expunges.
func (w *propWorld) otherClients() {
	for _, name := range w.server {
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
		w.renumber(w.folders[w.server[w.rng.IntN(len(w.server))]])
	}
	if w.cfg.space {
		w.spaceEvents()
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
	if w.down > 0 {
		w.down--
		w.note(nil, "login refused for now: the upstream is down (%d more polls)", w.down)
		if w.cfg.quota {
			return nil, &source.QuotaError{Err: errors.New("NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)")}
		}
		return nil, &source.AuthError{Err: errors.New("NO [UNAVAILABLE] authentication service unavailable")}
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
	if strings.EqualFold(name, "INBOX") {
		f = w.folders["INBOX"] // RFC 3501: INBOX in any case
	}
	if f == nil {
		return nil, fmt.Errorf("SELECT %s: NO no such mailbox", name)
	}
	w.opening(f)
	w.opened[f.name] = append(w.opened[f.name], name)
	w.openedAs = name
	return &propIMAPBox{s: s, f: f, validity: f.validity, name: name}, nil
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
	w.fetching = m
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
	if w.unasked != m {
		// What the loop asked for; a message the server sends on its own
		// is the server's doing (a real provider would not send it).
		w.downloads = append(w.downloads, propDownload{at: w.clock, bytes: int64(len(r.data)), m: m})
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
	name     string // as the loop opened it
}

func (b *propIMAPBox) UIDValidity() uint32 { return b.validity }
func (b *propIMAPBox) Complete() bool      { return false }
func (b *propIMAPBox) UIDNext() uint32     { return b.f.nextUID }

func (b *propIMAPBox) List(_ context.Context, floor uint32) ([]source.Message, error) {
	if err := b.s.listFaults(); err != nil {
		return nil, err
	}
	var out []source.Message
	for _, m := range b.f.msgs {
		if m.uid >= floor {
			out = append(out, source.Message{UID: ledger.FormatUID(m.uid), Size: m.size, Deleted: m.flagged, Date: m.date})
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
	how, dest := b.how(), w.folders[w.dest()]
	switch how {
	case "none":
		return nil, nil
	case "move", "copy":
		if dest == nil && w.cfg.moveTo != "" {
			// NO [TRYCREATE]: imapsrc creates the move_to folder and
			// tries once more (docs/reference.md, move_to).
			dest = w.createFolder(w.cfg.moveTo)
		}
		if dest == nil || w.cfg.refuse[b.f.name] == how {
			w.act.refusals++
			if dest == nil {
				return nil, &source.FolderError{Err: fmt.Errorf("UID %s to %q: NO [TRYCREATE] no such mailbox", strings.ToUpper(how), w.dest())}
			}
			return nil, &source.FolderError{Err: fmt.Errorf("UID %s to %q: NO [CANNOT] permission denied", strings.ToUpper(how), dest.name)}
		}
		for _, m := range targets {
			if how == "move" {
				w.removedByUs(m, ledger.FormatUID(m.uid), fmt.Sprintf("moved by us (UID MOVE) to %s", dest.name))
				w.gone(m, "us")
				m.present, m.goneBy = true, ""
				w.place(m, dest)
				w.note(m, "now in %s (moved by us)", dest.name)
			} else {
				c := w.copyMsg(m, dest)
				w.note(c, "copied by us (UID COPY) from %s UID %d", m.folder, m.uid)
			}
		}
		if how == "move" {
			return uids, nil
		}
	}
	if w.cfg.refuse[b.f.name] == "store" {
		w.act.refusals++
		return nil, &source.FolderError{Err: errors.New("UID STORE: NO [CANNOT] permission denied (read-only folder)")}
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
	if how == "flag" {
		return nil, nil
	}
	if w.cfg.refuse[b.f.name] == "expunge" {
		w.act.refusals++
		return nil, &source.FolderError{Err: errors.New("UID EXPUNGE: NO [CANNOT] expunge refused")}
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
	w     *propWorld
	m     *propMsg
	inst  *propMsg // the upstream copy being delivered
	place delivery.Placement
	hdr   textproto.Header
	body  buffer.Buffer
}

func propTemp(step string) error {
	return &exterrors.SMTPError{Code: 451, EnhancedCode: exterrors.EnhancedCode{4, 3, 0}, Message: "storage busy at " + step}
}

func (p *propPipeline) Start(_ context.Context, meta *module.MsgMetadata, _ string) (module.Delivery, error) {
	w := p.w
	place, _ := delivery.PlacementOf(meta.ID)
	if w.fault("start-451") {
		return nil, propTemp("Start")
	}
	if w.fault("crash-start") {
		w.crash("in Start")
	}
	return &propDelivery{w: w, inst: w.fetching, place: place}, nil
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
	if d.inst != nil {
		w.copyAllowed(m, d.inst.folder)
		m.from = append(m.from, d.inst.folder+" as "+w.openedAs)
	}
	w.commit(m, d.hdr, d.body)
	w.checkPlacement(d.inst, d.place)
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
	if m.commits == 1 {
		m.committedAt = w.clock
	}
	w.act.committed = append(w.act.committed, m.id)
	w.note(m, "COMMITTED (%d times now, %d allowed)", m.commits, 1+m.allowance)
	if m.commits > 1+m.allowance {
		w.violate("twice", m, "committed %d times (from %s); crashes or ledger failures in its Commit→Record window allow %d", m.commits, strings.Join(m.from, ", "), 1+m.allowance)
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

// ---- the configuration space (issue 19) ----
//
// A run with cfg.space polls a server of several folders through folder
// patterns, INBOX spelled any way, exclusions, move_to inside or outside
// what is polled, mark_seen, delete_after, max_age, dedupe and
// local_folders mirror; users file, copy, flag and delete mail; the server
// may be restored from a backup, be down for longer than max_age, refuse an
// operation for good; the admin reloads, runs retry, and forgets the
// account. The model says what should happen: polls, below.

// propServerFolders are the server's folders in a cfg.space run; Trash is
// the \Trash folder (SPECIAL-USE), Missing is named by no LIST.
var propServerFolders = []string{"INBOX", "Archive", "Work", "Lists/a", "Lists/b", "Trash", "Done"}

// propGlob matches a folders pattern as internal/account's policy.FolderSet does:
// * any run of characters (separators too), ? one character.
func propGlob(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if propGlob(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && propGlob(p[1:], s[1:])
	}
	return s != "" && p[0] == s[0] && propGlob(p[1:], s[1:])
}

func propMatches(entry, folder string) bool {
	if strings.EqualFold(folder, "INBOX") && strings.EqualFold(entry, "INBOX") {
		return true
	}
	return propGlob(entry, folder)
}

// polls is the model's word on whether the account polls a folder: named
// or matched by folders, INBOX in any case, not excluded, and never the
// disposal folder (disposalFolder).
func (w *propWorld) polls(folder string) bool {
	if w.cfg.pop3 {
		return true
	}
	if d := w.disposalFolder(); d != "" && policy.SameFolder(folder, d) {
		return false
	}
	for _, x := range w.cfg.exclude {
		if propMatches(x, folder) {
			return false
		}
	}
	for _, e := range w.cfg.folders {
		if propMatches(e, folder) {
			return true
		}
	}
	return false
}

// disposal is how delivered messages leave a folder (keep no), as
// imapsrc.Session.disposal decides from the capabilities and move_to:
// "expunge", "move" or "copy" (to dest), "flag" (\Deleted only), "none".
// docs/reference.md, keep: without UIDPLUS, MOVE to the folder marked
// \Trash, or "with no such folder, they are only flagged \Deleted".
func (w *propWorld) disposal() string {
	uidplus := !w.cfg.noUIDPlus
	switch {
	case w.cfg.moveTo != "" && w.cfg.move:
		return "move"
	case w.cfg.moveTo != "" && uidplus:
		return "copy"
	case w.cfg.moveTo != "":
		return "none"
	case uidplus:
		return "expunge"
	case w.cfg.move && w.folders["Trash"] != nil:
		return "move" // to the \Trash folder
	}
	return "flag"
}

// disposalFolder is the folder the account must never poll, or "":
// docs/reference.md, folders: "Where delivered messages are moved upstream
// (move_to, or the \Trash of a server without UIDPLUS, with keep no or
// delete_after), that folder is never polled"; move_to: "FOLDER is never
// polled" (whether or not the server can move anything there).
func (w *propWorld) disposalFolder() string {
	switch {
	case w.cfg.pop3 || (w.cfg.keep && w.cfg.deleteAfter == 0):
		return ""
	case w.cfg.moveTo != "":
		return w.cfg.moveTo
	case w.disposal() == "move":
		return "Trash"
	}
	return ""
}

// DisposalFolder (source.Disposer), as imapsrc.Session's: move_to, or the
// Trash that MOVE without UIDPLUS puts messages in.
func (s *propSession) DisposalFolder(context.Context) (string, error) {
	w := s.w
	if s.dead {
		return "", errPropClosed
	}
	switch {
	case w.cfg.pop3:
		return "", nil
	case w.cfg.moveTo != "":
		return w.cfg.moveTo, nil
	case w.disposal() == "move":
		return "Trash", nil
	}
	return "", nil
}

// dest is where "move" and "copy" put delivered messages.
func (w *propWorld) dest() string {
	if w.cfg.moveTo != "" {
		return w.cfg.moveTo
	}
	return "Trash"
}

// how is the disposal for this folder, as imapsrc.Mailbox.Disposal: the
// destination folder itself keeps its messages.
func (b *propIMAPBox) how() string { return b.s.w.howIn(b.f.name) }

func (w *propWorld) howIn(folder string) string {
	how := w.disposal()
	if (how == "move" || how == "copy") && folder == w.dest() {
		if w.cfg.moveTo == "" {
			return "flag"
		}
		return "none"
	}
	return how
}

// Disposal (source.MailboxDisposer), as imapsrc.Mailbox.Disposal.
func (b *propIMAPBox) Disposal(context.Context) (source.Removal, error) {
	w := b.s.w
	switch b.how() {
	case "flag":
		return source.Removal{Mode: source.RemoveFlagOnly}, nil
	case "none":
		return source.Removal{Mode: source.RemoveNothing}, nil
	case "copy":
		return source.Removal{Mode: source.RemoveCopyTo, Folder: w.dest()}, nil
	case "move":
		if w.cfg.moveTo == "" {
			return source.Removal{Mode: source.RemoveToTrash, Folder: w.dest()}, nil
		}
		return source.Removal{Mode: source.RemoveMoveTo, Folder: w.dest()}, nil
	}
	return source.Removal{Mode: source.RemoveExpunge}, nil
}

// MarkSeen sets \Seen, unless the folder refuses STORE for good.
func (b *propIMAPBox) MarkSeen(_ context.Context, uids []string) error {
	s, w := b.s, b.s.w
	if s.dead {
		return errPropClosed
	}
	if r := w.cfg.refuse[b.f.name]; r == "store" || r == "seen" {
		w.act.refusals++
		return &source.FolderError{Err: errors.New("UID STORE +FLAGS (\\Seen): NO [CANNOT] permission denied (read-only folder)")}
	}
	w.note(nil, "%s: \\Seen set on %d messages", b.f.name, len(uids))
	return nil
}

// createFolder is the server's CREATE: a new, empty folder, listed.
func (w *propWorld) createFolder(name string) *propFolder {
	f := &propFolder{name: name, validity: uint32(100 * (len(w.server) + 1)), nextUID: 1}
	w.folders[name] = f
	w.server = append(slices.Clone(w.server), name)
	w.note(nil, "CREATE %s (the move_to folder, after [TRYCREATE])", name)
	return f
}

// Folders: LIST (source.FolderLister).
func (s *propSession) Folders(context.Context) ([]string, error) {
	if s.dead {
		return nil, errPropClosed
	}
	return slices.Clone(s.w.server), nil
}

// copyMsg puts a copy of m in dest: the same message to the user (its
// deliveries are counted together), under a new UID.
func (w *propWorld) copyMsg(m *propMsg, dest *propFolder) *propMsg {
	c := *m
	c.serial = len(w.msgs) + 1
	c.copyOf, c.flagged, c.flaggedByUs, c.fetches = m, false, false, 0
	if m.copyOf != nil {
		c.copyOf = m.copyOf
	}
	w.msgs = append(w.msgs, &c)
	w.place(&c, dest)
	return &c
}

// filed: a user moved or copied m into folder to. With dedupe none the
// admin accepted that a message filed into a polled folder after its
// delivery, or copied to one, arrives again; so with the default when one folder is polled (issue 19 item 7
// makes the default safe only where several are).
func (w *propWorld) filed(m *propMsg, to string, copied bool) {
	polled := 0
	for _, f := range w.server {
		if w.polls(f) {
			polled++
		}
	}
	off := w.cfg.dedupe == "none" || (w.cfg.dedupe == "" && polled == 1 && !propDefaultDedupe(w.cfg))
	if off && w.polls(to) && (m.commits > 0 || copied) {
		m.allowance++
		w.note(m, "dedupe off: filed into a polled folder, one more delivery allowed (%d)", m.allowance)
	}
}

// copyAllowed: with dedupe off when it is delivered (a reload may have
// turned it off since the copy was filed), a copy in a folder the message
// was not yet delivered from may arrive once more: docs/reference.md,
// dedupe: "dedupe none delivers every copy in every folder once per
// folder".
func (w *propWorld) copyAllowed(m *propMsg, folder string) {
	on := w.cfg.dedupe == "message_id" || (w.cfg.dedupe == "" && propDefaultDedupe(w.cfg))
	if on || m.commits < 1+m.allowance || slices.ContainsFunc(m.from, func(f string) bool { return strings.HasPrefix(f, folder+" as ") }) {
		return
	}
	m.allowance++
	w.note(m, "dedupe off: a copy in %s, a folder it was not delivered from: one more delivery allowed (%d)", folder, m.allowance)
}

// checkPlacement: local_folders mirror puts a message in the local folder
// named as its upstream one; otherwise everything goes to INBOX.
func (w *propWorld) checkPlacement(m *propMsg, p delivery.Placement) {
	if m == nil || w.cfg.pop3 {
		return
	}
	want := ""
	if w.cfg.mirror && !strings.EqualFold(m.folder, "INBOX") {
		want = m.folder
	}
	if p.Folder != want {
		w.violate("placed", m, "delivered to local folder %q, not %q (local_folders mirror %v)", p.Folder, want, w.cfg.mirror)
	}
}

// spaceEvents: users, the server and the admin, between polls.
func (w *propWorld) spaceEvents() {
	c := &w.cfg
	step := time.Duration(1+w.rng.IntN(180)) * time.Minute
	if c.deleteAfter > 0 && w.rng.IntN(3) == 0 {
		step += c.deleteAfter
	}
	w.clock = w.clock.Add(step)
	if c.users {
		for range w.rng.IntN(3) {
			w.userActs()
		}
	}
	if c.restore && w.rng.IntN(6) == 0 {
		w.restoreFolder(w.folders[w.server[w.rng.IntN(len(w.server))]])
	}
	if c.outage && w.down == 0 && w.rng.IntN(5) == 0 {
		// Longer than max_age (or two days): mail goes on arriving.
		w.down = 2 + w.rng.IntN(3)
		long := max(c.maxAge, 48*time.Hour) + 24*time.Hour
		w.note(nil, "OUTAGE: login refused for %d polls, %v", w.down, long)
		w.outage = long / time.Duration(w.down)
	}
	if w.down > 0 {
		w.clock = w.clock.Add(w.outage)
	}
	switch r := w.rng.IntN(40); {
	case r < 3 && c.reloads:
		w.reload()
	case r < 5 && c.retries:
		tooLarge := w.rng.IntN(2) == 0
		states := []ledger.State{ledger.Refused}
		if tooLarge {
			states = append(states, ledger.TooLarge)
		}
		n, err := w.led.Retry(context.Background(), "acct", states, "", nil)
		w.note(nil, "ADMIN: remote-pull retry (too large too: %v): %d entries dropped, error %v", tooLarge, n, err)
	case r < 6 && c.forgets:
		w.forget()
	}
}

// userActs: a user files (MOVE), copies, flags or deletes one message.
func (w *propWorld) userActs() {
	var cand []*propMsg
	for _, name := range w.server {
		for _, m := range w.folders[name].msgs {
			if !m.flagged {
				cand = append(cand, m)
			}
		}
	}
	if len(cand) == 0 {
		return
	}
	m := cand[w.rng.IntN(len(cand))]
	to := w.folders[w.server[w.rng.IntN(len(w.server))]]
	switch r := w.rng.IntN(10); {
	case r < 4 && to.name != m.folder:
		from := m.folder
		w.gone(m, "other")
		m.present, m.goneBy = true, ""
		w.place(m, to)
		w.note(m, "a user moves it from %s (committed %d times)", from, m.commits)
		w.filed(m, to.name, false)
	case r < 6 && to.name != m.folder:
		c := w.copyMsg(m, to)
		w.note(c, "a user copies %s here from %s UID %d (committed %d times)", m.id, m.folder, m.uid, m.commits)
		w.filed(c, to.name, true)
	case r < 8:
		w.note(m, "a user flags it \\Flagged")
	default:
		w.note(m, "a user deletes it (expunged; committed %d times)", m.commits)
		w.gone(m, "other")
	}
}

// restoreFolder: the server is restored from a backup taken a few
// messages ago: same UIDVALIDITY, UIDNEXT goes back, the newer messages
// are gone and their UIDs will name other messages.
func (w *propWorld) restoreFolder(f *propFolder) {
	back := uint32(1 + w.rng.IntN(4))
	if f.nextUID <= back+1 {
		return
	}
	f.nextUID -= back
	w.note(nil, "RESTORE of %s from a backup: UIDNEXT back to %d, UIDVALIDITY %d unchanged", f.name, f.nextUID, f.validity)
	for _, m := range slices.Clone(f.msgs) {
		if m.uid >= f.nextUID {
			w.note(m, "lost in the restore (committed %d times)", m.commits)
			w.gone(m, "other")
		}
	}
	for range w.rng.IntN(4) {
		m := w.newMsg(0)
		w.place(m, f)
		w.arrived(m, f.name)
	}
}

// reload: maddy reloads its configuration: a new Account on the same
// ledger, options maybe changed (folders, keep and max_age stay).
func (w *propWorld) reload() {
	old := w.cfg
	w.spaceOptions()
	w.cfg.maxAge = old.maxAge
	w.acc = New(w.settings())
	w.note(nil, "RELOAD: new Account, %s", w.cfg)
}

// forget: the admin takes the account out of maddy.conf, reloads, runs
// remote-pull forget, and later puts it back: a new import, asked for.
func (w *propWorld) forget() {
	n, err := w.led.ForgetAccount(context.Background(), "acct", true) // maddy runs; the reload stopped the account
	w.note(nil, "ADMIN: account removed, remote-pull forget (%d entries, error %v), account added again: a new import", n, err)
	w.lastGood = time.Time{}
	for _, m := range w.msgs {
		if m.copyOf == nil && m.commits > 0 {
			m.allowance++
		}
		if m.present {
			m.adoptable = w.cfg.firstSync
		}
		if m.flaggedByUs {
			// Our \Deleted flag is now like anyone's: without its
			// ledger the account cannot tell it set it (reference.md,
			// forget: "Drops the ledger data"), so leaves it.
			m.flaggedByUs = false
		}
	}
	w.acc = New(w.settings())
}

// removalRefused: delivered messages cannot leave this folder (keep no):
// the server refuses the removal for good, move_to names a folder that
// does not exist, or the disposal removes nothing here.
func (w *propWorld) removalRefused(folder string) bool {
	how := w.howIn(folder)
	switch r := w.cfg.refuse[folder]; {
	case how == "none":
		return true
	case (how == "move" || how == "copy") && (w.folders[w.dest()] == nil || r == how):
		return true
	case how != "move" && (r == "store" || (r == "expunge" && how != "flag")):
		return true
	}
	return false
}

func (w *propWorld) missingMoveTo() int {
	if how := w.disposal(); (how == "move" || how == "copy") && w.folders[w.dest()] == nil && !w.cfg.keep {
		return 1
	}
	return 0
}

func (w *propWorld) refusedOps() string {
	var ops []string
	for f, op := range w.cfg.refuse {
		ops = append(ops, op+" in "+f)
	}
	if w.missingMoveTo() > 0 {
		ops = append(ops, "move_to "+w.dest()+": no such folder")
	}
	sort.Strings(ops)
	return strings.Join(ops, ", ")
}

// propDownload is one message's bytes sent at a time, as the provider
// counts them.
type propDownload struct {
	at    time.Time
	bytes int64
	m     *propMsg
}

// checkBudget: the downloads of the last 24 hours stay within the
// budget, unless they are one message larger than the whole budget.
func (w *propWorld) checkBudget() {
	if w.cfg.budget <= 0 {
		return
	}
	var sum int64
	var in []string
	for _, d := range w.downloads {
		if d.at.After(w.clock.Add(-budgetWindow)) {
			sum += d.bytes
			in = append(in, fmt.Sprintf("%s %dB", d.m.id, d.bytes))
		}
	}
	if sum > w.cfg.budget && len(in) > 1 {
		w.violate("overspent", nil, "%d bytes downloaded in the 24 hours to %s, budget %d: %s",
			sum, w.clock.Format(time.DateTime), w.cfg.budget, strings.Join(in, ", "))
	}
}
