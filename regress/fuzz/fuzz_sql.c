/*
 * fuzz_sql.c - libFuzzer target for the statement splitter and grammar:
 * arbitrary bytes as a query string. Checks that splitting never produces
 * spans outside the input, that sql_maybe_ours has no false negatives, and
 * that every statement that parses deparses to text that parses again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size + 1);
    sql_span *spans = NULL;
    int n = 0;
    memcpy(q, data, size);
    q[size] = '\0';
    size = strlen(q);
    sql_split(q, size, &spans, &n);
    for (int i = 0; i < n; i++) {
        pgbr_error err = PGBR_ERROR_INIT;
        sql_stmt *st;
        if (spans[i].start > spans[i].end || spans[i].end > size)
            abort();
        if (spans[i].kind != SQL_SPAN_OURS)
            continue;
        if (!sql_maybe_ours(q, size))
            abort();
        st = sql_parse(q + spans[i].start, spans[i].end - spans[i].start, 0, &err);
        if (st != NULL) {
            char *text = sql_stmt_deparse(st, false);
            char *red = sql_stmt_deparse(st, true);
            sql_stmt *again = text ? sql_parse(text, strlen(text), 0, &err) : NULL;
            if (text != NULL && again == NULL)
                abort();
            sql_stmt_free(again);
            free(text);
            free(red);
            sql_stmt_free(st);
        }
        pgbr_error_clear(&err);
    }
    free(spans);
    free(q);
    return 0;
}
