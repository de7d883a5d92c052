/*
 * show_jobs.c - SHOW JOBS, SHOW JOB <expr>, SHOW JOBS <select> and SHOW
 * AUTOMATIC JOBS (docs/jobs.md).
 *
 * Steps, each a continuation of the last:
 *   1. on the client's own session: who is current_user, and is it an admin
 *      (superuser or member of the configured admin role)?
 *   2. which ids (SHOW JOB <expr>: the literal or bound value, else the
 *      expression evaluated on the client's session; SHOW JOBS <select>: the
 *      first column of the select, run on the client's session);
 *   3. on a worker: the rows from pgbr.jobs, only the user's own unless admin,
 *      printed with the client session's DateStyle/TimeZone/IntervalStyle.
 * Running the user's expressions as the user means they can read exactly
 * what PostgreSQL lets them read, and nothing more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"

static char *jobs_strdup(const char *s)
{
    char *out;

    if (s == NULL)
        return NULL;
    out = strdup(s);
    if (out == NULL) {
        log_write(LOG_LEVEL_FATAL, "out of memory in SHOW JOBS");
        abort();
    }
    return out;
}

void exec_show_jobs_free(exec_jobs_state *jobs)
{
    free(jobs->current_user);
    free(jobs->ids);
    free(jobs->datestyle);
    free(jobs->timezone);
    free(jobs->intervalstyle);
    result_set_free(jobs->rs);
    pgbr_error_clear(&jobs->err);
    memset(jobs, 0, sizeof *jobs);
}

static void jobs_add_id(exec_jobs_state *jobs, int64_t id)
{
    if (jobs->nids == jobs->ids_cap) {
        int cap = jobs->ids_cap == 0 ? 8 : jobs->ids_cap * 2;
        int64_t *ids = realloc(jobs->ids, (size_t)cap * sizeof *ids);
        if (ids == NULL) {
            log_write(LOG_LEVEL_FATAL, "out of memory in SHOW JOBS");
            abort();
        }
        jobs->ids = ids;
        jobs->ids_cap = cap;
    }
    jobs->ids[jobs->nids++] = id;
}

/* The empty answer (SHOW AUTOMATIC JOBS, SHOW JOB NULL). */
static void jobs_finish_empty(exec_request *req)
{
    result_set *rs = result_set_new(CATALOG_SHOW_JOBS_NCOLS, catalog_show_jobs_names, catalog_show_jobs_types);

    result_set_set_tag(rs, "SHOW JOBS 0");
    exec_finish(req, rs, NULL);
}

/* Step 3, on a worker. */
static void jobs_work(exec_request *req, struct pg_conn *conn)
{
    exec_jobs_state *jobs = &req->jobs;
    catalog_jobs_filter filter = {
        .listing = jobs->listing,
        .ids = jobs->ids,
        .nids = jobs->nids,
        .user_name = jobs->is_admin ? NULL : jobs->current_user,
        .datestyle = jobs->datestyle,
        .timezone = jobs->timezone,
        .intervalstyle = jobs->intervalstyle,
    };

    if (!catalog_show_jobs(conn, &filter, &jobs->rs, &jobs->err))
        jobs->rs = NULL;
}

/* Step 3, back on the loop thread. */
static void jobs_after(exec_request *req)
{
    result_set *rs = req->jobs.rs;

    req->jobs.rs = NULL;
    if (rs == NULL) {
        exec_finish(req, NULL, &req->jobs.err);
        return;
    }
    result_set_set_tag(rs, "SHOW JOBS %d", rs->nrows);
    exec_finish(req, rs, NULL);
}

static void jobs_fetch(exec_request *req)
{
    if (!req->jobs.listing && req->jobs.nids == 0) {
        jobs_finish_empty(req);
        return;
    }
    exec_submit(req, jobs_work, jobs_after);
}

/* One id given as text (a literal, a bound value, a select's value). NULL
 * selects nothing, as "WHERE id = NULL" would. */
static bool jobs_take_id_text(exec_request *req, const char *text)
{
    pgbr_error err = PGBR_ERROR_INIT;
    int64_t id;

    if (text == NULL)
        return true;
    if (!exec_parse_int8(text, &id, &err)) {
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return false;
    }
    jobs_add_id(&req->jobs, id);
    return true;
}

/* The parameters a query on the client's session needs: $1..$nparams of
 * the statement (never more: PostgreSQL rejects untyped unused ones). */
static int jobs_query_nparams(const exec_request *req)
{
    return req->stmt->nparams < req->nparams ? req->stmt->nparams : req->nparams;
}

/* Step 2 results: SHOW JOB (<expr>)::int8 and SHOW JOBS <select>. */
static void jobs_on_ids(exec_request *req, result_set *rs, pgbr_error *err)
{
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    if (rs->ncols < 1) {
        result_set_free(rs);
        exec_fail(req, "42601", "the select of SHOW JOBS must return the job ids in its first column");
        return;
    }
    for (int r = 0; r < rs->nrows; r++) {
        if (!jobs_take_id_text(req, result_set_value(rs, r, 0))) {
            result_set_free(rs);
            return;
        }
    }
    result_set_free(rs);
    jobs_fetch(req);
}

static void jobs_resolve_ids(exec_request *req)
{
    const sql_show_jobs *s = &req->stmt->u.show_jobs;

    if (s->form == SQL_JOBS_SELECT) {
        exec_run_query(req, s->select->text, jobs_query_nparams(req), (const char *const *)req->params,
                       jobs_on_ids);
        return;
    }
    /* SQL_JOBS_ONE */
    if (s->expr->param > 0) {
        pgbr_error err = PGBR_ERROR_INIT;
        const char *value = NULL;
        if (!exec_param_value(req, s->expr->param, &value, &err)) {
            exec_finish(req, NULL, &err);
            pgbr_error_clear(&err);
            return;
        }
        if (jobs_take_id_text(req, value))
            jobs_fetch(req);
        return;
    }
    if (s->expr->is_integer) {
        if (jobs_take_id_text(req, s->expr->text))
            jobs_fetch(req);
        return;
    }
    {
        /* Any other expression: let PostgreSQL evaluate it, as the user. */
        char *sql = NULL;
        if (asprintf(&sql, "SELECT (%s)::int8", s->expr->text) < 0) {
            exec_fail(req, "53200", "out of memory");
            return;
        }
        exec_run_query(req, sql, jobs_query_nparams(req), (const char *const *)req->params, jobs_on_ids);
        free(sql);
    }
}

/* Step 1 done: req->current_user and req->is_admin are known. */
static void jobs_on_identity(exec_request *req)
{
    req->jobs.current_user = jobs_strdup(req->current_user);
    req->jobs.is_admin = req->is_admin;
    if (req->jobs.listing)
        jobs_fetch(req);
    else
        jobs_resolve_ids(req);
}

void exec_show_jobs_start(exec_request *req)
{
    const sql_show_jobs *s = &req->stmt->u.show_jobs;

    if (s->changefeed) {
        exec_fail(req, "0A000", "SHOW CHANGEFEED JOBS is not supported by pgbr");
        return;
    }
    if (s->when_complete) {
        exec_fail_not_implemented(req, s->form == SQL_JOBS_ONE ? "SHOW JOB WHEN COMPLETE" : "SHOW JOBS WHEN COMPLETE");
        return;
    }
    if (s->form == SQL_JOBS_FOR_SCHEDULE || s->form == SQL_JOBS_FOR_SCHEDULES) {
        exec_fail_not_implemented(req, s->form == SQL_JOBS_FOR_SCHEDULE ? "SHOW JOBS FOR SCHEDULE"
                                                                        : "SHOW JOBS FOR SCHEDULES");
        return;
    }
    if (s->execution_details) {
        exec_fail_not_implemented(req, "SHOW JOBS WITH EXECUTION DETAILS");
        return;
    }
    if (s->form != SQL_JOBS_ALL && s->form != SQL_JOBS_ONE && s->form != SQL_JOBS_SELECT) {
        exec_fail_not_implemented(req, sql_stmt_name(req->stmt));
        return;
    }
    if ((s->form == SQL_JOBS_ONE && s->expr == NULL) || (s->form == SQL_JOBS_SELECT && s->select == NULL)) {
        exec_fail(req, "XX000", "internal error: SHOW JOBS without its expression");
        return;
    }
    if (s->automatic) {
        /* pgbr runs no automatic (internal) jobs. */
        jobs_finish_empty(req);
        return;
    }

    req->jobs.listing = s->form == SQL_JOBS_ALL;
    req->jobs.datestyle = jobs_strdup(req->info.datestyle);
    req->jobs.timezone = jobs_strdup(req->info.timezone);
    req->jobs.intervalstyle = jobs_strdup(req->info.intervalstyle);

    exec_identify(req, jobs_on_identity);
}
