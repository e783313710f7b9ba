package config

import "testing"

// The ledger stores ConfigHash: a change of how it is computed would make
// every account's configuration look changed at the upgrade (and retry its
// refusals). Digest only compares across a reload, but is pinned likewise.
func TestConfigHashStable(t *testing.T) {
	b, err := parse(t, `
remote_pull {
    account a {
        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        poll_interval 1m
        debug yes
        oauth2 {
            client_id x
            token_endpoint https://idp.example/t
        }
        auth xoauth2
        destination a@example.org {
            deliver_to dummy
        }
        default_destination {
            reject
        }
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Accounts[0]
	if a.ConfigHash != wantConfigHash || a.Digest != wantDigest {
		t.Errorf("ConfigHash %s (want %s)\nDigest %s (want %s)", a.ConfigHash, wantConfigHash, a.Digest, wantDigest)
	}
}

const (
	wantConfigHash = "b512249cd0b514a138111d8df1cfefe3"
	wantDigest     = "0f58e4d464a4dc9865ad69a2b9700e3a7bef2983645ea4ffa302e34c124ec485"
)
