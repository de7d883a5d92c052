/*
 * datafile.c - writer and reader of backup data files (see
 * include/pgbr/datafile.h; the byte layout is in docs/format.md).
 *
 * Layout, all integers big-endian:
 *   header  (32) magic "PGBRDAT\0", u16 version, u8 compression,
 *                u8 encryption, u32 flags, 12-byte file id, u32 crc32c
 *   frame   (20) u8 type 'D', 3 zero bytes, u32 rows, u32 raw length,
 *                u32 stored length, u32 crc32c of (u64 frame index, header
 *                bytes 0..15, payload): a frame moved elsewhere fails
 *           then the payload: the rows (compression 0), one zstd frame
 *           of them (1), or (2) a layout byte then either (0) one zstd
 *           frame of the rows or (1) u32 columns C, u32 lines L, C x u32
 *           column lengths and one zstd frame of the values column after
 *           column, each followed by LF (raw length bytes in all)
 *   end     (20) type 'E', rows 0, raw 24, stored 24, crc; payload
 *                u64 frames, u64 rows, u64 raw bytes
 *
 * The reader is a small state machine over header, frame header and payload.
 * It trusts no length: each is checked against the format's limits before
 * anything is allocated, and buffers grow only as bytes actually arrive, so
 * a forged length costs nothing until the bytes exist.
 *
 * Transposing (ZSTD_COLUMNS) is linear, a byte search and a memcpy per value
 * and no allocation per value: the writer makes two passes, one measuring
 * the columns (and falling back to rows on any irregularity), one copying
 * each value to its column's cursor; the reader makes one, copying each
 * column's next value back in row order, each search bounded by that
 * column's end, so a lying header can only make it fail, never read or
 * write outside the frame's two raw-sized buffers.
 */
#include "pgbr/datafile.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "pgbr/buf.h"

/* The most a zstd frame can expand: ZSTD_BLOCKSIZE_MAX (128 KiB) per 4-byte
 * RLE block. */
#define DATAFILE_ZSTD_MAX_RATIO 32768

/* A buffer that grew past this (for a huge row) is released after use. */
#define DATAFILE_KEEP_CAP (4 * (size_t)DATAFILE_FRAME_TARGET)

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* The largest stored payload a data frame of raw_len bytes may have. */
static uint64_t max_stored_len(uint8_t compression, uint32_t raw_len)
{
    switch (compression) {
    case DATAFILE_COMPRESSION_ZSTD:
        return ZSTD_compressBound(raw_len);
    case DATAFILE_COMPRESSION_ZSTD_COLUMNS:
        return DATAFILE_COLUMNS_HEAD_SIZE(DATAFILE_MAX_COLUMNS) + ZSTD_compressBound(raw_len);
    default:
        return raw_len;
    }
}

/*
 * The first byte b in [p, end), or NULL: an inline memchr, as COPY values are
 * mostly short and a call per value cost more than the search (up to 20%
 * of the reader's time on narrow rows). Eight bytes at a time: a byte of
 * x ^ (b repeated) is zero exactly where x holds b, and the expression below
 * sets the high bit of exactly those bytes (no false hits, so the lowest one
 * in memory order is the answer).
 */
static inline const unsigned char *scan_to(const unsigned char *p, const unsigned char *end,
                                           unsigned char b)
{
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    const uint64_t pattern = 0x0101010101010101ULL * b;

    for (; end - p >= 8; p += 8) {
        uint64_t x, hit;

        memcpy(&x, p, 8);
        x ^= pattern;
        hit = ~(((x & low7) + low7) | x | low7);
        if (hit != 0)
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            return p + __builtin_clzll(hit) / 8;
#else
            return p + __builtin_ctzll(hit) / 8;
#endif
    }
    for (; p < end; p++)
        if (*p == b)
            return p;
    return NULL;
}

/* The CRC of a frame: its index, its header's first 16 bytes, its payload. */
static uint32_t frame_crc(uint64_t index, const unsigned char *head, const void *payload,
                          size_t len)
{
    unsigned char idx[8];

    put_u64(idx, index);
    return crc32c_update(crc32c_update(crc32c_update(0, idx, 8), head, 16), payload, len);
}

/* ==== writer ==== */

struct datafile_writer {
    filter_sink_fn sink;
    void *sink_arg;
    datafile_compression compression;
    size_t target;
    ZSTD_CCtx *cctx;
    pgbr_buf raw;           /* rows of the frame being filled */
    uint64_t raw_rows;
    pgbr_buf stored;        /* compressed payload of the frame being written */
    pgbr_buf columns;       /* the frame column-major (ZSTD_COLUMNS) */
    uint32_t col_len[DATAFILE_MAX_COLUMNS];     /* bytes of each column, LFs included */
    uint32_t col_at[DATAFILE_MAX_COLUMNS];      /* where each column's next value goes */
    bool header_written;
    bool finished;
    bool failed;
    datafile_totals totals;
};

datafile_writer *datafile_writer_new(filter_sink_fn sink, void *sink_arg,
                                     const datafile_writer_options *opts, pgbr_error *err)
{
    static const datafile_writer_options defaults = DATAFILE_WRITER_OPTIONS_DEFAULT;
    datafile_writer *w;
    int level;

    if (opts == NULL)
        opts = &defaults;
    level = opts->zstd_level != 0 ? opts->zstd_level : FILTER_ZSTD_LEVEL_DEFAULT;
    if (opts->compression != DATAFILE_COMPRESSION_NONE &&
        opts->compression != DATAFILE_COMPRESSION_ZSTD &&
        opts->compression != DATAFILE_COMPRESSION_ZSTD_COLUMNS) {
        pgbr_error_set(err, "22023", "unknown data file compression %d", (int)opts->compression);
        return NULL;
    }
    if (level < FILTER_ZSTD_LEVEL_MIN || level > FILTER_ZSTD_LEVEL_MAX) {
        pgbr_error_set(err, "22023", "zstd compression level %d is out of range", level);
        pgbr_error_hint(err, "Use a level from %d to %d.", FILTER_ZSTD_LEVEL_MIN,
                        FILTER_ZSTD_LEVEL_MAX);
        return NULL;
    }
    if (opts->frame_target > DATAFILE_MAX_FRAME_RAW) {
        pgbr_error_set(err, "22023", "data file frame size %zu is larger than the maximum %u",
                       opts->frame_target, DATAFILE_MAX_FRAME_RAW);
        return NULL;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        pgbr_error_set(err, "53200", "out of memory creating a data file writer");
        return NULL;
    }
    w->sink = sink;
    w->sink_arg = sink_arg;
    w->compression = opts->compression;
    w->target = opts->frame_target != 0 ? opts->frame_target : DATAFILE_FRAME_TARGET;
    if (w->compression != DATAFILE_COMPRESSION_NONE) {
        w->cctx = ZSTD_createCCtx();
        if (w->cctx == NULL ||
            ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 0))) {
            datafile_writer_free(w);
            pgbr_error_set(err, "53200", "could not create a zstd compression context");
            return NULL;
        }
    }
    return w;
}

static bool writer_emit(datafile_writer *w, const void *data, size_t len, pgbr_error *err)
{
    if (len == 0)
        return true;
    if (!w->sink(w->sink_arg, data, len, err)) {
        w->failed = true;
        return false;
    }
    w->totals.stored_bytes += len;
    return true;
}

static bool writer_header(datafile_writer *w, pgbr_error *err)
{
    unsigned char h[DATAFILE_HEADER_SIZE] = { 0 };

    if (w->header_written)
        return true;
    memcpy(h, DATAFILE_MAGIC, 8);
    put_u16(h + 8, DATAFILE_FORMAT_VERSION);
    h[10] = (unsigned char)w->compression;
    h[11] = DATAFILE_ENCRYPTION_NONE;
    /* flags (12..15) and file id (16..27) stay zero without encryption */
    put_u32(h + 28, crc32c_update(0, h, 28));
    w->header_written = true;
    return writer_emit(w, h, sizeof h, err);
}

static bool writer_frame(datafile_writer *w, char type, uint32_t rows, uint32_t raw_len,
                         const void *payload, uint32_t stored_len, pgbr_error *err)
{
    unsigned char h[DATAFILE_FRAME_HEADER_SIZE] = { 0 };

    h[0] = (unsigned char)type;
    put_u32(h + 4, rows);
    put_u32(h + 8, raw_len);
    put_u32(h + 12, stored_len);
    /* data frames count from 0; the end frame's index is the data frame count */
    put_u32(h + 16, frame_crc(w->totals.frames, h, payload, stored_len));
    return writer_emit(w, h, sizeof h, err) && writer_emit(w, payload, stored_len, err);
}

/*
 * Measure the len raw bytes at data as columns: true when every line has the
 * same number of fields (TAB-separated), 2 to DATAFILE_MAX_COLUMNS, and the
 * last line ends with LF; then *ncols and *nlines are set and w->col_len
 * holds each column's bytes, one terminator per value included (so the
 * columns add up to len). False means the frame is stored by rows.
 */
static bool columns_measure(datafile_writer *w, const unsigned char *data, size_t len,
                            uint32_t *ncols, uint32_t *nlines)
{
    const unsigned char *p = data, *end = data + len;
    uint32_t cols = 0, lines = 0;

    if (len == 0 || end[-1] != '\n')
        return false;
    while (p < end) {
        /* not NULL: the last byte is an LF */
        const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
        uint32_t c = 0, limit = lines == 0 ? DATAFILE_MAX_COLUMNS : cols;

        for (;;) {
            const unsigned char *tab = scan_to(p, eol, '\t');
            const unsigned char *stop = tab != NULL ? tab : eol;

            if (c == limit)
                return false;
            if (lines == 0)
                w->col_len[c] = 0;
            w->col_len[c] += (uint32_t)(stop - p) + 1;
            c++;
            p = stop + 1;
            if (tab == NULL)
                break;
        }
        /* one column is the same bytes either way: not worth a second pass */
        if (lines == 0 && c < 2)
            return false;
        if (lines > 0 && c != cols)
            return false;
        cols = c;
        lines++;
    }
    *ncols = cols;
    *nlines = lines;
    return true;
}

/* Copy the rows at data (measured by columns_measure) column-major to out:
 * column 0's values each followed by LF, then column 1's, ... */
static void columns_transpose(datafile_writer *w, const unsigned char *data, size_t len,
                              uint32_t cols, unsigned char *out)
{
    const unsigned char *p = data, *end = data + len;
    uint32_t at = 0;

    for (uint32_t c = 0; c < cols; c++) {
        w->col_at[c] = at;
        at += w->col_len[c];
    }
    while (p < end)
        for (uint32_t c = 0; c < cols; c++) {
            /* found: columns_measure saw every line hold cols fields */
            const unsigned char *stop = scan_to(p, end, c + 1 < cols ? '\t' : '\n');
            size_t n = (size_t)(stop - p);

            memcpy(out + w->col_at[c], p, n);
            out[w->col_at[c] + n] = '\n';
            w->col_at[c] += (uint32_t)n + 1;
            p = stop + 1;
        }
}

/* The payload of a compressed frame of the len raw bytes at data, into
 * w->stored: one zstd frame (ZSTD), or a layout byte and what it announces
 * (ZSTD_COLUMNS). */
static bool writer_compress(datafile_writer *w, const unsigned char *data, size_t len,
                            size_t *stored_len, pgbr_error *err)
{
    const unsigned char *src = data;
    size_t bound = ZSTD_compressBound(len), head = 0, got;
    uint32_t cols = 0, lines = 0;
    unsigned char *h;

    if (w->compression == DATAFILE_COMPRESSION_ZSTD_COLUMNS) {
        head = 1;
        if (columns_measure(w, data, len, &cols, &lines)) {
            pgbr_buf_reset(&w->columns);
            if (!pgbr_buf_reserve(&w->columns, len, err))
                return false;
            columns_transpose(w, data, len, cols, w->columns.data);
            src = w->columns.data;
            head = DATAFILE_COLUMNS_HEAD_SIZE(cols);
        }
    }
    pgbr_buf_reset(&w->stored);
    if (!pgbr_buf_reserve(&w->stored, head + bound, err))
        return false;
    h = w->stored.data;
    if (head == 1) {
        h[0] = DATAFILE_LAYOUT_ROWS;
    } else if (head > 1) {
        h[0] = DATAFILE_LAYOUT_COLUMNS;
        put_u32(h + 1, cols);
        put_u32(h + 5, lines);
        for (uint32_t c = 0; c < cols; c++)
            put_u32(h + 9 + 4 * (size_t)c, w->col_len[c]);
    }
    got = ZSTD_compress2(w->cctx, h + head, bound, src, len);
    if (w->columns.cap > DATAFILE_KEEP_CAP)
        pgbr_buf_free(&w->columns);
    if (ZSTD_isError(got))
        return pgbr_error_set(err, "XX000", "zstd compression failed: %s",
                              ZSTD_getErrorName(got));
    *stored_len = head + got;
    return true;
}

/* Write one data frame of len raw bytes holding nrows rows. */
static bool writer_flush(datafile_writer *w, const void *data, size_t len, uint64_t nrows,
                         pgbr_error *err)
{
    const void *payload = data;
    size_t stored_len = len;

    if (w->compression != DATAFILE_COMPRESSION_NONE) {
        if (!writer_compress(w, data, len, &stored_len, err))
            return false;
        payload = w->stored.data;
    }
    if (!writer_frame(w, DATAFILE_FRAME_DATA, (uint32_t)nrows, (uint32_t)len, payload,
                      (uint32_t)stored_len, err))
        return false;
    w->totals.frames++;
    w->totals.rows += nrows;
    w->totals.raw_bytes += len;
    if (w->stored.cap > DATAFILE_KEEP_CAP)
        pgbr_buf_free(&w->stored);
    return true;
}

static bool writer_flush_buffered(datafile_writer *w, pgbr_error *err)
{
    bool ok;

    if (w->raw.len == 0)
        return true;
    ok = writer_flush(w, w->raw.data, w->raw.len, w->raw_rows, err);
    pgbr_buf_reset(&w->raw);
    w->raw_rows = 0;
    if (w->raw.cap > DATAFILE_KEEP_CAP)
        pgbr_buf_free(&w->raw);
    return ok;
}

bool datafile_writer_add_rows(datafile_writer *w, const void *data, size_t len, uint64_t nrows,
                              pgbr_error *err)
{
    if (w->failed || w->finished)
        return pgbr_error_set(err, "XX000", "data file writer used after %s",
                              w->failed ? "a failure" : "finish");
    if (len == 0 && nrows == 0)
        return true;
    if (nrows > len)
        return pgbr_error_set(err, "XX000", "%" PRIu64 " rows cannot fit in %zu bytes", nrows,
                              len);
    if (len > DATAFILE_MAX_FRAME_RAW)
        return pgbr_error_set(err, "54000",
                              "a row of %zu bytes is larger than the %u bytes a data file "
                              "frame can hold", len, DATAFILE_MAX_FRAME_RAW);
    if (!writer_header(w, err))
        return false;
    if (w->raw.len > 0 && (w->raw.len + len > w->target || w->raw_rows + nrows > UINT32_MAX) &&
        !writer_flush_buffered(w, err))
        goto fail;
    if (w->raw.len == 0 && len >= w->target) {
        /* a chunk that fills a frame alone is compressed in place, not copied */
        if (!writer_flush(w, data, len, nrows, err))
            goto fail;
        return true;
    }
    if (!pgbr_buf_append(&w->raw, data, len, err))
        goto fail;
    w->raw_rows += nrows;
    if (w->raw.len >= w->target && !writer_flush_buffered(w, err))
        goto fail;
    return true;
fail:
    w->failed = true;
    return false;
}

bool datafile_writer_finish(datafile_writer *w, datafile_totals *totals, pgbr_error *err)
{
    unsigned char end[DATAFILE_END_PAYLOAD_SIZE];

    if (w->failed || w->finished)
        return pgbr_error_set(err, "XX000", "data file writer used after %s",
                              w->failed ? "a failure" : "finish");
    if (!writer_header(w, err) || !writer_flush_buffered(w, err))
        goto fail;
    put_u64(end, w->totals.frames);
    put_u64(end + 8, w->totals.rows);
    put_u64(end + 16, w->totals.raw_bytes);
    if (!writer_frame(w, DATAFILE_FRAME_END, 0, sizeof end, end, sizeof end, err))
        goto fail;
    w->finished = true;
    if (totals != NULL)
        *totals = w->totals;
    return true;
fail:
    w->failed = true;
    return false;
}

void datafile_writer_free(datafile_writer *w)
{
    if (w == NULL)
        return;
    ZSTD_freeCCtx(w->cctx);
    pgbr_buf_free(&w->raw);
    pgbr_buf_free(&w->stored);
    pgbr_buf_free(&w->columns);
    free(w);
}

/* ==== reader ==== */

typedef enum reader_state {
    READER_HEADER,
    READER_FRAME_HEADER,
    READER_PAYLOAD,
    READER_DONE,
    READER_FAILED
} reader_state;

struct datafile_reader {
    char *file_name;
    datafile_frame_fn on_frame;
    void *arg;
    reader_state state;
    unsigned char head[DATAFILE_HEADER_SIZE];   /* file or frame header being read */
    size_t head_len;
    uint8_t compression;
    /* the frame being read */
    uint64_t frame_offset;
    uint8_t type;
    uint32_t rows;
    uint32_t raw_len;
    uint32_t stored_len;
    uint32_t crc;
    pgbr_buf payload;
    pgbr_buf raw;
    pgbr_buf columns;       /* a column-major frame, decompressed */
    const unsigned char *col[DATAFILE_MAX_COLUMNS];     /* each column's next value */
    const unsigned char *col_end[DATAFILE_MAX_COLUMNS];
    ZSTD_DCtx *dctx;
    uint64_t offset;        /* bytes fed so far */
    datafile_totals totals;
};

static bool reader_corrupt(datafile_reader *r, uint64_t offset, pgbr_error *err, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

static bool reader_corrupt(datafile_reader *r, uint64_t offset, pgbr_error *err, const char *fmt,
                           ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    r->state = READER_FAILED;
    pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: %s", r->file_name, why);
    pgbr_error_detail(err, "At byte offset %" PRIu64 ".", offset);
    return false;
}

datafile_reader *datafile_reader_new(const char *file_name, datafile_frame_fn on_frame,
                                     void *arg, pgbr_error *err)
{
    datafile_reader *r = calloc(1, sizeof *r);

    if (r == NULL || (r->file_name = strdup(file_name != NULL ? file_name : "")) == NULL) {
        datafile_reader_free(r);
        pgbr_error_set(err, "53200", "out of memory creating a data file reader");
        return NULL;
    }
    r->on_frame = on_frame;
    r->arg = arg;
    return r;
}

static bool reader_header(datafile_reader *r, pgbr_error *err)
{
    const unsigned char *h = r->head;
    uint16_t version = get_u16(h + 8);

    if (memcmp(h, DATAFILE_MAGIC, 8) != 0)
        return reader_corrupt(r, 0, err, "not a pgbr data file (bad magic)");
    if (version != DATAFILE_FORMAT_VERSION)
        return reader_corrupt(r, 8, err, "unsupported data file format version %u",
                              (unsigned)version);
    if (get_u32(h + 28) != crc32c_update(0, h, 28))
        return reader_corrupt(r, 28, err, "header checksum mismatch");
    if (h[10] > DATAFILE_COMPRESSION_ZSTD_COLUMNS)
        return reader_corrupt(r, 10, err, "unknown compression %u", (unsigned)h[10]);
    if (h[11] == DATAFILE_ENCRYPTION_AES256GCM) {
        r->state = READER_FAILED;
        pgbr_error_set(err, "0A000",
                       "backup file \"%s\" is encrypted, and this version of pgbr cannot "
                       "decrypt it", r->file_name);
        return false;
    }
    if (h[11] != DATAFILE_ENCRYPTION_NONE)
        return reader_corrupt(r, 11, err, "unknown encryption %u", (unsigned)h[11]);
    if (get_u32(h + 12) != 0)
        return reader_corrupt(r, 12, err, "unknown header flags 0x%08x",
                              (unsigned)get_u32(h + 12));
    r->compression = h[10];
    if (r->compression != DATAFILE_COMPRESSION_NONE && (r->dctx = ZSTD_createDCtx()) == NULL) {
        r->state = READER_FAILED;
        return pgbr_error_set(err, "53200", "could not create a zstd decompression context");
    }
    return true;
}

/* Check a frame header before reading its payload. */
static bool reader_frame_header(datafile_reader *r, pgbr_error *err)
{
    const unsigned char *h = r->head;
    uint64_t at = r->frame_offset;
    uint64_t n = r->totals.frames;

    r->type = h[0];
    r->rows = get_u32(h + 4);
    r->raw_len = get_u32(h + 8);
    r->stored_len = get_u32(h + 12);
    r->crc = get_u32(h + 16);
    if (r->type != DATAFILE_FRAME_DATA && r->type != DATAFILE_FRAME_END)
        return reader_corrupt(r, at, err, "frame %" PRIu64 " has unknown type 0x%02x", n,
                              (unsigned)r->type);
    if (h[1] != 0 || h[2] != 0 || h[3] != 0)
        return reader_corrupt(r, at + 1, err, "frame %" PRIu64 " has nonzero reserved bytes", n);
    if (r->type == DATAFILE_FRAME_END) {
        if (r->rows != 0 || r->raw_len != DATAFILE_END_PAYLOAD_SIZE ||
            r->stored_len != DATAFILE_END_PAYLOAD_SIZE)
            return reader_corrupt(r, at, err, "end frame has wrong lengths");
        return true;
    }
    if (r->raw_len == 0 || r->raw_len > DATAFILE_MAX_FRAME_RAW)
        return reader_corrupt(r, at + 8, err,
                              "frame %" PRIu64 " raw length %" PRIu32 " is out of range", n,
                              r->raw_len);
    if (r->rows > r->raw_len)
        return reader_corrupt(r, at + 4, err,
                              "frame %" PRIu64 " claims %" PRIu32 " rows in %" PRIu32 " bytes",
                              n, r->rows, r->raw_len);
    /* zstd blocks decode to at most 128 KiB from at least 4 bytes: a frame
     * claiming more than 32768:1 is forged, and is refused before the raw
     * buffer is allocated from its length */
    if (r->stored_len == 0 || r->stored_len > max_stored_len(r->compression, r->raw_len) ||
        (uint64_t)r->raw_len > (uint64_t)r->stored_len * DATAFILE_ZSTD_MAX_RATIO ||
        (r->compression == DATAFILE_COMPRESSION_NONE && r->stored_len != r->raw_len))
        return reader_corrupt(r, at + 12, err,
                              "frame %" PRIu64 " stored length %" PRIu32
                              " is impossible for raw length %" PRIu32, n, r->stored_len,
                              r->raw_len);
    return true;
}

static bool reader_end_frame(datafile_reader *r, const unsigned char *p, pgbr_error *err)
{
    uint64_t frames = get_u64(p), rows = get_u64(p + 8), raw = get_u64(p + 16);
    uint64_t at = r->frame_offset + DATAFILE_FRAME_HEADER_SIZE;

    if (frames != r->totals.frames)
        return reader_corrupt(r, at, err,
                              "end frame records %" PRIu64 " frames but %" PRIu64 " were read",
                              frames, r->totals.frames);
    if (rows != r->totals.rows)
        return reader_corrupt(r, at + 8, err,
                              "end frame records %" PRIu64 " rows but %" PRIu64 " were read",
                              rows, r->totals.rows);
    if (raw != r->totals.raw_bytes)
        return reader_corrupt(r, at + 16, err,
                              "end frame records %" PRIu64 " bytes but %" PRIu64 " were read",
                              raw, r->totals.raw_bytes);
    r->state = READER_DONE;
    return true;
}

/* Decompress the zstd frame of len bytes at src (file offset at) into buf,
 * which then holds exactly the frame's raw length. */
static bool reader_zstd(datafile_reader *r, const unsigned char *src, size_t len, pgbr_buf *buf,
                        uint64_t at, pgbr_error *err)
{
    uint64_t n = r->totals.frames;
    unsigned long long content = ZSTD_getFrameContentSize(src, len);
    size_t got;

    /* checked before allocating: the raw length must be what zstd says, and
     * possible from that many compressed bytes */
    if (content != r->raw_len || (uint64_t)r->raw_len > (uint64_t)len * DATAFILE_ZSTD_MAX_RATIO)
        return reader_corrupt(r, at, err,
                              "frame %" PRIu64 " does not hold a zstd frame of %" PRIu32
                              " bytes", n, r->raw_len);
    pgbr_buf_reset(buf);
    if (!pgbr_buf_reserve(buf, r->raw_len, err)) {
        r->state = READER_FAILED;
        return false;
    }
    got = ZSTD_decompressDCtx(r->dctx, buf->data, r->raw_len, src, len);
    if (ZSTD_isError(got))
        return reader_corrupt(r, at, err, "frame %" PRIu64 ": zstd: %s", n,
                              ZSTD_getErrorName(got));
    if (got != r->raw_len)
        return reader_corrupt(r, at, err,
                              "frame %" PRIu64 " decompresses to %zu bytes, not %" PRIu32, n,
                              got, r->raw_len);
    buf->len = got;
    return true;
}

/*
 * Rebuild the rows of a column-major frame into r->raw from r->columns
 * (raw_len bytes): row by row, each column's next value up to its LF, ended
 * by TAB (LF after the last column). lens holds the cols checked column
 * lengths (adding up to raw_len); each value is searched for only up to its
 * column's end, so no lie can reach past a column or the output.
 */
static bool reader_rebuild(datafile_reader *r, uint32_t cols, uint32_t lines,
                           const unsigned char *lens, uint64_t at, pgbr_error *err)
{
    uint64_t n = r->totals.frames;
    const unsigned char *src = r->columns.data;
    unsigned char *out;

    pgbr_buf_reset(&r->raw);
    if (!pgbr_buf_reserve(&r->raw, r->raw_len, err)) {
        r->state = READER_FAILED;
        return false;
    }
    out = r->raw.data;
    for (uint32_t c = 0; c < cols; c++) {
        r->col[c] = src;
        src += get_u32(lens + 4 * (size_t)c);
        r->col_end[c] = src;
    }
    for (uint32_t line = 0; line < lines; line++)
        for (uint32_t c = 0; c < cols; c++) {
            const unsigned char *v = r->col[c];
            const unsigned char *stop = scan_to(v, r->col_end[c], '\n');
            size_t len;

            if (stop == NULL)
                return reader_corrupt(r, at, err,
                                      "frame %" PRIu64 " column %" PRIu32 " ends before line %"
                                      PRIu32 " of %" PRIu32, n, c + 1, line + 1, lines);
            len = (size_t)(stop - v);
            memcpy(out, v, len);
            out[len] = c + 1 < cols ? '\t' : '\n';
            out += len + 1;
            r->col[c] = stop + 1;
        }
    /* every column fully used is the same as the rows filling raw_len */
    if ((size_t)(out - r->raw.data) != r->raw_len)
        return reader_corrupt(r, at, err,
                              "frame %" PRIu64 " rebuilds to %zu bytes, not %" PRIu32
                              " (a column holds more than %" PRIu32 " values)", n,
                              (size_t)(out - r->raw.data), r->raw_len, lines);
    r->raw.len = r->raw_len;
    return true;
}

/* Decode the payload p of a ZSTD_COLUMNS data frame (file offset at) into
 * r->raw: its layout byte, then rows or columns. */
static bool reader_layout(datafile_reader *r, const unsigned char *p, uint64_t at,
                          pgbr_error *err)
{
    uint64_t n = r->totals.frames, sum = 0;
    uint32_t cols, lines;
    size_t head;

    if (p[0] == DATAFILE_LAYOUT_ROWS)
        return reader_zstd(r, p + 1, r->stored_len - 1, &r->raw, at + 1, err);
    if (p[0] != DATAFILE_LAYOUT_COLUMNS)
        return reader_corrupt(r, at, err, "frame %" PRIu64 " has unknown layout %u", n,
                              (unsigned)p[0]);
    if (r->stored_len < DATAFILE_COLUMNS_HEAD_SIZE(0))
        return reader_corrupt(r, at, err, "frame %" PRIu64 " ends inside its column header", n);
    cols = get_u32(p + 1);
    lines = get_u32(p + 5);
    if (cols == 0 || cols > DATAFILE_MAX_COLUMNS)
        return reader_corrupt(r, at + 1, err,
                              "frame %" PRIu64 " has %" PRIu32 " columns (1 to %d allowed)", n,
                              cols, DATAFILE_MAX_COLUMNS);
    head = DATAFILE_COLUMNS_HEAD_SIZE(cols);
    if (r->stored_len <= head)
        return reader_corrupt(r, at, err, "frame %" PRIu64 " ends inside its column header", n);
    /* each value takes at least its terminator */
    if (lines == 0 || (uint64_t)cols * lines > r->raw_len)
        return reader_corrupt(r, at + 5, err,
                              "frame %" PRIu64 " claims %" PRIu32 " lines of %" PRIu32
                              " columns in %" PRIu32 " bytes", n, lines, cols, r->raw_len);
    for (uint32_t c = 0; c < cols; c++) {
        uint32_t len = get_u32(p + 9 + 4 * (size_t)c);

        if (len < lines)
            return reader_corrupt(r, at + 9 + 4 * (uint64_t)c, err,
                                  "frame %" PRIu64 " column %" PRIu32 " has %" PRIu32
                                  " bytes for %" PRIu32 " values", n, c + 1, len, lines);
        sum += len;
    }
    if (sum != r->raw_len)
        return reader_corrupt(r, at + 9, err,
                              "frame %" PRIu64 " column lengths add up to %" PRIu64
                              " bytes, not %" PRIu32, n, sum, r->raw_len);
    if (!reader_zstd(r, p + head, r->stored_len - head, &r->columns, at + head, err))
        return false;
    return reader_rebuild(r, cols, lines, p + 9, at + head, err);
}

/* The whole payload of the current frame is at p: check, decode, deliver. */
static bool reader_frame(datafile_reader *r, const unsigned char *p, pgbr_error *err)
{
    uint64_t at = r->frame_offset, n = r->totals.frames;
    const void *rows = p;

    if (frame_crc(n, r->head, p, r->stored_len) != r->crc)
        return reader_corrupt(r, at + 16, err, "frame %" PRIu64 " checksum mismatch", n);
    if (r->type == DATAFILE_FRAME_END)
        return reader_end_frame(r, p, err);
    if (r->compression == DATAFILE_COMPRESSION_ZSTD) {
        if (!reader_zstd(r, p, r->stored_len, &r->raw, at + 20, err))
            return false;
        rows = r->raw.data;
    } else if (r->compression == DATAFILE_COMPRESSION_ZSTD_COLUMNS) {
        if (!reader_layout(r, p, at + 20, err))
            return false;
        rows = r->raw.data;
    }
    if (r->on_frame != NULL && !r->on_frame(r->arg, n, rows, r->raw_len, r->rows, err)) {
        r->state = READER_FAILED;
        return false;
    }
    r->totals.frames++;
    r->totals.rows += r->rows;
    r->totals.raw_bytes += r->raw_len;
    if (r->raw.cap > DATAFILE_KEEP_CAP)
        pgbr_buf_free(&r->raw);
    if (r->columns.cap > DATAFILE_KEEP_CAP)
        pgbr_buf_free(&r->columns);
    return true;
}

bool datafile_reader_feed(datafile_reader *r, const void *data, size_t len, pgbr_error *err)
{
    const unsigned char *p = data;

    while (len > 0) {
        size_t want, take;

        switch (r->state) {
        case READER_HEADER:
        case READER_FRAME_HEADER:
            want = r->state == READER_HEADER ? DATAFILE_HEADER_SIZE : DATAFILE_FRAME_HEADER_SIZE;
            if (r->head_len == 0)
                r->frame_offset = r->offset;
            take = want - r->head_len < len ? want - r->head_len : len;
            memcpy(r->head + r->head_len, p, take);
            r->head_len += take;
            r->offset += take;
            p += take;
            len -= take;
            if (r->head_len < want)
                break;
            r->head_len = 0;
            if (r->state == READER_HEADER) {
                if (!reader_header(r, err))
                    return false;
                r->state = READER_FRAME_HEADER;
                break;
            }
            if (!reader_frame_header(r, err))
                return false;
            pgbr_buf_reset(&r->payload);
            r->state = READER_PAYLOAD;
            break;
        case READER_PAYLOAD:
            if (r->payload.len == 0 && len >= r->stored_len) {
                /* the whole payload is in the input: use it in place */
                take = r->stored_len;
                r->offset += take;
                if (!reader_frame(r, p, err))
                    return false;
            } else {
                take = r->stored_len - r->payload.len < len ? r->stored_len - r->payload.len
                                                            : len;
                if (!pgbr_buf_append(&r->payload, p, take, err)) {
                    r->state = READER_FAILED;
                    return false;
                }
                r->offset += take;
                if (r->payload.len < r->stored_len) {
                    len -= take;
                    p += take;
                    break;
                }
                if (!reader_frame(r, r->payload.data, err))
                    return false;
                pgbr_buf_reset(&r->payload);
                if (r->payload.cap > DATAFILE_KEEP_CAP)
                    pgbr_buf_free(&r->payload);
            }
            p += take;
            len -= take;
            if (r->state == READER_PAYLOAD)
                r->state = READER_FRAME_HEADER;
            break;
        case READER_DONE:
            return reader_corrupt(r, r->offset, err, "unexpected data after the end frame");
        case READER_FAILED:
            return pgbr_error_set(err, "XX000", "data file reader used after a failure");
        }
    }
    return true;
}

bool datafile_reader_sink(void *reader, const void *data, size_t len, pgbr_error *err)
{
    return datafile_reader_feed(reader, data, len, err);
}

bool datafile_reader_finish(datafile_reader *r, datafile_totals *totals, pgbr_error *err)
{
    uint64_t at = r->offset;

    switch (r->state) {
    case READER_DONE:
        r->totals.stored_bytes = r->offset;
        if (totals != NULL)
            *totals = r->totals;
        return true;
    case READER_FAILED:
        return pgbr_error_set(err, "XX000", "data file reader used after a failure");
    case READER_HEADER:
        if (at == 0)
            return reader_corrupt(r, at, err, "file is empty");
        return reader_corrupt(r, at, err, "file ends inside its header");
    case READER_FRAME_HEADER:
        if (r->head_len == 0)
            return reader_corrupt(r, at, err,
                                  "file ends after frame %" PRIu64 " without an end frame",
                                  r->totals.frames);
        return reader_corrupt(r, at, err, "file ends inside the header of frame %" PRIu64,
                              r->totals.frames);
    case READER_PAYLOAD:
        break;
    }
    return reader_corrupt(r, at, err, "file ends inside frame %" PRIu64 " (%zu of %" PRIu32
                          " bytes)", r->totals.frames, r->payload.len, r->stored_len);
}

void datafile_reader_free(datafile_reader *r)
{
    if (r == NULL)
        return;
    ZSTD_freeDCtx(r->dctx);
    pgbr_buf_free(&r->payload);
    pgbr_buf_free(&r->raw);
    pgbr_buf_free(&r->columns);
    free(r->file_name);
    free(r);
}
