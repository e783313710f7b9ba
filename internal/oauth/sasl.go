package oauth

import (
	"errors"
	"strconv"

	"github.com/emersion/go-sasl"

	"github.com/remote-pull/remote_pull/internal/source"
)

// SASLClient is the mechanism mech (source.AuthXOAUTH2 or
// source.AuthOAuthBearer) carrying token for user; host and port go into
// OAUTHBEARER's message.
func SASLClient(mech, user, token, host, port string) sasl.Client {
	if mech == source.AuthXOAUTH2 {
		return NewXOAUTH2Client(user, token)
	}
	p, _ := strconv.Atoi(port)
	return NewOAuthBearerClient(user, token, host, p)
}

// NewXOAUTH2Client is the XOAUTH2 mechanism of Google and Microsoft. On
// failure the server sends a JSON challenge; the client answers with an
// empty line, as the mechanism wants, and the server then says NO.
func NewXOAUTH2Client(user, token string) sasl.Client {
	return &xoauth2{user: user, token: token}
}

type xoauth2 struct {
	user, token string
	failed      bool
}

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	if x.failed {
		return nil, errors.New("XOAUTH2: unexpected second challenge")
	}
	x.failed = true
	return []byte{}, nil
}

// NewOAuthBearerClient is OAUTHBEARER (RFC 7628).
func NewOAuthBearerClient(user, token, host string, port int) sasl.Client {
	return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token, Host: host, Port: port})
}
