package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

func init() { register("labels", 75, (*bench).labels) }

var labelsN = flag.Int("labels-n", 5000, "messages in the Gmail labels scenario's mailbox")

// gmailUserLabels are the user labels of the labelled mailbox; two are
// children of others, as Gmail's nested labels are.
var gmailUserLabels = []string{"Work", "Work/Clients", "Family", "Friends", "Travel", "Receipts",
	"Newsletters", "Lists/golang", "Lists/maddy", "Projects/remote_pull"}

// labelledMessage is one message of the labelled mailbox: its Gmail
// labels, and what maddy should make of them.
type labelledMessage struct {
	raw     []byte
	labels  []string
	places  []string // local folders that must hold a copy: "INBOX", `\Sent`, `\Archive` or a mirrored label
	starred bool
}

// planLabels gives message i its labels, deterministically: 5% archived
// with no label (to Archive), 5% under user labels only (a filter that
// skips the inbox), 5% sent, the rest \Inbox with 0 to 3 user labels
// (30%, 40%, 20%, 10%); \Starred on a tenth, \Important on a fifth,
// neither of which is a place. About two places a message.
func planLabels(i int) (labels, places []string, starred bool) {
	h := func(salt uint32) int { // a cheap deterministic mix of i
		x := uint32(i)*2654435761 ^ salt*2246822519
		x ^= x >> 15
		x *= 2654435761
		x ^= x >> 13
		return int(x % 1000)
	}
	users := func(k int) {
		first := h(4)
		for j := range k {
			l := gmailUserLabels[(first+3*j)%len(gmailUserLabels)] // 3 and 10 are coprime: distinct
			labels = append(labels, l)
			places = append(places, strings.ReplaceAll(l, "/", "."))
		}
	}
	switch r, k := h(1)%100, h(2)%10; {
	case r < 5: // archived
		places = append(places, `\Archive`)
	case r < 10:
		users(1 + k%2)
	case r < 15:
		labels, places = append(labels, `\Sent`), append(places, `\Sent`)
		users(k % 2)
	default:
		labels, places = append(labels, `\Inbox`), append(places, "INBOX")
		users([]int{0, 0, 0, 1, 1, 1, 1, 2, 2, 3}[k])
	}
	if h(3)%10 == 0 {
		labels, starred = append(labels, `\Starred`), true
	}
	if h(5)%5 == 1 {
		labels = append(labels, `\Important`)
	}
	return labels, places, starred
}

// labelsStatus is what the scenario reads of `remote-pull status --json`.
type labelsStatus struct {
	State       string `json:"state"`
	LastError   string `json:"last_error"`
	Delivered   int64  `json:"delivered"`
	LabelCopies int64  `json:"label_copies"`
	Budget      int64  `json:"download_budget"`
	BudgetLeft  int64  `json:"download_budget_left"`
}

// gmailCap is Gmail's daily IMAP cap over the default download_budget on
// a Gmail host (2,500 MB against 2,400 MB): the double's limit stands that
// far above the account's budget.
func gmailCap(budget int64) int64 { return budget * 2500 / 2400 }

// labels: a Gmail mailbox of -labels-n messages with about two labels
// each, in the Gmail double (internal/testlib/provider) with a byte
// budget, imported by one account with local_folders mirror and a
// download_budget under the double's limit. Gmail's window is 24 hours,
// and so is download_budget's (it has no shorter one to offer a test): a
// bench sees one window. So the import runs twice: first with a budget
// of half the mailbox, until the account is paced (the window's use is
// measured then); then, standing in for the following day, maddy is
// restarted with the account's budget and the double's limit raised
// above the whole mailbox, and the import completes. Measured: downloads
// against messages, the window's bytes against the budget, [OVERQUOTA]
// replies, and every label's local folder read back through maddy's IMAP.
func (b *bench) labels() {
	s := b.s
	n := *labelsN
	msgs := make([]labelledMessage, n)
	var total int64
	span := *maxSize - *minSize
	places := 0
	for i := range msgs {
		size := *minSize
		if span > 0 {
			size += (i * 7919) % (span + 1)
		}
		m := &msgs[i]
		m.raw = harness.Message(i+1, size)
		m.labels, m.places, m.starred = planLabels(i)
		total += int64(len(m.raw))
		places += len(m.places)
	}
	budget1 := total / 2 >> 10 << 10 // half the mailbox, in whole KiB as the directive takes it
	budget2 := (total + total/50) >> 10 << 10
	gm := provider.Start(s, provider.Config{Kind: provider.Gmail, User: upUser, Password: upPass,
		ByteBudget: gmailCap(budget1)})
	start := time.Date(2019, 1, 1, 8, 0, 0, 0, time.UTC)
	for i, m := range msgs {
		gm.Append(m.raw, start.Add(time.Duration(i)*time.Hour), nil, m.labels...)
	}

	conf := func(budget int64) string {
		return fmt.Sprintf(`remote_pull {
    account gmail {
        imap tcp://%s
        insecure_plaintext yes
        username %s
        password_file upstream-password
        rcpt_to %s
        keep yes
        poll_interval 10s
        idle no
        folders *
        exclude_folders "[Gmail]/Important" "[Gmail]/Starred"
        local_folders mirror
        download_budget %dK
        deliver_to &local_routing
    }
}
`, gm.Addr(), upUser, localUser, budget>>10)
	}
	m := harness.StartMaddy(s, b.bin, harness.MaddyOptions{
		Users:        map[string]string{localUser: localPass},
		StorageExtra: "imap_filter { remote_pull }",
		Extra:        conf(budget1),
		Files:        map[string]string{"upstream-password": upPass + "\n"},
	})

	// The first window: until the budget paces the account.
	t0, cpu0 := time.Now(), cpuTime(m.PID())
	st := b.waitLabels(m, 5*time.Minute, func(st labelsStatus) bool { return st.State == "paced" })
	wall1 := time.Since(t0)
	cpu1 := cpuTime(m.PID()) - cpu0
	first := gm.FirstDownload()
	window := gm.WindowBytes(first)
	downloads1, bytes1 := gm.Downloads(), gm.BytesDownloaded()
	// Paced means no connection: hold on for two poll intervals.
	time.Sleep(20 * time.Second)
	if got := gm.Downloads(); got != downloads1 {
		s.Fatalf("bench: labels: %d downloads while paced", got-downloads1)
	}
	if int64(downloads1) != st.Delivered {
		fmt.Fprintf(os.Stderr, "bench: labels: %d downloads, %d delivered in the first window\n", downloads1, st.Delivered)
	}
	m.Stop(s)

	// The following day, as far as a bench can stand in for it.
	raw, err := os.ReadFile(m.ConfigPath)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	old := fmt.Sprintf("download_budget %dK", budget1>>10)
	if !strings.Contains(string(raw), old) {
		s.Fatalf("bench: labels: %q not in maddy's configuration", old)
	}
	raw = []byte(strings.Replace(string(raw), old, fmt.Sprintf("download_budget %dK", budget2>>10), 1))
	if err := os.WriteFile(m.ConfigPath, raw, 0o644); err != nil {
		s.Fatalf("bench: %v", err)
	}
	gm.SetByteBudget(gmailCap(budget2))
	m.Start(s)
	t0, cpu0 = time.Now(), cpuTime(m.PID())
	copies := int64(places - n)
	st = b.waitLabels(m, 5*time.Minute, func(st labelsStatus) bool {
		return st.Delivered >= int64(n) && st.LabelCopies >= copies
	})
	wall2 := time.Since(t0)
	cpu2 := cpuTime(m.PID()) - cpu0
	check := checkPlacements(s, m, msgs)
	m.Stop(s)

	downloads := gm.Downloads()
	overQuota := gm.OverQuotaReplies()
	b.rows = append(b.rows,
		result{scenario: "remote_pull, Gmail labels, first window (paced)", msgs: downloads1, bytes: bytes1, wall: wall1, cpu: cpu1,
			note: "folders *, local_folders mirror; until status says paced"},
		result{scenario: "remote_pull, Gmail labels, the rest (budget raised)", msgs: downloads - downloads1, bytes: gm.BytesDownloaded() - bytes1,
			wall: wall2, cpu: cpu2, note: "after a restart; until every label copy is made"},
	)
	name := fmt.Sprintf("labels %d messages", n)
	b.figures = append(b.figures,
		figure{scenario: name + ": downloads",
			value:  fmt.Sprintf("%d downloads, %s, for %d messages, %d local copies (%.2f places a message)", downloads, mib(gm.BytesDownloaded()), n, places, float64(places)/float64(n)),
			target: "downloads = messages, bytes = mailbox",
			note:   fmt.Sprintf("mailbox %s (%d bytes); status: %d delivered + %d label copies", mib(total), total, st.Delivered, st.LabelCopies)},
		figure{scenario: name + ": budget window use",
			value:  fmt.Sprintf("%.2f%% (%d of %d bytes in the first 24 h)", 100*float64(window)/float64(budget1), window, budget1),
			target: "≥ 95% of download_budget",
			note:   fmt.Sprintf("download_budget %dK, the double's limit %d bytes; first window only (24 h windows)", budget1>>10, gmailCap(budget1))},
		figure{scenario: name + ": provider limit",
			value:  fmt.Sprintf("%d [OVERQUOTA] replies", overQuota),
			target: "0",
			note:   fmt.Sprintf("peak window %d bytes against the double's raised limit %d", gm.WindowBytes(first), gmailCap(budget2))},
		figure{scenario: name + ": labels placed",
			value:  check,
			target: "every label's folder holds exactly its messages",
			note:   "read back through maddy's IMAP (Message-ID, flags)"},
	)
}

// waitLabels polls the account's status until done says so; an account
// over quota, or one that made no progress for stall, ends the bench.
func (b *bench) waitLabels(m *harness.Maddy, stall time.Duration, done func(labelsStatus) bool) labelsStatus {
	var last labelsStatus
	deadline := time.Now().Add(stall)
	for {
		var sts []labelsStatus
		out := m.CLI(b.s, "remote-pull", "status", "--json")
		if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 {
			b.s.Fatalf("bench: labels: status: %v\n%s", err, out)
		}
		st := sts[0]
		if done(st) {
			return st
		}
		if st.Delivered != last.Delivered || st.LabelCopies != last.LabelCopies || st.State != last.State {
			last, deadline = st, time.Now().Add(stall)
		}
		if st.State == "over quota" || time.Now().After(deadline) {
			b.s.Fatalf("bench: labels: %+v\nlog:\n%s", st, harness.Tail(m.LogPath, 40))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkPlacements reads every local folder back through maddy's IMAP and
// compares it with the labels: each place holds exactly its messages,
// once, \Flagged on the starred ones only, and no other folder holds
// anything. The answer is a line for the table.
func checkPlacements(s *harness.Script, m *harness.Maddy, msgs []labelledMessage) string {
	c, err := m.DialIMAP(localUser, localPass)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	defer c.Close()
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		s.Fatalf("bench: LIST: %v", err)
	}
	// The SPECIAL-USE places, by attribute, else by the names they are
	// created with.
	folderOf := map[string]string{`\Sent`: "Sent", `\Archive`: "Archive"}
	for _, box := range boxes {
		for _, a := range box.Attrs {
			if a == imap.MailboxAttrSent || a == imap.MailboxAttrArchive {
				folderOf[string(a)] = box.Mailbox
			}
		}
	}
	want := map[string][]int{} // local folder: message numbers, ascending
	for i, msg := range msgs {
		for _, p := range msg.places {
			if f, ok := folderOf[p]; ok {
				p = f
			}
			want[p] = append(want[p], i+1)
		}
	}
	var problems []string
	copies, flagged := 0, 0
	for _, box := range boxes {
		if slices.Contains(box.Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		got, flags := folderMessages(s, c, box.Mailbox)
		copies += len(got)
		sort.Ints(got)
		w := want[box.Mailbox]
		delete(want, box.Mailbox)
		if !slices.Equal(got, w) {
			problems = append(problems, fmt.Sprintf("%s: %d messages (%d missing, %d extra)", box.Mailbox, len(got), len(diff(w, got)), len(diff(got, w))))
		}
		for num, f := range flags {
			if num >= 1 && num <= len(msgs) && f != msgs[num-1].starred {
				problems = append(problems, fmt.Sprintf("%s: message %d \\Flagged %v", box.Mailbox, num, f))
			}
			if f {
				flagged++
			}
		}
	}
	for f, w := range want {
		problems = append(problems, fmt.Sprintf("%s: missing (%d messages)", f, len(w)))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "bench: labels:", p)
		}
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("%d more", len(problems)-3))
		}
		return "WRONG: " + strings.Join(problems, "; ")
	}
	return fmt.Sprintf("all %d copies in %d folders as labelled; \\Flagged on the %d copies of starred messages", copies, len(boxes), flagged)
}

// folderMessages are the message numbers (from Message-ID
// <msg-N@harness.example.net>) in folder, repeats included, and whether
// each carries \Flagged (true only if every copy does).
func folderMessages(s *harness.Script, c *imapclient.Client, folder string) ([]int, map[int]bool) {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		s.Fatalf("bench: SELECT %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		s.Fatalf("bench: FETCH %s: %v", folder, err)
	}
	var nums []int
	flagged := map[int]bool{}
	for _, msg := range msgs {
		var num int
		if msg.Envelope == nil {
			s.Fatalf("bench: %s: a message without an envelope", folder)
		}
		id := strings.Trim(msg.Envelope.MessageID, "<>")
		if _, err := fmt.Sscanf(id, "msg-%d@harness.example.net", &num); err != nil {
			num = 0 // not one of ours (a notice): counted as extra
		}
		f := slices.Contains(msg.Flags, imap.FlagFlagged)
		if prev, seen := flagged[num]; seen {
			f = f && prev
		}
		nums = append(nums, num)
		flagged[num] = f
	}
	return nums, flagged
}

// diff is what is in a and not in b (both ascending).
func diff(a, b []int) []int {
	var out []int
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}
