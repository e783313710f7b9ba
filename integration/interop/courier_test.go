//go:build interop

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// courierRun is the namespace's init: Courier looks for its configuration
// in /etc/courier, its authentication modules in /usr/lib/courier-authlib
// and its authdaemon socket in /run/courier, all fixed at build time. In a
// private mount namespace /etc and /usr become read-only overlays of the
// test's files and the unpacked packages on the real directories, and /run
// a fresh tmpfs; nothing outside is touched. The PID namespace takes every
// Courier process down with this shell.
const courierRun = `#!/bin/sh
set -e
D="$1"; C="$2"; IMAPPORT="$3"; POP3PORT="$4"; ENHANCEDIDLE="$5"
# gam_server's socket is named after the user and GAM_CLIENT_ID: one per
# instance, or instances running side by side share one.
FAM="GAM_CLIENT_ID=rpinterop-$IMAPPORT"
mount -t tmpfs tmpfs /run
mkdir -p /run/courier/authdaemon
mount -t overlay overlay -o "lowerdir=$D/etc:$C/etc:/etc" /etc
mount -t overlay overlay -o "lowerdir=$C/usr:/usr" /usr
/usr/lib/courier/courier-authlib/authdaemond &
i=0
while [ ! -S /run/courier/authdaemon/socket ]; do
	i=$((i+1)); [ $i -lt 200 ] || { echo "authdaemond did not start" >&2; exit 1; }
	sleep 0.05
done
# Debian's /etc/courier/imapd, imapd-ssl, pop3d and pop3d-ssl settings, on a
# loopback port, with the test's certificate.
TLS="COURIERTLS=/usr/bin/couriertls TLS_CERTFILE=/etc/courier/server.pem TLS_VERIFYPEER=NONE"
env -i PATH=/usr/bin:/bin $TLS $FAM \
	IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE" \
	IMAP_CAPABILITY_TLS="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE AUTH=PLAIN" \
	IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_IDLE_TIMEOUT=60 IMAP_ENHANCEDIDLE="$ENHANCEDIDLE" IMAP_MAILBOX_SANITY_CHECK=1 \
	IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH=Trash:7 IMAP_MOVE_EXPUNGE_TO_TRASH=0 IMAP_USELOCKS=1 \
	IMAP_STARTTLS=YES IMAP_TLS_REQUIRED=0 \
	/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=20 -nodnslookup -noidentlookup \
	"$IMAPPORT" /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir &
env -i PATH=/usr/bin:/bin $TLS \
	POP3AUTH="" POP3AUTH_TLS="" POP3_STARTTLS=YES POP3_TLS_REQUIRED=0 \
	/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=40 -maxperip=4 -nodnslookup -noidentlookup \
	"$POP3PORT" /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir &
wait
`

// courierOptions: FAM sets IMAP_ENHANCEDIDLE=1, with which imapd learns
// of new mail from the File Alteration Monitor (gamin's gam_server, started
// on demand by libgamin) instead of looking every IMAP_IDLE_TIMEOUT (60)
// seconds, Debian's default.
type courierOptions struct {
	FAM bool
}

// startCourier runs Courier-IMAP 5.0 and Courier POP3 1.0 (Debian's
// courier-imap and courier-pop, unpacked by setup.sh) with courier-authlib's
// authdaemond and a userdb holding the test user (mail uid 8), Maildir in a
// temporary directory, and returns the upstream for proto ("imap" or
// "pop3"). Both offer STARTTLS/STLS; the capabilities are Debian's defaults:
// AUTH=PLAIN only after STARTTLS on IMAP, no SASL on POP3.
func startCourier(t *testing.T, proto string, opts courierOptions) *upstream {
	t.Helper()
	root := cacheRoot(t, "courier")
	dir := serverDir(t)
	ca := harness.NewCA(t)
	imapAddr, pop3Addr := harness.FreePort(t), harness.FreePort(t)
	const user = "remote-alice"
	home := filepath.Join(dir, "home", user)
	maildir := filepath.Join(home, "Maildir")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownR(t, filepath.Join(dir, "home"), mailUID, mailGID)

	etc := filepath.Join(dir, "etc", "courier")
	key, err := os.ReadFile(ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(etc, "server.pem"), string(key)+string(cert), 0o600)
	if err := os.Chown(filepath.Join(etc, "server.pem"), mailUID, mailGID); err != nil {
		t.Fatal(err)
	}
	// couriertls runs as the user "courier", which Debian's postinst would
	// create: here the mail user, in the namespace's /etc/passwd.
	etcOverlay(t, filepath.Join(dir, "etc"),
		fmt.Sprintf("courier:x:%d:%d:Courier mail server:/var/lib/courier:/usr/sbin/nologin\n", mailUID, mailGID),
		fmt.Sprintf("courier:x:%d:\n", mailGID), "")
	writeFile(t, filepath.Join(etc, "authdaemonrc"), `authmodulelist="authuserdb"
daemons=2
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
`, 0o644)
	// userdb.dat and userdbshadow.dat, as makeuserdb builds them.
	makedat := filepath.Join(root, "usr/lib/courier/courier-authlib/makedatprog")
	for _, db := range []struct{ name, line string }{
		{"userdb", fmt.Sprintf("%s\tuid=%d|gid=%d|home=%s|mail=%s|_=\n", user, mailUID, mailGID, home, maildir)},
		{"userdbshadow", fmt.Sprintf("%s\tsystempw=%s\n", user, upHash)},
	} {
		cmd := exec.Command(makedat, "-", filepath.Join(etc, db.name+".tmp"), filepath.Join(etc, db.name+".dat"))
		cmd.Stdin = strings.NewReader(db.line + ".\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("makedatprog %s: %v\n%s", db.name, err, out)
		}
	}
	enhancedIdle := "0"
	if opts.FAM {
		enhancedIdle = "1"
	}
	script := filepath.Join(dir, "run.sh")
	writeFile(t, script, courierRun, 0o755)

	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
		"sh", script, dir, root, harness.Port(imapAddr), harness.Port(pop3Addr), enhancedIdle)
	d := startDaemon(t, "courier", cmd, filepath.Join(dir, "courier.log"))
	d.stopSig = syscall.SIGKILL // unshare ignores SIGTERM; its child, the namespace's init, dies with it
	d.waitGreeting(t, imapAddr, "* OK")
	d.waitGreeting(t, pop3Addr, "+OK")

	up := &upstream{Proto: proto, StartTLS: true, CA: ca, User: user, Log: d.log}
	if proto == "imap" {
		up.Name, up.Addr = "Courier IMAP", imapAddr
		if opts.FAM {
			up.Name += " with FAM"
		}
		return up
	}
	up.Name, up.Addr = "Courier POP3", pop3Addr
	up.writeMaildrop = func(t *testing.T, msgs [][]byte) { writeMaildir(t, maildir, msgs) }
	return up
}

var maildirSeq atomic.Int64

// writeMaildir delivers msgs into maildir/new as an MDA does (via tmp/,
// then rename), owned by the mail user.
func writeMaildir(t *testing.T, maildir string, msgs [][]byte) {
	t.Helper()
	for _, m := range msgs {
		name := fmt.Sprintf("%d.M%dP%d.rpinterop", time.Now().Unix(), maildirSeq.Add(1), os.Getpid())
		tmp := filepath.Join(maildir, "tmp", name)
		if err := os.WriteFile(tmp, m, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(tmp, mailUID, mailGID); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(maildir, "new", name)); err != nil {
			t.Fatal(err)
		}
	}
}
