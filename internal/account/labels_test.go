package account

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

const localUser = "alice@example.org"

// labelRig is a rig whose messages go into a real go-imap-sql storage
// through the remote_pull imap_filter's logic, with local_folders mirror.
func labelRig(t *testing.T, up *fakeUpstream, folders ...string) (*rig, *testlib.Storage) {
	r := newRig(t, up, true)
	s := testlib.NewStorage(t, localUser)
	r.acc.s.Target.Pipeline = &testlib.StoragePipeline{Storage: s, Filter: delivery.FilterFolder}
	r.acc.s.Target.Storage = s
	r.acc.s.MirrorFolders = true
	r.acc.s.Folders = folders
	up.delim = "/"
	return r, s
}

// subjects are the Subjects of what a local folder holds, in order.
func subjects(t *testing.T, s *testlib.Storage, folder string) []string {
	t.Helper()
	var out []string
	for _, m := range s.Folder(t, localUser, folder) {
		i := bytes.Index(m.Raw, []byte("Subject: "))
		out = append(out, strings.TrimSpace(string(m.Raw[i+9:i+9+bytes.IndexByte(m.Raw[i+9:], '\r')])))
	}
	return out
}

// Gmail labels (issue 20, item 4): listed in All Mail and in a label's
// folder, each message is downloaded once and appears in every label's
// local folder (INBOX, a user label, the \Sent folder; Archive for one
// with no label; \Starred as \Flagged on every copy), also with dedupe
// off. A label added upstream later (the message then shows in that
// label's folder) is placed at the next poll without a download; status
// counts the copies.
func TestLabelsDownloadOnce(t *testing.T) {
	up := newFake(3)
	up.globalIDs = map[string]string{}
	up.labels = map[string][]string{}
	labels := map[string][]string{
		"1": {`\Inbox`, "Work/Clients", `\Starred`, `\Important`},
		"2": {},
		"3": {`\Sent`},
	}
	for _, folder := range []string{"[Gmail]/All Mail", "Work/Clients"} {
		for uid, l := range labels {
			up.globalIDs[folder+"/"+uid] = "gm:" + uid
			up.labels[folder+"/"+uid] = l
		}
	}
	r, s := labelRig(t, up, "[Gmail]/All Mail", "Work/Clients")
	r.acc.s.Dedupe = false
	res := r.mustPoll(t)
	if got := strings.Join(up.fetched, " "); got != "1 2 3" {
		t.Errorf("downloaded %q, want each message once: 1 2 3", got)
	}
	if res.Delivered != 3 || res.LabelCopies != 1 {
		t.Errorf("poll result %+v, want 3 delivered and 1 label copy", res)
	}
	for folder, want := range map[string][]string{"INBOX": {"m1"}, "Work.Clients": {"m1"}, "Archive": {"m2"}, "Sent": {"m3"}} {
		if got := subjects(t, s, folder); !slices.Equal(got, want) {
			t.Errorf("local %s holds %q, want %q", folder, got, want)
		}
	}
	inbox, work := s.Folder(t, localUser, "INBOX"), s.Folder(t, localUser, "Work.Clients")
	if !bytes.Equal(inbox[0].Raw, work[0].Raw) {
		t.Error("the label copy differs from the delivered message")
	}
	for _, m := range append(inbox, work...) {
		if !slices.Contains(m.Flags, `\Flagged`) {
			t.Errorf("a copy of a starred message lacks \\Flagged: %v", m.Flags)
		}
	}
	if f := s.Folder(t, localUser, "Archive"); slices.Contains(f[0].Flags, `\Flagged`) {
		t.Error("an unstarred message is \\Flagged")
	}

	// A label added upstream: the message shows in the new label's folder.
	labels["1"] = append(labels["1"], "Family")
	labels["3"] = append(labels["3"], "Family") // delivered without copies
	for uid, l := range labels {
		up.globalIDs["Family/"+uid] = "gm:" + uid
		up.labels["Family/"+uid] = l
		up.labels["[Gmail]/All Mail/"+uid] = l
	}
	r.acc.s.Folders = []string{"[Gmail]/All Mail", "Work/Clients", "Family"}
	res = r.mustPoll(t)
	if len(up.fetched) != 3 {
		t.Errorf("a new label downloaded again: %v", up.fetched)
	}
	if got := subjects(t, s, "Family"); !slices.Equal(got, []string{"m1", "m3"}) {
		t.Errorf("local Family holds %q, want m1 and m3", got)
	}
	if res.LabelCopies != 2 {
		t.Errorf("second poll made %d label copies, want 2", res.LabelCopies)
	}
	// Once placed, never again; a label removed upstream removes nothing.
	labels["1"] = []string{`\Inbox`}
	r.mustPoll(t)
	for folder, want := range map[string][]string{"INBOX": {"m1"}, "Work.Clients": {"m1"}, "Family": {"m1", "m3"}} {
		if got := subjects(t, s, folder); !slices.Equal(got, want) {
			t.Errorf("after more polls local %s holds %q, want %q", folder, got, want)
		}
	}
	if err := r.l.SaveStatus(context.Background(), ledger.AccountStatus{Account: "acct"}); err != nil {
		t.Fatal(err)
	}
	if st, _, err := r.l.Status(context.Background(), "acct"); err != nil || st.LabelCopies != 3 {
		t.Errorf("status counts %d label copies, want 3", st.LabelCopies)
	}
}
