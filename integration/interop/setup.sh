#!/usr/bin/env bash
# Fetches the upstream servers `make interop` runs remote_pull against:
# Cyrus IMAP, Courier IMAP and POP3, GNU Mailutils imap4d and pop3d, popa3d.
#
# Their Debian packages conflict with Dovecot (imap-server, pop3-server) or
# start system services, so they are NOT installed: `apt-get download` and
# `dpkg -x` unpack each server into its own directory of the cache, and the
# tests run the daemons from there, in the foreground, on loopback high ports.
# Only the shared libraries those programs link against are installed with
# apt-get (lib* packages and mailutils-common; nothing that conflicts with
# Dovecot or runs a service of its own). Needs root, or sudo, when something
# is missing; a second run with everything in place changes nothing.
#
#   cache: $REMOTE_PULL_INTEROP_CACHE (default /var/tmp/remote_pull-interop;
#          not under a home directory: the daemons run as the mail user and
#          must be able to reach their programs)
#          cyrus/ courier/ mailutils/ popa3d/   one unpacked root each
#          debs/                                 the downloaded packages
#
# Any failure stops here with a message: nothing is skipped.
set -euo pipefail

cache="${REMOTE_PULL_INTEROP_CACHE:-/var/tmp/remote_pull-interop}"

# Server → Debian packages unpacked into cache/SERVER.
declare -A pkgs=(
	[cyrus]="cyrus-common cyrus-imapd sasl2-bin"
	[courier]="courier-base courier-imap courier-pop courier-authlib courier-authdaemon courier-authlib-userdb"
	[mailutils]="mailutils-imap4d mailutils-pop3d"
	[popa3d]="popa3d"
)
servers="cyrus courier mailutils popa3d"

die() {
	echo "interop setup: $*" >&2
	exit 1
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install packages; the tests themselves need root too (mount namespaces, daemons that switch users)"
	sudo="sudo"
fi
for tool in apt-get apt-cache dpkg dpkg-deb unshare mount; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: the interop servers are Debian packages, this needs a Debian-like system"
done
export DEBIAN_FRONTEND=noninteractive

updated=""
apt_update() {
	if [ -z "$updated" ]; then
		echo "interop setup: apt-get update" >&2
		$sudo apt-get update -qq || die "apt-get update failed"
		updated=1
	fi
}

# candidate PKG: the version apt would take, empty if unknown.
candidate() {
	apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'
}

mkdir -p "$cache/debs"
chmod 755 "$cache"
# The mail user must reach the programs: every directory above the cache
# has to be searchable by others.
d="$(cd "$cache" && pwd)"
while [ "$d" != "/" ]; do
	[ "$(stat -c %A "$d" | cut -c10)" = "x" ] || [ "$(stat -c %A "$d" | cut -c10)" = "t" ] ||
		die "$d is not searchable by other users: the daemons, which run as the mail user, could not reach $cache; set REMOTE_PULL_INTEROP_CACHE elsewhere"
	d="$(dirname "$d")"
done
for s in $servers; do
	want=""
	for p in ${pkgs[$s]}; do
		v="$(candidate "$p")"
		if [ -z "$v" ] || [ "$v" = "(none)" ]; then
			apt_update
			v="$(candidate "$p")"
		fi
		[ -n "$v" ] && [ "$v" != "(none)" ] || die "no Debian package $p (for $s) in the apt sources"
		want="$want $p=$v"
	done
	stamp="$cache/$s/.unpacked"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		continue
	fi
	echo "interop setup: unpacking$want into $cache/$s" >&2
	rm -rf "$cache/$s" "$cache/debs/$s"
	mkdir -p "$cache/debs/$s"
	(
		cd "$cache/debs/$s"
		# apt-get download runs as root here; _apt cannot write the cache.
		apt-get download -q $want >/dev/null 2>&1 || {
			apt_update
			apt-get download -q $want >/dev/null
		}
	) || die "apt-get download $want failed"
	mkdir -p "$cache/$s"
	for deb in "$cache/debs/$s"/*.deb; do
		dpkg -x "$deb" "$cache/$s" || die "dpkg -x $deb failed"
	done
	echo "$want" >"$stamp"
done

# The shared libraries the unpacked programs need: every lib* package (and
# mailutils-common, the Mailutils libraries' data) they depend on. For an
# alternative "a | b" the first is taken, as apt would.
libs=""
for deb in "$cache"/debs/*/*.deb; do
	deps="$(dpkg-deb -f "$deb" Pre-Depends Depends | sed -n 's/^[A-Za-z-]*: //p' | tr ',' '\n' |
		sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/^ *//' -e 's/ *$//')"
	for d in $deps; do
		case "$d" in
		lib*|mailutils-common) libs="$libs $d" ;;
		esac
	done
done
libs="$(echo $libs | tr ' ' '\n' | sort -u | tr '\n' ' ')"
missing=""
for l in $libs; do
	dpkg-query -W -f='${Status}' "$l" 2>/dev/null | grep -q "install ok installed" || missing="$missing $l"
done
if [ -n "$missing" ]; then
	apt_update
	echo "interop setup: installing libraries:$missing" >&2
	$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install$missing failed"
fi

# Every program must find its libraries: the unpacked roots' own plus the
# system's. A missing one fails here rather than as a daemon that never greets.
ld_path() {
	local p="$1/usr/lib" d
	for d in "$1"/usr/lib/*-linux-gnu* "$1"/usr/lib/courier-authlib; do
		[ -d "$d" ] && p="$p:$d"
	done
	echo "$p"
}
bad=""
for s in $servers; do
	root="$cache/$s"
	ldpath="$(ld_path "$root")"
	while IFS= read -r f; do
		[ "$(head -c4 "$f" | tr -d '\177')" = "ELF" ] || continue
		out="$(LD_LIBRARY_PATH="$ldpath" ldd "$f" 2>/dev/null | grep 'not found' || true)"
		[ -z "$out" ] || bad="$bad
$f:
$out"
	done < <(find "$root/usr/sbin" "$root/usr/bin" "$root/usr/lib/cyrus/bin" "$root/usr/lib/courier" -type f -perm -u+x 2>/dev/null)
done
[ -z "$bad" ] || die "unresolved libraries:$bad"

# Courier and popa3d run in a private mount namespace with overlays on /etc,
# /usr and /var/lib (see courier_test.go): that must work here.
probe="$(mktemp -d)"
mkdir -p "$probe/lower" "$probe/mnt"
if ! $sudo unshare --mount --propagation private sh -c "mount -t overlay overlay -o lowerdir=$probe/lower:/etc $probe/mnt" 2>"$probe/err"; then
	err="$(cat "$probe/err")"
	rm -rf "$probe"
	die "mount namespaces with overlayfs do not work here ($err); the Courier and popa3d tests need them (root, CAP_SYS_ADMIN, the overlay filesystem)"
fi
rm -rf "$probe"

echo "interop setup: servers ready in $cache" >&2
