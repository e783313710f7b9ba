package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AddUser adds a passwd-file user with a plain-text password and creates
// its empty Maildir (INBOX). Dovecot runs with auth_cache_size = 0 and
// re-reads the users file when it changes, but checks for a change at most
// once a second; so while Dovecot runs, AddUser waits (up to about a second)
// until `doveadm user` finds the new user, and the user can log in as soon
// as AddUser returns.
func (d *Dovecot) AddUser(t T, name, password string) {
	t.Helper()
	if strings.ContainsAny(name, ":/\n") || strings.ContainsAny(password, ":\n") {
		t.Fatalf("harness: AddUser: name %q or password contains ':', '/' or a newline", name)
	}
	d.mu.Lock()
	f, err := os.OpenFile(d.usersPath, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = fmt.Fprintf(f, "%s:{PLAIN}%s::::::\n", name, password)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	d.mu.Unlock()
	if err != nil {
		t.Fatalf("harness: AddUser: %v", err)
	}
	home := filepath.Join(d.Dir, "home", name)
	d.mkdirOwned(t, home)
	d.mkMaildir(t, filepath.Join(home, "Maildir"))

	if !d.running() {
		return // read afresh at the next start
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := d.doveadm(nil, "user", name)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: AddUser: Dovecot does not know %q after 10 s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MaildirPath returns the Maildir directory of a user's folder: "INBOX" is
// home/USER/Maildir, any other folder F is home/USER/Maildir/.F (Maildir++;
// the hierarchy separator is ".", so "Archive.2024" is a child of Archive).
func (d *Dovecot) MaildirPath(user, folder string) string {
	md := filepath.Join(d.Dir, "home", user, "Maildir")
	if strings.EqualFold(folder, "INBOX") {
		return md
	}
	return filepath.Join(md, "."+folder)
}

// Seed writes messages straight into a folder's new/ directory (via tmp/
// and rename, owned by the mail user), bytes verbatim. It costs a few file
// operations a message (10,000 small messages: about 5 s on a slow VM disk,
// the file system being the limit); Dovecot assigns UIDs, in seeding order,
// on its next scan of the folder. A folder other than INBOX is
// created through doveadm (and subscribed) if it does not exist yet, which
// needs Dovecot running. Dovecot serves bare LF line endings as CRLF.
func (d *Dovecot) Seed(t T, user, folder string, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		d.SeedReader(t, user, folder, false, bytes.NewReader(m))
	}
}

// SeedSeen is Seed for messages that are already \Seen: they go to cur/
// with the ":2,S" info suffix.
func (d *Dovecot) SeedSeen(t T, user, folder string, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		d.SeedReader(t, user, folder, true, bytes.NewReader(m))
	}
}

// SeedReader seeds one message streamed from r (see Large), so a big message
// never sits in memory; seen chooses cur/ with ":2,S" over new/.
func (d *Dovecot) SeedReader(t T, user, folder string, seen bool, r io.Reader) {
	t.Helper()
	dir := d.MaildirPath(user, folder)
	if _, err := os.Stat(filepath.Join(dir, "new")); os.IsNotExist(err) {
		if strings.EqualFold(folder, "INBOX") {
			t.Fatalf("harness: Seed: no user %q (call AddUser first)", user)
		}
		d.Doveadm(t, nil, "mailbox", "create", "-s", "-u", user, folder)
	}

	// Dovecot sorts new files by the time in their name, then by the rest
	// of the name: one fixed time and a zero-padded counter keep seeding
	// order as UID order.
	name := fmt.Sprintf("%d.M000000P%dQ%010d.harness", d.fileTime, os.Getpid(), d.seq.Add(1))
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatalf("harness: Seed: %v", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && d.chown {
		err = os.Chown(tmp, d.mailUID, d.mailGID)
	}
	final := filepath.Join(dir, "new", name)
	if seen {
		final = filepath.Join(dir, "cur", name+":2,S")
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		t.Fatalf("harness: Seed: %v", err)
	}
}

// Append delivers msg through `doveadm save`, i.e. through Dovecot's own
// storage code, so that clients which have the folder selected (IDLE) are
// notified. About 20 ms a message; use Seed for bulk. The folder must exist.
func (d *Dovecot) Append(t T, user, folder string, msg []byte) {
	t.Helper()
	d.Doveadm(t, msg, "save", "-u", user, "-m", folder)
}

// SetFlags replaces the flags of the message with the given UID by exactly
// flags (e.g. `\Deleted`, `\Seen`, or a keyword), without expunging.
// Calling it with no flags clears the system flags.
func (d *Dovecot) SetFlags(t T, user, folder string, uid uint32, flags ...string) {
	t.Helper()
	if len(flags) == 0 {
		d.Doveadm(t, nil, "flags", "remove", "-u", user, `\Seen \Answered \Flagged \Deleted \Draft`, "mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
		return
	}
	d.Doveadm(t, nil, "flags", "replace", "-u", user, strings.Join(flags, " "), "mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
}

// AddFlags adds flags to the message with the given UID, keeping the others.
func (d *Dovecot) AddFlags(t T, user, folder string, uid uint32, flags ...string) {
	t.Helper()
	d.Doveadm(t, nil, "flags", "add", "-u", user, strings.Join(flags, " "), "mailbox", folder, "uid", strconv.FormatUint(uint64(uid), 10))
}

// SetUIDValidity changes the UIDVALIDITY of a folder (the "upstream mailbox
// was recreated" case).
func (d *Dovecot) SetUIDValidity(t T, user, folder string, v uint32) {
	t.Helper()
	d.Doveadm(t, nil, "mailbox", "update", "-u", user, "--uid-validity", strconv.FormatUint(uint64(v), 10), folder)
}

// Doveadm runs `doveadm -c dovecot.conf ARGS...` with stdin (may be nil) and
// returns its standard output; it fails the test on a non-zero exit. User
// lookups go through the running instance's auth service.
func (d *Dovecot) Doveadm(t T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := d.doveadm(stdin, args...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return out
}

func (d *Dovecot) doveadm(stdin []byte, args ...string) (string, error) {
	bin, err := doveadmBin()
	if err != nil {
		return "", fmt.Errorf("doveadm: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-c", d.confPath}, args...)...)
	cmd.Dir = d.Dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("doveadm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// mkMaildir creates a Maildir (cur, new, tmp) owned by the mail user.
func (d *Dovecot) mkMaildir(t T, dir string) {
	t.Helper()
	d.mkdirOwned(t, dir)
	for _, sub := range []string{"cur", "new", "tmp"} {
		d.mkdirOwned(t, filepath.Join(dir, sub))
	}
}

func (d *Dovecot) mkdirOwned(t T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		t.Fatalf("harness: %v", err)
	}
	if d.chown {
		if err := os.Chown(dir, d.mailUID, d.mailGID); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
}

// IdleSessions counts the user's IMAP sessions that are in IDLE right now,
// from Dovecot's process titles (verbose_proctitle).
func (d *Dovecot) IdleSessions(t T, user string) int {
	t.Helper()
	return d.idleSessions(t, user+" ")
}

// IdleSessionsPrefix counts the IMAP sessions in IDLE of every user whose
// name starts with prefix.
func (d *Dovecot) IdleSessionsPrefix(t T, prefix string) int {
	t.Helper()
	return d.idleSessions(t, prefix)
}

// idleSessions counts process titles "imap: [USER IP IDLE]" in which
// USER IP starts with who.
func (d *Dovecot) idleSessions(t T, who string) int {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	n := 0
	for _, p := range procs {
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		title := string(cmdline)
		if strings.Contains(title, "/imap ["+who) && strings.Contains(title, " IDLE]") {
			n++
		}
	}
	return n
}

// SetPassword changes a user's password (a secret rotated upstream).
// Dovecot reads its passwd-file again when the file changes; the
// authentication cache is off.
func (d *Dovecot) SetPassword(t T, name, password string) {
	t.Helper()
	if strings.ContainsAny(password, ":\n") {
		t.Fatalf("harness: SetPassword: the password contains ':' or a newline")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := os.ReadFile(d.usersPath)
	if err != nil {
		t.Fatalf("harness: SetPassword: %v", err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, name+":") {
			lines[i], found = fmt.Sprintf("%s:{PLAIN}%s::::::\n", name, password), true
		}
	}
	if !found {
		t.Fatalf("harness: SetPassword: no user %q", name)
	}
	// Rewritten in place: the file's owner and mode stay as Dovecot wants.
	if err := os.WriteFile(d.usersPath, []byte(strings.Join(lines, "")), 0); err != nil {
		t.Fatalf("harness: SetPassword: %v", err)
	}
}
