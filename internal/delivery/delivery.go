// Package delivery hands fetched messages to maddy's delivery pipeline, in
// process: no loopback SMTP hop, no line-length limit, no 127.0.0.1 sender.
//
// A message goes through two steps. Spool reads it from the upstream into a
// maddy buffer (in memory up to 1 MiB, in a file beyond that), parsing only
// the header, so memory does not grow with message size. Deliver then runs
// maddy's Start → AddRcpt → Body → Commit, with Abort on any failure.
//
// This file and the config package are the only places that use maddy's
// delivery API; keep it that way so a maddy upgrade is a small diff.
package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/mail"
	stdtextproto "net/textproto"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-smtp"
	"github.com/foxcpp/maddy/framework/address"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/exterrors"
	"github.com/foxcpp/maddy/framework/log"
	"github.com/foxcpp/maddy/framework/module"
)

const (
	// memoryLimit: bodies up to this size stay in RAM, larger ones spill to a
	// file, as maddy's smtp endpoint does.
	memoryLimit = 1 << 20
	// DefaultMaxHeaderBytes is maddy's smtp endpoint default.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultMaxReceived is maddy's smtp endpoint max_received default.
	DefaultMaxReceived = 50
)

// Options are how an account's messages are handed to maddy, as
// configured: internal/config reads the account's directives straight into
// them (config.Account embeds them).
type Options struct {
	Pipeline module.DeliveryTarget
	Rcpts    []string // rcpt_to, already validated
	Hostname string   // maddy's hostname, for the Received field
	// EnvelopeHeaders (envelope_header) name headers that carry the
	// envelope recipient of a catch-all mailbox: the first one the
	// upstream's own delivery added, in its topmost occurrence, is the
	// recipient; Rcpts is the fallback.
	EnvelopeHeaders []string
	// EnvelopeDomains (envelope_domains, default the domains of rcpt_to):
	// a recipient found in an envelope header is taken only in these.
	EnvelopeDomains []string
	// TrustedAuthRes lists the authserv-ids whose Authentication-Results
	// fields are kept; upstream copies from anyone else are removed, so
	// that a forged "dkim=pass" cannot ride along.
	TrustedAuthRes []string
	// Storage is the maddy storage the pipeline delivers into, where a
	// Placement's folders are found or created; nil when messages only go
	// to INBOX.
	Storage module.Storage
}

// Target delivers the messages of one account: its Options, and what it
// runs with.
type Target struct {
	Options
	MaxHeaderBytes int
	MaxReceived    int
	SpoolDir       string // where bodies over 1 MiB are buffered
	Log            log.Logger
	// MaxMessageSize caps what Spool accepts, whatever size the upstream
	// announced (0: no cap). The account's max_message_size: the account
	// loop's Policy holds it too, to leave larger messages upstream.
	MaxMessageSize int64
}

// Origin says where a message came from, for the trace field and logs.
type Origin struct {
	Protocol    string // "IMAP" or "POP3"
	Host        string // upstream host name as configured
	Addr        string // upstream IP address as connected
	Account     string
	Folder      string
	UIDValidity uint32
	UID         string
	Quarantine  bool
	// Placement: the local folder and flags (zero: INBOX, no flags).
	Placement Placement
	// Arrived is the message's arrival date upstream (IMAP INTERNALDATE;
	// POP3: ReceivedDate), which the stored copy keeps; zero: the time
	// of the delivery.
	Arrived time.Time
}

// ID is the value of the Received field's id clause, which finds the
// upstream copy of a delivered message: <account/folder/uidvalidity/uid>.
func (o Origin) ID() string {
	return fmt.Sprintf("%s/%s/%d/%s", traceSafe(o.Account), traceSafe(o.Folder), o.UIDValidity, traceSafe(o.UID))
}

// Spooled is a message read from the upstream and held in a maddy buffer.
type Spooled struct {
	Header textproto.Header
	Body   buffer.Buffer
	Size   int64 // bytes read from the upstream, header included
	// Digest is the SHA-256 (hex) of those bytes: a copy of the message
	// in another folder has the same (dedupe).
	Digest string
	// refusal is set when the message itself is unacceptable (malformed or
	// oversized header). The stream was still read to its end, so the
	// upstream connection stays usable; Deliver returns this error.
	refusal error
}

// Discard deletes the buffered body. Safe on nil.
func (s *Spooled) Discard() {
	if s != nil && s.Body != nil {
		s.Body.Remove()
	}
}

// Spool reads one message from r to its end. An error reading r (the
// upstream connection broke) is temporary: nothing partial is ever
// delivered. A message whose header cannot be parsed is spooled as a
// refusal, which Deliver reports as a permanent error.
func (t *Target) Spool(r io.Reader) (*Spooled, error) {
	src := &errReader{r: r, sum: sha256.New()}
	maxHeader := t.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeaderBytes
	}
	limited := &headerLimitReader{r: src, left: maxHeader}
	br := bufio.NewReader(limited)
	header, err := textproto.ReadHeader(br)
	if src.err != nil {
		return nil, upstreamErr(src.err)
	}
	if err != nil {
		refusal := &exterrors.SMTPError{
			Code:         554,
			EnhancedCode: exterrors.EnhancedCode{5, 6, 0},
			Message:      "Malformed message header",
			Err:          err,
		}
		if limited.exceeded {
			refusal = &exterrors.SMTPError{
				Code:         552,
				EnhancedCode: exterrors.EnhancedCode{5, 3, 4},
				Message:      "Message header size exceeds limit",
			}
		}
		// Read the rest so that the upstream stream stays in step.
		limited.left = -1
		if _, err := io.Copy(io.Discard, br); err != nil {
			return nil, upstreamErr(err)
		}
		return &Spooled{Size: src.n, refusal: refusal}, nil
	}
	limited.left = -1

	var bodyReader io.Reader = br
	var capped *capReader
	if t.MaxMessageSize > 0 {
		capped = &capReader{r: br, left: t.MaxMessageSize - (src.n - int64(br.Buffered()))}
		bodyReader = capped
	}
	body, err := t.buffer(bodyReader)
	if err != nil {
		if src.err != nil {
			return nil, upstreamErr(src.err)
		}
		if capped != nil && capped.exceeded {
			// Larger than announced: read the rest to stay in step, refuse.
			if _, err := io.Copy(io.Discard, br); err != nil {
				return nil, upstreamErr(err)
			}
			return &Spooled{Size: src.n, refusal: tooLarge(src.n, t.MaxMessageSize)}, nil
		}
		// The spool directory failed us (disk full...): temporary too.
		return nil, exterrors.WithTemporary(fmt.Errorf("spool: %w", err), true)
	}
	if src.err != nil {
		// The upstream failed after a short read that looked like an end
		// (io.ReadFull's ErrUnexpectedEOF): a short read is never a message.
		body.Remove()
		return nil, upstreamErr(src.err)
	}
	return &Spooled{Header: header, Body: body, Size: src.n, Digest: hex.EncodeToString(src.sum.Sum(nil))}, nil
}

// buffer keeps small bodies in memory and spills large ones to a file.
func (t *Target) buffer(r io.Reader) (buffer.Buffer, error) {
	initial := make([]byte, memoryLimit)
	n, err := io.ReadFull(r, initial)
	switch {
	case err == io.EOF:
		return buffer.MemoryBuffer{}, nil
	case err == io.ErrUnexpectedEOF:
		return buffer.MemoryBuffer{Slice: initial[:n]}, nil
	case err != nil:
		return nil, err
	}
	if err := os.MkdirAll(t.SpoolDir, 0o700); err != nil {
		return nil, err
	}
	buf, err := buffer.BufferInFile(io.MultiReader(bytes.NewReader(initial), r), t.SpoolDir)
	if err != nil {
		// BufferInFile leaves its partial file behind on a failed copy;
		// CleanSpool at the next start removes it.
		return nil, err
	}
	return buf, nil
}

// tooLarge is the refusal of a message over max_message_size.
func tooLarge(size, limit int64) error {
	return &exterrors.SMTPError{
		Code:         552,
		EnhancedCode: exterrors.EnhancedCode{5, 3, 4},
		Message:      fmt.Sprintf("Message of %d bytes exceeds max_message_size (%d)", size, limit),
	}
}

// TooLarge is the reason recorded for a message the upstream announced as
// larger than max_message_size, which is then not downloaded at all.
func TooLarge(size, limit int64) string { return Reason(tooLarge(size, limit)) }

var errTooLarge = errors.New("message exceeds max_message_size")

// capReader fails once more than left bytes were read.
type capReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a message of exactly the limit from a larger one.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.exceeded = true
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// CleanSpool removes bodies left in the spool directory by a crash or a
// failed copy. Called once at start, before any fetching.
func CleanSpool(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(dir + string(os.PathSeparator) + e.Name()); err != nil {
			return err
		}
	}
	return nil
}

// Deliver runs one spooled message through the pipeline. On success it
// returns maddy's message ID: the message is committed. An error is
// temporary or permanent as IsPermanent tells; either way nothing was
// committed.
func (t *Target) Deliver(ctx context.Context, s *Spooled, o Origin) (msgID string, err error) {
	msgID, _, err = t.DeliverCopies(ctx, s, o, nil)
	return msgID, err
}

// Copies is what DeliverCopies stored besides the delivered message.
type Copies struct {
	// Accounts are the local accounts (maddy's names) the message was
	// stored for, where later copies go (CopyStored).
	Accounts []string
	// Placed are the copies stored, for every account; a copy that
	// failed is left out (and the error logged), for CopyStored to make
	// later from the delivered message.
	Placed []Placement
}

// DeliverCopies is Deliver, and once the message is committed it stores
// a copy of it in each of copies (further Gmail labels), straight into
// the storage, without the pipeline (copies.go). copies not nil, even
// empty, also notes the local accounts (Copies.Accounts), for copies made
// later.
func (t *Target) DeliverCopies(ctx context.Context, s *Spooled, o Origin, copies []Placement) (msgID string, c Copies, err error) {
	msgID, err = t.deliver(ctx, s, o, copies, &c)
	return msgID, c, err
}

func (t *Target) deliver(ctx context.Context, s *Spooled, o Origin, copies []Placement, c *Copies) (msgID string, err error) {
	msgID, err = module.GenerateMsgID()
	if err != nil {
		return "", exterrors.WithTemporary(err, true)
	}
	if s.refusal != nil {
		return msgID, s.refusal
	}
	if err := t.checkLoops(s.Header); err != nil {
		return msgID, err
	}

	mailFrom := envelopeSender(s.Header)
	rcpts := t.recipients(s.Header)
	header := s.Header.Copy()
	// The upstream's Return-Path is now the envelope sender, and maddy's
	// final delivery writes a fresh one from it: a stale copy below would
	// leave two, and filters may read the wrong one (RFC 5321 4.4: a
	// message goes on without Return-Path fields).
	header.Del("Return-Path")
	t.dropUntrustedAuthRes(&header)
	header.Add("Received", t.received(o, rcpts, time.Now()))

	meta := &module.MsgMetadata{
		ID:           msgID,
		OriginalFrom: mailFrom,
		Quarantine:   o.Quarantine,
		SMTPOpts:     smtp.MailOptions{Body: smtp.Body8BitMIME, Size: int64(s.Body.Len())},
		// Conn stays nil: there is no SMTP client, and maddy's checks that
		// need one (SPF, DNSBL, rDNS) then skip instead of judging 127.0.0.1.
	}
	t.Log.Msg("incoming message", "msg_id", msgID, "account", o.Account, "folder", o.Folder,
		"uid", o.UID, "sender", mailFrom, "size", s.Size)

	if !o.Placement.IsZero() || copies != nil {
		o.Placement.Storage = t.Storage
		placements.Store(msgID, o.Placement)
		defer placements.Delete(msgID)
	}
	// A message that may get copies (copies not nil, empty included:
	// later labels) has its local accounts noted, for CopyStored.
	var noted *storedCopies
	if copies != nil {
		noted = &storedCopies{}
		stored.Store(msgID, noted)
		defer stored.Delete(msgID)
	}
	d, err := t.Pipeline.Start(ctx, meta, mailFrom)
	if err != nil {
		return msgID, err
	}
	var body buffer.Buffer = s.Body
	if !o.Arrived.IsZero() {
		body = datedBuffer{Buffer: s.Body, date: o.Arrived}
	}
	if err := t.transfer(ctx, d, rcpts, header, body); err != nil {
		if abortErr := d.Abort(ctx); abortErr != nil {
			t.Log.Error("abort failed", abortErr, "msg_id", msgID)
		}
		return msgID, err
	}
	if noted != nil {
		noted.mu.Lock()
		for _, sc := range noted.copies {
			c.Accounts = append(c.Accounts, sc.account)
		}
		noted.mu.Unlock()
		c.Placed, err = t.storeCopies(noted, s, o, mailFrom, copies)
		if err != nil {
			// The message is committed: that stands. The copies not
			// made are made later from it (CopyStored).
			t.Log.Error("storing label copies", err, "msg_id", msgID, "account", o.Account)
		}
	}
	return msgID, nil
}

func (t *Target) transfer(ctx context.Context, d module.Delivery, rcpts []string, header textproto.Header, body buffer.Buffer) error {
	for _, rcpt := range rcpts {
		if err := d.AddRcpt(ctx, rcpt, smtp.RcptOptions{}); err != nil {
			return err
		}
	}
	if err := d.Body(ctx, header, body); err != nil {
		return err
	}
	return d.Commit(ctx)
}

func (t *Target) checkLoops(h textproto.Header) error {
	max := t.MaxReceived
	if max <= 0 {
		max = DefaultMaxReceived
	}
	n := 0
	for f := h.FieldsByKey("Received"); f.Next(); {
		n++
	}
	if n > max {
		return &exterrors.SMTPError{
			Code:         554,
			EnhancedCode: exterrors.EnhancedCode{5, 4, 6},
			Message:      fmt.Sprintf("Too many Received header fields (%d), possible forwarding loop", n),
		}
	}
	return nil
}

// received builds the trace field: which upstream, how, for whom, when.
func (t *Target) received(o Origin, rcpts []string, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "from %s", o.Host)
	if o.Addr != "" && o.Addr != o.Host {
		fmt.Fprintf(&b, " (%s [%s])", o.Host, o.Addr)
	}
	hostname := t.Hostname
	if hostname == "" {
		hostname = "localhost"
	}
	fmt.Fprintf(&b, " by %s (maddy remote_pull) with %s id <%s>", hostname, o.Protocol, o.ID())
	if len(rcpts) == 1 {
		fmt.Fprintf(&b, " for <%s>", rcpts[0])
	}
	fmt.Fprintf(&b, "; %s", now.Format(time.RFC1123Z))
	return b.String()
}

// recipients is rcpt_to, or for a catch-all mailbox the address in the
// first envelope_header the upstream's delivery added. To and Cc are never
// guessed from: Bcc recipients and mailing-list mail would go to the wrong
// people.
//
// Only fields above the topmost Received field count: the upstream adds
// its envelope fields (Delivered-To, X-Original-To) at its final delivery,
// on top; a sender can write any of them further down, to pick a local
// recipient. And only an address in envelope_domains is taken: an upstream
// never delivered to another domain's address into this mailbox.
func (t *Target) recipients(h textproto.Header) []string {
	trusted := map[string]string{} // canonical name → topmost value above the first Received
	for f := h.Fields(); f.Next(); {
		key := stdtextproto.CanonicalMIMEHeaderKey(f.Key())
		if key == "Received" {
			break
		}
		if _, seen := trusted[key]; !seen {
			trusted[key] = f.Value()
		}
	}
	for _, name := range t.EnvelopeHeaders {
		v, ok := trusted[stdtextproto.CanonicalMIMEHeaderKey(name)]
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			continue
		}
		addr := strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
		if a, err := mail.ParseAddress(v); err == nil {
			addr = a.Address
		}
		clean, err := address.CleanDomain(addr)
		if err != nil || !address.Valid(clean) {
			t.Log.Msg("envelope header holds no valid address, using rcpt_to", "header", name, "value", v)
			break
		}
		if !t.envelopeDomain(clean) {
			t.Log.Msg("envelope header names an address outside envelope_domains, using rcpt_to", "header", name, "value", clean)
			break
		}
		return []string{clean}
	}
	return t.Rcpts
}

// envelopeDomain reports whether addr is in EnvelopeDomains, or, if none
// are set, in a domain of Rcpts.
func (t *Target) envelopeDomain(addr string) bool {
	_, domain, err := address.Split(addr)
	if err != nil {
		return false
	}
	domains := t.EnvelopeDomains
	if len(domains) == 0 {
		for _, r := range t.Rcpts {
			if _, d, err := address.Split(r); err == nil {
				domains = append(domains, d)
			}
		}
	}
	return slices.ContainsFunc(domains, func(d string) bool { return strings.EqualFold(d, domain) })
}

// dropUntrustedAuthRes removes Authentication-Results fields whose
// authserv-id is not in trusted_authres (RFC 8601 section 5: a receiver
// must not trust results it did not produce or vouch for).
func (t *Target) dropUntrustedAuthRes(h *textproto.Header) {
	for f := h.FieldsByKey("Authentication-Results"); f.Next(); {
		id, _, err := authres.Parse(f.Value())
		if err != nil || !slices.ContainsFunc(t.TrustedAuthRes, func(s string) bool { return strings.EqualFold(s, id) }) {
			f.Del()
		}
	}
}

// envelopeSender takes the upstream's Return-Path (the envelope sender the
// upstream recorded at final delivery) when it holds a valid address, and the
// null sender otherwise.
func envelopeSender(h textproto.Header) string {
	rp := strings.TrimSpace(h.Get("Return-Path"))
	if len(rp) < 2 || rp[0] != '<' || rp[len(rp)-1] != '>' {
		return ""
	}
	addr := strings.TrimSpace(rp[1 : len(rp)-1])
	if addr == "" || !address.Valid(addr) {
		return ""
	}
	clean, err := address.CleanDomain(addr)
	if err != nil {
		return ""
	}
	return clean
}

// IsPermanent reports whether a delivery error is a refusal for good (5xx):
// the message stays upstream, recorded, and is not retried every poll. Any
// error without an SMTP code is temporary, as in maddy's queue.
func IsPermanent(err error) bool {
	return err != nil && !exterrors.IsTemporaryOrUnspec(err)
}

// Reason renders a delivery error the way an admin reads it in the ledger
// and status: "550 5.1.1 User doesn't exist".
func Reason(err error) string {
	var se *exterrors.SMTPError
	if errors.As(err, &se) {
		ec := se.EnhancedCode
		msg := se.Message
		if msg == "" {
			msg = se.Error()
		}
		if ec[0] != 0 && ec[0] != -1 {
			return fmt.Sprintf("%d %d.%d.%d %s", se.Code, ec[0], ec[1], ec[2], msg)
		}
		return fmt.Sprintf("%d %s", se.Code, msg)
	}
	return err.Error()
}

// upstreamErr marks a failure reading from the upstream as temporary: the
// message stays there and is fetched again at the next poll.
func upstreamErr(err error) error {
	return exterrors.WithTemporary(fmt.Errorf("reading from upstream: %w", err), true)
}

// errReader remembers the first read error other than EOF, so that a broken
// connection is never mistaken for a malformed message.
type errReader struct {
	r   io.Reader
	n   int64
	sum hash.Hash // of what was read
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	e.sum.Write(p[:n])
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// headerLimitReader fails reads once more than left bytes were read, while
// left >= 0. Setting left to -1 lifts the limit after the header.
type headerLimitReader struct {
	r        io.Reader
	left     int
	exceeded bool
}

var errHeaderTooLarge = errors.New("header too large")

func (l *headerLimitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return l.r.Read(p)
	}
	if l.left == 0 {
		l.exceeded = true
		return 0, errHeaderTooLarge
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= n
	return n, err
}

// traceSafe keeps the id clause a single token: no spaces, brackets or
// control characters, which upstream folder names may contain.
func traceSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r <= ' ' || r == '<' || r == '>' || r == '%' || r == 0x7f:
			fmt.Fprintf(&b, "%%%02X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
