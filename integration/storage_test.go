package integration

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// arrivalDates reads the INTERNALDATE of every message in folder through
// maddy's IMAP, by Subject.
func arrivalDates(t *testing.T, m *harness.Maddy, folder string) map[string]time.Time {
	t.Helper()
	c, err := m.DialIMAP(localUser, localPass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		InternalDate: true,
		Envelope:     true,
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, msg := range msgs {
		out[msg.Envelope.Subject] = msg.InternalDate
	}
	return out
}

// appendAt APPENDs msg to the upstream's folder with the given arrival
// date.
func appendAt(t *testing.T, c *imapclient.Client, folder string, msg []byte, at time.Time) {
	t.Helper()
	raw := harness.CRLF(msg)
	cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Time: at})
	cmd.Write(raw)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Arrival dates kept (issue 20, item 5): each message fetched over IMAP
// keeps its upstream INTERNALDATE in maddy's storage, read back through
// maddy's IMAP.
func TestArrivalDatesKeptIMAP(t *testing.T) {
	up := newUpstream(t)
	c := up.IMAPClient(t, upUser, upPass)
	dates := map[string]time.Time{
		"Test message 1": time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC),
		"Test message 2": time.Date(2021, 7, 15, 8, 30, 5, 0, time.FixedZone("", 2*3600)),
	}
	appendAt(t, c, "INBOX", harness.Message(1, 600), dates["Test message 1"])
	appendAt(t, c, "INBOX", harness.Message(2, 600), dates["Test message 2"])
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        idle no\n"}.String())
	r.local(t, 2)
	got := arrivalDates(t, r.maddy, "INBOX")
	for subject, want := range dates {
		if !got[subject].Equal(want) {
			t.Errorf("%s: INTERNALDATE in maddy %v, upstream %v", subject, got[subject], want)
		}
	}
}

// POP3 has no arrival date: the topmost Received field's date is kept,
// and a message without one gets the time of the delivery.
func TestArrivalDatesKeptPOP3(t *testing.T) {
	up := newUpstream(t)
	received := time.Date(2011, 3, 1, 10, 0, 0, 0, time.FixedZone("", 3600))
	withReceived := append([]byte("Received: from mx.example.net by pop.example.net; "+received.Format(time.RFC1123Z)+"\r\n"+
		"Received: from a.example by mx.example.net; Mon, 28 Feb 2011 09:00:00 +0000\r\n"), harness.Message(1, 600)...)
	without := harness.Message(2, 600)
	up.Seed(t, upUser, "INBOX", withReceived, without)
	start := time.Now().Add(-time.Second)
	r := startMaddy(t, up, accountConf{Proto: "pop3", Addr: "tls://localhost:" + port(up.POP3SAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	r.local(t, 2)
	got := arrivalDates(t, r.maddy, "INBOX")
	if d := got["Test message 1"]; !d.Equal(received) {
		t.Errorf("INTERNALDATE %v, want the topmost Received's %v", d, received)
	}
	if d := got["Test message 2"]; d.Before(start.Truncate(time.Second)) {
		t.Errorf("INTERNALDATE %v of a message without Received, want the time of delivery (after %v)", d, start)
	}
}

// localFolders lists the local user's folders through maddy's IMAP.
func localFolders(t *testing.T, m *harness.Maddy) map[string]bool {
	t.Helper()
	c, err := m.DialIMAP(localUser, localPass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range list {
		out[l.Mailbox] = true
	}
	return out
}

// Empty folders (issue 20, item 6): local_folders mirror makes the local
// counterpart of every polled upstream folder, empty ones too, with the
// mirror's path rules ("/" upstream becomes maddy's "."), and of a new
// empty folder that appears upstream later, at the next poll.
func TestMirrorEmptyFolders(t *testing.T) {
	up := newUpstream(t, `namespace inbox {
  inbox = yes
  separator = /
}`)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 500))
	up.Doveadm(t, nil, "mailbox", "create", "-s", "-u", upUser, "Empty")
	up.Doveadm(t, nil, "mailbox", "create", "-s", "-u", upUser, "Projects/Old stuff")
	bin := harness.BuildMaddy(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users:        map[string]string{localUser: localPass},
		StorageExtra: "imap_filter { remote_pull }",
		Extra: accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
			Extra: "        folders *\n        local_folders mirror\n        idle no\n"}.String(),
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	want := []string{"Empty", "Projects", "Projects.Old stuff"}
	harness.Eventually(t, waitLong, func() bool {
		got := localFolders(t, m)
		for _, f := range want {
			if !got[f] {
				return false
			}
		}
		return true
	}, "empty upstream folders made locally")

	up.Doveadm(t, nil, "mailbox", "create", "-s", "-u", upUser, "Later")
	harness.Eventually(t, waitLong, func() bool { return localFolders(t, m)["Later"] },
		"a new empty upstream folder made locally at a later poll")
	if got := localFolders(t, m); got["Projects/Old stuff"] {
		t.Errorf("the upstream path was not rebuilt with the mirror's rules: %v", got)
	}
}
