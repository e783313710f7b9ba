package imapsrc

import (
	"bytes"
	"fmt"

	"github.com/emersion/go-sasl"
)

// loginClient is SASL LOGIN (draft-murchison-sasl-login) that answers what
// the server asks. go-sasl's LOGIN client sends the user name as an initial
// response and answers any challenge with the password, which fails on
// servers without SASL-IR: they ask "Username:" first. This one sends no
// initial response and answers "Username:" with the user name and
// "Password:" with the password; an unrecognised prompt gets the user name
// first and the password second.
type loginClient struct {
	user, pass string
	step       int
}

func newLoginClient(user, pass string) sasl.Client { return &loginClient{user: user, pass: pass} }

func (c *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (c *loginClient) Next(challenge []byte) ([]byte, error) {
	defer func() { c.step++ }()
	prompt := bytes.ToLower(challenge)
	switch {
	case c.step > 2:
		return nil, fmt.Errorf("SASL LOGIN: unexpected challenge %q", challenge)
	case bytes.Contains(prompt, []byte("user")):
		return []byte(c.user), nil
	case bytes.Contains(prompt, []byte("pass")):
		return []byte(c.pass), nil
	case c.step == 0:
		return []byte(c.user), nil
	}
	return []byte(c.pass), nil
}
