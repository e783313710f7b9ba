package imapsql

import (
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	"gotest.tools/assert"
)

// A delivery finds its folder by name alone and never
// reads the folder's UIDs (GetMailbox does, and gives the folder a
// sequence-number handle, which a delivery has no use for).
func TestDeliveryMailboxReadsNoUIDs(t *testing.T) {
	b := initTestBackend().(*Backend)
	defer cleanBackend(b)
	assert.NilError(t, b.CreateUser(t.Name()), "CreateUser")
	u, err := b.GetUser(t.Name())
	assert.NilError(t, err, "GetUser")
	assert.NilError(t, u.CreateMailbox("Box"))

	for _, pick := range []func(*Delivery) error{
		func(d *Delivery) error { return d.Mailbox("INBOX") },
		func(d *Delivery) error { return d.Mailbox("Box") },
		func(d *Delivery) error { return d.Mailbox("New") }, // created
		func(d *Delivery) error { return d.SpecialMailbox(`\Junk`, "Junk") },
		func(d *Delivery) error { return d.SpecialMailbox(`\Junk`, "Junk") }, // found
	} {
		d := b.NewDelivery()
		assert.NilError(t, d.AddRcpt(t.Name(), textproto.Header{}), "AddRcpt")
		assert.NilError(t, pick(&d))
		for _, mbox := range d.mboxes {
			if mbox.handle != nil {
				t.Errorf("delivery to %q read the folder's UIDs", mbox.name)
			}
		}
		assert.NilError(t, d.BodyRaw(strings.NewReader(testMsg)), "BodyRaw")
		assert.NilError(t, d.Commit(), "Commit")
	}
}
