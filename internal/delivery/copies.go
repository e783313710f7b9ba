package delivery

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-message/textproto"
	imapsql "github.com/foxcpp/go-imap-sql"
	"github.com/foxcpp/maddy/framework/module"
)

// A message with several Gmail labels is downloaded once and delivered
// once through maddy's pipeline, into its first placement; the others get
// copies stored straight into maddy's imapsql storage, bypassing the
// pipeline: its checks and modifiers judged the message already, and
// running them again per label would judge one message several times
// (and count it several times in maddy's own metrics). A copy holds the
// same bytes as the delivered message: the imap_filter notes the header
// the storage was handed (after the pipeline's modifiers) and the local
// account it went to, and the copy is stored by go-imap-sql's own
// Delivery with the same Return-Path and Delivered-To fields, date and
// flags.

// storedCopy is where the pipeline stored a message for one local
// account, as the imap_filter saw it.
type storedCopy struct {
	account string
	header  textproto.Header
}

type storedCopies struct {
	mu     sync.Mutex
	copies []storedCopy
}

// stored holds, by maddy msg ID, the messages in delivery that will get
// copies, for the imap_filter to note what it stored.
var stored sync.Map // msg ID → *storedCopies

// NoteStored records that the message being delivered with maddy's
// message ID id goes to the local account, with header: called by the
// imap_filter for each recipient. Nothing for messages without copies.
func NoteStored(id, account string, header textproto.Header) {
	v, ok := stored.Load(id)
	if !ok {
		return
	}
	s := v.(*storedCopies)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.copies = append(s.copies, storedCopy{account: account, header: header.Copy()})
}

// imapsqlBackend is go-imap-sql's backend behind maddy's storage.imapsql
// module. maddy exports it only as a field (imapsql.Storage.Back) of a
// type in its internal tree, so it is read by reflection; any other
// storage has none, and copies are then not made.
func imapsqlBackend(s module.Storage) (*imapsql.Backend, error) {
	v := reflect.ValueOf(s)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Back"); f.IsValid() && f.CanInterface() {
			if b, ok := f.Interface().(*imapsql.Backend); ok && b != nil {
				return b, nil
			}
		}
	}
	return nil, fmt.Errorf("remote_pull: storage %T is not maddy's storage.imapsql: cannot store label copies", s)
}

// storeCopies stores a copy of the delivered message s for each noted
// account in each of places. It returns the places stored for every
// account; the first error stops it.
func (t *Target) storeCopies(noted *storedCopies, s *Spooled, o Origin, mailFrom string, places []Placement) ([]Placement, error) {
	noted.mu.Lock()
	copies := slices.Clone(noted.copies)
	noted.mu.Unlock()
	if len(copies) == 0 {
		// The filter was not asked: the message went to Junk
		// (quarantine) and skipped the filters. No copies of it.
		return places, nil
	}
	if t.Storage == nil {
		return nil, errors.New("remote_pull: no storage to store label copies in")
	}
	b, err := imapsqlBackend(t.Storage)
	if err != nil {
		return nil, err
	}
	var body imapsql.Buffer = s.Body
	if !o.Arrived.IsZero() {
		body = datedBuffer{Buffer: s.Body, date: o.Arrived}
	}
	var done []Placement
	for _, p := range places {
		for _, c := range copies {
			if err := t.storeCopy(b, c, p, mailFrom, body, s.Body.Len()); err != nil {
				return done, err
			}
		}
		done = append(done, p)
	}
	return done, nil
}

// storeCopy stores one copy for one account, as maddy's imapsql storage
// stores a delivery (its Body: Return-Path from the envelope sender, then
// go-imap-sql adds Delivered-To).
func (t *Target) storeCopy(b *imapsql.Backend, c storedCopy, p Placement, mailFrom string, body imapsql.Buffer, bodyLen int) error {
	u, err := t.Storage.GetOrCreateIMAPAcct(c.account)
	if err != nil {
		return err
	}
	folder, err := t.LocalFolder(u, p)
	if err != nil {
		return err
	}
	userHeader := textproto.Header{}
	userHeader.Add("Delivered-To", c.account)
	d := b.NewDelivery()
	if err := d.AddRcpt(c.account, userHeader); err != nil {
		return err
	}
	d.UserMailbox(c.account, folder, p.Flags)
	if err := d.Mailbox(folder); err != nil {
		return err
	}
	header := c.header.Copy()
	header.Add("Return-Path", "<"+sanitizeForHeader(mailFrom)+">")
	if err := d.BodyParsed(header, bodyLen, body); err != nil {
		d.Abort()
		return err
	}
	return d.Commit()
}

// sanitizeForHeader is maddy's target.SanitizeForHeader (internal there):
// no line breaks in a header value.
func sanitizeForHeader(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}

// LocalFolder finds the user's folder for p, creating it if needed: the
// folder with p.SpecialUse if there is one, else p.Folder rebuilt with the
// storage's delimiter when p.Delimiter says it is an upstream path. The
// zero placement is INBOX.
func (t *Target) LocalFolder(u backend.User, p Placement) (string, error) {
	return LocalFolder(t.Storage, u, p)
}

// LocalFolder is Target.LocalFolder for a given storage (the imap_filter's).
func LocalFolder(s module.Storage, u backend.User, p Placement) (string, error) {
	if p.Folder == "" && p.SpecialUse == "" {
		return "INBOX", nil
	}
	if p.Delimiter != "" {
		delim, err := localDelimiter(s, u)
		if err != nil {
			return "", err
		}
		p.Folder = MirrorPath(p.Folder, p.Delimiter, delim)
	}
	if p.SpecialUse != "" {
		infos, err := u.ListMailboxes(false)
		if err != nil {
			return "", err
		}
		for _, info := range infos {
			if slices.Contains(info.Attributes, p.SpecialUse) {
				return info.Name, nil
			}
		}
	}
	name := p.Folder
	if name == "" {
		return "", fmt.Errorf("remote_pull: no folder name for %s", p.SpecialUse)
	}
	var err error
	if sc, ok := u.(specialCreator); ok && p.SpecialUse != "" {
		err = sc.CreateMailboxSpecial(name, p.SpecialUse)
	} else {
		err = u.CreateMailbox(name)
	}
	if err != nil && !errors.Is(err, backend.ErrMailboxAlreadyExists) {
		return "", fmt.Errorf("remote_pull: creating folder %q: %w", name, err)
	}
	return name, nil
}

// specialCreator is go-imap-sql's user, which creates special-use folders.
type specialCreator interface {
	CreateMailboxSpecial(name, attr string) error
}

// localDelims caches each storage's hierarchy delimiter, which never
// changes (imapsql: ".").
var localDelims sync.Map // module.Storage → string

// localDelimiter is the hierarchy delimiter of the storage's folder names,
// or "" if it has none.
func localDelimiter(s module.Storage, u backend.User) (string, error) {
	if d, ok := localDelims.Load(s); ok {
		return d.(string), nil
	}
	infos, err := u.ListMailboxes(false)
	if err != nil {
		return "", err
	}
	for _, info := range infos {
		if info.Delimiter != "" {
			localDelims.Store(s, info.Delimiter)
			return info.Delimiter, nil
		}
	}
	return "", nil
}

// noConn is the IMAP connection a storage lookup needs and that gets no
// updates.
type noConn struct{}

func (noConn) SendUpdate(backend.Update) error { return nil }

// CopyStored places further copies of a message delivered earlier (a
// label added upstream after the delivery), without a download: the
// delivered copy is found in the local folders of from (any of them, in
// order) by its Received field's id clause (origin: Origin.ID of the
// delivery) and copied within the storage (IMAP COPY: flags and arrival
// date come along) into each of to, for each local account. It returns
// the placements made. ErrNoLocalCopy: the user has deleted or moved
// every local copy; nothing is downloaded again for it.
func (t *Target) CopyStored(ctx context.Context, accounts []string, origin string, from, to []Placement) ([]Placement, error) {
	if t.Storage == nil {
		return nil, errors.New("remote_pull: no storage to store label copies in")
	}
	if len(accounts) == 0 {
		// Stored for no local account: quarantined (Junk, no filter asked).
		return to, nil
	}
	var done []Placement
	for _, p := range to {
		for _, account := range accounts {
			if err := ctx.Err(); err != nil {
				return done, err
			}
			u, err := t.Storage.GetOrCreateIMAPAcct(account)
			if err != nil {
				return done, err
			}
			dest, err := t.LocalFolder(u, p)
			if err != nil {
				return done, err
			}
			if err := t.copyWithin(u, origin, from, dest, p.Flags); err != nil {
				return done, err
			}
		}
		done = append(done, p)
	}
	return done, nil
}

// ErrNoLocalCopy: no local copy of the message is left to copy from.
var ErrNoLocalCopy = errors.New("no local copy of the message left (deleted or moved locally)")

func (t *Target) copyWithin(u backend.User, origin string, from []Placement, dest string, flags []string) error {
	for _, p := range from {
		name, err := t.LocalFolder(u, p)
		if err != nil {
			return err
		}
		_, mbox, err := u.GetMailbox(name, true, noConn{}) // read, search, copy out: nothing changes here
		if errors.Is(err, backend.ErrNoSuchMailbox) {
			continue
		}
		if err != nil {
			return err
		}
		crit := imap.NewSearchCriteria()
		crit.Header.Add("Received", "<"+origin+">")
		uids, err := mbox.SearchMessages(true, crit)
		if err != nil || len(uids) == 0 {
			mbox.Close()
			if err != nil {
				return err
			}
			continue
		}
		var set imap.SeqSet
		set.AddNum(uids[0])
		err = mbox.CopyMessages(true, &set, dest)
		mbox.Close()
		if err != nil {
			return err
		}
		if len(flags) > 0 {
			return t.addFlags(u, dest, origin, flags)
		}
		return nil
	}
	return ErrNoLocalCopy
}

// addFlags sets flags on the copy just made in dest.
func (t *Target) addFlags(u backend.User, dest, origin string, flags []string) error {
	_, mbox, err := u.GetMailbox(dest, false, noConn{})
	if err != nil {
		return err
	}
	defer mbox.Close()
	crit := imap.NewSearchCriteria()
	crit.Header.Add("Received", "<"+origin+">")
	uids, err := mbox.SearchMessages(true, crit)
	if err != nil || len(uids) == 0 {
		return err
	}
	var set imap.SeqSet
	set.AddNum(uids...)
	return mbox.UpdateMessagesFlags(true, &set, imap.AddFlags, true, flags)
}

// virtualUses are SPECIAL-USE attributes of folders that show messages
// kept elsewhere (RFC 6154 \All, \Flagged; Gmail's \Important): never
// made locally, even empty.
var virtualUses = []string{`\All`, `\Flagged`, `\Important`}

// EnsureFolder creates p's local folder for each rcpt_to recipient that
// has a local account, if it lacks it: an upstream folder mirrored
// (local_folders mirror) exists locally even while it is empty. The zero
// placement (INBOX) and virtual folders (\All, \Flagged, \Important) are
// left alone. A recipient without a local account (or whose account name
// is not its address, through delivery_map) is skipped: its folders come
// with the first message delivered there.
func (t *Target) EnsureFolder(p Placement) error {
	if p.Folder == "" && p.SpecialUse == "" || slices.Contains(virtualUses, p.SpecialUse) || t.Storage == nil {
		return nil
	}
	for _, rcpt := range t.Rcpts {
		u, err := t.Storage.GetIMAPAcct(rcpt)
		if err != nil {
			continue // no such local account: nothing to make
		}
		_, err = t.LocalFolder(u, p)
		u.Logout()
		if err != nil {
			return err
		}
	}
	return nil
}
