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

#include "catalog_int.h"

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

#define JOBS_TERMINAL CATALOG_TERMINAL_SQL

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
        id_array = catalog_id_array(filter->ids, filter->nids);
        if (id_array == NULL)
            return pgbr_error_set(err, "53200", "out of memory");
    }

    if (!catalog_begin(conn, "BEGIN READ ONLY", err))
        goto done;
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
    catalog_rollback(conn);
done:
    PQclear(res);
    free(id_array);
    return ok;
}

bool catalog_jobs_count_unfinished(struct pg_conn *conn, const catalog_jobs_filter *filter, int *count,
                                   pgbr_error *err)
{
    const char *params[2];
    char *id_array;
    PGresult *res;
    bool ok;

    *count = 0;
    if (filter->nids <= 0)
        return true;
    if (!catalog_require_conn(conn, err))
        return false;
    id_array = catalog_id_array(filter->ids, filter->nids);
    if (id_array == NULL)
        return pgbr_error_set(err, "53200", "out of memory");
    params[0] = id_array;
    params[1] = filter->user_name;
    /* In a transaction of its own only for catalog_begin's reconnect of a
     * connection that died while idle. */
    ok = catalog_begin(conn, "BEGIN READ ONLY", err);
    if (ok) {
        res = PQexecParams(conn,
                           "SELECT count(*) FROM pgbr.jobs WHERE id = ANY ($1::int8[])"
                           " AND ($2::text IS NULL OR user_name = $2::text)"
                           " AND status NOT IN " JOBS_TERMINAL,
                           2, NULL, params, NULL, NULL, 0);
        ok = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        if (ok)
            *count = atoi(PQgetvalue(res, 0, 0));
        else
            catalog_error_from_result(err, res, conn);
        PQclear(res);
        if (ok)
            ok = catalog_exec(conn, "COMMIT", 0, NULL, err);
        else
            catalog_rollback(conn);
    }
    free(id_array);
    return ok;
}
