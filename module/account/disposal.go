package account

import (
	"context"
	"slices"
	"strings"

	"github.com/remote-pull/remote_pull/module/source"
)

// SameFolder reports whether two folder names may name one upstream
// folder, as far as can be told without asking the server: INBOX is INBOX
// in any case (CanonicalFolder); a trailing hierarchy delimiter changes
// nothing; and the INBOX part of a name below it is taken in any case too
// ("inbox.Archive", "INBOX/Archive"): RFC 3501 leaves that to the server,
// and Dovecot, Courier and Cyrus, whose personal folders live under an
// "INBOX." prefix, ignore it. Used only to keep the disposal folder out of
// the polled set, where a false match costs less than a duplicate.
func SameFolder(a, b string) bool { return canonicalFolder(a) == canonicalFolder(b) }

func canonicalFolder(name string) string {
	if len(name) > 1 {
		name = strings.TrimRight(name, "./")
	}
	if len(name) > 5 && strings.EqualFold(name[:5], "INBOX") && (name[5] == '.' || name[5] == '/') {
		name = "INBOX" + name[5:]
	}
	return CanonicalFolder(name)
}

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
	kept = slices.DeleteFunc(slices.Clone(folders), func(f string) bool { return SameFolder(f, disposal) })
	return kept, disposal, nil
}
