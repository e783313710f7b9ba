package faultproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer sends payload to every client, then closes.
func echoServer(t *testing.T, payload []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write(payload)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func read(t *testing.T, addr string) ([]byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return io.ReadAll(c)
}

func TestForwardAndCut(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 10000)
	p, err := New(echoServer(t, payload))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	got, err := read(t, p.Addr)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("plain forward: %d bytes, %v", len(got), err)
	}

	p.CutAfter(12345, 2)
	for i := 0; i < 2; i++ {
		got, err = read(t, p.Addr)
		if len(got) != 12345 {
			t.Fatalf("cut %d: got %d bytes, want 12345", i, len(got))
		}
		if err == nil {
			t.Fatalf("cut %d: clean EOF, want a reset", i)
		}
	}
	if p.Cuts() != 2 {
		t.Fatalf("Cuts = %d", p.Cuts())
	}
	if got, err = read(t, p.Addr); err != nil || len(got) != len(payload) {
		t.Fatalf("after the cuts are used up: %d bytes, %v", len(got), err)
	}
}

func TestLatency(t *testing.T) {
	p, err := New(echoServer(t, []byte("hello")))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetLatency(50 * time.Millisecond)
	start := time.Now()
	got, err := read(t, p.Addr)
	if err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("no latency added")
	}
}

// A long transfer pays the latency about once, as on a real link: were
// every 32 KiB chunk delayed in turn, 4 MiB at 100 ms would take 12 s.
func TestLatencyIsNotPerChunk(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	p, err := New(echoServer(t, payload))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetLatency(100 * time.Millisecond)
	start := time.Now()
	got, err := read(t, p.Addr)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("4 MiB took %v: latency is added per chunk", d)
	}
}
