/*
 * backup_job.c - BACKUP [DATABASE d, ... | TABLE pattern, ...] INTO
 * <collection>: a full backup run as a job (job.c: recorded in pgbr.jobs,
 * blocking or WITH detached).
 *
 * Steps: on the loop thread, the checks of exec.c, then the caller's
 * identity and, for non-admins, CONNECT on each database (on the client's own
 * session); on a worker, SELECT on every table is checked for non-admins
 * (PostgreSQL's has_table_privilege, in each database), then the job row is
 * inserted and backup_run() (src/backup) copies the data; progress goes to
 * the job row.
 *
 * Table targets: the loop thread reads the client's current database and
 * effective search path from its own session; the worker resolves the
 * patterns against them with pgbr's own connections (one per database looked
 * into), checks CONNECT, USAGE and SELECT for non-admins, adds the partitions
 * and owned sequences of what was named, and only then reports a refused
 * destination, so a user learns first whether they may read the tables.
 * BACKUP ... INTO LATEST|'<subdir>' IN appends an incremental layer
 * (src/backup/incremental.c), WITH incremental_location to another place;
 * that location is checked like the collection (implicit access, usable).
 * Not yet: incrementals of tables, encryption, AS OF SYSTEM TIME,
 * pause/resume/cancel of the job, adoption after a crash (a job whose node
 * restarts is marked failed at start).
 */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec_internal.h"
#include "pgbr/backup.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"
#include "pgbr/pgclient.h"
#include "pgbr/pool.h"
#include "pgbr/storage.h"

/* A table pattern of the statement, copied: the statement is gone by the
 * time the worker resolves it. */
typedef struct backup_pattern {
    int nparts;                 /* 0 (the lone *) .. 3 */
    char *parts[3];
    bool star;
} backup_pattern;

/* A relation of a table backup (worker side). */
typedef struct table_rel {
    uint32_t oid;
    char kind;                  /* pg_class.relkind */
    char *schema, *name;
    bool named;                 /* matched by a pattern (not only added as a
                                 * partition or an owned sequence) */
} table_rel;

/* A database a table backup looked into (worker side). */
typedef struct table_db {
    char *name;
    PGconn *conn;               /* pgbr's own, during prepare only */
    table_rel *rels;
    size_t nrels, cap;
    backup_relation *filter;    /* the engine's view of rels, sorted */
} table_db;

/* What a backup job needs besides the generic job. The loop thread fills
 * it before the job is submitted; then the worker running prepare and run
 * owns it. */
typedef struct backup_state {
    char *url;
    /* BACKUP ... INTO LATEST|'<subdir>' IN: the full backup the layer
     * extends ("LATEST" or the subdir); NULL for a full backup */
    char *incremental_of;
    /* WITH incremental_location: where the layer goes; NULL: the default */
    char *incremental_location;
    bool revision_history;
    bool cluster;               /* BACKUP INTO ...: every database, and the roles */
    char **dbs;
    int ndbs;
    /* BACKUP TABLE (patterns != NULL), loop side: the patterns, the client's
     * database and search path, a refused destination (reported after the
     * target checks) */
    backup_pattern *patterns;
    int npatterns;
    char *current_db;
    char **search_path;
    int nsearch_path;
    pgbr_error dest_err;
    /* BACKUP TABLE, worker side: the patterns' canonical text, the
     * databases looked into (dbs then lists those the backup holds, and
     * filters/nfilters their relations, parallel to dbs) */
    char **given;
    table_db *tdbs;
    size_t ntdbs;
    const backup_relation **filters;
    size_t *nfilters;
} backup_state;

static void state_free(void *arg)
{
    backup_state *st = arg;
    if (st == NULL)
        return;
    free(st->url);
    free(st->incremental_of);
    free(st->incremental_location);
    for (int i = 0; i < st->ndbs; i++)
        free(st->dbs[i]);
    free(st->dbs);
    for (int i = 0; i < st->npatterns; i++) {
        for (int j = 0; j < st->patterns[i].nparts; j++)
            free(st->patterns[i].parts[j]);
        if (st->given)
            free(st->given[i]);
    }
    free(st->patterns);
    free(st->given);
    free(st->current_db);
    for (int i = 0; i < st->nsearch_path; i++)
        free(st->search_path[i]);
    free(st->search_path);
    pgbr_error_clear(&st->dest_err);
    for (size_t i = 0; i < st->ntdbs; i++) {
        table_db *d = &st->tdbs[i];
        if (d->conn)
            PQfinish(d->conn);
        for (size_t k = 0; k < d->nrels; k++) {
            free(d->rels[k].schema);
            free(d->rels[k].name);
        }
        free(d->rels);
        free(d->filter);
        free(d->name);
    }
    free(st->tdbs);
    free(st->filters);
    free(st->nfilters);
    free(st);
}

/* ---- worker side ---- */

/* Non-admins need SELECT on every table of each database, as PostgreSQL
 * decides it for their role. */
static bool job_check_selects(exec_job *job, pgbr_error *err)
{
    backup_state *st = job->state;
    for (int i = 0; i < st->ndbs; i++) {
        const char *keys[] = { "dbname", "dbname", NULL };
        const char *vals[] = { job->conninfo, st->dbs[i], NULL };
        PGconn *c;
        PGresult *res;
        const char *params[1] = { job->user };
        bool ok = true;
        /* expand_dbname: the first "dbname" is the whole conninfo; the
         * second one overrides its database */
        c = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(c) != CONNECTION_OK) {
            pgbr_error_set(err, "08006", "could not connect to database \"%s\": %s", st->dbs[i],
                           PQerrorMessage(c));
            PQfinish(c);
            return false;
        }
        res = PQexecParams(c,
                           "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
                           "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind IN ('r', 'p', 'm', 'S') AND c.relpersistence <> 't' "
                           "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
                           "AND n.nspname NOT LIKE 'pg_toast%' "
                           "AND NOT pg_catalog.has_table_privilege($1, c.oid, 'SELECT') ORDER BY 1 LIMIT 1",
                           1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            ok = catalog_error_from_result(err, res, c);
        else if (PQntuples(res) > 0)
            ok = pgbr_error_set(err, "42501", "permission denied for table %s", PQgetvalue(res, 0, 0));
        if (!ok && PQntuples(res) > 0)
            pgbr_error_detail(err, "BACKUP DATABASE \"%s\" needs SELECT on every table of it, or the admin role.",
                              st->dbs[i]);
        PQclear(res);
        PQfinish(c);
        if (!ok)
            return false;
    }
    return true;
}

/* ---- worker side: BACKUP TABLE ---- */

/* The relations a table pattern can match: c is pg_class, n its namespace.
 * Tables, partitioned tables, views, materialized views, sequences and
 * foreign tables outside the system schemas and pgbr's own, not temporary,
 * not extension members. */
#define TABLE_REL_SELECT                                                                          \
    "SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_catalog.pg_class c "                  \
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "                                    \
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't' "               \
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "                           \
    "AND n.nspname !~ '^pg_(toast|temp)' "                                                         \
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "                                        \
    "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid "            \
    "AND d.deptype = 'e') "

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

/* The pattern as a user reads it back: each part as quote_ident quotes it
 * (asked of the server, so the keyword list is its own), `*` for star. */
static char *pattern_text(PGconn *catalog, const backup_pattern *p, pgbr_error *err)
{
    const char *params[3] = { NULL, NULL, NULL };
    for (int i = 0; i < p->nparts; i++)
        params[i] = p->parts[i];
    PGresult *res = pgclient_query_params(catalog,
                                          "SELECT pg_catalog.quote_ident($1), pg_catalog.quote_ident($2), "
                                          "pg_catalog.quote_ident($3)",
                                          3, params, err);
    if (res == NULL)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        PQclear(res);
        oom(err);
        return NULL;
    }
    for (int i = 0; i < p->nparts; i++)
        fprintf(f, "%s%s", i ? "." : "", PQgetvalue(res, 0, i));
    if (p->star)
        fputs(p->nparts > 0 ? ".*" : "*", f);
    PQclear(res);
    if (fclose(f) != 0) {
        free(text);
        oom(err);
        return NULL;
    }
    return text;
}

/* 42P01 for a pattern that names one relation, its parts joined by '.'
 * unquoted, as PostgreSQL names a relation in "... does not exist". */
static bool table_not_found(const backup_pattern *p, pgbr_error *err)
{
    return pgbr_error_set(err, "42P01", "table \"%s%s%s%s%s\" does not exist", p->parts[0],
                          p->nparts > 1 ? "." : "", p->nparts > 1 ? p->parts[1] : "",
                          p->nparts > 2 ? "." : "", p->nparts > 2 ? p->parts[2] : "");
}

/* The database named name, connected once with pgbr's own connection.
 * Non-admins need CONNECT on it (42501). When it does not exist: NULL with
 * *missing set if missing is given, else 3D000. */
static table_db *tables_db(exec_job *job, PGconn *catalog, const char *name, bool *missing, pgbr_error *err)
{
    backup_state *st = job->state;
    if (missing)
        *missing = false;
    for (size_t i = 0; i < st->ntdbs; i++)
        if (strcmp(st->tdbs[i].name, name) == 0)
            return &st->tdbs[i];
    const char *params[2] = { name, job->user };
    PGresult *res = pgclient_query_params(catalog,
                                          "SELECT pg_catalog.has_database_privilege($2, oid, 'CONNECT') "
                                          "FROM pg_catalog.pg_database WHERE datname = $1",
                                          2, params, err);
    if (res == NULL)
        return NULL;
    bool exists = PQntuples(res) > 0;
    bool may_connect = exists && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists) {
        if (missing)
            *missing = true;
        else
            pgbr_error_set(err, "3D000", "database \"%s\" does not exist", name);
        return NULL;
    }
    if (!job->is_admin && !may_connect) {
        pgbr_error_set(err, "42501", "permission denied for database %s", name);
        return NULL;
    }
    table_db *grown = realloc(st->tdbs, (st->ntdbs + 1) * sizeof *grown);
    if (grown == NULL) {
        oom(err);
        return NULL;
    }
    st->tdbs = grown;
    table_db *d = &st->tdbs[st->ntdbs];
    memset(d, 0, sizeof *d);
    if ((d->name = strdup(name)) == NULL) {
        oom(err);
        return NULL;
    }
    d->conn = pgclient_connect(job->conninfo, name, "pgbr backup", err);
    if (d->conn == NULL) {
        free(d->name);
        return NULL;
    }
    st->ntdbs++;
    return d;
}

static bool tables_schema_exists(table_db *d, const char *schema, bool *exists, pgbr_error *err)
{
    const char *params[1] = { schema };
    PGresult *res =
        pgclient_query_params(d->conn, "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", 1, params, err);
    if (res == NULL)
        return false;
    *exists = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

/* Add a relation to d's set once (by oid); named sticks. */
static bool tables_add(table_db *d, const char *oid, const char *kind, const char *schema, const char *name,
                       bool named, pgbr_error *err)
{
    uint32_t o = (uint32_t)strtoul(oid, NULL, 10);
    for (size_t i = 0; i < d->nrels; i++)
        if (d->rels[i].oid == o) {
            d->rels[i].named |= named;
            return true;
        }
    if (d->nrels == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        table_rel *grown = realloc(d->rels, cap * sizeof *grown);
        if (grown == NULL)
            return oom(err);
        d->rels = grown;
        d->cap = cap;
    }
    table_rel *r = &d->rels[d->nrels];
    r->oid = o;
    r->kind = kind[0];
    r->schema = strdup(schema);
    r->name = strdup(name);
    r->named = named;
    if (r->schema == NULL || r->name == NULL) {
        free(r->schema);
        free(r->name);
        return oom(err);
    }
    d->nrels++;
    return true;
}

/* The relations of d that match: in schema (NULL: any) and named name
 * (NULL: any). *found gets their number. */
static bool tables_match(table_db *d, const char *schema, const char *name, int *found, pgbr_error *err)
{
    const char *params[2] = { schema, name };
    PGresult *res = pgclient_query_params(d->conn,
                                          TABLE_REL_SELECT "AND ($1::text IS NULL OR n.nspname = $1) "
                                                           "AND ($2::text IS NULL OR c.relname = $2) "
                                                           "ORDER BY n.nspname, c.relname",
                                          2, params, err);
    if (res == NULL)
        return false;
    bool ok = true;
    *found = PQntuples(res);
    for (int i = 0; ok && i < PQntuples(res); i++)
        ok = tables_add(d, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                        PQgetvalue(res, i, 3), true, err);
    PQclear(res);
    return ok;
}

/* One pattern, by the rules of docs/statements.md (BACKUP TABLE). */
static bool tables_resolve(exec_job *job, PGconn *catalog, const backup_pattern *p, pgbr_error *err)
{
    backup_state *st = job->state;
    table_db *d, *here;
    bool exists = false, missing = false;
    int found = 0;
    if (p->star && p->nparts == 2) {                            /* d.s.* */
        d = tables_db(job, catalog, p->parts[0], NULL, err);
        if (d == NULL || !tables_schema_exists(d, p->parts[1], &exists, err))
            return false;
        if (!exists)
            return pgbr_error_set(err, "3F000", "schema \"%s\" does not exist", p->parts[1]);
        return tables_match(d, p->parts[1], NULL, &found, err);
    }
    if (!p->star && p->nparts == 3) {                           /* d.s.t */
        d = tables_db(job, catalog, p->parts[0], NULL, err);
        if (d == NULL || !tables_match(d, p->parts[1], p->parts[2], &found, err))
            return false;
        return found > 0 || table_not_found(p, err);
    }
    /* the other forms start in the current database */
    if ((here = tables_db(job, catalog, st->current_db, NULL, err)) == NULL)
        return false;
    if (p->star && p->nparts == 0)                              /* * */
        return tables_match(here, NULL, NULL, &found, err);
    if (p->star && p->nparts == 1) {                            /* a.*: schema a, else database a */
        if (!tables_schema_exists(here, p->parts[0], &exists, err))
            return false;
        if (exists)
            return tables_match(here, p->parts[0], NULL, &found, err);
        d = tables_db(job, catalog, p->parts[0], &missing, err);
        if (d == NULL && missing) {
            pgbr_error_set(err, "3F000", "schema \"%s\" does not exist", p->parts[0]);
            pgbr_error_hint(err, "There is no schema \"%s\" in database \"%s\" and no database \"%s\".",
                            p->parts[0], st->current_db, p->parts[0]);
        }
        return d != NULL && tables_match(d, NULL, NULL, &found, err);
    }
    if (p->nparts == 1) {                                       /* t: the first schema of the search path */
        for (int i = 0; found == 0 && i < st->nsearch_path; i++)
            if (!tables_match(here, st->search_path[i], p->parts[0], &found, err))
                return false;
    } else {                                                    /* a.t: schema a, else database a */
        if (!tables_schema_exists(here, p->parts[0], &exists, err))
            return false;
        if (exists) {
            if (!tables_match(here, p->parts[0], p->parts[1], &found, err))
                return false;
        } else {
            d = tables_db(job, catalog, p->parts[0], &missing, err);
            if (d == NULL && !missing)
                return false;
            if (d != NULL && !tables_match(d, "public", p->parts[1], &found, err))
                return false;
        }
    }
    return found > 0 || table_not_found(p, err);
}

/* "{oid,...}" of d's relations (all, or only the named ones), malloc'd. */
static char *tables_oid_array(const table_db *d, bool named_only)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    fputc('{', f);
    bool first = true;
    for (size_t i = 0; i < d->nrels; i++) {
        if (named_only && !d->rels[i].named)
            continue;
        fprintf(f, "%s%" PRIu32, first ? "" : ",", d->rels[i].oid);
        first = false;
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* Non-admins: USAGE on the schema and SELECT on each relation a pattern
 * named (sequences: SELECT or USAGE), worded as PostgreSQL words them. */
static bool tables_check_privileges(exec_job *job, pgbr_error *err)
{
    static const char sql[] =
        "SELECT format('%I.%I', n.nspname, c.relname), c.relkind, n.nspname, "
        "       pg_catalog.has_schema_privilege($1, n.oid, 'USAGE'), "
        "       CASE WHEN c.relkind = 'S' "
        "            THEN pg_catalog.has_sequence_privilege($1, c.oid, 'SELECT') "
        "                 OR pg_catalog.has_sequence_privilege($1, c.oid, 'USAGE') "
        "            ELSE pg_catalog.has_table_privilege($1, c.oid, 'SELECT') END "
        "FROM unnest($2::pg_catalog.oid[]) WITH ORDINALITY AS u(oid, o) "
        "JOIN pg_catalog.pg_class c ON c.oid = u.oid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY u.o";
    backup_state *st = job->state;
    for (size_t i = 0; i < st->ntdbs; i++) {
        table_db *d = &st->tdbs[i];
        char *oids = tables_oid_array(d, true);
        if (oids == NULL)
            return oom(err);
        const char *params[2] = { job->user, oids };
        PGresult *res = pgclient_query_params(d->conn, sql, 2, params, err);
        free(oids);
        if (res == NULL)
            return false;
        bool ok = true;
        for (int r = 0; ok && r < PQntuples(res); r++) {
            const char *kind = PQgetvalue(res, r, 1);
            if (strcmp(PQgetvalue(res, r, 3), "t") != 0)
                ok = pgbr_error_set(err, "42501", "permission denied for schema %s", PQgetvalue(res, r, 2));
            else if (strcmp(PQgetvalue(res, r, 4), "t") != 0)
                ok = pgbr_error_set(err, "42501", "permission denied for %s %s",
                                    kind[0] == 'S'   ? "sequence"
                                    : kind[0] == 'v' ? "view"
                                    : kind[0] == 'm' ? "materialized view"
                                    : kind[0] == 'f' ? "foreign table"
                                                     : "table",
                                    PQgetvalue(res, r, 0));
        }
        PQclear(res);
        if (!ok) {
            pgbr_error_hint(err, "BACKUP TABLE needs SELECT on each relation it names and USAGE on its schema, "
                                 "or the admin role.");
            return false;
        }
    }
    return true;
}

/* The partitions (at every level) of the partitioned tables in the set,
 * and the sequences owned by (a column of) a table in it. */
static bool tables_expand(backup_state *st, pgbr_error *err)
{
    static const char sql[] =
        "WITH sel AS (SELECT u.oid FROM unnest($1::pg_catalog.oid[]) AS u(oid)), "
        "tabs AS (SELECT oid FROM sel "
        "         UNION SELECT t.relid FROM sel JOIN pg_catalog.pg_class p ON p.oid = sel.oid AND p.relkind = 'p' "
        "               CROSS JOIN LATERAL pg_catalog.pg_partition_tree(sel.oid) t), "
        "seqs AS (SELECT d.objid AS oid FROM pg_catalog.pg_depend d JOIN tabs ON d.refobjid = tabs.oid "
        "         JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
        "           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
        "           AND d.deptype IN ('a', 'i')) " TABLE_REL_SELECT
        "AND c.oid IN (SELECT oid FROM tabs UNION SELECT oid FROM seqs) ORDER BY n.nspname, c.relname";
    for (size_t i = 0; i < st->ntdbs; i++) {
        table_db *d = &st->tdbs[i];
        if (d->nrels == 0)
            continue;
        char *oids = tables_oid_array(d, false);
        if (oids == NULL)
            return oom(err);
        const char *params[1] = { oids };
        PGresult *res = pgclient_query_params(d->conn, sql, 1, params, err);
        free(oids);
        if (res == NULL)
            return false;
        bool ok = true;
        for (int r = 0; ok && r < PQntuples(res); r++)
            ok = tables_add(d, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                            PQgetvalue(res, r, 3), false, err);
        PQclear(res);
        if (!ok)
            return false;
    }
    return true;
}

static int by_schema_name(const void *a, const void *b)
{
    const backup_relation *x = a, *y = b;
    int c = strcmp(x->schema, y->schema);
    return c ? c : strcmp(x->name, y->name);
}

/* dbs and the engine's filters: the databases holding relations of the
 * set, in the order they were first looked into. */
static bool tables_plan(backup_state *st, pgbr_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < st->ntdbs; i++)
        n += st->tdbs[i].nrels > 0;
    if (n == 0)
        return pgbr_error_set(err, "42P01", "table \"%s\" does not exist", st->given[0]);
    for (int i = 0; i < st->ndbs; i++)
        free(st->dbs[i]);
    free(st->dbs);
    st->ndbs = 0;
    st->dbs = calloc(n, sizeof *st->dbs);
    st->filters = calloc(n, sizeof *st->filters);
    st->nfilters = calloc(n, sizeof *st->nfilters);
    if (st->dbs == NULL || st->filters == NULL || st->nfilters == NULL)
        return oom(err);
    for (size_t i = 0; i < st->ntdbs; i++) {
        table_db *d = &st->tdbs[i];
        if (d->nrels == 0)
            continue;
        d->filter = calloc(d->nrels, sizeof *d->filter);
        if (d->filter == NULL || (st->dbs[st->ndbs] = strdup(d->name)) == NULL)
            return oom(err);
        for (size_t k = 0; k < d->nrels; k++)
            d->filter[k] = (backup_relation){ d->rels[k].schema, d->rels[k].name };
        qsort(d->filter, d->nrels, sizeof *d->filter, by_schema_name);
        st->filters[st->ndbs] = d->filter;
        st->nfilters[st->ndbs] = d->nrels;
        st->ndbs++;
    }
    return true;
}

/* BACKUP TABLE's checks: resolve the patterns, privileges (non-admins),
 * the partitions and owned sequences, then the destination. */
static bool tables_prepare(exec_job *job, PGconn *catalog, pgbr_error *err)
{
    backup_state *st = job->state;
    bool ok = (st->given = calloc((size_t)st->npatterns + 1, sizeof *st->given)) != NULL || oom(err);
    for (int i = 0; ok && i < st->npatterns; i++)
        ok = (st->given[i] = pattern_text(catalog, &st->patterns[i], err)) != NULL;
    for (int i = 0; ok && i < st->npatterns; i++)
        ok = tables_resolve(job, catalog, &st->patterns[i], err);
    ok = ok && (job->is_admin || tables_check_privileges(job, err)) && tables_expand(st, err) &&
         tables_plan(st, err);
    for (size_t i = 0; i < st->ntdbs; i++) {
        if (st->tdbs[i].conn)
            PQfinish(st->tdbs[i].conn);
        st->tdbs[i].conn = NULL;
    }
    if (ok && pgbr_error_is_set(&st->dest_err)) {
        pgbr_error_move(err, &st->dest_err);
        return false;
    }
    return ok;
}

static bool backup_prepare(exec_job *job, struct pg_conn *conn, pgbr_error *err)
{
    backup_state *st = job->state;
    if (st->patterns) {
        if (!tables_prepare(job, conn, err))
            return false;
    } else if (!job->is_admin && !job_check_selects(job, err)) {
        return false;
    }
    /* the destinations must be usable before a job exists */
    storage *s = storage_open(st->url, &job->storage, err);
    if (s == NULL)
        return false;
    storage_close(s);
    if (st->incremental_location != NULL) {
        if ((s = storage_open(st->incremental_location, &job->storage, err)) == NULL)
            return false;
        storage_close(s);
    }
    return true;
}

/*
 * Test hook (regress/t): with PGBR_TEST_SNAPSHOT_DIR set, each database's
 * exported snapshot id is written to <dir>/<database>.snapshot and the backup
 * waits (up to 60 s) for <dir>/<database>.go before it reads any row, so a
 * test can compute checksums in a transaction that imports the very snapshot
 * the backup copies. Unset in production: no effect.
 */
static void test_snapshot_hook(void *arg, const char *database, const char *snapshot)
{
    const char *dir = arg;
    char *path = NULL, *tmp = NULL, *go = NULL;
    if (asprintf(&path, "%s/%s.snapshot", dir, database) < 0 || asprintf(&tmp, "%s.tmp", path) < 0 ||
        asprintf(&go, "%s/%s.go", dir, database) < 0)
        goto done;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        goto done;
    fprintf(f, "%s\n", snapshot);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        goto done;
    for (int i = 0; i < 600 && access(go, F_OK) != 0; i++) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
done:
    free(path);
    free(tmp);
    free(go);
}

/* The engine names the directory it writes as soon as it owns it, so a
 * later run can remove what this one left. */
static void backup_save_checkpoint(void *arg, const char *json)
{
    exec_job_save_checkpoint(arg, json);
}

/*
 * Test hook (regress/t): with PGBR_TEST_SNAPSHOT_DIR set and a file
 * <dir>/<database>.hold present, once all but the last of the database's
 * files are durable the copy writes <dir>/<database>.held and waits (up to
 * 60 s) until the .hold file is removed, so a test can pause a backup that
 * has some tables done. Unset in production: no effect.
 */
static void test_file_hook(void *arg, const char *database, size_t done, size_t total)
{
    const char *dir = arg;
    char *hold = NULL, *held = NULL;
    if (done + 1 != total || asprintf(&hold, "%s/%s.hold", dir, database) < 0)
        return;
    if (access(hold, F_OK) == 0 && asprintf(&held, "%s/%s.held", dir, database) >= 0) {
        FILE *f = fopen(held, "w");
        if (f)
            fclose(f);
        for (int i = 0; i < 600 && access(hold, F_OK) == 0; i++) {
            struct timespec ts = { 0, 100 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    free(hold);
    free(held);
}

static bool backup_work(exec_job *job, pgbr_error *err)
{
    backup_state *st = job->state;
    backup_request br;
    backup_result res;
    struct timespec ts;
    memset(&br, 0, sizeof br);
    br.conninfo = job->conninfo;
    br.databases = (const char *const *)st->dbs;
    br.ndatabases = (size_t)st->ndbs;
    if (st->filters) {
        br.tables = (const backup_relation *const *)st->filters;
        br.ntables = st->nfilters;
        br.patterns = (const char *const *)st->given;
        br.npatterns = (size_t)st->npatterns;
    }
    br.cluster = st->cluster;
    br.collection_url = st->url;
    br.storage = &job->storage;
    br.job_id = job->id;
    clock_gettime(CLOCK_REALTIME, &ts);
    br.end_time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    br.workers = job->workers;
    br.bundle_table_max = job->bundle_limit;
    br.change_stream = true;
    br.incremental_of = st->incremental_of;
    br.incremental_location = st->incremental_location;
    br.revision_history = st->revision_history;
    br.bundle_bytes = job->bundle_size;
    if (getenv("PGBR_TEST_SNAPSHOT_DIR") != NULL) {
        br.after_snapshot = test_snapshot_hook;
        br.after_snapshot_arg = getenv("PGBR_TEST_SNAPSHOT_DIR");
        br.after_file = test_file_hook;
    }
    br.save_checkpoint = backup_save_checkpoint;
    /* another run of the job (a retry, a resume, an adoption) continues
     * from what the last one kept */
    /* a copy: saving a new checkpoint during the run replaces the job's */
    char *checkpoint = job->checkpoint ? strdup(job->checkpoint) : NULL;
    br.checkpoint = checkpoint;
    br.keep_partial = exec_job_will_run_again;
    bool ok = br.incremental_of ? backup_incremental_run(&br, exec_job_progress, job, &res, err)
                                : backup_run(&br, exec_job_progress, job, &res, err);
    free(checkpoint);
    job->rows = res.rows;
    job->index_entries = res.index_entries;
    job->bytes = res.bytes;
    return ok;
}

/* ---- another run of the job (job_node.c) ---- */

static char *spec_save(exec_job *job, bool redact)
{
    backup_state *st = job->state;
    bool secret = false;
    json_t *o = json_object(), *dbs = json_array(), *tables = st->filters ? json_array() : json_null();
    json_t *given = json_array();
    char *out = NULL;
    if (!o || !dbs || !tables || !given)
        goto done;
    for (int i = 0; i < st->ndbs; i++) {
        json_array_append_new(dbs, json_string(st->dbs[i]));
        if (st->filters) {
            json_t *rels = json_array();
            for (size_t k = 0; rels && k < st->nfilters[i]; k++)
                json_array_append_new(rels, json_pack("{s:s, s:s}", "schema", st->filters[i][k].schema, "name",
                                                      st->filters[i][k].name));
            json_array_append_new(tables, rels);
        }
    }
    for (int i = 0; st->given && i < st->npatterns; i++)
        json_array_append_new(given, json_string(st->given[i]));
    json_object_set_new(o, "url", exec_spec_url(st->url, redact, &secret));
    json_object_set_new(o, "incremental_location", exec_spec_url(st->incremental_location, redact, &secret));
    json_object_set_new(o, "secrets", json_boolean(secret));
    json_object_set_new(o, "incremental_of", st->incremental_of ? json_string(st->incremental_of) : json_null());
    json_object_set_new(o, "revision_history", json_boolean(st->revision_history));
    json_object_set_new(o, "cluster", json_boolean(st->cluster));
    json_object_set(o, "databases", dbs);
    json_object_set(o, "tables", tables);
    json_object_set(o, "given", given);
    out = json_dumps(o, JSON_COMPACT);
done:
    json_decref(o);
    json_decref(dbs);
    json_decref(tables);
    json_decref(given);
    return out;
}

static bool spec_bad(pgbr_error *err)
{
    return pgbr_error_set(err, "XX000", "the stored request of the job cannot be read");
}

static char *spec_strdup(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static bool spec_load(exec_job *job, const char *text, pgbr_error *err)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    backup_state *st = calloc(1, sizeof *st);
    bool ok = o && st && json_is_object(o);
    if (!st) {
        json_decref(o);
        return oom(err);
    }
    json_t *dbs = ok ? json_object_get(o, "databases") : NULL, *tables = ok ? json_object_get(o, "tables") : NULL;
    json_t *given = ok ? json_object_get(o, "given") : NULL;
    ok = ok && json_is_array(dbs) && (st->url = spec_strdup(json_object_get(o, "url"))) != NULL;
    if (ok && json_is_string(json_object_get(o, "incremental_of")))
        ok = (st->incremental_of = spec_strdup(json_object_get(o, "incremental_of"))) != NULL;
    if (ok && json_is_string(json_object_get(o, "incremental_location")))
        ok = (st->incremental_location = spec_strdup(json_object_get(o, "incremental_location"))) != NULL;
    st->revision_history = json_is_true(json_object_get(o, "revision_history"));
    st->cluster = json_is_true(json_object_get(o, "cluster"));
    size_t n = ok ? json_array_size(dbs) : 0;
    ok = ok && (st->dbs = calloc(n + 1, sizeof *st->dbs)) != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (st->dbs[st->ndbs++] = spec_strdup(json_array_get(dbs, i))) != NULL;
    if (ok && json_is_array(tables)) {
        /* a table backup: its resolved relations per database */
        ok = json_array_size(tables) == n && json_is_array(given) &&
             (st->tdbs = calloc(n + 1, sizeof *st->tdbs)) != NULL &&
             (st->filters = calloc(n + 1, sizeof *st->filters)) != NULL &&
             (st->nfilters = calloc(n + 1, sizeof *st->nfilters)) != NULL &&
             (st->patterns = calloc(json_array_size(given) + 1, sizeof *st->patterns)) != NULL &&
             (st->given = calloc(json_array_size(given) + 1, sizeof *st->given)) != NULL;
        for (size_t i = 0; ok && i < json_array_size(given); i++)
            ok = (st->given[st->npatterns++] = spec_strdup(json_array_get(given, i))) != NULL;
        for (size_t i = 0; ok && i < n; i++) {
            json_t *rels = json_array_get(tables, i);
            table_db *d = &st->tdbs[st->ntdbs++];
            size_t nr = json_array_size(rels);
            ok = json_is_array(rels) && (d->name = strdup(st->dbs[i])) != NULL &&
                 (d->rels = calloc(nr + 1, sizeof *d->rels)) != NULL &&
                 (d->filter = calloc(nr + 1, sizeof *d->filter)) != NULL;
            for (size_t k = 0; ok && k < nr; k++) {
                table_rel *r = &d->rels[d->nrels++];
                ok = (r->schema = spec_strdup(json_object_get(json_array_get(rels, k), "schema"))) != NULL &&
                     (r->name = spec_strdup(json_object_get(json_array_get(rels, k), "name"))) != NULL;
                if (ok)
                    d->filter[k] = (backup_relation){ r->schema, r->name };
            }
            st->filters[i] = d->filter;
            st->nfilters[i] = d->nrels;
        }
    }
    json_decref(o);
    if (!ok) {
        state_free(st);
        return spec_bad(err);
    }
    job->state = st;
    return true;
}

/* What an earlier run left: its backup directory (the checkpoint names
 * it) and, for a full backup, the change stream it created. */
static bool backup_discard_job(exec_job *job, pgbr_error *err)
{
    backup_state *st = job->state;
    json_error_t jerr;
    json_t *cp = job->checkpoint ? json_loads(job->checkpoint, 0, &jerr) : NULL;
    const char *prefix = json_string_value(json_object_get(cp, "prefix"));
    backup_request br;
    memset(&br, 0, sizeof br);
    br.conninfo = job->conninfo;
    br.databases = (const char *const *)st->dbs;
    br.ndatabases = (size_t)st->ndbs;
    br.collection_url = st->url;
    br.storage = &job->storage;
    br.job_id = job->id;
    br.incremental_of = st->incremental_of;
    bool ok = backup_discard(&br, prefix, err);
    json_decref(cp);
    return ok;
}

static const exec_job_ops backup_ops = { "BACKUP", backup_prepare, backup_work, state_free,
                                         spec_save, spec_load, backup_discard_job };

const exec_job_ops *exec_backup_job_ops(void)
{
    return &backup_ops;
}

/* ---- loop side ---- */

static void on_databases(exec_request *req, result_set *rs, pgbr_error *err)
{
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    /* rows: datname, exists, may_connect, in the order given */
    for (int i = 0; i < rs->nrows; i++) {
        const char *name = result_set_value(rs, i, 0);
        if (strcmp(result_set_value(rs, i, 1), "t") != 0) {
            exec_fail(req, "3D000", "database \"%s\" does not exist", name);
            result_set_free(rs);
            return;
        }
        if (!req->is_admin && strcmp(result_set_value(rs, i, 2), "t") != 0) {
            exec_fail(req, "42501", "permission denied for database %s", name);
            result_set_free(rs);
            return;
        }
    }
    result_set_free(rs);
    exec_job_submit(req);
}

/* A whole-server backup: every database that is not a template and
 * accepts connections. */
static void on_all_databases(exec_request *req, result_set *rs, pgbr_error *err)
{
    backup_state *job = req->job->state;
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    char **dbs = calloc((size_t)rs->nrows + 1, sizeof *dbs);
    bool ok = dbs != NULL;
    for (int i = 0; ok && i < rs->nrows; i++)
        ok = (dbs[i] = strdup(result_set_value(rs, i, 0))) != NULL;
    if (ok) {
        for (int i = 0; i < job->ndbs; i++)
            free(job->dbs[i]);
        free(job->dbs);
        job->dbs = dbs;
        job->ndbs = rs->nrows;
    } else if (dbs != NULL) {
        for (int i = 0; i < rs->nrows; i++)
            free(dbs[i]);
        free(dbs);
    }
    result_set_free(rs);
    if (!ok) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_job_submit(req);
}

/* BACKUP TABLE: the client's database and effective search path (one row
 * per schema, in order; one row with a NULL schema when the path is empty). */
static void on_table_context(exec_request *req, result_set *rs, pgbr_error *err)
{
    backup_state *job = req->job->state;
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    bool ok = rs->nrows > 0 && result_set_value(rs, 0, 0) != NULL;
    if (ok) {
        job->current_db = strdup(result_set_value(rs, 0, 0));
        job->search_path = calloc((size_t)rs->nrows, sizeof *job->search_path);
        ok = job->current_db != NULL && job->search_path != NULL;
    }
    for (int i = 0; ok && i < rs->nrows; i++) {
        const char *schema = result_set_value(rs, i, 1);
        if (schema == NULL)
            continue;
        ok = (job->search_path[job->nsearch_path] = strdup(schema)) != NULL;
        job->nsearch_path += ok;
    }
    result_set_free(rs);
    if (!ok) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_job_submit(req);
}

static void on_identity(exec_request *req)
{
    backup_state *job = req->job->state;
    if (job->cluster && !req->is_admin) {
        exec_fail(req, "42501", "only users with the admin role or the BACKUP system privilege are allowed to "
                                "perform full cluster backups");
        return;
    }
    if (job->patterns) {
        /* a refused destination is reported after the target checks */
        if (exec_implicit_access_allowed(req, job->url, &job->dest_err) && job->incremental_location != NULL)
            exec_implicit_access_allowed(req, job->incremental_location, &job->dest_err);
        exec_run_query(req,
                       "SELECT pg_catalog.current_database(), u.s FROM (SELECT 1) AS one "
                       "LEFT JOIN unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS u(s, o) ON true "
                       "ORDER BY u.o",
                       0, NULL, on_table_context);
        return;
    }
    if (!exec_check_implicit_access(req, job->url) ||
        (job->incremental_location != NULL && !exec_check_implicit_access(req, job->incremental_location)))
        return;
    if (job->cluster) {
        exec_run_query(req, "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate AND datallowconn "
                            "ORDER BY datname", 0, NULL, on_all_databases);
        return;
    }
    /* a text[] literal of the names, built by PostgreSQL's own quoting rules
     * on the server side: pass them one per parameter */
    char *sql = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&sql, &len);
    const char **params = calloc((size_t)job->ndbs, sizeof *params);
    fputs("SELECT d, EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d), "
          "EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d "
          "AND pg_catalog.has_database_privilege(current_user, datname, 'CONNECT')) "
          "FROM (VALUES ", f);
    for (int i = 0; i < job->ndbs; i++) {
        fprintf(f, "%s($%d::text, %d)", i ? ", " : "", i + 1, i);
        params[i] = job->dbs[i];
    }
    fputs(") AS t(d, o) ORDER BY o", f);
    fclose(f);
    exec_run_query(req, sql, job->ndbs, params, on_databases);
    free(params);
    free(sql);
}

void exec_backup_job_start(exec_request *req, bool detached)
{
    const sql_backup *b = &req->stmt->u.backup;
    pgbr_error err = PGBR_ERROR_INIT;
    backup_state *job;
    const char *url, *inc = NULL;

    if (b->dest_kind == SQL_BACKUP_TO) {
        exec_fail_not_implemented(req, "BACKUP ... TO");
        return;
    }
    if (b->as_of != NULL) {
        exec_fail(req, "0A000", "BACKUP ... AS OF SYSTEM TIME is not supported");
        return;
    }
    if (b->options.encryption_passphrase || b->options.kms || b->options.execution_locality) {
        exec_fail_not_implemented(req, "BACKUP with encryption or EXECUTION LOCALITY");
        return;
    }
    if (b->options.revision_history.expr != NULL) {
        exec_fail(req, "22023", "option \"revision_history\" takes TRUE or FALSE");
        return;
    }
    if (detached && req->info.txn_status == 'T') {
        exec_fail_not_implemented(req, "BACKUP ... WITH detached inside a transaction block");
        return;
    }
    if (!exec_check_incremental_location(req, b->options.incremental_location, b->dest.n))
        return;
    if (b->dest.n != 1) {
        exec_fail_not_implemented(req, "locality-aware BACKUP");
        return;
    }
    url = exec_string_value(req, &b->dest.items[0], &err);
    if (url != NULL && b->options.incremental_location != NULL)
        inc = exec_string_value(req, &b->options.incremental_location->items[0], &err);
    if (pgbr_error_is_set(&err)) {
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    job = calloc(1, sizeof *job);
    bool ok = job != NULL;
    if (ok) {
        bool tables = b->targets.kind == SQL_TARGET_TABLES;
        job->url = strdup(url);
        job->incremental_location = inc ? strdup(inc) : NULL;
        job->revision_history = b->options.revision_history.set && b->options.revision_history.value;
        if (b->dest_kind != SQL_BACKUP_INTO) {
            const char *of = "LATEST";
            if (b->dest_kind == SQL_BACKUP_INTO_SUBDIR) {
                of = exec_string_value(req, b->subdir, &err);
                if (of == NULL) {
                    state_free(job);
                    exec_finish(req, NULL, &err);
                    pgbr_error_clear(&err);
                    return;
                }
            }
            ok = (job->incremental_of = strdup(of)) != NULL;
        }
        job->cluster = b->targets.kind == SQL_TARGET_CLUSTER;
        job->ndbs = job->cluster || tables ? 0 : b->targets.n;
        job->dbs = calloc((size_t)job->ndbs + 1, sizeof *job->dbs);
        ok = ok && job->url != NULL && (inc == NULL || job->incremental_location != NULL) && job->dbs != NULL;
        for (int i = 0; ok && i < job->ndbs; i++)
            ok = (job->dbs[i] = strdup(b->targets.databases[i])) != NULL;
        if (ok && tables) {
            job->patterns = calloc((size_t)b->targets.n + 1, sizeof *job->patterns);
            ok = job->patterns != NULL;
            for (int i = 0; ok && i < b->targets.n; i++) {
                const sql_table_pattern *p = &b->targets.tables[i];
                backup_pattern *c = &job->patterns[job->npatterns++];
                c->star = p->star;
                for (int j = 0; ok && j < p->nparts && j < 3; j++)
                    ok = (c->parts[c->nparts++] = strdup(p->parts[j])) != NULL;
            }
        }
        if (!ok)
            state_free(job);
    }
    if (!ok || (req->job = exec_job_new(req, &backup_ops, job, detached)) == NULL) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_identify(req, on_identity);
}
