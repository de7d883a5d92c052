#!/bin/sh
# Installs every Debian package that building, testing, the demo and the
# benchmarks of pgbr need. Idempotent: when everything is present it only
# runs dpkg-query and exits in well under a second.
# `install-deps.sh fuzz` also installs clang for `make fuzz`.
set -eu

PKGS="build-essential pkg-config bison flex
postgresql-15 postgresql-client-15 libpq-dev
libevent-dev libssl-dev libcurl4-openssl-dev libzstd-dev zstd libjansson-dev
libipc-run-perl libtest-simple-perl perl
pgbouncer python3-psycopg openssl procps iproute2 curl"
if [ "${1:-}" = fuzz ]; then
    PKGS="$PKGS clang"
fi

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in
        ii*) ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root (or with sudo) to install them" >&2
    exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q </dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing </dev/null
