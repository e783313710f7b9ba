package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/module/source"
)

// How delivered messages leave an upstream folder (keep no), in order of
// preference. None of them can touch a message remote_pull did not name.
const (
	// disposeExpunge: UID STORE \Deleted, then UID EXPUNGE of exactly
	// those UIDs (UIDPLUS, or IMAP4rev2).
	disposeExpunge = "deleted (UID EXPUNGE)"
	// disposeMove: without UIDPLUS but with MOVE, UID MOVE to the folder
	// marked \Trash (SPECIAL-USE). A plain EXPUNGE could take messages
	// other clients flagged.
	disposeMove = "moved to the Trash folder (the server lacks UIDPLUS; UID MOVE)"
	// disposeFlag: neither: flagged \Deleted only, and left for another
	// client to expunge; the upstream folder grows.
	disposeFlag = "flagged \\Deleted but not removed (the server lacks UIDPLUS and MOVE, or has no Trash folder; move_to names one): the upstream folder grows until another client expunges it"
	// move_to: UID MOVE there, or UID COPY, \Deleted and UID EXPUNGE of
	// exactly those UIDs; never a bare EXPUNGE.
	disposeMoveTo   = "moved to the move_to folder"
	disposeCopyTo   = "copied to the move_to folder, then deleted (UID COPY, UID EXPUNGE)"
	disposeMoveNone = "left in place: move_to needs MOVE or UIDPLUS, and the server has neither"
)

// disposal decides, once per session, how delivered messages are removed,
// and where the Trash is when they are moved.
func (s *Session) disposal(ctx context.Context) (how, trash string, err error) {
	if s.dispose != "" {
		return s.dispose, s.trash, nil
	}
	caps := s.c.Caps()
	uidplus := caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapIMAP4rev2)
	switch {
	case s.cfg.MoveTo != "" && (caps.Has(imap.CapMove) || caps.Has(imap.CapIMAP4rev2)):
		s.dispose, s.trash = disposeMoveTo, s.cfg.MoveTo
	case s.cfg.MoveTo != "" && uidplus:
		s.dispose, s.trash = disposeCopyTo, s.cfg.MoveTo
	case s.cfg.MoveTo != "":
		s.dispose = disposeMoveNone
	case uidplus:
		s.dispose = disposeExpunge
	case caps.Has(imap.CapMove):
		if s.trash, err = s.findTrash(ctx); err != nil {
			return "", "", err
		}
		s.dispose = disposeFlag
		if s.trash != "" {
			s.dispose = disposeMove
		}
	default:
		s.dispose = disposeFlag
	}
	if s.dispose != disposeExpunge && s.dispose != disposeMoveTo && s.dispose != disposeCopyTo {
		s.cfg.Warn("keep no: delivered messages are " + s.dispose)
	}
	return s.dispose, s.trash, nil
}

// findTrash returns the folder the server marks \Trash, or "".
func (s *Session) findTrash(ctx context.Context) (string, error) {
	var trash string
	err := s.list(ctx, func(mb *imap.ListData) {
		if trash == "" && slices.Contains(mb.Attrs, imap.MailboxAttrTrash) {
			trash = mb.Mailbox
		}
	})
	if err != nil {
		return "", fmt.Errorf("looking for the Trash folder: %w", err)
	}
	return trash, nil
}

// keptFlags are the flags worth carrying to the delivered copy: all but
// \Recent (session state) and \Deleted (another client's intent here).
func keptFlags(flags []imap.Flag) []string {
	var out []string
	for _, f := range flags {
		if f != imap.FlagDeleted && f != "\\Recent" {
			out = append(out, string(f))
		}
	}
	return out
}

// specialUses are the SPECIAL-USE attributes a folder can be mirrored by.
var specialUses = []imap.MailboxAttr{imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrJunk,
	imap.MailboxAttrTrash, imap.MailboxAttrArchive}

// folderInfo is what LIST said of a folder.
type folderInfo struct {
	specialUse string // SPECIAL-USE attribute, or ""
	delim      string // hierarchy delimiter, or "" for a flat name
}

// folderInfo is LIST's word on this folder (one LIST per session,
// remembered).
func (m *Mailbox) folderInfo(ctx context.Context) (folderInfo, error) {
	if m.s.folders == nil {
		folders := map[string]folderInfo{}
		err := m.s.list(ctx, func(mb *imap.ListData) {
			var info folderInfo
			if mb.Delim != 0 {
				info.delim = string(mb.Delim)
			}
			for _, a := range mb.Attrs {
				if slices.Contains(specialUses, a) {
					info.specialUse = string(a)
				}
			}
			folders[mb.Mailbox] = info
		})
		if err != nil {
			return folderInfo{}, fmt.Errorf("LIST: %w", err)
		}
		m.s.folders = folders
	}
	return m.s.folders[m.name], nil
}

// SpecialUse is the folder's SPECIAL-USE attribute, or "".
func (m *Mailbox) SpecialUse(ctx context.Context) (string, error) {
	info, err := m.folderInfo(ctx)
	return info.specialUse, err
}

// HierarchyDelimiter is the upstream's hierarchy delimiter in this
// folder's name ("/", "."), or "" if the server has none.
func (m *Mailbox) HierarchyDelimiter(ctx context.Context) (string, error) {
	info, err := m.folderInfo(ctx)
	return info.delim, err
}

// Folders lists the selectable folders (source.FolderLister).
func (s *Session) Folders(ctx context.Context) ([]string, error) {
	var out []string
	err := s.list(ctx, func(mb *imap.ListData) {
		if !slices.Contains(mb.Attrs, imap.MailboxAttrNoSelect) && !slices.Contains(mb.Attrs, imap.MailboxAttrNonExistent) {
			out = append(out, mb.Mailbox)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	return out, nil
}

// list runs LIST "" "*" (with SPECIAL-USE attributes where offered) and
// hands each folder to fn, streaming.
func (s *Session) list(ctx context.Context, fn func(*imap.ListData)) error {
	return s.command(ctx, func() error {
		opts := &imap.ListOptions{ReturnSpecialUse: s.c.Caps().Has(imap.CapSpecialUse)}
		cmd := s.c.List("", "*", opts)
		n := 0
		for {
			mb := cmd.Next()
			if mb == nil {
				break
			}
			// A LIST reply is kept whole: bounded (bounds.go). The session
			// is given up rather than drained.
			if n++; n > maxFolders {
				s.raw.Close()
				return fmt.Errorf("%w: more than %d folders", errOversized, maxFolders)
			}
			if len(mb.Mailbox) > maxFolderName {
				s.raw.Close()
				return fmt.Errorf("%w: a folder name of %d bytes, more than %d", errOversized, len(mb.Mailbox), maxFolderName)
			}
			fn(mb)
		}
		return cmd.Close()
	})
}

// DisposalFolder is the folder removed messages are moved to (move_to, or
// the Trash of a server without UIDPLUS), or "" (source.Disposer).
func (s *Session) DisposalFolder(ctx context.Context) (string, error) {
	if s.cfg.MoveTo != "" {
		return s.cfg.MoveTo, nil
	}
	how, trash, err := s.disposal(ctx)
	if how != disposeMove {
		trash = ""
	}
	return trash, err
}

// Disposal says how delivered messages leave this folder, for 'check'.
func (m *Mailbox) Disposal(ctx context.Context) (string, error) {
	how, trash, err := m.s.disposal(ctx)
	switch {
	case how == disposeMove && trash == m.name:
		how = disposeFlag
	case (how == disposeMoveTo || how == disposeCopyTo) && trash == m.name:
		how = disposeMoveNone // the move_to folder itself: its messages stay
	}
	return how, err
}

// Remove takes the delivered messages out of the folder: UID EXPUNGE of
// exactly them, or UID MOVE to the Trash; or, where neither is safe, only
// flags them (and reports none removed). A command the server refuses
// (NO, BAD) is a source.FolderError: the connection is fine, the account's
// other work goes on.
func (m *Mailbox) Remove(ctx context.Context, uids []string) ([]string, error) {
	removed, err := m.remove(ctx, uids)
	return removed, refused(err)
}

func (m *Mailbox) remove(ctx context.Context, uids []string) ([]string, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	set, err := uidSet(uids)
	if err != nil {
		return nil, err
	}
	how, err := m.Disposal(ctx)
	if err != nil {
		return nil, err
	}
	switch how {
	case disposeMove, disposeMoveTo:
		// MOVE is offered: no COPY/EXPUNGE fallback.
		if err := m.toFolder(ctx, set, true); err != nil {
			return nil, fmt.Errorf("UID MOVE to %q: %w", m.s.trash, err)
		}
		return uids, nil
	case disposeMoveNone:
		return nil, nil
	case disposeCopyTo:
		if err := m.toFolder(ctx, set, false); err != nil {
			return nil, fmt.Errorf("UID COPY to %q: %w", m.s.trash, err)
		}
	}
	err = m.s.command(ctx, func() error {
		return m.s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("flagging \\Deleted: %w", err)
	}
	if how == disposeFlag {
		return nil, nil
	}
	err = m.s.command(ctx, func() error {
		_, err := m.s.c.UIDExpunge(set).Collect()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("UID EXPUNGE: %w", err)
	}
	return uids, nil
}

// toFolder is UID MOVE (or UID COPY) of set into the disposal folder.
// When the server says the move_to folder must be created first
// ([TRYCREATE]), it is created and the command tried once more.
func (m *Mailbox) toFolder(ctx context.Context, set imap.UIDSet, move bool) error {
	run := func() error {
		return m.s.command(ctx, func() error {
			var err error
			if move {
				_, err = m.s.c.Move(set, m.s.trash).Wait()
			} else {
				_, err = m.s.c.Copy(set, m.s.trash).Wait()
			}
			return err
		})
	}
	err := run()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeTryCreate || m.s.trash != m.s.cfg.MoveTo {
		return err
	}
	if cerr := m.s.command(ctx, func() error { return m.s.c.Create(m.s.trash, nil).Wait() }); cerr != nil {
		return fmt.Errorf("%w; creating the move_to folder: %w", err, cerr)
	}
	m.s.cfg.Warn(fmt.Sprintf("keep no: created the move_to folder %q upstream", m.s.trash))
	return run()
}

// refused makes an answer of the server's (NO, BAD) a FolderError, about
// this folder only; a connection error stays as it is.
func refused(err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return &source.FolderError{Err: err}
	}
	return err
}

// RemovesNothing: delivered messages stay in this folder untouched
// (move_to on a server without MOVE or UIDPLUS, or the move_to folder
// itself).
func (m *Mailbox) RemovesNothing() bool {
	return m.s.dispose == disposeMoveNone || ((m.s.dispose == disposeMoveTo || m.s.dispose == disposeCopyTo) && m.s.trash == m.name)
}

// MarkSeen sets \Seen on the messages (mark_seen).
func (m *Mailbox) MarkSeen(ctx context.Context, uids []string) error {
	set, err := uidSet(uids)
	if err != nil {
		return err
	}
	err = m.s.command(ctx, func() error {
		return m.s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	})
	if err != nil {
		return refused(fmt.Errorf("flagging \\Seen: %w", err))
	}
	return nil
}

// FlagOnly: delivered messages can only be flagged \Deleted here, so one
// already flagged needs nothing more. Decided by Disposal; until then
// (no removal yet this session) judged from the capabilities alone.
func (m *Mailbox) FlagOnly() bool {
	if m.s.dispose != "" {
		return m.s.dispose == disposeFlag || (m.s.dispose == disposeMove && m.s.trash == m.name)
	}
	caps := m.s.c.Caps()
	return !caps.Has(imap.CapUIDPlus) && !caps.Has(imap.CapIMAP4rev2) && !caps.Has(imap.CapMove)
}
