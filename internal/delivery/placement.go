package delivery

import (
	"errors"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"

	"github.com/foxcpp/maddy/framework/module"
)

// Placement is where and how a fetched message is stored locally, when
// that is not simply the recipients' INBOX (local_folders mirror,
// local_folder, keep_flags). maddy's delivery API has no way to say it;
// its imapsql storage asks imap_filter modules per recipient, so the
// remote_pull imap_filter (remotepull/imapfilter.go) reads the placement of
// the message being delivered from here, by maddy's message ID.
type Placement struct {
	// Folder is the local folder's name, or SpecialUse the attribute of
	// the local folder to use (\Sent...), which wins; both empty: INBOX.
	Folder     string
	SpecialUse string
	// Delimiter is the hierarchy delimiter in Folder when Folder is an
	// upstream folder's name (mirror): the imap_filter rebuilds the path
	// with the local storage's delimiter. "" takes Folder as it is
	// (local_folder names are local already).
	Delimiter string
	// Flags are set on the stored copy (the upstream copy's flags).
	Flags []string
	// Storage is where the folder is looked up or created (Target.Storage).
	Storage module.Storage
}

// StorageDelimiter is the hierarchy delimiter of maddy's imapsql storage
// (go-imap-sql's MailboxPathSep), where mirrored folders are created. The
// imap_filter asks the storage; the account uses this to tell in advance
// which upstream folders would share a local one.
const StorageDelimiter = "."

// MirrorPath rebuilds an upstream folder path with the local delimiter:
// "Work/Clients" from Gmail becomes "Work.Clients" in imapsql, the same
// tree. A local delimiter inside one part ("v1.2" under "/") becomes "_",
// so that it does not split the part into two levels; hence "a.b" and
// "a_b" upstream have one local name.
func MirrorPath(name, from, to string) string {
	if from == to || to == "" {
		return name
	}
	parts := strings.Split(name, from)
	for i, part := range parts {
		parts[i] = strings.ReplaceAll(part, to, "_")
	}
	return strings.Join(parts, to)
}

// IsZero: the recipients' INBOX, no flags.
func (p Placement) IsZero() bool { return p.Folder == "" && p.SpecialUse == "" && len(p.Flags) == 0 }

// placements holds the placement of each message in delivery, by msg ID.
var placements sync.Map

// PlacementOf returns the placement of the message being delivered with
// maddy's message ID id, if remote_pull gave it one.
func PlacementOf(id string) (Placement, bool) {
	v, ok := placements.Load(id)
	if !ok {
		return Placement{}, false
	}
	return v.(Placement), true
}

// FilterFolder is the remote_pull imap_filter's answer for one local
// account (maddy's name for it) and a message in delivery: the local
// folder and flags of its placement, the folder made if the user lacks it;
// nothing for a message remote_pull did not give a placement. It notes
// what it placed, for the message's label copies (NoteStored).
func FilterFolder(account string, meta *module.MsgMetadata, header textproto.Header) (string, []string, error) {
	p, ok := PlacementOf(meta.ID)
	if !ok {
		return "", nil, nil
	}
	if p.Folder == "" && p.SpecialUse == "" {
		NoteStored(meta.ID, account, header)
		return "", p.Flags, nil
	}
	if p.Storage == nil {
		return "", p.Flags, errors.New("remote_pull: no storage to place the message in")
	}
	u, err := p.Storage.GetOrCreateIMAPAcct(account)
	if err != nil {
		return "", p.Flags, err
	}
	folder, err := LocalFolder(p.Storage, u, p)
	if err == nil {
		NoteStored(meta.ID, account, header)
	}
	return folder, p.Flags, err
}
