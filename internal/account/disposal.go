package account

import (
	"context"
	"slices"

	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// WithoutDisposal drops from folders the one removed messages are moved to
// (move_to, or the Trash of a server without UIDPLUS), and returns its
// name: polled, its messages would be delivered a second time. removes
// says whether the account removes anything upstream (keep no, or
// delete_after); if not, every folder is mail like any other.
func WithoutDisposal(ctx context.Context, sess source.Session, folders []string, removes bool) (kept []string, disposal string, err error) {
	d, ok := sess.(source.Disposer)
	if !ok || !removes {
		return folders, "", nil
	}
	if disposal, err = d.DisposalFolder(ctx); err != nil || disposal == "" {
		return folders, "", err
	}
	kept = slices.DeleteFunc(slices.Clone(folders), func(f string) bool { return policy.SameFolder(f, disposal) })
	return kept, disposal, nil
}
