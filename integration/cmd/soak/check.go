package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/integration/faultproxy"
	"github.com/remote-pull/remote_pull/integration/harness"
)

// settle waits, at most -quiesce, until maddy shows every appended message
// and the keep-no upstreams are empty; then until every account has logged
// in upstream three more times (so at least two more polls ran and any late
// duplicate would show). It reports whether the first condition was met.
func (k *soak) settle() bool {
	deadline := time.Now().Add(*quiesce)
	lastPrint := time.Now()
	for {
		var waiting []string
		for _, a := range k.accts {
			a.collectSessions(k)
			if err := a.refresh(k); err != nil {
				waiting = append(waiting, fmt.Sprintf("%s: reading maddy: %v", a.name, err))
				continue
			}
			if _, missing, _ := a.progress(); missing > 0 {
				waiting = append(waiting, fmt.Sprintf("%s: %d not in maddy yet", a.name, missing))
			}
			if !a.keep {
				n, err := a.upstreamCount(k)
				switch {
				case err != nil:
					waiting = append(waiting, fmt.Sprintf("%s: reading Dovecot: %v", a.name, err))
				case n > 0:
					waiting = append(waiting, fmt.Sprintf("%s: %d left upstream", a.name, n))
				}
			}
		}
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			k.ev.logf("-", "not settled after %v: %s", *quiesce, strings.Join(waiting, "; "))
			fmt.Printf("%s not settled after %v: %s\n", k.since(), *quiesce, strings.Join(waiting, "; "))
			return false
		}
		if time.Since(lastPrint) >= 15*time.Second {
			lastPrint = time.Now()
			fmt.Printf("%s settling: %s\n", k.since(), strings.Join(waiting, "; "))
		}
		time.Sleep(2 * time.Second)
	}
	k.ev.logf("-", "every message arrived and the keep-no upstreams are empty; three more logins per account")
	fmt.Printf("%s every message arrived and the keep-no upstreams are empty; waiting for three more polls per account\n", k.since())
	base := map[string]int{}
	for _, a := range k.accts {
		base[a.name] = k.up.LoginCount(a.upUser)
	}
	end := time.Now().Add(max(time.Until(deadline), 90*time.Second))
	for _, a := range k.accts {
		for k.up.LoginCount(a.upUser) < base[a.name]+3 {
			if time.Now().After(end) {
				fmt.Printf("%s %s: fewer than three more logins upstream; checking anyway\n", k.since(), a.name)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return true
}

// result is the final report.
type result struct {
	text   string
	failed bool
}

// tally is one account's final counts.
type tally struct {
	appended, uncertain  int
	inMaddy              int
	delivered, dups      int
	lost                 []*sent
	dupList              []string
	corrupt              []string
	upstream             int
	upMissing            []*sent // keep yes: appended, not upstream
	upFlagged, upLeft    []string
	incoming             int // "incoming message" lines in maddy's log
	scheduled, appliedBy map[faultproxy.Ending]int
	scheduledN, applied  int
	stillOpen            int
}

var receivedID = regexp.MustCompile(`with (?:IMAP|POP3) id <([^>]*)>`)

// check reads everything back (maddy byte for byte, Dovecot by Subject and
// flags), counts, and judges the invariants.
func (k *soak) check(settled bool) result {
	var b strings.Builder
	failed := false
	fail := func(format string, args ...any) {
		failed = true
		fmt.Fprintf(&b, "FAIL: "+format+"\n", args...)
	}
	maddyLog := k.maddy.Log()
	dovecotLog := k.up.Log()
	tallies := make([]*tally, len(k.accts))
	for i, a := range k.accts {
		a.collectSessions(k)
		t, err := k.tally(a, maddyLog)
		if err != nil {
			fmt.Fprintf(&b, "FAIL: %s: reading back: %v\n", a.name, err)
			failed = true
			t = &tally{}
		}
		tallies[i] = t
	}

	fmt.Fprintf(&b, "\n== soak result, %s (seed %d, %v of appends, settled: %s)\n", k.since(), *seed, *duration, yesNo(settled))
	var killTimes []string
	for _, ev := range k.ev.between("-", 0, time.Hour*1000, "SIGKILL") {
		killTimes = append(killTimes, fmtDur(ev.at))
	}
	fmt.Fprintf(&b, "maddy: %d SIGKILLs (%s), %d exits on its own\n\n", k.killed, strings.Join(killTimes, ", "), len(k.unexpected))

	row := func(label string, f func(a *account, t *tally) string) {
		fmt.Fprintf(&b, "%-28s", label)
		for i, a := range k.accts {
			fmt.Fprintf(&b, " %16s", f(a, tallies[i]))
		}
		b.WriteByte('\n')
	}
	row("", func(a *account, _ *tally) string { return a.name })
	row("protocol, keep", func(a *account, _ *tally) string {
		return strings.ToUpper(a.proto) + ", keep " + yesNo(a.keep)
	})
	row("appended", func(_ *account, t *tally) string { return strconv.Itoa(t.appended) })
	row("  of which APPEND failed", func(_ *account, t *tally) string { return strconv.Itoa(t.uncertain) })
	row("messages in maddy", func(_ *account, t *tally) string { return strconv.Itoa(t.inMaddy) })
	row("delivered (distinct)", func(_ *account, t *tally) string { return strconv.Itoa(t.delivered) })
	row("duplicates", func(_ *account, t *tally) string { return fmt.Sprintf("%d (max %d)", t.dups, k.killed) })
	row("lost", func(_ *account, t *tally) string { return strconv.Itoa(len(t.lost)) })
	row("corrupt or unknown", func(_ *account, t *tally) string { return strconv.Itoa(len(t.corrupt)) })
	row("left upstream", func(a *account, t *tally) string {
		if a.keep {
			return fmt.Sprintf("%d (want %d)", t.upstream, t.appended-t.uncertain)
		}
		return fmt.Sprintf("%d (want 0)", t.upstream)
	})
	row("incoming message lines", func(_ *account, t *tally) string { return strconv.Itoa(t.incoming) })
	row("faults applied/scheduled", func(_ *account, t *tally) string {
		return fmt.Sprintf("%d/%d", t.applied, t.scheduledN)
	})
	for _, e := range faultproxy.Endings {
		row("  "+e.String(), func(a *account, t *tally) string {
			if !slices.Contains(a.endings, e) {
				return "-"
			}
			return fmt.Sprintf("%d/%d", t.appliedBy[e], t.scheduled[e])
		})
	}
	row("  still open at the end", func(_ *account, t *tally) string { return strconv.Itoa(t.stillOpen) })
	b.WriteString("(applied counts connections that ended after their fault; a fault scheduled while\n" +
		"the account was not connecting is replaced by the next one, or is not reached\n" +
		"when the session ends before its offset)\n\n")

	for _, u := range k.unexpected {
		fail("%s", u)
	}
	if !settled {
		fail("the accounts did not settle within %v of the faults stopping", *quiesce)
	}
	for i, a := range k.accts {
		t := tallies[i]
		for _, m := range t.lost {
			fail("%s: %q lost", a.name, m.subject)
		}
		for _, c := range t.corrupt {
			fail("%s: %s", a.name, c)
		}
		if t.dups > k.killed {
			fail("%s: %d duplicates, at most %d allowed (one per SIGKILL)", a.name, t.dups, k.killed)
		}
		for _, d := range t.dupList {
			fmt.Fprintf(&b, "note: %s: duplicate %s\n", a.name, d)
		}
		for _, m := range t.upMissing {
			fail("%s (keep yes): %q (upstream UID %d) is gone upstream", a.name, m.subject, m.uid)
		}
		for _, f := range t.upFlagged {
			fail("%s (keep yes): flags changed upstream: %s", a.name, f)
		}
		for _, l := range t.upLeft {
			fail("%s (keep no): left upstream: %s", a.name, l)
		}
		k.explain(&b, a, t, maddyLog, dovecotLog)
	}
	if !failed {
		b.WriteString("every invariant held: nothing lost, nothing corrupt, duplicates within one per SIGKILL, upstream as keep says\n")
	}
	return result{text: b.String(), failed: failed}
}

// status is `maddy remote-pull status`, for the end of the report.
func (k *soak) status() string {
	out, _ := k.maddy.CLIStatus(k.s, "remote-pull", "status")
	return "\nmaddy remote-pull status:\n" + strings.TrimRight(out, "\n") + "\n"
}

// tally reads one account back.
func (k *soak) tally(a *account, maddyLog string) (*tally, error) {
	a.mu.Lock()
	sentList := append([]*sent(nil), a.sent...)
	bySubject := a.bySubject
	t := &tally{scheduled: map[faultproxy.Ending]int{}, appliedBy: map[faultproxy.Ending]int{}}
	for e, n := range a.scheduled {
		t.scheduled[e] = n
		t.scheduledN += n
	}
	for e, n := range a.applied {
		t.appliedBy[e] = n
	}
	t.stillOpen = a.proxy.Cuts() - a.endedCuts
	a.mu.Unlock()
	t.applied = a.proxy.Cuts()
	t.appended = len(sentList)
	for _, m := range sentList {
		if m.uncertain {
			t.uncertain++
		}
	}
	for _, line := range strings.Split(maddyLog, "\n") {
		if strings.Contains(line, "incoming message") && strings.Contains(line, `"`+a.name+`"`) {
			t.incoming++
		}
	}

	// maddy, byte for byte.
	c, err := k.maddy.DialIMAP(a.local, localPass)
	if err != nil {
		return nil, fmt.Errorf("maddy: %w", err)
	}
	copies := map[*sent][]string{} // Received ids of each copy
	err = scan(c, "INBOX", 1, true, func(it item) {
		t.inMaddy++
		received, up, ok := harness.Delivered(it.raw)
		subj := subjectOf(up)
		m := bySubject[subj]
		id := ""
		if s := receivedID.FindStringSubmatch(received); s != nil {
			id = s[1]
		}
		switch {
		case !ok:
			t.corrupt = append(t.corrupt, fmt.Sprintf("maddy UID %d (%q, %d bytes) lacks the trace fields", it.uid, subj, len(it.raw)))
		case m == nil:
			t.corrupt = append(t.corrupt, fmt.Sprintf("maddy UID %d: %q was never appended to this account (%d bytes, %s)", it.uid, subj, len(up), id))
		case len(up) != m.size || sha256.Sum256(up) != m.sum:
			t.corrupt = append(t.corrupt, fmt.Sprintf("maddy UID %d: %q is not the appended message: %d bytes, appended %d, %s (Received id %s)",
				it.uid, subj, len(up), m.size, firstDiff(up, harness.Message(m.n, m.size)), id))
		case !strings.HasPrefix(id, a.name+"/"):
			t.corrupt = append(t.corrupt, fmt.Sprintf("maddy UID %d: %q came through another account (Received id %q)", it.uid, subj, id))
		default:
			copies[m] = append(copies[m], fmt.Sprintf("maddy UID %d from %s", it.uid, id))
		}
	})
	_ = c.Logout().Wait()
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("maddy: %w", err)
	}
	for _, m := range sentList {
		switch n := len(copies[m]); {
		case n == 0 && !m.uncertain:
			t.lost = append(t.lost, m)
		case n >= 1:
			t.delivered++
			if n > 1 {
				t.dups += n - 1
				t.dupList = append(t.dupList, fmt.Sprintf("%q (upstream UID %d, appended at %s): %d copies: %s",
					m.subject, m.uid, fmtDur(m.at), n, strings.Join(copies[m], "; ")))
			}
		}
	}

	// Dovecot, directly.
	up, err := k.up.DialIMAP(a.upUser, a.upPass)
	if err != nil {
		return nil, fmt.Errorf("dovecot: %w", err)
	}
	present := map[string]int{}
	err = scan(up, "INBOX", 1, false, func(it item) {
		t.upstream++
		present[it.subject]++
		var flags []string
		for _, f := range it.flags {
			if f == imap.FlagSeen || f == imap.FlagDeleted || f == imap.FlagAnswered || f == imap.FlagFlagged {
				flags = append(flags, string(f))
			}
		}
		desc := fmt.Sprintf("UID %d %q flags %v", it.uid, it.subject, it.flags)
		if m := bySubject[it.subject]; m != nil && len(copies[m]) > 0 {
			desc += fmt.Sprintf(", delivered (%s)", strings.Join(copies[m], "; "))
		} else {
			desc += ", not in maddy"
		}
		if a.keep && len(flags) > 0 {
			t.upFlagged = append(t.upFlagged, desc)
		}
		if !a.keep {
			t.upLeft = append(t.upLeft, desc)
		}
	})
	_ = up.Logout().Wait()
	up.Close()
	if err != nil {
		return nil, fmt.Errorf("dovecot: %w", err)
	}
	if a.keep {
		for _, m := range sentList {
			if present[m.subject] == 0 && !m.uncertain {
				t.upMissing = append(t.upMissing, m)
			}
		}
	}
	return t, nil
}

// explain prints what is known about each lost, gone or duplicated message
// of an account: its upstream story (Dovecot's mail_log), maddy's log lines
// for its upstream UID, and the faults and kills around it.
func (k *soak) explain(b *strings.Builder, a *account, t *tally, maddyLog, dovecotLog string) {
	var subjects []*sent
	subjects = append(subjects, t.lost...)
	subjects = append(subjects, t.upMissing...)
	for _, d := range t.dupList {
		if s := strings.SplitN(d, `"`, 3); len(s) == 3 {
			if m := a.bySubject[s[1]]; m != nil {
				subjects = append(subjects, m)
			}
		}
	}
	const maxExplained = 10
	for i, m := range subjects {
		if i == maxExplained {
			fmt.Fprintf(b, "(%d more not explained here; see %s)\n", len(subjects)-maxExplained, *outDir)
			break
		}
		fmt.Fprintf(b, "\n-- %s: %q, %d bytes, appended at %s, upstream UID %d (UIDVALIDITY %d)\n",
			a.name, m.subject, m.size, fmtDur(m.at), m.uid, m.uidv)
		msgID := fmt.Sprintf("msg-%d@harness", m.n)
		b.WriteString("   Dovecot:\n")
		for _, l := range grepLines(dovecotLog, msgID) {
			fmt.Fprintf(b, "     %s\n", l)
		}
		uid := strconv.FormatUint(uint64(m.uid), 10)
		if a.proto == "pop3" {
			// pop3_uidl_format = %08Xu%08Xv, which Dovecot writes in
			// lower case.
			uid = fmt.Sprintf("%08x%08x", m.uid, m.uidv)
		}
		b.WriteString("   maddy:\n")
		for _, l := range grepLines(maddyLog, `"`+uid+`"`) {
			if strings.Contains(l, a.name) {
				fmt.Fprintf(b, "     %s\n", l)
			}
		}
		fmt.Fprintf(b, "   faults and kills from %s to 60 s later:\n", fmtDur(m.at))
		for _, ev := range k.ev.between(a.name, m.at, m.at+time.Minute, "fault applied", "still open", "SIGKILL", "started again", "on its own") {
			fmt.Fprintf(b, "     %s\n", ev)
		}
	}
}

func grepLines(text, substr string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// subjectOf is the Subject field of a message's header.
func subjectOf(raw []byte) string {
	for _, line := range strings.Split(string(raw[:min(len(raw), 4096)]), "\n") {
		if v, ok := strings.CutPrefix(line, "Subject: "); ok {
			return strings.TrimSpace(v)
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	return ""
}

// firstDiff describes where got first differs from want.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d: %q, want %q", i, snip(got, i), snip(want, i))
		}
	}
	if bytes.Equal(got, want) {
		return "identical"
	}
	return fmt.Sprintf("one is a prefix of the other (%d and %d bytes)", len(got), len(want))
}

func snip(b []byte, at int) []byte { return b[at:min(len(b), at+24)] }
