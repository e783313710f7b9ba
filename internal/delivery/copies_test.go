package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

const user = "alice@example.org"

func newStorageTarget(t *testing.T) (*delivery.Target, *testlib.Storage) {
	t.Helper()
	s := testlib.NewStorage(t, user)
	return &delivery.Target{
		Options: delivery.Options{Pipeline: &testlib.StoragePipeline{Storage: s, Filter: delivery.FilterFolder},
			Rcpts: []string{user}, Storage: s},
		SpoolDir: t.TempDir(),
		Log:      testlib.Quiet("test"),
	}, s
}

func folder(t *testing.T, s *testlib.Storage, name string) []testlib.Stored {
	return s.Folder(t, user, name)
}

// A message with three labels is delivered once through the pipeline and
// stored as two more copies straight into the storage: the same bytes,
// flags and arrival date in each label's folder. A label added later is
// copied from a local copy, without the upstream; with no local copy
// left, ErrNoLocalCopy.
func TestDeliverCopiesAndCopyStored(t *testing.T) {
	target, s := newStorageTarget(t)
	raw := "From: a@example.net\r\nSubject: labelled\r\nMessage-ID: <l@example.net>\r\n\r\nbody\r\n"
	sp, err := target.Spool(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Discard()
	arrived := time.Date(2015, 6, 7, 8, 9, 10, 0, time.UTC)
	places, flags := delivery.GmailPlacements([]string{`\Inbox`, "Work/Clients", `\Sent`, `\Starred`})
	for i := range places {
		places[i].Flags = flags
	}
	o := delivery.Origin{Protocol: "IMAP", Host: "imap.gmail.com", Account: "acct", Folder: "[Gmail]/All Mail",
		UIDValidity: 1, UID: "7", Placement: places[0], Arrived: arrived}
	_, copies, err := target.DeliverCopies(context.Background(), sp, o, places[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(copies.Accounts, []string{user}) || len(copies.Placed) != 2 {
		t.Fatalf("copies %+v, want 2 for %s", copies, user)
	}
	inbox := folder(t, s, "INBOX")
	if len(inbox) != 1 {
		t.Fatalf("INBOX holds %d messages", len(inbox))
	}
	for _, name := range []string{"INBOX", "Work.Clients", "Sent"} {
		got := folder(t, s, name)
		if len(got) != 1 {
			t.Errorf("%s holds %d messages, want 1", name, len(got))
			continue
		}
		if !bytes.Equal(got[0].Raw, inbox[0].Raw) {
			t.Errorf("%s holds other bytes than INBOX:\n%s\nINBOX:\n%s", name, got[0].Raw, inbox[0].Raw)
		}
		if !got[0].Date.Equal(arrived) {
			t.Errorf("%s: arrival date %v, want %v", name, got[0].Date, arrived)
		}
		if !slices.Contains(got[0].Flags, imap.FlaggedFlag) {
			t.Errorf("%s: flags %v, want \\Flagged (\\Starred)", name, got[0].Flags)
		}
	}

	// A label added later: copied within the storage.
	family := delivery.Placement{Folder: "Family", Delimiter: "/"}
	done, err := target.CopyStored(context.Background(), copies.Accounts, o.ID(), []delivery.Placement{places[1], places[0]}, []delivery.Placement{family})
	if err != nil || len(done) != 1 {
		t.Fatalf("CopyStored: %v, %v", done, err)
	}
	if got := folder(t, s, "Family"); len(got) != 1 || !bytes.Equal(got[0].Raw, inbox[0].Raw) || !got[0].Date.Equal(arrived) {
		t.Errorf("Family holds %d messages (or another copy): %+v", len(got), got)
	}
	// Deleted locally everywhere: nothing to copy from.
	other := o
	other.UID = "8"
	if _, err := target.CopyStored(context.Background(), copies.Accounts, other.ID(), places, []delivery.Placement{{Folder: "X", Delimiter: "/"}}); !errors.Is(err, delivery.ErrNoLocalCopy) {
		t.Errorf("CopyStored of a message with no local copy: %v, want ErrNoLocalCopy", err)
	}
}
