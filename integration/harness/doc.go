// Package harness runs the real programs that remote_pull's end-to-end tests
// need: a throw-away Dovecot upstream (IMAP, IMAPS, POP3, POP3S on loopback
// ports), a PostgreSQL server for maddy's storage, the custom maddy binary
// built from ./cmd/maddy, a test CA, and a deterministic message corpus.
//
// Every helper takes a T (a testing.TB, or a Script in a program), fails
// the test on error and registers its own cleanup: processes are killed and
// files live under t.TempDir(). The few that return errors instead serve
// programs that handle failure themselves (the soak) and the interop
// tests' own servers: StartProcess, Dovecot.DialIMAP, Maddy.DialIMAP and
// WaitLogFile. Nothing listens anywhere but 127.0.0.1, and ports are picked
// by listening on 127.0.0.1:0.
//
// Line endings: Seed writes message bytes verbatim. Dovecot serves a bare LF
// as CRLF over IMAP and POP3, so what a client receives is CRLF(seeded); the
// corpus in this package is already in wire form (CRLF) except the "bare-lf"
// entry of TrickyCorpus.
//
// Dovecot must be installed (Debian packages dovecot-imapd and
// dovecot-pop3d; `make test` installs them), and PostgreSQL for the tests
// that put maddy's storage there (StartPostgres, MaddyOptions.Postgres;
// Debian package postgresql). The maddy binary comes from
// $REMOTE_PULL_MADDY or is built once per test process (see BuildMaddy and
// Main).
package harness
