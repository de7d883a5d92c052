#!/bin/bash
# Runs the whole test suite in one prove run: the C unit tests
# ($PGBR_UNIT_DIR/test_*), the Perl TAP tests (regress/t/*.t) and the
# pg_regress suite (regress/t/013_pg_regress.t). The last line printed is
# prove's "Result: PASS" or "Result: FAIL"; the exit status is non-zero on
# failure.
#
# Environment:
#   PGBR_BIN          absolute path of the pgbr binary under test (required)
#   PGBR_UNIT_DIR     directory of the unit test executables (optional)
#   PGBR_ASAN         1 when the binaries are an ASan/UBSan build
#   PGBR_TEST_JOBS    test files run in parallel (default 3)
#   PGBR_TESTS        run only these files (e.g. "regress/t/004_cancel.t")
#   PGBR_TEST_KEEP    1 keeps temp dirs (data dirs, logs) after passing tests
#   PG_BINDIR         PostgreSQL server binaries (default: pg_config --bindir)
#
# As root, PostgreSQL runs as the unprivileged user "pgtest" (created if
# missing) in temp dirs under /tmp it owns; prove, pgbr and the clients run
# as the current user. As a normal user everything runs as that user.
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)

if [ -z "${PGBR_BIN:-}" ]; then
    echo "run-tests.sh: PGBR_BIN is not set (use make check)" >&2
    exit 2
fi
if [ ! -x "$PGBR_BIN" ]; then
    echo "run-tests.sh: $PGBR_BIN is not an executable" >&2
    exit 2
fi

if [ -z "${PG_BINDIR:-}" ]; then
    PG_BINDIR=$(pg_config --bindir 2>/dev/null || true)
    if [ -z "$PG_BINDIR" ] || [ ! -x "$PG_BINDIR/initdb" ]; then
        PG_BINDIR=/usr/lib/postgresql/15/bin
    fi
fi
export PG_BINDIR PGBR_BIN
export PATH="$PG_BINDIR:$PATH"

PGUSER_RUN=${PGBR_TEST_PGUSER:-pgtest}
TMPBASE=${PGBR_TEST_TMPDIR:-/tmp}
export PGBR_TEST_PGUSER=$PGUSER_RUN PGBR_TEST_TMPDIR=$TMPBASE

if [ "$(id -u)" = 0 ] && ! id -u "$PGUSER_RUN" >/dev/null 2>&1; then
    useradd -m -s /bin/sh "$PGUSER_RUN" || { echo "run-tests.sh: useradd $PGUSER_RUN failed" >&2; exit 2; }
fi

# One initdb for the whole run; every test copies it (cp -a is ~10x faster
# than initdb on this kind of machine).
TEMPLATE_PARENT=$(mktemp -d "$TMPBASE/pgbr_template_XXXXXX")
chmod 755 "$TEMPLATE_PARENT"
cleanup() { rm -rf "$TEMPLATE_PARENT"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
INITDB=("$PG_BINDIR/initdb" -D "$TEMPLATE_PARENT/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions)
if [ "$(id -u)" = 0 ]; then
    chown "$PGUSER_RUN" "$TEMPLATE_PARENT"
    (cd "$TEMPLATE_PARENT" && runuser -u "$PGUSER_RUN" -- "${INITDB[@]}") >"$TEMPLATE_PARENT/initdb.log" 2>&1
else
    "${INITDB[@]}" >"$TEMPLATE_PARENT/initdb.log" 2>&1
fi
if [ -f "$TEMPLATE_PARENT/data/PG_VERSION" ]; then
    export PGBR_TEST_INITDB_TEMPLATE="$TEMPLATE_PARENT/data"
else
    echo "run-tests.sh: initdb for the template failed; each test runs its own initdb" >&2
    cat "$TEMPLATE_PARENT/initdb.log" >&2
fi

if [ "${PGBR_ASAN:-}" = 1 ]; then
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:print_stacktrace=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export PGBR_TEST_TIMEOUT=${PGBR_TEST_TIMEOUT:-900}
fi

TESTS=()
if [ -n "${PGBR_TESTS:-}" ]; then
    # shellcheck disable=SC2206
    TESTS=($PGBR_TESTS)
else
    if [ -n "${PGBR_UNIT_DIR:-}" ] && [ -d "$PGBR_UNIT_DIR" ]; then
        for f in "$PGBR_UNIT_DIR"/test_*; do
            [ -f "$f" ] && [ -x "$f" ] && TESTS+=("$f")
        done
    fi
    # Slowest first, so parallel runs finish together.
    for f in regress/t/002_pgbench.t regress/t/003_copy.t regress/t/007_malformed.t regress/t/006_tls.t; do
        [ -f "$f" ] && TESTS+=("$f")
    done
    for f in regress/t/*.t; do
        case " ${TESTS[*]} " in *" $f "*) ;; *) TESTS+=("$f") ;; esac
    done
fi

echo "pgbr test suite: $PGBR_BIN${PGBR_ASAN:+ (ASan)}, PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'), ${#TESTS[@]} test files"
# prove runs compiled unit tests directly and .t files with perl.
prove -I "$ROOT/regress/t/lib" --timer -j "${PGBR_TEST_JOBS:-3}" "${TESTS[@]}"
