/*
 * apply.c - replaying change lines onto a PostgreSQL database (the contract is
 * include/pgbr/cdc_apply.h; the line format include/pgbr/cdc.h).
 *
 * A line is copied into a reusable buffer, split at its TABs and checked
 * completely (field count, numbers, escapes, \N and \U only where they may
 * be) before anything about it is sent, so a malformed line never leaves a
 * half-built statement behind.
 *
 * Changes become executions of prepared statements. A statement's text
 * depends on the relation and on the change's *shape*: which columns are
 * written (an UPDATE leaves \U columns alone) and how the row is found (key
 * or whole old row, key values that are NULL). The shape is a short string,
 * one character per change column, that keys a per-relation list of
 * statements already prepared; a new shape is prepared in the same pipeline
 * right before its first execution.
 *
 * Statements go out in libpq pipeline mode. Every statement sent is recorded
 * in a fixed-size window (what it was, for which relation, line and commit
 * LSN), so its result can be checked and an error explained when the
 * results are read. The window is drained (Sync, read every result, leave
 * pipeline mode) when it is full, before anything that needs a synchronous
 * round trip (a relation lookup, a COMMIT whose outcome must be known) and
 * at the end. Memory therefore depends on the window, the relations and
 * shapes and the longest line, never on the number of changes.
 *
 * The first error wins: it is kept, the server transaction is rolled back
 * (own transactions) or forced into the failed state (the caller's
 * transaction), and every later call reports it again.
 */
#include "pgbr/cdc_apply.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/buf.h"
#include "pgbr/cdc.h"
#include "pgbr/pgclient.h"

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

/* What a value field holds, after the check. */
enum { VAL_TEXT, VAL_NULL, VAL_UNCHANGED };

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
    unsigned char *vkind;       /* per field: VAL_* */
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

static _Atomic uint64_t apply_next_id = 1;

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

static bool oom(pgbr_error *err, const char *what)
{
    return pgbr_error_set(err, "53200", "out of memory %s", what);
}

static void error_copy(pgbr_error *dst, const pgbr_error *src)
{
    pgbr_error_set(dst, src->sqlstate[0] ? src->sqlstate : "XX000", "%s",
                   src->message ? src->message : "unknown error");
    if (src->detail)
        pgbr_error_detail(dst, "%s", src->detail);
    if (src->hint)
        pgbr_error_hint(dst, "%s", src->hint);
    dst->position = src->position;
}

/* Make room for n elements of size sz in *arr (capacity *cap, in elements). */
static bool grow(void **arr, size_t *cap, size_t n, size_t sz, pgbr_error *err)
{
    size_t c = *cap ? *cap : 16;
    void *p;

    if (n <= *cap)
        return true;
    while (c < n)
        c *= 2;
    p = realloc(*arr, c * sz);
    if (p == NULL)
        return oom(err, "growing a change line buffer");
    *arr = p;
    *cap = c;
    return true;
}

/* A SQL identifier, always double-quoted: names may hold anything but NUL. */
static char *quote_ident(const char *name)
{
    size_t n = strlen(name), q = 0;
    char *out, *o;

    for (size_t i = 0; i < n; i++)
        q += name[i] == '"';
    out = malloc(n + q + 3);
    if (out == NULL)
        return NULL;
    o = out;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '"')
            *o++ = '"';
        *o++ = name[i];
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned d;

        if (*s < '0' || *s > '9')
            return false;
        d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v;

    if (!parse_u64(s + neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v))
        return false;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return true;
}

static const char *lsn_text(uint64_t lsn, char buf[CDC_LSN_TEXT_SIZE])
{
    cdc_lsn_format(lsn, buf);
    return buf;
}

static bool sql_add(cdc_apply *a, pgbr_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool sql_add(cdc_apply *a, pgbr_error *err, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;
    bool ok;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return oom(err, "building a statement");
    ok = pgbr_buf_append(&a->sql, s, (size_t)n, err);
    free(s);
    return ok;
}

/* ---------------------------------------------------------------------------
 * Relations
 * ------------------------------------------------------------------------- */

static size_t rel_slot(const cdc_apply *a, uint32_t relid)
{
    size_t mask = a->nslots - 1;
    size_t i = (size_t)((relid * UINT32_C(2654435761)) & mask);

    while (a->slots[i] != NULL && a->slots[i]->relid != relid)
        i = (i + 1) & mask;
    return i;
}

static apply_rel *rel_find(const cdc_apply *a, uint32_t relid)
{
    return a->slots[rel_slot(a, relid)];
}

/* Make room for one more relation (load factor at most 1/2). */
static bool rel_grow(cdc_apply *a, pgbr_error *err)
{
    apply_rel **old = a->slots;
    size_t oldn = a->nslots, n = oldn;

    if ((a->nrels + 1) * 2 <= oldn)
        return true;
    while ((a->nrels + 1) * 2 > n)
        n *= 2;
    a->slots = calloc(n, sizeof *a->slots);
    if (a->slots == NULL) {
        a->slots = old;
        return oom(err, "growing the relation map");
    }
    a->nslots = n;
    for (size_t i = 0; i < oldn; i++)
        if (old[i] != NULL)
            a->slots[rel_slot(a, old[i]->relid)] = old[i];
    free(old);
    return true;
}

static void stmts_free(apply_stmt *s)
{
    while (s != NULL) {
        apply_stmt *next = s->next;

        free(s->shape);
        free(s);
        s = next;
    }
}

/* Forget the description (names, columns, statements), keep relid and slot. */
static void rel_clear(apply_rel *rel)
{
    for (int i = 0; i < rel->ncols; i++) {
        free(rel->cols[i].name);
        free(rel->cols[i].qname);
        free(rel->cols[i].type);
    }
    free(rel->cols);
    free(rel->rline);
    free(rel->schema);
    free(rel->table);
    free(rel->qname);
    free(rel->target);
    stmts_free(rel->stmts);
    *rel = (apply_rel){ .relid = rel->relid };
}

/* Deallocate the server's copies of statements (outside pipeline mode). The
 * names are ours, so this never touches the caller's statements. */
static bool stmts_deallocate(cdc_apply *a, const apply_stmt *s, pgbr_error *err)
{
    PGresult *res;
    bool ok;

    if (s == NULL)
        return true;
    pgbr_buf_reset(&a->sql);
    for (; s != NULL; s = s->next)
        if (s->ready && !sql_add(a, err, "DEALLOCATE \"%s\";", s->name))
            return false;
    if (a->sql.len == 0)
        return true;    /* none was prepared (a failure came first) */
    if (!pgbr_buf_append(&a->sql, "", 1, err))
        return false;
    res = PQexec(a->conn, (const char *)a->sql.data);
    ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pgclient_error_from(a->conn, res, "could not deallocate the change statements", err);
    PQclear(res);
    return ok;
}

static bool in_skip_list(const cdc_apply *a, const char *schema, const char *table)
{
    for (size_t i = 0; i < a->nskip; i++)
        if (strcmp(a->skip_schemas[i], schema) == 0 && strcmp(a->skip_tables[i], table) == 0)
            return true;
    return false;
}

/*
 * The target's columns of schema.table: their names, whether they may be
 * written, their type and whether that type has an equality operator. That
 * last answer must never be yes for a type PostgreSQL cannot compare with =
 * (the statement would fail), while a wrong no only costs speed (the column
 * is compared as text, which is exact for values replayed from the same
 * text): so a type has one when the type itself (or a domain's base type)
 * has a default btree or hash operator class, or is an enum, a range, a
 * multirange, or an array of a type that has one directly. Composite types
 * and domains over domains fall to text.
 */
static const char lookup_sql_fmt[] =
    "SELECT c.relkind, a.attname, %s, a.attidentity, pg_catalog.format_type(a.atttypid, a.atttypmod),"
    " EXISTS (SELECT FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod"
    "   WHERE oc.opcdefault AND am.amname IN ('btree', 'hash')"
    "     AND (oc.opcintype = b.oid"
    "       OR (b.typtype = 'e' AND oc.opcintype = 'pg_catalog.anyenum'::pg_catalog.regtype)"
    "       OR (b.typtype = 'r' AND oc.opcintype = 'pg_catalog.anyrange'::pg_catalog.regtype)"
    "       OR (b.typtype = 'm' AND oc.opcintype = pg_catalog.to_regtype('pg_catalog.anymultirange'))"
    "       OR (b.typcategory = 'A' AND oc.opcintype = 'pg_catalog.anyarray'::pg_catalog.regtype"
    "         AND EXISTS (SELECT FROM pg_catalog.pg_type e"
    "           JOIN pg_catalog.pg_opclass oe ON oe.opcdefault"
    "           JOIN pg_catalog.pg_am ae ON ae.oid = oe.opcmethod AND ae.amname IN ('btree', 'hash')"
    "           WHERE e.oid = b.typelem"
    "             AND (oe.opcintype = e.oid"
    "               OR (e.typtype = 'e' AND oe.opcintype = 'pg_catalog.anyenum'::pg_catalog.regtype)"
    "               OR (e.typtype = 'r' AND oe.opcintype = 'pg_catalog.anyrange'::pg_catalog.regtype))))))"
    " FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END"
    " WHERE n.nspname = $1 AND c.relname = $2"
    " ORDER BY a.attnum";

/* Match the change's columns by name against the target's (outside pipeline
 * mode). A relation the target lacks, or that is not a table rows can be
 * written to, is skipped. */
static bool rel_lookup(cdc_apply *a, apply_rel *rel, pgbr_error *err)
{
    const char *params[2] = { rel->schema, rel->table };
    /* attgenerated appeared in PostgreSQL 12; before, nothing is generated */
    const char *generated = PQserverVersion(a->conn) >= 120000 ? "a.attgenerated" : "''::\"char\"";
    char sql[sizeof lookup_sql_fmt + 32];
    PGresult *res;
    bool ok = true;
    int nrows;

    snprintf(sql, sizeof sql, lookup_sql_fmt, generated);
    res = PQexecParams(a->conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgclient_error_from(a->conn, res, "could not look up a relation of the change file", err);
        pgbr_error_detail(err, "Relation %s (change file line %" PRIu64 ").", rel->qname, a->lineno);
        PQclear(res);
        return false;
    }
    nrows = PQntuples(res);
    rel->relkind = nrows > 0 ? PQgetvalue(res, 0, 0)[0] : '\0';
    if (rel->relkind != 'r' && rel->relkind != 'p') {
        rel->skip = true;
        PQclear(res);
        return true;
    }
    /* ONLY: a row of a child table comes with the child's own relid, so an
     * inheritance parent's statements must not reach into its children; a
     * partitioned table has no rows of its own and refuses ONLY in TRUNCATE */
    if (asprintf(&rel->target, "%s%s", rel->relkind == 'r' ? "ONLY " : "", rel->qname) < 0) {
        rel->target = NULL;
        PQclear(res);
        return oom(err, "recording a relation");
    }
    for (int r = 0; r < nrows && ok; r++) {
        const char *attname = PQgetvalue(res, r, 1);

        if (PQgetisnull(res, r, 1))
            continue;   /* a table without columns */
        for (int i = 0; i < rel->ncols; i++) {
            apply_col *c = &rel->cols[i];

            if (c->qname != NULL || strcmp(c->name, attname) != 0)
                continue;
            c->qname = quote_ident(attname);
            c->type = strdup(PQgetvalue(res, r, 4));
            if (c->qname == NULL || c->type == NULL) {
                ok = oom(err, "recording a relation");
                break;
            }
            c->insertable = PQgetvalue(res, r, 2)[0] == '\0';
            c->updatable = c->insertable && PQgetvalue(res, r, 3)[0] != 'a';
            c->has_eq = PQgetvalue(res, r, 5)[0] == 't';
            break;
        }
    }
    PQclear(res);
    return ok;
}

/* ---------------------------------------------------------------------------
 * The pipeline
 * ------------------------------------------------------------------------- */

static const char *kind_word(char kind)
{
    switch (kind) {
    case 'I': return "INSERT";
    case 'U': case 'S': return "UPDATE";
    case 'D': return "DELETE";
    case 'T': return "TRUNCATE";
    default: return "statement";
    }
}

/* Where a failing statement came from, for the DETAIL (after the server's). */
static void add_context(pgbr_error *err, const apply_pending *p)
{
    char lsn[CDC_LSN_TEXT_SIZE];
    char *server = err->detail;     /* ours now: pgbr_error_detail() frees the old detail */
    char *ctx = NULL;
    int n = -1;

    err->detail = NULL;

    lsn_text(p->lsn, lsn);
    switch (p->kind) {
    case 'b':
        n = asprintf(&ctx, "Starting a transaction before change file line %" PRIu64 ".", p->lineno);
        break;
    case 'c':
        n = asprintf(&ctx, "Committing the transactions up to commit LSN %s (change file line %" PRIu64 ").", lsn,
                     p->lineno);
        break;
    case 'p':
        n = asprintf(&ctx, "Preparing a statement for %s (change file line %" PRIu64 ").", p->rel->qname,
                     p->lineno);
        break;
    case 'T':
        n = asprintf(&ctx, "TRUNCATE at change file line %" PRIu64 ", transaction with commit LSN %s.", p->lineno,
                     lsn);
        break;
    default:
        n = asprintf(&ctx, "%s of %s at change file line %" PRIu64 ", transaction with commit LSN %s.",
                     kind_word(p->kind), p->rel->qname, p->lineno, lsn);
        break;
    }
    if (n < 0)
        err->detail = server;
    else if (server != NULL)
        pgbr_error_detail(err, "%s\n%s", server, ctx);
    else
        pgbr_error_detail(err, "%s", ctx);
    if (n >= 0)
        free(server);
    free(ctx);
}

/* Check one statement's result; the first problem goes to err. */
static void check_result(cdc_apply *a, const apply_pending *p, PGresult *res, bool *failed, pgbr_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    char lsn[CDC_LSN_TEXT_SIZE];
    unsigned long long rows;

    if (*failed)
        return;     /* everything after the first error is PGRES_PIPELINE_ABORTED */
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
        pgclient_error_from(a->conn, res, NULL, err);
        add_context(err, p);
        *failed = true;
        return;
    }
    if (st == PGRES_PIPELINE_ABORTED || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)) {
        pgbr_error_set(err, "XX000", "unexpected result status %s for a change statement", PQresStatus(st));
        add_context(err, p);
        *failed = true;
        return;
    }
    if (p->kind == 'c' && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        /* a COMMIT of a failed transaction answers ROLLBACK */
        pgbr_error_set(err, "40000", "the transaction applying the changes was rolled back at commit");
        add_context(err, p);
        *failed = true;
        return;
    }
    if (p->kind == 'p')
        p->stmt->ready = true;
    if (p->kind != 'U' && p->kind != 'D' && p->kind != 'S')
        return;
    rows = p->kind == 'S' ? (unsigned long long)PQntuples(res) : strtoull(PQcmdTuples(res), NULL, 10);
    if (rows == 1)
        return;
    lsn_text(p->lsn, lsn);
    if (rows == 0)
        pgbr_error_set(err, "XX001", "change at %s for %s matched no row", lsn, p->rel->qname);
    else
        pgbr_error_set(err, "XX001", "change at %s for %s matched %llu rows", lsn, p->rel->qname, rows);
    add_context(err, p);
    pgbr_error_hint(err, "The changes do not fit the rows they are replayed onto.");
    *failed = true;
}

/*
 * Send a Sync, read and check every result up to it, and leave pipeline
 * mode. Results are matched to the window in order: each statement gives
 * one result and then NULL. Returns false with the first error (the server
 * skips everything after a failed statement up to the Sync, so the reading
 * still ends at the Sync and the connection stays usable).
 */
static bool drain(cdc_apply *a, pgbr_error *err)
{
    bool failed = false;
    size_t idx = 0;
    bool got = false;

    if (!a->in_pipeline)
        return true;
    if (PQpipelineSync(a->conn) != 1) {
        a->npending = 0;
        a->in_pipeline = false;
        return pgclient_error_from(a->conn, NULL, "could not send the change statements", err);
    }
    for (;;) {
        PGresult *res = PQgetResult(a->conn);

        if (res == NULL) {
            if (got && idx < a->npending) {
                idx++;
                got = false;
                continue;
            }
            /* nothing where a result belongs: the connection is gone */
            if (!failed)
                pgclient_error_from(a->conn, NULL, "lost the connection while applying changes", err);
            a->npending = 0;
            a->in_pipeline = false;
            return false;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (idx < a->npending) {
            check_result(a, &a->pending[idx], res, &failed, err);
        } else if (!failed) {
            pgbr_error_set(err, "XX000", "unexpected result %s after the change statements",
                           PQresStatus(PQresultStatus(res)));
            failed = true;
        }
        got = true;
        PQclear(res);
        if (PQstatus(a->conn) == CONNECTION_BAD) {
            if (!failed)
                pgclient_error_from(a->conn, NULL, "lost the connection while applying changes", err);
            a->npending = 0;
            a->in_pipeline = false;
            return false;
        }
    }
    a->npending = 0;
    if (PQexitPipelineMode(a->conn) != 1) {
        if (!failed)
            pgclient_error_from(a->conn, NULL, "could not leave pipeline mode", err);
        return false;
    }
    a->in_pipeline = false;
    return !failed;
}

/* Ready to queue n more statements: in pipeline mode, with room in the window. */
static bool room(cdc_apply *a, size_t n, pgbr_error *err)
{
    if (a->in_pipeline && a->npending + n > APPLY_WINDOW && !drain(a, err))
        return false;
    if (!a->in_pipeline) {
        if (PQenterPipelineMode(a->conn) != 1)
            return pgclient_error_from(a->conn, NULL, "could not enter pipeline mode", err);
        a->in_pipeline = true;
    }
    return true;
}

/* Record a statement just sent (room() made the space). */
static void queued(cdc_apply *a, char kind, const apply_rel *rel, apply_stmt *stmt)
{
    a->pending[a->npending++] = (apply_pending){ kind, rel, stmt, a->cur_lsn, a->lineno };
}

static bool send_sql(cdc_apply *a, const char *sql, char kind, pgbr_error *err)
{
    if (!room(a, 1, err))
        return false;
    if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
        return pgclient_error_from(a->conn, NULL, "could not send a change statement", err);
    queued(a, kind, NULL, NULL);
    return true;
}

/* ---------------------------------------------------------------------------
 * Failure
 * ------------------------------------------------------------------------- */

/*
 * Keep the first error and make sure nothing of the failed source
 * transaction can be committed: our own transaction is rolled back; the
 * caller's is left failed, which needs a failing statement when the failure
 * was ours (a malformed line) and not the server's. Returns false.
 */
static bool fail(cdc_apply *a, pgbr_error *err)
{
    pgbr_error ignored = PGBR_ERROR_INIT;
    PGresult *res = NULL;

    if (a->failed)
        return false;
    a->failed = true;
    error_copy(&a->fail_err, err);
    drain(a, &ignored);     /* statements in flight are thrown away with the transaction */
    if (PQstatus(a->conn) != CONNECTION_OK)
        goto out;
    if (a->own_txn && a->server_txn_open) {
        res = PQexec(a->conn, "ROLLBACK");
        a->server_txn_open = false;
        a->stats = a->committed;
    } else if (!a->own_txn && PQtransactionStatus(a->conn) == PQTRANS_INTRANS) {
        /* plpgsql missing fails the transaction just as well */
        res = PQexec(a->conn, "DO $pgbr$BEGIN RAISE EXCEPTION USING ERRCODE = 'XX001', MESSAGE = "
                              "'applying the change file failed: roll this transaction back'; END$pgbr$");
    }
out:
    PQclear(res);
    pgbr_error_clear(&ignored);
    return false;
}

static bool malformed(cdc_apply *a, pgbr_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool malformed(cdc_apply *a, pgbr_error *err, const char *fmt, ...)
{
    va_list ap;
    char why[256];

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pgbr_error_set(err, "XX001", "change file line is malformed: %s", why);
    pgbr_error_detail(err, "Change file line %" PRIu64 ".", a->lineno);
    return fail(a, err);
}

/* ---------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------- */

/* The WHERE clause of a shape (mode 'O': every compared column with IS NOT
 * DISTINCT FROM; else =, or IS NULL), parameters from *param on. */
static bool build_where(cdc_apply *a, const apply_rel *rel, const char *shape, int *param, pgbr_error *err)
{
    bool full = shape[1] == 'O';
    const char *op = full ? "IS NOT DISTINCT FROM" : "=";
    bool first = true;

    for (int i = 0; i < rel->ncols; i++) {
        int bits = shape[2 + i] - '0';
        const apply_col *c = &rel->cols[i];
        bool ok;

        if (!(bits & (SHAPE_CMP | SHAPE_ISNULL)))
            continue;
        if (!first && !sql_add(a, err, " AND "))
            return false;
        first = false;
        if (bits & SHAPE_ISNULL)
            ok = sql_add(a, err, "%s IS NULL", c->qname);
        else if (c->has_eq)
            ok = sql_add(a, err, "%s %s $%d", c->qname, op, ++*param);
        else    /* json, point, xml...: no = operator; both sides through the same output function */
            ok = sql_add(a, err, "%s::pg_catalog.text %s ($%d::%s)::pg_catalog.text", c->qname, op, ++*param,
                         c->type);
        if (!ok)
            return false;
    }
    return true;
}

/* The text of a shape's statement; *nparams and *select set. */
static bool build_sql(cdc_apply *a, const apply_rel *rel, const char *shape, int *nparams, bool *select,
                      pgbr_error *err)
{
    char kind = shape[0];
    int param = 0;
    bool first = true;

    pgbr_buf_reset(&a->sql);
    *select = false;
    if (kind == 'I') {
        if (!sql_add(a, err, "INSERT INTO %s", rel->qname))
            return false;
        for (int i = 0; i < rel->ncols; i++) {
            if (!((shape[2 + i] - '0') & SHAPE_SET))
                continue;
            if (!sql_add(a, err, "%s%s", first ? " (" : ", ", rel->cols[i].qname))
                return false;
            first = false;
        }
        if (first) {
            if (!sql_add(a, err, " DEFAULT VALUES"))
                return false;
        } else {
            /* identity values come from the source, GENERATED ALWAYS or not */
            if (!sql_add(a, err, ") OVERRIDING SYSTEM VALUE VALUES ("))
                return false;
            for (int i = 0; i < rel->ncols; i++) {
                if (!((shape[2 + i] - '0') & SHAPE_SET))
                    continue;
                if (!sql_add(a, err, "%s$%d", param ? ", " : "", param + 1))
                    return false;
                param++;
            }
            if (!sql_add(a, err, ")"))
                return false;
        }
    } else {
        const char *from = rel->target;
        bool any_set = false;

        for (int i = 0; i < rel->ncols; i++)
            any_set |= kind == 'U' && ((shape[2 + i] - '0') & SHAPE_SET);
        if (kind == 'U' && any_set) {
            if (!sql_add(a, err, "UPDATE %s SET ", from))
                return false;
            for (int i = 0; i < rel->ncols; i++) {
                if (!((shape[2 + i] - '0') & SHAPE_SET))
                    continue;
                if (!sql_add(a, err, "%s%s = $%d", first ? "" : ", ", rel->cols[i].qname, ++param))
                    return false;
                first = false;
            }
        } else if (kind == 'U') {
            /* nothing to write (only unchanged TOAST values or columns the
             * target lacks): the row must still be there, exactly once */
            *select = true;
            if (!sql_add(a, err, "SELECT FROM %s", from))
                return false;
        } else if (!sql_add(a, err, "DELETE FROM %s", from)) {
            return false;
        }
        if (!sql_add(a, err, " WHERE "))
            return false;
        if (shape[1] == 'O') {
            /* of identical rows exactly one is changed; a partitioned table's
             * ctids repeat across partitions, so there the partition too */
            const char *cols = rel->relkind == 'p' ? "(tableoid, ctid)" : "ctid";

            if (!sql_add(a, err, "%s = (SELECT %s FROM %s WHERE ", cols, cols, from) ||
                !build_where(a, rel, shape, &param, err) || !sql_add(a, err, " LIMIT 1)"))
                return false;
        } else if (!build_where(a, rel, shape, &param, err)) {
            return false;
        }
    }
    *nparams = param;
    return pgbr_buf_append(&a->sql, "", 1, err);
}

/* The prepared statement of a shape, prepared (queued) now if new. room()
 * must have made space for two statements. */
static apply_stmt *stmt_get(cdc_apply *a, apply_rel *rel, const char *shape, pgbr_error *err)
{
    apply_stmt **link = &rel->stmts, *s;

    for (s = rel->stmts; s != NULL; link = &s->next, s = s->next) {
        if (strcmp(s->shape, shape) == 0) {
            *link = s->next;        /* to the front: the next change is likely the same */
            s->next = rel->stmts;
            rel->stmts = s;
            return s;
        }
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->shape = strdup(shape)) == NULL) {
        free(s);
        oom(err, "recording a change statement");
        return NULL;
    }
    if (!build_sql(a, rel, shape, &s->nparams, &s->select, err)) {
        stmts_free(s);
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "pgbr_cdc_apply_%" PRIu64 "_%" PRIu64, a->id, ++a->nstmts);
    /* no parameter types: the server takes each from the column it meets */
    if (PQsendPrepare(a->conn, s->name, (const char *)a->sql.data, s->nparams, NULL) != 1) {
        stmts_free(s);
        pgclient_error_from(a->conn, NULL, "could not send a change statement", err);
        return NULL;
    }
    queued(a, 'p', rel, s);
    s->next = rel->stmts;
    rel->stmts = s;
    return s;
}

/* Execute a change: shape built in a->shape, values (NULL for NULL) taken
 * per column from set_vals (written) and cmp_vals (compared). */
static bool exec_change(cdc_apply *a, apply_rel *rel, char *const *set_vals, char *const *cmp_vals,
                        pgbr_error *err)
{
    apply_stmt *s;
    int n = 0;

    if (!room(a, 2, err) || (s = stmt_get(a, rel, a->shape, err)) == NULL)
        return false;
    if (!grow((void **)&a->params, &a->params_cap, (size_t)s->nparams + 1, sizeof *a->params, err))
        return false;
    if (!s->select)
        for (int i = 0; i < rel->ncols; i++)
            if ((a->shape[2 + i] - '0') & SHAPE_SET)
                a->params[n++] = set_vals[i];
    for (int i = 0; i < rel->ncols && a->shape[0] != 'I'; i++)
        if ((a->shape[2 + i] - '0') & SHAPE_CMP)
            a->params[n++] = cmp_vals[i];
    if (PQsendQueryPrepared(a->conn, s->name, n, a->params, NULL, NULL, 0) != 1)
        return pgclient_error_from(a->conn, NULL, "could not send a change statement", err);
    queued(a, s->select ? 'S' : a->shape[0], rel, NULL);
    return true;
}

/* ---------------------------------------------------------------------------
 * Lines
 * ------------------------------------------------------------------------- */

/* Check value fields[first .. first + n): \N is NULL, \U only when allowed,
 * anything else is unescaped in place (and then NUL-terminated). */
static bool check_values(cdc_apply *a, int first, int n, bool unchanged_ok, const char *what, pgbr_error *err)
{
    for (int i = first; i < first + n; i++) {
        char *f = a->fields[i];
        size_t len = strlen(f);

        if (strcmp(f, "\\N") == 0) {
            a->vkind[i] = VAL_NULL;
        } else if (strcmp(f, "\\U") == 0) {
            if (!unchanged_ok)
                return malformed(a, err, "\\U (unchanged TOASTed value) in the %s of column %d", what,
                                 i - first + 1);
            a->vkind[i] = VAL_UNCHANGED;
        } else if (!cdc_unescape(f, &len)) {
            return malformed(a, err, "bad escape in the %s of column %d", what, i - first + 1);
        } else {
            a->vkind[i] = VAL_TEXT;
        }
    }
    return true;
}

/* A name field: never \N or \U, unescaped in place. */
static bool check_name(cdc_apply *a, char *f, const char *what, pgbr_error *err)
{
    size_t len = strlen(f);

    if (strcmp(f, "\\N") == 0 || strcmp(f, "\\U") == 0)
        return malformed(a, err, "%s where the %s belongs", f, what);
    if (!cdc_unescape(f, &len))
        return malformed(a, err, "bad escape in the %s", what);
    return true;
}

static bool need_txn(cdc_apply *a, const char *what, pgbr_error *err)
{
    if (!a->in_src_txn)
        return malformed(a, err, "%s outside a transaction", what);
    return true;
}

/* The relation a change names: a number some R line described. */
static apply_rel *change_rel(cdc_apply *a, const char *field, pgbr_error *err)
{
    uint64_t relid;
    apply_rel *rel;

    if (!parse_u64(field, UINT32_MAX, &relid) || relid == 0) {
        malformed(a, err, "relation id \"%.40s\" is not a positive 32-bit number", field);
        return NULL;
    }
    rel = rel_find(a, (uint32_t)relid);
    if (rel == NULL)
        malformed(a, err, "relation %" PRIu64 " is unknown (no R line described it)", relid);
    return rel;
}

static bool line_begin(cdc_apply *a, int nf, pgbr_error *err)
{
    uint64_t lsn, xid;
    int64_t t;

    if (nf != 4)
        return malformed(a, err, "B line has %d fields, not 4", nf);
    if (!cdc_lsn_parse(a->fields[1], &lsn))
        return malformed(a, err, "bad LSN \"%.40s\"", a->fields[1]);
    if (!parse_i64(a->fields[2], &t))
        return malformed(a, err, "bad commit time \"%.40s\"", a->fields[2]);
    if (!parse_u64(a->fields[3], UINT32_MAX, &xid))
        return malformed(a, err, "bad xid \"%.40s\"", a->fields[3]);
    if (a->in_src_txn)
        return malformed(a, err, "B line inside a transaction");
    if (t > a->until_time_us) {
        /* the first transaction after the target time: it and all later
         * ones are not applied; what came before is committed by finish */
        a->reached_until = true;
        return true;
    }
    a->in_src_txn = true;
    a->cur_lsn = lsn;
    if (a->own_txn && !a->server_txn_open) {
        if (!send_sql(a, "BEGIN", 'b', err))
            return fail(a, err);
        a->server_txn_open = true;
        a->txns_in_batch = 0;
    }
    return true;
}

static bool line_commit(cdc_apply *a, int nf, pgbr_error *err)
{
    uint64_t lsn, end_lsn;
    int64_t t;

    if (nf != 4)
        return malformed(a, err, "C line has %d fields, not 4", nf);
    if (!cdc_lsn_parse(a->fields[1], &lsn))
        return malformed(a, err, "bad LSN \"%.40s\"", a->fields[1]);
    if (!cdc_lsn_parse(a->fields[2], &end_lsn))
        return malformed(a, err, "bad LSN \"%.40s\"", a->fields[2]);
    if (!parse_i64(a->fields[3], &t))
        return malformed(a, err, "bad commit time \"%.40s\"", a->fields[3]);
    if (!need_txn(a, "C line", err))
        return false;
    a->in_src_txn = false;
    a->cur_lsn = lsn;
    a->stats.transactions++;
    a->stats.last_commit_time_us = t;
    if (a->own_txn && ++a->txns_in_batch >= a->batch) {
        /* Every result is checked before COMMIT goes out: a change that
         * matched no row succeeded as far as the server knows, so a COMMIT
         * in the same pipeline would make it durable. The COMMIT is waited
         * for too: the counters to keep on a later failure are the ones it
         * made durable. */
        if (!drain(a, err) || !send_sql(a, "COMMIT", 'c', err) || !drain(a, err))
            return fail(a, err);
        a->server_txn_open = false;
        a->committed = a->stats;
    }
    return true;
}

static bool line_relation(cdc_apply *a, const char *raw, size_t raw_len, int nf, pgbr_error *err)
{
    uint64_t relid, ncols;
    const char *ri = a->fields[4];
    apply_rel *rel;
    bool fresh;

    if (nf < 6)
        return malformed(a, err, "R line has %d fields, fewer than 6", nf);
    if (!parse_u64(a->fields[1], UINT32_MAX, &relid) || relid == 0)
        return malformed(a, err, "relation id \"%.40s\" is not a positive 32-bit number", a->fields[1]);
    if (!check_name(a, a->fields[2], "schema name", err) || !check_name(a, a->fields[3], "table name", err))
        return false;
    if (strlen(ri) != 1 || strchr("dnfi", ri[0]) == NULL)
        return malformed(a, err, "replica identity \"%.40s\" is not d, n, f or i", ri);
    if (!parse_u64(a->fields[5], INT16_MAX, &ncols))
        return malformed(a, err, "bad column count \"%.40s\"", a->fields[5]);
    if ((uint64_t)nf != 6 + 2 * ncols)
        return malformed(a, err, "R line has %d fields, not 6 + 2 * %" PRIu64, nf, ncols);
    for (int i = 0; i < (int)ncols; i++) {
        const char *flags = a->fields[6 + 2 * i];

        if (strcmp(flags, "k") != 0 && strcmp(flags, "-") != 0)
            return malformed(a, err, "column %d has flags \"%.40s\", not k or -", i + 1, flags);
        if (!check_name(a, a->fields[7 + 2 * i], "column name", err))
            return false;
    }

    rel = rel_find(a, (uint32_t)relid);
    if (rel != NULL && rel->rline_len == raw_len && memcmp(rel->rline, raw, raw_len) == 0)
        return true;    /* the same description again (a new change file) */
    fresh = rel == NULL;
    if (fresh) {
        if (!rel_grow(a, err) || (rel = calloc(1, sizeof *rel)) == NULL) {
            if (!pgbr_error_is_set(err))
                oom(err, "recording a relation");
            return fail(a, err);
        }
        rel->relid = (uint32_t)relid;
        a->slots[rel_slot(a, rel->relid)] = rel;
        a->nrels++;
    } else {
        /* statements in flight may name the old description in an error:
         * settle them first; then the old statements go */
        if (!drain(a, err) || !stmts_deallocate(a, rel->stmts, err))
            return fail(a, err);
        rel_clear(rel);
    }
    rel->rline = malloc(raw_len + 1);
    rel->schema = strdup(a->fields[2]);
    rel->table = strdup(a->fields[3]);
    rel->cols = calloc(ncols ? ncols : 1, sizeof *rel->cols);
    if (rel->rline == NULL || rel->schema == NULL || rel->table == NULL || rel->cols == NULL)
        goto nomem;
    memcpy(rel->rline, raw, raw_len);
    rel->rline[raw_len] = '\0';
    rel->rline_len = raw_len;
    rel->ncols = (int)ncols;
    for (int i = 0; i < rel->ncols; i++) {
        rel->cols[i].key = a->fields[6 + 2 * i][0] == 'k';
        if ((rel->cols[i].name = strdup(a->fields[7 + 2 * i])) == NULL)
            goto nomem;
    }
    {
        char *qs = quote_ident(rel->schema), *qt = quote_ident(rel->table);

        if (qs != NULL && qt != NULL && asprintf(&rel->qname, "%s.%s", qs, qt) < 0)
            rel->qname = NULL;
        free(qs);
        free(qt);
        if (rel->qname == NULL)
            goto nomem;
    }
    if (in_skip_list(a, rel->schema, rel->table)) {
        rel->skip = true;
        return true;
    }
    /* the lookup is a synchronous round trip: out of pipeline mode first */
    if (!drain(a, err) || !rel_lookup(a, rel, err))
        return fail(a, err);
    return true;

nomem:
    rel_clear(rel);
    rel->skip = true;
    oom(err, "recording a relation");
    return fail(a, err);
}

static bool ensure_shape(cdc_apply *a, int ncols, pgbr_error *err)
{
    if (!grow((void **)&a->shape, &a->shape_cap, (size_t)ncols + 3, 1, err))
        return fail(a, err);
    return true;
}

static bool line_insert(cdc_apply *a, int nf, pgbr_error *err)
{
    apply_rel *rel;

    if (nf < 2)
        return malformed(a, err, "I line has %d fields, fewer than 2", nf);
    if (!need_txn(a, "I line", err) || (rel = change_rel(a, a->fields[1], err)) == NULL)
        return false;
    if (nf != 2 + rel->ncols)
        return malformed(a, err, "I line has %d values, relation %" PRIu32 " has %d columns", nf - 2,
                         rel->relid, rel->ncols);
    if (!check_values(a, 2, rel->ncols, false, "new values", err))
        return false;
    if (rel->skip) {
        a->stats.skipped++;
        return true;
    }
    if (!ensure_shape(a, rel->ncols, err))
        return false;
    a->shape[0] = 'I';
    a->shape[1] = '-';
    for (int i = 0; i < rel->ncols; i++) {
        const apply_col *c = &rel->cols[i];

        a->shape[2 + i] = (char)('0' + (c->qname != NULL && c->insertable ? SHAPE_SET : 0));
    }
    a->shape[2 + rel->ncols] = '\0';
    for (int i = 0; i < rel->ncols; i++)
        if (a->vkind[2 + i] == VAL_NULL)
            a->fields[2 + i] = NULL;
    if (!exec_change(a, rel, a->fields + 2, NULL, err))
        return fail(a, err);
    a->stats.inserts++;
    return true;
}

/*
 * The WHERE part of an UPDATE's or DELETE's shape: with oldkind O every old
 * column the target has, else the key columns, from cmp (the old values, or
 * for oldkind - the new ones) whose kinds start at vk.
 */
static bool where_shape(cdc_apply *a, const apply_rel *rel, char oldkind, const unsigned char *vk,
                        pgbr_error *err)
{
    bool any = false;

    for (int i = 0; i < rel->ncols; i++) {
        const apply_col *c = &rel->cols[i];
        int bits = a->shape[2 + i] - '0';

        if (c->qname == NULL || (oldkind != 'O' && !c->key))
            continue;
        if (oldkind != 'O' && vk[i] == VAL_NULL)
            bits |= SHAPE_ISNULL;
        else if (vk[i] == VAL_UNCHANGED)
            return malformed(a, err, "key column %d is an unchanged TOASTed value (\\U)", i + 1);
        else
            bits |= SHAPE_CMP;
        a->shape[2 + i] = (char)('0' + bits);
        any = true;
    }
    if (!any) {
        char lsn[CDC_LSN_TEXT_SIZE];

        pgbr_error_set(err, "XX001", "change at %s for %s cannot be matched to a row",
                       lsn_text(a->cur_lsn, lsn), rel->qname);
        pgbr_error_detail(err, "The target table has none of the %s columns (change file line %" PRIu64 ").",
                          oldkind == 'O' ? "changed row's" : "replica identity key", a->lineno);
        return fail(a, err);
    }
    return true;
}

static bool line_update(cdc_apply *a, int nf, pgbr_error *err)
{
    apply_rel *rel;
    const char *ok_field;
    char oldkind;
    int nold, first_new;

    if (nf < 3)
        return malformed(a, err, "U line has %d fields, fewer than 3", nf);
    if (!need_txn(a, "U line", err) || (rel = change_rel(a, a->fields[1], err)) == NULL)
        return false;
    ok_field = a->fields[2];
    if (strcmp(ok_field, "K") != 0 && strcmp(ok_field, "O") != 0 && strcmp(ok_field, "-") != 0)
        return malformed(a, err, "old tuple kind \"%.40s\" is not K, O or -", ok_field);
    oldkind = ok_field[0];
    nold = oldkind == '-' ? 0 : rel->ncols;
    first_new = 3 + nold;
    if (nf != 3 + nold + rel->ncols)
        return malformed(a, err, "U line has %d values, relation %" PRIu32 " has %d columns (%s)", nf - 3,
                         rel->relid, rel->ncols, oldkind == '-' ? "new values only" : "old and new values");
    if (!check_values(a, 3, nold, false, "old values", err) ||
        !check_values(a, first_new, rel->ncols, true, "new values", err))
        return false;
    if (rel->skip) {
        a->stats.skipped++;
        return true;
    }
    if (!ensure_shape(a, rel->ncols, err))
        return false;
    a->shape[0] = 'U';
    a->shape[1] = oldkind == 'O' ? 'O' : 'K';
    for (int i = 0; i < rel->ncols; i++) {
        const apply_col *c = &rel->cols[i];
        bool set = c->qname != NULL && c->updatable && a->vkind[first_new + i] != VAL_UNCHANGED;

        a->shape[2 + i] = (char)('0' + (set ? SHAPE_SET : 0));
    }
    a->shape[2 + rel->ncols] = '\0';
    if (!where_shape(a, rel, oldkind, a->vkind + (oldkind == '-' ? first_new : 3), err))
        return false;
    for (int i = 3; i < nf; i++)
        if (a->vkind[i] != VAL_TEXT)
            a->fields[i] = NULL;
    if (!exec_change(a, rel, a->fields + first_new, a->fields + (oldkind == '-' ? first_new : 3), err))
        return fail(a, err);
    a->stats.updates++;
    return true;
}

static bool line_delete(cdc_apply *a, int nf, pgbr_error *err)
{
    apply_rel *rel;
    const char *ok_field;

    if (nf < 3)
        return malformed(a, err, "D line has %d fields, fewer than 3", nf);
    if (!need_txn(a, "D line", err) || (rel = change_rel(a, a->fields[1], err)) == NULL)
        return false;
    ok_field = a->fields[2];
    if (strcmp(ok_field, "K") != 0 && strcmp(ok_field, "O") != 0)
        return malformed(a, err, "old tuple kind \"%.40s\" is not K or O", ok_field);
    if (nf != 3 + rel->ncols)
        return malformed(a, err, "D line has %d values, relation %" PRIu32 " has %d columns", nf - 3,
                         rel->relid, rel->ncols);
    if (!check_values(a, 3, rel->ncols, false, "old values", err))
        return false;
    if (rel->skip) {
        a->stats.skipped++;
        return true;
    }
    if (!ensure_shape(a, rel->ncols, err))
        return false;
    a->shape[0] = 'D';
    a->shape[1] = ok_field[0];
    memset(a->shape + 2, '0', (size_t)rel->ncols);
    a->shape[2 + rel->ncols] = '\0';
    if (!where_shape(a, rel, ok_field[0], a->vkind + 3, err))
        return false;
    for (int i = 3; i < nf; i++)
        if (a->vkind[i] != VAL_TEXT)
            a->fields[i] = NULL;
    if (!exec_change(a, rel, NULL, a->fields + 3, err))
        return fail(a, err);
    a->stats.deletes++;
    return true;
}

static bool line_truncate(cdc_apply *a, int nf, pgbr_error *err)
{
    uint64_t options, nrelids;
    uint64_t ntrunc = 0, nskipped = 0;

    if (nf < 3)
        return malformed(a, err, "T line has %d fields, fewer than 3", nf);
    if (!parse_u64(a->fields[1], UINT8_MAX, &options))
        return malformed(a, err, "bad truncate options \"%.40s\"", a->fields[1]);
    if (!parse_u64(a->fields[2], INT32_MAX, &nrelids))
        return malformed(a, err, "bad relation count \"%.40s\"", a->fields[2]);
    if ((uint64_t)nf != 3 + nrelids)
        return malformed(a, err, "T line has %d relation ids, not %" PRIu64, nf - 3, nrelids);
    if (!need_txn(a, "T line", err))
        return false;
    for (int i = 3; i < nf; i++)
        if (change_rel(a, a->fields[i], err) == NULL)
            return false;
    pgbr_buf_reset(&a->sql);
    for (int i = 3; i < nf; i++) {
        const apply_rel *rel = change_rel(a, a->fields[i], err);

        if (rel->skip) {
            nskipped++;
            continue;
        }
        if (!sql_add(a, err, "%s%s", ntrunc ? ", " : "TRUNCATE ", rel->target))
            return fail(a, err);
        ntrunc++;
    }
    a->stats.skipped += nskipped;
    if (ntrunc == 0)
        return true;
    /* CASCADE is not passed on: the relations it reached are listed */
    if ((options & 2) && !sql_add(a, err, " RESTART IDENTITY"))
        return fail(a, err);
    if (!pgbr_buf_append(&a->sql, "", 1, err) || !send_sql(a, (const char *)a->sql.data, 'T', err))
        return fail(a, err);
    a->stats.truncates += ntrunc;
    return true;
}

bool cdc_apply_line(cdc_apply *a, const char *line, size_t len, pgbr_error *err)
{
    size_t tabs = 0;
    int nf;

    if (a->failed) {
        error_copy(err, &a->fail_err);
        return false;
    }
    if (a->finished)
        return pgbr_error_set(err, "55000", "the change applier is already finished");
    a->lineno++;
    if (a->reached_until)
        return true;
    for (const char *p = line, *end = line + len; (p = memchr(p, '\t', (size_t)(end - p))) != NULL; p++)
        tabs++;
    pgbr_buf_reset(&a->line);
    if (!pgbr_buf_reserve(&a->line, len + 1, err) ||
        !grow((void **)&a->fields, &a->fields_cap, tabs + 1, sizeof *a->fields, err))
        return fail(a, err);
    if (!grow((void **)&a->vkind, &a->vkind_cap, a->fields_cap, 1, err))
        return fail(a, err);
    if (len > 0)
        memcpy(a->line.data, line, len);
    a->line.len = len;
    nf = cdc_split_fields((char *)a->line.data, len, a->fields, (int)(tabs + 1));
    if (strlen(a->fields[0]) != 1)
        return malformed(a, err, "unknown line kind \"%.40s\"", a->fields[0]);
    switch (a->fields[0][0]) {
    case 'B': return line_begin(a, nf, err);
    case 'C': return line_commit(a, nf, err);
    case 'R': return line_relation(a, line, len, nf, err);
    case 'I': return line_insert(a, nf, err);
    case 'U': return line_update(a, nf, err);
    case 'D': return line_delete(a, nf, err);
    case 'T': return line_truncate(a, nf, err);
    default: return malformed(a, err, "unknown line kind \"%.40s\"", a->fields[0]);
    }
}

bool cdc_apply_bytes(void *arg, const void *data, size_t len, pgbr_error *err)
{
    cdc_apply *a = arg;
    const char *p = data, *end = p + len;

    if (a->failed || a->finished)
        return cdc_apply_line(a, "", 0, err);   /* the error it reports */
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));

        if (lf == NULL) {
            /* a line continued in the next call; once the target time is
             * reached nothing is kept (the rest is ignored anyway) */
            if (!a->reached_until && !pgbr_buf_append(&a->partial, p, (size_t)(end - p), err))
                return fail(a, err);
            return true;
        }
        if (a->partial.len > 0) {
            bool ok = pgbr_buf_append(&a->partial, p, (size_t)(lf - p), err) &&
                      cdc_apply_line(a, (const char *)a->partial.data, a->partial.len, err);

            pgbr_buf_reset(&a->partial);
            if (!ok)
                return a->failed ? false : fail(a, err);
        } else if (!cdc_apply_line(a, p, (size_t)(lf - p), err)) {
            return false;
        }
        p = lf + 1;
    }
    return true;
}

bool cdc_apply_reached_until(const cdc_apply *a)
{
    return a->reached_until;
}

/* ---------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------- */

cdc_apply *cdc_apply_new(PGconn *conn, const cdc_apply_options *opt, pgbr_error *err)
{
    cdc_apply *a;
    PGTransactionStatusType ts;
    PGresult *res;
    const char *role_sql;

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        pgbr_error_set(err, "08006", "no connection to apply the changes on");
        return NULL;
    }
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF) {
        pgbr_error_set(err, "55000", "the connection to apply the changes on is in pipeline mode");
        return NULL;
    }
    ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_INERROR) {
        pgbr_error_set(err, "25P02", "the transaction to apply the changes in is aborted");
        return NULL;
    }
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS) {
        pgbr_error_set(err, "55000", "the connection to apply the changes on is busy");
        return NULL;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL || (a->slots = calloc(APPLY_MIN_SLOTS, sizeof *a->slots)) == NULL) {
        free(a);
        oom(err, "creating a change applier");
        return NULL;
    }
    a->nslots = APPLY_MIN_SLOTS;
    a->conn = conn;
    a->id = atomic_fetch_add(&apply_next_id, 1);
    a->own_txn = ts == PQTRANS_IDLE;
    a->released = true;     /* nothing to give back until the role is set */
    a->until_time_us = opt ? opt->until_time_us : INT64_MAX;
    a->batch = opt && opt->batch_transactions ? opt->batch_transactions : APPLY_DEFAULT_BATCH;
    if (opt && opt->nskip > 0) {
        a->skip_schemas = calloc(opt->nskip, sizeof *a->skip_schemas);
        a->skip_tables = calloc(opt->nskip, sizeof *a->skip_tables);
        if (a->skip_schemas == NULL || a->skip_tables == NULL)
            goto nomem;
        for (size_t i = 0; i < opt->nskip; i++) {
            a->nskip++;
            a->skip_schemas[i] = strdup(opt->skip_schemas[i]);
            a->skip_tables[i] = strdup(opt->skip_tables[i]);
            if (a->skip_schemas[i] == NULL || a->skip_tables[i] == NULL)
                goto nomem;
        }
    }

    /* No user or foreign key triggers while replaying: the source ran them
     * already and their effects are in the changes. Inside the caller's
     * transaction only for that transaction (SET LOCAL). */
    role_sql = a->own_txn
        ? "SELECT pg_catalog.current_setting('session_replication_role'), "
          "pg_catalog.set_config('session_replication_role', 'replica', false)"
        : "SELECT pg_catalog.current_setting('session_replication_role'), "
          "pg_catalog.set_config('session_replication_role', 'replica', true)";
    res = PQexec(conn, role_sql);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pgclient_error_from(conn, res, "could not set session_replication_role", err);
        PQclear(res);
        cdc_apply_free(a);
        return NULL;
    }
    a->old_role = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    a->released = false;
    if (a->old_role == NULL)
        goto nomem;
    return a;

nomem:
    oom(err, "creating a change applier");
    cdc_apply_free(a);
    return NULL;
}

/* Give back what the applier took from the session: its statements, and
 * session_replication_role; our transaction if still open is rolled back.
 * Outside pipeline mode. Once. */
static bool release(cdc_apply *a, pgbr_error *err)
{
    const char *params[2];
    PGresult *res;
    bool ok = true;

    if (a->released)
        return true;
    a->released = true;
    if (PQstatus(a->conn) != CONNECTION_OK)
        return true;
    if (a->own_txn && a->server_txn_open) {
        PQclear(PQexec(a->conn, "ROLLBACK"));
        a->server_txn_open = false;
    }
    /* a failed caller's transaction takes nothing more; its rollback undoes
     * SET LOCAL, and our statements go with the session */
    if (PQtransactionStatus(a->conn) != PQTRANS_IDLE && PQtransactionStatus(a->conn) != PQTRANS_INTRANS)
        return true;
    for (size_t i = 0; i < a->nslots; i++)
        if (a->slots[i] != NULL && ok)
            ok = stmts_deallocate(a, a->slots[i]->stmts, err);
    params[0] = a->old_role;
    params[1] = a->own_txn ? "false" : "true";
    res = PQexecParams(a->conn, "SELECT pg_catalog.set_config('session_replication_role', $1, $2::boolean)", 2,
                       NULL, params, NULL, NULL, 0);
    if (ok && (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK))
        ok = pgclient_error_from(a->conn, res, "could not restore session_replication_role", err);
    PQclear(res);
    return ok;
}

bool cdc_apply_finish(cdc_apply *a, cdc_apply_stats *out, pgbr_error *err)
{
    if (a->finished)
        return pgbr_error_set(err, "55000", "the change applier is already finished");
    if (a->failed) {
        a->finished = true;
        error_copy(err, &a->fail_err);
        return false;
    }
    if (!a->reached_until && a->partial.len > 0) {
        a->lineno++;
        malformed(a, err, "the changes end inside a line (%zu bytes without a line feed)", a->partial.len);
        a->finished = true;
        return false;
    }
    if (!a->reached_until && a->in_src_txn) {
        malformed(a, err, "the changes end inside a transaction");
        a->finished = true;
        return false;
    }
    a->finished = true;
    /* checked before COMMIT goes out (see line_commit) */
    if (!drain(a, err))
        return fail(a, err);
    if (a->own_txn && a->server_txn_open) {
        if (!send_sql(a, "COMMIT", 'c', err) || !drain(a, err))
            return fail(a, err);
        a->server_txn_open = false;
        a->committed = a->stats;
    }
    if (!release(a, err))
        return fail(a, err);
    if (out != NULL)
        *out = a->stats;
    return true;
}

void cdc_apply_free(cdc_apply *a)
{
    pgbr_error ignored = PGBR_ERROR_INIT;

    if (a == NULL)
        return;
    drain(a, &ignored);
    release(a, &ignored);
    pgbr_error_clear(&ignored);
    for (size_t i = 0; i < a->nslots; i++) {
        if (a->slots[i] != NULL) {
            rel_clear(a->slots[i]);
            free(a->slots[i]);
        }
    }
    free(a->slots);
    for (size_t i = 0; i < a->nskip; i++) {
        free(a->skip_schemas[i]);
        free(a->skip_tables[i]);
    }
    free(a->skip_schemas);
    free(a->skip_tables);
    free(a->old_role);
    pgbr_buf_free(&a->line);
    pgbr_buf_free(&a->partial);
    pgbr_buf_free(&a->sql);
    free(a->fields);
    free(a->vkind);
    free(a->params);
    free(a->shape);
    pgbr_error_clear(&a->fail_err);
    free(a);
}
