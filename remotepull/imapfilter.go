package remotepull

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-message/textproto"
	"github.com/foxcpp/maddy/framework/buffer"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/delivery"
)

// The remote_pull imap_filter puts fetched messages where their account
// says (local_folders mirror, local_folder, keep_flags). maddy's imapsql
// storage asks its imap_filter modules, per recipient, for a folder and
// flags; this one answers from the message's delivery.Placement and
// creates the folder when the user lacks it, so that imapsql does not fall
// back to INBOX. Configured in the storage block:
//
//	storage.imapsql local_mailboxes {
//	    ...
//	    imap_filter { remote_pull }
//	}

func init() { module.Register("imap.filter.remote_pull", newIMAPFilter) }

// filterConfigured is set when a storage has the filter, so that an account
// that needs it can refuse to start without it.
var filterConfigured atomic.Bool

type imapFilter struct{ instName string }

func newIMAPFilter(_, instName string, _, _ []string) (module.Module, error) {
	return &imapFilter{instName: instName}, nil
}

func (f *imapFilter) Init(*maddycfg.Map) error {
	filterConfigured.Store(true)
	return nil
}

func (f *imapFilter) Name() string         { return "imap.filter.remote_pull" }
func (f *imapFilter) InstanceName() string { return f.instName }

// IMAPFilter returns the folder and flags of a fetched message for one
// local account; nothing for any other message.
func (f *imapFilter) IMAPFilter(accountName, _ string, meta *module.MsgMetadata, _ textproto.Header, _ buffer.Buffer) (string, []string, error) {
	p, ok := delivery.PlacementOf(meta.ID)
	if !ok {
		return "", nil, nil
	}
	if p.Folder == "" && p.SpecialUse == "" {
		return "", p.Flags, nil
	}
	if p.Storage == nil {
		return "", p.Flags, errors.New("remote_pull: no storage to place the message in")
	}
	u, err := p.Storage.GetOrCreateIMAPAcct(accountName)
	if err != nil {
		return "", p.Flags, err
	}
	if p.Delimiter != "" {
		delim, err := localDelimiter(p.Storage, u)
		if err != nil {
			return "", p.Flags, err
		}
		p.Folder = delivery.MirrorPath(p.Folder, p.Delimiter, delim)
	}
	folder, err := localFolder(u, p)
	return folder, p.Flags, err
}

// localDelims caches each storage's hierarchy delimiter, which never
// changes (imapsql: ".").
var localDelims sync.Map // module.Storage → string

// localDelimiter is the hierarchy delimiter of the storage's folder names,
// or "" if it has none.
func localDelimiter(s module.Storage, u backend.User) (string, error) {
	if d, ok := localDelims.Load(s); ok {
		return d.(string), nil
	}
	infos, err := u.ListMailboxes(false)
	if err != nil {
		return "", err
	}
	for _, info := range infos {
		if info.Delimiter != "" {
			localDelims.Store(s, info.Delimiter)
			return info.Delimiter, nil
		}
	}
	return "", nil
}

// specialCreator is go-imap-sql's user, which creates special-use folders.
type specialCreator interface {
	CreateMailboxSpecial(name, attr string) error
}

// localFolder finds the user's folder for p, creating it if needed: the
// folder with p.SpecialUse if there is one, else p.Folder.
func localFolder(u backend.User, p delivery.Placement) (string, error) {
	if p.SpecialUse != "" {
		infos, err := u.ListMailboxes(false)
		if err != nil {
			return "", err
		}
		for _, info := range infos {
			if slices.Contains(info.Attributes, p.SpecialUse) {
				return info.Name, nil
			}
		}
	}
	name := p.Folder
	if name == "" {
		return "", fmt.Errorf("remote_pull: no folder name for %s", p.SpecialUse)
	}
	var err error
	if sc, ok := u.(specialCreator); ok && p.SpecialUse != "" {
		err = sc.CreateMailboxSpecial(name, p.SpecialUse)
	} else {
		err = u.CreateMailbox(name)
	}
	if err != nil && !errors.Is(err, backend.ErrMailboxAlreadyExists) {
		return "", fmt.Errorf("remote_pull: creating folder %q: %w", name, err)
	}
	return name, nil
}
