/*
 * test_layout.c - unit tests for the collection layout (src/backup/layout.c):
 * subdirectory names from times (UTC whatever TZ says, hundredths
 * truncated), normalisation of user-given subdirs, incremental paths,
 * LATEST (new files only, newest wins, legacy fallback, malformed files),
 * SHOW BACKUPS IN's listing, classification and the BACKUP-LOCK. Works on
 * nodelocal storage in a mkdtemp directory that it removes at the end.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgbr/layout.h"
#include "pgbr/storage.h"
#include "tap.h"
#include "testutil.h"

#define US 1000000LL

static char base[256];
static char ext[300];
static storage_config cfg;

static storage *open_ok(const char *url)
{
    pgbr_error err = PGBR_ERROR_INIT;
    storage *st = storage_open(url, &cfg, &err);

    if (st == NULL)
        tap_diag("storage_open(%s): %s", url, err.message);
    pgbr_error_clear(&err);
    return st;
}

static void put(storage *st, const char *path, const char *text)
{
    pgbr_error err = PGBR_ERROR_INIT;

    if (!storage_put(st, path, text, strlen(text), &err))
        tap_diag("put %s: %s", path, err.message);
    pgbr_error_clear(&err);
}

/* The subdir of a time, or "ERROR <sqlstate>" (static buffer). */
static const char *subdir_of(int64_t us)
{
    static char out[LAYOUT_SUBDIR_SIZE + 16];
    pgbr_error err = PGBR_ERROR_INIT;

    if (!layout_full_subdir(us, out, &err))
        snprintf(out, sizeof out, "ERROR %s", err.sqlstate);
    pgbr_error_clear(&err);
    return out;
}

static const char *normalized(const char *given)
{
    static char out[LAYOUT_SUBDIR_SIZE + 16];
    pgbr_error err = PGBR_ERROR_INIT;

    if (!layout_normalize_subdir(given, out, &err))
        snprintf(out, sizeof out, "ERROR %s", err.sqlstate);
    pgbr_error_clear(&err);
    return out;
}

static void test_names(void)
{
    char buf[LAYOUT_PATH_SIZE], out[LAYOUT_SUBDIR_SIZE];
    pgbr_error err = PGBR_ERROR_INIT;
    int64_t t;
    bool same = true;

    tap_is_str(subdir_of(1705320000 * US), "/2024/01/15-120000.00", "a full backup's subdir");
    tap_is_str(subdir_of(1703168983 * US + 730000), "/2023/12/21-142943.73", "with hundredths");
    tap_is_str(subdir_of(1705320000 * US + 999999), "/2024/01/15-120000.99", "hundredths are truncated");
    tap_is_str(subdir_of(1705320000 * US + 9999), "/2024/01/15-120000.00", "9999 us is still .00");
    tap_is_str(subdir_of(946684799 * US + 999999), "/1999/12/31-235959.99", "never rounded into the next year");
    tap_is_str(subdir_of(1709251199 * US), "/2024/02/29-235959.00", "a leap day");
    tap_is_str(subdir_of(0), "/1970/01/01-000000.00", "the epoch");
    tap_is_str(subdir_of(-1), "/1969/12/31-235959.99", "before the epoch");
    tap_is_str(subdir_of(253402300799LL * US), "/9999/12/31-235959.00", "the last representable second");
    tap_is_str(subdir_of(253402300800LL * US), "ERROR 22023", "year 10000 does not fit");

    /* UTC whatever TZ says, and the same as gmtime_r for many times */
    setenv("TZ", "America/Los_Angeles", 1);
    tzset();
    tap_is_str(subdir_of(1705320000 * US), "/2024/01/15-120000.00", "TZ=America/Los_Angeles: still UTC");
    setenv("TZ", "Pacific/Kiritimati", 1);
    tzset();
    tap_is_str(subdir_of(946684799 * US), "/1999/12/31-235959.00", "TZ=Pacific/Kiritimati: still UTC");
    srand(42);
    for (int i = 0; i < 5000 && same; i++) {
        int64_t us = ((int64_t)rand() << 31 | rand()) % (253402300799LL * US);
        time_t sec = (time_t)(us / US);
        struct tm tm;
        char want[64];

        gmtime_r(&sec, &tm);
        snprintf(want, sizeof want, "/%04d/%02d/%02d-%02d%02d%02d.%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % US / 10000));
        same = strcmp(subdir_of(us), want) == 0;
        if (!same)
            tap_diag("%" PRId64 ": got %s, want %s", us, subdir_of(us), want);
        int64_t back;
        same = same && layout_subdir_time(want, &back, &err) && back == us - us % 10000;
    }
    tap_ok(same, "5000 random times: the same as gmtime_r, and layout_subdir_time reads them back");
    unsetenv("TZ");
    tzset();

    /* normalisation */
    tap_is_str(normalized("2023/03/23-213101.37"), "/2023/03/23-213101.37", "without the leading slash");
    tap_is_str(normalized("/2023/03/23-213101.37"), "/2023/03/23-213101.37", "with the leading slash");
    tap_is_str(normalized("/2023/03/23-213101.37/"), "/2023/03/23-213101.37", "with a trailing slash");
    tap_is_str(normalized("2024/02/29-000000.00"), "/2024/02/29-000000.00", "a leap day");
    const char *bad[] = { "", "/", "..", "../2023/03/23-213101.37", "2023/03/23-213101.37/..",
                          "/../../etc/passwd", "2023/03/23-213101.3", "2023/03/23-213101.370",
                          "2023/13/23-213101.37", "2023/00/23-213101.37", "2023/02/29-213101.37",
                          "2023/04/31-213101.37", "2023/03/23-243101.37", "2023/03/23-216001.37",
                          "2023/03/23-213160.37", "2023-03-23-213101.37", "2023/03/23 213101.37",
                          "incrementals/2023/03/23-213101.37", "//2023/03/23-213101.37",
                          "2023/03/23-213101.37//", " 2023/03/23-213101.37", "2023/03/23-213101.3x",
                          "LATEST", "20230323/213101.37" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        tap_is_str(normalized(bad[i]), "ERROR 22023", "not a backup subdir: '%s'", bad[i]);
    tap_ok(!layout_normalize_subdir("..", out, &err) &&
               strcmp(err.message, "invalid backup subdirectory \"..\"") == 0 && err.hint != NULL &&
               strstr(err.hint, "/YYYY/MM/DD-HHMMSS.ss") != NULL,
           "the error names the subdir and the HINT the expected form");
    pgbr_error_clear(&err);
    tap_ok(!layout_normalize_subdir(NULL, out, &err), "NULL is not a subdir");
    pgbr_error_clear(&err);
    tap_ok(layout_is_latest("LATEST") && layout_is_latest("latest") && !layout_is_latest("LATEST/") &&
               !layout_is_latest(NULL),
           "layout_is_latest");
    tap_ok(layout_subdir_time("2022/02/25-172907.21", &t, &err) && t == 1645810147 * US + 210000,
           "layout_subdir_time");

    /* incremental layers */
    tap_ok(layout_incremental_dir("/2022/02/25-172907.21", 1648229347 * US + 230000, LAYOUT_INCREMENTALS, buf,
                                  &err),
           "incremental dir");
    tap_is_str(buf, "incrementals/2022/02/25-172907.21/20220325/172907.23", "in the collection's incrementals/");
    tap_ok(layout_incremental_dir("2022/02/25-172907.21", 1648229347 * US + 230000, LAYOUT_INCREMENTAL_LOCATION,
                                  buf, &err),
           "incremental_location dir");
    tap_is_str(buf, "2022/02/25-172907.21/20220325/172907.23", "relative to incremental_location");
    tap_ok(!layout_incremental_dir("2022/02/25", 0, LAYOUT_INCREMENTALS, buf, &err) &&
               strcmp(err.sqlstate, "22023") == 0,
           "a bad full subdir is refused");
    pgbr_error_clear(&err);
}

static const char *latest_of(storage *st)
{
    static char out[LAYOUT_SUBDIR_SIZE + 64];
    pgbr_error err = PGBR_ERROR_INIT;

    if (!layout_read_latest(st, out, &err))
        snprintf(out, sizeof out, "ERROR %s %s", err.sqlstate, err.message);
    pgbr_error_clear(&err);
    return out;
}

typedef struct names {
    char text[2048];
    int n;
} names;

static bool names_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    names *nm = arg;
    size_t len = strlen(nm->text);

    (void)err;
    snprintf(nm->text + len, sizeof nm->text - len, "%s ", info->path);
    nm->n++;
    return true;
}

static void test_latest(void)
{
    storage *st = open_ok("nodelocal://1/latest");
    pgbr_error err = PGBR_ERROR_INIT;
    char *text;
    size_t len;
    names nm = { "", 0 };
    int64_t t1 = 1705320000 * US;

    if (st == NULL)
        return;
    tap_is_str(latest_of(st), "ERROR 58P01 path does not contain a completed latest backup", "no LATEST yet");
    tap_ok(layout_write_latest(st, "2024/01/15-120000.00", t1, &err), "write LATEST for a first backup");
    tap_is_str(latest_of(st), "/2024/01/15-120000.00", "it is read back");
    tap_ok(storage_get(st, "LATEST", 100, &text, &len, &err) && strcmp(text, "/2024/01/15-120000.00") == 0,
           "the legacy root LATEST holds it too");
    free(text);
    tap_ok(layout_write_latest(st, "/2024/01/16-120000.00", t1 + 86400 * US, &err), "a second backup");
    tap_ok(layout_write_latest(st, "/2024/01/17-120000.00", t1 + 2 * 86400 * US, &err), "a third backup");
    tap_is_str(latest_of(st), "/2024/01/17-120000.00", "the newest wins");
    tap_ok(storage_get(st, "LATEST", 100, &text, &len, &err) && strcmp(text, "/2024/01/15-120000.00") == 0,
           "the root LATEST is never rewritten");
    free(text);
    tap_ok(layout_write_latest(st, "/2024/01/18-120000.00", t1 + 2 * 86400 * US, &err),
           "a LATEST written in the same microsecond as the last");
    tap_is_str(latest_of(st), "/2024/01/18-120000.00", "still counts as newer");
    storage_list(st, LAYOUT_LATEST_DIR, names_cb, &nm, &err);
    tap_is_int(nm.n, 4, "four LATEST files: every write is a new file");
    tap_ok(strncmp(nm.text, "metadata/latest/LATEST-", 23) == 0 && strlen(nm.text) > 23 + 16 &&
               nm.text[23 + 16] == ' ',
           "named LATEST-<16 hex digits>: %s", nm.text);
    {
        char want[64];

        snprintf(want, sizeof want, "metadata/latest/LATEST-%016" PRIx64 " ",
                 UINT64_MAX - (uint64_t)(t1 + 2 * 86400 * US + 1));
        tap_ok(strncmp(nm.text, want, strlen(want)) == 0, "descending encoding: the newest sorts first");
    }
    put(st, "metadata/latest/README", "not a pointer");
    put(st, "metadata/latest/A-junk", "/1999/01/01-000000.00");
    tap_is_str(latest_of(st), "/2024/01/18-120000.00", "other files in metadata/latest/ are ignored");
    tap_ok(!layout_write_latest(st, "nope", t1, &err) && strcmp(err.sqlstate, "22023") == 0,
           "writing a bad subdir is refused");
    pgbr_error_clear(&err);
    storage_close(st);

    /* a collection written by an older version: only the root LATEST */
    st = open_ok("nodelocal://1/legacy");
    put(st, "LATEST", "/2020/05/01-000000.00\n");
    tap_is_str(latest_of(st), "/2020/05/01-000000.00", "the legacy root LATEST is the fallback (newline ok)");
    storage_close(st);
    st = open_ok("nodelocal://1/legacy2");
    put(st, "LATEST", "2020/05/01-000000.00");
    tap_is_str(latest_of(st), "/2020/05/01-000000.00", "a legacy LATEST without the slash");
    storage_close(st);

    /* malformed files */
    st = open_ok("nodelocal://1/bad1");
    put(st, "LATEST", "garbage");
    tap_is_str(latest_of(st), "ERROR XX001 malformed LATEST file", "a garbage root LATEST");
    storage_close(st);
    st = open_ok("nodelocal://1/bad2");
    put(st, "LATEST", "/2020/05/01-000000.00");
    put(st, "metadata/latest/LATEST-0000000000000000", "");
    tap_is_str(latest_of(st), "ERROR XX001 malformed LATEST file", "an empty newest LATEST-* (no fallback)");
    storage_close(st);
    st = open_ok("nodelocal://1/bad3");
    {
        static char big[5000];

        memset(big, '/', sizeof big - 1);
        put(st, "LATEST", big);
    }
    tap_is_str(latest_of(st), "ERROR XX001 malformed LATEST file", "a huge LATEST file");
    storage_close(st);
    st = open_ok("nodelocal://1/bad4");
    {
        pgbr_error e2 = PGBR_ERROR_INIT;

        storage_put(st, "LATEST", "/2020/05/01-000000.00\0x", 23, &e2);
        pgbr_error_clear(&e2);
    }
    tap_is_str(latest_of(st), "ERROR XX001 malformed LATEST file", "a LATEST file with a NUL byte");
    storage_close(st);
}

static const char *joined(const layout_list *l)
{
    static char out[2048];

    out[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, sizeof out - len, "%s%s", i > 0 ? " " : "", l->items[i]);
    }
    return out;
}

static void test_listing(void)
{
    storage *st = open_ok("nodelocal://1/coll");
    storage *sub, *empty;
    pgbr_error err = PGBR_ERROR_INIT;
    layout_list l;
    layout_kind kind;

    if (st == NULL)
        return;
    tap_ok(layout_list_full_backups(st, &l, &err) && l.n == 0, "a new collection has no backups");
    layout_list_free(&l);
    tap_ok(layout_classify(st, &kind, &err) && kind == LAYOUT_KIND_NONE, "an empty location is neither");

    put(st, "2024/01/15-120000.00/BACKUP_MANIFEST", "m");
    put(st, "2024/01/15-120000.00/BACKUP_MANIFEST.sha256", "s");
    put(st, "2024/01/15-120000.00/data/1/2/3.pgbr", "d");
    put(st, "2023/12/21-142943.73/BACKUP_MANIFEST", "m");
    put(st, "2022/04/13-202413.70/BACKUP_MANIFEST", "m");
    put(st, "incrementals/2024/01/15-120000.00/20240116/120000.00/BACKUP_MANIFEST", "i");
    put(st, "incrementals/2024/01/15-120000.00/20240117/120000.00/BACKUP_MANIFEST", "i");
    put(st, "incrementals/2024/01/15-120000.00/20240118/120000.00/BACKUP-LOCK-9", "unfinished");
    put(st, "2024/01/15-120000.00/20240116/130000.00/BACKUP_MANIFEST", "v21.2-style incremental");
    put(st, "2024/02/01-000000.00/BACKUP-LOCK-5", "an unfinished full backup");
    put(st, "foo/bar/baz/BACKUP_MANIFEST", "junk");
    put(st, "x/BACKUP_MANIFEST", "junk");
    put(st, "a/b/c/d/BACKUP_MANIFEST", "junk");
    put(st, "2024/13/01-000000.00/BACKUP_MANIFEST", "junk: month 13");
    put(st, "BACKUP_MANIFEST.txt", "junk");

    tap_ok(layout_list_full_backups(st, &l, &err), "list full backups");
    tap_is_str(joined(&l), "/2022/04/13-202413.70 /2023/12/21-142943.73 /2024/01/15-120000.00",
               "only completed full backups, ascending, with a leading slash");
    layout_list_free(&l);
    tap_ok(layout_list_incrementals(st, "/2024/01/15-120000.00", LAYOUT_INCREMENTALS, &l, &err), "list incrementals");
    tap_is_str(joined(&l), "incrementals/2024/01/15-120000.00/20240116/120000.00 "
                           "incrementals/2024/01/15-120000.00/20240117/120000.00",
               "completed layers of the chain, ascending");
    layout_list_free(&l);
    tap_ok(layout_list_incrementals(st, "2024/01/15-120000.00", LAYOUT_INCREMENTAL_LOCATION, &l, &err) &&
               strcmp(joined(&l), "2024/01/15-120000.00/20240116/130000.00") == 0,
           "v21.2-style layers inside the full backup's directory");
    layout_list_free(&l);
    tap_ok(layout_list_incrementals(st, "2023/12/21-142943.73", LAYOUT_INCREMENTALS, &l, &err) && l.n == 0,
           "a chain without incrementals");
    layout_list_free(&l);

    tap_ok(layout_classify(st, &kind, &err) && kind == LAYOUT_KIND_COLLECTION, "the root is a collection");
    sub = open_ok("nodelocal://1/coll/2024/01/15-120000.00");
    tap_ok(sub != NULL && layout_classify(sub, &kind, &err) && kind == LAYOUT_KIND_BACKUP,
           "a backup subdir is a backup");
    storage_close(sub);
    empty = open_ok("nodelocal://1/onlylatest");
    layout_write_latest(empty, "/2024/01/15-120000.00", 1, &err);
    tap_ok(layout_classify(empty, &kind, &err) && kind == LAYOUT_KIND_COLLECTION,
           "a location with only a LATEST is a collection");
    storage_close(empty);
    storage_close(st);
}

static const char *joined_layers(const layout_layers *l, storage *coll, storage *inc)
{
    static char out[1024];

    out[0] = '\0';
    for (size_t i = 0; i < l->n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, sizeof out - len, "%s%s:%s", i > 0 ? " " : "",
                 l->items[i].st == coll ? "c" : l->items[i].st == inc ? "x" : "?", l->items[i].dir);
    }
    return out;
}

/* A chain's layers in the default place, the v21.2 place and an
 * incremental_location, merged by end time. */
static void test_find_layers(void)
{
    storage *coll = open_ok("nodelocal://1/fl");
    storage *inc = open_ok("nodelocal://1/flx");
    storage *same = open_ok("nodelocal://1/fl/");
    pgbr_error err = PGBR_ERROR_INIT;
    layout_layers l;

    if (coll == NULL || inc == NULL || same == NULL)
        return;
    put(coll, "2024/01/15-120000.00/BACKUP_MANIFEST", "full");
    put(coll, "2024/01/15-120000.00/data/bank/1/0.pgbr", "data");
    put(coll, "incrementals/2024/01/15-120000.00/20240116/120000.00/BACKUP_MANIFEST", "default 1");
    put(coll, "incrementals/2024/01/15-120000.00/20240119/120000.00/BACKUP_MANIFEST", "default 4");
    put(coll, "2024/01/15-120000.00/20240117/120000.00/BACKUP_MANIFEST", "v21.2 2");
    put(inc, "2024/01/15-120000.00/20240118/120000.00/BACKUP_MANIFEST", "location 3");
    put(inc, "2024/01/15-120000.00/20240116/120000.00/BACKUP_MANIFEST", "a copy of default 1");
    put(inc, "2024/01/15-120000.00/20240120/120000.00/BACKUP-LOCK-7", "unfinished");
    put(inc, "2023/01/01-000000.00/20230102/000000.00/BACKUP_MANIFEST", "another chain");

    tap_ok(layout_same_location(coll, same) && !layout_same_location(coll, inc) && !layout_same_location(coll, NULL),
           "same location: by display URL (a trailing slash does not count)");
    tap_ok(layout_find_layers(coll, NULL, "/2024/01/15-120000.00", &l, &err), "find layers without a location");
    tap_is_str(joined_layers(&l, coll, inc),
               "c:incrementals/2024/01/15-120000.00/20240116/120000.00 c:2024/01/15-120000.00/20240117/120000.00 "
               "c:incrementals/2024/01/15-120000.00/20240119/120000.00",
               "the default and the v21.2 places, by end time");
    tap_ok(l.items[1].place == LAYOUT_PLACE_IN_FULL && l.items[0].place == LAYOUT_PLACE_INCREMENTALS,
           "each with its place");
    layout_layers_free(&l);
    tap_ok(layout_find_layers(coll, inc, "2024/01/15-120000.00", &l, &err), "find layers with a location");
    tap_is_str(joined_layers(&l, coll, inc),
               "c:incrementals/2024/01/15-120000.00/20240116/120000.00 c:2024/01/15-120000.00/20240117/120000.00 "
               "x:2024/01/15-120000.00/20240118/120000.00 c:incrementals/2024/01/15-120000.00/20240119/120000.00",
               "the location's layers merged in; a name in two places listed once, from the collection");
    tap_ok(l.n == 4 && l.items[2].place == LAYOUT_PLACE_LOCATION, "the location's layer has its place");
    layout_layers_free(&l);
    tap_ok(layout_find_layers(coll, same, "2024/01/15-120000.00", &l, &err) && l.n == 3,
           "a location equal to the collection is not listed twice");
    layout_layers_free(&l);
    tap_ok(layout_find_layers(coll, inc, "2022/01/01-000000.00", &l, &err) && l.n == 0 && l.items == NULL,
           "a full backup without layers");
    layout_layers_free(&l);
    storage_close(same);
    storage_close(inc);
    storage_close(coll);
}

static void test_locks(void)
{
    storage *st = open_ok("nodelocal://1/locks");
    pgbr_error err = PGBR_ERROR_INIT;
    const char *dir = "/2024/01/15-120000.00";
    char *text;
    size_t len;
    names nm = { "", 0 };

    if (st == NULL)
        return;
    tap_ok(layout_lock_backup_dir(st, dir, 1001, &err), "job 1001 locks a new directory");
    tap_ok(storage_get(st, "2024/01/15-120000.00/BACKUP-LOCK-1001", 100, &text, &len, &err) &&
               strcmp(text, "1001\n") == 0,
           "BACKUP-LOCK-<job id> holds the job id");
    free(text);
    tap_ok(layout_lock_backup_dir(st, dir, 1001, &err), "the same job again (resumed): fine");
    storage_list(st, "2024", names_cb, &nm, &err);
    tap_is_str(nm.text, "2024/01/15-120000.00/BACKUP-LOCK-1001 ", "and no second lock file");
    tap_ok(!layout_lock_backup_dir(st, dir, 2002, &err) && strcmp(err.sqlstate, "42710") == 0,
           "another job: 42710");
    tap_is_str(err.message,
               "nodelocal://1/locks/2024/01/15-120000.00 already contains a `BACKUP-LOCK` file written by job 1001",
               "the message names the directory and the job");
    pgbr_error_clear(&err);

    put(st, "2024/02/01-000000.00/BACKUP_MANIFEST", "m");
    tap_ok(!layout_lock_backup_dir(st, "2024/02/01-000000.00", 3003, &err) && strcmp(err.sqlstate, "58P02") == 0,
           "a directory with a BACKUP_MANIFEST: 58P02");
    tap_is_str(err.message, "nodelocal://1/locks/2024/02/01-000000.00 already contains a BACKUP_MANIFEST file",
               "its message");
    pgbr_error_clear(&err);

    put(st, "incr/data/BACKUP-LOCK-77", "not at the top of the directory");
    tap_ok(layout_lock_backup_dir(st, "incr", 4004, &err), "a lock file in a subdirectory does not count");
    put(st, "incr2/BACKUP-LOCK-77", "77");
    put(st, "incr2/BACKUP-LOCK-88", "88");
    tap_ok(!layout_lock_backup_dir(st, "incr2", 77, &err) && strcmp(err.sqlstate, "42710") == 0 &&
               strstr(err.message, "job 88") != NULL,
           "two locks (a race happened): even the owner of one stops");
    pgbr_error_clear(&err);
    tap_ok(layout_lock_backup_dir(st, "", 5005, &err), "the root of a location can be locked too");
    tap_ok(!layout_lock_backup_dir(st, "../x", 5005, &err) && strcmp(err.sqlstate, "42501") == 0,
           ".. is refused");
    pgbr_error_clear(&err);
    storage_close(st);
}

int main(void)
{
    snprintf(base, sizeof base, "%s/pgbr-layout-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(ext, sizeof ext, "%s/extern", base);
    mkdir(ext, 0700);
    cfg.external_io_dir = ext;
    cfg.node_id = 1;

    test_names();
    test_latest();
    test_listing();
    test_find_layers();
    test_locks();

    test_rm_rf(base);
    return tap_done();
}
