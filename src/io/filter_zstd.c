/*
 * filter_zstd.c - streaming zstd compression and decompression filters (see
 * include/pgbr/filter.h).
 *
 * Each keeps one output block of the size zstd recommends (about 128 KiB)
 * and hands it on when it fills, so memory is constant whatever the size of
 * the stream. Decompression treats its input as hostile: any zstd error,
 * a window larger than 2^FILTER_ZSTD_WINDOW_LOG_MAX, or input that stops in
 * the middle of a frame is SQLSTATE XX001.
 */
#include "pgbr/filter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

/* ---- compression ---- */

typedef struct zstd_compress_state {
    ZSTD_CCtx *cctx;
    unsigned char *out;
    size_t cap;
    size_t pos;             /* bytes of out not yet handed on */
} zstd_compress_state;

static bool zstd_compress_process(void *state, const void *in, size_t len, filter_sink_fn out,
                                  void *out_arg, pgbr_error *err)
{
    zstd_compress_state *z = state;
    ZSTD_inBuffer ib = { in, len, 0 };

    while (ib.pos < ib.size) {
        ZSTD_outBuffer ob = { z->out, z->cap, z->pos };
        size_t rc = ZSTD_compressStream2(z->cctx, &ob, &ib, ZSTD_e_continue);

        if (ZSTD_isError(rc))
            return pgbr_error_set(err, "XX000", "zstd compression failed: %s",
                                  ZSTD_getErrorName(rc));
        z->pos = ob.pos;
        if (z->pos == z->cap) {
            z->pos = 0;
            if (!out(out_arg, z->out, z->cap, err))
                return false;
        }
    }
    return true;
}

static bool zstd_compress_finish(void *state, filter_sink_fn out, void *out_arg, pgbr_error *err)
{
    zstd_compress_state *z = state;

    for (;;) {
        ZSTD_inBuffer ib = { NULL, 0, 0 };
        ZSTD_outBuffer ob = { z->out, z->cap, z->pos };
        size_t rc = ZSTD_compressStream2(z->cctx, &ob, &ib, ZSTD_e_end);
        size_t n;

        if (ZSTD_isError(rc))
            return pgbr_error_set(err, "XX000", "zstd compression failed: %s",
                                  ZSTD_getErrorName(rc));
        n = ob.pos;
        z->pos = 0;
        if (n > 0 && !out(out_arg, z->out, n, err))
            return false;
        if (rc == 0)
            return true;
    }
}

static void zstd_compress_free(void *state)
{
    zstd_compress_state *z = state;

    if (z == NULL)
        return;
    ZSTD_freeCCtx(z->cctx);
    free(z->out);
    free(z);
}

static const filter_ops zstd_compress_ops = {
    .type = "zstd_compress",
    .process = zstd_compress_process,
    .finish = zstd_compress_finish,
    .result = NULL,
    .free = zstd_compress_free,
};

filter *filter_zstd_compress_new(int level, pgbr_error *err)
{
    zstd_compress_state *z;

    if (level == 0)
        level = FILTER_ZSTD_LEVEL_DEFAULT;
    if (level < FILTER_ZSTD_LEVEL_MIN || level > FILTER_ZSTD_LEVEL_MAX) {
        pgbr_error_set(err, "22023", "zstd compression level %d is out of range", level);
        pgbr_error_hint(err, "Use a level from %d to %d.", FILTER_ZSTD_LEVEL_MIN,
                        FILTER_ZSTD_LEVEL_MAX);
        return NULL;
    }
    z = calloc(1, sizeof *z);
    if (z == NULL || (z->cctx = ZSTD_createCCtx()) == NULL ||
        (z->out = malloc(z->cap = ZSTD_CStreamOutSize())) == NULL) {
        zstd_compress_free(z);
        pgbr_error_set(err, "53200", "out of memory creating a zstd_compress filter");
        return NULL;
    }
    /* the frame checksum (XXH64) lets decompression detect corrupt data */
    if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1))) {
        zstd_compress_free(z);
        pgbr_error_set(err, "22023", "zstd compression level %d is not supported", level);
        return NULL;
    }
    return filter_new(&zstd_compress_ops, z, err);
}

/* ---- decompression ---- */

typedef struct zstd_decompress_state {
    ZSTD_DCtx *dctx;
    unsigned char *out;
    size_t cap;
    size_t pending;         /* last ZSTD_decompressStream hint: 0 = frame complete */
    bool seen_input;
    char *file_name;        /* NULL: "compressed data" */
} zstd_decompress_state;

static bool zstd_corrupt(const zstd_decompress_state *z, pgbr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool zstd_corrupt(const zstd_decompress_state *z, pgbr_error *err, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (z->file_name != NULL)
        return pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: %s", z->file_name,
                              why);
    return pgbr_error_set(err, "XX001", "compressed data is corrupted: %s", why);
}

static bool zstd_decompress_process(void *state, const void *in, size_t len, filter_sink_fn out,
                                    void *out_arg, pgbr_error *err)
{
    zstd_decompress_state *z = state;
    ZSTD_inBuffer ib = { in, len, 0 };
    bool drain = false;

    z->seen_input = true;
    /*
     * A full output block with a frame not yet complete (rc != 0) may mean
     * zstd holds more: call again with no input to drain it. Once a frame is
     * complete (rc == 0), another call would start reading the next frame.
     */
    while (ib.pos < ib.size || drain) {
        ZSTD_outBuffer ob = { z->out, z->cap, 0 };
        size_t rc = ZSTD_decompressStream(z->dctx, &ob, &ib);

        if (ZSTD_isError(rc))
            return zstd_corrupt(z, err, "zstd: %s", ZSTD_getErrorName(rc));
        z->pending = rc;
        drain = ob.pos == ob.size && rc != 0;
        if (ob.pos > 0 && !out(out_arg, z->out, ob.pos, err))
            return false;
    }
    return true;
}

static bool zstd_decompress_finish(void *state, filter_sink_fn out, void *out_arg,
                                   pgbr_error *err)
{
    zstd_decompress_state *z = state;

    (void)out;
    (void)out_arg;
    if (!z->seen_input)
        return zstd_corrupt(z, err, "compressed stream is empty");
    if (z->pending != 0)
        return zstd_corrupt(z, err, "compressed stream ends in the middle of a zstd frame");
    return true;
}

static void zstd_decompress_free(void *state)
{
    zstd_decompress_state *z = state;

    if (z == NULL)
        return;
    ZSTD_freeDCtx(z->dctx);
    free(z->out);
    free(z->file_name);
    free(z);
}

static const filter_ops zstd_decompress_ops = {
    .type = "zstd_decompress",
    .process = zstd_decompress_process,
    .finish = zstd_decompress_finish,
    .result = NULL,
    .free = zstd_decompress_free,
};

filter *filter_zstd_decompress_new(const char *file_name, pgbr_error *err)
{
    zstd_decompress_state *z = calloc(1, sizeof *z);

    if (z == NULL || (z->dctx = ZSTD_createDCtx()) == NULL ||
        (z->out = malloc(z->cap = ZSTD_DStreamOutSize())) == NULL ||
        (file_name != NULL && (z->file_name = strdup(file_name)) == NULL)) {
        zstd_decompress_free(z);
        pgbr_error_set(err, "53200", "out of memory creating a zstd_decompress filter");
        return NULL;
    }
    if (ZSTD_isError(ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax,
                                            FILTER_ZSTD_WINDOW_LOG_MAX))) {
        zstd_decompress_free(z);
        pgbr_error_set(err, "XX000", "could not limit the zstd window size");
        return NULL;
    }
    return filter_new(&zstd_decompress_ops, z, err);
}
