package policy

import (
	"slices"
	"testing"
)

func TestFolderSet(t *testing.T) {
	listed := []string{"INBOX", "Archive", "Work", "Work/Clients", "Work/Old", "[Gmail]/All Mail", "[Gmail]/Sent Mail", "[Gmail]/Trash", "Old/2019"}
	for _, c := range []struct {
		include, exclude, want []string
	}{
		{[]string{"INBOX"}, nil, []string{"INBOX"}},
		{[]string{"*"}, []string{"[Gmail]/All Mail", "[Gmail]/Trash", "Old/*"},
			[]string{"INBOX", "Archive", "Work", "Work/Clients", "Work/Old", "[Gmail]/Sent Mail"}},
		{[]string{"Archive", "Work/*"}, []string{"Work/Old"}, []string{"Archive", "Work/Clients"}},
		{[]string{"Missing", "Work/?ld"}, nil, []string{"Missing", "Work/Old"}},
	} {
		fs := NewFolderSet(c.include, c.exclude)
		if got := fs.Resolve(listed); !slices.Equal(got, c.want) {
			t.Errorf("%v minus %v: %q, want %q", c.include, c.exclude, got, c.want)
		}
	}
	if NewFolderSet([]string{"INBOX"}, nil).Dynamic() || !NewFolderSet([]string{"INBOX", "A*"}, nil).Dynamic() {
		t.Error("Dynamic")
	}
	for _, bad := range []string{"Work/%", ""} {
		if CheckFolderPattern(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckFolderPattern("[Gmail]/*"); err != nil {
		t.Errorf("brackets are part of names: %v", err)
	}
}

// INBOX is one folder in any case (RFC 3501): named twice, or matched by a
// pattern, it is polled once, as "INBOX".
func TestFolderSetINBOX(t *testing.T) {
	listed := []string{"INBOX", "Work"}
	for _, c := range []struct {
		include, exclude, want []string
	}{
		{[]string{"inbox", "*"}, nil, []string{"INBOX", "Work"}},
		{[]string{"Inbox", "INBOX"}, nil, []string{"INBOX"}},
		{[]string{"*"}, []string{"inbox"}, []string{"Work"}},
		{[]string{"inb?x"}, nil, []string{"INBOX"}},
		{[]string{"*"}, []string{"in*"}, []string{"Work"}},
	} {
		fs := NewFolderSet(c.include, c.exclude)
		if got := fs.Resolve(listed); !slices.Equal(got, c.want) {
			t.Errorf("%v minus %v: %q, want %q", c.include, c.exclude, got, c.want)
		}
	}
	if !NewFolderSet([]string{"inbox"}, nil).Polls("INBOX") || !NewFolderSet([]string{"INBOX"}, nil).Polls("inbox") {
		t.Error("Polls is case-sensitive for INBOX")
	}
	if got := CanonicalFolder("iNbOx"); got != "INBOX" {
		t.Errorf("CanonicalFolder(iNbOx) = %q", got)
	}
	if got := CanonicalFolder("inbox/Sub"); got != "inbox/Sub" {
		t.Errorf("CanonicalFolder(inbox/Sub) = %q: only INBOX itself is case-insensitive", got)
	}
}
