package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// Gmail labels end to end (issue 20, item 4), through the Gmail double and
// maddy's own IMAP: N messages with several labels are downloaded N times
// (not once per label), each label's local folder holds its messages
// (INBOX, a user label, \Sent, Archive for an archived one, \Starred as
// \Flagged), the arrival dates are the upstream's, and a label added later
// upstream is placed locally at a later poll without a download.
func TestGmailLabelsOneDownload(t *testing.T) {
	up := provider.Start(t, provider.Config{Kind: provider.Gmail, User: upUser, Password: upPass})
	type seeded struct {
		id      uint64
		subject string
		labels  []string
	}
	plan := [][]string{
		{`\Inbox`, "Work/Clients", `\Starred`},
		{`\Inbox`, "Family", `\Important`},
		{"Work/Clients", "Family"},
		{`\Sent`},
		{}, // archived
	}
	var msgs []seeded
	for i, labels := range plan {
		raw := harness.CRLF(harness.Message(i+1, 900))
		id := up.Append(raw, time.Date(2018, 1, i+1, 9, 0, 0, 0, time.UTC), nil, labels...)
		msgs = append(msgs, seeded{id, harness.Subject(raw), labels})
	}
	up.CreateFolder("Empty label")
	conf := fmt.Sprintf(`remote_pull {
    account gmail {
        imap tcp://%s
        insecure_plaintext yes
        username %s
        password %s
        rcpt_to %s
        keep yes
        poll_interval 1s
        idle no
        folders *
        exclude_folders "[Gmail]/Important" "[Gmail]/Starred"
        local_folders mirror
        deliver_to &local_routing
    }
}
`, up.Addr(), upUser, upPass, localUser)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users:        map[string]string{localUser: localPass},
		StorageExtra: "imap_filter { remote_pull }",
		Extra:        conf,
	})
	// subjectsIn is what a local folder holds, sorted; nil while the
	// folder does not exist.
	subjectsIn := func(folder string) []string {
		c, err := m.DialIMAP(localUser, localPass)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return nil
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil {
			return nil
		}
		var out []string
		for _, msg := range msgs {
			out = append(out, msg.Envelope.Subject)
		}
		slices.Sort(out)
		return out
	}
	want := map[string][]string{
		"INBOX":        {msgs[0].subject, msgs[1].subject},
		"Work.Clients": {msgs[0].subject, msgs[2].subject},
		"Family":       {msgs[1].subject, msgs[2].subject},
		"Sent":         {msgs[3].subject},
		"Archive":      {msgs[4].subject},
	}
	for folder := range want {
		slices.Sort(want[folder])
	}
	placed := func() bool {
		for folder, w := range want {
			if !slices.Equal(subjectsIn(folder), w) {
				return false
			}
		}
		return true
	}
	harness.Eventually(t, waitLong, placed, "every label placed locally")
	if n := up.Downloads(); n != len(plan) {
		t.Errorf("%d downloads for %d messages", n, len(plan))
	}
	for _, folder := range []string{"INBOX", "Work.Clients"} {
		for _, msg := range m.Mailbox(t, localUser, localPass, folder) {
			_, raw, _ := harness.Delivered(msg.Raw)
			if (harness.Subject(raw) == msgs[0].subject) != msg.HasFlag(`\Flagged`) {
				t.Errorf("%s: %q has flags %v; only the starred message is \\Flagged", folder, harness.Subject(raw), msg.Flags)
			}
		}
	}
	dates := arrivalDates(t, m, "Family")
	if d := dates[msgs[2].subject]; !d.Equal(time.Date(2018, 1, 3, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("a label copy's arrival date %v, want the upstream's", d)
	}
	folders := localFolders(t, m)
	if !folders["Empty label"] {
		t.Error("the empty label has no local folder")
	}
	for f := range folders {
		if f == "[Gmail].All Mail" || f == "[Gmail].Starred" || f == "[Gmail].Important" {
			t.Errorf("a Gmail view was made as a local folder: %s", f)
		}
	}

	// A label added upstream later: placed without a download.
	up.AddLabel(msgs[3].id, "Family")
	want["Family"] = append(want["Family"], msgs[3].subject)
	slices.Sort(want["Family"])
	harness.Eventually(t, waitLong, placed, "a label added later placed locally")
	if n := up.Downloads(); n != len(plan) {
		t.Errorf("%d downloads after a label was added, want %d", n, len(plan))
	}
	// A label removed upstream removes nothing locally.
	up.RemoveLabel(msgs[0].id, "Work/Clients")
	m.WaitLog(t, "poll done", waitLong)
	time.Sleep(3 * time.Second) // a few polls at 1s
	if !placed() {
		t.Error("a label removed upstream changed the local folders")
	}
	status := m.CLI(t, "remote-pull", "status")
	if !strings.Contains(status, fmt.Sprintf("%d (+", len(plan))) {
		t.Errorf("status does not show the downloads and the label copies:\n%s", status)
	}
}
