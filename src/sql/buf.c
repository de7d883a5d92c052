/*
 * buf.c - a growable text buffer for deparse and dump, with SQL quoting of
 * string literals and identifiers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_int.h"

void
sql_buf_init(sql_buf *buf)
{
    buf->cap = 128;
    buf->len = 0;
    buf->data = malloc(buf->cap);
    buf->failed = buf->data == NULL;
    if (buf->data != NULL)
        buf->data[0] = '\0';
}

static bool
buf_reserve(sql_buf *buf, size_t extra)
{
    size_t cap = buf->cap;
    char *p;

    if (buf->failed)
        return false;
    if (buf->len + extra + 1 <= cap)
        return true;
    while (buf->len + extra + 1 > cap)
        cap *= 2;
    p = realloc(buf->data, cap);
    if (p == NULL) {
        buf->failed = true;
        return false;
    }
    buf->data = p;
    buf->cap = cap;
    return true;
}

void
sql_buf_append_n(sql_buf *buf, const char *s, size_t n)
{
    if (!buf_reserve(buf, n))
        return;
    memcpy(buf->data + buf->len, s, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
}

void
sql_buf_append(sql_buf *buf, const char *s)
{
    sql_buf_append_n(buf, s, strlen(s));
}

void
sql_buf_printf(sql_buf *buf, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(buf, (size_t) n))
        return;
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t) n;
}

char *
sql_buf_finish(sql_buf *buf)
{
    char *data = buf->data;

    if (buf->failed) {
        free(data);
        data = NULL;
    }
    buf->data = NULL;
    buf->len = buf->cap = 0;
    return data;
}

void
sql_buf_quote_literal(sql_buf *buf, const char *s)
{
    sql_buf_append_n(buf, "'", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\'')
            sql_buf_append_n(buf, "'", 1);
        sql_buf_append_n(buf, p, 1);
    }
    sql_buf_append_n(buf, "'", 1);
}

void
sql_buf_quote_ident(sql_buf *buf, const char *s)
{
    if (!sql_ident_needs_quotes(s)) {
        sql_buf_append(buf, s);
        return;
    }
    sql_buf_append_n(buf, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"')
            sql_buf_append_n(buf, "\"", 1);
        sql_buf_append_n(buf, p, 1);
    }
    sql_buf_append_n(buf, "\"", 1);
}
