package provider

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

// updates tells the client what changed in the selected folder since it
// last heard: EXPUNGE for what left (only where allowed: not during FETCH,
// STORE, SEARCH by sequence number), EXISTS when something entered.
func (c *conn) updates(allowExpunge bool) {
	if c.sel == nil {
		return
	}
	c.s.mu.Lock()
	now := map[uint32]bool{}
	for _, e := range c.sel.entries {
		now[e.uid] = true
	}
	var out []string
	if allowExpunge {
		for i := len(c.known) - 1; i >= 0; i-- {
			if !now[c.known[i]] {
				out = append(out, fmt.Sprintf("* %d EXPUNGE", i+1))
				c.known = slices.Delete(c.known, i, i+1)
			}
		}
	}
	last := uint32(0)
	if len(c.known) > 0 {
		last = c.known[len(c.known)-1]
	}
	added := false
	for _, e := range c.sel.entries {
		if e.uid > last {
			c.known = append(c.known, e.uid)
			added = true
		}
	}
	if added {
		out = append(out, fmt.Sprintf("* %d EXISTS", len(c.known)))
	}
	c.s.mu.Unlock()
	for _, l := range out {
		c.reply("%s", l)
	}
}

// pendingLocked says whether the selected folder changed since the client
// last heard; s.mu held.
func (c *conn) pendingLocked() bool {
	if c.sel == nil {
		return false
	}
	if len(c.sel.entries) != len(c.known) {
		return true
	}
	for i, e := range c.sel.entries {
		if e.uid != c.known[i] {
			return true
		}
	}
	return false
}

// resolve returns the indexes into c.known that set names.
func (c *conn) resolve(set string, uid bool) ([]int, bool) {
	star := uint32(len(c.known))
	if uid {
		star = 0
		if len(c.known) > 0 {
			star = c.known[len(c.known)-1]
		}
	}
	num := func(s string) (uint32, bool) {
		if s == "*" {
			return star, true
		}
		n, err := strconv.ParseUint(s, 10, 32)
		return uint32(n), err == nil && n > 0
	}
	type rng struct{ lo, hi uint32 }
	var rs []rng
	for _, part := range strings.Split(set, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, ok1 := num(a)
		hi, ok2 := lo, true
		if isRange {
			hi, ok2 = num(b)
		}
		if !ok1 || !ok2 {
			return nil, false
		}
		rs = append(rs, rng{min(lo, hi), max(lo, hi)})
	}
	var out []int
	for i, u := range c.known {
		key := uint32(i + 1)
		if uid {
			key = u
		}
		for _, r := range rs {
			if key >= r.lo && key <= r.hi {
				out = append(out, i)
				break
			}
		}
	}
	return out, true
}

// entryByUID finds the selected folder's entry; s.mu held.
func (c *conn) entryByUID(u uint32) *entry { return c.sel.byUID[u] }

// fetchItem is one requested FETCH data item.
type fetchItem struct {
	name    string // upper-case item name, or "BODY" for a section
	section string // BODY[section], as sent
	peek    bool
	partial bool
	off, n  int
}

func parseFetchItems(t tok) ([]fetchItem, bool) {
	var toks []tok
	if t.kind == 'l' {
		toks = t.list
	} else {
		switch t.upper() {
		case "ALL", "FAST", "FULL":
			toks = []tok{{s: "FLAGS"}, {s: "INTERNALDATE"}, {s: "RFC822.SIZE"}}
		default:
			toks = []tok{t}
		}
	}
	var out []fetchItem
	for _, t := range toks {
		u := t.upper()
		if i := strings.IndexByte(u, '['); i >= 0 {
			head := u[:i]
			if head != "BODY" && head != "BODY.PEEK" {
				return nil, false
			}
			j := strings.LastIndexByte(t.s, ']')
			if j < i {
				return nil, false
			}
			it := fetchItem{name: "BODY", section: t.s[i+1 : j], peek: head == "BODY.PEEK"}
			if rest := t.s[j+1:]; rest != "" {
				o, n, ok := strings.Cut(strings.Trim(rest, "<>"), ".")
				oi, err1 := strconv.Atoi(o)
				ni, err2 := strconv.Atoi(n)
				if !ok || err1 != nil || err2 != nil || oi < 0 || ni < 0 {
					return nil, false
				}
				it.partial, it.off, it.n = true, oi, ni
			}
			out = append(out, it)
			continue
		}
		switch u {
		case "UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS",
			"RFC822", "RFC822.HEADER", "RFC822.TEXT":
			out = append(out, fetchItem{name: u})
		default:
			return nil, false
		}
	}
	return out, true
}

func (c *conn) fetch(tag string, uid bool, args []tok) {
	if len(args) != 2 {
		c.bad(tag, "FETCH needs a set and items")
		return
	}
	items, ok := parseFetchItems(args[1])
	if !ok {
		c.bad(tag, "Could not parse command")
		return
	}
	if uid && !slices.ContainsFunc(items, func(it fetchItem) bool { return it.name == "UID" }) {
		items = append([]fetchItem{{name: "UID"}}, items...)
	}
	idx, ok := c.resolve(args[0].s, uid)
	if !ok {
		c.bad(tag, "Invalid sequence set")
		return
	}
	for _, i := range idx {
		if err := c.fetchOne(i, items); err != nil {
			return
		}
	}
	c.updates(uid)
	c.success(tag, "FETCH")
}

// fetchOne writes the FETCH response for c.known[i].
func (c *conn) fetchOne(i int, items []fetchItem) error {
	s := c.s
	s.mu.Lock()
	e := c.entryByUID(c.known[i])
	if e == nil {
		s.mu.Unlock()
		return nil // expunged meanwhile: Gmail answers nothing for it
	}
	m := e.m
	var parts []string
	var lits [][]byte // NUL in parts is a literal
	setSeen := false
	for _, it := range items {
		switch it.name {
		case "UID":
			parts = append(parts, "UID "+formatInt(int64(e.uid)))
		case "RFC822.SIZE":
			parts = append(parts, "RFC822.SIZE "+itoa(len(m.raw)))
		case "INTERNALDATE":
			parts = append(parts, `INTERNALDATE "`+m.date.Format("02-Jan-2006 15:04:05 -0700")+`"`)
		case "X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS":
			if s.cfg.Kind != Gmail {
				continue
			}
			switch it.name {
			case "X-GM-MSGID":
				parts = append(parts, "X-GM-MSGID "+strconv.FormatUint(m.id, 10))
			case "X-GM-THRID":
				parts = append(parts, "X-GM-THRID "+strconv.FormatUint(m.thrid, 10))
			default:
				parts = append(parts, "X-GM-LABELS ("+strings.Join(c.labelList(m), " ")+")")
			}
		case "FLAGS":
		default:
			var body []byte
			name := it.name
			whole := false
			switch it.name {
			case "RFC822":
				body, whole, setSeen = m.raw, true, true
			case "RFC822.HEADER":
				body = section(m.raw, "HEADER")
			case "RFC822.TEXT":
				body, setSeen = section(m.raw, "TEXT"), true
			case "BODY":
				body = section(m.raw, it.section)
				whole = it.section == ""
				setSeen = setSeen || !it.peek
				name = "BODY[" + it.section + "]"
				if it.partial {
					off := min(it.off, len(body))
					body = body[off:min(len(body), off+it.n)]
					name += "<" + itoa(it.off) + ">"
				}
			}
			if whole {
				s.spend(int64(len(body)), it.partial)
			}
			parts = append(parts, name+" \x00")
			lits = append(lits, body)
		}
	}
	if setSeen && !c.readOnly && !m.flags[`\Seen`] {
		m.flags[`\Seen`] = true
	} else {
		setSeen = false
	}
	if setSeen || slices.ContainsFunc(items, func(it fetchItem) bool { return it.name == "FLAGS" }) {
		parts = append(parts, "FLAGS ("+strings.Join(flagList(m, e), " ")+")")
	}
	s.mu.Unlock()
	fmt.Fprintf(c.w, "* %d FETCH (", i+1)
	for k, p := range parts {
		if k > 0 {
			c.w.WriteByte(' ')
		}
		if strings.HasSuffix(p, "\x00") {
			body := lits[0]
			lits = lits[1:]
			fmt.Fprintf(c.w, "%s{%d}\r\n", p[:len(p)-1], len(body))
			c.w.Write(body)
			continue
		}
		c.w.WriteString(p)
	}
	c.w.WriteString(")\r\n")
	return nil
}

// labelList is X-GM-LABELS as Gmail gives it: system labels quoted with
// their backslash escaped, and without the label of the selected folder
// (Gmail leaves it out: dlech/gmailbuttons#10).
func (c *conn) labelList(m *msg) []string {
	own := c.s.store.labelOf(c.sel)
	var out []string
	for _, l := range c.s.store.labels(m) {
		if l == own {
			continue
		}
		if strings.ContainsAny(l, " \\\"()%*{]") || l == "" {
			out = append(out, quote(l))
		} else {
			out = append(out, l)
		}
	}
	return out
}

// section is BODY[spec] of raw: "", HEADER, TEXT, HEADER.FIELDS (..),
// HEADER.FIELDS.NOT (..); a part number of a single-part message is its
// text.
func section(raw []byte, spec string) []byte {
	hdr, text := raw, []byte(nil)
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		hdr, text = raw[:i+4], raw[i+4:]
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		hdr, text = raw[:i+2], raw[i+2:]
	}
	u := strings.ToUpper(spec)
	switch {
	case u == "":
		return raw
	case u == "HEADER":
		return hdr
	case u == "TEXT" || u == "1":
		return text
	case strings.HasPrefix(u, "HEADER.FIELDS"):
		not := strings.HasPrefix(u, "HEADER.FIELDS.NOT")
		p := &parser{s: spec[strings.IndexByte(spec, '('):]}
		l, _ := p.next()
		want := map[string]bool{}
		for _, f := range l.list {
			want[strings.ToLower(f.s)] = true
		}
		var out []byte
		keep := false
		for _, line := range bytes.SplitAfter(hdr, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if line[0] != ' ' && line[0] != '\t' {
				name, _, _ := bytes.Cut(line, []byte(":"))
				keep = want[strings.ToLower(string(bytes.TrimSpace(name)))] != not
			}
			if keep {
				out = append(out, line...)
			}
		}
		return append(out, "\r\n"...)
	}
	return nil
}

func (c *conn) store(tag string, uid bool, args []tok) {
	if len(args) != 3 {
		c.bad(tag, "STORE needs a set, an item and values")
		return
	}
	if c.readOnly {
		c.no(tag, "STORE attempt on READ-ONLY folder (Failure)")
		return
	}
	idx, ok := c.resolve(args[0].s, uid)
	if !ok {
		c.bad(tag, "Invalid sequence set")
		return
	}
	op := args[1].upper()
	silent := strings.HasSuffix(op, ".SILENT")
	op = strings.TrimSuffix(op, ".SILENT")
	mode := 0 // replace
	if strings.HasPrefix(op, "+") {
		mode = 1
	} else if strings.HasPrefix(op, "-") {
		mode = -1
	}
	op = strings.TrimLeft(op, "+-")
	var vals []string
	if args[2].kind == 'l' {
		for _, t := range args[2].list {
			vals = append(vals, t.s)
		}
	} else {
		vals = []string{args[2].s}
	}
	labels := op == "X-GM-LABELS"
	if op != "FLAGS" && !(labels && c.s.cfg.Kind == Gmail) {
		c.bad(tag, "Could not parse command")
		return
	}
	s := c.s
	s.mu.Lock()
	var out []string
	var changed []*msg
	for _, i := range idx {
		e := c.entryByUID(c.known[i])
		if e == nil {
			continue
		}
		m := e.m
		changed = append(changed, m)
		if labels {
			if mode == 0 {
				for l := range m.labels {
					s.store.setLabel(m, l, false)
				}
			}
			for _, v := range vals {
				s.store.setLabel(m, v, mode >= 0)
			}
		} else {
			if mode == 0 {
				clear(m.flags)
				e.deleted = false
			}
			for _, f := range vals {
				switch {
				case f == `\Recent`:
				case strings.EqualFold(f, `\Deleted`):
					e.deleted = mode >= 0
				default:
					setFlag(m.flags, f, mode >= 0)
				}
			}
		}
		if !silent {
			item := "FLAGS (" + strings.Join(flagList(m, e), " ") + ")"
			if labels {
				item = "X-GM-LABELS (" + strings.Join(c.labelList(m), " ") + ")"
			}
			if uid {
				item = "UID " + formatInt(int64(e.uid)) + " " + item
			}
			out = append(out, fmt.Sprintf("* %d FETCH (%s)", i+1, item))
		}
	}
	s.changedLocked(changed...)
	s.mu.Unlock()
	for _, l := range out {
		c.reply("%s", l)
	}
	c.updates(uid)
	c.success(tag, "STORE")
}

func (c *conn) search(tag string, uid bool, args []tok) {
	if len(args) >= 2 && args[0].upper() == "CHARSET" {
		args = args[2:]
	}
	s := c.s
	s.mu.Lock()
	var hits []string
	for i, u := range c.known {
		e := c.entryByUID(u)
		if e == nil {
			continue
		}
		ok, valid := c.matches(i, e, args)
		if !valid {
			s.mu.Unlock()
			c.bad(tag, "Could not parse command")
			return
		}
		if ok {
			if uid {
				hits = append(hits, formatInt(int64(u)))
			} else {
				hits = append(hits, itoa(i+1))
			}
		}
	}
	s.mu.Unlock()
	c.reply("* SEARCH%s", strings.Join(append([]string{""}, hits...), " "))
	c.updates(uid)
	c.success(tag, "SEARCH")
}

// matches evaluates the search keys the double knows (all must hold).
func (c *conn) matches(i int, e *entry, keys []tok) (ok, valid bool) {
	for k := 0; k < len(keys); k++ {
		t := keys[k]
		arg := func() (string, bool) {
			if k+1 >= len(keys) {
				return "", false
			}
			k++
			return keys[k].s, true
		}
		var hit bool
		switch u := t.upper(); u {
		case "ALL":
			hit = true
		case "SEEN", "UNSEEN":
			hit = e.m.flags[`\Seen`] == (u == "SEEN")
		case "FLAGGED", "UNFLAGGED":
			hit = e.m.flags[`\Flagged`] == (u == "FLAGGED")
		case "DELETED", "UNDELETED":
			hit = e.deleted == (u == "DELETED")
		case "UID":
			set, ok := arg()
			if !ok {
				return false, false
			}
			idx, ok := c.resolve(set, true)
			if !ok {
				return false, false
			}
			hit = slices.Contains(idx, i)
		case "X-GM-MSGID":
			v, ok := arg()
			if !ok || c.s.cfg.Kind != Gmail {
				return false, false
			}
			hit = strconv.FormatUint(e.m.id, 10) == v
		case "X-GM-LABELS":
			v, ok := arg()
			if !ok || c.s.cfg.Kind != Gmail {
				return false, false
			}
			hit = slices.Contains(c.s.store.labels(e.m), v)
		default:
			if t.kind != 'a' {
				return false, false
			}
			idx, ok := c.resolve(t.s, false)
			if !ok {
				return false, false
			}
			hit = slices.Contains(idx, i)
		}
		if !hit {
			return false, true
		}
	}
	return true, true
}

func (c *conn) copyMove(tag, name string, uid bool, args []tok) {
	if len(args) != 2 {
		c.bad(tag, name+" needs a set and a folder")
		return
	}
	idx, ok := c.resolve(args[0].s, uid)
	if !ok {
		c.bad(tag, "Invalid sequence set")
		return
	}
	if name == "MOVE" && c.readOnly {
		c.no(tag, "MOVE attempt on READ-ONLY folder (Failure)")
		return
	}
	s := c.s
	s.mu.Lock()
	st := s.store
	dst := st.view(args[1].s)
	if dst == nil || dst.noSelect {
		s.mu.Unlock()
		c.no(tag, "[TRYCREATE] Unknown Mailbox: "+args[1].s+" (Failure)")
		return
	}
	var moved, changed []*msg // the messages in dst; those to sync
	var srcUIDs []uint32
	for _, i := range idx {
		e := c.entryByUID(c.known[i])
		if e == nil {
			continue
		}
		m := e.m
		if st.kind == Microsoft {
			if name == "MOVE" {
				clear(m.labels)
			} else {
				cp := &msg{id: st.nextID, raw: m.raw, date: m.date, flags: map[string]bool{}, labels: map[string]bool{}}
				cp.thrid = cp.id
				st.nextID++
				for f := range m.flags {
					cp.flags[f] = true
				}
				st.msgs = append(st.msgs, cp)
				m = cp
			}
			m.labels[dst.name] = true
		} else {
			// Gmail: copying adds the folder's label; moving also takes
			// off the label of the folder it leaves.
			if name == "MOVE" {
				st.setLabel(m, st.labelOf(c.sel), false)
			}
			st.setLabel(m, st.labelOf(dst), true)
		}
		moved = append(moved, m)
		changed = append(changed, m, e.m)
		srcUIDs = append(srcUIDs, e.uid)
	}
	s.changedLocked(changed...)
	var dstUIDs []uint32
	for _, m := range moved {
		if e := dst.byMsg[m]; e != nil {
			dstUIDs = append(dstUIDs, e.uid)
		}
	}
	copyUID := ""
	if len(moved) > 0 && len(dstUIDs) == len(srcUIDs) {
		copyUID = fmt.Sprintf("[COPYUID %d %s %s] ", dst.validity, uidList(srcUIDs), uidList(dstUIDs))
	}
	s.mu.Unlock()
	if name == "MOVE" {
		if copyUID != "" {
			c.reply("* OK %s", strings.TrimSpace(copyUID))
		}
		c.updates(true)
		c.ok(tag, "(Success)")
		return
	}
	c.updates(uid)
	if s.cfg.Kind == Microsoft {
		c.ok(tag, copyUID+"COPY completed.")
	} else {
		c.ok(tag, copyUID+"(Success)")
	}
}

func uidList(u []uint32) string {
	s := make([]string, len(u))
	for i, v := range u {
		s[i] = formatInt(int64(v))
	}
	return strings.Join(s, ",")
}

func (c *conn) expungeCmd(tag string, uid bool, args []tok) {
	var only map[uint32]bool
	if uid {
		if len(args) != 1 {
			c.bad(tag, "UID EXPUNGE needs a set")
			return
		}
		idx, ok := c.resolve(args[0].s, true)
		if !ok {
			c.bad(tag, "Invalid sequence set")
			return
		}
		only = map[uint32]bool{}
		for _, i := range idx {
			only[c.known[i]] = true
		}
	}
	if c.readOnly {
		c.no(tag, "EXPUNGE attempt on READ-ONLY folder (Failure)")
		return
	}
	c.expunge(only)
	c.updates(true)
	c.success(tag, "EXPUNGE")
}

// expunge removes the messages flagged \Deleted (those in only, if set)
// from the selected folder. On Gmail a label folder loses its label only:
// the message stays in All Mail; All Mail, Spam and Trash delete it.
func (c *conn) expunge(only map[uint32]bool) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store
	label := st.labelOf(c.sel)
	var changed, gone []*msg
	for _, e := range c.sel.entries {
		if !e.deleted || (only != nil && !only[e.uid]) {
			continue
		}
		e.deleted = false
		changed = append(changed, e.m)
		if st.kind == Microsoft || label == "" || label == `\Trash` || label == `\Spam` {
			gone = append(gone, e.m)
		} else {
			st.setLabel(e.m, label, false)
		}
	}
	st.remove(gone)
	s.changedLocked(changed...)
}
