package account

import (
	"context"

	"github.com/remote-pull/remote_pull/internal/source"
)

// A mailbox listed a page at a time (source.Paged: an mbox file) is
// worked through one page per pass, the account polling again at once
// while pages are left. Where the next page starts is kept in the ledger,
// so that a restart resumes there; a page is passed only once its pass
// did all it decided for it; a folder's first sync (first_sync, max_age)
// lasts until its last page; a retry, which drops the kept cursor, starts
// the folder over.

// resumePages puts the folder's kept cursor back before it is listed.
func (f *folderPass) resumePages(ctx context.Context) error {
	pg, ok := f.mb.(source.Paged)
	if !ok {
		return nil
	}
	cursor, err := f.a.s.Ledger.PageCursor(ctx, f.a.s.Name, f.name)
	if err != nil {
		return local(err)
	}
	f.pageCursor = cursor
	pg.SetCursor(cursor)
	return nil
}

// pagesLeft reports whether the folder's listing stopped short of the end.
func (f *folderPass) pagesLeft() bool {
	pg, ok := f.mb.(source.Paged)
	return ok && pg.PagesLeft()
}

// firstSyncGoesOn: this pass is a first sync whose folder has pages
// left, so the folder is not recorded yet (its next page is first sync
// too).
func (f *folderPass) firstSyncGoesOn() bool { return !f.seen && f.pagesLeft() }

// pageDone moves a paged folder on to its next page, unless the pass
// left some of this one for later (max_messages_per_poll), and asks for
// another poll at once while pages are left. A cursor a retry dropped
// meanwhile stays dropped.
func (f *folderPass) pageDone(ctx context.Context) error {
	pg, ok := f.mb.(source.Paged)
	if !ok || f.res.More {
		return nil
	}
	pg.Advance()
	// A finished file's cursor stays put: no ledger write at every poll.
	if next := pg.Cursor(); next != f.pageCursor {
		if _, err := f.a.s.Ledger.SwapPageCursor(ctx, f.a.s.Name, f.name, f.pageCursor, next); err != nil {
			return local(err)
		}
	}
	f.res.More = pg.PagesLeft()
	f.a.unlisted(pg.BytesLeft())
	return nil
}
