/*
 * test_filter.c - unit tests for the byte pipeline's filters and chains
 * (src/io/filter*.c, src/io/crc32c.c, src/io/buf.c): each filter alone and
 * chained, zstd round trips on pgbench-like and realistic rows at chunk sizes
 * from 1 byte to 4 MiB, SHA-256 and CRC-32C known vectors, corrupt zstd input
 * (XX001), chain rules and error propagation, and constant memory: 512 MiB
 * through a chain with peak RSS checked (PGBR_TEST_BIG_MB changes the size,
 * e.g. for valgrind).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <zstd.h>

#include "pgbr/buf.h"
#include "pgbr/filter.h"
#include "tap.h"
#include "testutil.h"

/* A second copy of crc32c.c under another name, to reach its static
 * software and hardware paths and compare them. */
#define crc32c_update crc32c_update_copy
#include "../../src/io/crc32c.c"
#undef crc32c_update

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
    return test_rng(&rng_state);
}

/* pgbench_accounts rows as COPY text: aid, bid, abalance, 84 blanks. */
static void gen_pgbench(pgbr_buf *out, size_t bytes, int *next_aid)
{
    char row[160];
    pgbr_error err = PGBR_ERROR_INIT;

    while (out->len < bytes) {
        int n = snprintf(row, sizeof row, "%d\t%d\t0\t%84s\n", *next_aid,
                         (*next_aid - 1) / 100000 + 1, "");

        (*next_aid)++;
        pgbr_buf_append(out, row, (size_t)n, &err);
    }
}

/* Rows like a real table: id, md5 hex, a timestamp, an amount, a word. */
static void gen_realistic(pgbr_buf *out, size_t bytes)
{
    static const char *words[] = { "pending", "shipped", "delivered", "returned",
                                   "cancelled", "on hold", "back\\tordered", "paid" };
    pgbr_error err = PGBR_ERROR_INIT;
    char row[256];
    long id = 1;

    while (out->len < bytes) {
        uint64_t a = rng(), b = rng(), c = rng();
        int n = snprintf(row, sizeof row,
                         "%ld\t%016llx%016llx\t2026-%02d-%02d %02d:%02d:%02d.%06d+00\t%d.%02d\t%s\n",
                         id++, (unsigned long long)a, (unsigned long long)b,
                         (int)(c % 12) + 1, (int)(c >> 8) % 28 + 1, (int)(c >> 16) % 24,
                         (int)(c >> 24) % 60, (int)(c >> 32) % 60, (int)(c >> 40) % 1000000,
                         (int)(c >> 20) % 100000, (int)(c >> 50) % 100,
                         words[(c >> 60) % 8]);

        pgbr_buf_append(out, row, (size_t)n, &err);
    }
}

/* A sink that keeps the bytes and the largest piece it was handed. */
typedef struct collect {
    pgbr_buf buf;
    size_t max_piece;
    size_t pieces;
    uint64_t total;
    bool keep;
    int fail_after;         /* > 0: fail on that call with 57014 */
} collect;

static bool collect_sink(void *arg, const void *data, size_t len, pgbr_error *err)
{
    collect *c = arg;

    c->pieces++;
    c->total += len;
    if (len > c->max_piece)
        c->max_piece = len;
    if (c->fail_after > 0 && (int)c->pieces >= c->fail_after)
        return pgbr_error_set(err, "57014", "sink says stop");
    return !c->keep || pgbr_buf_append(&c->buf, data, len, err);
}

static bool push_chunked(filter_chain *chain, const unsigned char *data, size_t len,
                         size_t chunk, pgbr_error *err)
{
    for (size_t off = 0; off < len; off += chunk)
        if (!filter_chain_push(chain, data + off, len - off < chunk ? len - off : chunk, err))
            return false;
    return true;
}

static filter_chain *chain_of(filter_sink_fn sink, void *arg, int level, bool decompress)
{
    pgbr_error err = PGBR_ERROR_INIT;
    filter_chain *chain = filter_chain_new(sink, arg, &err);

    filter_chain_add(chain, filter_count_new(&err), "raw", &err);
    filter_chain_add(chain, filter_sha256_new(&err), "raw_sha256", &err);
    filter_chain_add(chain, filter_zstd_compress_new(level, &err), NULL, &err);
    filter_chain_add(chain, filter_count_new(&err), "stored", &err);
    if (decompress) {
        filter_chain_add(chain, filter_zstd_decompress_new("t.pgbr", &err), NULL, &err);
        filter_chain_add(chain, filter_sha256_new(&err), "out_sha256", &err);
    }
    if (pgbr_error_is_set(&err)) {
        tap_diag("chain_of: %s", err.message);
        exit(1);
    }
    return chain;
}

/* compress -> decompress in one chain; output must equal input */
static void round_trip(const char *what, const pgbr_buf *in, size_t chunk, double min_ratio)
{
    collect out = { PGBR_BUF_INIT, 0, 0, 0, true, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    filter_chain *chain = chain_of(collect_sink, &out, 1, true);
    bool ok = push_chunked(chain, in->data, in->len, chunk, &err) &&
              filter_chain_finish(chain, &err);
    uint64_t raw = filter_count_bytes(filter_chain_get(chain, "raw"));
    uint64_t stored = filter_count_bytes(filter_chain_get(chain, "stored"));
    double ratio = stored > 0 ? (double)raw / (double)stored : 0;

    tap_ok(ok && out.buf.len == in->len && memcmp(out.buf.data, in->data, in->len) == 0 &&
           strcmp(filter_chain_result(chain, "raw_sha256"),
                  filter_chain_result(chain, "out_sha256")) == 0 &&
           raw == in->len && ratio >= min_ratio && out.max_piece <= ZSTD_DStreamOutSize(),
           "%s, %zu-byte chunks: %zu bytes back identical, ratio %.1f (>= %.1f)%s%s", what,
           chunk, in->len, ratio, min_ratio, ok ? "" : ": ", ok ? "" : err.message);
    pgbr_error_clear(&err);
    pgbr_buf_free(&out.buf);
    filter_chain_free(chain);
}

static void test_round_trips(void)
{
    pgbr_buf pgb = PGBR_BUF_INIT, real = PGBR_BUF_INIT, small_pgb = PGBR_BUF_INIT,
             small_real = PGBR_BUF_INIT;
    const size_t chunks[] = { 7, 4096, 65536, 1 << 20, 4 << 20 };
    int aid = 1;

    gen_pgbench(&pgb, 12 << 20, &aid);
    gen_realistic(&real, 12 << 20);
    aid = 1;
    gen_pgbench(&small_pgb, 96 << 10, &aid);
    gen_realistic(&small_real, 96 << 10);
    round_trip("pgbench rows", &small_pgb, 1, 20);
    round_trip("realistic rows", &small_real, 1, 1.5);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        round_trip("pgbench rows", &pgb, chunks[i], 50);
        round_trip("realistic rows", &real, chunks[i], 1.5);
    }
    pgbr_buf_free(&pgb);
    pgbr_buf_free(&real);
    pgbr_buf_free(&small_pgb);
    pgbr_buf_free(&small_real);
}

static const char *sha_of(const void *data, size_t len, size_t chunk)
{
    static char hex[65];
    pgbr_error err = PGBR_ERROR_INIT;
    filter *f = filter_sha256_new(&err);

    for (size_t off = 0; off < len; off += chunk)
        filter_process(f, (const char *)data + off, len - off < chunk ? len - off : chunk, NULL,
                       NULL, &err);
    tap_ok(filter_sha256_hex(f) == NULL, "no digest before finish");
    filter_finish(f, NULL, NULL, &err);
    snprintf(hex, sizeof hex, "%s", filter_sha256_hex(f));
    filter_free(f);
    return hex;
}

static void test_sha256_and_count(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    char hex[65], *million = malloc(1000000);
    collect out = { PGBR_BUF_INIT, 0, 0, 0, true, 0 };
    filter *f;

    tap_is_str(sha_of("", 0, 1), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "sha256 of the empty string");
    tap_is_str(sha_of("abc", 3, 1), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
               "sha256 of \"abc\" fed a byte at a time");
    tap_is_str(sha_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, 5),
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
               "sha256 of the 448-bit NIST vector");
    memset(million, 'a', 1000000);
    tap_is_str(sha_of(million, 1000000, 4099),
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
               "sha256 of a million 'a'");
    tap_ok(filter_sha256_digest_hex("abc", 3, hex, &err) &&
           strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
           "one-shot sha256 of \"abc\"");
    free(million);

    f = filter_sha256_new(&err);
    filter_sha256_expect(f, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                         "x.pgbr", &err);
    filter_process(f, "abc", 3, collect_sink, &out, &err);
    tap_ok(filter_finish(f, NULL, NULL, &err) && out.buf.len == 3 &&
           memcmp(out.buf.data, "abc", 3) == 0,
           "sha256 expectation met (case-insensitive); input passed through");
    filter_free(f);
    f = filter_sha256_new(&err);
    filter_sha256_expect(f, hex, "x.pgbr", &err);
    filter_process(f, "abd", 3, NULL, NULL, &err);
    tap_ok(!filter_finish(f, NULL, NULL, &err) && strcmp(err.sqlstate, "XX001") == 0 &&
           strcmp(err.message, "backup file \"x.pgbr\" is corrupted: checksum mismatch") == 0 &&
           err.detail != NULL, "sha256 expectation missed: XX001 checksum mismatch");
    pgbr_error_clear(&err);
    tap_ok(!filter_finish(f, NULL, NULL, &err) && strcmp(err.sqlstate, "XX000") == 0,
           "finishing twice is refused");
    pgbr_error_clear(&err);
    tap_ok(!filter_process(f, "x", 1, NULL, NULL, &err), "processing after finish is refused");
    pgbr_error_clear(&err);
    filter_free(f);

    f = filter_count_new(&err);
    pgbr_buf_reset(&out.buf);
    filter_process(f, "a\nbb\n", 5, collect_sink, &out, &err);
    filter_process(f, "\nccc", 4, collect_sink, &out, &err);
    tap_ok(filter_result(f) == NULL, "count: no result before finish");
    filter_finish(f, NULL, NULL, &err);
    tap_ok(filter_count_bytes(f) == 9 && filter_count_lines(f) == 3 &&
           strcmp(filter_result(f), "9") == 0 && out.buf.len == 9 &&
           memcmp(out.buf.data, "a\nbb\n\nccc", 9) == 0,
           "count: 9 bytes, 3 lines, result \"9\", input passed through");
    tap_ok(filter_sha256_hex(f) == NULL && filter_count_bytes(NULL) == 0,
           "typed getters refuse the wrong filter type");
    filter_free(f);
    pgbr_buf_free(&out.buf);
}

static void test_zstd_errors(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    collect out = { PGBR_BUF_INIT, 0, 0, 0, false, 0 };
    pgbr_buf in = PGBR_BUF_INIT, z = PGBR_BUF_INIT;
    filter *f;
    int undetected = 0, flips = 0, harmless = 0, aid = 1;

    tap_ok(filter_zstd_compress_new(20, &err) == NULL && strcmp(err.sqlstate, "22023") == 0,
           "zstd level 20 is refused with 22023");
    pgbr_error_clear(&err);
    tap_ok(filter_zstd_compress_new(-8, &err) == NULL, "zstd level -8 is refused");
    pgbr_error_clear(&err);

    /* a small compressed stream, then every byte flipped in turn */
    gen_pgbench(&in, 2000, &aid);
    gen_realistic(&in, 6000);
    f = filter_zstd_compress_new(19, &err);
    filter_process(f, in.data, in.len, pgbr_buf_sink, &z, &err);
    filter_finish(f, pgbr_buf_sink, &z, &err);
    filter_free(f);
    tap_ok(z.len > 0 && z.len < in.len, "level 19 compresses %zu bytes to %zu", in.len, z.len);
    /* A flip must be caught (XX001) or be harmless: some header bits (the
     * window size, the content-size flag) do not change the decoded bytes. */
    out.keep = true;
    for (size_t i = 0; i < z.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            filter *d = filter_zstd_decompress_new("f.pgbr", &err);
            bool ok;

            pgbr_buf_reset(&out.buf);
            z.data[i] ^= (unsigned char)(1 << bit);
            ok = filter_process(d, z.data, z.len, collect_sink, &out, &err) &&
                 filter_finish(d, NULL, NULL, &err);
            z.data[i] ^= (unsigned char)(1 << bit);
            flips++;
            if (ok && out.buf.len == in.len && memcmp(out.buf.data, in.data, in.len) == 0)
                harmless++;
            else if (ok || strcmp(err.sqlstate, "XX001") != 0 ||
                     strncmp(err.message, "backup file \"f.pgbr\" is corrupted: ", 35) != 0) {
                undetected++;
                tap_diag("flip of bit %d at byte %zu: %s", bit, i, ok ? "accepted" : err.message);
            }
            pgbr_error_clear(&err);
            filter_free(d);
        }
    }
    tap_ok(undetected == 0, "%d single-bit flips of a zstd stream: all XX001 or harmless (%d)",
           flips, harmless);
    out.keep = false;
    pgbr_buf_free(&out.buf);
    for (size_t cut = 0; cut < z.len; cut += z.len / 17 + 1) {
        filter *d = filter_zstd_decompress_new(NULL, &err);
        bool ok = filter_process(d, z.data, cut, NULL, NULL, &err) &&
                  filter_finish(d, NULL, NULL, &err);

        if (!tap_ok(!ok && strcmp(err.sqlstate, "XX001") == 0 &&
                    strncmp(err.message, "compressed data is corrupted: ", 30) == 0,
                    "stream truncated to %zu of %zu bytes: XX001", cut, z.len))
            tap_diag("%s", ok ? "accepted" : err.message);
        pgbr_error_clear(&err);
        filter_free(d);
    }
    f = filter_zstd_decompress_new("g.pgbr", &err);
    tap_ok(!filter_process(f, "PGBRDAT\0 this is not zstd", 26, NULL, NULL, &err) &&
           strcmp(err.sqlstate, "XX001") == 0, "garbage input: XX001 (%s)", err.message);
    pgbr_error_clear(&err);
    filter_free(f);
    /* two concatenated frames are one valid stream */
    pgbr_buf_append(&z, z.data, z.len, &err);
    f = filter_zstd_decompress_new(NULL, &err);
    out.total = 0;
    tap_ok(filter_process(f, z.data, z.len, collect_sink, &out, &err) &&
           filter_finish(f, NULL, NULL, &err) && out.total == 2 * in.len,
           "two concatenated zstd frames decompress to both inputs");
    filter_free(f);
    pgbr_buf_free(&in);
    pgbr_buf_free(&z);
}

static void test_chain_rules(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    collect out = { PGBR_BUF_INIT, 0, 0, 0, true, 0 };
    filter_chain *chain = filter_chain_new(collect_sink, &out, &err);

    tap_ok(filter_chain_push(chain, "abc", 3, &err) && filter_chain_finish(chain, &err) &&
           out.buf.len == 3, "an empty chain passes bytes to its sink");
    tap_ok(!filter_chain_push(chain, "x", 1, &err) && strcmp(err.sqlstate, "XX000") == 0,
           "push after finish is refused");
    pgbr_error_clear(&err);
    tap_ok(!filter_chain_add(chain, filter_count_new(&err), NULL, &err),
           "add after use is refused (and the filter is freed)");
    pgbr_error_clear(&err);
    tap_ok(filter_chain_get(chain, "count") == NULL && filter_chain_result(chain, "x") == NULL,
           "unknown names give NULL");
    filter_chain_free(chain);

    /* a failing sink stops the chain and its error comes back unchanged */
    out.fail_after = 3;
    out.pieces = 0;
    chain = filter_chain_new(collect_sink, &out, &err);
    filter_chain_add(chain, filter_count_new(&err), NULL, &err);
    filter_chain_add(chain, filter_count_new(&err), "second", &err);
    filter_chain_push(chain, "a", 1, &err);
    filter_chain_push(chain, "b", 1, &err);
    tap_ok(!filter_chain_push(chain, "c", 1, &err) && strcmp(err.sqlstate, "57014") == 0 &&
           strcmp(err.message, "sink says stop") == 0, "the sink's error is passed back");
    pgbr_error_clear(&err);
    tap_ok(!filter_chain_finish(chain, &err) && strstr(err.message, "after a failure") != NULL,
           "a failed chain refuses to finish");
    pgbr_error_clear(&err);
    tap_ok(filter_count_bytes(filter_chain_get(chain, "count")) == 3 &&
           filter_chain_get(chain, "second") != NULL &&
           strcmp(filter_name(filter_chain_get(chain, "second")), "second") == 0 &&
           strcmp(filter_type(filter_chain_get(chain, "second")), "count") == 0,
           "two count filters, one renamed");
    filter_chain_free(chain);
    pgbr_buf_free(&out.buf);

    /* NULL sink: output dropped, results still computed */
    chain = filter_chain_new(NULL, NULL, &err);
    filter_chain_add(chain, filter_sha256_new(&err), NULL, &err);
    filter_chain_push(chain, "abc", 3, &err);
    filter_chain_finish(chain, &err);
    tap_is_str(filter_chain_result(chain, "sha256"),
               "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
               "a chain with no sink still hashes");
    filter_chain_free(chain);
}

/* restore direction: stored bytes -> sha256 check -> decompress -> rows */
static void test_reverse_chain(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    pgbr_buf rows = PGBR_BUF_INIT;
    collect stored = { PGBR_BUF_INIT, 0, 0, 0, true, 0 }, back = stored;
    filter_chain *w = chain_of(collect_sink, &stored, 3, false), *r;
    filter *check;
    char digest[65];
    int aid = 1;

    gen_pgbench(&rows, 3 << 20, &aid);
    push_chunked(w, rows.data, rows.len, 8192, &err);
    filter_chain_finish(w, &err);
    filter_sha256_digest_hex(stored.buf.data, stored.buf.len, digest, &err);
    r = filter_chain_new(collect_sink, &back, &err);
    check = filter_sha256_new(&err);
    filter_sha256_expect(check, digest, "data/db/1/0.pgbr", &err);
    filter_chain_add(r, check, NULL, &err);
    filter_chain_add(r, filter_zstd_decompress_new("data/db/1/0.pgbr", &err), NULL, &err);
    filter_chain_add(r, filter_count_new(&err), "rows", &err);
    tap_ok(push_chunked(r, stored.buf.data, stored.buf.len, 1000, &err) &&
           filter_chain_finish(r, &err) && back.buf.len == rows.len &&
           memcmp(back.buf.data, rows.data, rows.len) == 0 &&
           filter_count_lines(filter_chain_get(r, "rows")) == (uint64_t)(aid - 1),
           "restore chain: sha256 checked, %d rows back identical", aid - 1);
    filter_chain_free(r);
    filter_chain_free(w);
    pgbr_buf_free(&rows);
    pgbr_buf_free(&stored.buf);
    pgbr_buf_free(&back.buf);
}

static long peak_rss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Push PGBR_TEST_BIG_MB (512) MiB through count -> sha256 -> zstd ->
 * count -> unzstd -> sha256 into a counting sink: peak RSS must not grow by
 * more than 32 MiB, and no piece handed on may exceed zstd's block sizes. */
static void test_constant_memory(void)
{
    const char *env = getenv("PGBR_TEST_BIG_MB");
    size_t mb = env != NULL ? strtoul(env, NULL, 10) : 512;
    collect out = { PGBR_BUF_INIT, 0, 0, 0, false, 0 };
    pgbr_error err = PGBR_ERROR_INIT;
    pgbr_buf block = PGBR_BUF_INIT;
    filter_chain *chain;
    long before, grown;
    struct timespec t0, t1;
    bool ok = true;
    int aid = 1;

    gen_pgbench(&block, 512 << 10, &aid);
    gen_realistic(&block, 1 << 20);
    block.len = 1 << 20;
    chain = chain_of(collect_sink, &out, 1, true);
    before = peak_rss_kb();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; ok && i < mb; i++) {
        block.data[i % block.len] ^= 1;    /* not the same megabyte every time */
        ok = filter_chain_push(chain, block.data, block.len, &err);
    }
    ok = ok && filter_chain_finish(chain, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    grown = peak_rss_kb() - before;
    if (!ok || out.total != (uint64_t)mb << 20)
        tap_diag("ok=%d total=%llu err=%s", ok, (unsigned long long)out.total,
                 err.message ? err.message : "-");
    tap_ok(ok && out.total == (uint64_t)mb << 20 &&
           strcmp(filter_chain_result(chain, "raw_sha256"),
                  filter_chain_result(chain, "out_sha256")) == 0,
           "%zu MiB through compress and decompress: every byte back, same sha256 (%.1f s)", mb,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    tap_ok(grown < 32 * 1024, "peak RSS grew by %ld KiB (< 32 MiB)", grown);
    tap_ok(out.max_piece <= ZSTD_DStreamOutSize(), "largest piece handed on: %zu bytes",
           out.max_piece);
    filter_chain_free(chain);
    pgbr_buf_free(&block);
}

static void test_crc32c(void)
{
    unsigned char *data = malloc(100003);
    int mismatches = 0;
    uint32_t inc = 0;

    tap_ok(crc32c_update(0, "123456789", 9) == 0xE3069283u, "crc32c check value 0xE3069283");
    tap_ok(crc32c_update(0, "", 0) == 0 && crc32c_update(0x1234, NULL, 0) == 0x1234,
           "crc32c of nothing leaves the value");
    for (size_t i = 0; i < 100003; i++)
        data[i] = (unsigned char)rng();
    for (size_t off = 0; off < 100003; off += 997)
        inc = crc32c_update(inc, data + off, 100003 - off < 997 ? 100003 - off : 997);
    tap_ok(inc == crc32c_update(0, data, 100003), "crc32c fed in pieces equals one call");
    crc32c_update_copy(0, "", 0);       /* builds the copy's tables */
    for (int i = 0; i < 2000; i++) {
        size_t off = rng() % 64, len = rng() % 4000;
        uint32_t sw = ~crc32c_sw_update(~0u, data + off, len);

        if (sw != crc32c_update(0, data + off, len))
            mismatches++;
#ifdef CRC32C_HAVE_HW
        if (crc32c_hw && sw != ~crc32c_hw_update(~0u, data + off, len))
            mismatches++;
#endif
    }
    tap_ok(mismatches == 0, "software and hardware crc32c agree at 2000 offsets/lengths (hw %s)",
           crc32c_hw ? "present" : "absent");
    free(data);
}

static void test_buf(void)
{
    pgbr_buf b = PGBR_BUF_INIT;
    pgbr_error err = PGBR_ERROR_INIT;

    tap_ok(pgbr_buf_append(&b, NULL, 0, &err) && b.data == NULL, "appending nothing allocates nothing");
    tap_ok(pgbr_buf_append(&b, "abc", 3, &err) && b.len == 3 && b.cap >= 3, "append");
    b.len = SIZE_MAX - 1;
    tap_ok(!pgbr_buf_reserve(&b, 10, &err) && strcmp(err.sqlstate, "54000") == 0,
           "a size overflow is refused with 54000");
    pgbr_error_clear(&err);
    b.len = 3;
    pgbr_buf_reset(&b);
    tap_ok(b.len == 0 && b.data != NULL, "reset keeps the memory");
    pgbr_buf_free(&b);
    tap_ok(b.len == 0 && b.data == NULL && b.cap == 0, "free releases it");
}

int main(void)
{
    test_constant_memory();     /* first: peak RSS is per process */
    test_buf();
    test_crc32c();
    test_sha256_and_count();
    test_chain_rules();
    test_zstd_errors();
    test_reverse_chain();
    test_round_trips();
    return tap_done();
}
