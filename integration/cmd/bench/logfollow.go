package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// logFollower reads maddy's log as it grows, from where it last stopped.
// Waiting on a long import by reading and scanning the whole log every
// few milliseconds (harness.Maddy.Log) took most of a core from the maddy
// being measured once the log held tens of thousands of lines.
type logFollower struct {
	path string
	off  int64
	rest []byte // the last line, not finished yet
}

func followLog(m *harness.Maddy) *logFollower { return &logFollower{path: m.LogPath} }

// each calls fn with every whole line written since the last call.
func (f *logFollower) each(fn func(line []byte)) {
	file, err := os.Open(f.path)
	if err != nil {
		return // not written yet
	}
	defer file.Close()
	if _, err := file.Seek(f.off, io.SeekStart); err != nil {
		return
	}
	data, _ := io.ReadAll(file)
	f.off += int64(len(data))
	data = append(f.rest, data...)
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		f.rest = data
		return
	}
	for line := range bytes.SplitSeq(data[:end], []byte("\n")) {
		fn(line)
	}
	f.rest = append([]byte(nil), data[end+1:]...)
}

// countUntil waits until lines holding substr number at least k, or a
// line holds stop (when not empty: a poll that ends short of k), saying
// how far it is every 30 s (what: the scenario's name), and returns the
// count it saw.
func (f *logFollower) countUntil(s *harness.Script, substr, stop string, k int, timeout time.Duration, what string) int {
	deadline := time.Now().Add(timeout)
	lastSaid := time.Now()
	n, stopped := 0, false
	for {
		f.each(func(line []byte) {
			if bytes.Contains(line, []byte(substr)) {
				n++
			}
			stopped = stopped || (stop != "" && bytes.Contains(line, []byte(stop)))
		})
		if n >= k || stopped {
			return n
		}
		if time.Now().After(deadline) {
			s.Fatalf("bench: %s: %d of %d %q lines in maddy's log after %v", what, n, k, substr, timeout)
		}
		if time.Since(lastSaid) >= 30*time.Second {
			fmt.Fprintf(os.Stderr, "bench: %s: %d of %d\n", what, n, k)
			lastSaid = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// importDone matches the summary of a poll that left nothing for the
// next one.
var importDone = regexp.MustCompile(`poll done.*"more":false`)

// waitImport waits for an import that takes several polls back to back
// (a file, a page a poll) and returns the messages they delivered and the
// sum of their durations, from their summaries in maddy's log.
func (b *bench) waitImport(m *harness.Maddy, timeout time.Duration) (int, time.Duration) {
	deadline := time.Now().Add(timeout)
	log := followLog(m)
	delivered, polls := 0, 0
	var took time.Duration
	for {
		done := false
		log.each(func(line []byte) {
			sub := pollDone.FindSubmatch(line)
			if sub == nil || done {
				return
			}
			n, _ := strconv.Atoi(string(sub[1]))
			d, err := time.ParseDuration(string(sub[2]))
			if err != nil {
				b.s.Fatalf("bench: poll summary %q: %v", sub[0], err)
			}
			delivered, took, polls = delivered+n, took+d, polls+1
			done = importDone.Match(line)
		})
		if done {
			return delivered, took
		}
		if time.Now().After(deadline) {
			b.s.Fatalf("bench: the import not done after %v (%d polls, %d delivered)", timeout, polls, delivered)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
