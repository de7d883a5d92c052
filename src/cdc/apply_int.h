/*
 * apply_int.h - what the two files of the change applier share (src/cdc/
 * apply*.c only; the contract is include/pgbr/cdc_apply.h): the applier's
 * state, and the relations, statements and pipeline of apply_exec.c that
 * the line parser of apply.c drives.
 *
 * apply.c reads and checks each line and turns a change into a shape and
 * its values; apply_exec.c owns the relation map (and the target lookup of
 * an R line's columns), prepares a statement per shape and sends the
 * executions in libpq pipeline mode. Everything here belongs to the thread
 * that owns the applier.
 */
#ifndef PGBR_CDC_APPLY_INT_H
#define PGBR_CDC_APPLY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgbr/buf.h"
#include "pgbr/cdc.h"
#include "pgbr/cdc_apply.h"
#include "pgbr/error.h"

#define APPLY_MIN_SLOTS 16
#define APPLY_DEFAULT_BATCH 1000
/* Statements (executions and preparations) in flight before their results
 * are read: a few hundred per round trip, and few enough that their results
 * (some tens of bytes each) always fit in the socket buffers, so neither side
 * can block writing while the other is not reading. */
#define APPLY_WINDOW 256

/* Shape characters: '0' + a bit set per change column. */
#define SHAPE_SET 1     /* written: INSERT value or UPDATE SET */
#define SHAPE_CMP 2     /* compared with a parameter to find the row */
#define SHAPE_ISNULL 4  /* compared with IS NULL (a key value that is NULL) */

typedef struct apply_col {
    char *name;             /* the change's column name, unescaped */
    bool key;               /* flagged k in the R line */
    char *qname;            /* the target's column, quoted; NULL when the target lacks it */
    char *type;             /* its type (format_type), for comparisons as text */
    bool insertable;        /* not a generated column */
    bool updatable;         /* not generated and not GENERATED ALWAYS AS IDENTITY */
    bool has_eq;            /* its type has an equality operator */
} apply_col;

typedef struct apply_stmt {
    struct apply_stmt *next;
    char *shape;            /* kind, mode, then one character per change column */
    char name[64];
    int nparams;
    bool select;            /* an UPDATE with nothing to write: SELECT the row instead */
    bool ready;             /* the server confirmed the preparation */
} apply_stmt;

typedef struct apply_rel {
    uint32_t relid;
    char *rline;            /* the R line as it came, to recognise a repeated one */
    size_t rline_len;
    char *schema, *table;   /* unescaped */
    char *qname;            /* "schema"."table" */
    char *target;           /* what UPDATE/DELETE/TRUNCATE name: ONLY "s"."t" for a plain table */
    char relkind;           /* the target's: 'r' or 'p' when applied */
    bool skip;              /* skip list, or the target does not have it */
    int ncols;
    apply_col *cols;
    apply_stmt *stmts;      /* most recently used first */
} apply_rel;

/* One statement in flight. */
typedef struct apply_pending {
    char kind;              /* b(egin) c(ommit) p(repare) I U D S(elect for U) T */
    const apply_rel *rel;   /* changes and preparations; stays valid: R lines drain first */
    apply_stmt *stmt;       /* preparations */
    uint64_t lsn;           /* commit LSN of the source transaction */
    uint64_t lineno;
} apply_pending;

struct cdc_apply {
    PGconn *conn;
    uint64_t id;                /* makes statement names unique in the session */
    bool own_txn;               /* we send BEGIN/COMMIT (else the caller's transaction) */
    int64_t until_time_us;
    char **skip_schemas, **skip_tables;
    size_t nskip;
    size_t batch;

    char *old_role;             /* session_replication_role before us */
    bool server_txn_open;       /* own_txn: BEGIN sent, COMMIT not yet */
    size_t txns_in_batch;
    bool in_src_txn;            /* between B and C */
    uint64_t cur_lsn;           /* B's final LSN: the commit LSN of the transaction */
    bool reached_until;
    bool failed;
    pgbr_error fail_err;
    bool finished;
    bool released;
    uint64_t lineno;
    uint64_t nstmts;

    apply_rel **slots;          /* open addressing by relid, as the decoder's */
    size_t nslots, nrels;

    pgbr_buf line;              /* the current line, NUL-terminated, split in place */
    pgbr_buf partial;           /* cdc_apply_bytes: a line not yet complete */
    pgbr_buf sql;               /* statement text being built */
    char **fields;
    unsigned char *vkind;       /* per field: VAL_* (apply.c) */
    size_t fields_cap, vkind_cap;
    const char **params;
    size_t params_cap;
    char *shape;
    size_t shape_cap;

    bool in_pipeline;
    apply_pending pending[APPLY_WINDOW];
    size_t npending;

    cdc_apply_stats stats;
    cdc_apply_stats committed;  /* own_txn: the counters as of the last COMMIT */
};

/* ---- helpers (apply_exec.c) ---- */

/* Set err to 53200 "out of memory <what>"; returns false. */
bool apply_oom(pgbr_error *err, const char *what);

/* Make room for n elements of size sz in *arr (capacity *cap, in
 * elements); 53200 when out of memory. */
bool apply_grow(void **arr, size_t *cap, size_t n, size_t sz, pgbr_error *err);

/* Append printf-formatted text to a->sql (no NUL). */
bool apply_sql_add(cdc_apply *a, pgbr_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* lsn as pg_lsn text in buf; returns buf. */
const char *apply_lsn_text(uint64_t lsn, char buf[CDC_LSN_TEXT_SIZE]);

/* ---- relations (apply_exec.c) ---- */

/* The relation of relid, NULL when no R line described it. */
apply_rel *apply_rel_find(const cdc_apply *a, uint32_t relid);

/* Record what a checked R line says of relid: raw[0..raw_len) is the line
 * as it came, schema and table its unescaped names, col_fields the flags
 * and unescaped name of each of its ncols columns, one after the other.
 * The same line as the relation's current one changes nothing. A relation
 * described again first settles the statements in flight and deallocates
 * its own. Unless the relation is on the skip list, its columns are then
 * matched against the target's (a synchronous round trip, out of pipeline
 * mode). False with err set (53200, or the server's error): the caller
 * fails the applier. */
bool apply_rel_describe(cdc_apply *a, uint32_t relid, const char *raw, size_t raw_len, const char *schema,
                        const char *table, int ncols, char *const *col_fields, pgbr_error *err);

/* Deallocate the prepared statements of every relation (outside pipeline
 * mode); stops at the first failure. */
bool apply_rels_deallocate(cdc_apply *a, pgbr_error *err);

/* Free every relation and the map. */
void apply_rels_free(cdc_apply *a);

/* ---- the pipeline and the statements (apply_exec.c) ---- */

/* Send a Sync, read and check every result in the window, leave pipeline
 * mode. False with the first error (the connection stays usable unless it
 * was lost). A no-op outside pipeline mode. */
bool apply_drain(cdc_apply *a, pgbr_error *err);

/* Queue sql (no parameters) in the pipeline; kind as apply_pending's. */
bool apply_send_sql(cdc_apply *a, const char *sql, char kind, pgbr_error *err);

/* Queue a change: the shape built in a->shape (prepared first when new for
 * rel), values (NULL for NULL) taken per column from set_vals (written)
 * and cmp_vals (compared). Its row count is checked when the window is
 * drained. */
bool apply_exec_change(cdc_apply *a, apply_rel *rel, char *const *set_vals, char *const *cmp_vals,
                       pgbr_error *err);

#endif
