/*
 * filter.h - composable byte filters and filter chains, modeled on
 * pgBackRest's IoFilter groups.
 *
 * A filter knows nothing of where its bytes come from or where they go: it is
 * given input and an output callback (a filter_sink_fn), appends whatever
 * output it produces through that callback, and at the end of input is
 * finished so it can flush what it still holds. After finish, a filter may
 * have a result (a byte count, a digest) read as text or via the typed getters
 * below.
 *
 * A chain runs filters in order into a final sink:
 *
 *     backup:   rows -> count -> zstd_compress -> sha256 -> count -> storage
 *     restore:  storage -> sha256 -> zstd_decompress -> rows
 *
 * Memory is constant regardless of the total size: every filter keeps at most
 * one bounded internal buffer (ZSTD_CStreamOutSize / ZSTD_DStreamOutSize,
 * about 128 KiB) and passes pieces on as soon as that buffer fills.
 *
 * Ownership: filter_*_new() return a filter the caller owns until it is given
 * to filter_chain_add(), which takes ownership (also when it fails). Pointers
 * to added filters stay valid until filter_chain_free(). Not thread-safe: a
 * filter or chain belongs to one thread at a time (a worker job).
 *
 * Errors: every fallible call fills the caller's pgbr_error. Corrupt
 * compressed input and checksum mismatches are SQLSTATE XX001
 * (data_corrupted); out of memory is 53200.
 */
#ifndef PGBR_FILTER_H
#define PGBR_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"

/*
 * Where bytes go: receives len bytes (len > 0, data valid only during the
 * call). Returns false with err set to stop the pipeline.
 */
typedef bool (*filter_sink_fn)(void *arg, const void *data, size_t len, pgbr_error *err);

/*
 * The filter interface, for implementers (the AES-256-GCM filter will be one).
 * process: consume all len input bytes, emit output via out(out_arg, ...)
 *          zero or more times. Never called after finish.
 * finish:  end of input; emit what is still held; compute the result.
 * result:  text result after finish (a decimal count, a hex digest), or NULL
 *          when the filter has none. May be NULL.
 * free:    release the state. May be NULL.
 */
typedef struct filter_ops {
    const char *type;       /* "count", "sha256", "zstd_compress", ... */
    bool (*process)(void *state, const void *in, size_t len, filter_sink_fn out, void *out_arg,
                    pgbr_error *err);
    bool (*finish)(void *state, filter_sink_fn out, void *out_arg, pgbr_error *err);
    const char *(*result)(void *state);
    void (*free)(void *state);
} filter_ops;

typedef struct filter filter;

/* Wrap ops + state into a filter named after ops->type. On allocation failure
 * calls ops->free(state) and returns NULL with err set. */
filter *filter_new(const filter_ops *ops, void *state, pgbr_error *err);
/* The filter's name (its type unless renamed by filter_chain_add) and type. */
const char *filter_name(const filter *f);
const char *filter_type(const filter *f);
/* The filter's state, for implementers' getters. */
void *filter_state(const filter *f);
/* Drive one filter by hand (without a chain). out may be NULL: output dropped. */
bool filter_process(filter *f, const void *in, size_t len, filter_sink_fn out, void *out_arg,
                    pgbr_error *err);
bool filter_finish(filter *f, filter_sink_fn out, void *out_arg, pgbr_error *err);
/* Text result after finish, or NULL (no result, or not finished yet). */
const char *filter_result(const filter *f);
/* Free a filter not in a chain (a chain frees its own). NULL is a no-op. */
void filter_free(filter *f);

/* ---- the filters ---- */

/* Counts bytes and newline characters (lines of COPY text) and passes the
 * input through unchanged. Result: the byte count in decimal. */
filter *filter_count_new(pgbr_error *err);
uint64_t filter_count_bytes(const filter *f);   /* 0 for a non-count filter */
uint64_t filter_count_lines(const filter *f);

/* SHA-256 of the input (OpenSSL EVP), input passed through unchanged.
 * Result: 64 lowercase hex characters, available after finish. */
filter *filter_sha256_new(pgbr_error *err);
/* The hex digest after finish; NULL before, or for a non-sha256 filter. */
const char *filter_sha256_hex(const filter *f);
/* Make finish fail with XX001 `backup file "<file_name>" is corrupted:
 * checksum mismatch` unless the digest equals expected_hex (case-insensitive).
 * Strings are copied. */
bool filter_sha256_expect(filter *f, const char *expected_hex, const char *file_name,
                          pgbr_error *err);

/* Streaming zstd compression (ZSTD_compressStream2) into one zstd frame
 * with a content checksum, so decompression detects corruption.
 * level: FILTER_ZSTD_LEVEL_DEFAULT (1) or FILTER_ZSTD_LEVEL_MIN..MAX; other
 * values give 22023. */
#define FILTER_ZSTD_LEVEL_DEFAULT 1
#define FILTER_ZSTD_LEVEL_MIN (-7)
#define FILTER_ZSTD_LEVEL_MAX 19
filter *filter_zstd_compress_new(int level, pgbr_error *err);

/* Streaming zstd decompression of one or more concatenated zstd frames.
 * Malformed input, a window larger than 2^FILTER_ZSTD_WINDOW_LOG_MAX or input
 * that ends mid-frame fails with XX001 `backup file "<file_name>" is
 * corrupted: <why>` (file_name copied; NULL gives "compressed data is
 * corrupted: <why>"). */
#define FILTER_ZSTD_WINDOW_LOG_MAX 25
filter *filter_zstd_decompress_new(const char *file_name, pgbr_error *err);

/* ---- chains ---- */

typedef struct filter_chain filter_chain;

/* A chain whose output goes to sink(sink_arg, ...); sink may be NULL to drop
 * the output (e.g. only hashing). NULL with err set when out of memory. */
filter_chain *filter_chain_new(filter_sink_fn sink, void *sink_arg, pgbr_error *err);
/* Append f at the end of the chain; name (copied) replaces its default name
 * (the type) for filter_chain_get, so a chain can hold two count filters
 * ("raw", "stored"). Takes ownership of f, also on failure. Only before the
 * first push. */
bool filter_chain_add(filter_chain *chain, filter *f, const char *name, pgbr_error *err);
/* Push len bytes through every filter into the sink. */
bool filter_chain_push(filter_chain *chain, const void *data, size_t len, pgbr_error *err);
/* filter_chain_push with a void * chain: a filter_sink_fn, so a chain can be
 * the sink of a data file writer or of another chain. */
bool filter_chain_sink(void *chain, const void *data, size_t len, pgbr_error *err);
/* Finish every filter in order (each flushes into the next). Once only. */
bool filter_chain_finish(filter_chain *chain, pgbr_error *err);
/* The filter named name, or NULL. */
filter *filter_chain_get(const filter_chain *chain, const char *name);
/* filter_result() of the filter named name, or NULL. */
const char *filter_chain_result(const filter_chain *chain, const char *name);
/* Free the chain and every filter in it. NULL is a no-op. */
void filter_chain_free(filter_chain *chain);

/* ---- one-shot helpers ---- */

/* SHA-256 of len bytes as 64 lowercase hex characters + NUL into out. */
bool filter_sha256_digest_hex(const void *data, size_t len, char out[65], pgbr_error *err);

/* CRC-32C (Castagnoli) as used by iSCSI and ext4: start with crc = 0, feed
 * the bytes in any number of calls, each returning the running value. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

#endif
