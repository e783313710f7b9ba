package account

import "github.com/remote-pull/remote_pull/internal/source"

// A mailbox listed a page at a time (source.Paged: an mbox file) is
// worked through one page per pass, the account polling again at once
// while pages are left. A page is advanced past only once its pass did
// all it decided for it; a folder's first sync (first_sync, max_age)
// lasts until its last page.

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
// another poll at once while pages are left.
func (f *folderPass) pageDone() {
	pg, ok := f.mb.(source.Paged)
	if !ok || f.res.More {
		return
	}
	pg.Advance()
	f.res.More = pg.PagesLeft()
	f.a.unlisted(pg.BytesLeft())
}

// rewindAfterRetry starts a paged folder over from its first page when
// its ledger generation moved ('remote-pull retry' or reconcile made
// messages on pages already passed eligible again).
func (f *folderPass) rewindAfterRetry() {
	pg, ok := f.mb.(source.Paged)
	if !ok {
		return
	}
	f.a.mu.Lock()
	defer f.a.mu.Unlock()
	if f.a.pageGeneration == nil {
		f.a.pageGeneration = map[string]int64{}
	}
	if gen, ok := f.a.pageGeneration[f.name]; ok && gen != f.prev.Generation {
		pg.Rewind()
	}
	f.a.pageGeneration[f.name] = f.prev.Generation
}
