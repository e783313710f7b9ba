package testlib

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	imapsql "github.com/foxcpp/go-imap-sql"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/module"
)

// Storage is maddy's storage.imapsql as remote_pull sees it: a
// module.Storage with go-imap-sql's backend (the patched copy in
// third_party/) in its field Back, on SQLite in a test's directory.
type Storage struct {
	Back *imapsql.Backend
}

// NewStorage opens an empty storage with the given local accounts.
func NewStorage(t testing.TB, users ...string) *Storage {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "messages"), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := imapsql.New("sqlite3", filepath.Join(dir, "imapsql.db"), &imapsql.FSStore{Root: filepath.Join(dir, "messages")}, imapsql.Opts{Log: imapsql.DummyLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for _, u := range users {
		if err := b.CreateUser(u); err != nil {
			t.Fatal(err)
		}
	}
	return &Storage{Back: b}
}

func (s *Storage) GetOrCreateIMAPAcct(name string) (backend.User, error) {
	return s.Back.GetOrCreateUser(name)
}
func (s *Storage) GetIMAPAcct(name string) (backend.User, error) { return s.Back.GetUser(name) }
func (s *Storage) IMAPExtensions() []string                      { return nil }

// Stored is one message as the storage holds it.
type Stored struct {
	Raw   []byte
	Flags []string
	Date  time.Time
}

// Folder reads a user's folder back; nil if it does not exist.
func (s *Storage) Folder(t testing.TB, user, name string) []Stored {
	t.Helper()
	u, err := s.GetIMAPAcct(user)
	if err != nil {
		t.Fatal(err)
	}
	status, mbox, err := u.GetMailbox(name, true, nopConn{})
	if errors.Is(err, backend.ErrNoSuchMailbox) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer mbox.Close()
	if status.Messages == 0 {
		return nil
	}
	section := &imap.BodySectionName{Peek: true}
	ch := make(chan *imap.Message, 16)
	seq, _ := imap.ParseSeqSet("1:*")
	errc := make(chan error, 1)
	go func() {
		errc <- mbox.ListMessages(false, seq, []imap.FetchItem{section.FetchItem(), imap.FetchFlags, imap.FetchInternalDate}, ch)
	}()
	var out []Stored
	for m := range ch {
		var raw []byte
		for _, lit := range m.Body {
			raw, _ = io.ReadAll(lit)
		}
		out = append(out, Stored{Raw: raw, Flags: m.Flags, Date: m.InternalDate})
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return out
}

// Folders lists a user's folders.
func (s *Storage) Folders(t testing.TB, user string) []string {
	t.Helper()
	u, err := s.GetIMAPAcct(user)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := u.ListMailboxes(false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, i.Name)
	}
	return out
}

type nopConn struct{}

func (nopConn) SendUpdate(backend.Update) error { return nil }

// FilterFunc is an imap_filter's answer for one local account.
type FilterFunc func(account string, meta *module.MsgMetadata, header textproto.Header) (folder string, flags []string, err error)

// StoragePipeline delivers into a Storage as maddy 0.8.2's imapsql
// storage does (internal/storage/imapsql/delivery.go): each recipient
// (as its account), the imap_filter per recipient, then Return-Path,
// BodyParsed and Commit. Filter is remote_pull's (delivery.FilterFolder).
type StoragePipeline struct {
	Storage *Storage
	Filter  FilterFunc
}

func (p *StoragePipeline) Start(_ context.Context, meta *module.MsgMetadata, from string) (module.Delivery, error) {
	return &storageDelivery{p: p, meta: meta, from: from, d: p.Storage.Back.NewDelivery()}, nil
}

type storageDelivery struct {
	p     *StoragePipeline
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
	if d.p.Filter != nil {
		for _, rcpt := range d.rcpts {
			folder, flags, err := d.p.Filter(rcpt, d.meta, header)
			if err != nil {
				continue // maddy logs it and delivers to INBOX
			}
			d.d.UserMailbox(rcpt, folder, flags)
		}
	}
	header = header.Copy()
	header.Add("Return-Path", "<"+d.from+">")
	return d.d.BodyParsed(header, body.Len(), body)
}

func (d *storageDelivery) Abort(context.Context) error  { return d.d.Abort() }
func (d *storageDelivery) Commit(context.Context) error { return d.d.Commit() }
