package account

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/internal/safetext"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Notices by mail: when an account needs its owner (a refused login, a
// revoked OAuth2 grant, messages refused or too large waiting upstream, no
// successful poll for a day), one short message goes to Settings.Notify
// through the account's own pipeline; a reminder at most daily while it
// lasts, and one when it is over. What was said is kept in the ledger, so
// a restart does not say it again, and so is the account's last good
// poll, so a restart neither ends a trouble nor starts its clock afresh.
//
// A flapping upstream must not cry wolf: a refused login is told only once
// it lasted (noticeLastingPolls polls in a row, and noticeLastingFor since
// the last good poll), "works again" only after a poll worked, and no
// more than noticeDailyCap notices go per account per day.

// Notice kinds, in the order they are looked for.
const (
	noticeAuth      = "auth failed"
	noticeReconsent = "re-consent needed"
	noticeWaiting   = "messages waiting upstream"
	noticeStalled   = "no successful poll"
	noticeQuota     = "over quota"
)

const (
	// noticeRemind is how often a lasting trouble is said again, and how
	// long without a successful poll is a trouble.
	noticeRemind = 24 * time.Hour
	// A refused login is told once this many polls in a row failed and
	// this long has passed since the last good poll (with the back-off
	// after a refused login, 1, 2, 4, 8, 16 minutes: about half an hour).
	noticeLastingPolls = 3
	noticeLastingFor   = 30 * time.Minute
	// noticeDailyCap bounds the notices per account in a day (counted
	// from the first notice of the day, kept in the ledger).
	noticeDailyCap = 4
)

// trouble is what the account's owner should hear about now, if anything.
func (a *Account) trouble(ctx context.Context) (kind, text string, err error) {
	st := a.Status()
	// The last error may quote the upstream: one bounded line in a mail.
	st.LastError = safetext.Line(st.LastError, safetext.MaxStored)
	switch st.State {
	case string(StateReconsent):
		if strings.Contains(st.LastError, source.AppOnlyRefused) {
			return noticeReconsent, fmt.Sprintf("The provider refused the application credentials (client_credentials) that remote_pull uses for account %s.\n\n"+
				"Last error: %s\n\nThe administrator fixes the client secret (it may have expired) or the application's permissions, "+
				"then reloads maddy (systemctl reload maddy, or SIGUSR2).\n", a.s.Name, st.LastError), nil
		}
		return noticeReconsent, fmt.Sprintf("The provider refused remote_pull's OAuth2 grant for account %s: consent was revoked or has expired.\n\n"+
			"Last error: %s\n\nTo fix it, run on the server:\n\n    maddy remote-pull oauth2-login %s\n\n"+
			"then reload maddy (systemctl reload maddy, or SIGUSR2).\n", a.s.Name, st.LastError, a.s.Name), nil
	case string(StateOverQuota):
		return noticeQuota, fmt.Sprintf("The provider suspended account %s (%s %s) for exceeding its download or command limits.\n\n"+
			"Last error: %s\n\nremote_pull makes no connection to it until %s, then tries again; each suspension in a row "+
			"doubles the pause (from 1 hour to 24 hours). Nothing is lost: the messages wait upstream. To stay under the "+
			"provider's limit, lower the account's download_budget (see docs/guides/gmail.md).\n"+
			"This is the one notice for this suspension.\n", a.s.Name, a.s.Upstream.Protocol(), a.s.Upstream.Host(),
			st.LastError, st.NextPoll.Format(time.RFC1123)), nil
	case string(StateAuthFailed):
		return noticeAuth, fmt.Sprintf("The upstream server refuses remote_pull's login for account %s (%s %s).\n\n"+
			"Last error: %s\n\nIf the password changed, put the new one in the account's password_file, then reload maddy "+
			"(systemctl reload maddy, or SIGUSR2). remote_pull retries at once after a reload, and otherwise backs off "+
			"so that the upstream does not lock the account.\n", a.s.Name, a.s.Upstream.Protocol(), a.s.Upstream.Host(), st.LastError), nil
	}
	refused, tooLarge, err := a.s.Ledger.Waiting(ctx, a.s.Name)
	if err != nil {
		return "", "", err
	}
	if refused+tooLarge > 0 {
		return noticeWaiting, fmt.Sprintf("Account %s has messages that maddy did not take and that wait upstream: "+
			"%d refused, %d larger than max_message_size.\n\nSee why with:\n\n    maddy remote-pull status\n\n"+
			"and the 'message refused' lines of maddy's log. Once the cause is fixed (rcpt_to, the account's pipeline, "+
			"max_message_size), fetch them again with:\n\n    maddy remote-pull retry --all %s\n", a.s.Name, refused, tooLarge, a.s.Name), nil
	}
	since := a.troubleSince(st)
	if a.s.Now().Sub(since) >= noticeRemind {
		return noticeStalled, fmt.Sprintf("Account %s has had no successful poll since %s.\n\nLast error: %s\n\n"+
			"Check the connection and login with:\n\n    maddy remote-pull check %s\n", a.s.Name,
			since.Format(time.RFC1123), st.LastError, a.s.Name), nil
	}
	return "", "", nil
}

// troubleSince is when the account last worked (persisted), or, if it
// never did, when it was first started.
func (a *Account) troubleSince(st Status) time.Time {
	if st.LastSuccess.IsZero() {
		return a.firstSeen
	}
	return st.LastSuccess
}

// lasted: a trouble of this kind has gone on long enough to tell the owner.
// A refused login may be a hiccup of the upstream; the others are facts
// (a revoked grant, messages waiting) or a day long already.
func (a *Account) lasted(kind string, now time.Time) bool {
	if kind != noticeAuth {
		return true
	}
	a.mu.Lock()
	st, failing := a.statusLocked(), a.failing
	a.mu.Unlock()
	return failing >= noticeLastingPolls && now.Sub(a.troubleSince(st)) >= noticeLastingFor
}

// healthy: the last poll worked, so an earlier trouble is over.
func (a *Account) healthy() bool {
	switch State(a.Status().State) {
	case StateOK, StateIdle, StateFolderFailing, StatePaced:
		return true
	}
	return false
}

// checkNotice tells the owner about a change of trouble, or reminds them.
func (a *Account) checkNotice(ctx context.Context) {
	if len(a.s.Notify) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()
	kind, text, err := a.trouble(ctx)
	if err != nil {
		a.s.Log.Error("checking whether to notify the account's owner", err)
		return
	}
	prev, err := a.s.Ledger.Notice(ctx, a.s.Name)
	if err != nil {
		a.s.Log.Error("checking whether to notify the account's owner", err)
		return
	}
	now := a.s.Now()
	next := prev
	next.Sent = now
	var subject string
	switch {
	case kind == "" && prev.Kind == "":
		return
	case kind == "":
		if !a.healthy() {
			// Failing otherwise (the network, a busy upstream): the trouble
			// told may not be over. Say nothing until a poll works.
			return
		}
		if prev.Kind == noticeQuota {
			// One notice per suspension: its end is not told, only
			// recorded, so that the next suspension is told again.
			next.Kind, next.Since, next.Sent = "", time.Time{}, prev.Sent
			if err := a.s.Ledger.SetNotice(ctx, a.s.Name, next); err != nil {
				a.s.Log.Error("recording the notice", err)
			}
			return
		}
		subject = fmt.Sprintf("remote_pull: account %s works again", a.s.Name)
		text = fmt.Sprintf("Account %s works again (%s since %s).\n", a.s.Name, prev.Kind, prev.Since.Format(time.RFC1123))
		next.Kind, next.Since = "", time.Time{}
	case kind != prev.Kind:
		if !a.lasted(kind, now) {
			return
		}
		subject = fmt.Sprintf("remote_pull: account %s: %s", a.s.Name, kind)
		next.Kind, next.Since = kind, now
	case kind == noticeQuota:
		return // one notice per suspension, however long it lasts
	case now.Sub(prev.Sent) >= noticeRemind:
		subject = fmt.Sprintf("remote_pull: account %s: still %s", a.s.Name, kind)
		text += fmt.Sprintf("\n(This has lasted since %s; a reminder follows daily until it is fixed.)\n", prev.Since.Format(time.RFC1123))
	default:
		return
	}
	if now.Sub(next.Window) >= 24*time.Hour {
		next.Window, next.Count = now, 0
	}
	if next.Count >= noticeDailyCap {
		// Not recorded as said: once the day is over, what is still
		// true is told.
		if !a.capLogged {
			a.capLogged = true
			a.s.Log.Msg("notice to the account's owner held back: daily cap reached", "subject", subject,
				"cap", noticeDailyCap)
		}
		return
	}
	a.capLogged = false
	next.Count++
	msgID, err := a.s.Target.Notice(ctx, a.s.Notify, subject, text)
	if err != nil {
		a.s.Log.Error("notice to the account's owner not delivered; will try again", err, "to", strings.Join(a.s.Notify, ","))
		return
	}
	a.s.Log.Msg("notice delivered to the account's owner", "subject", subject, "msg_id", msgID)
	if err := a.s.Ledger.SetNotice(ctx, a.s.Name, next); err != nil {
		a.s.Log.Error("recording the notice", err)
	}
}
