// Command bench measures remote_pull on this machine against fetchmail and
// against maddy's own SMTP intake, all fed the same generated corpus from
// one real Dovecot: bulk imports over IMAP and POP3 on loopback and over a
// link with added round-trip time, large messages and memory, push latency,
// and many idle accounts in one maddy. Figures are printed as tables and
// written to a file (default out/bench.md); nothing here asserts a speed.
//
//	make bench                                  # every scenario
//	make bench BENCHFLAGS='-n 10000'            # a larger bulk mailbox
//	make bench BENCHFLAGS='-only push,accounts' # some scenarios
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

var (
	count    = flag.Int("n", 1000, "messages in the bulk-import mailbox")
	slowN    = flag.Int("slow-n", 0, "messages in the bulk import over the slow link (0: all of -n)")
	minSize  = flag.Int("min", 1<<10, "smallest message, bytes")
	maxSize  = flag.Int("max", 20<<10, "largest message, bytes")
	rtt      = flag.Duration("rtt", 50*time.Millisecond, "round-trip time added for the slow-link scenario")
	accounts = flag.Int("accounts", 200, "accounts in the many-accounts scenario")
	pushes   = flag.Int("pushes", 50, "messages whose push latency is measured")
	only     = flag.String("only", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames(), ","))
	out      = flag.String("o", "out/bench.md", "where to write the tables")
)

const (
	upUser, upPass       = "bench-remote", "bench-upstream-password"
	localUser, localPass = "alice@example.org", "bench-local-password"
)

// result is one row of the throughput table.
type result struct {
	scenario string
	msgs     int
	bytes    int64
	wall     time.Duration
	cpu      time.Duration // maddy's user+system CPU time
	note     string
}

func (r result) row() string {
	rate := float64(r.msgs) / r.wall.Seconds()
	mbps := float64(r.bytes) / (1 << 20) / r.wall.Seconds()
	cpu := "-"
	if r.cpu > 0 {
		cpu = fmt.Sprintf("%.2fs", r.cpu.Seconds())
	}
	return fmt.Sprintf("| %s | %d | %.1f | %.0f | %.2f | %s | %s |", r.scenario, r.msgs, r.wall.Seconds(), rate, mbps, cpu, r.note)
}

// figure is one row of the second table: a measured value that is not a
// rate (memory, latency, CPU share), with the target it is held against.
type figure struct {
	scenario, value, target, note string
}

func (f figure) row() string {
	return fmt.Sprintf("| %s | %s | %s | %s |", f.scenario, f.value, f.target, f.note)
}

// bench is what the scenarios share: the script's T, the maddy binary and
// the generated corpus, and the rows they add.
type bench struct {
	s       *harness.Script
	bin     string
	corpus  [][]byte
	total   int64
	rows    []result
	figures []figure
}

// scenario is one part of the benchmark; each file registers its own.
type scenario struct {
	name  string
	order int // scenarios run in ascending order
	run   func(*bench)
}

var scenarios []scenario

func register(name string, order int, run func(*bench)) {
	scenarios = append(scenarios, scenario{name, order, run})
	sort.Slice(scenarios, func(i, j int) bool { return scenarios[i].order < scenarios[j].order })
}

func scenarioNames() []string {
	var names []string
	for _, sc := range scenarios {
		names = append(names, sc.name)
	}
	return names
}

func main() {
	flag.Parse()
	want := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	for name := range want {
		if !strings.Contains(","+strings.Join(scenarioNames(), ",")+",", ","+name+",") {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (have %s)\n", name, strings.Join(scenarioNames(), ","))
			os.Exit(2)
		}
	}
	s := &harness.Script{}
	defer s.Close()
	b := &bench{s: s, bin: harness.BuildMaddy(s)}
	b.corpus, b.total = makeCorpus(*count)
	for _, sc := range scenarios {
		if len(want) == 0 || want[sc.name] {
			fmt.Fprintf(os.Stderr, "bench: %s\n", sc.name)
			sc.run(b)
		}
	}

	text := []string{
		fmt.Sprintf("Measured %s on %s/%s, %d CPUs, %s; bulk corpus: %d messages of %d–%d bytes (%.1f MiB).",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
			runtime.Version(), *count, *minSize, *maxSize, float64(b.total)/(1<<20)),
		"",
	}
	var rows, figures []string
	for _, r := range b.rows {
		rows = append(rows, r.row())
	}
	for _, f := range b.figures {
		figures = append(figures, f.row())
	}
	text = appendTable(text, []string{"scenario", "messages", "wall s", "messages/s", "MB/s", "maddy CPU", "note"}, rows)
	text = appendTable(text, []string{"scenario", "measured", "target", "note"}, figures)
	all := strings.Join(text, "\n")
	fmt.Print("\n" + all)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		if err := os.WriteFile(*out, []byte(all), 0o644); err == nil {
			fmt.Printf("\nwritten to %s\n", *out)
		}
	}
}

// appendTable adds a Markdown table, if it has rows, and a blank line.
func appendTable(text, columns, rows []string) []string {
	if len(rows) == 0 {
		return text
	}
	text = append(text, "| "+strings.Join(columns, " | ")+" |", strings.Repeat("|---", len(columns))+"|")
	return append(append(text, rows...), "")
}

// makeCorpus builds the same deterministic messages for every contender.
func makeCorpus(n int) ([][]byte, int64) {
	msgs := make([][]byte, n)
	var total int64
	span := *maxSize - *minSize
	for i := range msgs {
		size := *minSize
		if span > 0 {
			size += (i * 7919) % (span + 1)
		}
		msgs[i] = harness.Message(i+1, size)
		total += int64(len(msgs[i]))
	}
	return msgs, total
}

// cpuTime reads a process's user+system CPU time from /proc (Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// procStatus reads a size field of /proc/PID/status ("VmRSS", "VmHWM"), in
// bytes; 0 if it cannot.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// mib formats bytes as MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
