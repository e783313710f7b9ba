package harness

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func TestMessageSizes(t *testing.T) {
	min := len(Message(7, 0))
	for size := 0; size < 600; size++ {
		if got, want := len(Message(7, size)), max(size, min); got != want {
			t.Fatalf("Message(7, %d) has %d bytes, want %d", size, got, want)
		}
	}
	for _, size := range []int{0, 100, 210, 250, 251, 252, 300, 1000, 4096, 65537} {
		m := Message(7, size)
		if size >= 250 && len(m) != size {
			t.Errorf("Message(7, %d) has %d bytes", size, len(m))
		}
		if !bytes.HasSuffix(m, []byte("\r\n")) || bytes.Contains(CRLF(m), []byte("\r\r")) || !bytes.Equal(CRLF(m), m) {
			t.Errorf("Message(7, %d) is not clean CRLF: %q", size, m)
		}
		if !bytes.Equal(m, Message(7, size)) {
			t.Errorf("Message(7, %d) is not deterministic", size)
		}
	}
	if bytes.Equal(Message(1, 300), Message(2, 300)) {
		t.Error("different messages are equal")
	}
}

func TestTrickyCorpus(t *testing.T) {
	c := TrickyCorpus()
	for _, name := range []string{"long-line", "utf8-8bit", "no-final-newline", "folded-headers", "dot-stuffing",
		"lone-dot", "crlf", "bare-lf", "empty-body", "header-only"} {
		m, ok := c[name]
		if !ok {
			t.Errorf("no %q", name)
			continue
		}
		if name != "bare-lf" && !bytes.Equal(CRLF(m), m) {
			t.Errorf("%s has bare LFs", name)
		}
	}
	if !bytes.Contains(c["long-line"], []byte(filler(7, 4000)+"\r\n")) {
		t.Error("long-line lacks its 4,000-character line")
	}
	if bytes.HasSuffix(c["no-final-newline"], []byte("\n")) {
		t.Error("no-final-newline ends with a newline")
	}
	if !bytes.Contains(c["lone-dot"], []byte("\r\n.\r\n")) || !bytes.Contains(c["dot-stuffing"], []byte("\r\n..")) {
		t.Error("dot lines missing")
	}
	if bytes.Contains(c["header-only"], []byte("\r\n\r\n")) || !bytes.HasSuffix(c["empty-body"], []byte("\r\n\r\n")) {
		t.Error("header-only / empty-body shape")
	}
	if bytes.Contains(c["bare-lf"], []byte("\r")) {
		t.Error("bare-lf has CR")
	}
}

func TestLarge(t *testing.T) {
	n, err := io.Copy(io.Discard, Large(3))
	if err != nil || n != LargeSize(3) {
		t.Fatalf("Large(3): %d bytes, %v", n, err)
	}
	// Odd read sizes yield the same stream.
	var a bytes.Buffer
	buf := make([]byte, 77)
	r := Large(3)
	for {
		k, err := r.Read(buf)
		a.Write(buf[:k])
		if err == io.EOF {
			break
		}
	}
	if err := EqualReader(a.Bytes(), Large(3)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(a.Bytes(), []byte("\r\n")) || !bytes.Equal(CRLF(a.Bytes()), a.Bytes()) {
		t.Error("Large is not clean CRLF")
	}
	for _, line := range bytes.Split(a.Bytes(), []byte("\r\n")) {
		if len(line) > 998 {
			t.Fatalf("line of %d bytes", len(line))
		}
	}
	p := WriteLarge(t, 1)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := EqualReader(data, Large(1)); err != nil {
		t.Fatal(err)
	}
	if err := EqualReader(data[:len(data)-1], Large(1)); err == nil {
		t.Error("EqualReader accepted a short copy")
	}
	data[12345] ^= 1
	if err := EqualReader(data, Large(1)); err == nil || !strings.Contains(err.Error(), "byte 12345") {
		t.Errorf("EqualReader on a changed byte: %v", err)
	}
}

func TestStripTopReceived(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Received: from a\r\n\tby b; date\r\nFrom: x\r\n\r\nbody\r\n", "From: x\r\n\r\nbody\r\n"},
		{"received: from a\r\n  by b\r\nReceived: second\r\n\r\n", "Received: second\r\n\r\n"},
		{"Received: one line\nSubject: s\n\nb\n", "Subject: s\n\nb\n"},
		{"From: x\r\nReceived: not first\r\n\r\n", "From: x\r\nReceived: not first\r\n\r\n"},
		{"X-Received: no\r\n\r\n", "X-Received: no\r\n\r\n"},
		{"Received: all there is", ""},
		{"", ""},
	} {
		if got := string(StripTopReceived([]byte(c.in))); got != c.want {
			t.Errorf("StripTopReceived(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCRLF(t *testing.T) {
	if got := string(CRLF([]byte("a\nb\r\nc\n\n"))); got != "a\r\nb\r\nc\r\n\r\n" {
		t.Errorf("CRLF: %q", got)
	}
	if got := string(CRLF([]byte("\n"))); got != "\r\n" {
		t.Errorf("CRLF: %q", got)
	}
}
