package account

import (
	"cmp"
	"slices"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// indexListing makes the listed messages findable by identity without a
// second copy of them (a pass holds its folder's listing: its memory
// grows with the folder, docs/benchmarks.md). An IMAP listing comes in
// ascending UID order (UIDs ascend with sequence numbers, RFC 3501 2.3.1.1)
// and is searched as it is; a POP3 one, or one out of order, gets a map of
// positions, the last message listed under an identity winning as it
// would in a map of the messages.
func (f *folderPass) indexListing() {
	f.index = nil
	if !f.mb.Complete() && ascendingUIDs(f.msgs) {
		return
	}
	f.index = make(map[string]int32, len(f.msgs))
	for i, m := range f.msgs {
		f.index[m.UID] = int32(i)
	}
}

// position is where the message listed under uid is in f.msgs.
func (f *folderPass) position(uid string) (int, bool) {
	if f.index != nil {
		i, ok := f.index[uid]
		return int(i), ok
	}
	return slices.BinarySearchFunc(f.msgs, uid, func(m source.Message, uid string) int { return cmpUID(m.UID, uid) })
}

// listed is the message listed under uid.
func (f *folderPass) listed(uid string) (source.Message, bool) {
	if i, ok := f.position(uid); ok {
		return f.msgs[i], true
	}
	return source.Message{}, false
}

// setState records where the message listed under uid stands; a UID not
// listed (delete_after below the floor) has no say in the floor and is
// left out.
func (f *folderPass) setState(uid string, st ledger.State) {
	if i, ok := f.position(uid); ok {
		f.states[i] = progressOf(st)
	}
}

// ascendingUIDs reports whether msgs are listed under canonical decimal
// UIDs in strictly ascending order.
func ascendingUIDs(msgs []source.Message) bool {
	for i, m := range msgs {
		if !canonicalUID(m.UID) || (i > 0 && cmpUID(msgs[i-1].UID, m.UID) >= 0) {
			return false
		}
	}
	return true
}

// canonicalUID: decimal digits without a leading zero, as ledger.FormatUID
// writes them, so that cmpUID orders them as numbers.
func canonicalUID(s string) bool {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cmpUID orders canonical decimal UIDs as numbers: the shorter first, then
// digit by digit. Anything else sorts after them, so a search for it finds
// nothing it should not.
func cmpUID(a, b string) int {
	ca, cb := canonicalUID(a), canonicalUID(b)
	switch {
	case ca != cb:
		if ca {
			return -1
		}
		return 1
	case !ca:
		return cmp.Compare(a, b)
	}
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// listedSize is the listed size of the message under uid (0 if not listed).
func (f *folderPass) listedSize(uid string) int64 {
	m, _ := f.listed(uid)
	return m.Size
}
