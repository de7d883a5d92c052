/*
 * buf.c - the growable byte buffer of the byte pipeline (see
 * include/pgbr/buf.h). Filters, the data file writer and reader, and tests
 * use it to hold one frame or one output block at a time.
 */
#include "pgbr/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 4096

bool pgbr_buf_reserve(pgbr_buf *buf, size_t extra, pgbr_error *err)
{
    size_t need, cap;
    unsigned char *p;

    if (extra > SIZE_MAX - buf->len)
        return pgbr_error_set(err, "54000", "buffer size overflow");
    need = buf->len + extra;
    if (need <= buf->cap)
        return true;
    cap = buf->cap < BUF_MIN_CAP ? BUF_MIN_CAP : buf->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(buf->data, cap);
    if (p == NULL)
        return pgbr_error_set(err, "53200", "out of memory allocating a buffer of %zu bytes", cap);
    buf->data = p;
    buf->cap = cap;
    return true;
}

bool pgbr_buf_append(pgbr_buf *buf, const void *data, size_t len, pgbr_error *err)
{
    if (len == 0)
        return true;
    if (!pgbr_buf_reserve(buf, len, err))
        return false;
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    return true;
}

bool pgbr_buf_sink(void *buf, const void *data, size_t len, pgbr_error *err)
{
    return pgbr_buf_append(buf, data, len, err);
}

void pgbr_buf_reset(pgbr_buf *buf)
{
    buf->len = 0;
}

void pgbr_buf_free(pgbr_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}
