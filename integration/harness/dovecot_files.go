package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AddUserMail adds a user whose mail Dovecot keeps in its own format and
// place (userdb mail): location is a Dovecot mail_location with ~ for the
// user's home, e.g. "mbox:~/mail:INBOX=~/mail/inbox" or
// "maildir:~/Mail". It returns the home directory. As AddUser, it waits
// until Dovecot knows the user.
func (d *Dovecot) AddUserMail(t T, name, password, location string) string {
	t.Helper()
	if strings.ContainsAny(name, ":/\n") || strings.ContainsAny(password, ":\n") || strings.ContainsAny(location, "\n") {
		t.Fatalf("harness: AddUserMail: name %q or password contains ':', '/' or a newline, or location a newline", name)
	}
	home := filepath.Join(d.Dir, "home", name)
	d.mkdirOwned(t, home)
	d.mu.Lock()
	f, err := os.OpenFile(d.usersPath, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		// passwd-file: user:password:uid:gid:gecos:home:shell:extra fields.
		_, err = fmt.Fprintf(f, "%s:{PLAIN}%s::::::userdb_mail=%s\n", name, password, location)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	d.mu.Unlock()
	if err != nil {
		t.Fatalf("harness: AddUserMail: %v", err)
	}
	if !d.running() {
		return home
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := d.doveadm(nil, "user", name); err == nil {
			return home
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: AddUserMail: Dovecot does not know %q after 10 s", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
