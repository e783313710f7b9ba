package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPasswordCommandOutput(t *testing.T) {
	for _, c := range []struct {
		name, script, want string
	}{
		{"trailing newline", `printf 'hunter2\n'`, "hunter2"},
		{"CRLF", `printf 'hunter2\r\n'`, "hunter2"},
		{"no newline", `printf 'hunter2'`, "hunter2"},
		{"first line only", `printf 'hunter2\nuser: bob\n'`, "hunter2"},
		{"spaces kept", `printf ' hunter 2 \n'`, " hunter 2 "},
		{"stderr ignored", `echo warning >&2; echo hunter2`, "hunter2"},
	} {
		got, err := runPasswordCommand([]string{"sh", "-c", c.script}, 5*time.Second)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestPasswordCommandFailures(t *testing.T) {
	for _, c := range []struct {
		name, script, want string
	}{
		{"non-zero exit", `echo 'vault is sealed' >&2; exit 3`, "password command failed: sh: exit status 3: vault is sealed"},
		{"empty output", `true`, "password command failed: sh printed no password"},
		{"empty first line", `printf '\nhunter2\n'`, "password command failed: sh printed no password"},
		{"too long", `head -c 5000 /dev/zero | tr '\0' x`, "longer than 4096 bytes"},
		{"control characters in stderr", "printf 'bad\\033[2Jthing' >&2; exit 1", "bad"},
	} {
		_, err := runPasswordCommand([]string{"sh", "-c", c.script}, 5*time.Second)
		var pcErr *PasswordCommandError
		if !errors.As(err, &pcErr) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a PasswordCommandError with %q", c.name, err, c.want)
		}
		if err != nil && strings.ContainsRune(err.Error(), '\033') {
			t.Errorf("%s: the error carries an escape: %q", c.name, err)
		}
	}
}

// A secret that the command also wrote to stderr, or that failed a later
// check, is not in the error text; nor is anything from stdout.
func TestPasswordCommandErrorHidesSecret(t *testing.T) {
	for _, script := range []string{
		`echo hunter2-secret; echo "got hunter2-secret from vault" >&2; exit 1`,
		`echo hunter2-secret; exit 1`,
		`echo hunter2-secret; sleep 5`,
	} {
		_, err := runPasswordCommand([]string{"sh", "-c", script}, time.Second)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v", script, err)
		}
	}
}

// The timeout kills the command's whole process group: a shell's child
// that would hold the pipes open is gone too.
func TestPasswordCommandTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	start := time.Now()
	_, err := runPasswordCommand([]string{"sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}, 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 500ms (killed)") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("returned after %s", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The killed sleep may linger as a zombie briefly; /proc/PID/stat says.
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command's child %s still runs", strings.TrimSpace(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The Secret runs its command once, reuses the output, and runs it again
// after a reload or a refused login.
func TestCommandSecretRerun(t *testing.T) {
	dir := t.TempDir()
	counter, current := filepath.Join(dir, "runs"), filepath.Join(dir, "pw")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(current, "old\n")
	s := &Secret{command: []string{"sh", "-c", "echo run >> " + counter + "; cat " + current}}
	runs := func() int {
		b, _ := os.ReadFile(counter)
		return strings.Count(string(b), "run")
	}
	for range 3 {
		if v, err := s.get(); v != "old" || err != nil {
			t.Fatalf("get: %q, %v", v, err)
		}
	}
	if runs() != 1 {
		t.Errorf("%d runs for three logins, want 1", runs())
	}
	write(current, "new\n")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.get(); v != "new" || runs() != 2 {
		t.Errorf("after reload: %q, %d runs", v, runs())
	}
	write(current, "newer\n")
	s.Refused()
	if v, _ := s.get(); v != "newer" || runs() != 3 {
		t.Errorf("after a refused login: %q, %d runs", v, runs())
	}
	// A failing run leaves it stale: the next login tries again.
	write(current, "")
	s.Refused()
	if _, err := s.get(); err == nil {
		t.Error("an empty output gave no error")
	}
	write(current, "back\n")
	if v, err := s.get(); v != "back" || err != nil {
		t.Errorf("after a failed run: %q, %v", v, err)
	}
	if got := s.String(); strings.Contains(got, "back") {
		t.Errorf("String shows the secret: %q", got)
	}
}
