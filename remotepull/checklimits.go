package remotepull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/ledger"
)

// errPaused: check does not connect to an upstream that paused the
// account (over quota, throttled): connecting during Gmail's suspension
// prolongs it.
var errPaused = errors.New("the account is paused by its provider: check does not connect before the pause ends")

// checkLimits says what the account's download budget is and, from the
// ledger at ledgerPath (if there is one), whether its provider paused it;
// a pause is errPaused.
func checkLimits(ctx context.Context, out io.Writer, acc *config.Account, ledgerPath string) error {
	if acc.DownloadBudget > 0 {
		fmt.Fprintf(out, "  download_budget: %d bytes in any 24 hours\n", acc.DownloadBudget)
	}
	if _, err := os.Stat(ledgerPath); err != nil {
		return nil
	}
	l, err := ledger.OpenReadOnly(ledgerPath)
	if err != nil {
		return err
	}
	defer l.Close()
	p, err := l.Pause(ctx, acc.Name)
	if err != nil {
		return nil // a ledger from before pauses were kept
	}
	if (p.State == "over quota" || p.State == "throttled") && time.Until(p.Until) > 0 {
		fmt.Fprintf(out, "  paused: %s until %s\n", p.State, p.Until.Local().Format(time.RFC1123))
		return errPaused
	}
	return nil
}
