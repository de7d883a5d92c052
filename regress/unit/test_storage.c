/*
 * test_storage.c - unit tests for the storage layer (src/storage/): URL
 * schemes and their errors, confinement to external_io_dir (.., absolute
 * paths, symlinks present at open or made later), write-once streaming
 * writes, ranged reads, listings, stat and deletes. Works in a mkdtemp
 * directory that it removes at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgbr/storage.h"
#include "tap.h"
#include "testutil.h"

static char base[256];     /* the temp dir holding everything */
static char ext[300];      /* external_io_dir */
static char outside[300];  /* a directory next to it, never to be touched */
static storage_config cfg;

/* ---- helpers ----------------------------------------------------------------- */

/* Path under ext (a static buffer: use before the next call). */
static const char *in_ext(const char *rel)
{
    static char buf[2][600];
    static int i;

    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "%s/%s", ext, rel);
    return buf[i];
}

static bool exists(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0;
}

/* Files in a real directory whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    char cmd[1024];
    FILE *f;
    int n = 0;
    char line[512];

    snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null", dir);
    if ((f = popen(cmd, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            n++;
    pclose(f);
    return n;
}

/* Open url, expecting failure with sqlstate; returns the message (static). */
static const char *open_fails(const char *url, const char *sqlstate)
{
    static char msg[1024];
    pgbr_error err = PGBR_ERROR_INIT;
    storage *st = storage_open(url, &cfg, &err);

    msg[0] = '\0';
    if (st != NULL) {
        storage_close(st);
        tap_ok(0, "storage_open(%s) fails with %s", url, sqlstate);
        return msg;
    }
    snprintf(msg, sizeof msg, "%s", err.message ? err.message : "");
    if (!tap_ok(strcmp(err.sqlstate, sqlstate) == 0, "storage_open(%s) fails with %s", url, sqlstate))
        tap_diag("got %s: %s", err.sqlstate, msg);
    pgbr_error_clear(&err);
    return msg;
}

static storage *open_ok(const char *url)
{
    pgbr_error err = PGBR_ERROR_INIT;
    storage *st = storage_open(url, &cfg, &err);

    if (!tap_ok(st != NULL, "storage_open(%s) succeeds", url))
        tap_diag("%s: %s", err.sqlstate, err.message);
    pgbr_error_clear(&err);
    return st;
}

static bool put(storage *st, const char *path, const char *text)
{
    pgbr_error err = PGBR_ERROR_INIT;
    bool ok = storage_put(st, path, text, strlen(text), &err);

    if (!ok)
        tap_diag("put %s: %s", path, err.message);
    pgbr_error_clear(&err);
    return ok;
}

typedef struct listing {
    char text[4096];   /* "path:size " for each file */
    int n;
    int stop_after;    /* 0 = never */
    bool set_error;
} listing;

static bool list_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    listing *l = arg;
    size_t len = strlen(l->text);

    snprintf(l->text + len, sizeof l->text - len, "%s:%llu ", info->path, (unsigned long long)info->size);
    l->n++;
    if (l->set_error)
        return pgbr_error_set(err, "XX000", "callback failed");
    return l->stop_after == 0 || l->n < l->stop_after;
}

static const char *list_text(storage *st, const char *prefix)
{
    static listing l;
    pgbr_error err = PGBR_ERROR_INIT;

    memset(&l, 0, sizeof l);
    if (!storage_list(st, prefix, list_cb, &l, &err)) {
        snprintf(l.text, sizeof l.text, "ERROR %s: %s", err.sqlstate, err.message);
        pgbr_error_clear(&err);
    }
    return l.text;
}

/* ---- schemes and URLs ----------------------------------------------------------- */

static void test_schemes(void)
{
    const char *msg;
    const char *not_yet[] = { "s3", "gs", "azure-blob", "azure", "azure-storage", "http", "https" };
    storage *st;
    pgbr_error err = PGBR_ERROR_INIT;

    msg = open_fails("ftp://host/x", "0A000");
    tap_is_str(msg, "unsupported storage scheme: \"ftp\" - refer to docs to find supported storage schemes",
               "unknown scheme: CockroachDB's message");
    msg = open_fails("/tmp/backups", "0A000");
    tap_is_str(msg, "unsupported storage scheme: \"\" - refer to docs to find supported storage schemes",
               "no scheme at all: the same message with an empty scheme");
    for (size_t i = 0; i < sizeof not_yet / sizeof not_yet[0]; i++) {
        char url[128], want[128];

        snprintf(url, sizeof url, "%s://bucket/path?AUTH=implicit", not_yet[i]);
        snprintf(want, sizeof want, "%s storage is not implemented yet", not_yet[i]);
        msg = open_fails(url, "0A000");
        tap_is_str(msg, want, "%s: not implemented yet", not_yet[i]);
    }
    msg = open_fails("S3://bucket/x", "0A000");
    tap_is_str(msg, "s3 storage is not implemented yet", "schemes are case-insensitive");
    msg = open_fails("userfile:///backups", "0A000");
    tap_is_str(msg, "userfile storage is not supported by pgbr", "userfile: not supported");
    st = storage_open("userfile:///backups", &cfg, &err);
    tap_ok(st == NULL && err.hint != NULL && strstr(err.hint, "nodelocal://self/") != NULL &&
               strstr(err.hint, "file:///") != NULL,
           "userfile: the HINT names the alternatives");
    pgbr_error_clear(&err);
    msg = open_fails("external://my_conn/sub", "0A000");
    tap_is_str(msg, "external connections are not supported yet", "external://: not yet");
    open_fails("nodelocal:/1/x", "22023");

    /* query parameters, fragments, escapes */
    msg = open_fails("nodelocal://1/x?foo=1&bar", "22023");
    tap_is_str(msg, "unknown query parameters: foo, bar", "query parameters of nodelocal are named");
    msg = open_fails("file:///tmp/x?AWS_ACCESS_KEY_ID=1", "22023");
    tap_is_str(msg, "unknown query parameters: AWS_ACCESS_KEY_ID", "file URLs take no query parameters");
    st = open_ok("nodelocal://1/x?");
    storage_close(st);
    open_fails("nodelocal://1/x#frag", "22023");
    open_fails("nodelocal://1/x%zz", "22023");
    open_fails("nodelocal://1/x%0", "22023");
    open_fails("nodelocal://1/x%00y", "22023");
    msg = open_fails("nodelocal://1/%2e%2e/x", "42501");
    tap_ok(strstr(msg, "leads outside external_io_dir") != NULL, "an escaped .. is still ..");
    st = open_ok("nodelocal://1/with%20space");
    if (st != NULL) {
        tap_ok(put(st, "f", "x") && exists(in_ext("with space/f")), "escapes are decoded in paths");
        storage_close(st);
    }
}

static void test_nodes_and_config(void)
{
    storage_config saved = cfg;
    const char *msg;
    storage *st;
    pgbr_error err = PGBR_ERROR_INIT;

    storage_close(open_ok("nodelocal://0/n"));
    storage_close(open_ok("nodelocal://self/n"));
    storage_close(open_ok("nodelocal://SELF/n"));
    storage_close(open_ok("nodelocal://1/n"));
    msg = open_fails("nodelocal://2/n", "0A000");
    tap_is_str(msg, "nodelocal storage of node 2 cannot be reached from node 1", "another node: single-node");
    open_fails("nodelocal://abc/n", "22023");
    open_fails("nodelocal:///n", "22023");
    open_fails("nodelocal://-1/n", "22023");
    msg = open_fails("nodelocal://user:secret@1/n", "22023");
    tap_ok(strstr(msg, "secret") == NULL && strstr(msg, "redacted") != NULL, "URLs in errors are redacted");

    cfg.node_id = 7;
    storage_close(open_ok("nodelocal://7/n"));
    msg = open_fails("nodelocal://1/n", "0A000");
    tap_is_str(msg, "nodelocal storage of node 1 cannot be reached from node 7", "node 1 is not node 7");
    cfg.node_id = 1;

    cfg.external_io_dir = NULL;
    msg = open_fails("nodelocal://1/n", "0A000");
    tap_is_str(msg, "nodelocal storage is not available: external_io_dir is not set", "no external_io_dir");
    st = storage_open("file:///tmp/x", &cfg, &err);
    tap_ok(st == NULL && err.hint != NULL && strstr(err.hint, "--external-io-dir") != NULL,
           "the HINT says to set --external-io-dir");
    pgbr_error_clear(&err);
    cfg.external_io_dir = "";
    open_fails("file:///tmp/x", "0A000");
    cfg.external_io_dir = "disabled";
    msg = open_fails("nodelocal://1/n", "0A000");
    tap_is_str(msg, "nodelocal storage is disabled (external_io_dir = disabled)", "external_io_dir = disabled");
    cfg.external_io_dir = "/nonexistent/pgbr/extern";
    open_fails("nodelocal://1/n", "58P01");
    cfg = saved;

    st = open_ok("nodelocal://1/coll///");
    if (st != NULL)
        tap_is_str(storage_display_url(st), "nodelocal://1/coll", "display URL drops trailing slashes");
    storage_close(st);
}

/* ---- confinement -------------------------------------------------------------------- */

static void test_confinement(void)
{
    char url[1024], link[512];
    const char *msg;
    storage *st;
    pgbr_error err = PGBR_ERROR_INIT;
    storage_info info;

    msg = open_fails("nodelocal://1/../x", "42501");
    tap_is_str(msg, "storage URL \"nodelocal://1/../x\" leads outside external_io_dir", ".. in nodelocal");
    open_fails("nodelocal://1/a/../b", "42501");
    open_fails("nodelocal://1/..", "42501");

    /* file:// inside, outside, via .. and a look-alike prefix */
    snprintf(url, sizeof url, "file://%s/fcoll", ext);
    st = open_ok(url);
    if (st != NULL) {
        tap_ok(put(st, "a/f", "data") && exists(in_ext("fcoll/a/f")), "file:// inside external_io_dir writes there");
        storage_close(st);
    }
    snprintf(url, sizeof url, "file://localhost%s/fcoll2", ext);
    storage_close(open_ok(url));
    snprintf(url, sizeof url, "file://%s", ext);
    storage_close(open_ok(url));
    snprintf(url, sizeof url, "file://%s/x", outside);
    msg = open_fails(url, "42501");
    tap_ok(strstr(msg, "leads outside external_io_dir") != NULL, "file:// outside: %s", msg);
    snprintf(url, sizeof url, "file://%s/../outside/x", ext);
    open_fails(url, "42501");
    snprintf(url, sizeof url, "file://%sevil/x", ext);
    open_fails(url, "42501");
    open_fails("file:///etc", "42501");
    snprintf(url, sizeof url, "file://otherhost%s/x", ext);
    open_fails(url, "22023");

    /* external_io_dir given through a symlink: both spellings are inside */
    snprintf(link, sizeof link, "%s/extlink", base);
    if (symlink(ext, link) == 0) {
        storage_config saved = cfg;

        cfg.external_io_dir = link;
        snprintf(url, sizeof url, "file://%s/viaLink", link);
        storage_close(open_ok(url));
        snprintf(url, sizeof url, "file://%s/viaReal", ext);
        storage_close(open_ok(url));
        cfg = saved;
    }

    /* a symlink present at open that leads out */
    snprintf(link, sizeof link, "%s", in_ext("escape"));
    tap_ok(symlink(outside, link) == 0, "made a symlink leading out of external_io_dir");
    msg = open_fails("nodelocal://1/escape", "42501");
    tap_ok(strstr(msg, "nodelocal://1/escape") != NULL && strstr(msg, "symbolic link") != NULL,
           "symlink escape: the message names the URL: %s", msg);
    open_fails("nodelocal://1/escape/deeper", "42501");
    snprintf(url, sizeof url, "file://%s/escape/x", ext);
    open_fails(url, "42501");

    /* a symlink made after open: every operation walks again */
    st = open_ok("nodelocal://1/late");
    tap_ok(symlink(outside, in_ext("late")) == 0, "made a symlink after storage_open");
    if (st != NULL) {
        tap_ok(!storage_put(st, "f", "x", 1, &err) && strcmp(err.sqlstate, "42501") == 0,
               "a write through a later symlink is refused");
        pgbr_error_clear(&err);
        tap_ok(storage_read_open(st, "f", 0, -1, &err) == NULL && strcmp(err.sqlstate, "42501") == 0,
               "a read through it is refused");
        pgbr_error_clear(&err);
        tap_ok(!storage_stat(st, "f", &info, &err) && strcmp(err.sqlstate, "42501") == 0,
               "a stat through it is refused");
        pgbr_error_clear(&err);
        tap_is_str(list_text(st, ""), "ERROR 42501: access to \"nodelocal://1/late\" is refused: pgbr does "
                   "not follow symbolic links below external_io_dir", "a listing through it is refused");
        storage_close(st);
    }

    /* symlinks inside a location: not followed, not listed, removed as links */
    st = open_ok("nodelocal://1/coll");
    if (st != NULL) {
        tap_ok(put(st, "real/f", "x"), "wrote coll/real/f");
        tap_ok(symlink(outside, in_ext("coll/dlink")) == 0 && symlink("/etc/passwd", in_ext("coll/flink")) == 0,
               "made a directory and a file symlink inside the location");
        tap_ok(!storage_put(st, "dlink/f", "x", 1, &err) && strcmp(err.sqlstate, "42501") == 0,
               "write below a directory symlink: 42501");
        pgbr_error_clear(&err);
        tap_ok(storage_read_open(st, "flink", 0, -1, &err) == NULL && strcmp(err.sqlstate, "42501") == 0,
               "read of a file symlink: 42501");
        pgbr_error_clear(&err);
        tap_is_str(list_text(st, ""), "real/f:1 ", "symlinks are not listed");
        tap_ok(!storage_put(st, "../x", "x", 1, &err) && strcmp(err.sqlstate, "42501") == 0 &&
                   strcmp(err.message, "storage path \"../x\" leads outside \"nodelocal://1/coll\"") == 0,
               ".. in a storage path: 42501");
        pgbr_error_clear(&err);
        tap_ok(!storage_put(st, "a/../../x", "x", 1, &err) && strcmp(err.sqlstate, "42501") == 0,
               "a/../../x: 42501");
        pgbr_error_clear(&err);
        tap_ok(!storage_put(st, "a/.pgbr-tmp.x", "x", 1, &err) && strcmp(err.sqlstate, "22023") == 0,
               "the temporary prefix is reserved");
        pgbr_error_clear(&err);
        tap_ok(!storage_put(st, "/", "x", 1, &err) && strcmp(err.sqlstate, "22023") == 0,
               "an empty file path: 22023");
        pgbr_error_clear(&err);
        tap_ok(storage_delete_prefix(st, "dlink", &err) && !exists(in_ext("coll/dlink")) && exists(outside),
               "delete_prefix of a symlink removes the link, not its target");
        pgbr_error_clear(&err);
        tap_ok(storage_delete(st, "flink", &err) && !exists(in_ext("coll/flink")) && exists("/etc/passwd"),
               "delete of a file symlink removes the link");
        pgbr_error_clear(&err);
        storage_close(st);
    }
    tap_is_int(count_prefixed(outside, ""), 0, "nothing was ever written outside external_io_dir");
}

/* ---- writes ------------------------------------------------------------------------------ */

static void test_writes(storage *st)
{
    pgbr_error err = PGBR_ERROR_INIT;
    storage_write *w, *w2;
    storage_info info;
    char *text;
    size_t len;

    w = storage_write_open(st, "w/deep/er/file", &err);
    tap_ok(w != NULL, "write_open creates parent directories");
    if (w == NULL)
        return;
    tap_ok(storage_write_data(w, "hello ", 6, &err) && storage_write_data(w, "world", 5, &err) &&
               storage_write_data(w, "", 0, &err),
           "write_data in pieces");
    tap_ok(!exists(in_ext("wcoll/w/deep/er/file")), "before commit the final name does not exist");
    tap_ok(storage_stat(st, "w/deep/er/file", &info, &err) && !info.exists, "stat does not see it either");
    tap_is_int(count_prefixed(in_ext("wcoll/w/deep/er"), ".pgbr-tmp."), 1, "the data is in a temporary file");
    tap_is_str(list_text(st, ""), "", "the temporary file is never listed");
    tap_ok(storage_write_commit(w, &err), "commit");
    tap_ok(exists(in_ext("wcoll/w/deep/er/file")), "after commit the file exists");
    tap_is_int(count_prefixed(in_ext("wcoll/w/deep/er"), ".pgbr-tmp."), 0, "no temporary file is left");
    tap_ok(storage_get(st, "w/deep/er/file", 100, &text, &len, &err) && len == 11 &&
               strcmp(text, "hello world") == 0,
           "the content is what was written");
    free(text);

    w = storage_write_open(st, "w/deep/er/file", &err);
    tap_ok(w == NULL && strcmp(err.sqlstate, "58P02") == 0, "write_open over an existing file: 58P02");
    tap_is_str(err.message, "file \"nodelocal://1/wcoll/w/deep/er/file\" already exists", "its message");
    pgbr_error_clear(&err);

    /* abort */
    w = storage_write_open(st, "w/aborted", &err);
    tap_ok(w != NULL && storage_write_data(w, "xyz", 3, &err), "a second write");
    storage_write_abort(w);
    tap_is_int(count_prefixed(in_ext("wcoll/w"), ".pgbr-tmp."), 0, "abort removes the temporary file");
    tap_ok(!exists(in_ext("wcoll/w/aborted")), "abort leaves no file");
    storage_write_abort(NULL);

    /* two writers race for one name: the second commit fails, the first wins */
    w = storage_write_open(st, "w/race", &err);
    w2 = storage_write_open(st, "w/race", &err);
    tap_ok(w != NULL && w2 != NULL, "two writers of one new name");
    if (w != NULL && w2 != NULL) {
        storage_write_data(w, "first", 5, &err);
        storage_write_data(w2, "second", 6, &err);
        tap_ok(storage_write_commit(w, &err), "the first commit succeeds");
        tap_ok(!storage_write_commit(w2, &err) && strcmp(err.sqlstate, "58P02") == 0,
               "committing over an existing file fails with 58P02");
        pgbr_error_clear(&err);
        tap_ok(storage_get(st, "w/race", 100, &text, &len, &err) && strcmp(text, "first") == 0,
               "the file was never rewritten");
        free(text);
        tap_is_int(count_prefixed(in_ext("wcoll/w"), ".pgbr-tmp."), 0, "the failed commit left no temporary file");
    }

    /* put/get edge cases */
    tap_ok(storage_put(st, "empty", "", 0, &err), "put of an empty file");
    tap_ok(storage_get(st, "empty", 10, &text, &len, &err) && len == 0 && text != NULL && text[0] == '\0',
           "get of an empty file gives an empty string");
    free(text);
    tap_ok(!storage_get(st, "w/race", 4, &text, &len, &err) && strcmp(err.sqlstate, "54000") == 0 && text == NULL,
           "get of a file larger than max_size: 54000");
    pgbr_error_clear(&err);
    tap_ok(storage_get(st, "w/race", 5, &text, &len, &err) && len == 5, "max_size equal to the size is fine");
    free(text);
    tap_ok(!storage_put(st, "w/race/sub", "x", 1, &err) && strcmp(err.sqlstate, "42809") == 0,
           "a file in the way of a directory: 42809");
    pgbr_error_clear(&err);

    /* a failed write: the OS message, and a commit that publishes nothing */
    {
        struct rlimit saved, small = { 10, 10 };
        static char data[100];

        getrlimit(RLIMIT_FSIZE, &saved);
        small.rlim_max = saved.rlim_max;
        signal(SIGXFSZ, SIG_IGN);
        w = storage_write_open(st, "w/toolarge", &err);
        setrlimit(RLIMIT_FSIZE, &small);
        tap_ok(w != NULL && !storage_write_data(w, data, sizeof data, &err) && strcmp(err.sqlstate, "58030") == 0 &&
                   strstr(err.message, "could not write file \"nodelocal://1/wcoll/w/toolarge\": File too large"),
               "a failed write: 58030 with the OS message");
        setrlimit(RLIMIT_FSIZE, &saved);
        signal(SIGXFSZ, SIG_DFL);
        pgbr_error_clear(&err);
        tap_ok(w != NULL && !storage_write_data(w, "x", 1, &err), "later writes fail too");
        pgbr_error_clear(&err);
        tap_ok(w != NULL && !storage_write_commit(w, &err) && strcmp(err.sqlstate, "58030") == 0,
               "commit after a failed write fails");
        pgbr_error_clear(&err);
        tap_ok(!exists(in_ext("wcoll/w/toolarge")) && count_prefixed(in_ext("wcoll/w"), ".pgbr-tmp.") == 0,
               "and publishes nothing, leaving no temporary file");
    }
}

/* ---- reads ----------------------------------------------------------------------------- */

static void test_reads(storage *st)
{
    pgbr_error err = PGBR_ERROR_INIT;
    storage_write *w = storage_write_open(st, "r/big", &err);
    static unsigned char block[65536], got[1 << 20];
    unsigned char one;
    storage_read *r;
    size_t total = 0;
    ssize_t n;
    bool same = true;

    for (size_t i = 0; i < sizeof block; i++)
        block[i] = (unsigned char)(i * 7 + 3);
    for (int i = 0; w != NULL && i < 16; i++)
        storage_write_data(w, block, sizeof block, &err);
    tap_ok(w != NULL && storage_write_commit(w, &err), "wrote 1 MiB in 64 KiB pieces");

    r = storage_read_open(st, "r/big", 0, -1, &err);
    while (r != NULL && total < sizeof got) {
        size_t want = sizeof got - total < 1000 ? sizeof got - total : 1000;

        if ((n = storage_read_data(r, got + total, want, &err)) <= 0)
            break;
        total += (size_t)n;
    }
    tap_is_int(r != NULL ? storage_read_data(r, &one, 1, &err) : -1, 0, "then the end of the file");
    storage_read_close(r);
    tap_is_int(total, 1 << 20, "a whole read in 1000-byte pieces gives 1 MiB");
    for (size_t i = 0; i < total; i++)
        same = same && got[i] == block[i % sizeof block];
    tap_ok(same, "the bytes are the ones written");

    r = storage_read_open(st, "r/big", 65530, 20, &err);
    n = r != NULL ? storage_read_data(r, got, sizeof got, &err) : -1;
    tap_is_int(n, 20, "a ranged read returns the length asked");
    tap_ok(n == 20 && memcmp(got, block + 65530, 6) == 0 && memcmp(got + 6, block, 14) == 0,
           "from the offset asked");
    tap_is_int(r != NULL ? storage_read_data(r, got, sizeof got, &err) : -1, 0, "then the end of the range");
    storage_read_close(r);

    r = storage_read_open(st, "r/big", (1 << 20) - 10, -1, &err);
    tap_is_int(r != NULL ? storage_read_data(r, got, sizeof got, &err) : -1, 10, "offset to the end");
    storage_read_close(r);
    r = storage_read_open(st, "r/big", (1 << 20) - 10, 100, &err);
    tap_is_int(r != NULL ? storage_read_data(r, got, sizeof got, &err) : -1, 10, "a range past the end is short");
    storage_read_close(r);
    r = storage_read_open(st, "r/big", 5u << 20, -1, &err);
    tap_is_int(r != NULL ? storage_read_data(r, got, sizeof got, &err) : -1, 0, "an offset past the end is empty");
    storage_read_close(r);
    r = storage_read_open(st, "r/big", 0, 0, &err);
    tap_is_int(r != NULL ? storage_read_data(r, got, sizeof got, &err) : -1, 0, "length 0 reads nothing");
    storage_read_close(r);

    r = storage_read_open(st, "r/missing", 0, -1, &err);
    tap_ok(r == NULL && strcmp(err.sqlstate, "58P01") == 0, "a missing file: 58P01");
    tap_is_str(err.message, "file \"nodelocal://1/wcoll/r/missing\" does not exist", "its message");
    pgbr_error_clear(&err);
    r = storage_read_open(st, "nodir/sub/f", 0, -1, &err);
    tap_ok(r == NULL && strcmp(err.sqlstate, "58P01") == 0, "a missing directory: 58P01");
    pgbr_error_clear(&err);
    r = storage_read_open(st, "r/big/f", 0, -1, &err);
    tap_ok(r == NULL && strcmp(err.sqlstate, "58P01") == 0, "a file in place of a directory: 58P01");
    pgbr_error_clear(&err);
    r = storage_read_open(st, "r", 0, -1, &err);
    tap_ok(r == NULL && strcmp(err.sqlstate, "42809") == 0, "reading a directory: 42809");
    pgbr_error_clear(&err);
    r = storage_read_open(st, "r/big", 0, -2, &err);
    tap_ok(r == NULL && strcmp(err.sqlstate, "22023") == 0, "a negative length other than -1: 22023");
    pgbr_error_clear(&err);
}

/* ---- listings, stat, delete ------------------------------------------------------------------ */

static void test_listing(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    storage *st = open_ok("nodelocal://self/lcoll");
    storage_write *pending;
    storage_info info;
    listing l;

    if (st == NULL)
        return;
    tap_is_str(list_text(st, ""), "", "a location that does not exist yet lists nothing");
    put(st, "b", "bb");
    put(st, "a/z", "z");
    put(st, "a-c", "ccc");
    put(st, "a/b/c", "");
    put(st, "metadata/latest/x", "1234");
    pending = storage_write_open(st, "a/pending", &err);
    tap_is_str(list_text(st, ""), "a-c:3 a/b/c:0 a/z:1 b:2 metadata/latest/x:4 ",
               "recursive listing in bytewise order with sizes");
    tap_is_str(list_text(st, "a"), "a/b/c:0 a/z:1 ", "listing a prefix directory");
    tap_is_str(list_text(st, "/a/"), "a/b/c:0 a/z:1 ", "slashes around the prefix do not matter");
    tap_is_str(list_text(st, "nope"), "", "a missing prefix lists nothing");
    tap_is_str(list_text(st, "b"), "", "a prefix naming a file lists nothing");
    tap_ok(strncmp(list_text(st, "a/../.."), "ERROR 42501", 11) == 0, "a prefix with .. is refused");
    storage_write_abort(pending);

    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    tap_ok(storage_list(st, "", list_cb, &l, &err) && l.n == 2, "a callback can stop the listing");
    memset(&l, 0, sizeof l);
    l.set_error = true;
    tap_ok(!storage_list(st, "", list_cb, &l, &err) && l.n == 1 && strcmp(err.message, "callback failed") == 0,
           "a callback's error ends the listing with that error");
    pgbr_error_clear(&err);

    tap_ok(storage_stat(st, "a-c", &info, &err) && info.exists && info.size == 3 && info.mtime > 0,
           "stat of a file");
    tap_ok(storage_stat(st, "nope/x", &info, &err) && !info.exists && !pgbr_error_is_set(&err),
           "stat of a missing file: not there, no error");
    tap_ok(storage_stat(st, "a", &info, &err) && !info.exists, "a directory is not a file");

    tap_ok(storage_delete(st, "a-c", &err) && !exists(in_ext("lcoll/a-c")), "delete a file");
    tap_ok(storage_delete(st, "a-c", &err), "delete of a missing file is fine");
    tap_ok(storage_delete(st, "zz/top/f", &err), "delete in a missing directory is fine");
    tap_ok(!storage_delete(st, "a", &err) && strcmp(err.sqlstate, "42809") == 0, "delete of a directory: 42809");
    pgbr_error_clear(&err);
    tap_ok(storage_delete_prefix(st, "a", &err) && !exists(in_ext("lcoll/a")), "delete_prefix removes a tree");
    tap_is_str(list_text(st, ""), "b:2 metadata/latest/x:4 ", "the rest stays");
    tap_ok(storage_delete_prefix(st, "a", &err), "delete_prefix of a missing prefix is fine");
    tap_ok(storage_delete_prefix(st, "b", &err) && !exists(in_ext("lcoll/b")), "delete_prefix of a file removes it");
    tap_ok(!storage_delete_prefix(st, "", &err) && strcmp(err.sqlstate, "22023") == 0,
           "delete_prefix of the whole location is refused");
    pgbr_error_clear(&err);
    tap_ok(!storage_delete_prefix(st, "/./", &err) && strcmp(err.sqlstate, "22023") == 0, "... however spelled");
    pgbr_error_clear(&err);
    tap_ok(exists(in_ext("lcoll/metadata/latest/x")), "and it removed nothing");
    storage_close(st);
}

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct worker {
    storage *st;
    int id;
    bool ok;
} worker;

static void *worker_main(void *arg)
{
    worker *wk = arg;
    pgbr_error err = PGBR_ERROR_INIT;
    char path[64], data[64];

    wk->ok = true;
    for (int i = 0; i < 50 && wk->ok; i++) {
        char *text = NULL;
        size_t len = 0;

        snprintf(path, sizeof path, "t/%d/%03d", wk->id, i);
        snprintf(data, sizeof data, "worker %d file %d", wk->id, i);
        wk->ok = storage_put(wk->st, path, data, strlen(data), &err) &&
                 storage_get(wk->st, path, 100, &text, &len, &err) && strcmp(text, data) == 0;
        free(text);
    }
    pgbr_error_clear(&err);
    return NULL;
}

static void test_threads(void)
{
    storage *st = open_ok("nodelocal://1/tcoll");
    pthread_t th[4];
    worker wk[4];
    listing l;
    pgbr_error err = PGBR_ERROR_INIT;
    bool ok = true;

    if (st == NULL)
        return;
    for (int i = 0; i < 4; i++) {
        wk[i] = (worker){ st, i, false };
        pthread_create(&th[i], NULL, worker_main, &wk[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok = ok && wk[i].ok;
    }
    tap_ok(ok, "four threads write and read 50 files each through one handle");
    memset(&l, 0, sizeof l);
    tap_ok(storage_list(st, "t", list_cb, &l, &err) && l.n == 200, "all 200 files are listed");
    storage_close(st);
}

int main(void)
{
    storage *st;

    snprintf(base, sizeof base, "%s/pgbr-storage-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(ext, sizeof ext, "%s/extern", base);
    snprintf(outside, sizeof outside, "%s/outside", base);
    mkdir(ext, 0700);
    mkdir(outside, 0700);
    cfg.external_io_dir = ext;
    cfg.node_id = 1;

    test_schemes();
    test_nodes_and_config();
    test_confinement();
    st = open_ok("nodelocal://1/wcoll");
    if (st != NULL) {
        test_writes(st);
        test_reads(st);
        storage_close(st);
    }
    test_listing();
    test_threads();

    test_rm_rf(base);
    return tap_done();
}
