package imapsrc

import (
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/internal/source"
)

// A folder pass holds its folder's whole listing (docs/benchmarks.md), so
// List keeps it compact: one array of the right size, and what most
// messages have alike (their flags, the time zone of their dates) shared
// between them.

// maxListPrealloc bounds the messages List allocates room for at once
// (about 5.5 MiB): EXISTS and UIDNEXT come from the server, and a claim
// costs it nothing. A larger folder grows from there, as it comes.
const maxListPrealloc = 1 << 16

// listCapacity is how many messages a listing from floor may hold: no
// more than the folder has (EXISTS), nor than the UIDs from the floor to
// UIDNEXT, nor maxListPrealloc.
func (m *Mailbox) listCapacity(floor uint32) int {
	n := m.exists()
	if next := uint32(m.sel.UIDNext); next > floor {
		n = min(n, next-floor)
	}
	return int(min(n, maxListPrealloc))
}

// trimListing drops a listing's spare room when it is large (EXISTS much
// above what was listed from the floor), so that the pass does not hold
// it; a listing of nothing is nil.
func trimListing(msgs []source.Message) []source.Message {
	switch {
	case len(msgs) == 0:
		return nil
	case cap(msgs)-len(msgs) > len(msgs)/4:
		return append([]source.Message(nil), msgs...)
	}
	return msgs
}

// maxShared bounds the distinct flag sets, and the zones, a listing
// shares: past it (a server giving every message keywords of its own),
// each message gets its own again.
const maxShared = 256

// flagSets gives the messages of one listing that have the same kept
// flags, in the same order, one shared slice (source.Message.Flags is
// read only): most of a folder has one of a few sets (none, \Seen,
// \Seen \Answered).
type flagSets struct {
	shared map[string][]string
	key    []byte
}

// kept is keptFlags(flags), shared.
func (s *flagSets) kept(flags []imap.Flag) []string {
	s.key = s.key[:0]
	for _, f := range flags {
		if keptFlag(f) {
			// A flag is an atom or a backslash and an atom: never a space.
			s.key = append(append(s.key, f...), ' ')
		}
	}
	if out, ok := s.shared[string(s.key)]; ok {
		return out
	}
	out := keptFlags(flags)
	if len(s.shared) < maxShared {
		if s.shared == nil {
			s.shared = make(map[string][]string)
		}
		s.shared[string(s.key)] = out
	}
	return out
}

// keptFlags are the flags worth carrying to the delivered copy: all but
// \Recent (session state) and \Deleted (another client's intent here).
func keptFlags(flags []imap.Flag) []string {
	var out []string
	for _, f := range flags {
		if keptFlag(f) {
			out = append(out, string(f))
		}
	}
	return out
}

func keptFlag(f imap.Flag) bool { return f != imap.FlagDeleted && f != "\\Recent" }

// zones gives the dates of one listing that are in the same unnamed
// fixed zone one *time.Location. go-imap parses each INTERNALDATE's
// offset into a zone of its own unless it is a whole number of hours
// (time.FixedZone shares those) or the local one: a server in India
// (+0530) would cost every listed message a time.Location.
type zones map[int]*time.Location

// shared is t, in the zone of the same offset met first.
func (z zones) shared(t time.Time) time.Time {
	loc := t.Location()
	if loc.String() != "" {
		return t // UTC, Local or a named zone: shared already
	}
	_, offset := t.Zone()
	if first, ok := z[offset]; ok {
		return t.In(first)
	}
	if len(z) < maxShared {
		z[offset] = loc
	}
	return t
}
