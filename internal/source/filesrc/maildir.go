package filesrc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/remote-pull/remote_pull/internal/source"
)

// MaildirConfig is one Maildir tree to import: its INBOX at Path (cur,
// new, tmp), and Maildir++ subfolders (.Work, .Work.Clients) beside them.
type MaildirConfig struct {
	Path string
}

// Maildir is a Maildir tree as an upstream.
type Maildir struct{ cfg MaildirConfig }

// NewMaildir returns the Maildir upstream.
func NewMaildir(cfg MaildirConfig) *Maildir { return &Maildir{cfg: cfg} }

func (u *Maildir) Protocol() string { return source.Maildir }
func (u *Maildir) Host() string     { return "localhost" }

// Connect checks the tree is a Maildir.
func (u *Maildir) Connect(ctx context.Context) (source.Session, error) {
	if err := isMaildir(u.cfg.Path); err != nil {
		return nil, err
	}
	return &maildirSession{u: u}, nil
}

func isMaildir(dir string) error {
	for _, sub := range []string{"cur", "new"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil {
			return fmt.Errorf("not a Maildir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("not a Maildir: %s is not a directory", filepath.Join(dir, sub))
		}
	}
	return nil
}

type maildirSession struct{ u *Maildir }

func (s *maildirSession) RemoteAddr() string              { return "" }
func (s *maildirSession) Close(ctx context.Context) error { return nil }
func (s *maildirSession) Abort()                          {}

// Describe tells what is read, for 'remote-pull check'.
func (s *maildirSession) Describe() []string {
	return []string{"Maildir " + s.u.cfg.Path + " (read only)"}
}

// Folders lists INBOX and the Maildir++ subfolders: a directory ".A.B"
// with cur and new is folder "A.B", "." being the hierarchy delimiter.
func (s *maildirSession) Folders(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(s.u.cfg.Path)
	if err != nil {
		return nil, err
	}
	out := []string{"INBOX"}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, ".") || name == "." || name == ".." || !e.IsDir() {
			continue
		}
		if isMaildir(filepath.Join(s.u.cfg.Path, name)) == nil {
			out = append(out, name[1:])
		}
	}
	return out, nil
}

// Open returns one folder.
func (s *maildirSession) Open(ctx context.Context, name string) (source.Mailbox, error) {
	dir := s.u.cfg.Path
	if name != "INBOX" {
		if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
			return nil, &source.FolderError{Err: fmt.Errorf("no Maildir folder %q", name)}
		}
		dir = filepath.Join(dir, "."+name)
	}
	if err := isMaildir(dir); err != nil {
		return nil, &source.FolderError{Err: fmt.Errorf("folder %q: %w", name, err)}
	}
	return &maildirMailbox{dir: dir, name: name}, nil
}

type maildirMailbox struct {
	dir, name string
	files     map[string]string // unique name → path, as listed
	sizes     map[string]int64
}

func (m *maildirMailbox) UIDValidity() uint32 { return 0 }
func (m *maildirMailbox) Complete() bool      { return true }

// StableIdentities: a Maildir file's unique name is never given to
// another message.
func (m *maildirMailbox) StableIdentities() {}

// HierarchyDelimiter is Maildir++'s ".".
func (m *maildirMailbox) HierarchyDelimiter(ctx context.Context) (string, error) { return ".", nil }

// Disposal: nothing is removed; the tree is never written.
func (m *maildirMailbox) Disposal(ctx context.Context) (source.Removal, error) {
	return source.Removal{Mode: source.RemoveNothing}, nil
}

// Identity says how messages are told apart, for 'check'.
func (m *maildirMailbox) Identity() string {
	return "the unique part of each file's name (before ':2,')"
}

// List reads new/ and cur/: each file's unique name, size, flags (the
// ":2," info) and arrival date (the file's modification time, which
// Dovecot and other deliverers set to it).
func (m *maildirMailbox) List(ctx context.Context, _ uint32) ([]source.Message, error) {
	keywords := readKeywords(filepath.Join(m.dir, "dovecot-keywords"))
	m.files = map[string]string{}
	m.sizes = map[string]int64{}
	var msgs []source.Message
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(m.dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !e.Type().IsRegular() {
				continue
			}
			uniq, info, _ := strings.Cut(name, ":")
			if _, dup := m.files[uniq]; dup {
				continue // moved from new to cur while listed
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed (flags changed) meanwhile: listed next time
			}
			if err != nil {
				return nil, err
			}
			path := filepath.Join(m.dir, sub, name)
			m.files[uniq], m.sizes[uniq] = path, fi.Size()
			flags := maildirFlags(info, keywords)
			msg := source.Message{UID: uniq, Size: fi.Size(), Date: fi.ModTime(), Flags: flags,
				Deleted: hasFlag(flags, `\Deleted`)}
			msg.Flags = withoutFlag(msg.Flags, `\Deleted`)
			msgs = append(msgs, msg)
		}
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Date.Before(msgs[j].Date) })
	return msgs, nil
}

// maildirFlags reads the ":2," info: D draft, F flagged, P passed
// ($Forwarded), R replied, S seen, T trashed (\Deleted); a-z are
// Dovecot's keywords, by the folder's dovecot-keywords file.
func maildirFlags(info string, keywords map[byte]string) []string {
	letters, ok := strings.CutPrefix(info, "2,")
	if !ok {
		return nil
	}
	var flags []string
	for i := 0; i < len(letters); i++ {
		c := letters[i]
		switch {
		case c == 'D':
			flags = append(flags, `\Draft`)
		case c == 'F':
			flags = append(flags, `\Flagged`)
		case c == 'P':
			flags = append(flags, `$Forwarded`)
		case c == 'R':
			flags = append(flags, `\Answered`)
		case c == 'S':
			flags = append(flags, `\Seen`)
		case c == 'T':
			flags = append(flags, `\Deleted`)
		case c >= 'a' && c <= 'z' && keywords[c] != "":
			flags = append(flags, keywords[c])
		}
	}
	return flags
}

// readKeywords reads Dovecot's dovecot-keywords ("0 name" a line: index
// 0 is letter a); missing, none.
func readKeywords(path string) map[byte]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[byte]string{}
	sc := bufio.NewScanner(io.LimitReader(f, 1<<16))
	for sc.Scan() {
		n, name, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(n)
		if ok && err == nil && i >= 0 && i < 26 && validKeyword(name) {
			out[byte('a'+i)] = name
		}
	}
	return out
}

// path finds a listed message's file, also where another program renamed
// it since (flags changed, new/ to cur/).
func (m *maildirMailbox) path(uniq string) (string, error) {
	p, ok := m.files[uniq]
	if !ok {
		return "", fs.ErrNotExist
	}
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	for _, sub := range []string{"cur", "new"} {
		matches, _ := filepath.Glob(filepath.Join(m.dir, sub, globEscape(uniq)+"*"))
		for _, mp := range matches {
			if u, _, _ := strings.Cut(filepath.Base(mp), ":"); u == uniq {
				m.files[uniq] = mp
				return mp, nil
			}
		}
	}
	return "", fs.ErrNotExist
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// Fetch streams each file with CRLF line endings. A file gone since the
// listing (deleted by another program) is skipped.
func (m *maildirMailbox) Fetch(ctx context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	for _, uid := range uids {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := m.path(uid)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		sp, err := spool(newCRLFReader(f))
		f.Close()
		if err != nil {
			return err
		}
		if err := deliver(uid, sp); err != nil {
			return err
		}
	}
	return nil
}

// Fingerprints read each file's header.
func (m *maildirMailbox) Fingerprints(ctx context.Context, uids []string) (map[string]string, error) {
	out := make(map[string]string, len(uids))
	for _, uid := range uids {
		p, err := m.path(uid)
		if err != nil {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(f, maxHeader)))
		f.Close()
		if err != nil {
			out[uid] = ""
			continue
		}
		out[uid] = source.Fingerprint(h, m.sizes[uid])
	}
	return out, nil
}

// Remove removes nothing: the tree is never written.
func (m *maildirMailbox) Remove(ctx context.Context, uids []string) ([]string, error) {
	return nil, nil
}

// crlfReader gives a file with every bare LF made CRLF.
type crlfReader struct {
	br     *bufio.Reader
	out    []byte
	prevCR bool
}

func newCRLFReader(r io.Reader) *crlfReader {
	return &crlfReader{br: bufio.NewReaderSize(r, readBuffer)}
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		piece, err := c.br.ReadSlice('\n')
		if len(piece) > 0 {
			c.out = c.out[:0]
			if piece[len(piece)-1] == '\n' {
				body := piece[:len(piece)-1]
				cr := (len(body) > 0 && body[len(body)-1] == '\r') || (len(body) == 0 && c.prevCR)
				c.out = append(c.out, body...)
				if !cr {
					c.out = append(c.out, '\r')
				}
				c.out = append(c.out, '\n')
				c.prevCR = false
			} else {
				c.out = append(c.out, piece...)
				c.prevCR = piece[len(piece)-1] == '\r'
			}
		}
		if len(c.out) == 0 {
			if err == nil || err == bufio.ErrBufferFull {
				continue
			}
			return 0, err
		}
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return 0, err
		}
		break
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}
