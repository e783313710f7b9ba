package config

import (
	"regexp"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// download_budget takes maddy's sizes or off; without it, a Gmail host
// gets a budget under Gmail's cap (IMAP and POP3 apart), any other host
// none.
func TestDownloadBudget(t *testing.T) {
	for _, c := range []struct {
		upstream, extra string
		want            int64
	}{
		{"imap tls://h:993", "", 0},
		{"imap tls://imap.gmail.com:993", "", GmailIMAPBudget},
		{"imap tls://IMAP.GoogleMail.com", "", GmailIMAPBudget},
		{"pop3 tls://pop.gmail.com:995", "", GmailPOP3Budget},
		{"imap tls://imap.gmail.com:993", "download_budget off", 0},
		{"imap tls://imap.gmail.com:993", "download_budget 0", 0},
		{"imap tls://imap.gmail.com:993", "download_budget 1G", 1 << 30},
		{"imap tls://h:993", "download_budget 2000M", 2000 << 20},
		{"imap tls://h:993", "download_budget 1G 500M", 1<<30 + 500<<20},
	} {
		b, err := parse(t, `
remote_pull {
    account a {
        `+c.upstream+`
        username u
        password p
        rcpt_to a@example.org
        reject
        `+c.extra+`
    }
}`)
		if err != nil {
			t.Fatalf("%s %q: %v", c.upstream, c.extra, err)
		}
		if got := b.Accounts[0].DownloadBudget; got != c.want {
			t.Errorf("%s %q: budget %d, want %d", c.upstream, c.extra, got, c.want)
		}
	}
	for _, bad := range []string{"download_budget lots", "download_budget 10X", "download_budget"} {
		_, err := parse(t, `remote_pull {
    account a {
        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        reject
        `+bad+`
    }
}`)
		if err == nil || !strings.HasPrefix(err.Error(), "test.conf:8: account a: download_budget") {
			t.Errorf("%q: error %v, want one at test.conf:8 naming download_budget", bad, err)
		}
	}
}

// The default budgets on Gmail hosts are stated in docs/reference.md and
// the guides, in MB.
func TestDocumentedGmailBudgets(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\b(\d),(\d{3}) MB in any 24 hours`), GmailIMAPBudget/1e6)
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\bpop\.gmail\.com`+"`?"+` (\d),(\d{3}) MB`), GmailPOP3Budget/1e6)
}
