/*
 * test_backup_engine.c - the backup engine (backup.h) against a real
 * PostgreSQL: PGBR_TEST_BACKUP_DSN is a superuser conninfo without dbname
 * (regress/t/017_backup_engine_unit.t sets it). Creates a scratch database,
 * backs it up into a temporary external_io_dir and checks the manifest, every
 * data file's rows and checksum against COPY of the source, the schema dump
 * (pg_restore --list), LATEST, that concurrent writes after the snapshot are
 * not seen, and that failures leave nothing behind.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgbr/backup.h"
#include "pgbr/buf.h"
#include "pgbr/datafile.h"
#include "pgbr/filter.h"
#include "pgbr/layout.h"
#include "pgbr/manifest.h"
#include "pgbr/storage.h"
#include "tap.h"

#define TEST_DB "pgbr_engine_test"
#define TEST_DB_LO "pgbr_engine_test_lo"

static const char *dsn;

static PGconn *connect_db(const char *db)
{
    char *ci = NULL;
    if (asprintf(&ci, "%s dbname=%s", dsn, db) < 0)
        exit(2);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        printf("Bail out! cannot connect to %s: %s\n", db, PQerrorMessage(c));
        exit(2);
    }
    return c;
}

static void run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        printf("Bail out! %s: %s\n", sql, PQerrorMessage(c));
        exit(2);
    }
    PQclear(r);
}

static const char setup_sql[] =
    "CREATE TABLE big (id int PRIMARY KEY, payload text);"
    "CREATE INDEX big_payload ON big (payload);"
    "INSERT INTO big SELECT i, md5(i::text) || repeat('x', 80) FROM generate_series(1, 40000) i;"
    "CREATE TABLE weird (id int, t text, n numeric, ts timestamptz, f float8,"
    "  g int GENERATED ALWAYS AS (id * 2) STORED, b bytea);"
    "INSERT INTO weird (id, t, n, ts, f, b) VALUES"
    " (1, E'tab\\there', 1.5, '2024-01-02 03:04:05+02', 0.1, '\\x00ff'),"
    " (2, E'new\\nline and \\\\ backslash', NULL, NULL, 'NaN', NULL),"
    " (3, 'unicode: é ü 日本 🐘', -0.000001, 'infinity', '-Infinity', ''),"
    " (4, NULL, 'NaN', '-infinity', 1e308, '\\x5c'),"
    " (5, '', 12345678901234567890.123456789, '1999-12-31 23:59:59.999999+00', -0.0, NULL);"
    "CREATE SCHEMA \"Odd Schema\";"
    "CREATE TABLE \"Odd Schema\".\"Mixed Case\" (\"X y\" int, z text);"
    "INSERT INTO \"Odd Schema\".\"Mixed Case\" SELECT i, 'r' || i FROM generate_series(1, 100) i;"
    "CREATE TABLE empty_one (a int);"
    "CREATE TABLE parted (k int, v text) PARTITION BY RANGE (k);"
    "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);"
    "CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200);"
    "INSERT INTO parted SELECT i, 'p' || i FROM generate_series(0, 199) i;"
    "CREATE SEQUENCE s; SELECT nextval('s'), nextval('s'), nextval('s');"
    "CREATE SEQUENCE s_unused;"
    "CREATE SCHEMA pgbr; CREATE TABLE pgbr.secret (x int); INSERT INTO pgbr.secret VALUES (1);";

/* Table name, WHERE that excludes the rows inserted concurrently, ORDER. */
typedef struct expect_table {
    const char *schema, *name, *select;
} expect_table;

static const expect_table expected[] = {
    { "public", "big", "SELECT id, payload FROM big WHERE id <= 40000" },
    { "public", "weird", "SELECT id, t, n, ts, f, b FROM weird WHERE id < 1000" },
    /* the 10 rows deleted after the snapshot are put back */
    { "Odd Schema", "Mixed Case",
      "SELECT \"X y\", z FROM \"Odd Schema\".\"Mixed Case\" "
      "UNION ALL SELECT i, 'r' || i FROM generate_series(1, 10) i" },
    { "public", "empty_one", "SELECT a FROM empty_one" },
    { "public", "parted_1", "SELECT k, v FROM ONLY parted_1" },
    { "public", "parted_2", "SELECT k, v FROM ONLY parted_2" },
};

/* Inserts rows while the backup runs, after the snapshot. */
static int after_snapshot_calls;
static void after_snapshot(void *arg, const char *db, const char *snapshot)
{
    (void)arg;
    if (strcmp(db, TEST_DB) != 0 || snapshot == NULL || *snapshot == '\0')
        return;
    after_snapshot_calls++;
    PGconn *c = connect_db(TEST_DB);
    run(c, "INSERT INTO big SELECT i, 'late' FROM generate_series(40001, 40500) i;"
           "INSERT INTO weird (id, t) VALUES (1001, 'late');"
           "DELETE FROM \"Odd Schema\".\"Mixed Case\" WHERE \"X y\" <= 10;"
           "SELECT nextval('s_unused')");
    PQfinish(c);
}

static double last_fraction = -1;
static int progress_calls, progress_backwards;
static bool progress(void *arg, double f, const char *status)
{
    (void)arg;
    (void)status;
    if (f < last_fraction)
        progress_backwards++;
    last_fraction = f;
    progress_calls++;
    return true;
}

/* ---- reading back ---- */

typedef struct rows_acc {
    pgbr_buf buf;
    uint64_t rows;
} rows_acc;

static bool on_frame(void *arg, uint64_t index, const void *data, size_t len, uint64_t nrows,
                     pgbr_error *err)
{
    (void)index;
    rows_acc *a = arg;
    a->rows += nrows;
    return pgbr_buf_append(&a->buf, data, len, err);
}

/* Read a data file through sha256 -> datafile reader into acc. */
static bool read_datafile(storage *st, const char *path, const char *sha, rows_acc *acc,
                          pgbr_error *err)
{
    datafile_reader *rd = datafile_reader_new(path, on_frame, acc, err);
    filter_chain *ch = rd ? filter_chain_new(datafile_reader_sink, rd, err) : NULL;
    filter *h = ch ? filter_sha256_new(err) : NULL;
    bool ok = h && filter_sha256_expect(h, sha, path, err) &&
              filter_chain_add(ch, h, "sha256", err);
    if (!ok && h && !ch)
        filter_free(h);
    storage_read *r = ok ? storage_read_open(st, path, 0, -1, err) : NULL;
    ok = r != NULL;
    char buf[8192];
    ssize_t n;
    while (ok && (n = storage_read_data(r, buf, sizeof(buf), err)) != 0)
        ok = n > 0 && filter_chain_push(ch, buf, (size_t)n, err);
    ok = ok && filter_chain_finish(ch, err) && datafile_reader_finish(rd, NULL, err);
    storage_read_close(r);
    filter_chain_free(ch);
    datafile_reader_free(rd);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted lines of a COPY text buffer, joined back: a canonical multiset. */
static char *sorted_lines(const char *data, size_t len, size_t *nlines)
{
    char *copy = malloc(len + 1);
    memcpy(copy, data, len);
    copy[len] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += copy[i] == '\n';
    char **lines = calloc(n + 1, sizeof(char *));
    size_t k = 0;
    char *p = copy;
    for (size_t i = 0; i < len; i++)
        if (copy[i] == '\n') {
            copy[i] = '\0';
            lines[k++] = p;
            p = copy + i + 1;
        }
    qsort(lines, n, sizeof(char *), cmp_str);
    char *out = malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(out + o, lines[i], l);
        o += l;
        out[o++] = '\n';
    }
    out[o] = '\0';
    free(lines);
    free(copy);
    *nlines = n;
    return out;
}

/* COPY (select) TO STDOUT with the engine's pinned settings. */
static void copy_source(PGconn *c, const char *select, pgbr_buf *out)
{
    char *sql = NULL;
    pgbr_error e = PGBR_ERROR_INIT;
    if (asprintf(&sql, "COPY (%s) TO STDOUT", select) < 0)
        exit(2);
    PGresult *r = PQexec(c, sql);
    free(sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        printf("Bail out! %s\n", PQerrorMessage(c));
        exit(2);
    }
    PQclear(r);
    char *row;
    int n;
    while ((n = PQgetCopyData(c, &row, 0)) > 0) {
        pgbr_buf_append(out, row, (size_t)n, &e);
        PQfreemem(row);
    }
    PQclear(PQgetResult(c));
}

static const manifest_table *find_table(const manifest_database *db, const char *schema,
                                        const char *name)
{
    for (size_t i = 0; i < db->ntables; i++)
        if (strcmp(db->tables[i]->schema, schema) == 0 && strcmp(db->tables[i]->name, name) == 0)
            return db->tables[i];
    return NULL;
}

static bool count_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    (void)info;
    (void)err;
    (*(int *)arg)++;
    return true;
}

static int files_under(storage *st, const char *prefix)
{
    int n = 0;
    pgbr_error e = PGBR_ERROR_INIT;
    if (!storage_list(st, prefix, count_cb, &n, &e))
        n = -1;
    pgbr_error_clear(&e);
    return n;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    dsn = getenv("PGBR_TEST_BACKUP_DSN");
    if (!dsn || !*dsn) {
        printf("1..0 # SKIP PGBR_TEST_BACKUP_DSN is not set\n");
        return 0;
    }
    PGconn *admin = connect_db("postgres");
    run(admin, "DROP DATABASE IF EXISTS " TEST_DB);
    run(admin, "DROP DATABASE IF EXISTS " TEST_DB_LO);
    run(admin, "DROP DATABASE IF EXISTS pgbr_engine_missing");
    run(admin, "CREATE DATABASE " TEST_DB);
    PGconn *src = connect_db(TEST_DB);
    run(src, setup_sql);

    char iodir[] = "/tmp/pgbr_engine_XXXXXX";
    if (!mkdtemp(iodir)) {
        printf("Bail out! mkdtemp failed\n");
        return 2;
    }
    storage_config scfg = { .external_io_dir = iodir, .node_id = 1 };
    const char *dbs[] = { TEST_DB };
    backup_request req = {
        .conninfo = dsn, .databases = dbs, .ndatabases = 1,
        .collection_url = "nodelocal://0/coll", .storage = &scfg, .job_id = 42,
        .end_time_us = 1767323045670000LL,     /* 2026-01-02 03:04:05.67 UTC */
        .workers = 3, .chunk_threshold_bytes = 1024 * 1024, .chunk_bytes = 1024 * 1024,
        .after_snapshot = after_snapshot,
    };
    backup_result res;
    pgbr_error err = PGBR_ERROR_INIT;
    bool ok = backup_run(&req, progress, NULL, &res, &err);
    if (!tap_ok(ok, "backup_run succeeds"))
        tap_diag("%s: %s (%s)", err.sqlstate, err.message, err.detail ? err.detail : "");
    pgbr_error_clear(&err);
    tap_is_str(res.subdir, "/2026/01/02-030405.67", "subdir from the end time");
    tap_is_int(after_snapshot_calls, 1, "the after-snapshot hook ran once");
    tap_ok(progress_calls >= 2 && progress_backwards == 0 && last_fraction == 1.0,
           "progress advances monotonically to 1 (%d calls)", progress_calls);
    /* 40000 + 5 + 100 + 0 + 100 + 100 rows; big has 1 secondary index */
    tap_is_int(res.rows, 40305, "result rows exclude writes after the snapshot");
    tap_is_int(res.index_entries, 40000, "index entries: big's secondary index");
    tap_ok(res.bytes > 4000000, "logical bytes counted (%llu)", (unsigned long long)res.bytes);

    storage *st = storage_open("nodelocal://0/coll", &scfg, &err);
    tap_ok(st != NULL, "collection opens");
    char latest[LAYOUT_SUBDIR_SIZE] = "";
    tap_ok(layout_read_latest(st, latest, &err), "LATEST readable");
    tap_is_str(latest, "/2026/01/02-030405.67", "LATEST names the backup");

    char *mbytes = NULL, *sbytes = NULL;
    size_t mlen = 0, slen = 0;
    ok = storage_get(st, "2026/01/02-030405.67/BACKUP_MANIFEST", 1 << 24, &mbytes, &mlen, &err) &&
         storage_get(st, "2026/01/02-030405.67/BACKUP_MANIFEST.sha256", 1024, &sbytes, &slen, &err);
    tap_ok(ok && manifest_checksum_verify(mbytes, mlen, sbytes, slen, "BACKUP_MANIFEST", &err),
           "manifest and its checksum file agree");
    manifest *m = ok ? manifest_decode(mbytes, mlen, "BACKUP_MANIFEST", &err) : NULL;
    tap_ok(m != NULL, "manifest decodes");
    if (!m) {
        tap_diag("%s", err.message ? err.message : "");
        return tap_done();
    }
    tap_ok(m->ndatabases == 1 && strcmp(m->databases[0]->name, TEST_DB) == 0,
           "manifest lists the database");
    const manifest_database *mdb = m->databases[0];
    tap_is_int(mdb->ntables, 6, "six tables (pgbr schema and partitioned parent excluded)");
    tap_ok(find_table(mdb, "pgbr", "secret") == NULL, "pgbr.secret is not backed up");

    const manifest_table *w = find_table(mdb, "public", "weird");
    bool gen_excluded = w && w->ncolumns == 6;
    for (size_t i = 0; w && i < w->ncolumns; i++)
        gen_excluded = gen_excluded && strcmp(w->columns[i].name, "g") != 0;
    tap_ok(gen_excluded, "generated column excluded from the columns");
    tap_ok(w && w->ncolumns > 3 && strcmp(w->columns[2].type, "numeric") == 0 &&
               strcmp(w->columns[3].type, "timestamp with time zone") == 0,
           "column types recorded with format_type");
    const manifest_table *big = find_table(mdb, "public", "big");
    tap_ok(big && big->nfiles > 2, "big table split into ctid chunks (%zu files)",
           big ? big->nfiles : 0);

    bool seq_ok = false, seq2_ok = false;
    for (size_t i = 0; i < mdb->nsequences; i++) {
        if (strcmp(mdb->sequences[i]->name, "s") == 0)
            seq_ok = mdb->sequences[i]->last_value == 3 && mdb->sequences[i]->is_called;
        if (strcmp(mdb->sequences[i]->name, "s_unused") == 0)
            seq2_ok = true;
    }
    tap_ok(seq_ok, "sequence s recorded as 3, called");
    tap_ok(seq2_ok, "unused sequence recorded");

    /* every table's rows, read back, equal the source's */
    run(src, "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
             "SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; SET bytea_output = hex");
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        const expect_table *e = &expected[i];
        const manifest_table *t = find_table(mdb, e->schema, e->name);
        if (!tap_ok(t != NULL, "table %s.%s in the manifest", e->schema, e->name))
            continue;
        rows_acc acc = { PGBR_BUF_INIT, 0 };
        bool read_ok = true;
        uint64_t file_rows = 0;
        for (size_t f = 0; read_ok && f < t->nfiles; f++) {
            char *path = NULL;
            if (asprintf(&path, "2026/01/02-030405.67/%s", t->files[f]->path) < 0)
                exit(2);
            read_ok = read_datafile(st, path, t->files[f]->sha256, &acc, &err);
            file_rows += t->files[f]->rows;
            free(path);
        }
        if (!tap_ok(read_ok, "%s: data files read back with matching sha256", e->name))
            tap_diag("%s", err.message ? err.message : "");
        pgbr_error_clear(&err);
        pgbr_buf source = PGBR_BUF_INIT;
        copy_source(src, e->select, &source);
        size_t n1, n2;
        char *a = sorted_lines(acc.buf.data ? (char *)acc.buf.data : "", acc.buf.len, &n1);
        char *b = sorted_lines(source.data ? (char *)source.data : "", source.len, &n2);
        tap_ok(strcmp(a, b) == 0 && n1 == acc.rows, "%s: rows equal the source's (%zu rows)",
               e->name, n2);
        tap_ok(t->rows == n2 && file_rows == n2, "%s: manifest row count %llu", e->name,
               (unsigned long long)t->rows);
        free(a);
        free(b);
        pgbr_buf_free(&source);
        pgbr_buf_free(&acc.buf);
    }

    /* the schema dump is a pg_restore archive */
    char *cmd = NULL;
    if (asprintf(&cmd, "pg_restore --list '%s/coll/2026/01/02-030405.67/%s' 2>&1", iodir,
                 mdb->schema_file) < 0)
        exit(2);
    FILE *p = popen(cmd, "r");
    char line[1024];
    bool has_big = false, has_secret = false;
    while (p && fgets(line, sizeof(line), p)) {
        has_big = has_big || strstr(line, "TABLE public big ") != NULL;
        has_secret = has_secret || strstr(line, "secret") != NULL;
    }
    int prc = p ? pclose(p) : -1;
    tap_ok(prc == 0 && has_big, "pg_restore --list reads the schema dump");
    tap_ok(!has_secret, "the pgbr schema is not in the dump");
    free(cmd);

    /* ---- failures leave nothing behind ---- */
    const char *missing[] = { "pgbr_engine_missing" };
    req.databases = missing;
    req.end_time_us += 60 * 1000000LL;  /* 03:05:05.67 */
    ok = backup_run(&req, NULL, NULL, &res, &err);
    tap_ok(!ok && strcmp(err.sqlstate, "3D000") == 0, "unknown database fails with 3D000 (%s)",
           err.message ? err.message : "");
    pgbr_error_clear(&err);
    tap_is_int(files_under(st, "2026/01/02-030505.67"), 0, "nothing left of the failed backup");

    req.databases = dbs;
    req.pg_dump_path = "/bin/false";
    req.after_snapshot = NULL;
    ok = backup_run(&req, NULL, NULL, &res, &err);
    tap_ok(!ok && strcmp(err.sqlstate, "XX000") == 0 && strstr(err.message, "pg_dump"),
           "a failing pg_dump fails the backup (%s)", err.message ? err.message : "");
    pgbr_error_clear(&err);
    tap_is_int(files_under(st, "2026/01/02-030505.67"), 0,
               "nothing left after pg_dump failed (data files removed)");
    tap_ok(layout_read_latest(st, latest, &err) && strcmp(latest, "/2026/01/02-030405.67") == 0,
           "LATEST untouched by failed backups");

    req.pg_dump_path = NULL;
    req.end_time_us -= 60 * 1000000LL;     /* the first backup's directory again */
    ok = backup_run(&req, NULL, NULL, &res, &err);
    tap_ok(!ok && strcmp(err.sqlstate, "58P02") == 0,
           "a directory holding a manifest is refused (%s)", err.message ? err.message : "");
    pgbr_error_clear(&err);
    storage_info si;
    tap_ok(storage_stat(st, "2026/01/02-030405.67/BACKUP_MANIFEST", &si, &err) && si.exists,
           "the refused backup did not remove the existing one");

    run(admin, "CREATE DATABASE " TEST_DB_LO);
    PGconn *lo = connect_db(TEST_DB_LO);
    run(lo, "SELECT lo_create(0)");
    PQfinish(lo);
    const char *lodbs[] = { TEST_DB_LO };
    req.databases = lodbs;
    req.end_time_us += 120 * 1000000LL;
    ok = backup_run(&req, NULL, NULL, &res, &err);
    tap_ok(!ok && strcmp(err.sqlstate, "0A000") == 0 && strstr(err.message, "large objects"),
           "large objects are refused with 0A000 (%s)", err.message ? err.message : "");
    pgbr_error_clear(&err);
    tap_is_int(files_under(st, "2026/01/02-030605.67"), 0, "nothing left of it");

    /* an unwritable location */
    scfg.external_io_dir = "/proc/pgbr-nonexistent";
    req.databases = dbs;
    ok = backup_run(&req, NULL, NULL, &res, &err);
    tap_ok(!ok && pgbr_error_is_set(&err), "an unwritable location fails (%s %s)", err.sqlstate,
           err.message ? err.message : "");
    pgbr_error_clear(&err);

    manifest_free(m);
    free(mbytes);
    free(sbytes);
    storage_close(st);
    PQfinish(src);
    run(admin, "DROP DATABASE IF EXISTS " TEST_DB);
    run(admin, "DROP DATABASE IF EXISTS " TEST_DB_LO);
    PQfinish(admin);
    nftw(iodir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done();
}
