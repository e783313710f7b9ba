package imapsrc

import (
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Limits on what a server may make the client hold in memory (documented
// in docs/reference.md, "What an upstream can make remote_pull hold"). A
// message body (the BODY[] literal of a body FETCH) streams to the spool
// and is not limited here; everything else a response carries is.
const (
	maxLiteral    = 4 << 20 // a literal other than a message body
	maxLine       = 1 << 20 // one response, its literals excluded
	maxFlags      = 100     // flags kept per listed message
	maxFlagLen    = 256     // bytes of one flag
	maxFolders    = 10000   // folders in a LIST reply, which is kept whole
	maxFolderName = 1024    // bytes of a folder name
)

// errOversized: the server sent more than a client should ever hold.
var errOversized = errors.New("the server sent an oversized response")

// clientOptions has go-imap refuse a literal it would read into memory
// when it is announced, and a response line over the limit (go-imap v2
// patched: third_party/README.md).
func clientOptions() *imapclient.Options {
	return &imapclient.Options{MaxLiteralSize: maxLiteral, MaxResponseSize: maxLine}
}

// sectionLiteral reads a body section that is not the message body into
// memory, refusing one larger than maxLiteral before reading it.
func sectionLiteral(lit imap.LiteralReader) ([]byte, error) {
	if lit == nil {
		return nil, nil
	}
	if lit.Size() > maxLiteral {
		return nil, fmt.Errorf("%w: a literal of %d bytes where at most %d are expected", errOversized, lit.Size(), maxLiteral)
	}
	return io.ReadAll(lit)
}

// checkFlags bounds the flags of one message.
func checkFlags(flags []imap.Flag) error {
	if len(flags) > maxFlags {
		return fmt.Errorf("%w: %d flags on one message, more than %d", errOversized, len(flags), maxFlags)
	}
	for _, f := range flags {
		if len(f) > maxFlagLen {
			return fmt.Errorf("%w: a flag of %d bytes, more than %d", errOversized, len(f), maxFlagLen)
		}
	}
	return nil
}
