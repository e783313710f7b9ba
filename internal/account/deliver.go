package account

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// DeliveryTimeout bounds one message's trip through maddy. It does not
// follow the poll's cancellation: at shutdown the message in flight is
// finished and recorded rather than cut off after Commit.
const DeliveryTimeout = 30 * time.Second

// placement is where the messages of an upstream folder go locally:
// local_folder's mapping, or with local_folders mirror the same-named
// folder, or for a SPECIAL-USE folder the local folder with that
// attribute (named as upstream if the user has none); INBOX otherwise.
// A mirrored name keeps the upstream's hierarchy delimiter, for the
// imap_filter to translate.
func (a *Account) placement(ctx context.Context, mb source.Mailbox, folder string) (delivery.Placement, error) {
	var p delivery.Placement
	if local, ok := a.s.LocalFolder[folder]; ok {
		p.Folder = local
		return p, nil
	}
	if !a.s.MirrorFolders || strings.EqualFold(folder, "INBOX") {
		return p, nil
	}
	p.Folder = folder
	if su, ok := mb.(source.SpecialUser); ok {
		use, err := su.SpecialUse(ctx)
		if err != nil {
			return p, err
		}
		p.SpecialUse = use
	}
	if d, ok := mb.(source.Delimited); ok {
		delim, err := d.HierarchyDelimiter(ctx)
		if err != nil {
			return p, err
		}
		p.Delimiter = delim
	}
	return p, nil
}

// ensureFolder makes the folder's local counterpart under local_folders
// mirror, once per folder in the account's life, so that an upstream
// folder that is empty (or whose messages all stay upstream) exists
// locally too. A failure is logged and tried again at the next poll; the
// folder's messages are fetched all the same (their delivery makes the
// folder).
func (f *folderPass) ensureFolder(ctx context.Context) error {
	a := f.a
	if !a.s.MirrorFolders {
		return nil
	}
	a.mu.Lock()
	done := a.ensured[f.name]
	a.mu.Unlock()
	if done {
		return nil
	}
	place, err := a.placement(ctx, f.mb, f.name)
	if err != nil {
		return err
	}
	virtual := false
	if v, ok := f.mb.(source.VirtualFolder); ok {
		if virtual, err = v.Virtual(ctx); err != nil {
			return err
		}
	}
	if virtual {
		// Gmail's All Mail, Starred, Important: views, not folders.
	} else if err := a.s.Target.EnsureFolder(place); err != nil {
		a.s.Log.Error("making the local folder of an upstream folder", err, "folder", f.name)
		return nil
	}
	a.mu.Lock()
	if a.ensured == nil {
		a.ensured = map[string]bool{}
	}
	a.ensured[f.name] = true
	a.mu.Unlock()
	return nil
}

// mirrorClash is a folder error when local_folders mirror would put the
// folder's messages in the same local folder as another folder of the
// poll ("a.b" and "a_b" upstream, a "." inside a part becoming "_"):
// neither is fetched, rather than two folders silently merged, until a
// local_folder maps one of them elsewhere. Names are compared as the
// storage does, case-sensitively but for INBOX, which is never mirrored.
func (p *poll) mirrorClash(ctx context.Context, mb source.Mailbox, folder string) error {
	a := p.a
	if _, mapped := a.s.LocalFolder[folder]; mapped || !a.s.MirrorFolders || folder == "INBOX" {
		return nil
	}
	var delim string
	if d, ok := mb.(source.Delimited); ok {
		var err error
		if delim, err = d.HierarchyDelimiter(ctx); err != nil {
			return err // as placement's: the LIST failed
		}
	}
	names, ok := p.mirrored[delim]
	if !ok {
		names = map[string][]string{}
		for _, f := range p.folders {
			if _, mapped := a.s.LocalFolder[f]; !mapped && f != "INBOX" {
				local := delivery.MirrorPath(f, delim, delivery.StorageDelimiter)
				names[local] = append(names[local], f)
			}
		}
		if p.mirrored == nil {
			p.mirrored = map[string]map[string][]string{}
		}
		p.mirrored[delim] = names
	}
	local := delivery.MirrorPath(folder, delim, delivery.StorageDelimiter)
	for _, other := range names[local] {
		if other != folder {
			return &source.FolderError{Err: fmt.Errorf("local_folders mirror would put folders %q and %q in one local folder, %q: "+
				"neither is fetched until local_folder maps one of them elsewhere", folder, other, local)}
		}
	}
	return nil
}

// recordIfDuplicate records entry as a duplicate if the account has the
// message id identifies delivered under another identity (dedupe).
func (a *Account) recordIfDuplicate(ctx context.Context, key ledger.MailboxKey, entry ledger.Entry, id ledger.Identity) (bool, error) {
	dup, err := a.s.Ledger.DeliveredElsewhere(ctx, key, entry.UID, id)
	if err != nil || !dup {
		return false, local(err)
	}
	// A copy the admin said was none (retry --duplicates) is delivered.
	// Asked only here, where a copy was found: rare, one lookup.
	if st, err := a.s.Ledger.StateOf(ctx, key, entry.UID); err != nil || st == ledger.Retry {
		return false, local(err)
	}
	entry.State = ledger.Duplicate
	if err := a.s.Ledger.Record(ctx, key, entry); err != nil {
		return false, local(err)
	}
	messagesTotal.WithLabelValues(a.s.Name, string(ledger.Duplicate)).Inc()
	a.s.Log.DebugMsg("already delivered under another identity (folder or UID): recorded as a duplicate", "folder", key.Mailbox, "uid", entry.UID)
	return true, nil
}

// dedupeByGlobalID records as duplicates, without downloading them, the
// messages of uids whose global ID (Gmail's X-GM-MSGID) the account has
// delivered from another folder, and returns the others.
//
// A message with Gmail labels (labelled) is looked up so whatever dedupe
// says: it is downloaded once and placed in every label's folder, so a
// sighting in another label's folder is a copy; the labels it has now and
// has no local copy for yet (added upstream since) are placed then,
// without a download (placeMissing).
func (f *folderPass) dedupeByGlobalID(ctx context.Context, uids []string) ([]string, error) {
	a := f.a
	rest := uids[:0:0]
	for _, uid := range uids {
		m, _ := f.listed(uid)
		if m.GlobalID() != "" && (a.s.Dedupe || a.labelled(m)) {
			dup, err := a.recordIfDuplicate(ctx, f.key, ledger.Entry{UID: uid, Size: m.Size, GlobalID: m.GlobalID()},
				ledger.Identity{GlobalID: m.GlobalID()})
			if err != nil {
				return nil, err
			}
			if dup {
				f.setState(uid, ledger.Duplicate)
				a.fetched(m.Size) // done, for the progress, without a download
				if a.labelled(m) {
					f.placeMissing(ctx, m)
				}
				continue
			}
		}
		rest = append(rest, uid)
	}
	return rest, nil
}

// fetchAll fetches and delivers uids in batches. Each batch is made
// durable before anything is done upstream, and with keep yes too: a
// ledger entry lost to a power cut means a duplicate. Then its delivered
// messages are marked \Seen (mark_seen) or removed (keep no), unless the
// server refused that here already.
func (f *folderPass) fetchAll(ctx context.Context, uids []string) error {
	a := f.a
	place, err := a.placement(ctx, f.mb, f.name)
	if err != nil {
		return err
	}
	for batch := range slices.Chunk(uids, batchSize) {
		// What the download budget allows now; the pass ends once that
		// is done if it is not the whole batch.
		all := batch
		batch = f.allowed(batch)
		delivered, err := f.fetchBatch(ctx, batch, place)
		if err != nil {
			return err
		}
		// A removal makes the batch durable itself, first.
		removing := !a.s.Keep && len(delivered) > 0 && f.refused == nil
		if !removing {
			if err := a.durable(ctx); err != nil {
				return local(err)
			}
		}
		if sm, ok := f.mb.(source.SeenMarker); ok && a.s.Keep && a.s.MarkSeen && len(delivered) > 0 && f.refused == nil {
			if err := f.onlyRefused(sm.MarkSeen(ctx, delivered)); err != nil {
				return err
			}
		}
		if removing {
			if err := f.onlyRefused(f.remove(ctx, delivered)); err != nil {
				return err
			}
		}
		if len(batch) < len(all) {
			return a.pacedFor(f.listedSize(all[len(batch)]))
		}
	}
	return nil
}

// fetchBatch streams one batch into maddy and records each outcome. It
// returns the UIDs delivered and recorded.
func (f *folderPass) fetchBatch(ctx context.Context, uids []string, place delivery.Placement) ([]string, error) {
	a, res := f.a, &f.res
	var delivered []string
	uids, err := f.dedupeByGlobalID(ctx, uids)
	if err != nil || len(uids) == 0 {
		return nil, err
	}
	// The budget counts the batch before it is asked for, whatever
	// becomes of it: a download cut short, or a crash before the count,
	// must not let the provider's count run ahead of ours.
	if err := a.spent(ctx, f.sizeOf(uids)); err != nil {
		return nil, err
	}
	wanted := make(map[string]bool, len(uids))
	for _, uid := range uids {
		wanted[uid] = true
	}
	spool := func(body io.Reader) (source.Spooled, error) {
		return a.s.Target.Spool(body)
	}
	deliver := func(uid string, sp source.Spooled) error {
		defer sp.Discard()
		if !wanted[uid] {
			return nil // the server sent a message we did not ask for
		}
		delete(wanted, uid)
		res.Fetched++
		m, _ := f.listed(uid)
		a.fetched(m.Size)
		a.fetchedBytes(f.name, m.Size)
		if more := sp.(*delivery.Spooled).Size - m.Size; more > 0 {
			// Larger than listed: the budget counts what came.
			if err := a.spent(ctx, more); err != nil {
				return err
			}
		}
		first, copies := place, []delivery.Placement(nil)
		if a.labelled(m) {
			first, copies = a.labelPlacements(m)
		} else if a.s.KeepFlags {
			first.Flags = m.Flags
		}
		state, err := f.deliverOne(ctx, m, first, copies, sp.(*delivery.Spooled))
		if err != nil {
			return err
		}
		f.setState(uid, state)
		switch state {
		case ledger.Delivered:
			res.Delivered++
			delivered = append(delivered, uid)
		case ledger.Refused:
			res.Refused++
		}
		return nil
	}
	err = f.mb.Fetch(ctx, uids, spool, deliver)
	return delivered, err
}

// deliverOne hands one spooled message to maddy and records the outcome.
// A temporary failure records nothing and is returned, ending the poll.
//
// copies are further placements of the message (its other Gmail labels):
// stored once it is committed, straight into the storage, and recorded
// with the first in the ledger's placements.
func (f *folderPass) deliverOne(ctx context.Context, m source.Message, place delivery.Placement, copies []delivery.Placement, sp *delivery.Spooled) (ledger.State, error) {
	a, key, uid := f.a, f.key, m.UID
	origin := delivery.Origin{
		Placement:   place,
		Quarantine:  slices.Contains(a.s.QuarantineFolders, key.Mailbox),
		Protocol:    a.s.Upstream.Protocol(),
		Host:        a.s.Upstream.Host(),
		Addr:        f.p.sess.RemoteAddr(),
		Account:     a.s.Name,
		Folder:      key.Mailbox,
		UIDValidity: key.UIDValidity,
		UID:         uid,
		Arrived:     m.Date,
	}
	if origin.Arrived.IsZero() {
		origin.Arrived = delivery.ReceivedDate(sp.Header) // POP3
	}
	// Neither the delivery nor the record after it follows the poll's
	// cancellation: a message committed must be recorded.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()

	entry := ledger.Entry{UID: uid, Size: m.Size, Fingerprint: source.Fingerprint(sp.Header, m.Size), GlobalID: m.GlobalID(),
		Digest: sp.Digest, At: a.s.Now()} // delete_after counts from At
	if a.s.Dedupe {
		// A global ID was looked up before the download (dedupeByGlobalID);
		// now the content: the bytes, and the header fingerprint if the
		// message has a Message-ID (without one, the few fields are too
		// weak). Entries that have a global ID are not matched by content
		// with a message that has one (DeliveredElsewhere).
		id := ledger.Identity{GlobalID: m.GlobalID(), Digest: sp.Digest}
		if strings.TrimSpace(sp.Header.Get("Message-Id")) != "" {
			id.Fingerprint = entry.Fingerprint
		}
		dup, err := a.recordIfDuplicate(dctx, key, entry, id)
		if err != nil {
			return "", err
		}
		if dup {
			return ledger.Duplicate, nil
		}
	}
	msgID, stored, err := a.s.Target.DeliverCopies(dctx, sp, origin, copies)
	entry.MsgID = msgID
	switch {
	case err == nil:
		entry.State = ledger.Delivered
	case delivery.IsPermanent(err):
		entry.State = ledger.Refused
		entry.Reason = delivery.Reason(err)
		a.s.Log.Msg("message refused, left upstream", "folder", key.Mailbox,
			"uid", uid, "msg_id", msgID, "reason", entry.Reason)
	default:
		return "", &deliveryError{fmt.Errorf("delivery of UID %s failed temporarily, will retry: %w", uid, err)}
	}
	if err := a.s.Ledger.Record(dctx, key, entry); err != nil {
		if entry.State == ledger.Delivered {
			// The one way to a duplicate: said loudly, with what finds it.
			a.s.Log.Error("message committed to maddy but not recorded in the ledger: it will be delivered again", err,
				"folder", key.Mailbox, "uid", uid, "msg_id", msgID)
		} else {
			a.s.Log.Error("refusal not recorded in the ledger: the message will be tried again", err,
				"folder", key.Mailbox, "uid", uid, "msg_id", msgID)
		}
		return "", local(err)
	}
	messagesTotal.WithLabelValues(a.s.Name, string(entry.State)).Inc()
	if entry.State == ledger.Delivered {
		bytesDelivered.WithLabelValues(a.s.Name).Add(float64(sp.Size))
		if a.labelled(m) {
			f.recordPlaced(dctx, m, origin.ID(), stored.Accounts, append([]delivery.Placement{place}, stored.Placed...))
		}
	}
	return entry.State, nil
}

// labelled: the message's local placement follows its Gmail labels
// (local_folders mirror, and the upstream listed labels).
func (a *Account) labelled(m source.Message) bool {
	return a.s.MirrorFolders && m.Labels() != nil && m.GlobalID() != ""
}

// labelPlacements are the local folders of a labelled message, each with
// the flags every copy gets (\Flagged for \Starred, and the upstream
// copy's flags with keep_flags): the first is where it is delivered, the
// others get copies.
func (a *Account) labelPlacements(m source.Message) (first delivery.Placement, copies []delivery.Placement) {
	places, flags := delivery.GmailPlacements(m.Labels())
	if a.s.KeepFlags {
		for _, fl := range m.Flags {
			if !slices.Contains(flags, fl) {
				flags = append(flags, fl)
			}
		}
	}
	for i := range places {
		places[i].Flags = flags
	}
	return places[0], places[1:] // never nil: accounts are noted for later labels
}

// recordPlaced records the local copies of a labelled message. A failure
// is logged, not returned: the message itself is recorded, and a copy
// not recorded is at worst made again at a later sighting.
func (f *folderPass) recordPlaced(ctx context.Context, m source.Message, origin string, accounts []string, places []delivery.Placement) {
	a := f.a
	keys := make([]string, len(places))
	for i, p := range places {
		keys[i] = p.Key()
	}
	if err := a.s.Ledger.RecordPlaced(ctx, a.s.Name, m.GlobalID(), origin, accounts, keys); err != nil {
		a.s.Log.Error("recording label copies", err, "folder", f.name, "uid", m.UID)
		return
	}
	if n := len(places) - 1; n > 0 {
		f.res.LabelCopies += n
		labelCopiesTotal.WithLabelValues(a.s.Name).Add(float64(n))
	}
}

// placeMissing stores, without a download, a copy of a delivered labelled
// message in each local folder its labels now call for and that has none
// yet (a label added upstream since): copied within maddy's storage from
// a local copy. A label removed upstream removes nothing locally. If the
// user has deleted every local copy, nothing is downloaded again: the
// missing places are recorded as done. Failures are logged and the copy
// is tried at the next sighting; the poll goes on.
func (f *folderPass) placeMissing(ctx context.Context, m source.Message) {
	a := f.a
	placed, ok, err := a.s.Ledger.PlacedOf(ctx, a.s.Name, m.GlobalID())
	if err != nil || !ok {
		if err != nil {
			a.s.Log.Error("reading label copies", err, "folder", f.name, "uid", m.UID)
		}
		return // delivered before its labels were known: nothing to copy from
	}
	first, copies := a.labelPlacements(m)
	var missing []delivery.Placement
	for _, p := range append([]delivery.Placement{first}, copies...) {
		if !slices.Contains(placed.Places, p.Key()) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	from := make([]delivery.Placement, len(placed.Places))
	for i, k := range placed.Places {
		from[i] = delivery.GmailPlacementOfKey(k)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()
	done, err := a.s.Target.CopyStored(dctx, placed.Accounts, placed.Origin, from, missing)
	if errors.Is(err, delivery.ErrNoLocalCopy) {
		a.s.Log.Msg("new label not placed: no local copy of the message is left to copy from, and it is not downloaded again",
			"folder", f.name, "uid", m.UID)
		done, err = missing, nil
	}
	if err != nil {
		a.s.Log.Error("placing a label copy", err, "folder", f.name, "uid", m.UID)
	}
	if len(done) == 0 {
		return
	}
	keys := make([]string, len(done))
	for i, p := range done {
		keys[i] = p.Key()
	}
	if err := a.s.Ledger.RecordPlaced(dctx, a.s.Name, m.GlobalID(), placed.Origin, placed.Accounts, keys); err != nil {
		a.s.Log.Error("recording label copies", err, "folder", f.name, "uid", m.UID)
		return
	}
	f.res.LabelCopies += len(done)
	labelCopiesTotal.WithLabelValues(a.s.Name).Add(float64(len(done)))
	a.s.Log.DebugMsg("label copies placed without a download", "folder", f.name, "uid", m.UID, "copies", len(done))
}

// sizeOf is the listed size of uids together.
func (f *folderPass) sizeOf(uids []string) int64 {
	var n int64
	for _, uid := range uids {
		n += f.listedSize(uid)
	}
	return n
}
