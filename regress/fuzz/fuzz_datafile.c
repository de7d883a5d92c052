/*
 * fuzz_datafile.c - libFuzzer target for the backup data file reader
 * (src/io/datafile.c). The first byte picks a mode, the second the size of
 * the pieces the reader is fed; the rest is the hostile input:
 *
 *   mode 0  the input as a data file, as is
 *   mode 1  the input as a data file with its header and frame CRC-32Cs
 *           recomputed, so the fuzzer reaches the checks behind the CRCs
 *           (lengths, zstd payloads, totals) instead of stopping at them
 *   mode 2  the input as COPY rows (split at newlines): written with the
 *           writer (zstd), read back, and required to come back identical
 *   mode 3  the same without compression
 *   mode 4  the same with column-major zstd frames (TAB-separated values;
 *           frames of other shapes fall back to rows)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/buf.h"
#include "pgbr/datafile.h"

typedef struct fuzz_got {
    pgbr_buf data;
    uint64_t rows;
} fuzz_got;

static bool fuzz_on_frame(void *arg, uint64_t index, const void *data, size_t len,
                          uint64_t nrows, pgbr_error *err)
{
    fuzz_got *g = arg;

    (void)index;
    g->rows += nrows;
    return pgbr_buf_append(&g->data, data, len, err);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* Recompute the header CRC and every whole frame's CRC in place. */
static void fix_crcs(unsigned char *p, size_t len)
{
    size_t off = DATAFILE_HEADER_SIZE;

    if (len < DATAFILE_HEADER_SIZE)
        return;
    put_u32(p + 28, crc32c_update(0, p, 28));
    for (uint64_t index = 0; off + DATAFILE_FRAME_HEADER_SIZE <= len; index++) {
        uint32_t stored = get_u32(p + off + 12);
        unsigned char idx[8];
        uint32_t crc;

        if (stored > len - off - DATAFILE_FRAME_HEADER_SIZE)
            return;
        for (int i = 0; i < 8; i++)
            idx[i] = (unsigned char)(index >> (56 - 8 * i));
        crc = crc32c_update(crc32c_update(0, idx, 8), p + off, 16);
        put_u32(p + off + 16, crc32c_update(crc, p + off + DATAFILE_FRAME_HEADER_SIZE, stored));
        off += DATAFILE_FRAME_HEADER_SIZE + stored;
    }
}

static bool fuzz_read(const unsigned char *p, size_t len, size_t piece, fuzz_got *g,
                      datafile_totals *t)
{
    pgbr_error err = PGBR_ERROR_INIT;
    datafile_reader *r = datafile_reader_new("fuzz.pgbr", fuzz_on_frame, g, &err);
    bool ok = r != NULL;

    for (size_t off = 0; ok && off < len; off += piece)
        ok = datafile_reader_feed(r, p + off, len - off < piece ? len - off : piece, &err);
    ok = ok && datafile_reader_finish(r, t, &err);
    /* every failure is a reported error, and a data file failure is XX001
     * (or 0A000 for the encryption this build cannot read) */
    if (!ok && (!pgbr_error_is_set(&err) ||
                (strcmp(err.sqlstate, "XX001") != 0 && strcmp(err.sqlstate, "0A000") != 0 &&
                 strcmp(err.sqlstate, "53200") != 0)))
        abort();
    pgbr_error_clear(&err);
    datafile_reader_free(r);
    return ok;
}

static void fuzz_round_trip(const unsigned char *p, size_t len, size_t piece,
                            datafile_compression compression)
{
    datafile_writer_options o = DATAFILE_WRITER_OPTIONS_DEFAULT;
    pgbr_error err = PGBR_ERROR_INIT;
    pgbr_buf file = PGBR_BUF_INIT;
    fuzz_got g = { PGBR_BUF_INIT, 0 };
    datafile_totals wt, rt;
    datafile_writer *w;
    size_t start = 0;
    uint64_t rows = 0;

    o.compression = compression;
    o.frame_target = 64 + piece * 4;
    w = datafile_writer_new(pgbr_buf_sink, &file, &o, &err);
    if (w == NULL)
        abort();
    while (start < len) {
        const unsigned char *nl = memchr(p + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - p) + 1 : len;

        if (!datafile_writer_add_rows(w, p + start, end - start, nl != NULL, &err))
            abort();
        rows += nl != NULL;
        start = end;
    }
    if (!datafile_writer_finish(w, &wt, &err) || wt.rows != rows || wt.raw_bytes != len ||
        wt.stored_bytes != file.len)
        abort();
    if (!fuzz_read(file.data, file.len, piece, &g, &rt) || g.data.len != len ||
        (len > 0 && memcmp(g.data.data, p, len) != 0) || g.rows != rows || rt.rows != rows ||
        rt.frames != wt.frames)
        abort();
    datafile_writer_free(w);
    pgbr_buf_free(&file);
    pgbr_buf_free(&g.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_got g = { PGBR_BUF_INIT, 0 };
    unsigned char *copy;
    size_t piece;

    if (size < 2)
        return 0;
    piece = (size_t)data[1] + 1;
    if (data[1] == 255)
        piece = SIZE_MAX;
    switch (data[0] % 5) {
    case 0:
        fuzz_read(data + 2, size - 2, piece, &g, NULL);
        break;
    case 1:
        copy = malloc(size - 2 + 1);
        memcpy(copy, data + 2, size - 2);
        fix_crcs(copy, size - 2);
        fuzz_read(copy, size - 2, piece, &g, NULL);
        free(copy);
        break;
    default:
        fuzz_round_trip(data + 2, size - 2, piece == SIZE_MAX ? 4096 : piece,
                        data[0] % 5 == 2 ? DATAFILE_COMPRESSION_ZSTD :
                        data[0] % 5 == 3 ? DATAFILE_COMPRESSION_NONE :
                        DATAFILE_COMPRESSION_ZSTD_COLUMNS);
        break;
    }
    pgbr_buf_free(&g.data);
    return 0;
}
