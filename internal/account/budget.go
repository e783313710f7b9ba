package account

import (
	"context"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// The download budget (download_budget) paces an import so that the
// provider's daily limit is never reached. Before each batch is fetched,
// its messages are counted by their listed sizes against the bytes
// downloaded in the last budgetWindow; the first message that does not
// fit ends the poll there (it stays upstream, nothing is recorded of it)
// and the account pauses until enough of the window has passed for it
// (pacedError, limits.go). A batch's bytes are counted before it is
// asked for, by the listed sizes (and again for what a message brings
// beyond its listed size), whatever becomes of its messages, in the
// ledger (per minute), so that neither a cut download nor a crash nor a
// restart lets the provider's count run ahead of ours. A poll starts without connecting when the
// budget is spent already.
//
// A message larger than the whole budget would never fit: it is fetched
// alone once the window is empty, and the account is then paced for a
// day. IDLE announces new mail only; the poll it wakes spends the budget
// like any other.

// budgetWindow is how long downloaded bytes count against the budget.
const budgetWindow = 24 * time.Hour

// budgetState is the account's download budget as polls spend it; under
// Account.mu.
type budgetState struct {
	window  []ledger.Download // the downloads of the last budgetWindow, oldest first
	pending map[string]int64  // bytes the listings showed to download, by folder
}

// loadBudget reads the window from the ledger, at the start of a poll.
func (a *Account) loadBudget(ctx context.Context) error {
	if a.s.DownloadBudget <= 0 {
		return nil
	}
	w, err := a.s.Ledger.Downloads(ctx, a.s.Name, a.s.Now().Add(-budgetWindow))
	if err != nil {
		return local(err)
	}
	a.mu.Lock()
	a.budget.window = w
	a.mu.Unlock()
	return nil
}

// usedLocked is the bytes downloaded in the window ending at now.
func (a *Account) usedLocked(now time.Time) int64 {
	var n int64
	for _, d := range a.budget.window {
		if expires(d).After(now) {
			n += d.Bytes
		}
	}
	return n
}

// expires is when a bucket of downloads stops counting: a whole window
// after the end of its minute.
func expires(d ledger.Download) time.Time { return d.At.Add(ledger.DownloadBucket + budgetWindow) }

// resumeLocked is when at least need bytes of the window will have
// expired; when they never will (need is more than the window holds),
// when the whole window has.
func (a *Account) resumeLocked(now time.Time, need int64) time.Time {
	var freed int64
	at := now
	for _, d := range a.budget.window {
		if !expires(d).After(now) {
			continue
		}
		freed += d.Bytes
		at = expires(d)
		if freed >= need {
			break
		}
	}
	return at
}

// budgetSpent is a pacedError when nothing at all is left of the budget,
// so that the poll does not even connect; else nil.
func (a *Account) budgetSpent() error {
	budget := a.s.DownloadBudget
	if budget <= 0 {
		return nil
	}
	now := a.s.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	used := a.usedLocked(now)
	if used < budget {
		return nil
	}
	return &pacedError{until: a.resumeLocked(now, used-budget+1), used: used, budget: budget}
}

// allowed is the longest start of uids the budget lets this poll fetch
// now, counting listed sizes.
func (f *folderPass) allowed(uids []string) []string {
	a := f.a
	budget := a.s.DownloadBudget
	if budget <= 0 {
		return uids
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	used := a.usedLocked(a.s.Now())
	for i, uid := range uids {
		size := f.listedSize(uid)
		if used+size <= budget {
			used += size
			continue
		}
		if i == 0 && used == 0 {
			// Larger than the whole budget: alone, in an empty window.
			a.s.Log.Msg("message larger than the whole download_budget: fetched alone; the account is paced for a day after it",
				"folder", f.name, "uid", uid, "size", size, "download_budget", budget)
			return uids[:1]
		}
		return uids[:i]
	}
	return uids
}

// pacedFor is the pacedError of a poll that stops before a message of
// size bytes: until enough of the window has passed for it, or, if it is
// larger than the whole budget, until the window is empty.
func (a *Account) pacedFor(size int64) error {
	budget := a.s.DownloadBudget
	now := a.s.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	used := a.usedLocked(now)
	need := used + size - budget
	if size > budget {
		need = used
	}
	until := now
	if need > 0 {
		until = a.resumeLocked(now, need)
	}
	return &pacedError{until: until, used: used, budget: budget, next: size}
}

// spent counts n bytes downloaded now, in memory and in the ledger.
func (a *Account) spent(ctx context.Context, n int64) error {
	if a.s.DownloadBudget <= 0 {
		return nil
	}
	now := a.s.Now()
	at := now.Truncate(ledger.DownloadBucket)
	a.mu.Lock()
	if w := a.budget.window; len(w) > 0 && w[len(w)-1].At.Equal(at) {
		w[len(w)-1].Bytes += n
	} else {
		a.budget.window = append(a.budget.window, ledger.Download{At: at, Bytes: n})
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()
	if err := a.s.Ledger.AddDownload(ctx, a.s.Name, now, n); err != nil {
		return local(err)
	}
	return nil
}

// setPending records the bytes a folder's listing showed to download.
func (a *Account) setPending(folder string, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.budget.pending == nil {
		a.budget.pending = map[string]int64{}
	}
	a.budget.pending[folder] = n
}

// fetchedBytes takes a downloaded message's listed size off its folder's
// pending bytes.
func (a *Account) fetchedBytes(folder string, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.budget.pending != nil {
		a.budget.pending[folder] = max(a.budget.pending[folder]-n, 0)
	}
}

// budgetStatus is what the status shows of the budget now.
func (a *Account) budgetStatus() ledger.Budget {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := ledger.Budget{Budget: a.s.DownloadBudget}
	for _, n := range a.budget.pending {
		b.Pending += n
	}
	if b.Budget > 0 {
		b.Left = max(b.Budget-a.usedLocked(a.s.Now()), 0)
	}
	return b
}

// publishBudget shows the budget in the metrics and the ledger.
func (a *Account) publishBudget(ctx context.Context) {
	b := a.budgetStatus()
	pendingBytes.WithLabelValues(a.s.Name).Set(float64(b.Pending))
	if b.Budget <= 0 {
		return
	}
	budgetLeft.WithLabelValues(a.s.Name).Set(float64(b.Left))
	if err := a.s.Ledger.SaveBudget(ctx, a.s.Name, b); err != nil {
		a.s.Log.Error("saving the download budget's status", err)
	}
}
