package imapsrc

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

// Messages listed with the same flags share one slice, and dates in the
// same zone one time.Location: a listing is held whole by the pass.
func TestListSharesFlagsAndZones(t *testing.T) {
	listing := "* 1 FETCH (UID 1 RFC822.SIZE 10 FLAGS (\\Seen) INTERNALDATE \"02-Jan-2024 03:04:05 +0530\")\r\n" +
		"* 2 FETCH (UID 2 RFC822.SIZE 10 FLAGS (\\Seen \\Recent) INTERNALDATE \"03-Jan-2024 03:04:05 +0530\")\r\n" +
		"* 3 FETCH (UID 3 RFC822.SIZE 10 FLAGS () INTERNALDATE \"04-Jan-2024 03:04:05 -0330\")\r\n" +
		"* 4 FETCH (UID 4 RFC822.SIZE 10 FLAGS (\\Deleted \\Seen) INTERNALDATE \"05-Jan-2024 03:04:05 +0530\")\r\n" +
		"* 5 FETCH (UID 5 RFC822.SIZE 10 FLAGS (\\Answered \\Seen) INTERNALDATE \"06-Jan-2024 03:04:05 +0200\")\r\n"
	_, mb := openInbox(t, testUpstream(listingServer(t, 5, 6, []byte(listing)), nil))
	msgs, err := mb.List(context.Background(), 1)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("List: %+v, %v", msgs, err)
	}
	for _, i := range []int{1, 3} {
		if !slices.Equal(msgs[i].Flags, []string{`\Seen`}) || &msgs[i].Flags[0] != &msgs[0].Flags[0] {
			t.Errorf("UID %s: flags %q not the same slice as UID 1's %q", msgs[i].UID, msgs[i].Flags, msgs[0].Flags)
		}
	}
	if msgs[2].Flags != nil || !msgs[3].Deleted || !slices.Equal(msgs[4].Flags, []string{`\Answered`, `\Seen`}) {
		t.Errorf("flags: %q %q (deleted %v) %q", msgs[2].Flags, msgs[3].Flags, msgs[3].Deleted, msgs[4].Flags)
	}
	india := time.FixedZone("", 5*3600+1800)
	for i, day := range []int{2, 3, 0, 5} {
		if day == 0 {
			continue
		}
		if want := time.Date(2024, 1, day, 3, 4, 5, 0, india); !msgs[i].Date.Equal(want) || msgs[i].Date.String() != want.String() {
			t.Errorf("UID %s: date %v, want %v", msgs[i].UID, msgs[i].Date, want)
		}
		if msgs[i].Date.Location() != msgs[0].Date.Location() {
			t.Errorf("UID %s: its date's zone is not UID 1's", msgs[i].UID)
		}
	}
	if got := msgs[2].Date.String(); got != "2024-01-04 03:04:05 -0330 -0330" {
		t.Errorf("UID 3: date %s", got)
	}
}

// EXISTS and UIDNEXT are the server's word: a listing makes room for no
// more than maxListPrealloc messages on it, and keeps no large spare room.
func TestListRoomBounded(t *testing.T) {
	listing := []byte("* 1 FETCH (UID 1 RFC822.SIZE 10 FLAGS () INTERNALDATE \"02-Jan-2024 03:04:05 +0000\")\r\n" +
		"* 2 FETCH (UID 2 RFC822.SIZE 10 FLAGS () INTERNALDATE \"02-Jan-2024 03:04:05 +0000\")\r\n")
	for _, c := range []struct {
		name            string
		exists, uidNext int
	}{
		{"hostile", 4_000_000_000, 4_000_000_001},
		{"EXISTS above what is listed", 10_000, 10_001},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, mb := openInbox(t, testUpstream(listingServer(t, c.exists, c.uidNext, listing), nil))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			msgs, err := mb.List(context.Background(), 1)
			runtime.ReadMemStats(&after)
			if err != nil || len(msgs) != 2 {
				t.Fatalf("List: %+v, %v", msgs, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("List of 2 messages allocated %d bytes", alloc)
			}
			if cap(msgs) > 4 {
				t.Errorf("a listing of 2 messages holds room for %d", cap(msgs))
			}
		})
	}
}
