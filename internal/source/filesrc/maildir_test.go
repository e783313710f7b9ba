package filesrc

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// A Maildir's messages: identity the unique name, flags from the ":2,"
// info and dovecot-keywords, the date the file's, T (trashed) not ours;
// Maildir++ subfolders listed; a file renamed (flags changed) between
// List and Fetch still found; LF made CRLF.
func TestMaildir(t *testing.T) {
	root := t.TempDir()
	d1 := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	writeFile(t, filepath.Join(root, "new", "1.a.host"), "Subject: new\n\nbody\n", d1)
	writeFile(t, filepath.Join(root, "cur", "2.b.host:2,FSb"), "Subject: cur\r\n\r\nbody\r\n", d1.Add(time.Hour))
	writeFile(t, filepath.Join(root, "cur", "3.c.host:2,ST"), "Subject: trashed\n\nx\n", d1.Add(2*time.Hour))
	writeFile(t, filepath.Join(root, "dovecot-keywords"), "0 $Label1\n1 Work\n", d1)
	for _, d := range []string{".Work.Clients/cur", ".Work.Clients/new", ".Work.Clients/tmp", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	ctx := context.Background()
	s, err := NewMaildir(MaildirConfig{Path: root}).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := s.(source.FolderLister).Folders(ctx)
	if err != nil || !slices.Equal(folders, []string{"INBOX", "Work.Clients"}) {
		t.Fatalf("folders %v, %v", folders, err)
	}
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := mb.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("listed %+v", msgs)
	}
	byUID := map[string]source.Message{}
	for _, m := range msgs {
		byUID[m.UID] = m
	}
	if m := byUID["1.a.host"]; m.Flags != nil || !m.Date.Equal(d1) || m.Size != 19 {
		t.Errorf("new message %+v", m)
	}
	if m := byUID["2.b.host"]; !slices.Equal(m.Flags, []string{`\Flagged`, `\Seen`, "Work"}) {
		t.Errorf("cur message flags %v", m.Flags)
	}
	if m := byUID["3.c.host"]; !m.Deleted || hasFlag(m.Flags, `\Deleted`) {
		t.Errorf("trashed message %+v", m)
	}
	// Another program marks it read meanwhile: new/ to cur/.
	os.Rename(filepath.Join(root, "new", "1.a.host"), filepath.Join(root, "cur", "1.a.host:2,S"))
	var got []string
	err = mb.Fetch(ctx, []string{"1.a.host", "2.b.host"}, func(r io.Reader) (source.Spooled, error) {
		b, err := io.ReadAll(r)
		got = append(got, string(b))
		return nil, err
	}, func(string, source.Spooled) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Subject: new\r\n\r\nbody\r\n", "Subject: cur\r\n\r\nbody\r\n"}
	if !slices.Equal(got, want) {
		t.Fatalf("fetched %q, want %q", got, want)
	}
	prints, _ := mb.Fingerprints(ctx, []string{"2.b.host"})
	if prints["2.b.host"] == "" {
		t.Error("no fingerprint")
	}
}

// crlfReader makes bare LFs CRLF, leaves CRLF alone, also across the
// reader's buffer.
func TestCRLFReader(t *testing.T) {
	for _, in := range []string{"a\nb\r\nc", strings.Repeat("x", readBuffer-1) + "\r\n" + "y\n", "\n\n", "a\r"} {
		b, err := io.ReadAll(newCRLFReader(strings.NewReader(in)))
		want := strings.ReplaceAll(strings.ReplaceAll(in, "\r\n", "\n"), "\n", "\r\n")
		if err != nil || string(b) != want {
			t.Errorf("%.20q: got %.20q, want %.20q (%v)", in, b, want, err)
		}
	}
}
