/*
 * datafile.h - the data file format of a backup (docs/format.md): a 32-byte
 * header, then frames each holding a whole number of COPY rows (zstd
 * compressed; AES-256-GCM encrypted once encryption lands), then an end frame
 * with the totals so truncation is detected.
 *
 * Compression is chosen per file (header byte 10): NONE stores the rows as
 * they are, ZSTD stores each frame's rows as one zstd frame, ZSTD_COLUMNS
 * (the default) gives each frame's payload a layout byte and stores the frame
 * either column-major or by rows:
 *
 *   rows     u8 0, then one zstd frame of the raw rows
 *   columns  u8 1, u32 columns C, u32 lines L, C x u32 column lengths (the
 *            bytes of its L values and their LFs), then one zstd frame of
 *            raw-length bytes: the L values of column 0, each followed by
 *            LF, then the L values of column 1, ...
 *
 * The writer splits a frame's raw bytes at TAB and LF (COPY text escapes both
 * inside values, so the split is exact) and stores it by columns when every
 * line has the same number (2 .. DATAFILE_MAX_COLUMNS) of fields and the last
 * line ends with LF; any other frame (binary COPY bytes, one column, ...) is
 * stored by rows. Each value keeps one terminator byte, so the column-major
 * bytes are exactly as long as the rows; the reader transposes them back to
 * the very same bytes, so what it hands on never depends on the layout.
 *
 * The writer is fed row-aligned chunks of COPY data and emits the file's bytes
 * to a filter_sink_fn (typically a filter chain: sha256 -> count -> storage).
 * It never splits a chunk: a frame is cut before a chunk that would take it
 * past the frame target (1 MiB of raw rows by default), so a frame holds at
 * most max(target, largest chunk) raw bytes; pass rows (or small batches of
 * rows) per call. Its memory is one raw frame, one compressed frame and, for
 * ZSTD_COLUMNS, one more raw frame for the transposition.
 *
 * The reader is fed the file's bytes in pieces of any size and calls back
 * once per frame with that frame's decompressed rows, so a restore can hand
 * whole rows to COPY FROM frame by frame. Its memory is one stored frame plus
 * one raw frame (two for a column-major frame). Every length and count in the
 * file is hostile: any malformation fails with SQLSTATE XX001 `backup file
 * "<name>" is corrupted: <why>`, with the byte offset in the DETAIL. It reads
 * every compression above, so files written before ZSTD_COLUMNS still read.
 *
 * Not thread-safe: a writer or reader belongs to one thread (a worker job).
 */
#ifndef PGBR_DATAFILE_H
#define PGBR_DATAFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/filter.h"

#define DATAFILE_MAGIC "PGBRDAT"            /* 8 bytes with its NUL */
#define DATAFILE_FORMAT_VERSION 1
#define DATAFILE_HEADER_SIZE 32
#define DATAFILE_FRAME_HEADER_SIZE 20
#define DATAFILE_FRAME_DATA 'D'
#define DATAFILE_FRAME_END 'E'
#define DATAFILE_END_PAYLOAD_SIZE 24        /* u64 frames, u64 rows, u64 raw bytes */
/* Room an encrypted frame's payload takes beyond the ciphertext. */
#define DATAFILE_NONCE_SIZE 12
#define DATAFILE_TAG_SIZE 16
#define DATAFILE_FILE_ID_SIZE 12

/* Default raw bytes per frame; the writer cuts frames at about this size. */
#define DATAFILE_FRAME_TARGET (1024 * 1024)
/* Largest raw frame: one COPY row is at most 1 GB (PostgreSQL's MaxAllocSize). */
#define DATAFILE_MAX_FRAME_RAW (1024u * 1024u * 1024u)

typedef enum datafile_compression {
    DATAFILE_COMPRESSION_NONE = 0,
    DATAFILE_COMPRESSION_ZSTD = 1,
    DATAFILE_COMPRESSION_ZSTD_COLUMNS = 2   /* per frame: column-major or rows, then zstd */
} datafile_compression;

/* A ZSTD_COLUMNS frame's layout: the first byte of its payload. */
#define DATAFILE_LAYOUT_ROWS 0
#define DATAFILE_LAYOUT_COLUMNS 1
/* Bytes before the zstd frame of a column-major payload of c columns. */
#define DATAFILE_COLUMNS_HEAD_SIZE(c) (9 + 4 * (size_t)(c))
/* The most columns a column-major frame has: PostgreSQL's
 * MaxTupleAttributeNumber, the widest row COPY can produce. */
#define DATAFILE_MAX_COLUMNS 1664

typedef enum datafile_encryption {
    DATAFILE_ENCRYPTION_NONE = 0,
    DATAFILE_ENCRYPTION_AES256GCM = 1   /* reserved: layout defined, not implemented */
} datafile_encryption;

/* What a finished file holds. stored_bytes is the file size. */
typedef struct datafile_totals {
    uint64_t frames;        /* data frames (the end frame not counted) */
    uint64_t rows;
    uint64_t raw_bytes;     /* uncompressed COPY bytes */
    uint64_t stored_bytes;  /* header + frames + end frame, as written */
} datafile_totals;

/* ---- writer ---- */

typedef struct datafile_writer_options {
    datafile_compression compression;   /* a zeroed struct means NONE: start from the macro */
    int zstd_level;                     /* 0: FILTER_ZSTD_LEVEL_DEFAULT (1) */
    size_t frame_target;                /* 0: DATAFILE_FRAME_TARGET */
} datafile_writer_options;

/* The defaults: column-major zstd level 1, 1 MiB frames (what opts == NULL
 * means). */
#define DATAFILE_WRITER_OPTIONS_DEFAULT { DATAFILE_COMPRESSION_ZSTD_COLUMNS, 0, 0 }

typedef struct datafile_writer datafile_writer;

/*
 * A writer emitting to sink(sink_arg, ...). opts may be NULL (column-major
 * zstd level 1, 1 MiB frames). The header is emitted with the first chunk or
 * at finish. NULL with err set on bad options (22023) or out of memory.
 */
datafile_writer *datafile_writer_new(filter_sink_fn sink, void *sink_arg,
                                     const datafile_writer_options *opts, pgbr_error *err);
/*
 * Add len bytes holding nrows whole rows (len 0 is a no-op; nrows may be 0
 * for bytes that are not rows, e.g. the binary COPY header). The chunk is
 * copied or consumed before returning. A chunk larger than
 * DATAFILE_MAX_FRAME_RAW gives 54000. Errors from the sink are passed on.
 */
bool datafile_writer_add_rows(datafile_writer *w, const void *data, size_t len, uint64_t nrows,
                              pgbr_error *err);
/* Flush the last frame and write the end frame. totals may be NULL. */
bool datafile_writer_finish(datafile_writer *w, datafile_totals *totals, pgbr_error *err);
/* Free a writer (finished or not; an unfinished file is simply incomplete). */
void datafile_writer_free(datafile_writer *w);

/* ---- reader ---- */

/*
 * Called once per data frame with its rows: data/len are valid only during the
 * call and hold nrows whole rows. index counts data frames from 0. Return
 * false with err set to stop reading (the error is passed on unchanged).
 */
typedef bool (*datafile_frame_fn)(void *arg, uint64_t index, const void *data, size_t len,
                                  uint64_t nrows, pgbr_error *err);

typedef struct datafile_reader datafile_reader;

/* A reader of the file named file_name (copied; used in error messages). */
datafile_reader *datafile_reader_new(const char *file_name, datafile_frame_fn on_frame,
                                     void *arg, pgbr_error *err);
/* Feed the next len bytes of the file. Fails on the first malformation. */
bool datafile_reader_feed(datafile_reader *r, const void *data, size_t len, pgbr_error *err);
/* datafile_reader_feed with a void * reader: a filter_sink_fn, so a reader can
 * be the sink of a filter chain (storage -> sha256 -> reader). */
bool datafile_reader_sink(void *reader, const void *data, size_t len, pgbr_error *err);
/* End of the file: fails unless the end frame was read and matched every total.
 * totals (may be NULL) receives what was read. */
bool datafile_reader_finish(datafile_reader *r, datafile_totals *totals, pgbr_error *err);
/* Free a reader, finished or not. NULL is a no-op. */
void datafile_reader_free(datafile_reader *r);

#endif
