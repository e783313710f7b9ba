package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/internal/source"
)

// removal decides, once per session, how delivered messages are removed
// and where they are moved (the same for every folder but the one they
// are moved to: removalIn).
func (s *Session) removal(ctx context.Context) (source.Removal, error) {
	if s.decided != nil {
		return *s.decided, nil
	}
	caps := s.c.Caps()
	uidplus := caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapIMAP4rev2)
	var r source.Removal
	switch {
	case s.cfg.MoveTo != "" && (caps.Has(imap.CapMove) || caps.Has(imap.CapIMAP4rev2)):
		r = source.Removal{Mode: source.RemoveMoveTo, Folder: s.cfg.MoveTo}
	case s.cfg.MoveTo != "" && uidplus:
		r = source.Removal{Mode: source.RemoveCopyTo, Folder: s.cfg.MoveTo}
	case s.cfg.MoveTo != "":
		r.Mode = source.RemoveNothing
	case uidplus:
		r.Mode = source.RemoveExpunge
	case caps.Has(imap.CapMove):
		trash, err := s.findTrash(ctx)
		if err != nil {
			return source.Removal{}, err
		}
		r.Mode = source.RemoveFlagOnly
		if trash != "" {
			r = source.Removal{Mode: source.RemoveToTrash, Folder: trash}
		}
	default:
		r.Mode = source.RemoveFlagOnly
	}
	if r.Mode != source.RemoveExpunge && r.Mode != source.RemoveMoveTo && r.Mode != source.RemoveCopyTo {
		s.cfg.Warn("keep no: delivered messages are " + r.Mode.String())
	}
	s.decided = &r
	return r, nil
}

// removalIn is the session's removal r as it applies to folder: messages
// cannot be moved into the folder they are in, so in the disposal folder
// itself they are only flagged (the Trash) or left alone (move_to).
func removalIn(r source.Removal, folder string) source.Removal {
	if r.Folder == "" || r.Folder != folder {
		return r
	}
	switch r.Mode {
	case source.RemoveToTrash:
		r.Mode = source.RemoveFlagOnly
	case source.RemoveMoveTo, source.RemoveCopyTo:
		r.Mode = source.RemoveNothing
	}
	return r
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

// DisposalFolder is the folder removed messages are moved to (move_to, or
// the Trash of a server without UIDPLUS), or "" (source.Disposer).
func (s *Session) DisposalFolder(ctx context.Context) (string, error) {
	if s.cfg.MoveTo != "" {
		return s.cfg.MoveTo, nil
	}
	r, err := s.removal(ctx)
	if r.Mode != source.RemoveToTrash {
		return "", err
	}
	return r.Folder, err
}

// Disposal says how delivered messages leave this folder
// (source.MailboxDisposer).
func (m *Mailbox) Disposal(ctx context.Context) (source.Removal, error) {
	r, err := m.s.removal(ctx)
	return removalIn(r, m.name), err
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
	r, err := m.Disposal(ctx)
	if err != nil {
		return nil, err
	}
	switch r.Mode {
	case source.RemoveToTrash, source.RemoveMoveTo:
		// MOVE is offered: no COPY/EXPUNGE fallback.
		if err := m.toFolder(ctx, set, r.Folder, true); err != nil {
			return nil, fmt.Errorf("UID MOVE to %q: %w", r.Folder, err)
		}
		return uids, nil
	case source.RemoveNothing:
		return nil, nil
	case source.RemoveCopyTo:
		if err := m.toFolder(ctx, set, r.Folder, false); err != nil {
			return nil, fmt.Errorf("UID COPY to %q: %w", r.Folder, err)
		}
	}
	err = m.s.command(ctx, func() error {
		return m.s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("flagging \\Deleted: %w", err)
	}
	if r.Mode == source.RemoveFlagOnly {
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
func (m *Mailbox) toFolder(ctx context.Context, set imap.UIDSet, folder string, move bool) error {
	run := func() error {
		return m.s.command(ctx, func() error {
			var err error
			if move {
				_, err = m.s.c.Move(set, folder).Wait()
			} else {
				_, err = m.s.c.Copy(set, folder).Wait()
			}
			return err
		})
	}
	err := run()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeTryCreate || folder != m.s.cfg.MoveTo {
		return err
	}
	if cerr := m.s.command(ctx, func() error { return m.s.c.Create(folder, nil).Wait() }); cerr != nil {
		return fmt.Errorf("%w; creating the move_to folder: %w", err, cerr)
	}
	m.s.cfg.Warn(fmt.Sprintf("keep no: created the move_to folder %q upstream", folder))
	return run()
}

// refused makes an answer of the server's (NO, BAD) a FolderError, about
// this folder only; a connection error stays as it is.
func refused(err error) error {
	var imapErr *imap.Error
	if errors.As(err, &imapErr) && !source.IsLimit(err) {
		return &source.FolderError{Err: err}
	}
	return err
}
