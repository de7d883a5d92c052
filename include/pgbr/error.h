/*
 * error.h - the caller-owned error report every fallible pgbr function fills.
 *
 * Functions return bool/int status and, on failure, fill a pgbr_error with a
 * SQLSTATE a driver can branch on, a message in PostgreSQL's style (lower-case
 * first word, no trailing period), an optional detail and hint, and for syntax
 * errors a 1-based character position into the statement (ErrorResponse 'P').
 * Thread-agnostic: a pgbr_error belongs to whoever declared it.
 */
#ifndef PGBR_ERROR_H
#define PGBR_ERROR_H

#include <stdbool.h>

typedef struct pgbr_error {
    char sqlstate[6];   /* "" while no error is set */
    char *message;      /* malloc'd, NULL while no error is set */
    char *detail;       /* malloc'd or NULL */
    char *hint;         /* malloc'd or NULL */
    int position;       /* 1-based character position in the query, 0 = none */
} pgbr_error;

#define PGBR_ERROR_INIT { "", NULL, NULL, NULL, 0 }

/* Set code and message (printf-style). Replaces any earlier error. Returns false
 * so callers can write `return pgbr_error_set(...)`. */
bool pgbr_error_set(pgbr_error *err, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Add or replace the detail / hint of an error already set. */
void pgbr_error_detail(pgbr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pgbr_error_hint(pgbr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when an error is set. */
bool pgbr_error_is_set(const pgbr_error *err);
/* Free the strings and reset to the empty state. */
void pgbr_error_clear(pgbr_error *err);
/* Move src into dst (dst cleared first, src left empty). */
void pgbr_error_move(pgbr_error *dst, pgbr_error *src);

#endif
