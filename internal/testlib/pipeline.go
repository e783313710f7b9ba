package testlib

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/foxcpp/maddy/framework/buffer"
	"github.com/foxcpp/maddy/framework/module"
)

// Pipeline is a maddy delivery target that keeps what was committed, for
// tests of what remote_pull hands to maddy.
type Pipeline struct {
	// RcptErr is AddRcpt's answer.
	RcptErr error
	// Check, if set, runs at Body with the header: its error is Body's
	// answer (a 5xx refusal, a 4xx failure); it may panic, as a buggy
	// check would.
	Check func(h textproto.Header) error
	// Committed, if set, runs after each commit.
	Committed func(m Message)

	mu       sync.Mutex
	messages []Message
	aborted  int
}

// Message is one committed message.
type Message struct {
	Meta  *module.MsgMetadata
	From  string
	Rcpts []string
	// Raw is the stored message: the header as maddy got it, then the body.
	Raw []byte
}

// Messages returns what was committed, in order.
func (p *Pipeline) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Message(nil), p.messages...)
}

// Aborted counts the deliveries aborted.
func (p *Pipeline) Aborted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.aborted
}

func (p *Pipeline) Start(_ context.Context, meta *module.MsgMetadata, from string) (module.Delivery, error) {
	return &delivery{p: p, msg: Message{Meta: meta, From: from}}, nil
}

type delivery struct {
	p   *Pipeline
	msg Message
}

func (d *delivery) AddRcpt(_ context.Context, rcpt string, _ smtp.RcptOptions) error {
	if d.p.RcptErr != nil {
		return d.p.RcptErr
	}
	d.msg.Rcpts = append(d.msg.Rcpts, rcpt)
	return nil
}

func (d *delivery) Body(_ context.Context, h textproto.Header, b buffer.Buffer) error {
	if d.p.Check != nil {
		if err := d.p.Check(h); err != nil {
			return err
		}
	}
	r, err := b.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	var out bytes.Buffer
	textproto.WriteHeader(&out, h)
	if _, err := io.Copy(&out, r); err != nil {
		return err
	}
	d.msg.Raw = out.Bytes()
	return nil
}

func (d *delivery) Abort(context.Context) error {
	d.p.mu.Lock()
	d.p.aborted++
	d.p.mu.Unlock()
	return nil
}

func (d *delivery) Commit(context.Context) error {
	d.p.mu.Lock()
	d.p.messages = append(d.p.messages, d.msg)
	d.p.mu.Unlock()
	if d.p.Committed != nil {
		d.p.Committed(d.msg)
	}
	return nil
}
