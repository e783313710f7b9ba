package account

import (
	"time"

	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Settings is one account: its Policy, and what it runs with.
type Settings struct {
	Name string
	policy.Policy
	Upstream source.Upstream
	Target   *delivery.Target
	Ledger   *ledger.Ledger
	Log      log.Logger
	// Slots bounds how many accounts poll at once (max_parallel): a poll
	// takes a slot for its duration. Nil means no bound.
	Slots Slots
	// SyncStorage makes maddy's committed deliveries durable (a syncfs of
	// the file system of its storage); called once per batch, before any
	// upstream copy is removed. Nil: nothing to do.
	SyncStorage func() error
	// Now is the clock for what is measured in hours and days (max_age,
	// delete_after, notices); nil: time.Now. Tests move it instead of
	// sleeping.
	Now func() time.Time
}
