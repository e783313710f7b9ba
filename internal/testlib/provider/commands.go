package provider

import (
	"encoding/base64"
	"slices"
	"strings"
)

const (
	gmailPreAuth = "IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN X-GM-EXT-1 SASL-IR AUTH=XOAUTH2 AUTH=PLAIN AUTH=OAUTHBEARER"
	// Gmail's list minus what the double does not implement (QUOTA, XLIST,
	// COMPRESS=DEFLATE, CONDSTORE, ESEARCH, UTF8=ACCEPT, LIST-STATUS,
	// APPENDLIMIT).
	gmailCaps     = "IMAP4rev1 UNSELECT IDLE NAMESPACE ID CHILDREN X-GM-EXT-1 UIDPLUS ENABLE MOVE LIST-EXTENDED LITERAL- SPECIAL-USE"
	microsoftCaps = "IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
)

func (c *conn) caps() string {
	switch {
	case c.s.cfg.Kind == Microsoft:
		return microsoftCaps
	case c.authed:
		return gmailCaps
	}
	return gmailPreAuth
}

func (c *conn) ok(tag, text string) { c.reply("%s OK %s", tag, text) }
func (c *conn) no(tag, text string) { c.reply("%s NO %s", tag, text) }
func (c *conn) bad(tag, text string) {
	c.reply("%s BAD %s", tag, text)
}

// success is the provider's wording of a tagged OK.
func (c *conn) success(tag, cmd string) {
	if c.s.cfg.Kind == Microsoft {
		c.ok(tag, cmd+" completed.")
	} else {
		c.ok(tag, "Success")
	}
}

func (c *conn) dispatch(tag, name string, uid bool, args []tok) bool {
	if uid && !(name == "FETCH" || name == "STORE" || name == "SEARCH" || name == "COPY" || name == "MOVE" || name == "EXPUNGE") {
		c.bad(tag, "Unknown UID command")
		return true
	}
	switch name {
	case "CAPABILITY":
		c.reply("* CAPABILITY %s", c.caps())
		c.success(tag, "CAPABILITY")
	case "NOOP", "CHECK":
		c.updates(true)
		c.success(tag, name)
	case "LOGOUT":
		c.reply("* BYE LOGOUT Requested")
		c.success(tag, "LOGOUT")
		return false
	case "ID":
		if c.s.cfg.Kind == Microsoft {
			c.reply(`* ID NIL`)
		} else {
			c.reply(`* ID ("name" "GImap" "vendor" "Google, Inc." "support-url" "https://support.google.com/mail")`)
		}
		c.success(tag, "ID")
	case "LOGIN":
		if len(args) != 2 {
			c.bad(tag, "LOGIN needs a user and a password")
			return true
		}
		c.login(tag, "LOGIN", "PLAIN", args[0].s, args[1].s, "")
	case "AUTHENTICATE":
		return c.authenticate(tag, args)
	default:
		if !c.authed {
			c.bad(tag, "Command not valid in this state")
			return true
		}
		return c.authedCommand(tag, name, uid, args)
	}
	return true
}

func (c *conn) authedCommand(tag, name string, uid bool, args []tok) bool {
	switch name {
	case "ENABLE":
		c.reply("* ENABLED")
		c.success(tag, "ENABLE")
	case "NAMESPACE":
		c.reply(`* NAMESPACE (("" "/")) NIL NIL`)
		c.success(tag, "NAMESPACE")
	case "LIST":
		c.list(tag, args)
	case "CREATE":
		if len(args) != 1 {
			c.bad(tag, "CREATE needs a name")
			return true
		}
		c.s.mu.Lock()
		exists := c.s.store.view(args[0].s) != nil
		if !exists {
			c.s.store.createFolder(strings.TrimSuffix(args[0].s, "/"))
			c.s.changedLocked()
		}
		c.s.mu.Unlock()
		if exists {
			c.no(tag, "[ALREADYEXISTS] Duplicate folder name (Failure)")
		} else {
			c.success(tag, "CREATE")
		}
	case "SELECT", "EXAMINE":
		c.selectFolder(tag, name, args)
	case "STATUS":
		c.status(tag, args)
	case "IDLE":
		return c.idle(tag)
	default:
		if c.sel == nil {
			c.bad(tag, "Command not valid in this state")
			return true
		}
		// What entered the folder is announced first, so that a command
		// on "1:*" covers it (expunges only where allowed).
		c.updates(uid)
		switch name {
		case "CLOSE", "UNSELECT":
			if name == "CLOSE" && !c.readOnly {
				c.expunge(nil)
			}
			c.sel, c.known = nil, nil
			c.success(tag, name)
		case "FETCH":
			c.fetch(tag, uid, args)
		case "STORE":
			c.store(tag, uid, args)
		case "SEARCH":
			c.search(tag, uid, args)
		case "COPY", "MOVE":
			c.copyMove(tag, name, uid, args)
		case "EXPUNGE":
			c.expungeCmd(tag, uid, args)
		default:
			c.bad(tag, "Unknown command")
		}
	}
	return true
}

// login checks credentials: mech PLAIN (LOGIN, AUTHENTICATE PLAIN) with a
// password, XOAUTH2 with a token.
func (c *conn) login(tag, cmd, mech, user, pass, token string) {
	s := c.s
	ms := s.cfg.Kind == Microsoft
	var good bool
	switch mech {
	case "PLAIN":
		// Microsoft refuses basic authentication in every tenant.
		good = !ms && user == s.cfg.User && pass == s.cfg.Password && s.cfg.Password != ""
	case "XOAUTH2":
		good = user == s.cfg.User && token == s.cfg.Token && s.cfg.Token != ""
	}
	if !good {
		if ms {
			c.no(tag, cmd+" failed.")
		} else {
			c.no(tag, "[AUTHENTICATIONFAILED] Invalid credentials (Failure)")
		}
		return
	}
	s.mu.Lock()
	full := s.authed >= s.cfg.MaxConns
	if !full || ms {
		s.authed++
		c.authed = true
	}
	s.mu.Unlock()
	if full && !ms {
		// Gmail's answer past 15 connections (wildduck#35, runt#1).
		c.no(tag, "[ALERT] Too many simultaneous connections. (Failure)")
		return
	}
	// Exchange Online accepts the login past its limit and fails every
	// command after it.
	c.notConnected = full
	if ms {
		c.ok(tag, cmd+" completed.")
		return
	}
	c.reply("* CAPABILITY %s", c.caps())
	c.ok(tag, user+" authenticated (Success)")
}

func (c *conn) authenticate(tag string, args []tok) bool {
	if c.authed {
		c.bad(tag, "Already authenticated")
		return true
	}
	if len(args) == 0 {
		c.bad(tag, "AUTHENTICATE needs a mechanism")
		return true
	}
	mech := args[0].upper()
	if mech != "PLAIN" && mech != "XOAUTH2" && !(mech == "OAUTHBEARER" && c.s.cfg.Kind == Gmail) {
		c.no(tag, "Unsupported authentication mechanism")
		return true
	}
	var resp string
	if len(args) > 1 {
		resp = args[1].s
	} else {
		c.reply("+ ")
		if c.flush() != nil {
			return false
		}
		l, err := c.readLine()
		if err != nil {
			return false
		}
		resp = l
	}
	if resp == "*" {
		c.bad(tag, "Authentication cancelled")
		return true
	}
	raw, err := base64.StdEncoding.DecodeString(resp)
	if resp == "=" {
		raw, err = nil, nil
	}
	if err != nil {
		c.bad(tag, "Invalid base64")
		return true
	}
	switch mech {
	case "PLAIN":
		parts := strings.Split(string(raw), "\x00")
		if len(parts) != 3 {
			c.bad(tag, "Invalid PLAIN response")
			return true
		}
		c.login(tag, "AUTHENTICATE", "PLAIN", parts[1], parts[2], "")
	case "XOAUTH2", "OAUTHBEARER":
		// XOAUTH2: user=U^Aauth=Bearer T^A^A; OAUTHBEARER (RFC 7628):
		// n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A.
		var user, token string
		for _, kv := range strings.Split(string(raw), "\x01") {
			if v, ok := strings.CutPrefix(kv, "user="); ok {
				user = v
			}
			if gs2, ok := strings.CutPrefix(kv, "n,"); ok {
				for _, f := range strings.Split(gs2, ",") {
					if v, ok := strings.CutPrefix(f, "a="); ok {
						user = v
					}
				}
			}
			if v, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
				token = v
			}
		}
		if c.s.cfg.Kind == Gmail && (user != c.s.cfg.User || token != c.s.cfg.Token) {
			// Gmail sends the error as a challenge; the client answers
			// with an empty line, then gets the NO
			// (developers.google.com/gmail/imap/xoauth2-protocol).
			challenge := `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`
			if mech == "OAUTHBEARER" {
				challenge = `{"status":"invalid_token","schemes":"Bearer","scope":"https://mail.google.com/"}`
			}
			c.reply("+ %s", base64.StdEncoding.EncodeToString([]byte(challenge)))
			if c.flush() != nil {
				return false
			}
			if _, err := c.readLine(); err != nil {
				return false
			}
		}
		c.login(tag, "AUTHENTICATE", "XOAUTH2", user, "", token) // same check
	}
	return true
}

func (c *conn) list(tag string, args []tok) {
	// LIST [(selection options)] reference pattern [RETURN (options)]
	specialOnly := false // LIST (SPECIAL-USE): only the special folders
	if len(args) > 0 && args[0].kind == 'l' {
		for _, o := range args[0].list {
			specialOnly = specialOnly || o.upper() == "SPECIAL-USE"
		}
		args = args[1:]
	}
	if len(args) < 2 {
		c.bad(tag, "LIST needs a reference and a pattern")
		return
	}
	ref, pat := args[0].s, args[1].s
	if pat == "" {
		c.reply(`* LIST (\Noselect) "/" ""`)
		c.success(tag, "LIST")
		return
	}
	pat = ref + pat
	c.s.mu.Lock()
	var lines []string
	for _, v := range c.s.store.views {
		attrs := c.s.store.attrs(v)
		special := slices.ContainsFunc(attrs, func(a string) bool {
			return slices.Contains([]string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Important`, `\Junk`, `\Sent`, `\Trash`}, a)
		})
		if match(pat, v.name) && (special || !specialOnly) {
			lines = append(lines, "* LIST ("+strings.Join(c.s.store.attrs(v), " ")+`) "/" `+quote(v.name))
		}
	}
	c.s.mu.Unlock()
	for _, l := range lines {
		c.reply("%s", l)
	}
	c.success(tag, "LIST")
}

// match is LIST's pattern match: * matches anything, % anything but the
// hierarchy delimiter.
func match(pat, name string) bool {
	if strings.EqualFold(name, "INBOX") && strings.EqualFold(pat, "INBOX") {
		return true
	}
	if pat == "" {
		return name == ""
	}
	switch pat[0] {
	case '*', '%':
		for i := 0; i <= len(name); i++ {
			if match(pat[1:], name[i:]) {
				return true
			}
			if i < len(name) && pat[0] == '%' && name[i] == '/' {
				return false
			}
		}
		return false
	}
	return name != "" && name[0] == pat[0] && match(pat[1:], name[1:])
}

func (c *conn) selectFolder(tag, name string, args []tok) {
	if len(args) < 1 {
		c.bad(tag, name+" needs a folder")
		return
	}
	c.sel, c.known = nil, nil
	c.s.mu.Lock()
	v := c.s.store.view(args[0].s)
	if v == nil || v.noSelect {
		c.s.mu.Unlock()
		if c.s.cfg.Kind == Microsoft {
			c.no(tag, name+" failed.")
		} else {
			c.no(tag, "[NONEXISTENT] Unknown Mailbox: "+args[0].s+" (Failure)")
		}
		return
	}
	c.sel, c.readOnly = v, name == "EXAMINE"
	for _, e := range v.entries {
		c.known = append(c.known, e.uid)
	}
	validity, next := v.validity, v.uidNext
	c.s.mu.Unlock()
	c.reply(`* FLAGS (\Answered \Flagged \Draft \Deleted \Seen)`)
	c.reply(`* OK [PERMANENTFLAGS (\Answered \Flagged \Draft \Deleted \Seen \*)] Flags permitted.`)
	c.reply("* OK [UIDVALIDITY %d] UIDs valid.", validity)
	c.reply("* %d EXISTS", len(c.known))
	c.reply("* 0 RECENT")
	c.reply("* OK [UIDNEXT %d] Predicted next UID.", next)
	mode := "[READ-WRITE]"
	if c.readOnly {
		mode = "[READ-ONLY]"
	}
	if c.s.cfg.Kind == Microsoft {
		c.ok(tag, mode+" "+name+" completed.")
	} else {
		c.ok(tag, mode+" "+v.name+" selected. (Success)")
	}
}

func (c *conn) status(tag string, args []tok) {
	if len(args) != 2 || args[1].kind != 'l' {
		c.bad(tag, "STATUS needs a folder and items")
		return
	}
	c.s.mu.Lock()
	v := c.s.store.view(args[0].s)
	if v == nil || v.noSelect {
		c.s.mu.Unlock()
		c.no(tag, "[NONEXISTENT] Unknown Mailbox (Failure)")
		return
	}
	var items []string
	for _, it := range args[1].list {
		switch it.upper() {
		case "MESSAGES":
			items = append(items, "MESSAGES", itoa(len(v.entries)))
		case "RECENT":
			items = append(items, "RECENT", "0")
		case "UIDNEXT":
			items = append(items, "UIDNEXT", itoa(int(v.uidNext)))
		case "UIDVALIDITY":
			items = append(items, "UIDVALIDITY", itoa(int(v.validity)))
		case "UNSEEN":
			n := 0
			for _, e := range v.entries {
				if !e.m.flags[`\Seen`] {
					n++
				}
			}
			items = append(items, "UNSEEN", itoa(n))
		}
	}
	name := v.name
	c.s.mu.Unlock()
	c.reply("* STATUS %s (%s)", quote(name), strings.Join(items, " "))
	c.success(tag, "STATUS")
}

// idle waits for changes to the selected folder and reports them until
// DONE.
func (c *conn) idle(tag string) bool {
	c.reply("+ idling")
	if c.flush() != nil {
		return false
	}
	done := make(chan error, 1)
	go func() {
		l, err := c.readLine()
		if err == nil && !strings.EqualFold(l, "DONE") {
			err = errClosed
		}
		done <- err
		c.s.mu.Lock()
		c.s.changed.Broadcast()
		c.s.mu.Unlock()
	}()
	for {
		c.updates(true)
		if c.flush() != nil {
			return false
		}
		c.s.mu.Lock()
		select {
		case err := <-done:
			c.s.mu.Unlock()
			if err != nil {
				return false
			}
			c.success(tag, "IDLE")
			return true
		default:
		}
		if c.s.closed {
			c.s.mu.Unlock()
			return false
		}
		if !c.pendingLocked() {
			c.s.changed.Wait()
		}
		c.s.mu.Unlock()
	}
}

func itoa(n int) string { return formatInt(int64(n)) }
