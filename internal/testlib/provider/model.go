package provider

import (
	"slices"
	"time"
)

// Append stores a message with its flags and labels and returns its ID
// (X-GM-MSGID on Gmail). Gmail labels are `\Inbox`, `\Sent`, `\Starred`
// (the \Flagged flag), `\Important`, `\Draft`, `\Spam`, `\Trash` or a user
// label such as `Work/Clients` (its folder is created); a message without
// labels is only in [Gmail]/All Mail. On Microsoft the one label is the
// folder (default INBOX).
func (s *Server) Append(raw []byte, date time.Time, flags []string, labels ...string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store
	m := &msg{id: st.nextID, raw: slices.Clone(raw), date: date, flags: map[string]bool{}, labels: map[string]bool{}}
	m.thrid = m.id
	st.nextID++
	for _, f := range flags {
		if f != `\Recent` {
			m.flags[f] = true
		}
	}
	if st.kind == Microsoft && len(labels) == 0 {
		labels = []string{"INBOX"}
	}
	for _, l := range labels {
		if st.kind == Microsoft {
			st.createFolder(l)
		}
		st.setLabel(m, l, true)
	}
	st.msgs = append(st.msgs, m)
	s.changedLocked(m)
	return m.id
}

// AddLabel gives a message a label. On Microsoft a label is a folder:
// the message then shows in both (use it for tests only).
func (s *Server) AddLabel(msgID uint64, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.store.byID(msgID); m != nil {
		if s.store.kind == Microsoft {
			s.store.createFolder(label)
		}
		s.store.setLabel(m, label, true)
		s.changedLocked(m)
	}
}

// RemoveLabel takes a label off a message.
func (s *Server) RemoveLabel(msgID uint64, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.store.byID(msgID); m != nil {
		s.store.setLabel(m, label, false)
		s.changedLocked(m)
	}
}

// CreateFolder makes an empty folder (a Gmail user label).
func (s *Server) CreateFolder(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store.createFolder(name)
	s.changedLocked()
}

// Folders lists every folder, [Gmail] (\Noselect) included.
func (s *Server) Folders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.folderNames()
}

// Messages is what folder holds now, in UID order; nil if there is no
// such folder.
func (s *Server) Messages(folder string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.store.view(folder)
	if v == nil {
		return nil
	}
	var out []Message
	for _, e := range v.entries {
		out = append(out, Message{UID: e.uid, MsgID: e.m.id, Flags: flagList(e.m, e), Labels: s.store.labels(e.m), Date: e.m.date})
	}
	return out
}

// changedLocked re-syncs the views for the changed messages (all if none
// is named) and wakes idling connections; s.mu held.
func (s *Server) changedLocked(changed ...*msg) {
	s.store.sync(changed...)
	s.changed.Broadcast()
}
