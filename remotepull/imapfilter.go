package remotepull

import (
	"sync/atomic"

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
// local account; nothing for any other message (delivery.FilterFolder).
func (f *imapFilter) IMAPFilter(accountName, _ string, meta *module.MsgMetadata, header textproto.Header, _ buffer.Buffer) (string, []string, error) {
	return delivery.FilterFolder(accountName, meta, header)
}
