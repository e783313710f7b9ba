package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	imapsql "github.com/foxcpp/go-imap-sql"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/log"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/delivery"
	_ "github.com/remote-pull/remote_pull/remotepull" // the imap_filter
)

// imapsqlStorage is maddy's storage.imapsql as remote_pull sees it: a
// module.Storage with go-imap-sql's backend in its field Back.
type imapsqlStorage struct {
	Back *imapsql.Backend
}

func (s *imapsqlStorage) GetOrCreateIMAPAcct(name string) (backend.User, error) {
	return s.Back.GetOrCreateUser(name)
}
func (s *imapsqlStorage) GetIMAPAcct(name string) (backend.User, error) { return s.Back.GetUser(name) }
func (s *imapsqlStorage) IMAPExtensions() []string                    { return nil }

// storagePipeline delivers into the storage as maddy 0.8.2's imapsql
// delivery does (internal/storage/imapsql/delivery.go, Body): the
// imap_filter modules per recipient, then Return-Path, BodyParsed, Commit.
type storagePipeline struct {
	s      *imapsqlStorage
	filter module.IMAPFilter
}

func (p *storagePipeline) Start(_ context.Context, meta *module.MsgMetadata, from string) (module.Delivery, error) {
	return &storageDelivery{p: p, meta: meta, from: from, d: p.s.Back.NewDelivery()}, nil
}

type storageDelivery struct {
	p     *storagePipeline
	meta  *module.MsgMetadata
	from  string
	d     imapsql.Delivery
	rcpts []string
}

func (d *storageDelivery) AddRcpt(_ context.Context, rcpt string, _ smtp.RcptOptions) error {
	h := textproto.Header{}
	h.Add("Delivered-To", rcpt)
	d.rcpts = append(d.rcpts, rcpt)
	return d.d.AddRcpt(rcpt, h)
}

func (d *storageDelivery) Body(_ context.Context, header textproto.Header, body buffer.Buffer) error {
	for _, rcpt := range d.rcpts {
		folder, flags, err := d.p.filter.IMAPFilter(rcpt, rcpt, d.meta, header, body)
		if err != nil {
			continue
		}
		d.d.UserMailbox(rcpt, folder, flags)
	}
	header = header.Copy()
	header.Add("Return-Path", "<"+d.from+">")
	return d.d.BodyParsed(header, body.Len(), body)
}

func (d *storageDelivery) Abort(context.Context) error  { return d.d.Abort() }
func (d *storageDelivery) Commit(context.Context) error { return d.d.Commit() }

const user = "alice@example.org"

func newStorageTarget(t *testing.T) (*delivery.Target, *imapsqlStorage) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "messages"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := imapsql.New("sqlite3", filepath.Join(dir, "imapsql.db"), &imapsql.FSStore{Root: filepath.Join(dir, "messages")}, imapsql.Opts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.CreateUser(user); err != nil {
		t.Fatal(err)
	}
	s := &imapsqlStorage{Back: b}
	mod, err := module.Get("imap.filter.remote_pull")("imap.filter.remote_pull", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &delivery.Target{
		Options:  delivery.Options{Pipeline: &storagePipeline{s: s, filter: mod.(module.IMAPFilter)}, Rcpts: []string{user}, Storage: s},
		SpoolDir: t.TempDir(),
		Log:      log.Logger{Name: "test"},
	}, s
}

type stored struct {
	raw   []byte
	flags []string
	date  time.Time
}

// folder reads a local folder back from the storage.
func folder(t *testing.T, s *imapsqlStorage, name string) []stored {
	t.Helper()
	u, err := s.GetIMAPAcct(user)
	if err != nil {
		t.Fatal(err)
	}
	_, mbox, err := u.GetMailbox(name, true, nopConn{})
	if errors.Is(err, backend.ErrNoSuchMailbox) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer mbox.Close()
	section := &imap.BodySectionName{Peek: true}
	ch := make(chan *imap.Message, 10)
	seq, _ := imap.ParseSeqSet("1:*")
	if err := mbox.ListMessages(false, seq, []imap.FetchItem{section.FetchItem(), imap.FetchFlags, imap.FetchInternalDate}, ch); err != nil {
		t.Fatal(err)
	}
	var out []stored
	for m := range ch {
		var raw []byte
		for _, lit := range m.Body {
			raw, _ = io.ReadAll(lit)
		}
		out = append(out, stored{raw: raw, flags: m.Flags, date: m.InternalDate})
	}
	return out
}

type nopConn struct{}

func (nopConn) SendUpdate(backend.Update) error { return nil }

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
		if !bytes.Equal(got[0].raw, inbox[0].raw) {
			t.Errorf("%s holds other bytes than INBOX:\n%s\nINBOX:\n%s", name, got[0].raw, inbox[0].raw)
		}
		if !got[0].date.Equal(arrived) {
			t.Errorf("%s: arrival date %v, want %v", name, got[0].date, arrived)
		}
		if !slices.Contains(got[0].flags, imap.FlaggedFlag) {
			t.Errorf("%s: flags %v, want \\Flagged (\\Starred)", name, got[0].flags)
		}
	}

	// A label added later: copied within the storage.
	family := delivery.Placement{Folder: "Family", Delimiter: "/"}
	done, err := target.CopyStored(context.Background(), copies.Accounts, o.ID(), []delivery.Placement{places[1], places[0]}, []delivery.Placement{family})
	if err != nil || len(done) != 1 {
		t.Fatalf("CopyStored: %v, %v", done, err)
	}
	if got := folder(t, s, "Family"); len(got) != 1 || !bytes.Equal(got[0].raw, inbox[0].raw) || !got[0].date.Equal(arrived) {
		t.Errorf("Family holds %d messages (or another copy): %+v", len(got), got)
	}
	// Deleted locally everywhere: nothing to copy from.
	other := o
	other.UID = "8"
	if _, err := target.CopyStored(context.Background(), copies.Accounts, other.ID(), places, []delivery.Placement{{Folder: "X", Delimiter: "/"}}); !errors.Is(err, delivery.ErrNoLocalCopy) {
		t.Errorf("CopyStored of a message with no local copy: %v, want ErrNoLocalCopy", err)
	}
}
