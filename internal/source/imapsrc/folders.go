package imapsrc

import (
	"context"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// specialUses are the SPECIAL-USE attributes a folder can be mirrored by.
var specialUses = []imap.MailboxAttr{imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrJunk,
	imap.MailboxAttrTrash, imap.MailboxAttrArchive}

// folderInfo is what LIST said of a folder.
type folderInfo struct {
	specialUse string // SPECIAL-USE attribute, or ""
	delim      string // hierarchy delimiter, or "" for a flat name
	// virtual: a view of messages kept in other folders (\All, \Flagged,
	// \Important: Gmail's All Mail, Starred, Important).
	virtual bool
	// label is the Gmail label the folder shows (`\Inbox`, `\Sent`,
	// `\Starred`, a user label...), "" for All Mail.
	label string
}

// virtualUses are the attributes of folders that are views.
var virtualUses = []imap.MailboxAttr{imap.MailboxAttrAll, imap.MailboxAttrFlagged, imap.MailboxAttrImportant}

// gmailLabels are the Gmail labels of the folders with these attributes.
var gmailLabels = map[imap.MailboxAttr]string{
	imap.MailboxAttrSent: `\Sent`, imap.MailboxAttrDrafts: `\Draft`, imap.MailboxAttrJunk: `\Spam`,
	imap.MailboxAttrTrash: `\Trash`, imap.MailboxAttrFlagged: `\Starred`, imap.MailboxAttrImportant: `\Important`,
	imap.MailboxAttrAll: "",
}

// folderInfo is LIST's word on this folder (one LIST per session,
// remembered).
func (m *Mailbox) folderInfo(ctx context.Context) (folderInfo, error) {
	if m.s.folders == nil {
		folders := map[string]folderInfo{}
		err := m.s.list(ctx, func(mb *imap.ListData) {
			info := folderInfo{label: mb.Mailbox}
			if mb.Mailbox == "INBOX" {
				info.label = `\Inbox`
			}
			if mb.Delim != 0 {
				info.delim = string(mb.Delim)
			}
			for _, a := range mb.Attrs {
				if slices.Contains(specialUses, a) {
					info.specialUse = string(a)
				}
				if slices.Contains(virtualUses, a) {
					info.virtual = true
				}
				if l, ok := gmailLabels[a]; ok {
					info.label = l
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

// Virtual: the folder is a view of messages kept in other folders (\All,
// \Flagged, \Important), which local_folders mirror does not make locally.
func (m *Mailbox) Virtual(ctx context.Context) (bool, error) {
	info, err := m.folderInfo(ctx)
	return info.virtual, err
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
