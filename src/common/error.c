/*
 * error.c - pgbr_error helpers (see include/pgbr/error.h).
 */
#include "pgbr/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *vformat(const char *fmt, va_list ap)
{
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0)
        return NULL;
    return out;
}

bool pgbr_error_set(pgbr_error *err, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return false;
    pgbr_error_clear(err);
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", sqlstate);
    va_start(ap, fmt);
    err->message = vformat(fmt, ap);
    va_end(ap);
    if (err->message == NULL)
        err->message = strdup("out of memory");
    return false;
}

void pgbr_error_detail(pgbr_error *err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    free(err->detail);
    va_start(ap, fmt);
    err->detail = vformat(fmt, ap);
    va_end(ap);
}

void pgbr_error_hint(pgbr_error *err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    free(err->hint);
    va_start(ap, fmt);
    err->hint = vformat(fmt, ap);
    va_end(ap);
}

bool pgbr_error_is_set(const pgbr_error *err)
{
    return err != NULL && err->message != NULL;
}

void pgbr_error_clear(pgbr_error *err)
{
    if (err == NULL)
        return;
    free(err->message);
    free(err->detail);
    free(err->hint);
    memset(err, 0, sizeof *err);
}

void pgbr_error_move(pgbr_error *dst, pgbr_error *src)
{
    pgbr_error_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}
