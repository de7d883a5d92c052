/*
 * test_cdc.c - unit tests for the pgoutput decoder and the change-line helpers
 * (src/cdc/decode.c): hand-built proto_version 1 messages of every kind
 * (B, R, I, U with K/O/no old tuple, D with K/O, T, C; O/Y/M ignored) checked
 * against the exact change lines; COPY text escaping of names and values
 * (tabs, newlines, backslashes, UTF-8), NULL and unchanged-TOAST columns;
 * lazy R lines (once per change file, again after a changed 'R', not for a
 * repeated identical one); every malformation (each truncation of each
 * message, trailing bytes, forged lengths and counts, unknown types, kinds,
 * relids, transaction-state violations, random byte flips) -> XX001 with
 * nothing emitted and no crash; counters; a failing consumer; many relations;
 * LSN text; field split and unescape, including random values that go
 * through the decoder and come back byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/buf.h"
#include "pgbr/cdc.h"
#include "tap.h"
#include "testutil.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
    return test_rng(&rng_state);
}

/* ---------------------------------------------------------------------------
 * Building pgoutput messages
 * ------------------------------------------------------------------------- */

typedef struct msg {
    unsigned char b[70000];
    size_t n;
} msg;

static void put8(msg *m, unsigned v)
{
    m->b[m->n++] = (unsigned char)v;
}

static void put16(msg *m, unsigned v)
{
    put8(m, (v >> 8) & 0xff);
    put8(m, v & 0xff);
}

static void put32(msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

static void put64(msg *m, uint64_t v)
{
    put32(m, (uint32_t)(v >> 32));
    put32(m, (uint32_t)v);
}

static void putstr(msg *m, const char *s)
{
    size_t n = strlen(s) + 1;

    memcpy(m->b + m->n, s, n);
    m->n += n;
}

static void putbytes(msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void start(msg *m, char type)
{
    m->n = 0;
    put8(m, (unsigned char)type);
}

static void m_begin(msg *m, uint64_t final_lsn, int64_t pg_time, uint32_t xid)
{
    start(m, 'B');
    put64(m, final_lsn);
    put64(m, (uint64_t)pg_time);
    put32(m, xid);
}

static void m_commit(msg *m, uint64_t commit_lsn, uint64_t end_lsn, int64_t pg_time)
{
    start(m, 'C');
    put8(m, 0);
    put64(m, commit_lsn);
    put64(m, end_lsn);
    put64(m, (uint64_t)pg_time);
}

/* cols: "k:name" or "-:name" each */
static void m_relation(msg *m, uint32_t relid, const char *nsp, const char *name, char replident, int ncols,
                       const char *const *cols)
{
    start(m, 'R');
    put32(m, relid);
    putstr(m, nsp);
    putstr(m, name);
    put8(m, (unsigned char)replident);
    put16(m, (unsigned)ncols);
    for (int i = 0; i < ncols; i++) {
        put8(m, cols[i][0] == 'k');
        putstr(m, cols[i] + 2);
        put32(m, 25);
        put32(m, 0xffffffff);
    }
}

/* A TupleData: vals[i] is a C string ('t'), NULL ('n') or TOAST ('u'). */
static const char TOAST[] = "<toast>";

static void m_tuple(msg *m, int ncols, const char *const *vals)
{
    put16(m, (unsigned)ncols);
    for (int i = 0; i < ncols; i++) {
        if (vals[i] == NULL) {
            put8(m, 'n');
        } else if (vals[i] == TOAST) {
            put8(m, 'u');
        } else {
            put8(m, 't');
            put32(m, (uint32_t)strlen(vals[i]));
            putbytes(m, vals[i], strlen(vals[i]));
        }
    }
}

static void m_insert(msg *m, uint32_t relid, int ncols, const char *const *vals)
{
    start(m, 'I');
    put32(m, relid);
    put8(m, 'N');
    m_tuple(m, ncols, vals);
}

/* oldkind 0: no old tuple */
static void m_update(msg *m, uint32_t relid, char oldkind, int ncols, const char *const *oldv,
                     const char *const *newv)
{
    start(m, 'U');
    put32(m, relid);
    if (oldkind) {
        put8(m, (unsigned char)oldkind);
        m_tuple(m, ncols, oldv);
    }
    put8(m, 'N');
    m_tuple(m, ncols, newv);
}

static void m_delete(msg *m, uint32_t relid, char oldkind, int ncols, const char *const *oldv)
{
    start(m, 'D');
    put32(m, relid);
    put8(m, (unsigned char)oldkind);
    m_tuple(m, ncols, oldv);
}

static void m_truncate(msg *m, unsigned options, int n, const uint32_t *relids)
{
    start(m, 'T');
    put32(m, (uint32_t)n);
    put8(m, options);
    for (int i = 0; i < n; i++)
        put32(m, relids[i]);
}

/* A T whose relation count says count but that holds only the given relids. */
static void m_truncate_forged(msg *m, uint32_t count, int n, const uint32_t *relids)
{
    m_truncate(m, 0, n, relids);
    m->b[1] = (unsigned char)(count >> 24);
    m->b[2] = (unsigned char)(count >> 16);
    m->b[3] = (unsigned char)(count >> 8);
    m->b[4] = (unsigned char)count;
}

/* ---------------------------------------------------------------------------
 * Collecting lines
 * ------------------------------------------------------------------------- */

typedef struct sink {
    pgbr_buf out;       /* every line with its LF */
    int lines;
    int fail_at;        /* > 0: fail on that line (1-based) */
} sink;

static bool collect(void *arg, const char *line, size_t len, pgbr_error *err)
{
    sink *s = arg;

    if (s->fail_at > 0 && s->lines + 1 == s->fail_at)
        return pgbr_error_set(err, "58030", "could not write change file");
    if (memchr(line, '\n', len) != NULL)
        return pgbr_error_set(err, "XX000", "line contains a LF");
    s->lines++;
    return pgbr_buf_append(&s->out, line, len, err) && pgbr_buf_append(&s->out, "\n", 1, err);
}

/* The collected text since the last take, as a NUL-terminated string (static). */
static const char *take(sink *s)
{
    static char text[200000];
    size_t n = s->out.len < sizeof text - 1 ? s->out.len : sizeof text - 1;

    if (n > 0)
        memcpy(text, s->out.data, n);
    text[n] = '\0';
    pgbr_buf_reset(&s->out);
    return text;
}

static bool feed(cdc_decoder *d, const msg *m, pgbr_error *err)
{
    pgbr_error_clear(err);
    return cdc_decoder_feed(d, 0x10, m->b, m->n, err);
}

/* Feed, expecting success. */
static void feed_ok(cdc_decoder *d, const msg *m, const char *what)
{
    pgbr_error err = PGBR_ERROR_INIT;

    if (!feed(d, m, &err))
        tap_diag("%s: %s %s", what, err.sqlstate, err.message ? err.message : "");
    pgbr_error_clear(&err);
}

static const char *const PK_COLS[] = { "k:id", "-:v" };
static const char *const FULL_COLS[] = { "k:a", "k:b", "k:c" };

#define PK 16384
#define FULL 16385

/* A decoder that knows the relations PK (d, id key, v) and FULL (f, a b c)
 * and is inside a transaction (B emitted and dropped from the sink). */
static cdc_decoder *setup(sink *s, bool in_txn)
{
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = cdc_decoder_new(collect, s, &err);
    msg m;

    m_relation(&m, PK, "public", "t", 'd', 2, PK_COLS);
    feed_ok(d, &m, "setup R pk");
    m_relation(&m, FULL, "public", "f", 'f', 3, FULL_COLS);
    feed_ok(d, &m, "setup R full");
    if (in_txn) {
        m_begin(&m, 0x100, 0, 1);
        feed_ok(d, &m, "setup B");
    }
    take(s);
    return d;
}

/* ---------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------- */

static void test_every_kind(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = cdc_decoder_new(collect, &s, &err);
    cdc_stats st;
    msg m;

    tap_ok(d != NULL, "decoder created");

    m_begin(&m, UINT64_C(0x16B374D848), 0, 777);
    tap_ok(feed(d, &m, &err), "B decoded");
    tap_is_str(take(&s), "B\t16/B374D848\t946684800000000\t777\n", "B line: lsn text, Unix-epoch time, xid");

    m_relation(&m, PK, "public", "t", 'd', 2, PK_COLS);
    tap_ok(feed(d, &m, &err), "R decoded");
    tap_is_str(take(&s), "", "R alone writes nothing yet");
    m_relation(&m, FULL, "public", "f", 'f', 3, FULL_COLS);
    tap_ok(feed(d, &m, &err), "second R decoded");

    m_insert(&m, PK, 2, (const char *[]){ "1", "one" });
    tap_ok(feed(d, &m, &err), "I decoded");
    tap_is_str(take(&s), "R\t16384\tpublic\tt\td\t2\tk\tid\t-\tv\nI\t16384\t1\tone\n",
               "first change of a relation: R line, then I line");

    m_insert(&m, PK, 2, (const char *[]){ "2", NULL });
    feed(d, &m, &err);
    tap_is_str(take(&s), "I\t16384\t2\t\\N\n", "second change: no R line; NULL is \\N");

    m_update(&m, PK, 0, 2, NULL, (const char *[]){ "2", "two" });
    tap_ok(feed(d, &m, &err), "U without old tuple decoded");
    tap_is_str(take(&s), "U\t16384\t-\t2\ttwo\n", "U, oldkind -");

    m_update(&m, PK, 'K', 2, (const char *[]){ "2", NULL }, (const char *[]){ "3", TOAST });
    tap_ok(feed(d, &m, &err), "U with key tuple decoded");
    tap_is_str(take(&s), "U\t16384\tK\t2\t\\N\t3\t\\U\n", "U, oldkind K, unchanged TOAST is \\U");

    m_update(&m, FULL, 'O', 3, (const char *[]){ "a", "b", NULL }, (const char *[]){ "a", "B", "" });
    tap_ok(feed(d, &m, &err), "U with old tuple decoded");
    tap_is_str(take(&s), "R\t16385\tpublic\tf\tf\t3\tk\ta\tk\tb\tk\tc\nU\t16385\tO\ta\tb\t\\N\ta\tB\t\n",
               "U, oldkind O, after the R line of its relation; empty string stays empty");

    m_delete(&m, PK, 'K', 2, (const char *[]){ "3", NULL });
    tap_ok(feed(d, &m, &err), "D with key decoded");
    tap_is_str(take(&s), "D\t16384\tK\t3\t\\N\n", "D, oldkind K");

    m_delete(&m, FULL, 'O', 3, (const char *[]){ "a", "B", "" });
    tap_ok(feed(d, &m, &err), "D with old tuple decoded");
    tap_is_str(take(&s), "D\t16385\tO\ta\tB\t\n", "D, oldkind O");

    m_truncate(&m, 3, 2, (const uint32_t[]){ PK, FULL });
    tap_ok(feed(d, &m, &err), "T decoded");
    tap_is_str(take(&s), "T\t3\t2\t16384\t16385\n", "T line: options, count, relids");

    start(&m, 'O');
    put64(&m, 0x1234);
    putstr(&m, "origin");
    tap_ok(feed(d, &m, &err), "O accepted");
    start(&m, 'Y');
    put32(&m, 99999);
    putstr(&m, "public");
    putstr(&m, "mood");
    tap_ok(feed(d, &m, &err), "Y accepted");
    start(&m, 'M');
    put8(&m, 1);
    put64(&m, 0x99);
    putstr(&m, "prefix");
    put32(&m, 3);
    putbytes(&m, "abc", 3);
    tap_ok(feed(d, &m, &err), "M accepted");
    tap_is_str(take(&s), "", "O, Y and M write nothing");

    m_commit(&m, UINT64_C(0x16B374D848), UINT64_C(0x16B374D878), 1000001);
    tap_ok(feed(d, &m, &err), "C decoded");
    tap_is_str(take(&s), "C\t16/B374D848\t16/B374D878\t946684801000001\n", "C line");

    start(&m, 'M');
    put8(&m, 0);
    put64(&m, 0x99);
    putstr(&m, "p");
    put32(&m, 0);
    tap_ok(feed(d, &m, &err), "non-transactional M outside a transaction accepted");

    cdc_decoder_stats(d, &st);
    tap_is_int(st.transactions, 1, "stats: 1 transaction");
    tap_is_int(st.changes, 8, "stats: 8 changes (I I U U U D D T)");
    tap_is_int(st.last_commit_lsn, UINT64_C(0x16B374D848), "stats: last commit lsn");
    tap_is_int(st.last_commit_time_us, INT64_C(946684801000001), "stats: last commit time (Unix epoch)");

    /* a negative (pre-2000) commit time is fine */
    m_begin(&m, 0x200, -946684800000000, 2);
    feed(d, &m, &err);
    tap_is_str(take(&s), "B\t0/200\t0\t2\n", "B at the Unix epoch");
    m_commit(&m, 0x200, 0x230, -1000000);
    feed(d, &m, &err);
    tap_is_str(take(&s), "C\t0/200\t0/230\t946684799000000\n", "C before 2000");
    cdc_decoder_stats(d, &st);
    tap_is_int(st.transactions, 2, "stats: 2 transactions");

    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

static void test_escaping(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = cdc_decoder_new(collect, &s, &err);
    msg m;

    m_begin(&m, 0x100, 0, 5);
    feed(d, &m, &err);
    take(&s);
    m_relation(&m, 70000, "my schema\t\xc3\xbc", "we\"ird\nname\\x", 'f', 3,
               (const char *[]){ "k:a\tb", "k:\xe2\x82\xac", "k:\\N" });
    tap_ok(feed(d, &m, &err), "R with odd names decoded");
    m_insert(&m, 70000, 3, (const char *[]){ "tab\there\nnl\rcr\\bs", "\b\f\v\x01\x7f", "\\N" });
    tap_ok(feed(d, &m, &err), "I with odd values decoded");
    tap_is_str(take(&s),
               "R\t70000\tmy schema\\t\xc3\xbc\twe\"ird\\nname\\\\x\tf\t3\tk\ta\\tb\tk\t\xe2\x82\xac\tk\t\\\\N\n"
               "I\t70000\ttab\\there\\nnl\\rcr\\\\bs\t\\b\\f\\v\x01\x7f\t\\\\N\n",
               "names and values escaped like COPY text; UTF-8 and other bytes as they are; "
               "a value \\N is not NULL");

    m_relation(&m, 70001, "", "", 'n', 0, NULL);
    tap_ok(feed(d, &m, &err), "R with empty names and no columns decoded");
    m_insert(&m, 70001, 0, NULL);
    tap_ok(feed(d, &m, &err), "I with no columns decoded");
    tap_is_str(take(&s), "R\t70001\t\t\tn\t0\nI\t70001\n", "zero columns: empty fields, no values");

    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

static void test_lazy_relations(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = setup(&s, true);
    msg m;
    const char *rpk = "R\t16384\tpublic\tt\td\t2\tk\tid\t-\tv\n";
    const char *rfull = "R\t16385\tpublic\tf\tf\t3\tk\ta\tk\tb\tk\tc\n";
    char want[512];

    m_insert(&m, PK, 2, (const char *[]){ "1", "x" });
    feed(d, &m, &err);
    snprintf(want, sizeof want, "%sI\t16384\t1\tx\n", rpk);
    tap_is_str(take(&s), want, "first change: R line");

    m_relation(&m, PK, "public", "t", 'd', 2, PK_COLS);
    feed(d, &m, &err);
    m_insert(&m, PK, 2, (const char *[]){ "2", "y" });
    feed(d, &m, &err);
    tap_is_str(take(&s), "I\t16384\t2\ty\n", "an identical R again (new decoding session) is not written twice");

    cdc_decoder_new_file(d);
    tap_is_str(take(&s), "", "new file writes nothing by itself");
    m_truncate(&m, 0, 2, (const uint32_t[]){ FULL, PK });
    tap_ok(feed(d, &m, &err), "T after new file decoded");
    snprintf(want, sizeof want, "%s%sT\t0\t2\t16385\t16384\n", rfull, rpk);
    tap_is_str(take(&s), want, "new file: T is preceded by the R lines of both relations");
    m_insert(&m, PK, 2, (const char *[]){ "3", "z" });
    feed(d, &m, &err);
    tap_is_str(take(&s), "I\t16384\t3\tz\n", "and only once per file");

    cdc_decoder_new_file(d);
    m_insert(&m, PK, 2, (const char *[]){ "4", "w" });
    feed(d, &m, &err);
    snprintf(want, sizeof want, "%sI\t16384\t4\tw\n", rpk);
    tap_is_str(take(&s), want, "another new file: R again before the next change of that relid only");

    /* DDL: a third column */
    m_relation(&m, PK, "public", "t", 'd', 3, (const char *[]){ "k:id", "-:v", "-:c" });
    tap_ok(feed(d, &m, &err), "changed R decoded");
    m_insert(&m, PK, 2, (const char *[]){ "5", "old shape" });
    tap_ok(!feed(d, &m, &err) && strcmp(err.sqlstate, "XX001") == 0,
           "a tuple of the old column count after the changed R is XX001");
    tap_is_str(err.message,
               "logical decoding message at 0/10 is malformed: tuple has 2 columns, relation 16384 has 3",
               "column count mismatch message");
    tap_is_str(take(&s), "", "nothing written for the bad tuple (not even the pending R line)");
    m_insert(&m, PK, 3, (const char *[]){ "5", "v", "7" });
    feed(d, &m, &err);
    tap_is_str(take(&s), "R\t16384\tpublic\tt\td\t3\tk\tid\t-\tv\t-\tc\nI\t16384\t5\tv\t7\n",
               "changed R: new R line before the next change, new column count");

    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

/* Feed m to a fresh decoder (inside a transaction unless m is a B) and expect XX001. */
static bool expect_malformed(const msg *m, const char *why_part, const char *what)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = setup(&s, m->n == 0 || m->b[0] != 'B');
    bool ok = cdc_decoder_feed(d, UINT64_C(0x2A00000010), m->b, m->n, &err);
    bool good = !ok && strcmp(err.sqlstate, "XX001") == 0 && err.message != NULL &&
                strncmp(err.message, "logical decoding message at 2A/10 is malformed: ", 48) == 0 &&
                (why_part == NULL || strstr(err.message, why_part) != NULL) && s.out.len == 0;

    if (what != NULL && !tap_ok(good, "%s -> XX001", what))
        tap_diag("got %s: %s %s (%zu bytes emitted)", ok ? "success" : "failure", err.sqlstate,
                 err.message ? err.message : "", s.out.len);
    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
    return good;
}

static void test_malformed(void)
{
    msg m, valid[9];
    int nvalid = 0;
    int bad_prefix = 0, bad_trailing = 0, prefixes = 0;
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d;

    m_begin(&valid[nvalid++], 0x100, 5, 9);
    m_commit(&valid[nvalid++], 0x100, 0x130, 5);
    m_relation(&valid[nvalid++], 5000, "s", "r", 'i', 2, (const char *[]){ "k:x", "-:y" });
    m_insert(&valid[nvalid++], PK, 2, (const char *[]){ "1", "abc" });
    m_update(&valid[nvalid++], PK, 0, 2, NULL, (const char *[]){ "1", TOAST });
    m_update(&valid[nvalid++], FULL, 'O', 3, (const char *[]){ "1", NULL, "q" }, (const char *[]){ "1", "2", "3" });
    m_delete(&valid[nvalid++], PK, 'K', 2, (const char *[]){ "1", NULL });
    m_truncate(&valid[nvalid++], 1, 2, (const uint32_t[]){ PK, FULL });
    m_delete(&valid[nvalid++], FULL, 'O', 3, (const char *[]){ "", "", "" });

    for (int i = 0; i < nvalid; i++) {
        /* the message itself decodes in the right state */
        d = setup(&s, valid[i].b[0] != 'B');
        tap_ok(feed(d, &valid[i], &err), "valid '%c' message decodes", valid[i].b[0]);
        cdc_decoder_free(d);
        take(&s);
        for (size_t n = 0; n < valid[i].n; n++) {
            m = valid[i];
            m.n = n;
            prefixes++;
            if (!expect_malformed(&m, n == 0 ? "empty message" : NULL, NULL)) {
                if (bad_prefix++ < 3)
                    tap_diag("'%c' cut at %zu bytes was not XX001", valid[i].b[0], n);
            }
        }
        m = valid[i];
        put8(&m, 0);
        if (!expect_malformed(&m, "1 trailing bytes", NULL))
            bad_trailing++;
    }
    tap_is_int(bad_prefix, 0, "every truncation of every message kind (%d cuts) is XX001, nothing emitted",
               prefixes);
    tap_is_int(bad_trailing, 0, "a trailing byte after any message kind is XX001");

    start(&m, 'Z');
    expect_malformed(&m, "unknown message type 'Z'", "unknown message type");
    start(&m, 'S');
    put32(&m, 1);
    put8(&m, 1);
    expect_malformed(&m, "unknown message type 'S'", "stream start (proto_version 2)");
    start(&m, 0x01);
    expect_malformed(&m, "unknown message type 0x01", "unprintable message type");

    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    m.b[8] = 'b';
    expect_malformed(&m, "column 1 is in binary format", "binary 'b' column");
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    m.b[8] = 'x';
    expect_malformed(&m, "column 1 has unknown kind 0x78", "unknown column kind");
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    memcpy(m.b + 9, "\xff\xff\xff\xff", 4);
    expect_malformed(&m, "column 1 has a negative length", "negative value length");
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    memcpy(m.b + 9, "\x7f\xff\xff\xff", 4);
    expect_malformed(&m, "truncated column value (2147483647 bytes needed", "value length past the end");
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    memcpy(m.b + 9, "\x00\x00\x00\x02", 4);
    expect_malformed(&m, "column 2 has unknown kind 0x00", "value length too short (misframed)");
    m_insert(&m, PK, 2, (const char *[]){ "1", "a\x01" "c" });
    m.b[m.n - 2] = 0;
    expect_malformed(&m, "column 2 contains a zero byte", "zero byte in a value");
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    m.b[6] = 0xff;      /* column count 0xff02 */
    expect_malformed(&m, "tuple has 65282 columns, relation 16384 has 2", "forged column count");
    m_insert(&m, 4242, 2, (const char *[]){ "1", "abc" });
    expect_malformed(&m, "relation 4242 is unknown (no Relation message described it)", "unknown relid in I");
    m_update(&m, 4243, 0, 2, NULL, (const char *[]){ "1", "abc" });
    expect_malformed(&m, "relation 4243 is unknown", "unknown relid in U");
    m_delete(&m, 4244, 'K', 2, (const char *[]){ "1", NULL });
    expect_malformed(&m, "relation 4244 is unknown", "unknown relid in D");
    m_truncate(&m, 0, 2, (const uint32_t[]){ PK, 4245 });
    expect_malformed(&m, "relation 4245 is unknown", "unknown relid in T (nothing emitted, not even R lines)");
    m_truncate_forged(&m, 0x40000000, 1, (const uint32_t[]){ PK });
    expect_malformed(&m, "1073741824 relations do not fit in 4 bytes", "forged relation count in T");
    m_truncate_forged(&m, 0xffffffff, 1, (const uint32_t[]){ PK });
    expect_malformed(&m, "relation count 4294967295 is negative", "negative relation count in T");
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    m.b[5] = 'X';
    expect_malformed(&m, "new tuple tag is 0x58, not 'N'", "bad new tuple tag in I");
    m_update(&m, PK, 0, 2, NULL, (const char *[]){ "1", "abc" });
    m.b[5] = 'X';
    expect_malformed(&m, "tuple tag is 0x58, not 'K', 'O' or 'N'", "bad tag in U");
    m_update(&m, PK, 'K', 2, (const char *[]){ "1", NULL }, (const char *[]){ "1", "abc" });
    m.b[5 + 1 + 2 + 1 + 4 + 1 + 1] = 'K';
    expect_malformed(&m, "tuple tag is 0x4b", "U with two old tuples");
    m_delete(&m, PK, 'N', 2, (const char *[]){ "1", NULL });
    expect_malformed(&m, "old tuple tag is 0x4e, not 'K' or 'O'", "D with a new tuple");

    m_relation(&m, 0, "s", "r", 'd', 0, NULL);
    expect_malformed(&m, "relation id is 0", "R with relid 0");
    m_relation(&m, 5, "s", "r", 'x', 0, NULL);
    expect_malformed(&m, "replica identity 0x78 is not d, n, f or i", "R with bad replica identity");
    m_relation(&m, 5, "s", "r", 'd', 1, (const char *[]){ "k:x" });
    m.b[m.n - 11] = 2;
    expect_malformed(&m, "column 1 has unknown flags 0x02", "R with unknown column flags");
    m_relation(&m, 5, "s", "r", 'd', 0, NULL);
    m.b[m.n - 2] = 0x80;
    expect_malformed(&m, "column count 32768 is negative", "R with negative column count");
    m_relation(&m, 5, "s", "r", 'd', 0, NULL);
    m.b[m.n - 1] = 0x10;
    expect_malformed(&m, "truncated column flags", "R with forged column count");
    start(&m, 'R');
    put32(&m, 5);
    putbytes(&m, "unterminated", 12);
    expect_malformed(&m, "namespace is not terminated", "R with unterminated string");

    m_begin(&m, 0x100, INT64_MAX, 1);
    expect_malformed(&m, "commit time is out of range", "commit time that overflows");
    m_commit(&m, 0x100, 0x130, 0);
    m.b[1] = 1;
    expect_malformed(&m, "commit flags are 0x01, not 0", "C with non-zero flags");

    /* transaction state */
    d = setup(&s, false);
    m_insert(&m, PK, 2, (const char *[]){ "1", "abc" });
    tap_ok(!feed(d, &m, &err) && strstr(err.message, "insert outside a transaction") != NULL,
           "I outside a transaction -> XX001");
    m_commit(&m, 0x100, 0x130, 0);
    tap_ok(!feed(d, &m, &err) && strstr(err.message, "commit outside a transaction") != NULL,
           "C outside a transaction -> XX001");
    m_truncate(&m, 0, 1, (const uint32_t[]){ PK });
    tap_ok(!feed(d, &m, &err) && strstr(err.message, "truncate outside a transaction") != NULL,
           "T outside a transaction -> XX001");
    m_begin(&m, 0x100, 0, 1);
    tap_ok(feed(d, &m, &err), "B");
    tap_ok(!feed(d, &m, &err) && strstr(err.message, "begin inside a transaction") != NULL,
           "B inside a transaction -> XX001");
    tap_is_str(err.detail, "Message type 'B', 21 bytes, at byte offset 21.", "DETAIL names type, size, offset");
    m_relation(&m, 77, "s", "r", 'd', 0, NULL);
    tap_ok(feed(d, &m, &err), "R inside a transaction is fine");
    tap_ok(cdc_decoder_feed(d, 0, NULL, 0, &err) == false && strcmp(err.sqlstate, "XX001") == 0,
           "NULL message -> XX001");
    tap_is_str(err.message, "logical decoding message at 0/0 is malformed: empty message", "empty message text");
    cdc_decoder_free(d);
    take(&s);

    /* random byte flips: decoded or XX001, never anything else (ASan/UBSan watch the reads) */
    {
        int other = 0, flips = 0;

        for (int round = 0; round < 4000; round++) {
            const msg *v = &valid[rng() % (uint64_t)nvalid];
            int k = 1 + (int)(rng() % 4);

            m = *v;
            for (int j = 0; j < k; j++)
                m.b[rng() % m.n] ^= (unsigned char)(1u << (rng() % 8));
            if (rng() % 4 == 0)
                m.n = (size_t)(rng() % (m.n + 1));
            d = setup(&s, m.n == 0 || m.b[0] != 'B');
            pgbr_error_clear(&err);
            if (!cdc_decoder_feed(d, 1, m.b, m.n, &err) && strcmp(err.sqlstate, "XX001") != 0) {
                if (other++ < 3)
                    tap_diag("flip gave %s %s", err.sqlstate, err.message);
            }
            cdc_decoder_free(d);
            take(&s);
            flips++;
        }
        tap_is_int(other, 0, "%d randomly corrupted messages: each decoded or XX001", flips);
    }
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

static void test_failing_consumer(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = setup(&s, true);
    msg m;

    s.lines = 0;
    s.fail_at = 2;
    m_insert(&m, PK, 2, (const char *[]){ "1", "a" });
    tap_ok(!feed(d, &m, &err), "consumer failing on the I line after the R line: feed fails");
    tap_is_str(err.sqlstate, "58030", "the consumer's SQLSTATE comes back");
    tap_is_str(err.message, "could not write change file", "the consumer's message comes back");
    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

static void test_many_relations(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = cdc_decoder_new(collect, &s, &err);
    msg m;
    int bad = 0;
    char name[32], want[256];

    m_begin(&m, 0x100, 0, 1);
    feed(d, &m, &err);
    take(&s);
    for (uint32_t i = 1; i <= 3000; i++) {
        snprintf(name, sizeof name, "t%u", i);
        m_relation(&m, i * 7919u, "s", name, 'd', 1, (const char *[]){ "k:id" });
        if (!feed(d, &m, &err))
            bad++;
    }
    for (uint32_t i = 3000; i >= 1; i--) {
        const char *got;

        snprintf(name, sizeof name, "%u", i);
        m_insert(&m, i * 7919u, 1, (const char *[]){ name });
        if (!feed(d, &m, &err)) {
            bad++;
            continue;
        }
        snprintf(want, sizeof want, "R\t%u\ts\tt%u\td\t1\tk\tid\nI\t%u\t%u\n", i * 7919u, i, i * 7919u, i);
        got = take(&s);
        if (strcmp(got, want) != 0 && bad++ < 3)
            tap_diag("relation %u: got %s", i, got);
    }
    tap_is_int(bad, 0, "3000 relations: each found again with its own R line");
    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

static void test_lsn(void)
{
    uint64_t v = 0;
    char text[CDC_LSN_TEXT_SIZE];
    const char *bad[] = { "", "/", "1/", "/1", "123456789/0", "0/123456789", "1/2x", "G/1", " 1/2",
                          "1/2 ", "1//2", "1/-2", "+1/2", "0x1/2", NULL };
    int nbad = 0;

    tap_ok(cdc_lsn_parse("16/B374D848", &v) && v == UINT64_C(0x16B374D848), "parse 16/B374D848");
    tap_ok(cdc_lsn_parse("0/0", &v) && v == 0, "parse 0/0");
    tap_ok(cdc_lsn_parse("ffffffff/FFFFFFFF", &v) && v == UINT64_MAX, "parse the largest, either case");
    tap_ok(cdc_lsn_parse("00000001/00000002", &v) && v == UINT64_C(0x100000002), "leading zeros");
    for (int i = 0; bad[i] != NULL; i++) {
        v = 42;
        if (cdc_lsn_parse(bad[i], &v) || v != 42) {
            nbad++;
            tap_diag("accepted \"%s\"", bad[i]);
        }
    }
    tap_is_int(nbad, 0, "malformed LSN texts refused, value untouched");
    tap_ok(!cdc_lsn_parse(NULL, &v), "NULL refused");
    cdc_lsn_format(UINT64_C(0x16B374D848), text);
    tap_is_str(text, "16/B374D848", "format 16/B374D848");
    cdc_lsn_format(0, text);
    tap_is_str(text, "0/0", "format 0/0");
    cdc_lsn_format(UINT64_MAX, text);
    tap_is_str(text, "FFFFFFFF/FFFFFFFF", "format the largest");
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng() >> (rng() % 64), y = 0;

        cdc_lsn_format(x, text);
        if (!cdc_lsn_parse(text, &y) || y != x) {
            nbad++;
            break;
        }
    }
    tap_is_int(nbad, 0, "format/parse round trip of 1000 random LSNs");
}

#define SET(buf, text) snprintf(buf, sizeof buf, "%s", text)

static void test_split_unescape(void)
{
    char line[64];
    char *f[8];
    size_t len;
    int n;

    SET(line, "a\tbc\t\td");
    n = cdc_split_fields(line, strlen(line), f, 8);
    tap_ok(n == 4 && strcmp(f[0], "a") == 0 && strcmp(f[1], "bc") == 0 && f[2][0] == '\0' &&
               strcmp(f[3], "d") == 0,
           "split into 4 fields, an empty one in the middle");
    memcpy(line, "x\ty\n", 4);
    n = cdc_split_fields(line, 3, f, 8);
    tap_ok(n == 2 && strcmp(f[1], "y") == 0, "the LF's place becomes the NUL");
    line[0] = 'Z';
    n = cdc_split_fields(line, 0, f, 8);
    tap_ok(n == 1 && f[0][0] == '\0', "empty line: one empty field");
    SET(line, "\t");
    n = cdc_split_fields(line, 1, f, 8);
    tap_ok(n == 2 && f[0][0] == '\0' && f[1][0] == '\0', "a lone TAB: two empty fields");
    SET(line, "1\t2\t3");
    tap_is_int(cdc_split_fields(line, 5, f, 3), 3, "exactly max fields");
    SET(line, "1\t2\t3\t4");
    tap_is_int(cdc_split_fields(line, 7, f, 3), -1, "more than max fields -> -1");

#define UNESC(in, out_, what)                                                          \
    do {                                                                               \
        SET(line, in);                                                              \
        len = strlen(line);                                                            \
        tap_ok(cdc_unescape(line, &len) && len == sizeof(out_) - 1 &&                  \
                   memcmp(line, out_, len) == 0 && line[len] == '\0',                  \
               "unescape %s", what);                                                   \
    } while (0)
#define UNESC_BAD(in, what)                                                            \
    do {                                                                               \
        SET(line, in);                                                              \
        len = strlen(line);                                                            \
        tap_ok(!cdc_unescape(line, &len), "unescape refuses %s", what);                \
    } while (0)

    UNESC("plain", "plain", "plain text unchanged");
    UNESC("", "", "empty field");
    UNESC("a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh", "a\tb\nc\rd\\e\bf\fg\vh", "the escapes the decoder writes");
    UNESC("\\x41\\x4a\\x9", "AJ\t", "\\x with 2 and 1 hex digits");
    UNESC("\\101\\12\\7x", "A\n\ax", "\\ooo with 3, 2 and 1 octal digits");
    UNESC("\\1018", "A8", "octal stops after 3 digits");
    UNESC("\\\\N", "\\N", "an escaped backslash before N");
    UNESC_BAD("\\N", "\\N (NULL is the caller's business)");
    UNESC_BAD("\\U", "\\U (unchanged TOAST is the caller's business)");
    UNESC_BAD("abc\\", "a trailing backslash");
    UNESC_BAD("\\q", "an unknown escape");
    UNESC_BAD("\\x", "\\x without digits");
    UNESC_BAD("\\0", "an escape giving a zero byte");
    UNESC_BAD("\\x00", "\\x00");
    UNESC_BAD("\\400", "\\400 (low 8 bits are zero)");
    UNESC_BAD("\\.", "the end-of-data marker");
#undef UNESC
#undef UNESC_BAD
}

/* cdc_escape writes what cdc_unescape reads, within 2 * n bytes. */
static void test_escape(void)
{
    static const char in[] = "a\tb\nc\rd\\e\bf\fg\vh\xc3\xa9";
    static const char want[] = "a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh\xc3\xa9";
    char out[2 * (sizeof in - 1) + 1];
    size_t n;

    memset(out, '#', sizeof out);
    n = cdc_escape(out, in, sizeof in - 1);
    tap_ok(n == sizeof want - 1 && memcmp(out, want, n) == 0, "escape: the seven escapes, other bytes as they are");
    tap_ok(out[sizeof out - 1] == '#', "escape: nothing written past 2 * n bytes");
    memset(out, '#', sizeof out);
    tap_ok(cdc_escape(out, "\t\t", 2) == 4 && memcmp(out, "\\t\\t", 4) == 0 && out[4] == '#',
           "escape: only escapes take exactly 2 * n bytes");
    tap_is_int((int)cdc_escape(out, "", 0), 0, "escape: empty in, nothing out");
    n = cdc_escape(out, in, sizeof in - 1);
    out[n] = '\0';
    tap_ok(cdc_unescape(out, &n) && n == sizeof in - 1 && memcmp(out, in, n) == 0, "escape: unescape gives it back");
}

/* Random values through the decoder, back through split and unescape. */
static void test_round_trip(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = setup(&s, true);
    static char vals[3][600];
    msg m;
    int bad = 0;

    m_delete(&m, FULL, 'O', 3, (const char *[]){ "", "", "" });
    feed(d, &m, &err);
    take(&s);   /* the R line goes out with this first change */
    for (int round = 0; round < 2000; round++) {
        const char *v[3];
        char *f[12];
        int n;

        for (int c = 0; c < 3; c++) {
            size_t len = (size_t)(rng() % 500);

            for (size_t i = 0; i < len; i++) {
                uint64_t r = rng();
                /* mostly specials, to hit every escape */
                const char specials[] = "\\\t\n\r\b\f\vNU.x0";

                vals[c][i] = (r & 1) ? specials[(r >> 1) % (sizeof specials - 1)]
                                     : (char)(1 + (r >> 1) % 255);
            }
            vals[c][len] = '\0';
            v[c] = (rng() % 10 == 0) ? NULL : (rng() % 10 == 0) ? TOAST : vals[c];
        }
        m_update(&m, FULL, 'O', 3, v, v);
        if (!feed(d, &m, &err)) {
            if (bad++ < 3)
                tap_diag("round %d: %s", round, err.message);
            continue;
        }
        if (s.out.len == 0 || s.out.data[s.out.len - 1] != '\n' ||
            memchr(s.out.data, '\n', s.out.len - 1) != NULL) {
            bad++;
            take(&s);
            continue;
        }
        n = cdc_split_fields((char *)s.out.data, s.out.len - 1, f, 12);
        if (n != 9 || strcmp(f[0], "U") != 0 || strcmp(f[1], "16385") != 0 || strcmp(f[2], "O") != 0) {
            bad++;
            take(&s);
            continue;
        }
        for (int c = 0; c < 6; c++) {
            const char *want = v[c % 3];
            char *field = f[3 + c];
            size_t len = strlen(field);

            if (want == NULL) {
                if (strcmp(field, "\\N") != 0)
                    bad++;
            } else if (want == TOAST) {
                if (strcmp(field, "\\U") != 0)
                    bad++;
            } else if (!cdc_unescape(field, &len) || len != strlen(want) || memcmp(field, want, len) != 0) {
                if (bad++ < 3)
                    tap_diag("round %d column %d did not come back", round, c);
            }
        }
        take(&s);
    }
    tap_is_int(bad, 0, "2000 random rows: decoded, split and unescaped back to the same bytes");
    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

static void test_big_value(void)
{
    sink s = { PGBR_BUF_INIT, 0, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = setup(&s, true);
    size_t big = 3 * 1024 * 1024;
    unsigned char *mb = malloc(big + 64);
    size_t n = 0;
    char *f[4];
    size_t len;

    /* an I of a 3 MiB value of backslashes (doubles when escaped) */
    mb[n++] = 'I';
    mb[n++] = 0; mb[n++] = 0; mb[n++] = PK >> 8; mb[n++] = PK & 0xff;
    mb[n++] = 'N';
    mb[n++] = 0; mb[n++] = 2;
    mb[n++] = 'n';
    mb[n++] = 't';
    mb[n++] = (unsigned char)(big >> 24); mb[n++] = (unsigned char)(big >> 16);
    mb[n++] = (unsigned char)(big >> 8); mb[n++] = (unsigned char)big;
    memset(mb + n, '\\', big);
    n += big;
    s.lines = 0;
    tap_ok(cdc_decoder_feed(d, 1, mb, n, &err), "3 MiB value decoded");
    tap_ok(s.out.len > 2 * big && s.lines == 2, "R line and one I line, %zu bytes", s.out.len);
    {
        char *line = (char *)memchr(s.out.data, '\n', s.out.len) + 1;
        size_t linelen = s.out.len - (size_t)(line - (char *)s.out.data) - 1;

        tap_is_int(cdc_split_fields(line, linelen, f, 4), 4, "split the big line");
        len = strlen(f[3]);
        tap_ok(cdc_unescape(f[3], &len) && len == big && f[3][0] == '\\' && f[3][big - 1] == '\\',
               "unescaped back to 3 MiB of backslashes");
    }
    free(mb);
    cdc_decoder_free(d);
    pgbr_buf_free(&s.out);
    pgbr_error_clear(&err);
}

int main(void)
{
    test_every_kind();
    test_escaping();
    test_lazy_relations();
    test_malformed();
    test_failing_consumer();
    test_many_relations();
    test_lsn();
    test_split_unescape();
    test_escape();
    test_round_trip();
    test_big_value();
    cdc_decoder_free(NULL);
    return tap_done();
}
