package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Upstream removal (issue 19): what is removed must be confirmed, where it
// goes is never polled, and a removal the server refuses stops nothing.

func (s *fakeSession) MarkSeen(context.Context, []string) error { return s.f.seenErr }

func (s *fakeSession) Folders(context.Context) ([]string, error) { return s.f.folders, nil }

func (s *fakeSession) DisposalFolder(context.Context) (string, error) { return s.f.disposal, nil }

// backdate makes the mailbox's entries look recorded d earlier (delete_after).
func backdate(t *testing.T, l *ledger.Ledger, key ledger.MailboxKey, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	entries, err := l.Entries(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		e.At = e.At.Add(-d)
		if err := l.Record(ctx, key, e); err != nil {
			t.Fatal(err)
		}
	}
}

// refusedNO is a server's answer to a removal it will not do: the
// connection is fine.
func refusedNO(what string) error {
	return &source.FolderError{Err: fmt.Errorf("%s: NO [NOPERM] Permission denied", what)}
}

// delete_after after an upstream restore that gave delivered messages'
// UIDs to new mail under the same UIDVALIDITY, which the poll does not see
// (the new message under the highest recorded UID was expunged by another
// client before it): only the messages whose size and fingerprint match
// what the ledger recorded are removed, also below the folder's floor;
// the others stay upstream.
func TestDeleteAfterConfirmsEachRemoval(t *testing.T) {
	up := newFake(5)
	r := newRig(t, up, true)
	r.acc.s.DeleteAfter = time.Hour
	r.mustPoll(t) // 1-5 delivered; the floor is 6
	key := ledger.MailboxKey{Account: "acct", Mailbox: "INBOX", UIDValidity: 1}
	backdate(t, r.l, key, 2*time.Hour)

	// The backup had 1 and 2; mail that came since was given 3, 4 and 5
	// again, and 6: UIDNEXT is above every UID recorded, and the new 5 is
	// gone before the poll, so nothing looks renumbered.
	up.msgs[3] = []byte("Subject: after the restore\r\nMessage-Id: <r3@x>\r\n\r\nnew 3\r\n")
	up.msgs[4] = []byte("Subject: m4\r\nMessage-Id: <m9@x>\r\n\r\nbody 4\r\n") // m4's size, another message
	delete(up.msgs, 5)                                                         // the new 5, expunged by another client
	up.add(6)
	delete(up.msgs, 2) // the user deleted 2 meanwhile
	res := r.mustPoll(t)
	if _, ok := up.msgs[3]; !ok {
		t.Error("a message never delivered (UID 3, reused) was removed on the strength of the ledger")
	}
	if _, ok := up.msgs[4]; !ok {
		t.Error("a message never delivered (UID 4, reused, same size) was removed on the strength of the ledger")
	}
	if _, ok := up.msgs[1]; ok || res.Removed != 1 {
		t.Errorf("the expired delivered message 1 was not removed: %+v, upstream %v", res, mapsKeys(up.msgs))
	}
	for _, uid := range []string{"2", "5"} {
		if st := r.state(t, uid); st != ledger.Removed {
			t.Errorf("UID %s, gone upstream, is %q: asked about at every poll", uid, st)
		}
	}
	if _, ok := up.msgs[6]; !ok {
		t.Error("the new message 6 was removed before its delete_after")
	}
}

// delete_after after a restore the poll sees (new mail passed the highest
// recorded UID, whose message is now another): the new mail is delivered,
// and nothing is removed, since what is left of the old mail is known by
// its fingerprint only.
func TestDeleteAfterRestoreSeen(t *testing.T) {
	up := newFake(4)
	r := newRig(t, up, true)
	r.acc.s.DeleteAfter = time.Hour
	r.mustPoll(t) // 1-4 delivered; the floor is 5
	backdate(t, r.l, ledger.MailboxKey{Account: "acct", Mailbox: "INBOX", UIDValidity: 1}, 2*time.Hour)
	up.msgs[3] = []byte("Subject: after the restore\r\nMessage-Id: <r3@x>\r\n\r\nnew 3\r\n")
	up.msgs[4] = []byte("Subject: n4\r\nMessage-Id: <m9@x>\r\n\r\nbody 4\r\n") // m4's size, another message
	up.add(5)
	res := r.mustPoll(t)
	if res.Delivered != 3 || res.Removed != 0 || len(up.msgs) != 5 {
		t.Fatalf("after the restore: %+v, upstream %v; want 3, 4 and 5 delivered, nothing removed", res, mapsKeys(up.msgs))
	}
	r.noDuplicates(t)
}

// delete_after on a server that can only flag \Deleted (no UIDPLUS, no
// MOVE): the expired messages are flagged once, for another client to
// expunge, not again at every poll.
func TestDeleteAfterFlagsOnce(t *testing.T) {
	up := newFake(2)
	up.noUIDPlus = true
	r := newRig(t, up, true)
	r.acc.s.DeleteAfter = time.Hour
	r.mustPoll(t)
	backdate(t, r.l, ledger.MailboxKey{Account: "acct", Mailbox: "INBOX", UIDValidity: 1}, 2*time.Hour)
	r.mustPoll(t)
	if up.removes != 1 || !up.deleted[1] || !up.deleted[2] {
		t.Fatalf("expired messages not flagged: %d removals, flagged %v", up.removes, up.deleted)
	}
	for range 2 {
		r.mustPoll(t)
	}
	if up.removes != 1 {
		t.Errorf("the flagged messages were flagged again at each poll: %d STOREs", up.removes)
	}
}

func mapsKeys(m map[uint32][]byte) []uint32 {
	var out []uint32
	for k := range m {
		out = append(out, k)
	}
	return out
}

// keep no, and the server refuses the removal (a read-only shared folder,
// a move_to folder that cannot be made): new mail is still fetched, in
// that folder and the ones after it; the folder is reported failing; the
// removal is tried once a poll and done when the server allows it, without
// delivering anything again.
func TestRefusedRemovalStopsNoMail(t *testing.T) {
	up := newFake(2)
	// (Work refuses too: the fake serves the same messages in every folder.)
	no := refusedNO("UID MOVE to \"Archive\"")
	up.refuseRemove = map[string]error{"INBOX": no, "Work": no}
	r := newRig(t, up, false)
	r.acc.s.Folders = []string{"INBOX", "Work"}
	res, err := r.poll(t)
	if class := classify(err); class != classFolder || class.state() != StateFolderFailing {
		t.Fatalf("a refused removal: %v, classified %v", err, class)
	}
	if !strings.Contains(err.Error(), `folder "INBOX"`) || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("the error does not say which folder and why: %v", err)
	}
	if !slices.Contains(up.opened, "Work") {
		t.Fatalf("the folder after the failing one was not polled (opened %v)", up.opened)
	}
	if res.Delivered != 4 { // INBOX's two, and Work's (the fake serves them in every folder)
		t.Errorf("first poll %+v", res)
	}
	// New mail in the failing folder: fetched, though the old removal
	// still fails; one removal try per poll, not one per batch.
	up.add(3)
	res, err = r.poll(t)
	if classify(err) != classFolder || res.Fetched != 2 || res.Delivered != 2 {
		t.Fatalf("second poll: %+v, %v: new mail held back by the failing removal", res, err)
	}
	if st := r.state(t, "1"); st != ledger.Delivered {
		t.Errorf("UID 1 is %q, want delivered (its removal still to do)", st)
	}
	up.refuseRemove = nil
	res = r.mustPoll(t)
	if res.Fetched != 0 || len(up.msgs) != 0 {
		t.Fatalf("once allowed: %+v, upstream %d", res, len(up.msgs))
	}
	if st := r.state(t, "3"); st != ledger.Removed {
		t.Errorf("UID 3 is %q, want removed", st)
	}
}

// The same with mark_seen: a server that refuses STORE \Seen (read-only
// folder) leaves the account fetching, the folder reported.
func TestRefusedMarkSeenStopsNoMail(t *testing.T) {
	up := newFake(2)
	up.seenErr = refusedNO("flagging \\Seen")
	r := newRig(t, up, true)
	r.acc.s.MarkSeen = true
	r.acc.s.Folders = []string{"INBOX", "Work"}
	res, err := r.poll(t)
	if classify(err) != classFolder || !slices.Contains(up.opened, "Work") || res.Delivered != 4 {
		t.Fatalf("mark_seen refused: %+v, %v, opened %v", res, err, up.opened)
	}
	if res, err := r.poll(t); err != nil || res.Fetched != 0 {
		t.Fatalf("next poll %+v, %v", res, err)
	}
}

// A connection that died during a removal still ends the poll: the next
// folder would only fail the same way.
func TestRemovalOnDeadConnectionEndsPoll(t *testing.T) {
	up := newFake(2)
	up.refuseRemove = map[string]error{"INBOX": errors.New("UID EXPUNGE: connection reset by peer")}
	r := newRig(t, up, false)
	r.acc.s.Folders = []string{"INBOX", "Work"}
	_, err := r.poll(t)
	if classify(err) != classConnection || slices.Contains(up.opened, "Work") {
		t.Fatalf("a dead connection: %v (class %v), opened %v", err, classify(err), up.opened)
	}
}

// The folder delivered messages are moved to (move_to, or the Trash of a
// server without UIDPLUS) is never polled: a pattern that matches it skips
// it, or every message would be delivered a second time from there.
func TestDisposalFolderNeverPolled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		keep     bool
		disposal string
		listed   []string
	}{
		{"move_to Archive", false, "Archive", []string{"INBOX", "Archive", "Work"}},
		{"Trash found at run time", false, "Trash", []string{"INBOX", "Trash", "Work"}},
		{"delete_after moves to Trash", true, "Trash", []string{"INBOX", "Trash", "Work"}},
		{"INBOX child spelt another way", false, "inbox.Archive", []string{"INBOX", "INBOX.Archive", "Work"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFake(2)
			up.folders, up.disposal = tc.listed, tc.disposal
			r := newRig(t, up, tc.keep)
			r.acc.s.Folders = []string{"*"}
			if tc.keep {
				r.acc.s.DeleteAfter = time.Hour
			}
			r.mustPoll(t)
			if strings.Join(up.opened, " ") != "INBOX Work" {
				t.Fatalf("polled %v, want INBOX Work", up.opened)
			}
		})
	}
	// keep yes without delete_after removes nothing: the Trash is mail.
	up := newFake(1)
	up.folders, up.disposal = []string{"INBOX", "Trash"}, "Trash"
	r := newRig(t, up, true)
	r.acc.s.Folders = []string{"*"}
	r.mustPoll(t)
	if strings.Join(up.opened, " ") != "INBOX Trash" {
		t.Fatalf("keep yes: polled %v, want INBOX Trash", up.opened)
	}
}
