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
// The configuration space (issue 19). Half the IMAP runs (cfg.space) poll
// a server of several folders (propServerFolders) with a configuration
// drawn from what start accepts (propAccepted mirrors internal/config):
// folder patterns, INBOX in any case, overlapping patterns, exclusions;
// keep; move_to inside, outside or missing from what is polled;
// mark_seen; delete_after; max_age; dedupe; local_folders mirror; MOVE or
// not. Between polls users file (MOVE: a new UID in the target folder),
// copy, flag and delete mail; the server may be restored from a backup
// (same UIDVALIDITY, UIDNEXT back, old UIDs given to new messages), be
// down for longer than max_age (login refused, NO [UNAVAILABLE], on a
// fake clock: Settings.Now), refuse STORE, EXPUNGE, MOVE or COPY in one
// folder for good; the admin reloads (a new Account on the same ledger,
// options changed), runs retry, or forgets the account and adds it back.
// The model (polls, disposal) says which folders the account must poll:
// never the one delivered messages are moved to. A message and its copies
// count as one for twice and undelivered. More invariants:
//
//   - aged: max_age adopts (never delivers) only mail that was older than
//     max_age at the last good poll: not mail that arrived in an outage.
//   - stalled: a removal or \Seen refused for good, or a missing move_to
//     folder, holds up no mail, in that folder or any other (liveness:
//     new mail is delivered within the few polls after faults stop).
//   - placed: with local_folders mirror a message lands in the local
//     folder named as its upstream one; otherwise in INBOX.
//   - keep also allows delete_after's removals, once the message was
//     delivered that long ago by the fake clock; undelivered also accepts
//     a duplicate record (dedupe) of a message committed from elsewhere.
//
// Flags (after -args): -prop.runs=N (default 2000, 300 with -short),
// -prop.base=S (first seed), -prop.seed=S (replay one run, whole trace).
// The report gives, for each broken invariant, its shortest failing run.
// A longer run, e.g. before a release or after touching poll.go:
//
//	go test -count=1 -timeout 60m ./internal/account/ -run TestPropertyAccountLoop -args -prop.runs=50000 -prop.base=1000000
//
// (about 40 ms of CPU a run: 50,000 runs take half an hour on two cores).
// Measured on two shared cores: the default 2,000 runs in about a minute;
// -prop.runs=6000 -prop.base=2001 in 2m20s.

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
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
	{"aged", "max_age: adopted (never delivered) mail that was not older than max_age at the last good poll"},
	{"stalled", "liveness: mail in a polled folder never delivered while an upstream operation keeps being refused"},
	{"placed", "local_folders: delivered to the wrong local folder"},
	{"overspent", "download_budget: more bytes asked for in 24 hours than the budget (but for one message larger than it, alone)"},
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

	// The configuration space (IMAP, issue 19): folders holds names and
	// patterns, the server has propServerFolders.
	space       bool
	exclude     []string
	moveTo      string
	move        bool // the server has MOVE
	markSeen    bool
	deleteAfter time.Duration
	maxAge      time.Duration
	dedupe      string // "" (the default), "none", "message_id"
	mirror      bool   // local_folders mirror
	refuse      map[string]string
	users       bool  // users move, copy, flag and delete upstream
	restore     bool  // the server is restored from a backup (UIDs reused)
	outage      bool  // login refused for longer than max_age
	quota       bool  // the outage is Gmail's [OVERQUOTA] instead: the account pauses
	budget      int64 // download_budget in bytes; 0: none
	reloads     bool
	retries     bool
	forgets     bool
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
	if c.budget > 0 {
		fmt.Fprintf(&b, " download_budget=%d", c.budget)
	}
	if c.space {
		fmt.Fprintf(&b, " folders:%s", strings.Join(c.folders, ","))
		if len(c.exclude) > 0 {
			fmt.Fprintf(&b, " exclude:%s", strings.Join(c.exclude, ","))
		}
		if c.moveTo != "" {
			fmt.Fprintf(&b, " move_to:%s", c.moveTo)
		}
		if c.deleteAfter > 0 {
			fmt.Fprintf(&b, " delete_after:%v", c.deleteAfter)
		}
		if c.maxAge > 0 {
			fmt.Fprintf(&b, " max_age:%v", c.maxAge)
		}
		if c.dedupe != "" {
			fmt.Fprintf(&b, " dedupe:%s", c.dedupe)
		}
		for folder, op := range c.refuse {
			fmt.Fprintf(&b, " refuses:%s:%s", folder, op)
		}
		for _, f := range []struct {
			on   bool
			name string
		}{{c.move, "MOVE"}, {c.markSeen, "mark_seen"}, {c.mirror, "mirror"}, {c.users, "users"}, {c.restore, "restore"},
			{c.outage, "outage"}, {c.quota, "over-quota"}, {c.reloads, "reload"}, {c.retries, "retry"}, {c.forgets, "forget"}} {
			if f.on {
				b.WriteString(" " + f.name)
			}
		}
	}
	fmt.Fprintf(&b, " rounds=%d faults=%s", c.rounds, strings.Join(c.faults, ","))
	return b.String()
}

// removedByUs checks the moment a message is removed upstream by the loop.
func (w *propWorld) removedByUs(m *propMsg, uid, how string) {
	e, ok := w.entry(m, uid)
	w.removals++
	w.act.removed = append(w.act.removed, m.id)
	w.note(m, "%s; committed %d times, %s", how, m.commits, propEntryString(e, ok))
	if w.cfg.keep && (w.cfg.deleteAfter == 0 || m.commits == 0 || w.clock.Sub(m.committedAt) < w.cfg.deleteAfter) {
		w.violate("keep", m, "%s with keep yes (delete_after %v, delivered at %s, now %s)", how, w.cfg.deleteAfter,
			m.committedAt.Format(time.DateTime), w.clock.Format(time.DateTime))
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

// ---- the run ----

func (w *propWorld) settings() Settings {
	return Settings{
		Name: "acct", Upstream: &propUpstream{w}, Ledger: w.led, Log: w.quiet,
		Policy: policy.Policy{Folders: propCanonical(w.cfg.folders), ExcludeFolders: propCanonical(w.cfg.exclude),
			Keep: w.cfg.keep, PollInterval: time.Minute,
			MaxMessageSize: w.cfg.maxSize, MaxMessagesPerPoll: w.cfg.maxPerPoll, FirstSyncNew: w.cfg.firstSync,
			MarkSeen: w.cfg.markSeen, DeleteAfter: w.cfg.deleteAfter, MaxAge: w.cfg.maxAge,
			Dedupe:        w.cfg.dedupe == "message_id" || (w.cfg.dedupe == "" && propDefaultDedupe(w.cfg)),
			MirrorFolders: w.cfg.mirror, DownloadBudget: w.cfg.budget},
		Now: func() time.Time { return w.clock },
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

// propDefaultDedupe is internal/config's default for dedupe, mirrored here
// (the property test cannot import internal/config, which imports this
// package): message_id when several folders are, or through a pattern
// may be, polled (config.go, severalFolders).
func propDefaultDedupe(c propConfig) bool {
	fs := policy.NewFolderSet(propCanonical(c.folders), propCanonical(c.exclude))
	return fs.Dynamic() || len(fs.Literal()) > 1
}

// propCanonical is what internal/config makes of a list of folders
// (canonicalFolders): INBOX in any case spelled so, each name once.
func propCanonical(names []string) []string {
	var out []string
	for _, n := range names {
		if n = policy.CanonicalFolder(n); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// propAccepted mirrors the checks of internal/config's parseAccount that
// refuse a combination at start (config.go, "mark_seen is for keep yes",
// "move_to is for keep no", "delete_after is for keep yes"; POP3 takes
// none of the IMAP-only directives), plus issue 19 item 3: a literal
// folders entry naming the move_to folder is refused. The model generates
// only what start accepts.
func propAccepted(c propConfig) bool {
	switch {
	case c.markSeen && !c.keep, c.moveTo != "" && c.keep, c.deleteAfter > 0 && !c.keep:
		return false
	case c.pop3 && (c.space || c.moveTo != "" || c.markSeen || c.maxAge > 0 || c.mirror || len(c.exclude) > 0):
		return false
	}
	for _, e := range c.folders {
		if c.moveTo != "" && !policy.IsFolderPattern(e) && (e == c.moveTo || strings.EqualFold(e, "INBOX") && strings.EqualFold(c.moveTo, "INBOX")) {
			return false
		}
	}
	return true
}

// spaceConfig draws a cfg.space run's folders and options.
func (w *propWorld) spaceConfig() {
	c, rng := &w.cfg, w.rng
	inbox := []string{"INBOX", "inbox", "Inbox"}[rng.IntN(3)]
	c.folders = [][]string{
		{inbox}, {inbox, "Work"}, {"*"}, {inbox, "*"}, {"INBOX", "Lists/*", "Work"},
		{"*", "Lists/*"}, {"?ork", inbox, "Arch*"}, {inbox, "Archive"},
	}[rng.IntN(8)]
	c.exclude = [][]string{nil, nil, {"Trash"}, {"Lists/b"}, {"T*", "Done"}}[rng.IntN(5)]
	c.move = rng.IntN(2) == 0
	if rng.IntN(4) == 0 {
		c.maxAge = []time.Duration{48 * time.Hour, 7 * 24 * time.Hour}[rng.IntN(2)]
	}
	if rng.IntN(4) == 0 {
		c.refuse = map[string]string{w.server[rng.IntN(len(w.server))]: []string{"store", "expunge", "move", "copy", "seen"}[rng.IntN(5)]}
	}
	c.users = rng.IntN(3) > 0
	c.restore = rng.IntN(5) == 0
	c.outage = rng.IntN(4) == 0
	c.reloads = rng.IntN(4) == 0
	c.retries = rng.IntN(4) == 0
	c.forgets = rng.IntN(8) == 0
	w.spaceOptions()
}

// spaceOptions draws the options a reload may change, until start would
// accept them.
func (w *propWorld) spaceOptions() {
	c, rng := &w.cfg, w.rng
	for {
		c.moveTo, c.markSeen, c.deleteAfter = "", false, 0
		if rng.IntN(2) == 0 {
			c.moveTo = []string{"Archive", "Trash", "Done", "Missing", "Work"}[rng.IntN(5)]
		}
		c.markSeen = rng.IntN(3) == 0
		if rng.IntN(3) == 0 {
			c.deleteAfter = []time.Duration{time.Hour, 30 * time.Hour, 72 * time.Hour}[rng.IntN(3)]
		}
		c.dedupe = []string{"", "none", "message_id"}[rng.IntN(3)]
		c.mirror = rng.IntN(3) == 0
		if propAccepted(*c) {
			return
		}
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
	died := false
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
			died = !c.recovered
			err = fmt.Errorf("%w: crash %s", errInternal, c.where)
		}()
		res, err = w.acc.Poll(context.Background())
	}()
	w.note(nil, "poll %d ends: %+v, error: %v", w.pollNo, res, err)
	if class := classify(err); !died && !w.aborted {
		// What Run does after a poll: the status, its last success
		// (saved in the ledger, read again by New), which max_age
		// measures from. A poll whose only errors are some folders'
		// is a success there ("folder failing", docs/reference.md).
		// A pause (over quota, the budget paced) is waited out, as Run
		// waits it out before the next poll.
		wait := w.acc.settle(context.Background(), res, err)
		if class == classOK || class == classFolder || class == classPaced {
			w.lastGood = w.clock
		}
		w.checkBudget()
		if class.pauses() {
			w.note(nil, "paused (%s) for %v", class.state(), wait)
			w.clock = w.clock.Add(wait)
		}
	}
	w.sess = nil
	if w.restartDue != "" && !w.aborted {
		w.restart(w.restartDue)
	}
	return err
}

func newPropWorld(seed uint64, dir string) *propWorld {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	w := &propWorld{seed: seed, rng: rng, byID: map[string]*propMsg{}, folders: map[string]*propFolder{}, opened: map[string][]string{},
		clock: time.Now().Truncate(time.Second),
		prob:  map[string]float64{}, fired: map[string]int{}, dir: dir, path: filepath.Join(dir, "ledger.db"),
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
		w.server = c.folders
		if c.space = rng.IntN(2) == 0; c.space {
			w.server = propServerFolders
			w.spaceConfig()
		}
		for i, name := range w.server {
			w.folders[name] = &propFolder{name: name, validity: uint32(100 * (i + 1)), nextUID: 1 + uint32(rng.IntN(50))}
		}
	}
	// Provider limits draw from their own stream, so that the runs
	// without them stay as they were.
	limits := rand.New(rand.NewPCG(seed, 0xb0d6e7))
	if limits.IntN(5) == 0 {
		c.budget = int64(1500 + limits.IntN(6000))
	}
	c.quota = c.outage && limits.IntN(2) == 0
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
	w.down = 0
	if w.cfg.others && w.rng.IntN(2) == 0 {
		for _, name := range w.server {
			w.otherUnflag(w.folders[name], true)
		}
	}
	limit := 6
	if w.cfg.maxPerPoll > 0 {
		limit += len(w.msgs) / w.cfg.maxPerPoll
	}
	if w.cfg.budget > 0 {
		// A window's worth a poll, and one more poll that finds the
		// budget spent, per window.
		var total int64
		for _, m := range w.msgs {
			total += m.size
		}
		limit += 2 * int(total/w.cfg.budget+2)
	}
	quiet := false
	var last string
	for i := 0; i < limit && !w.aborted; i++ {
		err := w.poll()
		// A removal refused for good is tried again at every poll
		// (our STORE may come before the refused EXPUNGE): not work.
		if (err == nil && w.act.idle()) || (w.act.refusals > 0 && len(w.act.fetched)+len(w.act.committed) == 0) {
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
		if !m.present || (m.flagged && !m.flaggedByUs) || !w.polls(m.folder) {
			// Removed by us (checked then), taken by another client, or
			// flagged \Deleted by one: not ours. Or in a folder the
			// account does not poll.
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
			// if it was there at the first sync; max_age: if it was older
			// than max_age at the last good poll.
			w.adopted++
			switch {
			case m.adoptable || w.oldAtFirstSync(m):
			case w.cfg.maxAge > 0:
				w.violate("aged", m, "adopted (recorded, never fetched) although its INTERNALDATE %s was within max_age %v of the last good poll before its folder's first sync (cutoff %s; %s)",
					m.date.Format(time.DateTime), w.cfg.maxAge, w.firstSync[m.folder].Format(time.DateTime), m.traits())
			default:
				w.violate("adopted", m, "adopted (recorded, never fetched) although it arrived after the first sync (%s)", m.traits())
			}
		case ok && e.State == ledger.Duplicate:
			// dedupe: recorded as a copy of a message delivered from
			// another folder, left upstream.
			if m.commits == 0 {
				w.violate("undelivered", m, "recorded as a duplicate, but the message was never committed (%s)", m.traits())
			}
		case !ok && m.commits == 0 && len(w.cfg.refuse)+w.missingMoveTo() > 0:
			w.violate("stalled", m, "in %s, still upstream, never committed nor recorded while the server refuses %v (%s, fetched %d times)",
				m.folder, w.refusedOps(), m.traits(), m.fetches)
		case m.tooLarge:
			if !ok || e.State != ledger.TooLarge {
				w.violate("refused-record", m, "too large (%s), but under %q the ledger has %s", m.traits(), uid, propEntryString(e, ok))
			}
		case m.malformed || m.refuse != "":
			if !ok || e.State != ledger.Refused {
				w.violate("refused-record", m, "%s, but under %q the ledger has %s", m.traits(), uid, propEntryString(e, ok))
			}
		case m.commits == 0 && len(w.cfg.refuse)+w.missingMoveTo() > 0:
			w.violate("stalled", m, "in %s, still upstream and never committed while the server refuses %v (%s, fetched %d times, under %q %s)",
				m.folder, w.refusedOps(), m.traits(), m.fetches, uid, propEntryString(e, ok))
		case m.commits == 0:
			w.violate("undelivered", m, "still upstream and never committed (%s, fetched %d times, under %q %s)", m.traits(), m.fetches, uid, propEntryString(e, ok))
		case w.cfg.keep:
		case w.removalRefused(m.folder):
			// The folder refuses the removal for good: a folder error in
			// status, the message stays.
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
		case len(w.cfg.refuse)+w.missingMoveTo() > 0:
			w.violate("stalled", m, "in %s, committed %d times and still upstream while the server refuses %v elsewhere (%s)",
				m.folder, m.commits, w.refusedOps(), propEntryString(e, ok))
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
