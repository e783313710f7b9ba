package imapsrc

import (
	"context"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
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
	disposeFlag = "flagged \\Deleted but not removed (the server lacks UIDPLUS and MOVE, or has no Trash folder): the upstream folder grows until another client expunges it"
)

// disposal decides, once per session, how delivered messages are removed,
// and where the Trash is when they are moved.
func (s *Session) disposal(ctx context.Context) (how, trash string, err error) {
	if s.dispose != "" {
		return s.dispose, s.trash, nil
	}
	caps := s.c.Caps()
	switch {
	case caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapIMAP4rev2):
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
	if s.dispose != disposeExpunge {
		s.cfg.Warn("keep no: delivered messages are " + s.dispose)
	}
	return s.dispose, s.trash, nil
}

// findTrash returns the folder the server marks \Trash, or "".
func (s *Session) findTrash(ctx context.Context) (string, error) {
	var trash string
	err := s.command(ctx, func() error {
		opts := &imap.ListOptions{ReturnSpecialUse: s.c.Caps().Has(imap.CapSpecialUse)}
		cmd := s.c.List("", "*", opts)
		for {
			mb := cmd.Next()
			if mb == nil {
				break
			}
			if trash == "" && slices.Contains(mb.Attrs, imap.MailboxAttrTrash) {
				trash = mb.Mailbox
			}
		}
		return cmd.Close()
	})
	if err != nil {
		return "", fmt.Errorf("looking for the Trash folder: %w", err)
	}
	return trash, nil
}

// Disposal says how delivered messages leave this folder, for 'check'.
func (m *Mailbox) Disposal(ctx context.Context) (string, error) {
	how, trash, err := m.s.disposal(ctx)
	if how == disposeMove && trash == m.name {
		how = disposeFlag
	}
	return how, err
}

// Remove takes the delivered messages out of the folder: UID EXPUNGE of
// exactly them, or UID MOVE to the Trash; or, where neither is safe, only
// flags them (and reports none removed).
func (m *Mailbox) Remove(ctx context.Context, uids []string) ([]string, error) {
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
	if how == disposeMove {
		err = m.s.command(ctx, func() error {
			_, err := m.s.c.Move(set, m.s.trash).Wait() // MOVE is offered: no COPY/EXPUNGE fallback
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("UID MOVE to %q: %w", m.s.trash, err)
		}
		return uids, nil
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
