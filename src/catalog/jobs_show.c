/*
 * jobs_show.c - the catalog side of SHOW JOBS / SHOW JOB: which rows of
 * pgbr.jobs a statement shows, in which order, printed as the client's own
 * session would print them (see include/pgbr/catalog.h, docs/jobs.md).
 *
 * Timestamps are rendered by PostgreSQL, not by us: the query runs in a
 * read-only transaction whose DateStyle, TimeZone and IntervalStyle are set
 * (transaction-locally) to the client session's values, so the text of a
 * timestamptz is byte for byte what the client would have seen.
 */
#include "pgbr/catalog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const catalog_show_jobs_names[CATALOG_SHOW_JOBS_NCOLS] = {
    "job_id",   "job_type", "description",        "statement", "user_name",      "status",
    "running_status", "created", "started",       "finished",  "modified",       "fraction_completed",
    "error",    "coordinator_id", "trace_id",     "execution_errors",
};

const uint32_t catalog_show_jobs_types[CATALOG_SHOW_JOBS_NCOLS] = {
    PGBR_OID_INT8,        PGBR_OID_TEXT,        PGBR_OID_TEXT,        PGBR_OID_TEXT,
    PGBR_OID_TEXT,        PGBR_OID_TEXT,        PGBR_OID_TEXT,        PGBR_OID_TIMESTAMPTZ,
    PGBR_OID_TIMESTAMPTZ, PGBR_OID_TIMESTAMPTZ, PGBR_OID_TIMESTAMPTZ, PGBR_OID_FLOAT8,
    PGBR_OID_TEXT,        PGBR_OID_INT8,        PGBR_OID_INT8,        PGBR_OID_TEXT_ARRAY,
};

#define JOBS_TERMINAL "('succeeded', 'failed', 'canceled', 'revert-failed')"

/*
 * Display order: jobs still in flight (any status that is not terminal)
 * first, most recently started first; those never started yet (pending) after
 * the started ones, newest created first. Then terminal jobs, most recently
 * finished first. id (time-ordered) breaks ties, newest first.
 */
#define JOBS_ORDER_BY                                                                         \
    " ORDER BY (status IN " JOBS_TERMINAL "),\n"                                              \
    "          CASE WHEN status NOT IN " JOBS_TERMINAL " THEN started END DESC NULLS LAST,\n"  \
    "          CASE WHEN status NOT IN " JOBS_TERMINAL " THEN created END DESC,\n"             \
    "          finished DESC NULLS LAST, id DESC"

/* $1 = user name or NULL. A terminal job stays listed for 12 hours after it
 * finished (modified stands in for a missing finished time). */
static const char jobs_listing_sql[] =
    "SELECT id, job_type, left(description, 100), statement, user_name, status, running_status,\n"
    "       created, started, finished, modified, fraction_completed, error,\n"
    "       coordinator_id, trace_id, execution_errors\n"
    "  FROM pgbr.jobs\n"
    " WHERE ($1::text IS NULL OR user_name = $1::text)\n"
    "   AND (status NOT IN " JOBS_TERMINAL "\n"
    "        OR COALESCE(finished, modified) > pg_catalog.now() - interval '12 hours')\n" JOBS_ORDER_BY;

/* $1 = int8[] of ids, $2 = user name or NULL. */
static const char jobs_by_id_sql[] =
    "SELECT id, job_type, description, statement, user_name, status, running_status,\n"
    "       created, started, finished, modified, fraction_completed, error,\n"
    "       coordinator_id, trace_id, execution_errors\n"
    "  FROM pgbr.jobs\n"
    " WHERE id = ANY ($1::int8[])\n"
    "   AND ($2::text IS NULL OR user_name = $2::text)\n" JOBS_ORDER_BY;

_Static_assert(CATALOG_SHOW_JOBS_DESCRIPTION_MAX == 100, "jobs_listing_sql hard-codes left(description, 100)");

/* Run a command that returns no rows we need. */

/* "{1,2,3}": the ids as an int8[] literal. Returns malloc'd text or NULL. */
static char *jobs_id_array(const int64_t *ids, int nids)
{
    size_t cap = 2 + (size_t)nids * 21 + 1, len = 0;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    out[len++] = '{';
    for (int i = 0; i < nids; i++) {
        int n = snprintf(out + len, cap - len, "%s%lld", i > 0 ? "," : "", (long long)ids[i]);
        if (n < 0 || (size_t)n >= cap - len) {
            free(out);
            return NULL;
        }
        len += (size_t)n;
    }
    out[len++] = '}';
    out[len] = '\0';
    return out;
}

/* Make this transaction print values the way the client's session does.
 * extra_float_digits = 1 is PostgreSQL's default (shortest exact float8
 * text), guarding against a catalog role configured otherwise. */
static bool jobs_set_format(PGconn *conn, const catalog_jobs_filter *f, pgbr_error *err)
{
    const char *params[3] = { f->datestyle, f->timezone, f->intervalstyle };

    return catalog_exec(conn,
                     "SELECT CASE WHEN $1::text IS NULL THEN NULL"
                     " ELSE pg_catalog.set_config('DateStyle', $1::text, true) END,"
                     " CASE WHEN $2::text IS NULL THEN NULL"
                     " ELSE pg_catalog.set_config('TimeZone', $2::text, true) END,"
                     " CASE WHEN $3::text IS NULL THEN NULL"
                     " ELSE pg_catalog.set_config('IntervalStyle', $3::text, true) END,"
                     " pg_catalog.set_config('extra_float_digits', '1', true)",
                     3, params, err);
}

static result_set *jobs_result_from_pg(const PGresult *res)
{
    result_set *rs = result_set_new(CATALOG_SHOW_JOBS_NCOLS, catalog_show_jobs_names,
                                    catalog_show_jobs_types);
    const char *row[CATALOG_SHOW_JOBS_NCOLS];

    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < CATALOG_SHOW_JOBS_NCOLS; c++)
            row[c] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
        result_set_add_row(rs, row);
    }
    return rs;
}

bool catalog_show_jobs(struct pg_conn *conn, const catalog_jobs_filter *filter, result_set **out,
                       pgbr_error *err)
{
    PGresult *res = NULL;
    char *id_array = NULL;
    bool ok = false;

    *out = NULL;
    if (!filter->listing && filter->nids <= 0) {
        /* Nothing selected: no need to ask the catalog. */
        *out = result_set_new(CATALOG_SHOW_JOBS_NCOLS, catalog_show_jobs_names, catalog_show_jobs_types);
        return true;
    }
    if (!catalog_require_conn(conn, err))
        return false;
    if (!filter->listing) {
        id_array = jobs_id_array(filter->ids, filter->nids);
        if (id_array == NULL)
            return pgbr_error_set(err, "53200", "out of memory");
    }

    if (!catalog_exec(conn, "BEGIN READ ONLY", 0, NULL, err)) {
        /* A worker's idle connection may have died since its last use (server
         * restart, idle timeout) and libpq only notices on use. BEGIN has no
         * effect yet, so reconnecting once and retrying is safe. */
        if (PQstatus(conn) != CONNECTION_BAD)
            goto done;
        PQreset(conn);
        if (PQstatus(conn) != CONNECTION_OK)
            goto done;
        pgbr_error_clear(err);
        if (!catalog_exec(conn, "BEGIN READ ONLY", 0, NULL, err))
            goto done;
    }
    if (!jobs_set_format(conn, filter, err))
        goto rollback;
    if (filter->listing) {
        const char *params[1] = { filter->user_name };
        res = PQexecParams(conn, jobs_listing_sql, 1, NULL, params, NULL, NULL, 0);
    } else {
        const char *params[2] = { id_array, filter->user_name };
        res = PQexecParams(conn, jobs_by_id_sql, 2, NULL, params, NULL, NULL, 0);
    }
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK ||
        PQnfields(res) != CATALOG_SHOW_JOBS_NCOLS) {
        if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
            pgbr_error_set(err, "XX000", "unexpected column count %d in the jobs query", PQnfields(res));
        else
            catalog_error_from_result(err, res, conn);
        goto rollback;
    }
    *out = jobs_result_from_pg(res);
    ok = catalog_exec(conn, "COMMIT", 0, NULL, err);
    if (!ok) {
        result_set_free(*out);
        *out = NULL;
    }
    goto done;

rollback:
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
    }
done:
    PQclear(res);
    free(id_array);
    return ok;
}
