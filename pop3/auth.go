package pop3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// APOP authenticates with the APOP command (RFC 1939 section 7): the
// secret never crosses the wire, only MD5(timestamp + secret). It needs the
// greeting's timestamp (see APOPTimestamp). MD5 is weak; prefer TLS with
// Login or Auth where the server allows it.
func (c *Client) APOP(ctx context.Context, user, secret string) error {
	if c.stamp == "" {
		return errors.New("pop3: APOP: the server greeting has no timestamp")
	}
	sum := md5.Sum([]byte(c.stamp + secret))
	_, err := c.cmd(ctx, "APOP "+user+" "+hex.EncodeToString(sum[:]), "APOP "+user+" <redacted>")
	return err
}

// maxAuthLine is the longest AUTH command line that may carry an initial
// response (RFC 5034 section 4: 255 octets); a longer one is sent in reply
// to the server's first, empty, challenge instead.
const maxAuthLine = 255

// Auth authenticates with SASL (RFC 5034) using mech, e.g.
// sasl.NewPlainClient; any mechanism works, including XOAUTH2 and
// OAUTHBEARER. An empty initial response is sent as "=". If mech fails
// or a challenge is not valid base64, the exchange is cancelled with "*"
// and that error returned. A rejection is returned as *Error.
func (c *Client) Auth(ctx context.Context, mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return fmt.Errorf("pop3: AUTH: %w", err)
	}
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()

	line, redacted := "AUTH "+name, ""
	pending := ir // initial response not yet sent
	if ir != nil {
		enc := "=" // RFC 5034: "=" is an empty initial response
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc) <= maxAuthLine {
			line += " " + enc
			redacted = "AUTH " + name + " <redacted>"
			pending = nil
		}
	}
	if err := c.writeCmd(line, redacted); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	for {
		kind, text, err := c.readReply(true)
		if err != nil {
			return err
		}
		if kind == replyOK {
			return nil
		}
		resp := pending
		if pending != nil {
			pending = nil
		} else {
			var mechErr error
			chal, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
			if derr != nil {
				mechErr = fmt.Errorf("%w: challenge is not base64", ErrProtocol)
			} else {
				resp, mechErr = mech.Next(chal)
			}
			if mechErr != nil {
				return c.cancelAuth(name, mechErr)
			}
		}
		c.writeCmd(base64.StdEncoding.EncodeToString(resp), "<redacted>")
		if err := c.flush(); err != nil {
			return err
		}
	}
}

// cancelAuth aborts a SASL exchange with "*" and reads the server's
// answer, which keeps the session in step for another attempt.
func (c *Client) cancelAuth(mech string, cause error) error {
	c.writeCmd("*", "")
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.readOK(); err != nil {
		var perr *Error
		if !errors.As(err, &perr) {
			return err // fatal: the connection is gone
		}
	}
	return fmt.Errorf("pop3: AUTH %s cancelled: %w", mech, cause)
}
