package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/internal/source"
)

// keepAlive is how often an idling connection is checked: IDLE is stopped,
// a NOOP must come back within the command timeout, and IDLE starts again.
// A connection that died silently (NAT timeout, server gone) is noticed
// within this time, well before servers drop idle clients (RFC 2177: 29
// minutes; go-imap also restarts IDLE every 28).
const keepAlive = 5 * time.Minute

// Watch idles on one folder on a connection of its own, calls ev.Idling
// once IDLE is established and ev.NewMail whenever the server announces
// more messages than before. It returns when
// ctx ends (nil) or the connection fails (an error: the caller reconnects
// after a back-off). It returns source.ErrNoPush at once if the server has
// no IDLE.
func (u *Upstream) Watch(ctx context.Context, folder string, ev source.WatchEvents) error {
	var (
		mu     sync.Mutex
		exists uint32
	)
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages == nil {
				return
			}
			mu.Lock()
			grew := *d.NumMessages > exists
			exists = *d.NumMessages
			mu.Unlock()
			if grew {
				ev.NewMail()
			}
		},
		Expunge: func(uint32) {
			mu.Lock()
			if exists > 0 {
				exists--
			}
			mu.Unlock()
		},
	}
	s, err := u.dial(ctx, &imapclient.Options{UnilateralDataHandler: handler})
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		s.Close(closeCtx)
	}()
	caps := s.c.Caps()
	if !caps.Has(imap.CapIdle) && !caps.Has(imap.CapIMAP4rev2) {
		return source.ErrNoPush
	}
	var sel *imap.SelectData
	err = s.command(ctx, func() error {
		var err error
		sel, err = s.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err != nil {
		return fmt.Errorf("SELECT %q: %w", folder, err)
	}
	mu.Lock()
	exists = sel.NumMessages
	mu.Unlock()

	for idling := ev.Idling; ; idling = func() {} {
		if err := s.idleOnce(ctx, idling); err != nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// idleOnce idles until ctx ends or keepAlive passes, then proves the
// connection alive with a NOOP. It calls started once the server accepted
// IDLE.
func (s *Session) idleOnce(ctx context.Context, started func()) error {
	var idle *imapclient.IdleCommand
	err := s.command(ctx, func() error {
		var err error
		idle, err = s.c.Idle()
		return err
	})
	if err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	started()
	timer := time.NewTimer(keepAlive)
	defer timer.Stop()
	var closed error
	select {
	case <-ctx.Done():
	case <-timer.C:
	case <-s.c.Closed():
		closed = errors.New("connection closed by the server")
	}
	err = s.command(context.WithoutCancel(ctx), func() error {
		if err := idle.Close(); err != nil {
			return err
		}
		return idle.Wait()
	})
	if closed != nil {
		return closed
	}
	if err != nil {
		return fmt.Errorf("ending IDLE: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}
	return s.command(ctx, func() error { return s.c.Noop().Wait() })
}
