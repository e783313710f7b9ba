package config

import (
	"fmt"
	"strings"
	"testing"
)

// max_connections: the host's default when unset (Gmail and Microsoft
// leave room under their limits), as set otherwise, inherited from the
// block; under 1 or not a number stops the start at its line.
func TestMaxConnections(t *testing.T) {
	account := func(host, extra string) string {
		return fmt.Sprintf("remote_pull {\n    account a {\n        imap tls://%s:993\n        username u\n        password p\n"+
			"        rcpt_to a@example.org\n        reject\n%s    }\n}\n", host, extra)
	}
	for _, c := range []struct {
		name, conf string
		want       int
	}{
		{"gmail", account("imap.gmail.com", ""), 10},
		{"googlemail, any case", account("IMAP.GoogleMail.com", ""), 10},
		{"office 365", account("outlook.office365.com", ""), 15},
		{"outlook.com", account("imap-mail.outlook.com", ""), 15},
		{"elsewhere", account("imap.example.org", ""), 8},
		{"look-alike is elsewhere", account("imap.gmail.com.example.org", ""), 8},
		{"set", account("imap.gmail.com", "        max_connections 3\n"), 3},
		{"one: the poll alone", account("imap.example.org", "        max_connections 1\n"), 1},
		{"from the block", "remote_pull {\n    max_connections 4\n" + strings.TrimPrefix(account("imap.gmail.com", ""), "remote_pull {\n"), 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := parse(t, c.conf)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Accounts[0].MaxConnections; got != c.want {
				t.Fatalf("max_connections %d, want %d", got, c.want)
			}
		})
	}
	for _, c := range []struct{ name, conf, want string }{
		{"zero", account("imap.gmail.com", "        max_connections 0\n"),
			"test.conf:8: account a: max_connections must be at least 1"},
		{"negative", account("imap.example.org", "        max_connections -2\n"),
			"test.conf:8: account a: max_connections must be at least 1"},
		{"not a number", account("imap.example.org", "        max_connections many\n"), "test.conf:8:"},
		{"zero in the block", "remote_pull {\n    max_connections 0\n" + strings.TrimPrefix(account("h", ""), "remote_pull {\n"),
			"test.conf:2: account a: max_connections must be at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.conf)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
