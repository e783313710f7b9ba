package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AddUsers is AddUser for many users with one password: one append to the
// users file and a single wait (up to about a second) until Dovecot knows
// the last of them, instead of one wait per user. Dovecot re-reads the
// whole file, so once it knows the last user it knows them all.
func (d *Dovecot) AddUsers(t T, password string, names ...string) {
	t.Helper()
	if len(names) == 0 {
		return
	}
	var lines strings.Builder
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, ":/\n") || strings.ContainsAny(password, ":\n") {
			t.Fatalf("harness: AddUsers: name %q or password contains ':', '/' or a newline", name)
		}
		fmt.Fprintf(&lines, "%s:{PLAIN}%s::::::\n", name, password)
	}
	d.mu.Lock()
	f, err := os.OpenFile(d.usersPath, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.WriteString(lines.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	d.mu.Unlock()
	if err != nil {
		t.Fatalf("harness: AddUsers: %v", err)
	}
	for _, name := range names {
		home := filepath.Join(d.Dir, "home", name)
		d.mkdirOwned(t, home)
		d.mkMaildir(t, filepath.Join(home, "Maildir"))
	}

	if !d.running() {
		return
	}
	last := names[len(names)-1]
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := d.doveadm(nil, "user", last)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: AddUsers: Dovecot does not know %q after 10 s: %v", last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
