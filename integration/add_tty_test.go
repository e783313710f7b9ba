package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// tmuxSession runs a command in a real terminal (tmux on its own socket)
// for a test to type into and read.
type tmuxSession struct {
	t    *testing.T
	sock string
}

func startTmux(t *testing.T, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is missing: run scripts/ensure-deps")
	}
	s := &tmuxSession{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	s.run("new-session", "-d", "-x", "160", "-y", "60", command)
	t.Cleanup(func() { exec.Command("tmux", "-S", s.sock, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is the terminal's text, with its scrollback.
func (s *tmuxSession) screen() string {
	return strings.TrimRight(s.run("capture-pane", "-p", "-S", "-200"), "\n")
}

// waitFor waits until the screen shows text (tmux drops a line's
// trailing spaces).
func (s *tmuxSession) waitFor(text string) {
	s.t.Helper()
	text = strings.TrimRight(text, " ")
	deadline := time.Now().Add(waitLong)
	for !strings.Contains(s.screen(), text) {
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed %q:\n%s", text, s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answer waits for a prompt and types a line.
func (s *tmuxSession) answer(prompt, line string) {
	s.t.Helper()
	s.waitFor(prompt)
	if line != "" {
		s.run("send-keys", "-t", "0", "-l", line)
	}
	s.run("send-keys", "-t", "0", "Enter")
}

// 'remote-pull add' in a terminal: the prompts, the servers from the
// domain's autoconfig data (a local stand-in for the ISPDB), the app
// password typed without echo, check, and the account that works once
// maddy.conf imports it.
func TestAddInteractive(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
	})
	ispdb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1.1/example.net" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `<clientConfig version="1.1"><emailProvider id="example.net">
<incomingServer type="imap"><hostname>localhost</hostname><port>%s</port><socketType>SSL</socketType>
<username>%%EMAILLOCALPART%%</username><authentication>password-cleartext</authentication></incomingServer>
</emailProvider></clientConfig>`, port(up.IMAPSAddr))
	}))
	defer ispdb.Close()

	bin := os.Getenv("REMOTE_PULL_MADDY")
	if bin == "" {
		bin = harness.BuildMaddy(t)
	}
	cmd := fmt.Sprintf("env REMOTE_PULL_AUTOCONFIG_URL=%s/v1.1/{domain} %s --config %s remote-pull add --root-ca %s; echo EXIT:$?; sleep 600",
		ispdb.URL, bin, m.ConfigPath, up.CA.CAFile)
	term := startTmux(t, cmd)
	term.answer("Email address or login name upstream: ", upUser+"@example.net")
	term.answer("Provider [other]: ", "")
	term.waitFor("Found IMAP localhost:" + port(up.IMAPSAddr) + " (TLS) in the autoconfig data.")
	term.answer("Server [localhost]: ", "")
	term.answer("Account name in maddy ["+upUser+"]: ", "alice")
	term.answer("Local address that receives the mail: ", localUser)
	term.answer("IMAP folders to fetch (space-separated; * for all) [INBOX]: ", "")
	term.answer("(not shown): ", upPass)
	term.waitFor("EXIT:")
	screen := term.screen()
	if !strings.Contains(screen, "EXIT:0") || !strings.Contains(screen, "import remote_pull.d/accounts.conf") {
		t.Fatalf("add failed:\n%s", screen)
	}
	if strings.Contains(screen, upPass) {
		t.Errorf("the password was echoed:\n%s", screen)
	}
	conf, err := os.ReadFile(filepath.Join(m.Dir, "remote_pull.d", "alice.conf"))
	if err != nil || !strings.Contains(string(conf), "username "+upUser+"\n") {
		t.Fatalf("alice.conf: %v\n%s", err, conf)
	}
	if pw, err := os.ReadFile(filepath.Join(m.Dir, "remote_pull.d", "alice.password")); err != nil || string(pw) != upPass {
		t.Errorf("alice.password: %q, %v", pw, err)
	}

	importAdded(t, m)
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
}

// Ctrl-C at the password prompt ends add with nothing written and the
// terminal's echo back on.
func TestAddInteractiveInterrupted(t *testing.T) {
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
	})
	bin := os.Getenv("REMOTE_PULL_MADDY")
	if bin == "" {
		bin = harness.BuildMaddy(t)
	}
	cmd := fmt.Sprintf("%s --config %s remote-pull add --host localhost --protocol imap --name alice --rcpt %s --folders INBOX; echo EXIT:$?; stty -a; sleep 600",
		bin, m.ConfigPath, localUser)
	term := startTmux(t, cmd)
	term.answer("Email address or login name upstream: ", upUser)
	term.answer("Server [localhost]: ", "")
	term.answer("Account name in maddy [alice]: ", "")
	term.waitFor("(not shown): ")
	term.run("send-keys", "-t", "0", "-l", "half-typed")
	term.run("send-keys", "-t", "0", "C-c")
	term.waitFor("EXIT:")
	term.waitFor("speed") // stty's output
	screen := term.screen()
	if !strings.Contains(screen, "EXIT:130") || strings.Contains(screen, "-echo ") || !strings.Contains(screen, " echo ") {
		t.Errorf("after Ctrl-C:\n%s", screen)
	}
	if strings.Contains(screen, "half-typed") {
		t.Errorf("the password was echoed:\n%s", screen)
	}
	if left, _ := os.ReadDir(filepath.Join(m.Dir, "remote_pull.d")); len(left) != 0 {
		t.Errorf("files left in remote_pull.d: %v", left)
	}
}
