package main

import (
	"fmt"
	"strings"

	"github.com/remote-pull/remote_pull/integration/faultproxy"
	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("slow", 30, (*bench).slowLink) }

// slowLink: the bulk import again with the upstream behind a proxy that
// adds round-trip time, as a provider across a continent would be.
func (b *bench) slowLink() {
	msgs, total := b.slowCorpus()
	for _, proto := range []string{"IMAP", "POP3"} {
		up := b.upstream(msgs)
		proxy := b.slowProxy(tlsAddr(up, proto))
		b.rows = append(b.rows, b.remotePull(fmt.Sprintf("remote_pull, %s (TLS), +%v RTT", proto, *rtt),
			strings.ToLower(proto)+" tls://localhost:"+harness.Port(proxy.Addr), up, len(msgs), total))
		proxy.Close()
		up.Stop()
	}
}

// slowCorpus is the part of the corpus imported over the slow link.
func (b *bench) slowCorpus() ([][]byte, int64) {
	n := len(b.corpus)
	if *slowN > 0 {
		n = min(*slowN, n)
	}
	var total int64
	for _, m := range b.corpus[:n] {
		total += int64(len(m))
	}
	return b.corpus[:n], total
}

// tlsAddr is the upstream's implicit-TLS address for proto.
func tlsAddr(up *harness.Dovecot, proto string) string {
	if proto == "POP3" {
		return up.POP3SAddr
	}
	return up.IMAPSAddr
}

// slowProxy forwards to addr with half of -rtt added in each direction.
func (b *bench) slowProxy(addr string) *faultproxy.Proxy {
	p, err := faultproxy.New(addr)
	if err != nil {
		b.s.Fatalf("bench: %v", err)
	}
	p.SetLatency(*rtt / 2)
	return p
}
