/*
 * sql_int.h - internals shared by the files of src/sql: the parse arena,
 * a growable text buffer, quoting, and the tree walkers behind
 * sql_stmt_copy/free/deparse/dump. Not for other modules: they use
 * include/pgbr/sql.h.
 */
#ifndef PGBR_SQL_INT_H
#define PGBR_SQL_INT_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>

#include "gram.h"

/*
 * The arena every allocation of one parse comes from, freed as a whole.
 * Allocation failure longjmps to *oom (sql_parse sets it up): the grammar's
 * actions never see NULL.
 */
typedef struct sql_arena sql_arena;

sql_arena *sql_arena_create(jmp_buf *oom);
void sql_arena_destroy(sql_arena *arena);
void *sql_arena_alloc(sql_arena *arena, size_t size);

/* A growable NUL-terminated text; after a failed allocation it stays failed. */
typedef struct sql_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} sql_buf;

void sql_buf_init(sql_buf *buf);
void sql_buf_append(sql_buf *buf, const char *s);
void sql_buf_append_n(sql_buf *buf, const char *s, size_t n);
void sql_buf_printf(sql_buf *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand over the text (malloc'd), or NULL if an allocation failed. */
char *sql_buf_finish(sql_buf *buf);
/* 'text' with quotes doubled */
void sql_buf_quote_literal(sql_buf *buf, const char *s);
/* an identifier, double-quoted when PostgreSQL would need it */
void sql_buf_quote_ident(sql_buf *buf, const char *s);
/* true when s must be double-quoted to read back as the same name */
bool sql_ident_needs_quotes(const char *s);

/* Option tables of sql_backup_options, sql_restore_options, sql_show_backup_options. */
#define SQL_OPT_FIELD(opts, desc) ((void *) ((char *) (opts) + (desc)->offset))
#define SQL_OPT_CFIELD(opts, desc) ((const void *) ((const char *) (opts) + (desc)->offset))

#endif
