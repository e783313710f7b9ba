package main

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("push", 50, (*bench).pushLatency) }

// pushLatency: one idling account; messages APPENDed upstream one at a
// time, each timed until maddy's IMAP endpoint shows it.
func (b *bench) pushLatency() {
	s := b.s
	up := harness.StartDovecot(s, harness.DovecotOptions{})
	defer up.Stop()
	up.AddUser(s, upUser, upPass)
	m := b.startAccount("imap tls://localhost:"+harness.Port(up.IMAPSAddr), up, "")
	defer m.Stop(s)
	harness.Eventually(s, time.Minute, func() bool { return up.IdleSessions(s, upUser) == 1 }, "the account idling")

	lat := b.pushes(m, up, func(int) (string, string) { return upUser, upPass }, *pushes)
	b.figures = append(b.figures, latencyFigure("push latency, 1 account idling", lat))
}

// pushes APPENDs n messages upstream, to the account account(i) names, one
// at a time, and returns how long each took from the APPEND's completion
// to the moment maddy's IMAP STATUS counts it in localUser's INBOX.
func (b *bench) pushes(m *harness.Maddy, up *harness.Dovecot, account func(i int) (user, pass string), n int) []time.Duration {
	s := b.s
	local, err := m.DialIMAP(localUser, localPass)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	defer local.Close()
	count := func() uint32 {
		st, err := local.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			s.Fatalf("bench: STATUS: %v", err)
		}
		return *st.NumMessages
	}
	have := count()
	var lat []time.Duration
	for i := range n {
		user, pass := account(i)
		c := up.IMAPClient(s, user, pass)
		msg := harness.Message(100000+i, 2000)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			s.Fatalf("bench: APPEND: %v", err)
		}
		appended := time.Now()
		c.Logout().Wait()
		c.Close()
		for count() <= have {
			if time.Since(appended) > time.Minute {
				s.Fatalf("bench: message %d not in maddy after a minute", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(appended))
		have++
		time.Sleep(time.Duration(100+rand.Intn(200)) * time.Millisecond)
	}
	return lat
}

func latencyFigure(name string, lat []time.Duration) figure {
	slices.Sort(lat)
	// Nearest rank: the smallest value at least q of the sample is at or under.
	p := func(q float64) time.Duration { return lat[max(0, int(math.Ceil(q*float64(len(lat))))-1)] }
	return figure{
		scenario: name,
		value: fmt.Sprintf("median %v, p95 %v (max %v, n=%d)",
			p(0.5).Round(time.Millisecond), p(0.95).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), len(lat)),
		target: "median < 1 s, p95 < 2 s",
		note:   "APPEND upstream completed → counted by STATUS on maddy's IMAP (5 ms polling)",
	}
}
