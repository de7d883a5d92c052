/*
 * result.c - result sets (see include/pgbr/result.h).
 *
 * A result set is a flat, row-major array of text values plus the column
 * descriptions and the command tag. The executor builds one (usually on a
 * worker thread), then hands it to the loop thread, which serialises it into
 * RowDescription / DataRow / CommandComplete. Allocation failures abort: a
 * half-built result set would send the client wrong rows, which is worse.
 */
#include "pgbr/result.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/log.h"

static void *result_xalloc(void *p)
{
    if (p == NULL) {
        log_write(LOG_LEVEL_FATAL, "out of memory building a result set");
        abort();
    }
    return p;
}

static char *result_xstrdup(const char *s)
{
    return s == NULL ? NULL : result_xalloc(strdup(s));
}

result_set *result_set_new(int ncols, const char *const *names, const uint32_t *type_oids)
{
    result_set *rs = result_xalloc(calloc(1, sizeof *rs));

    rs->has_rows = true;
    rs->ncols = ncols < 0 ? 0 : ncols;
    if (rs->ncols > 0) {
        rs->cols = result_xalloc(calloc((size_t)rs->ncols, sizeof *rs->cols));
        for (int i = 0; i < rs->ncols; i++) {
            rs->cols[i].name = result_xstrdup(names[i] != NULL ? names[i] : "?column?");
            rs->cols[i].type_oid = type_oids != NULL ? type_oids[i] : PGBR_OID_TEXT;
        }
    }
    return rs;
}

result_set *result_set_new_tag_only(const char *command_tag)
{
    result_set *rs = result_xalloc(calloc(1, sizeof *rs));

    rs->has_rows = false;
    rs->command_tag = result_xstrdup(command_tag);
    return rs;
}

void result_set_add_row(result_set *rs, const char *const *values)
{
    size_t base;

    if (rs->nrows == rs->rows_cap) {
        int cap = rs->rows_cap == 0 ? 8 : rs->rows_cap * 2;
        size_t cells = (size_t)cap * (size_t)(rs->ncols > 0 ? rs->ncols : 1);
        rs->values = result_xalloc(realloc(rs->values, cells * sizeof *rs->values));
        rs->rows_cap = cap;
    }
    base = (size_t)rs->nrows * (size_t)rs->ncols;
    for (int c = 0; c < rs->ncols; c++)
        rs->values[base + (size_t)c] = result_xstrdup(values != NULL ? values[c] : NULL);
    rs->nrows++;
}

void result_set_set_tag(result_set *rs, const char *fmt, ...)
{
    va_list ap;
    char *tag = NULL;

    va_start(ap, fmt);
    if (vasprintf(&tag, fmt, ap) < 0)
        tag = NULL;
    va_end(ap);
    free(rs->command_tag);
    rs->command_tag = result_xalloc(tag);
}

const char *result_set_value(const result_set *rs, int row, int col)
{
    if (rs == NULL || row < 0 || row >= rs->nrows || col < 0 || col >= rs->ncols)
        return NULL;
    return rs->values[(size_t)row * (size_t)rs->ncols + (size_t)col];
}

void result_set_free(result_set *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < (size_t)rs->nrows * (size_t)rs->ncols; i++)
        free(rs->values[i]);
    free(rs->values);
    for (int c = 0; c < rs->ncols; c++)
        free(rs->cols[c].name);
    free(rs->cols);
    free(rs->command_tag);
    free(rs);
}
