package delivery

import (
	"sync"

	"github.com/foxcpp/maddy/framework/module"
)

// Placement is where and how a fetched message is stored locally, when
// that is not simply the recipients' INBOX (local_folders mirror,
// local_folder, keep_flags). maddy's delivery API has no way to say it;
// its imapsql storage asks imap_filter modules per recipient, so the
// remote_pull imap_filter (module/imapfilter.go) reads the placement of
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
