package config

import (
	"slices"
	"strings"
)

// Default max_connections. Providers count the connections of one mailbox
// together, whoever opens them: the default leaves room for the user's own
// clients (a phone and a laptop hold one or two each, more with IDLE on
// several folders) and for 'maddy remote-pull check'.
const (
	// Gmail allows 15 simultaneous IMAP connections per account.
	gmailMaxConnections = 10
	// Microsoft 365 and Outlook.com allow about 20 per mailbox.
	microsoftMaxConnections = 15
	// Elsewhere: Dovecot's default limit is 10 per user and client IP
	// (mail_max_userip_connections), and maddy's host is one IP; 8 leaves
	// 'check' and another client on that host their connections.
	otherMaxConnections = 8
)

var (
	gmailHosts     = []string{"imap.gmail.com", "imap.googlemail.com", "pop.gmail.com", "pop.googlemail.com"}
	microsoftHosts = []string{"outlook.office365.com", "outlook.office.com", "outlook.com", "imap-mail.outlook.com", "pop-mail.outlook.com"}
)

// DefaultMaxConnections is max_connections for an upstream host when the
// account does not set it.
func DefaultMaxConnections(host string) int {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case slices.Contains(gmailHosts, host):
		return gmailMaxConnections
	case slices.Contains(microsoftHosts, host):
		return microsoftMaxConnections
	}
	return otherMaxConnections
}

// checkConnections: max_connections, if set, allows the poll's own
// connection; unset, it is the host's default.
func (p *accountParser) checkConnections() error {
	set := slices.ContainsFunc(p.merged, func(n Node) bool { return n.Name == "max_connections" })
	if !set {
		p.acc.MaxConnections = DefaultMaxConnections(p.acc.Host)
		return nil
	}
	if p.maxConnections < 1 {
		return p.errAt("max_connections", "max_connections must be at least 1 (the poll's own connection)")
	}
	p.acc.MaxConnections = p.maxConnections
	return nil
}
