/*
 * buf.h - a minimal growable byte buffer for the byte pipeline (filters, data
 * files, manifests).
 *
 * A pgbr_buf owns its memory; pgbr_buf_free() releases it. Growth doubles the
 * capacity, so appending n bytes costs amortised O(n). Failures (out of memory,
 * size overflow) fill the caller's pgbr_error (53200 / 54000) and leave the
 * buffer unchanged. Not thread-safe: one owner at a time.
 */
#ifndef PGBR_BUF_H
#define PGBR_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "pgbr/error.h"

typedef struct pgbr_buf {
    unsigned char *data;    /* NULL until the first reserve/append */
    size_t len;             /* bytes in use */
    size_t cap;             /* bytes allocated */
} pgbr_buf;

#define PGBR_BUF_INIT { NULL, 0, 0 }

/* Make room for `extra` more bytes after len (cap >= len + extra). */
bool pgbr_buf_reserve(pgbr_buf *buf, size_t extra, pgbr_error *err);
/* Append len bytes (len 0 is a no-op; data may be NULL then). */
bool pgbr_buf_append(pgbr_buf *buf, const void *data, size_t len, pgbr_error *err);
/* A filter_sink_fn that appends to the pgbr_buf passed as arg. */
bool pgbr_buf_sink(void *buf, const void *data, size_t len, pgbr_error *err);
/* Forget the contents but keep the memory. */
void pgbr_buf_reset(pgbr_buf *buf);
/* Release the memory; the buffer is empty and reusable afterwards. */
void pgbr_buf_free(pgbr_buf *buf);

#endif
