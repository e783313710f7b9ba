package remotepull

import (
	"context"
	"testing"
	"time"
)

// With DeferStart, accounts wait for Ready (or their end); without it
// they start at once.
func TestStartGate(t *testing.T) {
	if !waitStart(context.Background()) {
		t.Fatal("without DeferStart an account waited")
	}
	DeferStart()
	defer func() { gate.mu.Lock(); gate.deferred = false; gate.mu.Unlock() }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if waitStart(ctx) {
		t.Fatal("an account started before Ready")
	}
	started := make(chan bool)
	go func() { started <- waitStart(context.Background()) }()
	select {
	case <-started:
		t.Fatal("started before Ready")
	case <-time.After(20 * time.Millisecond):
	}
	Ready()
	if !<-started {
		t.Fatal("not started after Ready")
	}
}
