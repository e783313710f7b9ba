package account

import (
	"errors"

	"github.com/remote-pull/remote_pull/internal/source"
)

// errClass is what a poll's error means for the account: one answer, used
// for the back-off, the state shown, the log and the polls_total metric.
type errClass int

const (
	classOK         errClass = iota
	classAuth                // the upstream refused the login
	classReconsent           // the OAuth2 grant is gone; only the admin can help
	classBusy                // the upstream asks to come back later
	classFolder              // only some folders failed; the others were polled
	classLocal               // maddy or the ledger failed (delivery, storage, ledger)
	classInternal            // a panic
	classConnection          // anything else: the network or the upstream
	classQuota               // the provider suspended the account (Gmail [OVERQUOTA]): pause (limits.go)
	classThrottled           // the provider asked for no connection for a while: pause
	classPaced               // the download budget is spent for now: pause, nothing failed
)

// classify reads a poll's error once.
func classify(err error) errClass {
	var (
		authErr    *source.AuthError
		busyErr    *source.BusyError
		reconsent  *source.ReconsentError
		onThisSide *localError
		quota      *source.QuotaError
		throttled  *source.ThrottledError
		paced      *pacedError
	)
	switch {
	case err == nil:
		return classOK
	case errors.Is(err, errInternal):
		return classInternal
	case errors.As(err, &quota):
		return classQuota
	case errors.As(err, &throttled):
		return classThrottled
	case errors.As(err, &paced):
		return classPaced
	case errors.As(err, &reconsent):
		return classReconsent
	case errors.As(err, &authErr):
		return classAuth
	case errors.As(err, &busyErr):
		return classBusy
	case onlyFolderErrors(err):
		return classFolder
	case errors.As(err, &onThisSide), isDeliveryErr(err):
		return classLocal
	}
	return classConnection
}

// onlyFolderErrors: every error joined in err is a source.FolderError.
func onlyFolderErrors(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyFolderErrors(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	var f *source.FolderError
	return errors.As(err, &f)
}

// localError is a failure on this side: the ledger or maddy's storage,
// not the upstream.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// local marks err, if any, as a failure on this side.
func local(err error) error {
	if err == nil {
		return nil
	}
	return &localError{err}
}

// deliveryError is a temporary delivery failure: maddy could not take the
// message now (storage busy, shutting down).
type deliveryError struct{ err error }

func (e *deliveryError) Error() string { return e.err.Error() }
func (e *deliveryError) Unwrap() error { return e.err }

func isDeliveryErr(err error) bool {
	var d *deliveryError
	return errors.As(err, &d)
}

// refusal is err if it is about one folder only (source.FolderError: the
// server answered NO, the connection lives on), else nil. Any other error
// from a folder ends the poll: the connection, the ledger or maddy failed.
func refusal(err error) error {
	var f *source.FolderError
	if errors.As(err, &f) && !source.IsLimit(err) {
		return err
	}
	return nil
}

// State is what an account is doing, as status and metrics show it.
type State string

const (
	StateStarting      State = "starting"
	StatePolling       State = "polling"
	StateOK            State = "ok"   // the last poll worked
	StateIdle          State = "idle" // it worked, and IDLE connections wait for new mail
	StateFolderFailing State = "folder failing"
	StateBackingOff    State = "backing off"
	StateAuthFailed    State = "auth failed"
	StateBusy          State = "upstream busy"
	StateReconsent     State = "re-consent needed"
	StateDisabled      State = "disabled"   // configured with disabled yes, not polled
	StateOverQuota     State = "over quota" // the provider suspended the account; no connection until NextPoll
	StateThrottled     State = "throttled"  // the provider asked for no connection until NextPoll
	StatePaced         State = "paced"      // the download budget is spent; no connection until NextPoll
)

// states lists every State, for the state metric.
var states = []State{StateStarting, StatePolling, StateOK, StateIdle, StateFolderFailing, StateBackingOff,
	StateAuthFailed, StateBusy, StateReconsent, StateDisabled, StateOverQuota, StateThrottled, StatePaced}

// state is the State a poll's outcome puts the account in.
func (c errClass) state() State {
	switch c {
	case classOK:
		return StateOK
	case classFolder:
		return StateFolderFailing
	case classAuth:
		return StateAuthFailed
	case classBusy:
		return StateBusy
	case classReconsent:
		return StateReconsent
	case classQuota:
		return StateOverQuota
	case classThrottled:
		return StateThrottled
	case classPaced:
		return StatePaced
	}
	return StateBackingOff
}

// metric is the polls_total result label.
func (c errClass) metric() string {
	switch c {
	case classOK:
		return "ok"
	case classAuth, classReconsent:
		return "auth"
	case classBusy:
		return "busy"
	case classFolder:
		return "folder"
	case classLocal:
		return "delivery"
	case classInternal:
		return "internal"
	case classQuota:
		return "over_quota"
	case classThrottled:
		return "throttled"
	case classPaced:
		return "paced"
	}
	return "connection"
}

// backsOff: the account waits longer than its poll interval after this.
// A folder that fails alone does not hold the others back.
// Paced is no failure: the poll worked, and the budget says when to go on.
func (c errClass) backsOff() bool { return c != classOK && c != classFolder && c != classPaced }

// pauses: the upstream (or the budget) set a time before which the account
// makes no connection at all, IDLE included.
func (c errClass) pauses() bool { return c == classQuota || c == classThrottled || c == classPaced }
