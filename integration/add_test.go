package integration

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/testlib/idp"
)

// importAdded does what 'remote-pull add' asks of the admin after the
// first account: the import line at the end of maddy.conf, and a restart.
func importAdded(t *testing.T, m *harness.Maddy) {
	t.Helper()
	conf, err := os.ReadFile(m.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.ConfigPath, append(conf, "\nimport remote_pull.d/accounts.conf\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Stop(t)
	m.Start(t)
}

// 'remote-pull add' with flags, as a script runs it, from a maddy without
// any remote_pull block: a wrong password fails check and writes nothing;
// the first good add prints the one import line (and maddy, restarted
// with it, delivers); a second add reloads the running maddy (its mail
// arrives without a restart); remove --forget stops it and drops its
// ledger data.
func TestAddAndRemoveWithFlags(t *testing.T) {
	up := newUpstream(t)
	up.AddUser(t, "remote-bob", "bob-secret")
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	up.Seed(t, "remote-bob", "INBOX", harness.Message(2, 700))
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true, // a real maddy.conf uses local_routing; maddy refuses an unused block
		Files: map[string]string{"alice-password": upPass + "\n", "wrong-password": "nope\n", "bob-vault": "bob-secret\n"},
	})
	dir := filepath.Join(m.Dir, "remote_pull.d")
	add := func(args ...string) (string, int) {
		base := []string{"remote-pull", "add", "--yes", "--host", "localhost", "--port", port(up.IMAPSAddr),
			"--root-ca", up.CA.CAFile, "--rcpt", localUser}
		return m.CLIStatus(t, append(base, args...)...)
	}

	// What a script forgot is an error that names the flag.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "alice", "--password-file", "/dev/null"}, "the upstream login is required: give --user"},
		{[]string{"--name", "alice", "--user", upUser}, "a password is required: give --password-command or --password-file"},
		{[]string{"--user", upUser, "--provider", "aol"}, `unknown --provider "aol"`},
		{[]string{"--name", "a/b", "--user", upUser, "--password-file", "/dev/null"}, "use letters, digits"},
		{[]string{"--name", "alice", "--user", upUser, "--password-command", "no-such-vault-cli get"}, `password_command: exec: "no-such-vault-cli"`},
	} {
		out, code := add(c.args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("add %q: exit %d\n%s\nwant %q", c.args, code, out, c.want)
		}
	}
	out, code := add("--name", "alice", "--user", upUser, "--password-file", filepath.Join(m.StateDir, "wrong-password"))
	if code != 1 || !strings.Contains(out, "check failed, nothing was written") {
		t.Fatalf("add with a wrong password: exit %d\n%s", code, out)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("failed adds left files in remote_pull.d: %v", left)
	}

	out, code = add("--name", "alice", "--user", upUser, "--password-file", filepath.Join(m.StateDir, "alice-password"))
	if code != 0 || !strings.Contains(out, "\n    import remote_pull.d/accounts.conf\n") {
		t.Fatalf("first add: exit %d\n%s", code, out)
	}
	if out, code = add("--name", "alice", "--user", upUser, "--password-file", filepath.Join(m.StateDir, "alice-password")); code != 1 ||
		!strings.Contains(out, "already exists") {
		t.Errorf("a second alice: exit %d\n%s", code, out)
	}
	importAdded(t, m)
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)

	// With the import in place, add reloads the running maddy.
	out, code = add("--name", "bob", "--user", "remote-bob", "--password-command", "cat "+filepath.Join(m.StateDir, "bob-vault"))
	if code != 0 || !strings.Contains(out, "Sent maddy (pid ") || strings.Contains(out, "One step left") {
		t.Fatalf("second add: exit %d\n%s", code, out)
	}
	m.WaitLog(t, `reload: account started	{"account":"bob"}`, waitLong)
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	if fi, err := os.Stat(filepath.Join(dir, "bob.conf")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("bob.conf: %v, %v", fi, err)
	}
	if !strings.Contains(m.CLI(t, "remote-pull", "status"), "bob") {
		t.Error("status does not show bob")
	}

	out = m.CLI(t, "remote-pull", "remove", "--forget", "bob")
	if !strings.Contains(out, "forgot account bob") {
		t.Errorf("remove --forget:\n%s", out)
	}
	m.WaitLog(t, "account removed from the configuration; stopped", waitLong)
	if _, err := os.Stat(filepath.Join(dir, "bob.conf")); !os.IsNotExist(err) {
		t.Errorf("bob.conf after remove: %v", err)
	}
	if s := m.CLI(t, "remote-pull", "status", "--all"); strings.Contains(s, "bob") || !strings.Contains(s, "alice") {
		t.Errorf("status after remove:\n%s", s)
	}
	if out, code := m.CLIStatus(t, "remote-pull", "remove", "carol"); code != 1 || !strings.Contains(out, "only accounts written by 'remote-pull add'") {
		t.Errorf("remove of an unknown account: exit %d\n%s", code, out)
	}
}

// 'remote-pull add' for an OAuth2 account: the consent (the code pasted,
// as over SSH), the token file, check with the token, and an account that
// delivers once maddy.conf imports it. The provider is the token server
// double and go-imap's server (Dovecot does not check OAuth2 tokens).
func TestAddOAuth2(t *testing.T) {
	ca := harness.NewCA(t)
	ts := idp.StartPlain(t)
	up := newOAuthUpstream(t, ca, ts)
	up.add(t, harness.Message(1, 800))
	_, upPort, _ := net.SplitHostPort(up.addr)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
	})
	out, code := m.CLIInput(t, idp.ConsentCode+"\n", "remote-pull", "add", "--yes", "--name", "oa", "--user", "alice@provider.example",
		"--host", "localhost", "--port", upPort, "--root-ca", ca.CAFile, "--rcpt", localUser, "--client-id", "test-client",
		"--oauth-token-url", ts.URL+"/token", "--oauth-auth-url", ts.URL+"/auth")
	if code != 0 || !strings.Contains(out, "Open this URL in a browser") || !strings.Contains(out, "import remote_pull.d/accounts.conf") {
		t.Fatalf("add: exit %d\n%s", code, out)
	}
	token := filepath.Join(m.StateDir, "remote_pull", "oa.token")
	if fi, err := os.Stat(token); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}
	if up.loginCount() == 0 {
		t.Error("check did not log in with the token")
	}
	conf, _ := os.ReadFile(filepath.Join(m.Dir, "remote_pull.d", "oa.conf"))
	if !strings.Contains(string(conf), "auth xoauth2") || strings.Contains(string(conf), "password") {
		t.Errorf("oa.conf:\n%s", conf)
	}
	importAdded(t, m)
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
}
