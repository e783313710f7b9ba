package testlib

import (
	"crypto/tls"
	"net"
	"sync"
)

// T is what Serve needs of its caller: *testing.T and *testing.B have it,
// and so does integration/harness's Script, for programs (the benchmarks).
type T interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// Serve runs a scripted server on a loopback port for the test: handle
// gets every accepted connection (over TLS when tlsCfg is set) in a
// goroutine of its own, and the connection is closed when it returns.
// Serve returns the address. When the test ends the listener and every
// connection still open are closed.
func Serve(t T, tlsCfg *tls.Config, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range open {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
