package source

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// QuotaError: the provider suspended the account for exceeding its limits
// (Gmail's [OVERQUOTA] "Account exceeded command or bandwidth limits", and
// [THROTTLED]). Gmail answers every command so until the suspension ends,
// up to a day later, and connecting meanwhile prolongs it: the account
// pauses entirely, for a time the account loop chooses (the provider says
// none).
type QuotaError struct{ Err error }

func (e *QuotaError) Error() string { return "over quota: " + e.Err.Error() }
func (e *QuotaError) Unwrap() error { return e.Err }

// ThrottledError: the provider asked for no connection before Backoff has
// passed (Microsoft 365: "Request is throttled. Suggested Backoff Time: N
// milliseconds", then a disconnect). Backoff is already bounded
// (MaxSuggestedBackoff).
type ThrottledError struct {
	Backoff time.Duration
	Err     error
}

func (e *ThrottledError) Error() string {
	return "throttled for " + e.Backoff.Round(time.Second).String() + ": " + e.Err.Error()
}
func (e *ThrottledError) Unwrap() error { return e.Err }

// Bounds of a backoff read from the upstream's text: a hostile or broken
// server must not park an account for a year, nor make it hammer with 0.
const (
	MinSuggestedBackoff = time.Second
	MaxSuggestedBackoff = 24 * time.Hour
)

// quotaCodes are the response codes that mean the provider suspended the
// account (IMAP resp-text-code; also looked for in a POP3 reply).
var quotaCodes = []string{"OVERQUOTA", "THROTTLED"}

// IsQuotaCode: code (without brackets, any case) is one of quotaCodes.
func IsQuotaCode(code string) bool {
	for _, c := range quotaCodes {
		if strings.EqualFold(code, c) {
			return true
		}
	}
	return false
}

// SuggestedBackoff reads Microsoft's "Suggested Backoff Time: N
// milliseconds" from a reply's text, bounded to [MinSuggestedBackoff,
// MaxSuggestedBackoff]. ok is false when text does not say it. The text is
// the upstream's: only a bounded prefix is looked at, and only digits are
// taken from it.
func SuggestedBackoff(text string) (d time.Duration, ok bool) {
	const maxScan = 1024
	if len(text) > maxScan {
		text = text[:maxScan]
	}
	lower := strings.ToLower(text)
	const marker = "suggested backoff time"
	i := strings.Index(lower, marker)
	if i < 0 {
		return 0, false
	}
	rest := strings.TrimLeft(lower[i+len(marker):], " \t:=")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, false
	}
	unit := time.Millisecond // Microsoft's unit, and the default
	word := strings.TrimLeft(rest[n:], " \t")
	if j := strings.IndexFunc(word, func(r rune) bool { return r < 'a' || r > 'z' }); j >= 0 {
		word = word[:j]
	}
	switch word {
	case "s", "sec", "secs", "second", "seconds":
		unit = time.Second
	case "min", "mins", "minute", "minutes":
		unit = time.Minute
	}
	d = MaxSuggestedBackoff
	// More than 12 digits is past any bound whatever the unit; ParseInt
	// would overflow long before that matters.
	if n <= 12 {
		v, err := strconv.ParseInt(rest[:n], 10, 64)
		if err == nil && time.Duration(v) <= MaxSuggestedBackoff/unit {
			d = time.Duration(v) * unit
		}
	}
	return min(max(d, MinSuggestedBackoff), MaxSuggestedBackoff), true
}

// Limited turns a provider's refusal into the typed error the account loop
// acts on: a QuotaError for a quota code, a ThrottledError when the text
// suggests a backoff; nil when it is neither. code is the reply's response
// code without brackets ("" if none), text its human-readable rest.
func Limited(code, text string, err error) error {
	if IsQuotaCode(code) {
		return &QuotaError{Err: err}
	}
	if d, ok := SuggestedBackoff(text); ok {
		return &ThrottledError{Backoff: d, Err: err}
	}
	return nil
}

// IsLimit: err is, or wraps, a QuotaError or a ThrottledError: about the
// whole account, never one folder's refusal nor the credentials.
func IsLimit(err error) bool {
	var (
		quota     *QuotaError
		throttled *ThrottledError
	)
	return errors.As(err, &quota) || errors.As(err, &throttled)
}
