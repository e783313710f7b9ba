package account

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/foxcpp/maddy/framework/exterrors"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// fakeUpstream is an in-memory IMAP-like mailbox with fault injection.
type fakeUpstream struct {
	validity  uint32
	msgs      map[uint32][]byte // UID → raw message
	deleted   map[uint32]bool   // flagged \Deleted by another client
	noUIDPlus bool

	cutAfter  int   // Fetch fails after this many messages (0: never)
	removeErr error // Remove fails with this
	// storeOnly: the next Remove flags \Deleted, then the connection is
	// cut before the expunge.
	storeOnly  bool
	uidNext    uint32               // UIDNEXT to report; 0: one past the highest UID
	badFolders map[string]bool      // SELECT answers NO for these
	globalIDs  map[string]string    // "folder/UID" → source.Message.GlobalID
	labels     map[string][]string  // "folder/UID" → source.Message.Labels (Gmail)
	delim      string               // the hierarchy delimiter in folder names
	dates      map[uint32]time.Time // INTERNALDATE; zero: none
	printsErr  error                // the next Fingerprints fails with this
	// refuseRemove: Remove in these folders is answered with this error at
	// every try (a server's NO), until the test deletes it.
	refuseRemove map[string]error
	seenErr      error    // MarkSeen fails with this at every try
	folders      []string // what LIST gives (folder patterns)
	disposal     string   // the folder removed messages are moved to
	opened       []string // folders selected, in order
	fetched      []string
	removed      []string
	removes      int // Remove calls that reached the server
	connects     int
	// onFetch, if set, is called before each message handed over, with
	// the number handed over so far; forgetFetched leaves fetched empty
	// (memory benchmarks).
	onFetch       func(n int)
	forgetFetched bool
	handedOver    int
	// onListed, if set, is called as List returns, its listing still
	// held (memory benchmarks).
	onListed func()
	// descending: List gives the highest UID first (a server that lists
	// out of UID order).
	descending bool
	// printsAsked are the sizes of the Fingerprints requests; printsErrAt
	// fails the request of that number (1: the first), once.
	printsAsked []int
	printsErrAt int
}

func newFake(n int) *fakeUpstream {
	f := &fakeUpstream{validity: 1, msgs: map[uint32][]byte{}, deleted: map[uint32]bool{}}
	for i := 1; i <= n; i++ {
		f.add(uint32(i))
	}
	return f
}

func (f *fakeUpstream) add(uid uint32) {
	f.msgs[uid] = []byte(fmt.Sprintf("Subject: m%d\r\nMessage-Id: <m%d@x>\r\n\r\nbody %d\r\n", uid, uid, uid))
}

func (f *fakeUpstream) Protocol() string { return "IMAP" }
func (f *fakeUpstream) Host() string     { return "fake.example" }
func (f *fakeUpstream) Connect(context.Context) (source.Session, error) {
	f.connects++
	return &fakeSession{f: f}, nil
}

// fakeSession is a session, and the mailbox it opened last: every folder
// holds the same messages.
type fakeSession struct {
	f      *fakeUpstream
	folder string
}

func (s *fakeSession) Open(_ context.Context, folder string) (source.Mailbox, error) {
	if s.f.badFolders[folder] {
		return nil, &source.FolderError{Err: fmt.Errorf("SELECT %q: NO no such mailbox", folder)}
	}
	s.folder = folder
	s.f.opened = append(s.f.opened, folder)
	return s, nil
}
func (s *fakeSession) Disposal(context.Context) (source.Removal, error) {
	if s.f.noUIDPlus {
		return source.Removal{Mode: source.RemoveFlagOnly}, nil
	}
	return source.Removal{}, nil
}
func (s *fakeSession) HierarchyDelimiter(context.Context) (string, error) {
	return s.f.delim, nil
}
func (s *fakeSession) UIDNext() uint32 {
	if s.f.uidNext != 0 {
		return s.f.uidNext
	}
	next := uint32(1)
	for uid := range s.f.msgs {
		next = max(next, uid+1)
	}
	return next
}
func (s *fakeSession) RemoteAddr() string          { return "192.0.2.9" }
func (s *fakeSession) Close(context.Context) error { return nil }
func (s *fakeSession) Abort()                      {}
func (s *fakeSession) UIDValidity() uint32         { return s.f.validity }
func (s *fakeSession) Complete() bool              { return false }

func (s *fakeSession) uids() []uint32 {
	var out []uint32
	for uid := range s.f.msgs {
		out = append(out, uid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *fakeSession) List(_ context.Context, floor uint32) ([]source.Message, error) {
	uids := s.uids()
	out := make([]source.Message, 0, len(uids)) // as imapsrc: room made once
	for _, uid := range uids {
		if uid >= floor {
			m := source.Message{UID: ledger.FormatUID(uid), Size: int64(len(s.f.msgs[uid])), Deleted: s.f.deleted[uid], Date: s.f.dates[uid]}
			id, labels := s.f.globalIDs[s.folder+"/"+m.UID], s.f.labels[s.folder+"/"+m.UID]
			if id != "" || labels != nil {
				m.Extra = &source.MessageExtra{GlobalID: id, Labels: labels}
			}
			out = append(out, m)
		}
	}
	if s.f.descending {
		slices.Reverse(out)
	}
	if s.f.onListed != nil {
		s.f.onListed()
	}
	return out, nil
}

func (s *fakeSession) Fetch(_ context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	for _, u := range uids {
		n, _ := strconv.ParseUint(u, 10, 32)
		raw, ok := s.f.msgs[uint32(n)]
		if !ok {
			continue
		}
		if s.f.cutAfter > 0 && len(s.f.fetched) >= s.f.cutAfter {
			s.f.cutAfter = 0 // one cut per injection
			return errors.New("connection reset by peer")
		}
		if s.f.onFetch != nil {
			s.f.onFetch(s.f.handedOver)
		}
		s.f.handedOver++
		if !s.f.forgetFetched {
			s.f.fetched = append(s.f.fetched, u)
		}
		sp, err := spool(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		if err := deliver(u, sp); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeSession) Fingerprints(_ context.Context, uids []string) (map[string]string, error) {
	if err := s.f.printsErr; err != nil {
		s.f.printsErr = nil
		return nil, err
	}
	s.f.printsAsked = append(s.f.printsAsked, len(uids))
	if len(s.f.printsAsked) == s.f.printsErrAt {
		s.f.printsErrAt = 0
		return nil, errors.New("connection reset by peer")
	}
	out := map[string]string{}
	for _, u := range uids {
		n, _ := strconv.ParseUint(u, 10, 32)
		raw, ok := s.f.msgs[uint32(n)]
		if !ok {
			continue // as a server: nothing for a UID it does not have
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return nil, err
		}
		out[u] = source.Fingerprint(h, int64(len(raw)))
	}
	return out, nil
}

func (s *fakeSession) Remove(_ context.Context, uids []string) ([]string, error) {
	if err := s.f.refuseRemove[s.folder]; err != nil {
		return nil, err
	}
	if s.f.removeErr != nil {
		err := s.f.removeErr
		s.f.removeErr = nil
		return nil, err
	}
	s.f.removes++
	if s.f.storeOnly {
		s.f.storeOnly = false
		for _, u := range uids {
			n, _ := strconv.ParseUint(u, 10, 32)
			s.f.deleted[uint32(n)] = true
		}
		return nil, errors.New("connection reset by peer (after STORE, before UID EXPUNGE)")
	}
	for _, u := range uids {
		n, _ := strconv.ParseUint(u, 10, 32)
		if s.f.noUIDPlus {
			s.f.deleted[uint32(n)] = true
			continue
		}
		delete(s.f.msgs, uint32(n))
		delete(s.f.deleted, uint32(n))
		s.f.removed = append(s.f.removed, u)
	}
	if s.f.noUIDPlus {
		return nil, nil
	}
	return uids, nil
}

// pipeline records commits; refuse and tempFail pick messages by subject.
type pipeline struct {
	*testlib.Pipeline
	committed map[string][]byte // subject → stored bytes
	refuse    string
	tempFail  string
	panicOn   string
	onCommit  func(subject string) // called after each commit
}

func newPipeline() *pipeline {
	p := &pipeline{committed: map[string][]byte{}}
	p.Pipeline = &testlib.Pipeline{Check: p.check, Committed: p.record}
	return p
}

// check refuses, fails or panics on the subjects the test names.
func (p *pipeline) check(h textproto.Header) error {
	switch h.Get("Subject") {
	case p.refuse:
		return &exterrors.SMTPError{Code: 550, EnhancedCode: exterrors.EnhancedCode{5, 7, 1}, Message: "refused by policy"}
	case p.tempFail:
		return &exterrors.SMTPError{Code: 451, EnhancedCode: exterrors.EnhancedCode{4, 3, 0}, Message: "storage busy"}
	case p.panicOn:
		panic("pipeline bug")
	}
	return nil
}

// record keeps a committed message by subject, marking a second copy.
func (p *pipeline) record(m testlib.Message) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Raw)))
	if err != nil {
		panic(err)
	}
	subj := h.Get("Subject")
	if _, dup := p.committed[subj]; dup {
		p.committed[subj+" (DUPLICATE)"] = m.Raw
	} else {
		p.committed[subj] = m.Raw
	}
	if p.onCommit != nil {
		p.onCommit(subj)
	}
}

type rig struct {
	up  *fakeUpstream
	p   *pipeline
	l   *ledger.Ledger
	acc *Account
}

func newRig(t *testing.T, up *fakeUpstream, keep bool) *rig {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	quiet := testlib.Quiet("test")
	p := newPipeline()
	acc := New(Settings{
		Name: "acct", Upstream: up, Policy: policy.Policy{Folders: []string{"INBOX"}, Keep: keep, PollInterval: time.Minute},
		Ledger: l, Log: quiet,
		Target: &delivery.Target{Options: delivery.Options{Pipeline: p, Rcpts: []string{"alice@example.org"},
			Hostname: "mx.example.org"}, SpoolDir: t.TempDir(), Log: quiet},
	})
	return &rig{up: up, p: p, l: l, acc: acc}
}

func (r *rig) poll(t *testing.T) (PollResult, error) {
	t.Helper()
	return r.acc.pollSafely(context.Background())
}

func (r *rig) mustPoll(t *testing.T) PollResult {
	t.Helper()
	res, err := r.poll(t)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return res
}

func (r *rig) state(t *testing.T, uid string) ledger.State {
	t.Helper()
	st, err := r.l.States(context.Background(), ledger.MailboxKey{Account: "acct", Mailbox: "INBOX", UIDValidity: r.up.validity}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st[uid].State
}

func (r *rig) noDuplicates(t *testing.T) {
	t.Helper()
	for subj := range r.p.committed {
		if strings.HasSuffix(subj, "(DUPLICATE)") {
			t.Fatalf("delivered twice: %s", subj)
		}
	}
}

func TestKeepDeliversOnceAndTouchesNothing(t *testing.T) {
	r := newRig(t, newFake(5), true)
	if res := r.mustPoll(t); res.Delivered != 5 || res.Removed != 0 {
		t.Fatalf("first poll: %+v", res)
	}
	if res := r.mustPoll(t); res != (PollResult{}) {
		t.Fatalf("second poll did work: %+v", res)
	}
	if len(r.up.removed) != 0 || len(r.up.msgs) != 5 || len(r.p.committed) != 5 {
		t.Fatalf("removed %v, upstream %d, committed %d", r.up.removed, len(r.up.msgs), len(r.p.committed))
	}
	// Exact bytes: the upstream message under exactly one Received field.
	got := r.p.committed["m3"]
	rest := got[bytes.Index(got, []byte("\r\nSubject: "))+2:]
	if !bytes.HasPrefix(got, []byte("Received: ")) || !bytes.Equal(rest, r.up.msgs[3]) || bytes.Count(got, []byte("Received:")) != 1 {
		t.Fatalf("stored bytes:\n%q", got)
	}
}

func TestDeleteRemovesOnlyDelivered(t *testing.T) {
	up := newFake(4)
	up.deleted[2] = true // another client's
	r := newRig(t, up, false)
	r.mustPoll(t)
	if strings.Join(up.removed, ",") != "1,3,4" {
		t.Fatalf("removed %v, want 1,3,4", up.removed)
	}
	if _, ok := up.msgs[2]; !ok || len(r.p.committed) != 3 {
		t.Fatalf("the foreign \\Deleted message was touched or fetched (committed %d)", len(r.p.committed))
	}
}

func TestPermanentRefusalStaysAndIsNotRetried(t *testing.T) {
	r := newRig(t, newFake(3), false)
	r.p.refuse = "m2"
	if res := r.mustPoll(t); res.Delivered != 2 || res.Refused != 1 {
		t.Fatalf("poll: %+v", res)
	}
	if r.state(t, "2") != ledger.Refused {
		t.Fatalf("UID 2 is %q", r.state(t, "2"))
	}
	entries, _ := r.l.Entries(context.Background(), ledger.MailboxKey{Account: "acct", Mailbox: "INBOX", UIDValidity: 1})
	for _, e := range entries {
		if e.UID == "2" && e.Reason != "550 5.7.1 refused by policy" {
			t.Fatalf("reason %q", e.Reason)
		}
	}
	if _, ok := r.up.msgs[2]; !ok {
		t.Fatal("a refused message was removed upstream")
	}
	fetched := len(r.up.fetched)
	r.mustPoll(t)
	if len(r.up.fetched) != fetched {
		t.Fatalf("the refused message was fetched again: %v", r.up.fetched)
	}
}

func TestTemporaryFailureRetriedNextPoll(t *testing.T) {
	r := newRig(t, newFake(5), false)
	r.p.tempFail = "m3"
	if _, err := r.poll(t); err == nil {
		t.Fatal("a temporary failure did not fail the poll")
	}
	if r.state(t, "3") != "" || r.state(t, "2") != ledger.Delivered {
		t.Fatalf("states: 2=%q 3=%q", r.state(t, "2"), r.state(t, "3"))
	}
	if _, ok := r.up.msgs[3]; !ok {
		t.Fatal("the failed message was removed upstream")
	}
	r.p.tempFail = ""
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 5 || len(r.up.msgs) != 0 {
		t.Fatalf("committed %d, left upstream %d", len(r.p.committed), len(r.up.msgs))
	}
}

// Delivered and recorded, but the removal failed (a crash, a cut): the next
// poll removes them without delivering them again.
func TestInterruptedRemovalFinishedNextPoll(t *testing.T) {
	up := newFake(4)
	up.removeErr = errors.New("connection reset by peer")
	r := newRig(t, up, false)
	if _, err := r.poll(t); err == nil {
		t.Fatal("the failed removal was not reported")
	}
	if len(up.msgs) != 4 || r.state(t, "1") != ledger.Delivered {
		t.Fatalf("upstream %d, UID 1 %q", len(up.msgs), r.state(t, "1"))
	}
	res := r.mustPoll(t)
	if res.Fetched != 0 || res.Removed != 4 || len(up.msgs) != 0 {
		t.Fatalf("second poll %+v, upstream %d", res, len(up.msgs))
	}
	r.noDuplicates(t)
}

func TestCutMidBatch(t *testing.T) {
	up := newFake(10)
	up.cutAfter = 3
	r := newRig(t, up, false)
	if _, err := r.poll(t); err == nil {
		t.Fatal("the cut was not reported")
	}
	if len(r.p.committed) != 3 {
		t.Fatalf("%d committed before the cut", len(r.p.committed))
	}
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 10 || len(up.msgs) != 0 {
		t.Fatalf("committed %d, upstream %d", len(r.p.committed), len(up.msgs))
	}
}

func TestUIDValidityChangeMatchesByFingerprint(t *testing.T) {
	up := newFake(4)
	r := newRig(t, up, true)
	r.mustPoll(t)
	// The server renumbers: same messages, new UIDs, new UIDVALIDITY, and
	// one genuinely new message.
	renumbered := map[uint32][]byte{}
	for uid, raw := range up.msgs {
		renumbered[uid+100] = raw
	}
	up.msgs = renumbered
	up.validity = 2
	up.add(200)
	res := r.mustPoll(t)
	if res.Delivered != 1 || len(r.p.committed) != 5 {
		t.Fatalf("after renumbering: %+v, committed %d", res, len(r.p.committed))
	}
	r.noDuplicates(t)
	if r.state(t, "101") != ledger.Adopted {
		t.Fatalf("UID 101 (old 1) is %q under the new UIDVALIDITY, want adopted", r.state(t, "101"))
	}
}

// After a renumbering, keep no never deletes a message known only by its
// fingerprint: it might be a different message with the same header fields.
func TestRenumberedNeverDeleted(t *testing.T) {
	up := newFake(2)
	up.removeErr = errors.New("cut before the removal") // delivered, still upstream
	r := newRig(t, up, false)
	r.poll(t)
	renumbered := map[uint32][]byte{}
	for uid, raw := range up.msgs {
		renumbered[uid+10] = raw
	}
	up.msgs, up.validity = renumbered, 2
	res := r.mustPoll(t)
	if res.Fetched != 0 || res.Removed != 0 || len(up.msgs) != 2 {
		t.Fatalf("after renumbering: %+v, upstream %d", res, len(up.msgs))
	}
	r.noDuplicates(t)
}

func TestFloor(t *testing.T) {
	up := newFake(5)
	r := newRig(t, up, true)
	r.mustPoll(t)
	st, _, _ := r.l.Mailbox(context.Background(), "acct", "INBOX")
	if st.UIDFloor != 6 {
		t.Fatalf("floor %d, want 6", st.UIDFloor)
	}
	up.add(6)
	up.add(7)
	up.deleted[6] = true // not ours, maybe undeleted later: holds the floor
	r.mustPoll(t)
	st, _, _ = r.l.Mailbox(context.Background(), "acct", "INBOX")
	if st.UIDFloor != 6 {
		t.Fatalf("floor %d, want 6 (held by the \\Deleted message)", st.UIDFloor)
	}
	delete(up.deleted, 6)
	if res := r.mustPoll(t); res.Delivered != 1 {
		t.Fatalf("the undeleted message was not fetched: %+v", res)
	}
}

// Without UIDPLUS the delivered messages are flagged, not expunged, and not
// flagged again at every poll.
func TestNoUIDPlus(t *testing.T) {
	up := newFake(3)
	up.noUIDPlus = true
	r := newRig(t, up, false)
	r.mustPoll(t)
	if len(up.msgs) != 3 || len(up.deleted) != 3 {
		t.Fatalf("upstream %d, flagged %d", len(up.msgs), len(up.deleted))
	}
	if res := r.mustPoll(t); res != (PollResult{}) {
		t.Fatalf("second poll did work: %+v", res)
	}
}

func TestPanicBecomesError(t *testing.T) {
	r := newRig(t, newFake(2), false)
	r.p.panicOn = "m2"
	_, err := r.poll(t)
	if err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := r.up.msgs[2]; !ok {
		t.Fatal("the message being delivered during the panic was removed")
	}
}

// folders inbox INBOX: one folder, polled once, under the ledger key
// "INBOX" (the same whatever the case in the configuration).
func TestINBOXSpelledAnotherWay(t *testing.T) {
	up := newFake(2)
	r := newRig(t, up, true)
	r.acc.s.Folders = []string{"inbox", "INBOX"}
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 2 || r.state(t, "1") != ledger.Delivered {
		t.Fatalf("committed %v, UID 1 %q under INBOX", keys(r.p.committed), r.state(t, "1"))
	}
	r.acc.s.Folders = []string{"Inbox"}
	r.mustPoll(t)
	r.noDuplicates(t)
}

// local_folders mirror: upstream "a.b" and "a_b" (a "." inside a part
// becomes "_") would go to one local folder. Neither is fetched, each is a
// folder error naming both; the account's other folders go on, a
// local_folder for one of them settles it, and names that differ only in
// case stay apart (maddy's storage tells them apart).
func TestMirrorNamesThatClash(t *testing.T) {
	up := newFake(1)
	up.delim = "/"
	r := newRig(t, up, true)
	r.acc.s.MirrorFolders = true
	r.acc.s.Folders = []string{"a.b", "a_b", "INBOX"}
	res, err := r.poll(t)
	if err == nil || classify(err) != classFolder {
		t.Fatalf("poll: %+v, %v; want a folder error", res, err)
	}
	clashes := 0
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, "mirror") {
			clashes++
			if !strings.Contains(line, `folders "a.b" and "a_b"`) && !strings.Contains(line, `folders "a_b" and "a.b"`) {
				t.Errorf("a folder error that does not name both folders: %s", line)
			}
		}
	}
	if clashes != 2 {
		t.Errorf("%d folder errors, want one for each folder: %v", clashes, err)
	}
	if len(r.p.committed) != 1 {
		t.Fatalf("committed %v: only INBOX's message should be", keys(r.p.committed))
	}
	r.acc.s.LocalFolder = map[string]string{"a.b": "Dotted"}
	if res := r.mustPoll(t); res.Delivered != 2 {
		t.Fatalf("with a local_folder for a.b: %+v", res)
	}

	r2 := newRig(t, up, true)
	r2.acc.s.MirrorFolders = true
	r2.acc.s.Folders = []string{"Work", "work"}
	if res := r2.mustPoll(t); res.Delivered != 2 {
		t.Fatalf("Work and work: %+v", res)
	}
}

const day = 24 * time.Hour

// maxAgeRig is an account with max_age 365d whose clock the test moves;
// INBOX holds m1, arrived 400 days ago, and m2, an hour ago.
func maxAgeRig(t *testing.T) (r *rig, clock *time.Time) {
	t.Helper()
	up := newFake(2)
	now := time.Now()
	up.dates = map[uint32]time.Time{1: now.Add(-400 * day), 2: now.Add(-time.Hour)}
	r = newRig(t, up, true)
	r.acc.s.MaxAge = 365 * day
	r.acc.s.Now = func() time.Time { return now }
	return r, &now
}

// step polls and reports, as Run does.
func (r *rig) step(t *testing.T) error {
	t.Helper()
	res, err := r.acc.pollSafely(context.Background())
	r.acc.report(res, err, classify(err), time.Minute)
	return err
}

func (r *rig) stateIn(t *testing.T, folder, uid string) ledger.State {
	t.Helper()
	st, err := r.l.States(context.Background(), ledger.MailboxKey{Account: "acct", Mailbox: folder, UIDValidity: r.up.validity}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return st[uid].State
}

func wantStates(t *testing.T, r *rig, folder string, want map[string]ledger.State) {
	t.Helper()
	for uid, w := range want {
		if got := r.stateIn(t, folder, uid); got != w {
			t.Errorf("%s UID %s: %q, want %q", folder, uid, got, w)
		}
	}
}

// max_age bounds a folder's first sync only: mail that arrives while the
// account cannot poll (longer than max_age), or that a user files with an
// old arrival date later, is delivered, not adopted.
func TestMaxAgeBoundsOnlyTheFirstSync(t *testing.T) {
	r, clock := maxAgeRig(t)
	t0 := *clock
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "INBOX", map[string]ledger.State{"1": ledger.Adopted, "2": ledger.Delivered})

	// An outage of 400 days (an expired password, maddy stopped): m3
	// arrived at its start, m4 was filed from an unpolled folder with
	// its old arrival date.
	r.up.add(3)
	r.up.dates[3] = t0.Add(day)
	r.up.add(4)
	r.up.dates[4] = t0.Add(-500 * day)
	*clock = t0.Add(400 * day)
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "INBOX", map[string]ledger.State{"1": ledger.Adopted, "3": ledger.Delivered, "4": ledger.Delivered})
	r.noDuplicates(t)
	r.wantAdoptedMaxAge(t, 1)
}

// wantAdoptedMaxAge: status counts n messages adopted for their age.
func (r *rig) wantAdoptedMaxAge(t *testing.T, n int64) {
	t.Helper()
	st, _, err := r.l.Status(context.Background(), "acct")
	if err != nil {
		t.Fatal(err)
	}
	if st.AdoptedMaxAge != n {
		t.Errorf("status counts %d adopted for max_age, want %d", st.AdoptedMaxAge, n)
	}
}

// A folder first seen after an outage (added upstream meanwhile, or newly
// matched by a pattern) is bounded from the account's last good poll: what
// arrived since then is delivered.
func TestMaxAgeFolderFirstSeenAfterAnOutage(t *testing.T) {
	r, clock := maxAgeRig(t)
	t0 := *clock
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	r.up.add(3)
	r.up.dates[3] = t0.Add(10 * day)
	*clock = t0.Add(400 * day)
	r.acc.s.Folders = []string{"INBOX", "Work"}
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	// Work's m1 was older than max_age when the account last worked;
	// m2 and m3 were not.
	wantStates(t, r, "Work", map[string]ledger.State{"1": ledger.Adopted, "2": ledger.Delivered, "3": ledger.Delivered})
}

// retry makes a refused message eligible again, however old it is now.
func TestMaxAgeDoesNotSwallowARetry(t *testing.T) {
	r, clock := maxAgeRig(t)
	r.p.refuse = "m2"
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "INBOX", map[string]ledger.State{"2": ledger.Refused})
	*clock = clock.Add(400 * day)
	r.p.refuse = ""
	if _, err := r.l.Retry(context.Background(), "acct", []ledger.State{ledger.Refused}, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "INBOX", map[string]ledger.State{"1": ledger.Adopted, "2": ledger.Delivered})
}

// A renumbered folder is not a first sync: what was adopted for its age
// is recognised by fingerprint and stays adopted; an unknown old message
// is new mail.
func TestMaxAgeAfterRenumbering(t *testing.T) {
	r, clock := maxAgeRig(t)
	t0 := *clock
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	r.up.validity = 2
	r.up.add(3)
	r.up.dates[3] = t0.Add(-450 * day)
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "INBOX", map[string]ledger.State{"1": ledger.Adopted, "2": ledger.Adopted, "3": ledger.Delivered})
	if r.p.committed["m1"] != nil {
		t.Error("the message adopted for its age was delivered after the renumbering")
	}
	r.noDuplicates(t)
	r.wantAdoptedMaxAge(t, 1) // m2, adopted at the renumbering, is not counted
}

// A first sync cut before its old messages were recorded is still a first
// sync at the next poll: they are adopted, not fetched.
func TestMaxAgeFirstSyncInterrupted(t *testing.T) {
	r, clock := maxAgeRig(t)
	r.up.printsErr = errors.New("connection reset by peer")
	if err := r.step(t); err == nil {
		t.Fatal("the first poll did not fail")
	}
	*clock = clock.Add(day)
	if err := r.step(t); err != nil {
		t.Fatal(err)
	}
	wantStates(t, r, "INBOX", map[string]ledger.State{"1": ledger.Adopted, "2": ledger.Delivered})
	if r.p.committed["m1"] != nil {
		t.Error("an old message of an interrupted first sync was delivered")
	}
}
