package source

import (
	"strings"
	"testing"
	"time"
)

// The backoff is read from the upstream's text, which is hostile: only
// digits after the marker are taken, the unit is milliseconds unless said
// otherwise, and the result is bounded either way.
func TestSuggestedBackoff(t *testing.T) {
	for _, c := range []struct {
		text string
		want time.Duration
		ok   bool
	}{
		{"Request is throttled. Suggested Backoff Time: 299961 milliseconds", 299961 * time.Millisecond, true},
		{"request is throttled. suggested backoff time:299961 ms", 299961 * time.Millisecond, true},
		{"Suggested Backoff Time: 30 seconds", 30 * time.Second, true},
		{"Suggested Backoff Time: 5 minutes", 5 * time.Minute, true},
		{"Suggested Backoff Time: 0 milliseconds", MinSuggestedBackoff, true},
		{"Suggested Backoff Time: 86400001 milliseconds", MaxSuggestedBackoff, true},
		{"Suggested Backoff Time: 9999999999999 minutes", MaxSuggestedBackoff, true},
		{"Suggested Backoff Time: " + strings.Repeat("9", 5000) + " milliseconds", MaxSuggestedBackoff, true},
		{"Suggested Backoff Time: -5 milliseconds", 0, false},
		{"Suggested Backoff Time: soon", 0, false},
		{"Request is throttled.", 0, false},
		{strings.Repeat("x", 2000) + "Suggested Backoff Time: 5 seconds", 0, false},
		{"", 0, false},
	} {
		got, ok := SuggestedBackoff(c.text)
		if got != c.want || ok != c.ok {
			t.Errorf("SuggestedBackoff(%.60q) = %v, %v; want %v, %v", c.text, got, ok, c.want, c.ok)
		}
	}
}
