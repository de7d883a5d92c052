/*
 * result.h - result sets the executor builds and the proxy serialises into
 * RowDescription / DataRow / CommandComplete. Values are kept in PostgreSQL
 * text format; NULL pointers are SQL NULLs. Owned by whoever created them;
 * result_set_free() frees everything. Not thread-safe: one owner at a time
 * (a worker builds one, then hands it to the loop thread).
 */
#ifndef PGBR_RESULT_H
#define PGBR_RESULT_H

#include <stdbool.h>
#include <stdint.h>

/* PostgreSQL type OIDs used on the wire (pg_type.dat). */
#define PGBR_OID_BOOL 16
#define PGBR_OID_INT8 20
#define PGBR_OID_INT4 23
#define PGBR_OID_TEXT 25
#define PGBR_OID_FLOAT8 701
#define PGBR_OID_TEXT_ARRAY 1009
#define PGBR_OID_TIMESTAMPTZ 1184
#define PGBR_OID_JSONB 3802

typedef struct result_column {
    char *name;
    uint32_t type_oid;
} result_column;

typedef struct result_set {
    int ncols;
    result_column *cols;
    int nrows;
    int rows_cap;
    char **values;          /* nrows * ncols, row-major; NULL = SQL NULL */
    bool has_rows;          /* false: a statement that returns no rows (NoData) */
    char *command_tag;      /* e.g. "SHOW JOBS 3", "PAUSE JOBS 1" */
} result_set;

/* A result set with the given columns and no rows. Copies names. */
result_set *result_set_new(int ncols, const char *const *names, const uint32_t *type_oids);
/* A result set for a statement that returns no rows, only a command tag. */
result_set *result_set_new_tag_only(const char *command_tag);
/* Append one row; values are copied (NULL entries stay NULL). */
void result_set_add_row(result_set *rs, const char *const *values);
/* Set the command tag (printf-style). */
void result_set_set_tag(result_set *rs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *result_set_value(const result_set *rs, int row, int col);
void result_set_free(result_set *rs);

#endif
