package commands

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// printLimits says when a paused account connects again, and what is
// left of its download budget with an estimate for what waits upstream.
func printLimits(out io.Writer, st accountStatus) {
	if st.Configured && st.Running && !st.ResumeAt.IsZero() && time.Until(st.ResumeAt) > 0 {
		switch st.State {
		case "over quota", "throttled", "paced":
			fmt.Fprintf(out, "paused: %s: %s, no connection until %s (%s)\n", st.Account, st.State,
				st.ResumeAt.Local().Format(time.RFC1123), until(st.ResumeAt))
		}
	}
	if st.Budget <= 0 {
		return
	}
	line := fmt.Sprintf("budget: %s: %s of %s left in the last 24 hours", st.Account, bytesText(st.BudgetLeft), bytesText(st.Budget))
	switch {
	case st.PendingBytes <= 0:
		line += "; nothing known to wait upstream"
	case st.BudgetDays <= 1:
		line += fmt.Sprintf("; %s waiting upstream, within a day", bytesText(st.PendingBytes))
	default:
		line += fmt.Sprintf("; %s waiting upstream, about %.0f days at this budget", bytesText(st.PendingBytes), math.Ceil(st.BudgetDays))
	}
	fmt.Fprintln(out, line)
}

// budgetDays estimates the days the bytes waiting upstream take at the
// account's download budget: what is left today, then a budget a day.
func budgetDays(st ledger.AccountStatus) float64 {
	if st.Budget <= 0 || st.PendingBytes <= 0 {
		return 0
	}
	rest := st.PendingBytes - st.BudgetLeft
	if rest <= 0 {
		return 1
	}
	return 1 + float64(rest)/float64(st.Budget)
}

// bytesText is a size for people: 1.2 GB, 350 MB (decimal units, as
// providers state their limits).
func bytesText(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.0f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}
