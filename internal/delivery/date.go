package delivery

import (
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/foxcpp/maddy/framework/buffer"
)

// datedBuffer is a message body that carries its arrival date upstream.
// maddy's pipeline hands the buffer to its storage as it is, and the
// patched go-imap-sql stores the message with that date as its
// INTERNALDATE (third_party/patches/go-imap-sql/0002: imapsql.DatedBuffer).
// A pipeline modifier that replaced the body would lose it: the message
// then gets the time of the delivery, as before.
type datedBuffer struct {
	buffer.Buffer
	date time.Time
}

func (b datedBuffer) ArrivalDate() time.Time { return b.date }

// ReceivedDate is the date of the topmost Received field, the one the
// upstream's own delivery added: when the message arrived there, for a
// protocol that does not say (POP3). Zero if that field has no date that
// parses, or is not there.
func ReceivedDate(h textproto.Header) time.Time {
	top := h.Get("Received")
	i := strings.LastIndexByte(top, ';')
	if i < 0 {
		return time.Time{}
	}
	date, err := mail.ParseDate(strings.TrimSpace(top[i+1:]))
	if err != nil {
		return time.Time{}
	}
	return date
}
