package filesrc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"sort"
	"sync"
	"syscall"

	"github.com/emersion/go-message/textproto"

	"github.com/remote-pull/remote_pull/internal/source"
)

// MboxConfig is one mbox file to import.
type MboxConfig struct {
	Path    string
	Variant Variant
	// PageMessages is how many messages a listing holds at most (0: 4096).
	PageMessages int
	// Warn reports a suspect message (with its position) or file; called
	// once per distinct text per listing.
	Warn func(msg string)
}

// Mbox is an mbox file as an upstream with one folder, INBOX. It is
// listed a page at a time (source.Paged): a listing entry per message of
// a 50 GB file would not fit in memory.
type Mbox struct {
	cfg MboxConfig
	mu  sync.Mutex
	// next is where the next listing starts: the end of the last page
	// the account finished with (Advance), so that a finished import
	// costs a stat per poll, not a read, and appended mail is read from
	// where the file ended.
	next cursor
}

// pageMessages is how many messages a listing holds at most unless
// MboxConfig says otherwise: about 4 MiB of listing.
const pageMessages = 4096

// cursor is a place in the file between two messages, and how to tell
// that the file still holds, before it, what was read there.
type cursor struct {
	id  fileID // the file when the page ending here was listed
	off int64  // where the next message starts
	// prevOff and prevID are the place and identity of the message that
	// ends at off: checked before reading on from off in a file that
	// changed (an mbox appended to keeps them; one rewritten does not).
	prevOff int64
	prevID  string
}

// Path is the file read.
func (u *Mbox) Path() string { return u.cfg.Path }

// NewMbox returns the mbox upstream.
func NewMbox(cfg MboxConfig) *Mbox {
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	if cfg.PageMessages <= 0 {
		cfg.PageMessages = pageMessages
	}
	return &Mbox{cfg: cfg}
}

func (u *Mbox) Protocol() string { return source.Mbox }
func (u *Mbox) Host() string     { return "localhost" }

// Connect opens the file read-only.
func (u *Mbox) Connect(ctx context.Context) (source.Session, error) {
	f, err := os.Open(u.cfg.Path)
	if err != nil {
		return nil, err
	}
	return &mboxSession{u: u, f: f}, nil
}

type mboxSession struct {
	u      *Mbox
	f      *os.File
	opened bool
}

func (s *mboxSession) RemoteAddr() string              { return "" }
func (s *mboxSession) Close(ctx context.Context) error { return s.f.Close() }
func (s *mboxSession) Abort()                          { s.f.Close() }

// Describe tells what is read, for 'remote-pull check'.
func (s *mboxSession) Describe() []string {
	return []string{"mbox file " + s.u.cfg.Path + " (read only)"}
}

// Open returns the file's one folder, INBOX.
func (s *mboxSession) Open(ctx context.Context, name string) (source.Mailbox, error) {
	if name != "INBOX" || s.opened {
		return nil, &source.FolderError{Err: fmt.Errorf("an mbox file is one folder, INBOX; %q is not available", name)}
	}
	s.opened = true
	return &mboxMailbox{s: s}, nil
}

// mboxListing is what a scan of the file found.
type mboxListing struct {
	msgs  []source.Message
	where map[string]span // by UID
	warns []string
	// end is where the page ends; left: how much of the file follows.
	end  cursor
	left int64
}

// span is where a message is in the file: its From line's offset, and
// how many bytes of the file it takes; idx is its place in the listing.
type span struct {
	off, n int64
	idx    int
}

// fileID tells whether a file changed since it was read.
type fileID struct {
	dev, ino     uint64
	size, mtime  int64
	ctime, valid int64
}

func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano(), valid: 1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
		id.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return id
}

type mboxMailbox struct {
	s       *mboxSession
	listing *mboxListing
}

// UIDValidity is 0: a message's identity is its content (Complete).
func (m *mboxMailbox) UIDValidity() uint32 { return 0 }

// Complete: List returns every message in the file.
func (m *mboxMailbox) Complete() bool { return true }

// StableIdentities: an identity is a hash of the message as delivered,
// which no other message has; an entry whose message is no longer in
// the file is kept (the file may be restored, or is being rewritten).
func (m *mboxMailbox) StableIdentities() {}

// RemovesNothing: the file is never written.
func (m *mboxMailbox) Disposal(ctx context.Context) (source.Removal, error) {
	return source.Removal{Mode: source.RemoveNothing}, nil
}

// Identity says how messages are told apart, for 'check'.
func (m *mboxMailbox) Identity() string {
	return "a hash of each message's content (its position in the file checked at every read)"
}

// List reads the next page of the file: from where the last page the
// account finished ended, if the file still holds what was read before
// that point, else from the start (identities are the content: what was
// delivered is known again wherever it now is).
func (m *mboxMailbox) List(ctx context.Context, _ uint32) ([]source.Message, error) {
	fi, err := m.s.f.Stat()
	if err != nil {
		return nil, err
	}
	id := idOf(fi)
	u := m.s.u
	u.mu.Lock()
	c := u.next
	u.mu.Unlock()
	if c.id != id {
		c = m.continued(ctx, c, id)
	}
	if c.off >= id.size {
		m.listing = &mboxListing{end: c}
		m.listing.end.id = id
		return nil, nil
	}
	l, err := scanMbox(ctx, m.s.f, u.cfg.Variant, u.cfg.Path, c, u.cfg.PageMessages)
	if err != nil {
		return nil, err
	}
	l.end.id = id
	l.left = max(id.size-l.end.off, 0)
	for _, w := range l.warns {
		u.cfg.Warn(w)
	}
	m.listing = l
	return l.msgs, nil
}

// continued is where to read on in the file, changed since the page
// ending at c was read: after that page's last message if the file still
// holds it where it was (mail was appended; the message now also takes
// the blank line before the next From line), else at the start (the
// file was rewritten).
func (m *mboxMailbox) continued(ctx context.Context, c cursor, id fileID) cursor {
	if c.off == 0 || c.id.valid == 0 || c.id.dev != id.dev || c.id.ino != id.ino || id.size < c.off {
		return cursor{}
	}
	l, err := scanMbox(ctx, m.s.f, m.s.u.cfg.Variant, m.s.u.cfg.Path, cursor{off: c.prevOff}, 1)
	if err != nil || len(l.msgs) != 1 || l.msgs[0].UID != c.prevID || l.end.off < c.off {
		return cursor{}
	}
	return l.end
}

// PagesLeft: the listing stopped before the end of the file.
func (m *mboxMailbox) PagesLeft() bool { return m.BytesLeft() > 0 }

// BytesLeft is how much of the file follows the listing.
func (m *mboxMailbox) BytesLeft() int64 {
	if m.listing == nil {
		return 0
	}
	return m.listing.left
}

// Advance: the next listing starts after this one.
func (m *mboxMailbox) Advance() {
	if m.listing == nil {
		return
	}
	m.s.u.mu.Lock()
	m.s.u.next = m.listing.end
	m.s.u.mu.Unlock()
}

// Cursor is where the next listing starts, for the ledger.
func (m *mboxMailbox) Cursor() string {
	m.s.u.mu.Lock()
	c := m.s.u.next
	m.s.u.mu.Unlock()
	if c.off == 0 {
		return ""
	}
	b, _ := json.Marshal(savedCursor{Dev: c.id.dev, Ino: c.id.ino, Size: c.id.size, Mtime: c.id.mtime, Ctime: c.id.ctime,
		Off: c.off, PrevOff: c.prevOff, PrevID: c.prevID})
	return string(b)
}

// SetCursor puts back a cursor the ledger kept; List checks it against
// the file (continued) unless the file is exactly as it was then. One
// that does not parse is the beginning.
func (m *mboxMailbox) SetCursor(text string) {
	var c cursor
	var sc savedCursor
	if text != "" && json.Unmarshal([]byte(text), &sc) == nil && sc.Off > 0 {
		c = cursor{id: fileID{dev: sc.Dev, ino: sc.Ino, size: sc.Size, mtime: sc.Mtime, ctime: sc.Ctime, valid: 1},
			off: sc.Off, prevOff: sc.PrevOff, prevID: sc.PrevID}
	}
	m.s.u.mu.Lock()
	m.s.u.next = c
	m.s.u.mu.Unlock()
}

// savedCursor is a cursor as the ledger keeps it.
type savedCursor struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	Mtime   int64  `json:"mtime"`
	Ctime   int64  `json:"ctime"`
	Off     int64  `json:"off"`
	PrevOff int64  `json:"prev_off"`
	PrevID  string `json:"prev_id"`
}

// scanMbox reads up to limit messages from where c says: each message's
// identity, size, fingerprint, date and flags, and where it is. The same
// message twice (the same bytes as delivered, state fields aside) is one
// message: it is listed where it is first seen in the page, and a later
// page lists it under the same identity, which the ledger then knows.
func scanMbox(ctx context.Context, f io.ReaderAt, v Variant, path string, c cursor, limit int) (*mboxListing, error) {
	l := &mboxListing{where: map[string]span{}, end: c}
	off := c.off
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, 1<<62), readBuffer)
	hdr := &headerBuf{}
	for i := 0; i < limit; i++ {
		if _, err := br.Peek(1); err == io.EOF {
			break
		}
		if i%64 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		mr := newMsgReader(br, v, f, off)
		sum := sha256.New()
		hdr.reset()
		n, err := io.Copy(io.MultiWriter(sum, hdr), mr)
		if err != nil {
			return nil, fmt.Errorf("reading %s at byte %d: %w", path, off, err)
		}
		uid := hex.EncodeToString(sum.Sum(nil)[:16])
		if first, seen := l.where[uid]; seen {
			l.warns = append(l.warns, fmt.Sprintf("%s: message at byte %d (%s) is the message at byte %d again: imported once",
				path, off, uid, first.off))
		} else {
			msg := describe(mr, n, hdr)
			msg.UID = uid
			l.msgs = append(l.msgs, msg)
			l.where[uid] = span{off: off, n: mr.consumed, idx: len(l.msgs) - 1}
			if mr.problems != 0 {
				l.warns = append(l.warns, fmt.Sprintf("%s: message at byte %d (%s): %s",
					path, off, uid, problemText(mr.problems)))
			}
		}
		l.end.prevOff, l.end.prevID = off, uid
		off += mr.consumed
		l.end.off = off
	}
	return l, nil
}

// describe makes the listed message of what a msgReader read: n bytes
// delivered, whose header is in hdr.
func describe(mr *msgReader, n int64, hdr *headerBuf) source.Message {
	msg := source.Message{Size: n}
	var extra source.MessageExtra
	if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr.b))); err == nil {
		extra.Fingerprint = source.Fingerprint(h, n)
	}
	if t, ok := fromLineDate(mr.fromLine); ok {
		msg.Date = t
	}
	if m := takeoutID.FindStringSubmatch(mr.fromLine); m != nil {
		extra.GlobalID = "gm:" + m[1]
	}
	msg.Flags = mboxFlags(mr.fields["status"], mr.fields["x-status"], mr.fields["x-keywords"])
	if labels, ok := mr.fields["x-gmail-labels"]; ok {
		extra.Labels, msg.Flags = takeoutLabels(labels, msg.Flags)
		if extra.Labels == nil {
			extra.Labels = []string{} // labelled, with none: archived
		}
	}
	if extra.Fingerprint != "" || extra.GlobalID != "" || extra.Labels != nil {
		msg.Extra = &extra
	}
	msg.Deleted = hasFlag(msg.Flags, `\Deleted`)
	msg.Flags = withoutFlag(msg.Flags, `\Deleted`)
	return msg
}

// takeoutID is the From line of a Google Takeout mbox, whose sender is
// the message's Gmail ID (X-GM-MSGID, in decimal) at "xxx": an IMAP
// account on the same mailbox lists the message under the same GlobalID.
var takeoutID = regexp.MustCompile(`^From ([0-9]{1,20})@xxx `)

// headerBuf keeps the first bytes written to it, enough for a header.
type headerBuf struct{ b []byte }

// maxHeader is what a header may take, as delivery.DefaultMaxHeaderBytes.
const maxHeader = 1 << 20

func (h *headerBuf) reset() { h.b = h.b[:0] }
func (h *headerBuf) Write(p []byte) (int, error) {
	if room := maxHeader - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// errChanged: the file no longer holds, where it was listed, the message
// listed there. Nothing read is delivered; the next poll lists it anew.
var errChanged = errors.New("the file changed since it was listed: the message is no longer where it was")

// Fetch streams the messages from where List found them, each checked to
// be, byte for byte, the message listed (its hash is its identity).
func (m *mboxMailbox) Fetch(ctx context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	if m.listing == nil {
		return errors.New("mbox: Fetch before List")
	}
	sorted := m.known(uids)
	for _, uid := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		sp := m.listing.where[uid]
		r := m.openAt(m.s.f, uid, sp)
		s, err := spool(r)
		if err != nil {
			return err
		}
		if err := deliver(uid, s); err != nil {
			return err
		}
	}
	return nil
}

// known are the listed uids among uids, in file order.
func (m *mboxMailbox) known(uids []string) []string {
	var out []string
	for _, uid := range uids {
		if _, ok := m.listing.where[uid]; ok {
			out = append(out, uid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return m.listing.where[out[i]].off < m.listing.where[out[j]].off })
	return out
}

// openAt reads one message from its place in f, checking it is the one
// listed.
func (m *mboxMailbox) openAt(f io.ReaderAt, uid string, sp span) io.Reader {
	br := bufio.NewReaderSize(io.NewSectionReader(f, sp.off, sp.n), readBuffer)
	return &checkedReader{r: newMsgReader(br, m.s.u.cfg.Variant, f, sp.off), sum: sha256.New(), want: uid}
}

// checkedReader ends with errChanged instead of io.EOF when what it read
// is not the message of that hash.
type checkedReader struct {
	r    io.Reader
	sum  hash.Hash
	want string
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sum.Write(p[:n])
	if err == io.EOF && hex.EncodeToString(c.sum.Sum(nil)[:16]) != c.want {
		return n, errChanged
	}
	return n, err
}

// Fingerprints are those the listing computed.
func (m *mboxMailbox) Fingerprints(ctx context.Context, uids []string) (map[string]string, error) {
	out := make(map[string]string, len(uids))
	for _, uid := range uids {
		if sp, ok := m.listing.where[uid]; ok {
			out[uid] = m.listing.msgs[sp.idx].Fingerprint()
		}
	}
	return out, nil
}

// Remove removes nothing: the file is never written.
func (m *mboxMailbox) Remove(ctx context.Context, uids []string) ([]string, error) {
	return nil, nil
}
