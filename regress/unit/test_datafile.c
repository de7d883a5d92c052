/*
 * test_datafile.c - unit tests for backup data files (src/io/datafile.c):
 * round trips (0 rows, 1 row, rows exactly at the frame boundary, a 20 MiB
 * row, many frames, no compression) read back in pieces from 1 byte up;
 * frames always hold whole rows; and every corruption class: each byte
 * flipped, truncation at every length, bad magic/version/compression/flags,
 * encryption not supported, giant and inconsistent lengths (with valid
 * CRCs, so the deeper checks are reached), frames dropped, repeated or
 * swapped, wrong totals, trailing data -> XX001, never a crash and never a
 * wrong row handed on.
 *
 * Column-major frames (ZSTD_COLUMNS, the default): byte-exact round trips of
 * every shape (empty strings, \N, zero and one column, one row, a huge row,
 * the widest row, bytes that are not rows, frames of both layouts in one
 * file, random tables), the payload checked against the documented layout,
 * a file of the previous version (compression 1) still read, and forged
 * columnar payloads (truncated header, wrong column or line count, lengths
 * past the end, a rebuild of the wrong size) -> XX001.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <zstd.h>

#include "pgbr/buf.h"
#include "pgbr/datafile.h"
#include "pgbr/filter.h"
#include "tap.h"
#include "testutil.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
    return test_rng(&rng_state);
}

/* n rows of COPY text, each with an id, hex and a timestamp */
static void gen_rows(pgbr_buf *out, int n)
{
    pgbr_error err = PGBR_ERROR_INIT;
    char row[160];

    for (int i = 0; i < n; i++) {
        uint64_t a = rng();
        int len = snprintf(row, sizeof row, "%d\t%016llx\t2026-11-%02d 12:%02d:00+00\t%s\n", i,
                           (unsigned long long)a, (int)(a % 28) + 1, (int)(a >> 8) % 60,
                           (a & 1) ? "\\N" : "some text");

        pgbr_buf_append(out, row, (size_t)len, &err);
    }
}

/* What the reader handed over. */
typedef struct got {
    pgbr_buf data;
    uint64_t frames;
    uint64_t rows;
    size_t max_frame;
    bool whole_rows;        /* every frame ended at a row end, nrows matched */
    bool in_order;
    int fail_at;            /* > 0: the callback fails on that frame */
} got;

static bool on_frame(void *arg, uint64_t index, const void *data, size_t len, uint64_t nrows,
                     pgbr_error *err)
{
    got *g = arg;
    const char *p = data;
    uint64_t lines = 0;

    if (g->fail_at > 0 && (int)index + 1 == g->fail_at)
        return pgbr_error_set(err, "57014", "canceling statement due to user request");
    for (size_t i = 0; i < len; i++)
        lines += p[i] == '\n';
    if (len == 0 || p[len - 1] != '\n' || lines != nrows)
        g->whole_rows = false;
    if (index != g->frames)
        g->in_order = false;
    g->frames++;
    g->rows += nrows;
    if (len > g->max_frame)
        g->max_frame = len;
    return pgbr_buf_append(&g->data, data, len, err);
}

static void got_init(got *g)
{
    memset(g, 0, sizeof *g);
    g->whole_rows = g->in_order = true;
}

/* Write rows (newline-terminated text), rows_per_call rows per add_rows;
 * bytes after the last newline go as a chunk of 0 rows. */
static bool write_file(const pgbr_buf *rows, int rows_per_call, const datafile_writer_options *o,
                       pgbr_buf *file, datafile_totals *totals)
{
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_writer *w = datafile_writer_new(pgbr_buf_sink, file, o, &err);
    size_t start = 0;
    bool ok = w != NULL;

    while (ok && start < rows->len) {
        size_t end = start;
        int n = 0;

        while (end < rows->len && n < rows_per_call) {
            unsigned char *nl = memchr(rows->data + end, '\n', rows->len - end);

            if (nl == NULL) {
                end = rows->len;    /* trailing bytes that are not a row */
                break;
            }
            end = (size_t)(nl - rows->data) + 1;
            n++;
        }
        ok = datafile_writer_add_rows(w, rows->data + start, end - start, (uint64_t)n, &err);
        start = end;
    }
    ok = ok && datafile_writer_finish(w, totals, &err);
    if (!ok)
        tap_diag("write_file: %s", err.message);
    pgbr_error_clear(&err);
    datafile_writer_free(w);
    return ok;
}

/* Read file fed in chunk-byte pieces. On failure err is left set. */
static bool read_file(const unsigned char *file, size_t len, size_t chunk, got *g,
                      datafile_totals *totals, pgbr_error *err)
{
    datafile_reader *r = datafile_reader_new("data/db/16384/0.pgbr", on_frame, g, err);
    bool ok = true;

    for (size_t off = 0; ok && off < len; off += chunk)
        ok = datafile_reader_feed(r, file + off, len - off < chunk ? len - off : chunk, err);
    ok = ok && datafile_reader_finish(r, totals, err);
    datafile_reader_free(r);
    return ok;
}

static void round_trip(const char *what, const pgbr_buf *rows, int nrows, int rows_per_call,
                       const datafile_writer_options *o, size_t expect_frames)
{
    pgbr_buf file = PGBR_BUF_INIT;
    datafile_totals wt = { 0 };
    const size_t chunks[] = { 1, 7, 65536, SIZE_MAX };
    bool wrote = write_file(rows, rows_per_call, o, &file, &wt);
    /* bytes after the last row make a frame that does not end at a row end */
    bool all_rows = rows->len == 0 || rows->data[rows->len - 1] == '\n';

    tap_ok(wrote && wt.rows == (uint64_t)nrows && wt.raw_bytes == rows->len &&
           wt.stored_bytes == file.len &&
           (expect_frames == SIZE_MAX || wt.frames == expect_frames),
           "%s: written, %llu rows in %llu frames, %zu -> %zu bytes", what,
           (unsigned long long)wt.rows, (unsigned long long)wt.frames, rows->len, file.len);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        pgbr_error err = PGBR_ERROR_INIT;
        datafile_totals rt = { 0 };
        got g;
        bool ok;

        if (chunks[c] == 1 && file.len > (4 << 20))
            continue;   /* a byte at a time is for the smaller files */
        got_init(&g);
        ok = read_file(file.data, file.len, chunks[c], &g, &rt, &err);
        if (!tap_ok(ok && g.data.len == rows->len &&
                    (rows->len == 0 || memcmp(g.data.data, rows->data, rows->len) == 0) &&
                    g.rows == (uint64_t)nrows && g.frames == wt.frames &&
                    (g.whole_rows || !all_rows) &&
                    g.in_order && rt.rows == wt.rows && rt.raw_bytes == wt.raw_bytes &&
                    rt.frames == wt.frames && rt.stored_bytes == file.len,
                    "%s: read back identical in %s, whole rows per frame", what,
                    chunks[c] == SIZE_MAX ? "a single piece" : chunks[c] == 1 ? "1-byte pieces" :
                    chunks[c] == 7 ? "7-byte pieces" : "64 KiB pieces"))
            tap_diag("%s", err.message ? err.message : "data differs");
        pgbr_error_clear(&err);
        pgbr_buf_free(&g.data);
    }
    pgbr_buf_free(&file);
}

static void test_round_trips(void)
{
    datafile_writer_options cols = DATAFILE_WRITER_OPTIONS_DEFAULT, zstd = cols, none = cols;
    datafile_writer_options small = cols;
    pgbr_buf rows = PGBR_BUF_INIT, file = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_totals t;
    bool wrote;
    char *big;
    got g;

    zstd.compression = DATAFILE_COMPRESSION_ZSTD;
    none.compression = DATAFILE_COMPRESSION_NONE;
    small.frame_target = 4096;
    round_trip("0 rows", &rows, 0, 1, &cols, 0);
    wrote = write_file(&rows, 1, NULL, &file, &t);
    tap_ok(wrote && file.len == DATAFILE_HEADER_SIZE + DATAFILE_FRAME_HEADER_SIZE +
                                DATAFILE_END_PAYLOAD_SIZE && t.frames == 0,
           "an empty file is header + end frame, %zu bytes", file.len);
    pgbr_buf_free(&file);
    pgbr_buf_append(&rows, "1\tone\n", 6, &err);
    round_trip("1 row", &rows, 1, 1, &cols, 1);
    round_trip("1 row, zstd by rows", &rows, 1, 1, &zstd, 1);
    round_trip("1 row, no compression", &rows, 1, 1, &none, 1);
    pgbr_buf_reset(&rows);

    /* 1024 rows of exactly 1024 bytes fill the 1 MiB frame exactly */
    for (int i = 0; i < 2049; i++) {
        char row[1024];

        memset(row, 'a' + i % 26, sizeof row);
        snprintf(row, 12, "%010d", i);
        row[10] = '\t';
        row[1023] = '\n';
        pgbr_buf_append(&rows, row, sizeof row, &err);
    }
    round_trip("2049 rows of 1 KiB: frames of exactly 1 MiB", &rows, 2049, 1, &cols, 3);
    round_trip("2049 rows of 1 KiB, fed 100 at a time", &rows, 2049, 100, &cols, SIZE_MAX);
    round_trip("2049 rows of 1 KiB, zstd by rows", &rows, 2049, 1, &zstd, 3);
    pgbr_buf_reset(&rows);

    gen_rows(&rows, 300000);
    round_trip("300000 rows, many frames", &rows, 300000, 1, &cols, SIZE_MAX);
    round_trip("300000 rows, zstd by rows", &rows, 300000, 1, &zstd, SIZE_MAX);
    round_trip("300000 rows, no compression", &rows, 300000, 1, &none, SIZE_MAX);
    round_trip("300000 rows, 4 KiB frames", &rows, 300000, 1, &small, SIZE_MAX);

    /* a 20 MiB row between small ones: its frame holds it alone */
    pgbr_buf_reset(&rows);
    gen_rows(&rows, 1000);
    big = malloc(20 << 20);
    for (size_t i = 0; i < (20u << 20); i++)
        big[i] = "0123456789abcdef"[rng() & 15];
    big[(20 << 20) - 1] = '\n';
    pgbr_buf_append(&rows, big, 20 << 20, &err);
    gen_rows(&rows, 1000);
    round_trip("a 20 MiB row among 2000 small ones", &rows, 2001, 1, &cols, 3);
    round_trip("a 20 MiB row among 2000 small ones, zstd by rows", &rows, 2001, 1, &zstd, 3);
    pgbr_buf_free(&file);
    write_file(&rows, 1, NULL, &file, &t);
    got_init(&g);
    read_file(file.data, file.len, 1 << 20, &g, NULL, &err);
    tap_ok(g.max_frame == (20u << 20) && g.frames == 3,
           "the big row's frame is 20 MiB, the others fit the target");
    pgbr_buf_free(&g.data);
    pgbr_buf_free(&file);
    free(big);
    pgbr_buf_free(&rows);
}

/* ---- corruption ---- */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* Offsets of the frames (the end frame last); returns their count. */
static size_t frame_offsets(const pgbr_buf *file, size_t *offs, size_t max)
{
    size_t n = 0, off = DATAFILE_HEADER_SIZE;

    while (off < file->len && n < max) {
        offs[n++] = off;
        off += DATAFILE_FRAME_HEADER_SIZE + get_u32(file->data + off + 12);
    }
    return n;
}

/* Recompute the CRC of the header, or of frame index at off, as a forger would. */
static void fix_header_crc(pgbr_buf *file)
{
    put_u32(file->data + 28, crc32c_update(0, file->data, 28));
}

static void fix_frame_crc(pgbr_buf *file, size_t off, uint64_t index)
{
    unsigned char idx[8];
    uint32_t crc;

    for (int i = 0; i < 8; i++)
        idx[i] = (unsigned char)(index >> (56 - 8 * i));
    crc = crc32c_update(crc32c_update(0, idx, 8), file->data + off, 16);
    crc = crc32c_update(crc, file->data + off + 20, get_u32(file->data + off + 12));
    put_u32(file->data + off + 16, crc);
}

/* Reading must fail with sqlstate (and message containing want); frames
 * handed over before the failure must be a prefix of the true rows. */
static bool expect_fail(const pgbr_buf *file, size_t len, const pgbr_buf *rows,
                        const char *sqlstate, const char *want, bool quiet)
{
    pgbr_error err = PGBR_ERROR_INIT;
    got g;
    bool ok, good;

    got_init(&g);
    ok = read_file(file->data, len, SIZE_MAX, &g, NULL, &err);
    good = !ok && strcmp(err.sqlstate, sqlstate) == 0 &&
           (want == NULL || strstr(err.message, want) != NULL) && g.data.len <= rows->len &&
           (g.data.len == 0 || memcmp(g.data.data, rows->data, g.data.len) == 0);
    if (!good && !quiet)
        tap_diag("got %s: %s", ok ? "success" : err.sqlstate, ok ? "" : err.message);
    pgbr_error_clear(&err);
    pgbr_buf_free(&g.data);
    return good;
}

static void test_corruption(datafile_compression kind)
{
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    pgbr_buf rows = PGBR_BUF_INIT, file = PGBR_BUF_INIT, copy = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;
    const char *mode = kind == DATAFILE_COMPRESSION_ZSTD_COLUMNS ? "columnar zstd" :
                       kind == DATAFILE_COMPRESSION_ZSTD ? "zstd" : "uncompressed";
    size_t offs[64], nf, bad = 0;
    datafile_totals t;

    o.compression = kind;
    o.frame_target = 2048;
    gen_rows(&rows, 150);
    write_file(&rows, 1, &o, &file, &t);
    nf = frame_offsets(&file, offs, 64);
    tap_ok(t.frames >= 4 && nf == t.frames + 1, "%s: a %zu-byte test file with %zu frames", mode,
           file.len, nf);
    pgbr_buf_append(&copy, file.data, file.len, &err);

    for (size_t i = 0; i < file.len; i++)
        for (int pattern = 0; pattern < 3; pattern++) {
            unsigned char x = pattern == 0 ? 0x01 : pattern == 1 ? 0x80 : 0xff;

            copy.data[i] ^= x;
            if (!expect_fail(&copy, copy.len, &rows, "XX001", "is corrupted: ", true)) {
                bad++;
                tap_diag("flip 0x%02x at %zu not caught", x, i);
            }
            copy.data[i] ^= x;
        }
    tap_ok(bad == 0, "%s: %zu bytes x 3 flips, each refused with XX001, no bad row handed on",
           mode, file.len);
    bad = 0;
    for (size_t len = 0; len < file.len; len++)
        if (!expect_fail(&file, len, &rows, "XX001", "is corrupted: ", true)) {
            bad++;
            tap_diag("truncation to %zu not caught", len);
        }
    tap_ok(bad == 0, "%s: truncation at each of %zu lengths refused with XX001", mode, file.len);
    tap_ok(expect_fail(&file, offs[nf - 1], &rows, "XX001", "without an end frame", false),
           "%s: the end frame missing", mode);
    tap_ok(expect_fail(&file, offs[2], &rows, "XX001", "after frame 2 without an end frame",
                       false), "%s: cut at a frame boundary", mode);
    tap_ok(expect_fail(&file, offs[2] + 5, &rows, "XX001", "inside the header of frame 2", false),
           "%s: cut inside a frame header", mode);
    tap_ok(expect_fail(&file, offs[2] + 30, &rows, "XX001", "ends inside frame 2", false),
           "%s: cut inside a payload", mode);
    tap_ok(expect_fail(&file, 10, &rows, "XX001", "ends inside its header", false),
           "%s: cut inside the file header", mode);
    tap_ok(expect_fail(&file, 0, &rows, "XX001", "file is empty", false), "%s: empty", mode);
    pgbr_buf_append(&copy, "x", 1, &err);
    tap_ok(expect_fail(&copy, copy.len, &rows, "XX001", "unexpected data after the end frame",
                       false), "%s: a byte after the end frame", mode);

    /* frames dropped, repeated, swapped: the CRC binds each to its index */
    pgbr_buf_reset(&copy);
    pgbr_buf_append(&copy, file.data, offs[1], &err);
    pgbr_buf_append(&copy, file.data + offs[2], file.len - offs[2], &err);
    tap_ok(expect_fail(&copy, copy.len, &rows, "XX001", "frame 1 checksum mismatch", false),
           "%s: a frame dropped", mode);
    pgbr_buf_reset(&copy);
    pgbr_buf_append(&copy, file.data, offs[2], &err);
    pgbr_buf_append(&copy, file.data + offs[1], file.len - offs[1], &err);
    tap_ok(expect_fail(&copy, copy.len, &rows, "XX001", "frame 2 checksum mismatch", false),
           "%s: a frame repeated", mode);
    pgbr_buf_reset(&copy);
    pgbr_buf_append(&copy, file.data, offs[1], &err);
    pgbr_buf_append(&copy, file.data + offs[2], offs[3] - offs[2], &err);
    pgbr_buf_append(&copy, file.data + offs[1], offs[2] - offs[1], &err);
    pgbr_buf_append(&copy, file.data + offs[3], file.len - offs[3], &err);
    tap_ok(expect_fail(&copy, copy.len, &rows, "XX001", "frame 1 checksum mismatch", false),
           "%s: two frames swapped", mode);
    pgbr_buf_free(&copy);
    pgbr_buf_free(&file);
    pgbr_buf_free(&rows);
}

/* Forged files with valid CRCs reach the checks behind the CRC. */
static void test_forged(void)
{
    pgbr_buf rows = PGBR_BUF_INIT, file = PGBR_BUF_INIT, f = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    size_t offs[64], nf;
    datafile_totals t;
    struct rusage ru;
    long rss_before;
    got g;

#define FORGE(expr) \
    do { pgbr_buf_reset(&f); pgbr_buf_append(&f, file.data, file.len, &err); expr; } while (0)

    /* frames by rows (compression 1); test_forged_columns does compression 2 */
    o.compression = DATAFILE_COMPRESSION_ZSTD;
    o.frame_target = 2048;
    gen_rows(&rows, 150);
    write_file(&rows, 1, &o, &file, &t);
    nf = frame_offsets(&file, offs, 64);

    FORGE(f.data[0] = 'X');
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "not a pgbr data file (bad magic)", false),
           "bad magic");
    FORGE((f.data[9] = 2, fix_header_crc(&f)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "unsupported data file format version 2",
                       false), "unknown format version");
    FORGE((f.data[10] = 9, fix_header_crc(&f)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "unknown compression 9", false),
           "unknown compression");
    FORGE((f.data[11] = 7, fix_header_crc(&f)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "unknown encryption 7", false),
           "unknown encryption");
    FORGE((f.data[11] = 1, fix_header_crc(&f)));
    tap_ok(expect_fail(&f, f.len, &rows, "0A000", "is encrypted", false),
           "an encrypted file: 0A000, not a corruption");
    FORGE((f.data[15] = 1, fix_header_crc(&f)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "unknown header flags", false),
           "unknown header flags");
    FORGE((f.data[10] = 0, fix_header_crc(&f)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "is impossible for raw length", false),
           "zstd frames in a file that says uncompressed");

    FORGE(put_u32(f.data + offs[0] + 8, 0xFFFFFFFFu));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 raw length 4294967295 is out of range",
                       false), "a giant raw length");
    FORGE(put_u32(f.data + offs[0] + 8, 0));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "raw length 0 is out of range", false),
           "a zero raw length");
    FORGE(put_u32(f.data + offs[0] + 12, 0xFFFFFFFFu));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "stored length 4294967295 is impossible",
                       false), "a giant stored length");
    FORGE(put_u32(f.data + offs[0] + 8, get_u32(f.data + offs[0] + 12) * 32768u + 1));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "is impossible for raw length", false),
           "a raw length beyond zstd's 32768:1 maximum ratio");
    FORGE(put_u32(f.data + offs[0] + 4, 4000000));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "claims 4000000 rows", false),
           "more rows than bytes");
    FORGE(f.data[offs[0]] = 'Z');
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "unknown type 0x5a", false),
           "an unknown frame type");
    FORGE(f.data[offs[0] + 2] = 1);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "nonzero reserved bytes", false),
           "reserved bytes set");
    FORGE(put_u32(f.data + offs[nf - 1] + 8, 25));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "end frame has wrong lengths", false),
           "an end frame with the wrong length");

    /* a 1 GiB frame announced, 4 KiB present: nothing big is allocated */
    getrusage(RUSAGE_SELF, &ru);
    rss_before = ru.ru_maxrss;
    FORGE((put_u32(f.data + offs[0] + 8, DATAFILE_MAX_FRAME_RAW),
           put_u32(f.data + offs[0] + 12, (uint32_t)ZSTD_compressBound(DATAFILE_MAX_FRAME_RAW))));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "ends inside frame 0", false),
           "a legal 1 GiB frame header with the payload missing: truncated");
    getrusage(RUSAGE_SELF, &ru);
    tap_ok(ru.ru_maxrss - rss_before < 16 * 1024, "... and memory grew by %ld KiB only",
           ru.ru_maxrss - rss_before);

    /* valid CRCs over lying contents */
    FORGE((put_u32(f.data + offs[0] + 8, get_u32(f.data + offs[0] + 8) + 1),
           fix_frame_crc(&f, offs[0], 0)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "does not hold a zstd frame of", false),
           "a raw length that disagrees with zstd's content size");
    FORGE((memset(f.data + offs[1] + 20 + 40, 0x55, 8), fix_frame_crc(&f, offs[1], 1)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 1: zstd: ", false),
           "a damaged zstd payload behind a valid CRC");
    FORGE((put_u32(f.data + offs[1] + 4, get_u32(f.data + offs[1] + 4) - 1),
           fix_frame_crc(&f, offs[1], 1)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "end frame records 150 rows but 149 were read",
                       false), "a frame's row count off by one: the end frame catches it");
    FORGE((f.data[offs[nf - 1] + 20 + 7] ^= 1, fix_frame_crc(&f, offs[nf - 1], nf - 1)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "end frame records", false),
           "a wrong frame count in the end frame");
    FORGE((f.data[offs[nf - 1] + 20 + 23] ^= 1, fix_frame_crc(&f, offs[nf - 1], nf - 1)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "bytes but", false),
           "a wrong byte count in the end frame");

    /* the message names the file, the detail the offset */
    FORGE(f.data[offs[1] + 30] ^= 4);
    got_init(&g);
    read_file(f.data, f.len, SIZE_MAX, &g, NULL, &err);
    tap_is_str(err.message, "backup file \"data/db/16384/0.pgbr\" is corrupted: frame 1 "
               "checksum mismatch", "the message names the file and the frame");
    tap_ok(err.detail != NULL && strstr(err.detail, "At byte offset ") != NULL,
           "the detail gives the offset (%s)", err.detail);
    pgbr_error_clear(&err);
    pgbr_buf_free(&g.data);

    /* a failing callback: its error comes back unchanged, the reader stops */
    got_init(&g);
    g.fail_at = 2;
    tap_ok(!read_file(file.data, file.len, 100, &g, NULL, &err) &&
           strcmp(err.sqlstate, "57014") == 0 && g.frames == 1,
           "a callback's error stops the reader and is passed on");
    pgbr_error_clear(&err);
    pgbr_buf_free(&g.data);
#undef FORGE
    pgbr_buf_free(&f);
    pgbr_buf_free(&file);
    pgbr_buf_free(&rows);
}

/* ---- column-major frames (ZSTD_COLUMNS) ---- */

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* Count a ZSTD_COLUMNS file's data frames by the layout byte of their payload. */
static void count_layouts(const pgbr_buf *file, size_t *by_rows, size_t *by_columns)
{
    size_t off = DATAFILE_HEADER_SIZE;

    *by_rows = *by_columns = 0;
    while (off + DATAFILE_FRAME_HEADER_SIZE < file->len && file->data[off] == DATAFILE_FRAME_DATA) {
        if (file->data[off + DATAFILE_FRAME_HEADER_SIZE] == DATAFILE_LAYOUT_ROWS)
            ++*by_rows;
        else if (file->data[off + DATAFILE_FRAME_HEADER_SIZE] == DATAFILE_LAYOUT_COLUMNS)
            ++*by_columns;
        off += DATAFILE_FRAME_HEADER_SIZE + get_u32(file->data + off + 12);
    }
}

/* Round trip rows with the default writer (and frame target, 0 for the
 * default) and check how many frames were stored by rows and by columns
 * (SIZE_MAX: any number). */
static void columns_round_trip(const char *what, const pgbr_buf *rows, int nrows,
                               size_t frame_target, size_t want_rows, size_t want_columns)
{
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    pgbr_buf file = PGBR_BUF_INIT;
    size_t by_rows, by_columns;

    o.frame_target = frame_target;
    round_trip(what, rows, nrows, 1, &o, SIZE_MAX);
    write_file(rows, 1, &o, &file, NULL);
    count_layouts(&file, &by_rows, &by_columns);
    tap_ok((want_rows == SIZE_MAX || by_rows == want_rows) &&
           (want_columns == SIZE_MAX || by_columns == want_columns),
           "%s: %zu frames by rows, %zu by columns", what, by_rows, by_columns);
    pgbr_buf_free(&file);
}

/* Append text n times. */
static void repeat(pgbr_buf *b, const char *text, int n)
{
    pgbr_error err = PGBR_ERROR_INIT;

    for (int i = 0; i < n; i++)
        pgbr_buf_append(b, text, strlen(text), &err);
}

/* Random COPY text: tables of 1..8 columns (the count changes once in about
 * change_every rows, never if 0, so some frames mix counts) with values
 * empty, \N, escaped or long. */
static int gen_random_table(pgbr_buf *out, int n, int change_every)
{
    static const char *const values[] = {
        "", "\\N", "0", "42", "-7.25", "t", "f", "abc", "a\\tb\\nc\\\\d", "2026-11-23 12:00:00+00",
        "{\"k\": 1, \"tag\": \"c4ca4238a0b923820dcc509a6f75849b\"}", "\\\\N", " ",
    };
    pgbr_error err = PGBR_ERROR_INIT;
    int cols = 3;
    char big[300];

    memset(big, 'x', sizeof big);
    for (int i = 0; i < n; i++) {
        if (change_every > 0 && rng() % (uint64_t)change_every == 0)
            cols = 1 + (int)(rng() % 8);
        for (int c = 0; c < cols; c++) {
            uint64_t pick = rng() % 64;

            if (pick == 0)
                pgbr_buf_append(out, big, 1 + rng() % sizeof big, &err);
            else if (pick < 32)
                pgbr_buf_append(out, values[pick % 13], strlen(values[pick % 13]), &err);
            else {
                char num[24];
                int len = snprintf(num, sizeof num, "%d", (int)(rng() % 100000));

                pgbr_buf_append(out, num, (size_t)len, &err);
            }
            pgbr_buf_append(out, c + 1 < cols ? "\t" : "\n", 1, &err);
        }
    }
    return n;
}

static void test_columns(void)
{
    pgbr_buf rows = PGBR_BUF_INIT, file = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    size_t by_rows, by_columns, stored_cols, stored_zstd;
    datafile_totals t;
    datafile_writer *w;
    char *wide;
    got g;

    /* the default, and what NULL options mean */
    pgbr_buf_append(&rows, "1\tone\n2\ttwo\n", 12, &err);
    write_file(&rows, 1, NULL, &file, &t);
    tap_ok(file.data[10] == DATAFILE_COMPRESSION_ZSTD_COLUMNS &&
           o.compression == DATAFILE_COMPRESSION_ZSTD_COLUMNS,
           "the default compression is column-major zstd (2)");
    /* the payload is the documented layout: 1, 2 columns, 2 lines, column
     * lengths 4 and 8, then one zstd frame of "1\n2\none\ntwo\n" */
    {
        static const unsigned char head[] = { 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 8 };
        const unsigned char *p = file.data + DATAFILE_HEADER_SIZE + DATAFILE_FRAME_HEADER_SIZE;
        uint32_t stored = get_u32(file.data + DATAFILE_HEADER_SIZE + 12);
        char out[12];
        size_t n = stored > sizeof head ?
                   ZSTD_decompress(out, sizeof out, p + sizeof head, stored - sizeof head) : 0;

        tap_ok(stored > sizeof head && memcmp(p, head, sizeof head) == 0 && n == 12 &&
               memcmp(out, "1\n2\none\ntwo\n", 12) == 0,
               "the payload of \"1\\tone\\n2\\ttwo\\n\" is the layout of docs/format.md");
    }
    pgbr_buf_free(&file);

    pgbr_buf_reset(&rows);
    repeat(&rows, "\t\t\n", 1000);
    columns_round_trip("3 columns, all empty strings", &rows, 1000, 0, 0, 1);
    pgbr_buf_reset(&rows);
    repeat(&rows, "\\N\t\t\\N\n1\t\\N\t\n\t\\N\tx\n", 500);
    columns_round_trip("\\N and empty strings mixed", &rows, 1500, 0, 0, 1);
    pgbr_buf_reset(&rows);
    repeat(&rows, "\n", 3000);
    columns_round_trip("a table of zero columns (an empty line per row)", &rows, 3000, 0, 1, 0);
    pgbr_buf_reset(&rows);
    repeat(&rows, "one column\n", 3000);
    columns_round_trip("a table of one column", &rows, 3000, 0, 1, 0);
    pgbr_buf_reset(&rows);
    repeat(&rows, "a\tb\n", 1);
    columns_round_trip("one row of 2 columns", &rows, 1, 0, 0, 1);
    pgbr_buf_reset(&rows);
    repeat(&rows, "a\\tb\tc\\nd\t\\\\\t\\N\n", 2000);
    columns_round_trip("escaped TAB, LF, backslash inside values", &rows, 2000, 0, 0, 1);
    pgbr_buf_reset(&rows);
    repeat(&rows, "7\tsame\t2026-11-23\n", 300000);
    columns_round_trip("5 MiB of one repeated row (zstd near its ratio limit)", &rows, 300000, 0,
                       0, SIZE_MAX);

    /* the widest row, and one field more */
    wide = malloc(2 * (DATAFILE_MAX_COLUMNS + 1) + 1);
    for (int extra = 0; extra < 2; extra++) {
        int n = DATAFILE_MAX_COLUMNS + extra;

        for (int c = 0; c < n; c++) {
            wide[2 * c] = (char)('a' + c % 26);
            wide[2 * c + 1] = c + 1 < n ? '\t' : '\n';
        }
        pgbr_buf_reset(&rows);
        for (int i = 0; i < 50; i++)
            pgbr_buf_append(&rows, wide, 2 * (size_t)n, &err);
        columns_round_trip(extra ? "1665 fields per row: stored by rows" :
                           "1664 columns, the most COPY makes: stored by columns", &rows, 50, 0,
                           extra ? 1 : 0, extra ? 0 : 1);
    }
    free(wide);

    /* frames of both layouts in one file, with 4 KiB frames */
    pgbr_buf_reset(&rows);
    repeat(&rows, "1\ta\tb\n", 2000);
    repeat(&rows, "2\tc\n", 2000);
    repeat(&rows, "3\td\te\tf\n", 2000);
    columns_round_trip("column counts changing mid-file, 4 KiB frames", &rows, 6000, 4096,
                       SIZE_MAX, SIZE_MAX);
    write_file(&rows, 1, &(datafile_writer_options){ DATAFILE_COMPRESSION_ZSTD_COLUMNS, 0, 4096 },
               &file, NULL);
    count_layouts(&file, &by_rows, &by_columns);
    tap_ok(by_rows == 2 && by_columns > 4,
           "... the 2 frames straddling a change are by rows, the others (%zu) by columns",
           by_columns);
    pgbr_buf_free(&file);

    /* a large single row of several columns between small rows */
    pgbr_buf_reset(&rows);
    repeat(&rows, "1\tsmall\tx\n", 100);
    for (int i = 0; i < 3 << 20; i++)
        pgbr_buf_append(&rows, &"0123456789abcdef"[rng() & 15], 1, &err);
    repeat(&rows, "\tmiddle\t", 1);
    for (int i = 0; i < 2 << 20; i++)
        pgbr_buf_append(&rows, &"0123456789abcdef"[rng() & 15], 1, &err);
    repeat(&rows, "\n", 1);
    repeat(&rows, "2\tsmall\ty\n", 100);
    columns_round_trip("a 5 MiB row of 3 columns among small ones", &rows, 201, 0, 0, 3);

    /* bytes that are not rows: a frame of 0 rows, a last line without LF
     * (16-byte frames: header and a row, the line without LF, 2 rows) */
    pgbr_buf_reset(&rows);
    repeat(&rows, "1\ta\n2\tb\n3\tc", 1);
    columns_round_trip("a last line without its LF", &rows, 2, 0, 1, 0);
    pgbr_buf_reset(&rows);
    w = datafile_writer_new(pgbr_buf_sink, &file, &(datafile_writer_options){
                                DATAFILE_COMPRESSION_ZSTD_COLUMNS, 0, 16 }, &err);
    datafile_writer_add_rows(w, "PGCOPY\n\377\r\n", 10, 0, &err);   /* binary COPY-like */
    datafile_writer_add_rows(w, "x\ty\n", 4, 1, &err);
    datafile_writer_add_rows(w, "no LF\tat all", 12, 0, &err);
    datafile_writer_add_rows(w, "\t\t\n\t\t\n", 6, 2, &err);
    datafile_writer_finish(w, &t, &err);
    datafile_writer_free(w);
    count_layouts(&file, &by_rows, &by_columns);
    got_init(&g);
    tap_ok(read_file(file.data, file.len, 3, &g, NULL, &err) && t.frames == 3 &&
           by_rows == 2 && by_columns == 1 && g.data.len == 32 &&
           memcmp(g.data.data, "PGCOPY\n\377\r\nx\ty\nno LF\tat all\t\t\n\t\t\n", 32) == 0,
           "chunks of 0 rows and without a final LF are stored by rows, read back exactly");
    pgbr_error_clear(&err);
    pgbr_buf_free(&g.data);
    pgbr_buf_free(&file);

    /* random tables, random frame sizes */
    for (int round = 0; round < 6; round++) {
        static const size_t targets[] = { 64, 333, 4096, 65536, 0, 0 };
        static const int changes[] = { 500, 500, 500, 5000, 20000, 0 };
        char what[96];
        int n;

        pgbr_buf_reset(&rows);
        n = gen_random_table(&rows, 40000, changes[round]);
        snprintf(what, sizeof what, "random table %d, frame target %zu", round, targets[round]);
        columns_round_trip(what, &rows, n, targets[round], SIZE_MAX, SIZE_MAX);
    }

    /* what it is for: the same rows take less room by columns */
    pgbr_buf_reset(&rows);
    gen_rows(&rows, 50000);
    write_file(&rows, 100, NULL, &file, &t);
    stored_cols = t.stored_bytes;
    pgbr_buf_free(&file);
    o.compression = DATAFILE_COMPRESSION_ZSTD;
    write_file(&rows, 100, &o, &file, &t);
    stored_zstd = t.stored_bytes;
    tap_ok(stored_cols < stored_zstd, "%zu bytes of rows: %zu by columns, %zu by rows", rows.len,
           stored_cols, stored_zstd);
    pgbr_buf_free(&file);
    pgbr_buf_free(&rows);
}

/*
 * A file of 163 bytes written by pgbr before ZSTD_COLUMNS (compression 1,
 * 16-byte frames): rows "1\tone\t\\N\n2\ttwo\t\n" and "3\tthree\tx\\ty\n"
 * in two frames. It must read forever.
 */
static const unsigned char old_zstd_file[] = {
    0x50, 0x47, 0x42, 0x52, 0x44, 0x41, 0x54, 0x00, 0x00, 0x01, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x74, 0xb3, 0x7f, 0x35, 0x44, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x19,
    0x28, 0xc7, 0x2a, 0x61, 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x10, 0x81, 0x00,
    0x00, 0x31, 0x09, 0x6f, 0x6e, 0x65, 0x09, 0x5c, 0x4e, 0x0a, 0x32, 0x09,
    0x74, 0x77, 0x6f, 0x09, 0x0a, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x16, 0xf7, 0xeb, 0x24,
    0x84, 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x0d, 0x69, 0x00, 0x00, 0x33, 0x09,
    0x74, 0x68, 0x72, 0x65, 0x65, 0x09, 0x78, 0x5c, 0x74, 0x79, 0x0a, 0x45,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00,
    0x00, 0x00, 0x18, 0x09, 0x41, 0xfb, 0xeb, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1d,
};

static void test_old_file(void)
{
    static const char want[] = "1\tone\t\\N\n2\ttwo\t\n3\tthree\tx\\ty\n";
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_totals t = { 0 };
    bool ok[2];
    got g[2];

    for (int i = 0; i < 2; i++) {
        got_init(&g[i]);
        ok[i] = read_file(old_zstd_file, sizeof old_zstd_file, i == 0 ? 1 : SIZE_MAX, &g[i], &t,
                          &err);
        if (!ok[i])
            tap_diag("%s", err.message);
        pgbr_error_clear(&err);
    }
    tap_ok(ok[0] && ok[1] && g[0].data.len == sizeof want - 1 &&
           memcmp(g[0].data.data, want, sizeof want - 1) == 0 && g[1].data.len == sizeof want - 1 &&
           memcmp(g[1].data.data, want, sizeof want - 1) == 0 && g[0].whole_rows &&
           t.frames == 2 && t.rows == 3 && t.raw_bytes == 29 && t.stored_bytes == 163,
           "a file of the previous version (compression 1) reads back its 3 rows");
    pgbr_buf_free(&g[0].data);
    pgbr_buf_free(&g[1].data);
}

/* A whole ZSTD_COLUMNS file of one data frame of raw_len bytes and rows rows
 * with this payload, every CRC and total right. */
static void forge_file(pgbr_buf *f, const void *payload, size_t len, uint32_t raw_len,
                       uint32_t rows)
{
    unsigned char h[DATAFILE_HEADER_SIZE] = { 0 }, fh[DATAFILE_FRAME_HEADER_SIZE] = { 0 };
    unsigned char end[DATAFILE_END_PAYLOAD_SIZE];
    pgbr_error err = PGBR_ERROR_INIT;
    size_t off;

    pgbr_buf_reset(f);
    memcpy(h, DATAFILE_MAGIC, 8);
    h[9] = DATAFILE_FORMAT_VERSION;
    h[10] = DATAFILE_COMPRESSION_ZSTD_COLUMNS;
    pgbr_buf_append(f, h, sizeof h, &err);
    fix_header_crc(f);
    fh[0] = DATAFILE_FRAME_DATA;
    put_u32(fh + 4, rows);
    put_u32(fh + 8, raw_len);
    put_u32(fh + 12, (uint32_t)len);
    pgbr_buf_append(f, fh, sizeof fh, &err);
    pgbr_buf_append(f, payload, len, &err);
    fix_frame_crc(f, DATAFILE_HEADER_SIZE, 0);
    off = f->len;
    memset(fh, 0, sizeof fh);
    fh[0] = DATAFILE_FRAME_END;
    put_u32(fh + 8, DATAFILE_END_PAYLOAD_SIZE);
    put_u32(fh + 12, DATAFILE_END_PAYLOAD_SIZE);
    put_u64(end, 1);
    put_u64(end + 8, rows);
    put_u64(end + 16, raw_len);
    pgbr_buf_append(f, fh, sizeof fh, &err);
    pgbr_buf_append(f, end, sizeof end, &err);
    fix_frame_crc(f, off, 1);
}

/* A column-major payload: layout 1, cols, lines, the lengths, then the zstd
 * frame of the column-major bytes given. */
static size_t columns_payload(unsigned char *out, size_t cap, uint32_t cols, uint32_t lines,
                              const uint32_t *lens, const char *columns, size_t columns_len)
{
    size_t head = DATAFILE_COLUMNS_HEAD_SIZE(cols);

    out[0] = DATAFILE_LAYOUT_COLUMNS;
    put_u32(out + 1, cols);
    put_u32(out + 5, lines);
    for (uint32_t c = 0; c < cols; c++)
        put_u32(out + 9 + 4 * c, lens[c]);
    return head + ZSTD_compress(out + head, cap - head, columns, columns_len, 1);
}

static void test_forged_columns(void)
{
    pgbr_buf rows = PGBR_BUF_INIT, file = PGBR_BUF_INIT, f = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    unsigned char pay[256];
    size_t offs[64], nf, p0, len;
    uint32_t lines, raw;
    datafile_totals t;
    got g;

#define FORGE(expr) \
    do { pgbr_buf_reset(&f); pgbr_buf_append(&f, file.data, file.len, &err); expr; \
         fix_frame_crc(&f, offs[0], 0); } while (0)
#define LEN(c) (p0 + 9 + 4 * (c))    /* where column c's length is */

    o.frame_target = 2048;
    gen_rows(&rows, 150);
    write_file(&rows, 1, &o, &file, &t);
    nf = frame_offsets(&file, offs, 64);
    p0 = offs[0] + DATAFILE_FRAME_HEADER_SIZE;
    lines = get_u32(file.data + p0 + 5);
    raw = get_u32(file.data + offs[0] + 8);
    tap_ok(nf > 3 && file.data[p0] == DATAFILE_LAYOUT_COLUMNS && get_u32(file.data + p0 + 1) == 4 &&
           lines == get_u32(file.data + offs[0] + 4),
           "columnar test file: frame 0 by columns, 4 columns of %u lines", (unsigned)lines);

    FORGE(f.data[p0] = 7);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 has unknown layout 7", false),
           "an unknown frame layout");
    FORGE(put_u32(f.data + p0 + 1, 0));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 has 0 columns (1 to 1664 allowed)",
                       false), "0 columns");
    FORGE(put_u32(f.data + p0 + 1, DATAFILE_MAX_COLUMNS + 1));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 has 1665 columns", false),
           "more columns than COPY can make");
    FORGE(put_u32(f.data + p0 + 1, 0xFFFFFFFFu));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 has 4294967295 columns", false),
           "a giant column count");
    FORGE(put_u32(f.data + p0 + 1, 3));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column lengths add up to", false),
           "one column fewer: the lengths no longer add up");
    FORGE(put_u32(f.data + p0 + 1, 5));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column lengths add up to", false),
           "one column more: the zstd magic read as a length");
    FORGE(put_u32(f.data + p0 + 5, 0));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 claims 0 lines of 4 columns", false),
           "0 lines");
    FORGE(put_u32(f.data + p0 + 5, raw));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "lines of 4 columns in", false),
           "more values than bytes");
    FORGE(put_u32(f.data + p0 + 5, lines + 1));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column 1 ends before line", false),
           "one line more than the columns hold");
    FORGE(put_u32(f.data + p0 + 5, lines - 1));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 rebuilds to", false),
           "one line fewer: the rows rebuild to the wrong size");
    FORGE(put_u32(f.data + LEN(2), lines - 1));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column 3 has", false),
           "a column shorter than its separators");
    FORGE(put_u32(f.data + LEN(0), get_u32(f.data + LEN(0)) + 100000));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "column lengths add up to", false),
           "a column length pointing past the end");
    FORGE(put_u32(f.data + LEN(3), 0xFFFFFFFFu));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "column lengths add up to", false),
           "a giant column length");
    FORGE((put_u32(f.data + LEN(0), get_u32(f.data + LEN(0)) + 1),
           put_u32(f.data + LEN(1), get_u32(f.data + LEN(1)) - 1)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "rebuilds to", false),
           "a byte moved from one column to another: the rebuilt size is wrong");
    FORGE((put_u32(f.data + LEN(1), get_u32(f.data + LEN(1)) + 40),
           put_u32(f.data + LEN(2), get_u32(f.data + LEN(2)) - 40)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column 3 ends before line", false),
           "40 bytes moved between columns: a column runs out of values");
    FORGE((put_u32(f.data + offs[0] + 8, raw + 1),
           put_u32(f.data + LEN(3), get_u32(f.data + LEN(3)) + 1)));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 does not hold a zstd frame of", false),
           "a raw length (and columns) that disagree with zstd's content size");
    FORGE(memset(f.data + p0 + DATAFILE_COLUMNS_HEAD_SIZE(4) + 12, 0x55, 8));
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0: zstd: ", false),
           "a damaged zstd frame after the column header");

    /* hand-made single-frame files: truncated payloads */
    forge_file(&f, "\001", 1, 12, 2);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 ends inside its column header", false),
           "a payload of the layout byte only");
    memcpy(pay, "\001\0\0\0\002\0\0\0\002\0\0\0\004", 13);
    forge_file(&f, pay, 13, 12, 2);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 ends inside its column header", false),
           "a payload ending inside the column lengths");
    memcpy(pay, "\001\0\0\0\002\0\0\0\002\0\0\0\004\0\0\0\010", 17);
    forge_file(&f, pay, 17, 12, 2);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 ends inside its column header", false),
           "a column header without its zstd frame");
    forge_file(&f, "\000", 1, 12, 2);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 does not hold a zstd frame", false),
           "a frame by rows without its zstd frame");

    /* hand-made columns whose values do not match the counts */
    len = columns_payload(pay, sizeof pay, 2, 2, (const uint32_t[]){ 4, 2 }, "a\nb\nc\n", 6);
    forge_file(&f, pay, len, 6, 2);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column 2 ends before line 2 of 2",
                       false), "a column with fewer values than lines");
    len = columns_payload(pay, sizeof pay, 2, 1, (const uint32_t[]){ 4, 2 }, "a\nb\nc\n", 6);
    forge_file(&f, pay, len, 6, 1);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 rebuilds to 4 bytes, not 6", false),
           "a column with more values than lines");
    len = columns_payload(pay, sizeof pay, 2, 1, (const uint32_t[]){ 3, 3 }, "ab\ncde", 6);
    forge_file(&f, pay, len, 6, 1);
    tap_ok(expect_fail(&f, f.len, &rows, "XX001", "frame 0 column 2 ends before line 1 of 1",
                       false), "a last column without its final LF");

    /* what the writer never makes but the format allows: one column */
    len = columns_payload(pay, sizeof pay, 1, 3, (const uint32_t[]){ 7 }, "a\n\nbcd\n", 7);
    forge_file(&f, pay, len, 7, 3);
    got_init(&g);
    tap_ok(read_file(f.data, f.len, 1, &g, NULL, &err) && g.data.len == 7 &&
           memcmp(g.data.data, "a\n\nbcd\n", 7) == 0, "a one-column columnar frame reads");
    pgbr_error_clear(&err);
    pgbr_buf_free(&g.data);
    len = columns_payload(pay, sizeof pay, 3, 2, (const uint32_t[]){ 2, 4, 3 }, "\n\nab\n\n\nc\n",
                          9);
    forge_file(&f, pay, len, 9, 2);
    got_init(&g);
    tap_ok(read_file(f.data, f.len, 5, &g, NULL, &err) && g.data.len == 9 &&
           memcmp(g.data.data, "\tab\t\n\t\tc\n", 9) == 0,
           "a hand-made 3-column frame rebuilds its rows");
    pgbr_error_clear(&err);
    pgbr_buf_free(&g.data);
#undef LEN
#undef FORGE
    pgbr_buf_free(&f);
    pgbr_buf_free(&file);
    pgbr_buf_free(&rows);
}

static bool failing_sink(void *arg, const void *data, size_t len, pgbr_error *err)
{
    (void)data;
    (void)len;
    if (--*(int *)arg > 0)
        return true;
    return pgbr_error_set(err, "58030", "could not write to file \"x\": No space left on device");
}

static void test_writer_errors(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    pgbr_buf file = PGBR_BUF_INIT;
    datafile_writer *w;
    int calls = 3;

    o.zstd_level = 42;
    tap_ok(datafile_writer_new(pgbr_buf_sink, &file, &o, &err) == NULL &&
           strcmp(err.sqlstate, "22023") == 0, "zstd level 42 is refused");
    pgbr_error_clear(&err);
    o.zstd_level = 0;
    o.frame_target = (size_t)DATAFILE_MAX_FRAME_RAW + 1;
    tap_ok(datafile_writer_new(pgbr_buf_sink, &file, &o, &err) == NULL, "a 1 GiB+1 frame target");
    pgbr_error_clear(&err);
    o.frame_target = 0;
    o.compression = (datafile_compression)5;
    tap_ok(datafile_writer_new(pgbr_buf_sink, &file, &o, &err) == NULL,
           "an unknown compression");
    pgbr_error_clear(&err);

    w = datafile_writer_new(pgbr_buf_sink, &file, NULL, &err);
    tap_ok(!datafile_writer_add_rows(w, "x", (size_t)DATAFILE_MAX_FRAME_RAW + 1, 1, &err) &&
           strcmp(err.sqlstate, "54000") == 0, "a chunk over 1 GiB: 54000 (not read)");
    pgbr_error_clear(&err);
    datafile_writer_free(w);
    w = datafile_writer_new(pgbr_buf_sink, &file, NULL, &err);
    tap_ok(!datafile_writer_add_rows(w, "ab", 2, 3, &err) && strcmp(err.sqlstate, "XX000") == 0,
           "3 rows in 2 bytes is a caller bug");
    pgbr_error_clear(&err);
    datafile_writer_free(w);

    w = datafile_writer_new(failing_sink, &calls, NULL, &err);
    tap_ok(datafile_writer_add_rows(w, "a\n", 2, 1, &err), "first rows buffered");
    tap_ok(!datafile_writer_finish(w, NULL, &err) && strcmp(err.sqlstate, "58030") == 0,
           "the sink's error comes back from finish");
    pgbr_error_clear(&err);
    tap_ok(!datafile_writer_add_rows(w, "b\n", 2, 1, &err) &&
           strstr(err.message, "after a failure") != NULL, "a failed writer refuses more rows");
    pgbr_error_clear(&err);
    datafile_writer_free(w);
    datafile_writer_free(NULL);
    pgbr_buf_free(&file);
}

/* Restore direction through a filter chain: storage -> sha256 -> reader. */
static void test_chain(void)
{
    pgbr_buf rows = PGBR_BUF_INIT, stored = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;
    filter_chain *wc, *rc;
    datafile_writer *w;
    datafile_reader *r;
    datafile_totals t;
    char digest[65];
    got g;

    gen_rows(&rows, 20000);
    wc = filter_chain_new(pgbr_buf_sink, &stored, &err);
    filter_chain_add(wc, filter_sha256_new(&err), NULL, &err);
    filter_chain_add(wc, filter_count_new(&err), NULL, &err);
    w = datafile_writer_new(filter_chain_sink, wc, NULL, &err);
    datafile_writer_add_rows(w, rows.data, rows.len, 20000, &err);
    datafile_writer_finish(w, &t, &err);
    filter_chain_finish(wc, &err);
    filter_sha256_digest_hex(stored.data, stored.len, digest, &err);
    tap_ok(strcmp(filter_chain_result(wc, "sha256"), digest) == 0 &&
           filter_count_bytes(filter_chain_get(wc, "count")) == t.stored_bytes,
           "writer -> chain: sha256 and size of the file as stored");

    got_init(&g);
    r = datafile_reader_new("f", on_frame, &g, &err);
    rc = filter_chain_new(datafile_reader_sink, r, &err);
    filter_chain_add(rc, filter_sha256_new(&err), NULL, &err);
    filter_sha256_expect(filter_chain_get(rc, "sha256"), digest, "f", &err);
    for (size_t off = 0; off < stored.len; off += 3000)
        filter_chain_push(rc, stored.data + off, stored.len - off < 3000 ? stored.len - off : 3000,
                          &err);
    tap_ok(filter_chain_finish(rc, &err) && datafile_reader_finish(r, NULL, &err) &&
           g.data.len == rows.len && memcmp(g.data.data, rows.data, rows.len) == 0 &&
           !pgbr_error_is_set(&err), "storage -> sha256 -> reader gives the rows back");
    filter_chain_free(rc);
    filter_chain_free(wc);
    datafile_reader_free(r);
    datafile_writer_free(w);
    pgbr_buf_free(&g.data);
    pgbr_buf_free(&rows);
    pgbr_buf_free(&stored);
}

int main(void)
{
    test_forged();              /* first: it measures peak RSS */
    test_round_trips();
    test_forged_columns();
    test_columns();
    test_old_file();
    test_corruption(DATAFILE_COMPRESSION_ZSTD_COLUMNS);
    test_corruption(DATAFILE_COMPRESSION_ZSTD);
    test_corruption(DATAFILE_COMPRESSION_NONE);
    test_writer_errors();
    test_chain();
    return tap_done();
}
