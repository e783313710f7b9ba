package config

import (
	"strings"

	maddycfg "github.com/foxcpp/maddy/framework/config"

	"github.com/remote-pull/remote_pull/internal/source"
)

// Gmail's daily download caps are about 2,500 MB for IMAP and 1,250 MB
// for POP (../../docs/guides/gmail.md); an account with no
// download_budget on a Gmail host stays under them by these, in bytes,
// with room for what is read besides the messages (listings, headers).
const (
	GmailIMAPBudget = 2400 * 1000 * 1000
	GmailPOP3Budget = 1200 * 1000 * 1000
)

// budgetUnset: no download_budget directive; checkBudget picks the
// default by the host.
const budgetUnset = -1

func unsetBudget() (interface{}, error) { return int64(budgetUnset), nil }

// budget reads download_budget: a size as maddy writes them (2000M, 2G,
// 500M 100K), or off (or 0) for none.
func (p *accountParser) budget(_ *maddycfg.Map, n Node) (interface{}, error) {
	if len(n.Children) != 0 || len(n.Args) == 0 {
		return nil, maddycfg.NodeErr(n, "account %s: download_budget: expected a size (2000M, 2G) or off", p.acc.Name)
	}
	if len(n.Args) == 1 && n.Args[0] == "off" {
		return int64(0), nil
	}
	size, err := maddycfg.ParseDataSize(strings.Join(n.Args, " "))
	if err != nil {
		return nil, maddycfg.NodeErr(n, "account %s: download_budget: %v (expected a size such as 2000M or 2G, or off)", p.acc.Name, err)
	}
	return int64(size), nil
}

// checkBudget sets the default download_budget: under Gmail's cap on a
// Gmail host, none elsewhere.
func (p *accountParser) checkBudget() error {
	acc := p.acc
	if acc.DownloadBudget != budgetUnset {
		return nil
	}
	acc.DownloadBudget = DefaultBudget(acc.Protocol, acc.Host)
	return nil
}

// DefaultBudget is the download budget of an account without the
// directive: Gmail's hosts (gmailHosts, connections.go) get one under
// Gmail's cap, others none (0). The default goes by the configured host,
// known before any connection; an account that reaches Gmail another way
// (a proxy, a test double) sets download_budget itself.
func DefaultBudget(protocol, host string) int64 {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range gmailHosts {
		if host != h {
			continue
		}
		if protocol == source.POP3 {
			return GmailPOP3Budget
		}
		return GmailIMAPBudget
	}
	return 0
}
