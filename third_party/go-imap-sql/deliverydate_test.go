package imapsql

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-message/textproto"
	"gotest.tools/assert"
)

type datedBuffer struct {
	memoryBuffer
	date time.Time
}

func (b datedBuffer) ArrivalDate() time.Time { return b.date }

// A delivery whose body is a DatedBuffer stores the message with that
// arrival date (INTERNALDATE); any other body, with the time of delivery.
func TestDeliveryArrivalDate(t *testing.T) {
	b := initTestBackend().(*Backend)
	defer cleanBackend(b)
	assert.NilError(t, b.CreateUser(t.Name()), "CreateUser")
	u, err := b.GetUser(t.Name())
	assert.NilError(t, err, "GetUser")

	arrived := time.Date(2011, 3, 4, 5, 6, 7, 0, time.UTC)
	start := time.Now().Add(-time.Second)
	for _, date := range []time.Time{arrived, {}} {
		br := bufio.NewReader(strings.NewReader(testMsg))
		hdr, err := textproto.ReadHeader(br)
		assert.NilError(t, err, "ReadHeader")
		var body strings.Builder
		_, err = br.WriteTo(&body)
		assert.NilError(t, err)
		buf := datedBuffer{memoryBuffer{slice: []byte(body.String())}, date}

		d := b.NewDelivery()
		assert.NilError(t, d.AddRcpt(t.Name(), textproto.Header{}), "AddRcpt")
		assert.NilError(t, d.BodyParsed(hdr, body.Len(), buf), "BodyParsed")
		assert.NilError(t, d.Commit(), "Commit")
	}

	_, mbox, err := u.GetMailbox("INBOX", true, &noopConn{})
	assert.NilError(t, err, "GetMailbox")
	seq, _ := imap.ParseSeqSet("1:*")
	ch := make(chan *imap.Message, 10)
	assert.NilError(t, mbox.ListMessages(false, seq, []imap.FetchItem{imap.FetchInternalDate}, ch), "ListMessages")
	var dates []time.Time
	for msg := range ch {
		dates = append(dates, msg.InternalDate)
	}
	assert.Equal(t, len(dates), 2)
	if !dates[0].Equal(arrived) {
		t.Errorf("INTERNALDATE of the dated delivery = %v, want %v", dates[0], arrived)
	}
	if dates[1].Before(start.Truncate(time.Second)) {
		t.Errorf("INTERNALDATE of the undated delivery = %v, want the time of delivery (after %v)", dates[1], start)
	}
}
