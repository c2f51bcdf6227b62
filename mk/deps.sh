#!/bin/sh
# Installs from Debian's packages whatever of Postern's build and test
# dependencies is missing.  Needs root (or nothing to install).
set -e

PKGS="gcc make pkg-config byacc libbsd-dev libmd-dev libevent-dev libtls-dev
libsqlite3-dev libjansson-dev libargon2-dev libexpat1-dev clang
libclang-rt-14-dev mandoc python3 python3-pytest python3-pytest-xdist swaks libnet-ssleay-perl
openssl sqlite3 procps isync"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root to install)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || apt-get update
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
