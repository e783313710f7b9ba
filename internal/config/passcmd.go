package config

// password_command: the password is the first line a command prints, as
// mbsync's PassCmd and fetchmail's passwordeval take it. The command runs
// without a shell, with a timeout that kills its whole process group, and
// neither its output nor its error text may carry the secret into a log.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/internal/safetext"
)

const (
	// passwordCommandTimeout bounds one run: a vault CLI that waits for
	// an unlock prompt nobody answers must not hold the account forever.
	passwordCommandTimeout = 10 * time.Second
	// maxPasswordLine bounds the line read as the password.
	maxPasswordLine = 4096
	// maxCommandStderr bounds what of the command's stderr a status shows.
	maxCommandStderr = 300
)

// PasswordCommandError is a password command that gave no password. It is
// not a refused login: the upstream never saw a password.
type PasswordCommandError struct{ msg string }

func (e *PasswordCommandError) Error() string { return "password command failed: " + e.msg }

// runPasswordCommand runs argv (no shell) and returns the first line of
// its standard output without the line end. Nothing else is trimmed: a
// password may end in a space.
func runPasswordCommand(argv []string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	killGroupOnCancel(cmd)
	// A grandchild that keeps the pipes open must not hold Wait.
	cmd.WaitDelay = time.Second
	var stdout bytes.Buffer
	stderr := &boundedBuffer{max: 4 * maxCommandStderr}
	cmd.Stdout = &boundedBuffer{buf: &stdout, max: maxPasswordLine + 2}
	cmd.Stderr = stderr
	err := cmd.Run()
	// The first line only: its value, to keep out of the error text.
	line, _, _ := bytes.Cut(stdout.Bytes(), []byte("\n"))
	value := strings.TrimSuffix(string(line), "\r")
	switch {
	case ctx.Err() != nil:
		return "", &PasswordCommandError{fmt.Sprintf("%s did not finish within %s (killed)%s", argv[0], timeout, stderrNote(stderr, value))}
	case err != nil:
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return "", &PasswordCommandError{fmt.Sprintf("%s: %s%s", argv[0], exitErr.ProcessState, stderrNote(stderr, value))}
		}
		return "", &PasswordCommandError{fmt.Sprintf("%s: %v", argv[0], err)}
	case len(line) > maxPasswordLine:
		return "", &PasswordCommandError{fmt.Sprintf("%s printed a first line longer than %d bytes", argv[0], maxPasswordLine)}
	case value == "":
		return "", &PasswordCommandError{fmt.Sprintf("%s printed no password (its first line is empty)%s", argv[0], stderrNote(stderr, ""))}
	}
	return value, nil
}

// stderrNote is what the status may show of the command's stderr: one
// cleaned, bounded line, with any copy of the secret cut out.
func stderrNote(stderr *boundedBuffer, secret string) string {
	s := stderr.String()
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "<secret>")
	}
	s = safetext.Line(strings.TrimSpace(s), maxCommandStderr)
	if s == "" {
		return ""
	}
	return ": " + s
}

// boundedBuffer keeps the first max bytes written and drops the rest
// without failing the writer (a failed write would kill the command with
// SIGPIPE and hide its real exit status).
type boundedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.buf == nil {
		b.buf = &bytes.Buffer{}
	}
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	if b.buf == nil {
		return ""
	}
	return b.buf.String()
}

var _ io.Writer = (*boundedBuffer)(nil)
