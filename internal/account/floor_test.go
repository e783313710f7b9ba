package account

import (
	"testing"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// The floor reads a message's progress as it would its ledger state.
func TestProgressIsFinalAsItsState(t *testing.T) {
	for _, st := range []ledger.State{"", ledger.Delivered, ledger.Refused, ledger.TooLarge, ledger.Adopted,
		ledger.Removed, ledger.Duplicate, ledger.Retry, "a state of a later version"} {
		for _, keep := range []bool{false, true} {
			if got, want := progressOf(st).final(keep), st.Final(keep); got != want {
				t.Errorf("%q, keep %v: progress final %v, state final %v", st, keep, got, want)
			}
		}
	}
}
