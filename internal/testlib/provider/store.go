package provider

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Message is a message as a folder shows it.
type Message struct {
	UID    uint32
	MsgID  uint64 // X-GM-MSGID (Gmail); the store's ID elsewhere
	Flags  []string
	Labels []string // Gmail labels, or the Microsoft folder
	Date   time.Time
}

// msg is one stored message. Gmail stores it once with its labels;
// Microsoft's single folder is its only "label".
type msg struct {
	id     uint64
	thrid  uint64
	raw    []byte
	date   time.Time
	flags  map[string]bool // global, as in Gmail; \Deleted lives per view
	labels map[string]bool
	gone   bool // deleted from the store
}

// entry is a message in a view, with the UID it got when it entered.
type entry struct {
	uid     uint32
	m       *msg
	deleted bool // \Deleted is per folder: Gmail expunges per label
}

// view is a folder: a window on the store with its own UIDs.
type view struct {
	name     string
	attrs    []string
	noSelect bool
	validity uint32
	uidNext  uint32
	entries  []*entry // ascending UIDs
	byMsg    map[*msg]*entry
	byUID    map[uint32]*entry
}

// store is the mailbox of the account.
type store struct {
	kind    Kind
	nextID  uint64
	msgs    []*msg
	views   []*view
	nextVal uint32
}

// Gmail's folders: the name, its SPECIAL-USE attribute and the label that
// puts a message in it (developers.google.com/gmail/imap/imap-extensions).
var gmailSystem = []struct{ name, attr, label string }{
	{"INBOX", "", `\Inbox`},
	{"[Gmail]", `\Noselect`, ""},
	{"[Gmail]/All Mail", `\All`, ""},
	{"[Gmail]/Drafts", `\Drafts`, `\Draft`},
	{"[Gmail]/Important", `\Important`, `\Important`},
	{"[Gmail]/Sent Mail", `\Sent`, `\Sent`},
	{"[Gmail]/Spam", `\Junk`, `\Spam`},
	{"[Gmail]/Starred", `\Flagged`, `\Starred`},
	{"[Gmail]/Trash", `\Trash`, `\Trash`},
}

// Microsoft 365's default folders (no SPECIAL-USE capability is announced,
// but Exchange Online marks these in LIST).
var microsoftSystem = []struct{ name, attr string }{
	{"INBOX", ""}, {"Archive", `\Archive`}, {"Deleted Items", `\Trash`}, {"Drafts", `\Drafts`},
	{"Junk Email", `\Junk`}, {"Sent Items", `\Sent`},
}

func newStore(kind Kind) *store {
	st := &store{kind: kind, nextID: 1_700_000_000_000_000_000, nextVal: 1}
	if kind == Gmail {
		for _, f := range gmailSystem {
			v := st.addView(f.name)
			if f.attr == `\Noselect` {
				v.noSelect = true
				v.attrs = []string{`\HasChildren`, `\Noselect`}
			} else if f.attr != "" {
				v.attrs = []string{`\HasNoChildren`, f.attr}
			} else {
				v.attrs = []string{`\HasNoChildren`}
			}
		}
	} else {
		for _, f := range microsoftSystem {
			v := st.addView(f.name)
			v.attrs = []string{`\HasNoChildren`}
			if f.attr != "" {
				v.attrs = append(v.attrs, f.attr)
			}
		}
	}
	return st
}

func (st *store) addView(name string) *view {
	v := &view{name: name, validity: st.nextVal, uidNext: 1, byMsg: map[*msg]*entry{}, byUID: map[uint32]*entry{}}
	st.nextVal++
	st.views = append(st.views, v)
	return v
}

func (st *store) view(name string) *view {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	for _, v := range st.views {
		if v.name == name {
			return v
		}
	}
	return nil
}

// labelOf is the label a message carries to be in folder v: "" for
// Gmail's All Mail (no label), the folder name for a user label or a
// Microsoft folder.
func (st *store) labelOf(v *view) string {
	if st.kind == Gmail {
		for _, f := range gmailSystem {
			if f.name == v.name {
				return f.label
			}
		}
	}
	return v.name
}

// member says whether m belongs in v now.
func (st *store) member(v *view, m *msg) bool {
	if v.noSelect || m.gone {
		return false
	}
	if st.kind == Microsoft {
		return m.labels[v.name]
	}
	hidden := m.labels[`\Spam`] || m.labels[`\Trash`]
	switch l := st.labelOf(v); l {
	case "":
		return !hidden
	case `\Spam`, `\Trash`:
		return m.labels[l]
	case `\Starred`:
		return m.flags[`\Flagged`] && !hidden
	default:
		return m.labels[l] && !hidden
	}
}

// sync brings every view up to the changed messages (all when none is
// named): a message that left a view loses its entry, one that entered
// gets the view's next UID.
func (st *store) sync(changed ...*msg) {
	if changed == nil {
		changed = st.msgs
	}
	for _, v := range st.views {
		left := false
		for _, m := range changed {
			e, in := v.byMsg[m]
			switch member := st.member(v, m); {
			case member && !in:
				e = &entry{uid: v.uidNext, m: m}
				v.uidNext++
				v.entries = append(v.entries, e)
				v.byMsg[m], v.byUID[e.uid] = e, e
			case !member && in:
				delete(v.byMsg, m)
				delete(v.byUID, e.uid)
				left = true
			}
		}
		if left {
			v.entries = slices.DeleteFunc(v.entries, func(e *entry) bool { return v.byUID[e.uid] != e })
		}
	}
}

func (st *store) byID(id uint64) *msg {
	for _, m := range st.msgs {
		if m.id == id {
			return m
		}
	}
	return nil
}

// setLabel adds or removes a label, the way Gmail maps its system labels:
// \Starred is the \Flagged flag.
func (st *store) setLabel(m *msg, label string, on bool) {
	if st.kind == Gmail && label == `\Starred` {
		setFlag(m.flags, `\Flagged`, on)
		return
	}
	if label == "" {
		return
	}
	setFlag(m.labels, label, on)
	if on && st.kind == Gmail && !strings.HasPrefix(label, `\`) && st.view(label) == nil {
		st.createFolder(label)
	}
}

func setFlag(set map[string]bool, f string, on bool) {
	if on {
		set[f] = true
	} else {
		delete(set, f)
	}
}

func (st *store) createFolder(name string) {
	if st.view(name) != nil {
		return
	}
	// Parents of a Gmail label exist as folders too.
	if st.kind == Gmail {
		if i := strings.LastIndex(name, "/"); i > 0 {
			st.createFolder(name[:i])
		}
	}
	v := st.addView(name)
	v.attrs = []string{`\HasNoChildren`}
}

// remove deletes messages from the store (sync them afterwards).
func (st *store) remove(ms []*msg) {
	for _, m := range ms {
		m.gone = true
	}
	st.msgs = slices.DeleteFunc(st.msgs, func(x *msg) bool { return x.gone })
}

// labels are m's labels as X-GM-LABELS gives them, sorted.
func (st *store) labels(m *msg) []string {
	var out []string
	for l := range m.labels {
		out = append(out, l)
	}
	if st.kind == Gmail && m.flags[`\Flagged`] {
		out = append(out, `\Starred`)
	}
	// System labels first, as in Gmail's own example
	// (developers.google.com/gmail/imap/imap-extensions).
	sort.Slice(out, func(i, j int) bool {
		si, sj := strings.HasPrefix(out[i], `\`), strings.HasPrefix(out[j], `\`)
		if si != sj {
			return si
		}
		return out[i] < out[j]
	})
	return out
}

func (st *store) folderNames() []string {
	var out []string
	for _, v := range st.views {
		out = append(out, v.name)
	}
	return out
}

// attrs are the folder's LIST attributes, children counted now.
func (st *store) attrs(v *view) []string {
	has := false
	for _, w := range st.views {
		if strings.HasPrefix(w.name, v.name+"/") {
			has = true
		}
	}
	out := slices.Clone(v.attrs)
	for i, a := range out {
		if a == `\HasNoChildren` && has {
			out[i] = `\HasChildren`
		}
	}
	return out
}

func flagList(m *msg, e *entry) []string {
	var out []string
	for f := range m.flags {
		out = append(out, f)
	}
	if e != nil && e.deleted {
		out = append(out, `\Deleted`)
	}
	sort.Strings(out)
	return out
}
