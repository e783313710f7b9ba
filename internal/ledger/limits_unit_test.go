package ledger

import (
	"testing"
	"time"
)

// A pause imposed by the upstream survives reopening the ledger (a
// restart), and shows in the status; the zero Pause clears it.
func TestPauseSurvivesRestart(t *testing.T) {
	l, path := open(t)
	until := time.Unix(2_000_000_000, 500)
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "over quota"}); err != nil {
		t.Fatal(err)
	}
	if err := l.SetPause(bg, "a", Pause{State: "over quota", Until: until, Episodes: 2}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, err := l.Pause(bg, "a")
	if err != nil || p.State != "over quota" || p.Episodes != 2 || p.Until.Before(until) || p.Until.After(until.Add(time.Second)) {
		t.Fatalf("pause %+v %v, want over quota until %v (not earlier), 2 episodes", p, err, until)
	}
	st, _, err := l.Status(bg, "a")
	if err != nil || !st.ResumeAt.Equal(p.Until) {
		t.Fatalf("status resume %v %v, want %v", st.ResumeAt, err, p.Until)
	}
	if err := l.SetPause(bg, "a", Pause{}); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Pause(bg, "a"); err != nil || p != (Pause{}) {
		t.Fatalf("cleared pause %+v %v", p, err)
	}
	if st, _, _ := l.Status(bg, "a"); !st.ResumeAt.IsZero() {
		t.Fatalf("status resume %v after clearing", st.ResumeAt)
	}
}

// Downloads add up per minute, survive a restart, and those older than
// asked for are forgotten; forget drops them with the account.
func TestDownloadsWindow(t *testing.T) {
	l, path := open(t)
	t0 := time.Unix(1_900_000_000, 0).Truncate(time.Minute)
	for _, d := range []struct {
		at    time.Duration
		bytes int64
	}{{0, 100}, {10 * time.Second, 50}, {time.Hour, 7}, {25 * time.Hour, 3}} {
		if err := l.AddDownload(bg, "a", t0.Add(d.at), d.bytes); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AddDownload(bg, "b", time.Now().Add(-48*time.Hour), 1000); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := l.Downloads(bg, "a", t0)
	if err != nil || len(got) != 3 || got[0].Bytes != 150 || !got[0].At.Equal(t0) || got[1].Bytes != 7 || got[2].Bytes != 3 {
		t.Fatalf("downloads %+v %v", got, err)
	}
	got, err = l.Downloads(bg, "a", t0.Add(2*time.Hour))
	if err != nil || len(got) != 1 || got[0].Bytes != 3 {
		t.Fatalf("downloads after 2h %+v %v", got, err)
	}
	// The first bucket was forgotten.
	if got, _ := l.Downloads(bg, "a", t0); len(got) != 1 {
		t.Fatalf("old buckets kept: %+v", got)
	}
	// forget keeps the provider's count of the last day: the account,
	// added back, would meet it again.
	now := time.Now()
	if err := l.AddDownload(bg, "b", now, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ForgetAccount(bg, "b", false); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Downloads(bg, "b", now.Add(-72*time.Hour)); len(got) != 1 || got[0].Bytes != 5 {
		t.Fatalf("forgotten account's downloads %+v, want the last day's kept, the older dropped", got)
	}
}
