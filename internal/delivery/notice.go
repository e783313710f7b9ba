package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/safetext"
)

// Bounds of a notice: a subject that fits a mail client's list, a body of
// a few paragraphs.
const (
	maxNoticeSubject = 200
	maxNoticeText    = 16 << 10
)

// Notice delivers a short plain-text message from remote_pull to rcpts
// through the account's pipeline: an account needs its owner's attention.
// The envelope sender is null, so nothing can bounce it, and it goes to
// local recipients only through the same pipeline as fetched mail. The
// text may quote the upstream: subject and body are cleaned and bounded.
func (t *Target) Notice(ctx context.Context, rcpts []string, subject, text string) (msgID string, err error) {
	msgID, err = module.GenerateMsgID()
	if err != nil {
		return "", err
	}
	hostname := t.Hostname
	if hostname == "" {
		hostname = "localhost"
	}
	var h textproto.Header
	h.Add("Content-Transfer-Encoding", "8bit")
	h.Add("Content-Type", "text/plain; charset=utf-8")
	h.Add("MIME-Version", "1.0")
	h.Add("Auto-Submitted", "auto-generated") // RFC 3834: never answer it
	h.Add("Message-Id", fmt.Sprintf("<%s@%s>", msgID, hostname))
	h.Add("Subject", safetext.Line(subject, maxNoticeSubject))
	h.Add("To", strings.Join(rcpts, ", "))
	h.Add("From", fmt.Sprintf("maddy remote_pull <postmaster@%s>", hostname))
	h.Add("Date", time.Now().Format(time.RFC1123Z))
	text = safetext.Text(text, maxNoticeText)
	body := buffer.MemoryBuffer{Slice: []byte(strings.ReplaceAll(text, "\n", "\r\n"))}

	meta := &module.MsgMetadata{ID: msgID, SMTPOpts: smtp.MailOptions{Body: smtp.Body8BitMIME, Size: int64(len(body.Slice))}}
	d, err := t.Pipeline.Start(ctx, meta, "")
	if err != nil {
		return msgID, err
	}
	if err := t.transfer(ctx, d, rcpts, h, body); err != nil {
		d.Abort(ctx)
		return msgID, err
	}
	return msgID, nil
}
