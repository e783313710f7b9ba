package imapsrc

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/remote-pull/remote_pull/internal/source"
)

// Fast tests of the IMAP source against go-imap's in-memory server (real
// protocol, no Dovecot): List, Fetch, Fingerprints, Remove and Watch.
// Dovecot stays for the end-to-end tests.

type memServer struct {
	addr string
	user *imapmemserver.User
}

// newMemServer starts an in-memory IMAP server on loopback, plain text,
// with UIDPLUS, MOVE and IDLE, and one user "bob"/"pw" with an INBOX.
func newMemServer(t *testing.T) *memServer {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("bob", "pw")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapIdle: {},
			imap.CapLiteralPlus: {}, imap.CapUnselect: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &memServer{addr: ln.Addr().String(), user: user}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}

// append adds messages to INBOX through a client, as another mail client
// would; flags apply to every one.
func (m *memServer) append(t *testing.T, msgs []string, flags ...imap.Flag) {
	t.Helper()
	c, err := imapclient.DialInsecure(m.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: flags})
		io.WriteString(cmd, msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func (m *memServer) upstream() *Upstream { return testUpstream(m.addr, nil) }

func memMsg(i int) string {
	return fmt.Sprintf("Message-Id: <m%d@x>\r\nSubject: m%d\r\nFrom: a@b.example\r\n\r\nbody %d %s\r\n", i, i, i, strings.Repeat("z", i*10))
}

func TestMemListFetchFingerprintsRemove(t *testing.T) {
	srv := newMemServer(t)
	srv.append(t, []string{memMsg(1), memMsg(2), memMsg(3)})
	srv.append(t, []string{memMsg(4)}, imap.FlagDeleted) // another client's
	ctx := context.Background()
	_, mb := openInbox(t, srv.upstream())

	msgs, err := mb.List(ctx, 1)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("List: %+v %v", msgs, err)
	}
	if msgs[1].UID != "2" || msgs[1].Size != int64(len(memMsg(2))) || msgs[1].Deleted || !msgs[3].Deleted {
		t.Fatalf("List: %+v", msgs)
	}
	if from3, _ := mb.List(ctx, 3); len(from3) != 2 || from3[0].UID != "3" {
		t.Fatalf("List from the floor 3: %+v", from3)
	}

	got := map[string]string{}
	err = mb.Fetch(ctx, []string{"1", "3"},
		func(body io.Reader) (source.Spooled, error) {
			b, err := io.ReadAll(body)
			return spooledBytes(b), err
		},
		func(uid string, sp source.Spooled) error { got[uid] = string(sp.(spooledBytes)); return nil })
	if err != nil || got["1"] != memMsg(1) || got["3"] != memMsg(3) || len(got) != 2 {
		t.Fatalf("Fetch: %q %v", got, err)
	}

	prints, err := mb.Fingerprints(ctx, []string{"1", "2"})
	if err != nil || len(prints) != 2 || prints["1"] == prints["2"] || prints["1"] == "" {
		t.Fatalf("Fingerprints: %v %v", prints, err)
	}

	removed, err := mb.Remove(ctx, []string{"1", "3"})
	if err != nil || !slices.Equal(removed, []string{"1", "3"}) {
		t.Fatalf("Remove: %v %v", removed, err)
	}
	// Exactly those: the other client's \Deleted message is still there.
	if left, _ := mb.List(ctx, 1); len(left) != 2 || left[0].UID != "2" || left[1].UID != "4" {
		t.Fatalf("after Remove: %+v", left)
	}
}

// IDLE: the watch reports idling, then new mail as it is appended.
func TestMemWatch(t *testing.T) {
	srv := newMemServer(t)
	up := srv.upstream()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idling, newMail := make(chan struct{}, 1), make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- up.Watch(ctx, "INBOX", source.WatchEvents{
			Idling: func() {
				select {
				case idling <- struct{}{}:
				default:
				}
			},
			NewMail: func() {
				select {
				case newMail <- struct{}{}:
				default:
				}
			},
		})
	}()
	select {
	case <-idling:
	case err := <-done:
		t.Fatalf("Watch ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("never idled")
	}
	// The in-memory server may take an append made the moment IDLE starts
	// as already seen: append until one is announced.
	deadline := time.Now().Add(10 * time.Second)
	for i := 1; ; i++ {
		srv.append(t, []string{memMsg(i)})
		select {
		case <-newMail:
		case <-time.After(time.Second):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("new mail not announced")
		}
		break
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel: %v", err)
	}
}

type spooledBytes []byte

func (spooledBytes) Discard() {}
