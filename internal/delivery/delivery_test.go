package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/exterrors"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// failing is a pipeline whose Body answers err.
func failing(err error) *testlib.Pipeline {
	return &testlib.Pipeline{Check: func(textproto.Header) error { return err }}
}

func newTarget(t *testing.T, p *testlib.Pipeline) *Target {
	return &Target{
		Options:  Options{Pipeline: p, Rcpts: []string{"alice@example.org"}, Hostname: "mx.example.org"},
		SpoolDir: t.TempDir(),
		// Not log.WriterOutput: maddy 0.8.2's ignores its writer.
		Log: testlib.Quiet("test"),
	}
}

var origin = Origin{Protocol: "IMAP", Host: "imap.example.com", Addr: "192.0.2.1", Account: "acct",
	Folder: "[Gmail]/All Mail", UIDValidity: 7, UID: "42"}

func deliver(t *testing.T, tg *Target, raw []byte) (string, error) {
	t.Helper()
	sp, err := tg.Spool(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Spool: %v", err)
	}
	defer sp.Discard()
	if sp.Size != int64(len(raw)) {
		t.Errorf("Spooled.Size = %d, want %d", sp.Size, len(raw))
	}
	return tg.Deliver(context.Background(), sp, origin)
}

// splitReceived returns the first header field and the rest.
func splitReceived(t *testing.T, got []byte) (string, []byte) {
	t.Helper()
	if !bytes.HasPrefix(got, []byte("Received: ")) {
		t.Fatalf("no Received field on top:\n%.200s", got)
	}
	// The field may be folded: continuation lines start with white space.
	end := 0
	for {
		i := bytes.Index(got[end:], []byte("\r\n"))
		end += i + 2
		if end >= len(got) || (got[end] != ' ' && got[end] != '\t') {
			break
		}
	}
	return string(got[:end]), got[end:]
}

func TestBytesSurvive(t *testing.T) {
	long := strings.Repeat("x", 4000)
	cases := map[string]string{
		"long line":        "Subject: long\r\n\r\n" + long + "\r\n",
		"8-bit":            "Subject: =?utf-8?q?x?=\r\n\r\nGrüße, ça va? 日本語\r\n",
		"no final newline": "Subject: nl\r\n\r\nlast line without newline",
		"folded header":    "Subject: a folded\r\n\tsubject line\r\nX-Long: one\r\n two\r\n\r\nbody\r\n",
		"dots":             "Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n",
		"bare LF in body":  "Subject: lf\r\n\r\nbody with LF\nsecond\n",
		"empty body":       "Subject: empty\r\n\r\n",
		"header only":      "Subject: header only\r\n",
		"large":            "Subject: large\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 200000),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			p := &testlib.Pipeline{}
			if _, err := deliver(t, newTarget(t, p), []byte(raw)); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			received, rest := splitReceived(t, p.Messages()[0].Raw)
			if !bytes.Equal(rest, []byte(raw)) && !(name == "header only" && string(rest) == raw+"\r\n") {
				t.Fatalf("bytes changed:\n got %q\nwant %q", trim(rest), trim([]byte(raw)))
			}
			unfolded := strings.ReplaceAll(received, "\r\n ", " ")
			if !strings.Contains(unfolded, "with IMAP id <acct/[Gmail]/All%20Mail/7/42>") {
				t.Errorf("Received = %q", received)
			}
		})
	}
}

func trim(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

func TestLargeMessageSpillsToFile(t *testing.T) {
	tg := newTarget(t, &testlib.Pipeline{})
	raw := "Subject: big\r\n\r\n" + strings.Repeat("y", 3<<20)
	sp, err := tg.Spool(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sp.Body.(buffer.FileBuffer); !ok {
		t.Fatalf("a 3 MiB body is a %T, want a file buffer", sp.Body)
	}
	entries, _ := os.ReadDir(tg.SpoolDir)
	if len(entries) != 1 {
		t.Fatalf("spool dir holds %d files, want 1", len(entries))
	}
	sp.Discard()
	entries, _ = os.ReadDir(tg.SpoolDir)
	if len(entries) != 0 {
		t.Fatalf("Discard left %d files", len(entries))
	}
}

func TestReceivedField(t *testing.T) {
	tg := newTarget(t, &testlib.Pipeline{})
	got := tg.received(origin, tg.Rcpts, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	want := "from imap.example.com (imap.example.com [192.0.2.1]) by mx.example.org (maddy remote_pull) " +
		"with IMAP id <acct/[Gmail]/All%20Mail/7/42> for <alice@example.org>; Fri, 02 Jan 2026 03:04:05 +0000"
	if got != want {
		t.Fatalf("Received:\n got %s\nwant %s", got, want)
	}
	if strings.Contains(tg.received(origin, []string{"a@example.org", "b@example.org"}, time.Now()), " for <") {
		t.Error("with two recipients the field must not name one")
	}
}

func TestEnvelopeSender(t *testing.T) {
	cases := map[string]string{
		"Return-Path: <bob@Example.COM>\r\n": "bob@example.com",
		"Return-Path: <>\r\n":                "",
		"Return-Path: bob@example.com\r\n":   "",
		"Return-Path: <not an address>\r\n":  "",
		"":                                   "",
		"Return-Path: <a@b.example>\r\nReturn-Path: <c@d.example>\r\n": "a@b.example",
	}
	for hdr, want := range cases {
		p := &testlib.Pipeline{}
		if _, err := deliver(t, newTarget(t, p), []byte(hdr+"Subject: s\r\n\r\nb\r\n")); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(p.Messages()[0].Raw), "Return-Path") {
			t.Errorf("%q: the upstream's Return-Path was passed on:\n%s", hdr, p.Messages()[0].Raw)
		}
		if p.Messages()[0].From != want {
			t.Errorf("%q: sender %q, want %q", hdr, p.Messages()[0].From, want)
		}
		if p.Messages()[0].Meta.Conn != nil || p.Messages()[0].Meta.ID == "" || p.Messages()[0].Meta.OriginalFrom != want {
			t.Errorf("%q: metadata %+v", hdr, p.Messages()[0].Meta)
		}
	}
}

func TestRefusals(t *testing.T) {
	t.Run("malformed header is a permanent refusal", func(t *testing.T) {
		p := &testlib.Pipeline{}
		raw := "Subject ok\r\nno colon here\r\n\r\nbody\r\n"
		r := strings.NewReader(raw)
		tg := newTarget(t, p)
		sp, err := tg.Spool(r)
		if err != nil {
			t.Fatalf("Spool: %v", err)
		}
		if r.Len() != 0 {
			t.Errorf("the rest of the message was not read: %d bytes left", r.Len())
		}
		_, err = tg.Deliver(context.Background(), sp, origin)
		if !IsPermanent(err) || !strings.HasPrefix(Reason(err), "554 5.6.0") {
			t.Fatalf("err %v (%q), want a permanent 554 5.6.0", err, Reason(err))
		}
		if len(p.Messages()) != 0 {
			t.Fatal("committed a malformed message")
		}
	})
	t.Run("oversized header", func(t *testing.T) {
		p := &testlib.Pipeline{}
		tg := newTarget(t, p)
		tg.MaxHeaderBytes = 1024
		raw := "X-Big: " + strings.Repeat("h", 5000) + "\r\n\r\nbody\r\n"
		r := strings.NewReader(raw)
		sp, err := tg.Spool(r)
		if err != nil {
			t.Fatalf("Spool: %v", err)
		}
		if r.Len() != 0 {
			t.Errorf("stream not drained: %d bytes left", r.Len())
		}
		_, err = tg.Deliver(context.Background(), sp, origin)
		if !IsPermanent(err) || !strings.HasPrefix(Reason(err), "552 5.3.4") {
			t.Fatalf("err %v, want 552 5.3.4", err)
		}
	})
	t.Run("routing loop", func(t *testing.T) {
		p := &testlib.Pipeline{}
		raw := strings.Repeat("Received: from a by b; Thu, 1 Jan 2026 00:00:00 +0000\r\n", 51) + "Subject: loop\r\n\r\nb\r\n"
		_, err := deliver(t, newTarget(t, p), []byte(raw))
		if !IsPermanent(err) || !strings.HasPrefix(Reason(err), "554 5.4.6") {
			t.Fatalf("err %v, want 554 5.4.6", err)
		}
	})
	t.Run("pipeline refusal is permanent and aborts", func(t *testing.T) {
		p := &testlib.Pipeline{RcptErr: &exterrors.SMTPError{Code: 550, EnhancedCode: exterrors.EnhancedCode{5, 1, 1}, Message: "User doesn't exist"}}
		_, err := deliver(t, newTarget(t, p), []byte("Subject: s\r\n\r\nb\r\n"))
		if !IsPermanent(err) || Reason(err) != "550 5.1.1 User doesn't exist" || p.Aborted() != 1 {
			t.Fatalf("err %v, reason %q, aborted %d", err, Reason(err), p.Aborted())
		}
	})
	t.Run("pipeline temporary failure", func(t *testing.T) {
		p := failing(&exterrors.SMTPError{Code: 451, Message: "try later"})
		_, err := deliver(t, newTarget(t, p), []byte("Subject: s\r\n\r\nb\r\n"))
		if err == nil || IsPermanent(err) || p.Aborted() != 1 {
			t.Fatalf("err %v, aborted %d: want temporary and aborted", err, p.Aborted())
		}
	})
	t.Run("error without a code is temporary", func(t *testing.T) {
		p := failing(errors.New("database is locked"))
		_, err := deliver(t, newTarget(t, p), []byte("Subject: s\r\n\r\nb\r\n"))
		if err == nil || IsPermanent(err) {
			t.Fatalf("err %v: want temporary", err)
		}
	})
}

// brokenReader yields data, then fails like a cut connection.
type brokenReader struct {
	data []byte
	err  error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestCutConnectionIsTemporary(t *testing.T) {
	for name, raw := range map[string]string{
		"in the header":   "Subject: cut he",
		"in a small body": "Subject: s\r\n\r\npartial bo",
		"in a large body": "Subject: s\r\n\r\n" + strings.Repeat("z", 2<<20),
		"in a bad header": "no colon\r\nmore",
	} {
		// io.ErrUnexpectedEOF is what io.ReadFull itself returns for a short
		// but complete body: coming from the upstream, it must still fail.
		for _, cut := range []error{errors.New("connection reset by peer"), io.ErrUnexpectedEOF} {
			t.Run(name+"/"+cut.Error(), func(t *testing.T) {
				tg := newTarget(t, &testlib.Pipeline{})
				sp, err := tg.Spool(&brokenReader{data: []byte(raw), err: cut})
				if err == nil {
					sp.Discard()
					t.Fatal("Spool succeeded on a cut stream")
				}
				if IsPermanent(err) || !errors.Is(err, cut) {
					t.Fatalf("err %v: want a temporary error wrapping the cut", err)
				}
			})
		}
	}
}

func TestEnvelopeHeader(t *testing.T) {
	const recv = "Received: from mx.sender.example by mx.isp.example; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
	cases := []struct{ hdr, want string }{
		{"X-Original-To: bob@example.org\r\nDelivered-To: carol@example.org\r\n" + recv, "bob@example.org"},
		{"Delivered-To: <carol@Example.ORG>\r\n" + recv, "carol@example.org"},
		// Topmost occurrence: the upstream's final delivery.
		{"X-Original-To: first@example.org\r\nX-Original-To: second@example.org\r\n" + recv, "first@example.org"},
		{"Delivered-To: not an address\r\n" + recv, "alice@example.org"},
		{"To: dave@example.org\r\n", "alice@example.org"}, // To is never guessed from
		// Spoofing: the sender wrote X-Original-To below the upstream's
		// Received field; the upstream added only Delivered-To.
		{"Delivered-To: carol@example.org\r\n" + recv + "X-Original-To: postmaster@example.org\r\n", "carol@example.org"},
		{"Return-Path: <x@sender.example>\r\n" + recv + "X-Original-To: postmaster@example.org\r\n", "alice@example.org"},
		// An address outside envelope_domains (default: rcpt_to's) is not taken.
		{"X-Original-To: victim@elsewhere.example\r\n" + recv, "alice@example.org"},
	}
	for _, c := range cases {
		p := &testlib.Pipeline{}
		tg := newTarget(t, p)
		tg.EnvelopeHeaders = []string{"X-Original-To", "Delivered-To"}
		sp, err := tg.Spool(strings.NewReader(c.hdr + "Subject: s\r\n\r\nb\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.recipients(sp.Header); len(got) != 1 || got[0] != c.want {
			t.Errorf("%q: recipients %v, want %s", c.hdr, got, c.want)
		}
	}
}

func TestAuthResultsFiltered(t *testing.T) {
	raw := "Authentication-Results: mx.google.com; dkim=pass header.d=bank.example\r\n" +
		"Authentication-Results: evil.example; dkim=pass header.d=bank.example\r\n" +
		"Authentication-Results: garbage without structure ;;;\r\n" +
		"Subject: s\r\n\r\nb\r\n"
	p := &testlib.Pipeline{}
	tg := newTarget(t, p)
	tg.TrustedAuthRes = []string{"MX.google.com"}
	if _, err := deliver(t, tg, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	got := string(p.Messages()[0].Raw)
	if !strings.Contains(got, "mx.google.com; dkim=pass") || strings.Contains(got, "evil.example") || strings.Contains(got, "garbage") {
		t.Fatalf("Authentication-Results not filtered:\n%s", got)
	}
}

func TestSpoolSizeCap(t *testing.T) {
	tg := newTarget(t, &testlib.Pipeline{})
	tg.MaxMessageSize = 2 << 20
	exact := "Subject: s\r\n\r\n" + strings.Repeat("a", 2<<20-len("Subject: s\r\n\r\n"))
	sp, err := tg.Spool(strings.NewReader(exact))
	if err != nil || sp.refusal != nil {
		t.Fatalf("a message of exactly the limit: %v %v", err, sp.refusal)
	}
	sp.Discard()
	r := strings.NewReader(exact + "one byte too many")
	sp, err = tg.Spool(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatal("an oversized message was not drained")
	}
	_, err = tg.Deliver(context.Background(), sp, origin)
	if !IsPermanent(err) || !strings.HasPrefix(Reason(err), "552 5.3.4") {
		t.Fatalf("err %v", err)
	}
}

// envelope_domains widens or narrows the accepted domains.
func TestEnvelopeDomains(t *testing.T) {
	tg := newTarget(t, &testlib.Pipeline{})
	tg.EnvelopeHeaders = []string{"Delivered-To"}
	tg.EnvelopeDomains = []string{"other.example"}
	for hdr, want := range map[string]string{
		"Delivered-To: bob@Other.Example\r\n": "bob@other.example",
		"Delivered-To: bob@example.org\r\n":   "alice@example.org", // rcpt_to's domain is no longer implied
	} {
		sp, err := tg.Spool(strings.NewReader(hdr + "Subject: s\r\n\r\nb\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.recipients(sp.Header); len(got) != 1 || got[0] != want {
			t.Errorf("%q: %v, want %s", hdr, got, want)
		}
	}
}

// Spool digests the whole message as read, header included, small or
// spilled to a file: dedupe recognises a copy by it.
func TestSpoolDigest(t *testing.T) {
	tg := newTarget(t, &testlib.Pipeline{})
	for _, raw := range []string{"Subject: small\r\n\r\nbody\r\n", "Subject: big\r\n\r\n" + strings.Repeat("y", 3<<20)} {
		sp, err := tg.Spool(strings.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(raw))
		if sp.Digest != hex.EncodeToString(sum[:]) {
			t.Errorf("digest of a %d-byte message %q, want the SHA-256 of its bytes", len(raw), sp.Digest)
		}
		sp.Discard()
	}
}
