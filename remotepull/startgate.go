package remotepull

import (
	"context"
	"sync"
)

// The start gate holds every account's first poll until maddy has
// initialised all its modules, so that a configuration that fails further
// down (an unused block, a listener that cannot bind) stops maddy before
// anything was fetched. maddy 0.8 has no hook for "started"; a binary that
// can tell (cmd/maddy watches maddy's systemd readiness notification) calls
// DeferStart before maddy.Run and Ready once maddy is up. Without
// DeferStart, accounts start as soon as their block is initialised.
var gate = struct {
	mu       sync.Mutex
	deferred bool
	open     chan struct{}
	once     sync.Once
}{open: make(chan struct{})}

// DeferStart makes accounts wait for Ready before their first poll.
func DeferStart() {
	gate.mu.Lock()
	gate.deferred = true
	gate.mu.Unlock()
}

// Ready lets the accounts start.
func Ready() { gate.once.Do(func() { close(gate.open) }) }

// waitStart returns when accounts may start, or false if ctx ended first.
func waitStart(ctx context.Context) bool {
	gate.mu.Lock()
	deferred := gate.deferred
	gate.mu.Unlock()
	if !deferred {
		return true
	}
	select {
	case <-gate.open:
		return true
	case <-ctx.Done():
		return false
	}
}
