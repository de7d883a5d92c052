/*
 * apply_exec.c - the back end of the change applier (the contract is
 * include/pgbr/cdc_apply.h; what it shares with the line parser of apply.c
 * is in apply_int.h): the relations the R lines describe, matched by name
 * against the target's columns, the statement each change shape needs, and
 * their pipelined execution.
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
 */
#include "apply_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/pgclient.h"

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

bool apply_oom(pgbr_error *err, const char *what)
{
    return pgbr_error_set(err, "53200", "out of memory %s", what);
}

bool apply_grow(void **arr, size_t *cap, size_t n, size_t sz, pgbr_error *err)
{
    size_t c = *cap ? *cap : 16;
    void *p;

    if (n <= *cap)
        return true;
    while (c < n)
        c *= 2;
    p = realloc(*arr, c * sz);
    if (p == NULL)
        return apply_oom(err, "growing a change line buffer");
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

const char *apply_lsn_text(uint64_t lsn, char buf[CDC_LSN_TEXT_SIZE])
{
    cdc_lsn_format(lsn, buf);
    return buf;
}

bool apply_sql_add(cdc_apply *a, pgbr_error *err, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;
    bool ok;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return apply_oom(err, "building a statement");
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

apply_rel *apply_rel_find(const cdc_apply *a, uint32_t relid)
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
        return apply_oom(err, "growing the relation map");
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
        if (s->ready && !apply_sql_add(a, err, "DEALLOCATE \"%s\";", s->name))
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
        return apply_oom(err, "recording a relation");
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
                ok = apply_oom(err, "recording a relation");
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

bool apply_rel_describe(cdc_apply *a, uint32_t relid, const char *raw, size_t raw_len, const char *schema,
                        const char *table, int ncols, char *const *col_fields, pgbr_error *err)
{
    apply_rel *rel = apply_rel_find(a, relid);

    if (rel != NULL && rel->rline_len == raw_len && memcmp(rel->rline, raw, raw_len) == 0)
        return true;    /* the same description again (a new change file) */
    if (rel == NULL) {
        if (!rel_grow(a, err) || (rel = calloc(1, sizeof *rel)) == NULL) {
            if (!pgbr_error_is_set(err))
                apply_oom(err, "recording a relation");
            return false;
        }
        rel->relid = relid;
        a->slots[rel_slot(a, rel->relid)] = rel;
        a->nrels++;
    } else {
        /* statements in flight may name the old description in an error:
         * settle them first; then the old statements go */
        if (!apply_drain(a, err) || !stmts_deallocate(a, rel->stmts, err))
            return false;
        rel_clear(rel);
    }
    rel->rline = malloc(raw_len + 1);
    rel->schema = strdup(schema);
    rel->table = strdup(table);
    rel->cols = calloc(ncols ? (size_t)ncols : 1, sizeof *rel->cols);
    if (rel->rline == NULL || rel->schema == NULL || rel->table == NULL || rel->cols == NULL)
        goto nomem;
    memcpy(rel->rline, raw, raw_len);
    rel->rline[raw_len] = '\0';
    rel->rline_len = raw_len;
    rel->ncols = ncols;
    for (int i = 0; i < rel->ncols; i++) {
        rel->cols[i].key = col_fields[2 * i][0] == 'k';
        if ((rel->cols[i].name = strdup(col_fields[2 * i + 1])) == NULL)
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
    return apply_drain(a, err) && rel_lookup(a, rel, err);

nomem:
    rel_clear(rel);
    rel->skip = true;
    return apply_oom(err, "recording a relation");
}

bool apply_rels_deallocate(cdc_apply *a, pgbr_error *err)
{
    bool ok = true;

    for (size_t i = 0; i < a->nslots; i++)
        if (a->slots[i] != NULL && ok)
            ok = stmts_deallocate(a, a->slots[i]->stmts, err);
    return ok;
}

void apply_rels_free(cdc_apply *a)
{
    for (size_t i = 0; i < a->nslots; i++) {
        if (a->slots[i] != NULL) {
            rel_clear(a->slots[i]);
            free(a->slots[i]);
        }
    }
    free(a->slots);
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

    apply_lsn_text(p->lsn, lsn);
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
    apply_lsn_text(p->lsn, lsn);
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
bool apply_drain(cdc_apply *a, pgbr_error *err)
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
    if (a->in_pipeline && a->npending + n > APPLY_WINDOW && !apply_drain(a, err))
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

bool apply_send_sql(cdc_apply *a, const char *sql, char kind, pgbr_error *err)
{
    if (!room(a, 1, err))
        return false;
    if (PQsendQueryParams(a->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
        return pgclient_error_from(a->conn, NULL, "could not send a change statement", err);
    queued(a, kind, NULL, NULL);
    return true;
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
        if (!first && !apply_sql_add(a, err, " AND "))
            return false;
        first = false;
        if (bits & SHAPE_ISNULL)
            ok = apply_sql_add(a, err, "%s IS NULL", c->qname);
        else if (c->has_eq)
            ok = apply_sql_add(a, err, "%s %s $%d", c->qname, op, ++*param);
        else    /* json, point, xml...: no = operator; both sides through the same output function */
            ok = apply_sql_add(a, err, "%s::pg_catalog.text %s ($%d::%s)::pg_catalog.text", c->qname, op, ++*param,
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
        if (!apply_sql_add(a, err, "INSERT INTO %s", rel->qname))
            return false;
        for (int i = 0; i < rel->ncols; i++) {
            if (!((shape[2 + i] - '0') & SHAPE_SET))
                continue;
            if (!apply_sql_add(a, err, "%s%s", first ? " (" : ", ", rel->cols[i].qname))
                return false;
            first = false;
        }
        if (first) {
            if (!apply_sql_add(a, err, " DEFAULT VALUES"))
                return false;
        } else {
            /* identity values come from the source, GENERATED ALWAYS or not */
            if (!apply_sql_add(a, err, ") OVERRIDING SYSTEM VALUE VALUES ("))
                return false;
            for (int i = 0; i < rel->ncols; i++) {
                if (!((shape[2 + i] - '0') & SHAPE_SET))
                    continue;
                if (!apply_sql_add(a, err, "%s$%d", param ? ", " : "", param + 1))
                    return false;
                param++;
            }
            if (!apply_sql_add(a, err, ")"))
                return false;
        }
    } else {
        const char *from = rel->target;
        bool any_set = false;

        for (int i = 0; i < rel->ncols; i++)
            any_set |= kind == 'U' && ((shape[2 + i] - '0') & SHAPE_SET);
        if (kind == 'U' && any_set) {
            if (!apply_sql_add(a, err, "UPDATE %s SET ", from))
                return false;
            for (int i = 0; i < rel->ncols; i++) {
                if (!((shape[2 + i] - '0') & SHAPE_SET))
                    continue;
                if (!apply_sql_add(a, err, "%s%s = $%d", first ? "" : ", ", rel->cols[i].qname, ++param))
                    return false;
                first = false;
            }
        } else if (kind == 'U') {
            /* nothing to write (only unchanged TOAST values or columns the
             * target lacks): the row must still be there, exactly once */
            *select = true;
            if (!apply_sql_add(a, err, "SELECT FROM %s", from))
                return false;
        } else if (!apply_sql_add(a, err, "DELETE FROM %s", from)) {
            return false;
        }
        if (!apply_sql_add(a, err, " WHERE "))
            return false;
        if (shape[1] == 'O') {
            /* of identical rows exactly one is changed; a partitioned table's
             * ctids repeat across partitions, so there the partition too */
            const char *cols = rel->relkind == 'p' ? "(tableoid, ctid)" : "ctid";

            if (!apply_sql_add(a, err, "%s = (SELECT %s FROM %s WHERE ", cols, cols, from) ||
                !build_where(a, rel, shape, &param, err) || !apply_sql_add(a, err, " LIMIT 1)"))
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
        apply_oom(err, "recording a change statement");
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

bool apply_exec_change(cdc_apply *a, apply_rel *rel, char *const *set_vals, char *const *cmp_vals,
                       pgbr_error *err)
{
    apply_stmt *s;
    int n = 0;

    if (!room(a, 2, err) || (s = stmt_get(a, rel, a->shape, err)) == NULL)
        return false;
    if (!apply_grow((void **)&a->params, &a->params_cap, (size_t)s->nparams + 1, sizeof *a->params, err))
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

