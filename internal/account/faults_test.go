package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// A removal cut between UID STORE +FLAGS (\Deleted) and UID EXPUNGE leaves
// our own delivered messages flagged upstream: the next poll expunges
// them, instead of leaving them for ever under the floor.
func TestRemovalCutAfterStore(t *testing.T) {
	up := newFake(3)
	up.storeOnly = true
	r := newRig(t, up, false)
	if _, err := r.poll(t); err == nil {
		t.Fatal("the cut removal was not reported")
	}
	if len(up.msgs) != 3 || len(up.deleted) != 3 {
		t.Fatalf("after the cut: upstream %d, flagged %d", len(up.msgs), len(up.deleted))
	}
	res := r.mustPoll(t)
	if res.Removed != 3 || len(up.msgs) != 0 || res.Fetched != 0 {
		t.Fatalf("next poll %+v, upstream %d: our flagged messages were not expunged", res, len(up.msgs))
	}
	r.noDuplicates(t)
	if st := r.state(t, "1"); st != ledger.Removed {
		t.Fatalf("UID 1 is %q, want removed", st)
	}
}

// remote-pull retry during a poll: the poll must not write its floor over
// the retry's, or the retried message is never fetched again.
func TestRetryDuringPoll(t *testing.T) {
	up := newFake(2)
	r := newRig(t, up, true)
	r.p.refuse = "m1"
	r.mustPoll(t)
	if r.state(t, "1") != ledger.Refused {
		t.Fatalf("UID 1 is %q", r.state(t, "1"))
	}
	// New mail; while the poll delivers it, the admin retries (after
	// fixing what refused m1).
	up.add(3)
	r.p.onCommit = func(subject string) {
		if subject == "m3" {
			r.p.refuse = ""
			if _, err := r.l.Retry(context.Background(), "acct", []ledger.State{ledger.Refused}, "", nil); err != nil {
				t.Error(err)
			}
		}
	}
	r.mustPoll(t)
	r.p.onCommit = nil
	r.mustPoll(t)
	if _, ok := r.p.committed["m1"]; !ok {
		t.Fatalf("the retried message was never fetched again (committed %v)", keys(r.p.committed))
	}
	r.noDuplicates(t)
}

// first_sync new, then a UIDVALIDITY change: the adopted messages are
// recognised by fingerprint, not imported after all.
func TestFirstSyncNewSurvivesRenumbering(t *testing.T) {
	up := newFake(4)
	r := newRig(t, up, true)
	r.acc.s.FirstSyncNew = true
	if res := r.mustPoll(t); res.Adopted != 4 || res.Fetched != 0 {
		t.Fatalf("first sync: %+v", res)
	}
	renumbered := map[uint32][]byte{}
	for uid, raw := range up.msgs {
		renumbered[uid+50] = raw
	}
	up.msgs, up.validity = renumbered, 9
	up.add(100)
	res := r.mustPoll(t)
	if res.Fetched != 1 || len(r.p.committed) != 1 {
		t.Fatalf("after renumbering: %+v, committed %v: the adopted messages were imported", res, keys(r.p.committed))
	}
}

// UIDNEXT below the floor with the same UIDVALIDITY (a server restored
// from a backup): new mail under the reused UIDs is fetched, known mail is
// matched by fingerprint and not fetched again.
func TestUIDNextBelowFloor(t *testing.T) {
	up := newFake(5)
	r := newRig(t, up, true)
	r.mustPoll(t) // floor 6
	// The backup had messages 1-3 only; then one new message arrived as 4.
	delete(up.msgs, 4)
	delete(up.msgs, 5)
	up.msgs[4] = []byte("Subject: after the restore\r\nMessage-Id: <restore@x>\r\n\r\nnew\r\n")
	res := r.mustPoll(t)
	if _, ok := r.p.committed["after the restore"]; !ok {
		t.Fatalf("new mail under a reused UID was skipped: %+v", res)
	}
	r.noDuplicates(t)
	if len(r.p.committed) != 6 {
		t.Fatalf("committed %v", keys(r.p.committed))
	}
}

// restoreTo is a restore of the fake from a backup taken when UIDNEXT was
// next: the messages at and above it are gone, and next is handed out
// again.
func restoreTo(up *fakeUpstream, next uint32) {
	for uid := range up.msgs {
		if uid >= next {
			delete(up.msgs, uid)
			delete(up.deleted, uid)
		}
	}
}

// arriveAfterRestore puts a new message under uid, n<uid> where the old one
// was m<uid>: as long as the old one when sameSize, longer otherwise.
func arriveAfterRestore(up *fakeUpstream, uid uint32, sameSize bool) {
	pad := " and more"
	if sameSize {
		pad = ""
	}
	up.msgs[uid] = []byte(fmt.Sprintf("Subject: n%d\r\nMessage-Id: <n%d@x>\r\n\r\nbody %d%s\r\n", uid, uid, uid, pad))
}

// wantNew says which of the new messages were committed, and that nothing
// was committed twice.
func (r *rig) wantNew(t *testing.T, uids ...uint32) {
	t.Helper()
	r.noDuplicates(t)
	for _, uid := range uids {
		if _, ok := r.p.committed[fmt.Sprintf("n%d", uid)]; !ok {
			t.Errorf("new mail under reused UID %d was not delivered (committed %v)", uid, keys(r.p.committed))
		}
	}
}

// A restore under the same UIDVALIDITY while a message flagged \Deleted by
// another client holds the floor down: UIDNEXT is above the floor but not
// above the highest UID recorded, so recorded UIDs name new mail, even new
// mail as long as the message the UID named before.
func TestUIDNextNotAboveHighestRecorded(t *testing.T) {
	up := newFake(5)
	up.deleted[2] = true
	r := newRig(t, up, true)
	r.mustPoll(t) // floor 2, highest recorded 5
	restoreTo(up, 4)
	arriveAfterRestore(up, 4, true) // UIDNEXT 5
	r.mustPoll(t)
	r.wantNew(t, 4)
}

// A restore, then enough new mail that UIDNEXT is back above the floor:
// the message under the highest UID recorded is another one, found by its
// size, or when the size is the same by its fingerprint.
func TestRestoreThenNewMailPastTheFloor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keep     bool
		sameSize bool
	}{
		{"keep yes, other size", true, false},
		{"keep yes, same size", true, true},
		{"keep no, other size", false, false},
		{"keep no, same size", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFake(5)
			r := newRig(t, up, tc.keep)
			r.mustPoll(t)  // floor 6, highest recorded 5
			up.uidNext = 6 // the fake's own counts what is left
			if res := r.mustPoll(t); res != (PollResult{}) || r.state(t, "5") != map[bool]ledger.State{true: ledger.Delivered, false: ledger.Removed}[tc.keep] {
				t.Fatalf("a poll with nothing new did something: %+v, UID 5 %q", res, r.state(t, "5"))
			}
			if !tc.keep {
				// The backup still has what was delivered and removed since.
				for uid := uint32(1); uid <= 3; uid++ {
					up.add(uid)
				}
			}
			restoreTo(up, 4)
			for uid := uint32(4); uid <= 6; uid++ {
				arriveAfterRestore(up, uid, tc.sameSize)
			}
			up.uidNext = 0 // 7, above the floor
			r.mustPoll(t)
			r.wantNew(t, 4, 5, 6)
			if len(r.p.committed) != 8 {
				t.Fatalf("committed %v, want m1-m5 once and n4-n6", keys(r.p.committed))
			}
			if !tc.keep {
				for uid := uint32(1); uid <= 3; uid++ {
					if _, ok := up.msgs[uid]; !ok {
						t.Errorf("UID %d, restored and known only by its fingerprint, was removed upstream", uid)
					}
				}
			}
		})
	}
}

// A restore, new mail past the highest UID recorded, and that UID's new
// message expunged by another client before the poll: a lower recorded
// UID at or above the floor names a message of another size, which an
// IMAP message never changes.
func TestReusedUIDListedAtAnotherSize(t *testing.T) {
	up := newFake(5)
	up.deleted[2] = true
	r := newRig(t, up, true)
	r.mustPoll(t) // floor 2, highest recorded 5
	restoreTo(up, 4)
	for uid := uint32(4); uid <= 6; uid++ {
		arriveAfterRestore(up, uid, false)
	}
	delete(up.msgs, 5) // expunged by another client
	r.mustPoll(t)
	r.wantNew(t, 4, 6)
}

// A restore that reuses a UID below the floor the ledger holds nothing
// under: the floor was held up by a message another client flagged
// \Deleted and then expunged, never recorded (property seed 6654). The
// listing starts at the highest recorded UID, here none: what is listed
// below the floor and not recorded can only be new mail under a reused UID.
func TestRestoreReusesUIDBelowFloorNeverRecorded(t *testing.T) {
	up := newFake(0)
	up.add(2) // UID 1 came and went before the first poll
	up.deleted[2] = true
	r := newRig(t, up, true)
	r.mustPoll(t) // floor 2, nothing recorded
	restoreTo(up, 1)
	arriveAfterRestore(up, 1, false)
	arriveAfterRestore(up, 2, false) // UIDNEXT 3, above the floor
	r.mustPoll(t)
	r.wantNew(t, 1, 2)
}

// One folder the server refuses (renamed or deleted upstream) does not
// back off the account's other folders.
func TestFailingFolderDoesNotBackOffOthers(t *testing.T) {
	up := newFake(2)
	up.badFolders = map[string]bool{"Gone": true}
	r := newRig(t, up, true)
	r.acc.s.Folders = []string{"Gone", "INBOX"}
	res, err := r.poll(t)
	if err == nil || res.Delivered != 2 {
		t.Fatalf("poll: %+v, %v", res, err)
	}
	class := classify(err)
	if class != classFolder || class.backsOff() {
		t.Fatalf("a failing folder classified %v (backs off %v)", class, class.backsOff())
	}
	if class.state() != StateFolderFailing {
		t.Fatalf("state %q", class.state())
	}
	// A folder error together with a connection error still backs off.
	joined := errors.Join(err, errors.New("connection reset by peer"))
	if classify(joined).backsOff() != true {
		t.Fatal("a connection error next to a folder error did not back off")
	}
}

// A failed ledger record after a commit is logged as an error, with what
// finds the message in maddy's log.
func TestUnrecordedCommitIsLogged(t *testing.T) {
	up := newFake(1)
	r := newRig(t, up, false)
	var logged strings.Builder
	r.acc.s.Log.Out = logOutput(&logged)
	r.p.onCommit = func(string) { r.l.Close() }
	if _, err := r.poll(t); err == nil {
		t.Fatal("a failed record did not fail the poll")
	}
	if _, ok := up.msgs[1]; !ok {
		t.Fatal("an unrecorded message was removed upstream")
	}
	if !strings.Contains(logged.String(), "committed to maddy but not recorded") {
		t.Fatalf("log:\n%s", logged.String())
	}
}

func logOutput(b *strings.Builder) log.Output {
	return log.FuncOutput(func(_ time.Time, _ bool, msg string) { b.WriteString(msg + "\n") }, func() error { return nil })
}

// A shutdown (the poll's context ends) in the middle of a slow delivery:
// the message is committed and recorded before Run returns, so a restart
// does not deliver it again.
func TestShutdownDuringDelivery(t *testing.T) {
	up := newFake(3)
	r := newRig(t, up, false)
	ctx, cancel := context.WithCancel(context.Background())
	r.p.onCommit = func(subject string) {
		if subject == "m2" {
			cancel()                           // SIGTERM arrives while m2 is in maddy
			time.Sleep(200 * time.Millisecond) // and maddy is slow to answer
		}
	}
	done := make(chan struct{})
	go func() { r.acc.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the shutdown")
	}
	if st := r.state(t, "2"); !st.Committed() {
		t.Fatalf("m2 was committed but is %q in the ledger", st)
	}
	// "Restart": a new account on the same ledger delivers the rest once.
	r.p.onCommit = nil
	r.acc = New(r.acc.s)
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 3 {
		t.Fatalf("committed %v", keys(r.p.committed))
	}
}

// A long poll shows its progress in the status (saved every couple of
// seconds, not at every message) and clears it at the end.
func TestProgress(t *testing.T) {
	up := newFake(10)
	r := newRig(t, up, true)
	var during ledger.Progress
	r.p.onCommit = func(subject string) {
		switch subject {
		case "m5":
			time.Sleep(progressEvery + 100*time.Millisecond)
		case "m6":
			sts, err := r.l.Statuses(context.Background())
			if err != nil || len(sts) != 1 {
				t.Errorf("statuses %v %v", sts, err)
				return
			}
			during = sts[0].Progress
		}
	}
	r.mustPoll(t)
	if during.Total != 10 || during.Done != 6 || during.Started.IsZero() {
		t.Fatalf("progress during the poll: %+v, want 6 of 10", during)
	}
	r.acc.report(PollResult{}, nil, classOK, time.Minute)
	if sts, _ := r.l.Statuses(context.Background()); sts[0].Progress.Total != 0 {
		t.Fatalf("progress after the poll: %+v", sts[0].Progress)
	}
}

// dedupe message_id: a message delivered from one folder and listed in
// another (a Gmail message with two labels) is recorded as a duplicate,
// not delivered twice, and left upstream.
func TestDedupeAcrossFolders(t *testing.T) {
	// The fake serves the same messages in every folder, as Gmail serves a
	// message with two labels in two folders.
	up := newFake(3)
	r := newRig(t, up, true)
	r.acc.s.Folders = []string{"INBOX", "Label"}
	r.acc.s.Dedupe = true
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 3 {
		t.Fatalf("committed %v", keys(r.p.committed))
	}
	st, _ := r.l.States(context.Background(), ledger.MailboxKey{Account: "acct", Mailbox: "Label", UIDValidity: 1}, 0)
	if len(st) != 3 || st["1"].State != ledger.Duplicate {
		t.Fatalf("Label entries %+v, want 3 duplicates", st)
	}
	if r.mustPoll(t); len(r.p.committed) != 3 {
		t.Fatalf("a later poll delivered duplicates: %v", keys(r.p.committed))
	}
	// Without dedupe, the second folder delivers them again.
	up3 := newFake(3)
	r3 := newRig(t, up3, true)
	r3.acc.s.Folders = []string{"INBOX", "Label"}
	r3.mustPoll(t)
	if len(r3.p.committed) != 6 {
		t.Fatalf("without dedupe: %d committed, want 6 (3 twice)", len(r3.p.committed))
	}
}

// dedupe message_id on Gmail: a message whose Gmail ID (X-GM-MSGID) was
// delivered from another folder is recorded as a duplicate without being
// downloaded, Message-ID or not; the same bytes under another Gmail ID are
// another message, delivered.
func TestDedupeByGlobalID(t *testing.T) {
	up := newFake(3)
	up.msgs[3] = []byte("Subject: m3, no Message-ID\r\n\r\nbody 3\r\n")
	up.globalIDs = map[string]string{
		"INBOX/1": "gm:100", "INBOX/2": "gm:200", "INBOX/3": "gm:300",
		"Label/1": "gm:100", "Label/2": "gm:201", "Label/3": "gm:300",
	}
	r := newRig(t, up, true)
	r.acc.s.Folders = []string{"INBOX", "Label"}
	r.acc.s.Dedupe = true
	r.mustPoll(t)
	if got := strings.Join(up.fetched, " "); got != "1 2 3 2" {
		t.Errorf("downloaded %q, want INBOX's 1 2 3 and Label's 2 alone", got)
	}
	st, _ := r.l.States(context.Background(), ledger.MailboxKey{Account: "acct", Mailbox: "Label", UIDValidity: 1}, 0)
	for uid, want := range map[string]ledger.State{"1": ledger.Duplicate, "2": ledger.Delivered, "3": ledger.Duplicate} {
		if st[uid].State != want {
			t.Errorf("Label UID %s: %q, want %q", uid, st[uid].State, want)
		}
	}
	if r.mustPoll(t); len(up.fetched) != 4 {
		t.Errorf("a later poll downloaded again: %v", up.fetched)
	}
	// A duplicate stays upstream, with keep no too.
	for _, keep := range []bool{true, false} {
		if got := Decide(source.Message{UID: "1", Size: st["1"].Size, Extra: &source.MessageExtra{GlobalID: "gm:100"}}, st["1"], Rules{Keep: keep}); got != Leave {
			t.Errorf("a duplicate with keep %v: action %v, want Leave", keep, got)
		}
	}
}

// dedupe recognises a copy by its bytes (the SHA-256 taken while it is
// spooled), Message-ID or not: a message without one, in two folders, is
// delivered once.
func TestDedupeByContent(t *testing.T) {
	up := newFake(2)
	up.msgs[3] = []byte("Subject: m3, no Message-ID\r\n\r\nbody 3\r\n")
	r := newRig(t, up, true)
	r.acc.s.Folders = []string{"INBOX", "Label"}
	r.acc.s.Dedupe = true
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 3 {
		t.Fatalf("committed %v", keys(r.p.committed))
	}
	// The same header and size with other bytes is another message: both
	// are delivered (the pipeline marks the second subject).
	up2 := newFake(0)
	up2.msgs[1] = []byte("Subject: same\r\n\r\nbody A\r\n")
	r2 := newRig(t, up2, true)
	r2.acc.s.Dedupe = true
	r2.mustPoll(t)
	up2.msgs[2] = []byte("Subject: same\r\n\r\nbody B\r\n")
	r2.mustPoll(t)
	if _, ok := r2.p.committed["same (DUPLICATE)"]; !ok {
		t.Fatalf("a message with another body was taken for a copy: %v", keys(r2.p.committed))
	}
}

// A message moved out of a folder and back (filed by mistake) has a new
// UID in the folder it was delivered from: a copy, not new mail.
func TestDedupeMovedBackUnderNewUID(t *testing.T) {
	up := newFake(3)
	up.msgs[3] = []byte("Subject: m3, no Message-ID\r\n\r\nbody 3\r\n")
	r := newRig(t, up, true)
	r.acc.s.Dedupe = true
	r.mustPoll(t)
	up.msgs[10], up.msgs[11] = up.msgs[2], up.msgs[3]
	delete(up.msgs, 2)
	delete(up.msgs, 3)
	r.mustPoll(t)
	r.noDuplicates(t)
	if st := r.state(t, "10"); st != ledger.Duplicate {
		t.Fatalf("the moved-back message is %q, want duplicate", st)
	}
}

// A message delivered, then renumbered upstream (its entry adopted), is
// still delivered for dedupe: its copy in another folder is not delivered.
func TestDedupeAfterRenumbering(t *testing.T) {
	up := newFake(2)
	r := newRig(t, up, true)
	r.acc.s.Dedupe = true
	r.mustPoll(t)
	renumbered := map[uint32][]byte{}
	for uid, raw := range up.msgs {
		renumbered[uid+50] = raw
	}
	up.msgs, up.validity = renumbered, 9
	r.mustPoll(t)
	if st := r.state(t, "51"); st != ledger.Adopted {
		t.Fatalf("after the renumbering UID 51 is %q", st)
	}
	r.acc.s.Folders = []string{"INBOX", "Label"}
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 2 {
		t.Fatalf("committed %v", keys(r.p.committed))
	}
}

// Entries recorded before global IDs existed have none: a copy listed with
// a global ID is matched with them by its content after the download.
func TestDedupeLegacyEntries(t *testing.T) {
	up := newFake(3)
	r := newRig(t, up, true)
	r.acc.s.Dedupe = true
	r.mustPoll(t) // INBOX, recorded without global IDs
	up.globalIDs = map[string]string{"Label/1": "gm:100", "Label/2": "gm:200", "Label/3": "gm:300"}
	r.acc.s.Folders = []string{"INBOX", "Label"}
	r.mustPoll(t)
	r.noDuplicates(t)
	if len(r.p.committed) != 3 {
		t.Fatalf("committed %v", keys(r.p.committed))
	}
}
