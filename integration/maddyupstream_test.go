package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// maddy as the upstream: a second maddy's IMAP endpoint (plain TCP on
// loopback, no UIDPLUS) is pulled by the first. Runs in make test: it needs
// nothing but the built binary.

const (
	maddyUpUser = "far@example.org"
	maddyUpPass = "far-secret"
)

func startMaddyUpstream(t *testing.T) *harness.Maddy {
	t.Helper()
	return harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{maddyUpUser: maddyUpPass},
		SMTP:  true, // uses local_routing, which maddy refuses to leave unused
	})
}

func maddyClient(t *testing.T, m *harness.Maddy) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(m.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(maddyUpUser, maddyUpPass).Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func maddyUpstreamConf(m *harness.Maddy, keep bool) string {
	k := "no"
	if keep {
		k = "yes"
	}
	return fmt.Sprintf(`remote_pull {
    account far {
        imap tcp://%s
        insecure_plaintext yes
        username %s
        password %s
        rcpt_to %s
        keep %s
        poll_interval 1s
        deliver_to &local_routing
    }
}
`, m.IMAPAddr, maddyUpUser, maddyUpPass, localUser, k)
}

func TestMaddyAsUpstream(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			up := startMaddyUpstream(t)
			c := maddyClient(t, up)
			want := map[string][]byte{}
			for i := 1; i <= 5; i++ {
				msg := harness.CRLF(harness.Message(i, 3000))
				want[harness.Subject(msg)] = msg
				harness.MustAppendIMAP(t, c, "INBOX", msg)
			}
			// Another client's \Deleted message is not ours to fetch.
			foreign := harness.CRLF(harness.Message(99, 500))
			harness.MustAppendIMAP(t, c, "INBOX", foreign, imap.FlagDeleted)

			bin := harness.BuildMaddy(t)
			local := harness.StartMaddy(t, bin, harness.MaddyOptions{
				Users: map[string]string{localUser: localPass},
				Extra: maddyUpstreamConf(up, keep),
			})
			r := &rig{maddy: local, bin: bin}
			msgs := r.local(t, len(want))
			checkOnce(t, msgs, want, 0)

			// Later polls and a restart import nothing more.
			local.Stop(t)
			local.Start(t)
			local.WaitLog(t, `"account":"far"`, waitLong)
			time.Sleep(3 * time.Second) // a few polls at poll_interval 1s
			checkOnce(t, r.local(t, len(want)), want, 0)

			left := harness.ListMessages(t, c, "INBOX")
			if keep {
				if len(left) != 6 {
					t.Fatalf("keep yes: upstream INBOX holds %d messages, want 6", len(left))
				}
				return
			}
			// keep no on a server without UIDPLUS: never a bare EXPUNGE;
			// delivered messages leave INBOX by UID MOVE to the Trash, or
			// stay flagged \Deleted.
			var ours, flagged int
			for _, m := range left {
				if harness.Subject(m.Raw) == harness.Subject(foreign) {
					continue
				}
				ours++
				if m.HasFlag(`\Deleted`) {
					flagged++
				}
			}
			if len(left) == 0 || harness.Subject(left[len(left)-1].Raw) != harness.Subject(foreign) && ours == 0 {
				t.Fatalf("the other client's \\Deleted message was removed: INBOX %d messages", len(left))
			}
			log := local.Log()
			switch {
			case strings.Contains(log, "moved to the Trash folder"):
				if ours != 0 {
					t.Fatalf("%d delivered messages still in INBOX after UID MOVE", ours)
				}
				trash := harness.ListMessages(t, c, "Trash")
				if len(trash) != len(want) {
					t.Fatalf("Trash holds %d messages, want %d", len(trash), len(want))
				}
			case strings.Contains(log, "flagged \\\\Deleted but not removed"):
				if ours != flagged || ours != len(want) {
					t.Fatalf("%d of ours in INBOX, %d flagged", ours, flagged)
				}
			default:
				t.Fatalf("the log does not say how delivered messages leave:\n%s", grep(log, "keep no"))
			}
			if out := local.CLI(t, "remote-pull", "status"); !strings.Contains(out, "note: far: keep no: delivered messages are") {
				t.Fatalf("status does not say how delivered messages leave:\n%s", out)
			}
		})
	}
}
