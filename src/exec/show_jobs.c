/*
 * show_jobs.c - SHOW JOBS, SHOW JOB <expr>, SHOW JOBS <select>, SHOW
 * AUTOMATIC JOBS and SHOW JOB(S) WHEN COMPLETE (docs/jobs.md); and the id
 * resolution PAUSE / RESUME / CANCEL JOB(S) share (exec_jobs_resolve).
 *
 * Steps, each a continuation of the last:
 *   1. on the client's own session: who is current_user, and is it an admin
 *      (superuser or member of the configured admin role)?
 *   2. which ids (SHOW JOB <expr>: the literal or bound value, else the
 *      expression evaluated on the client's session; SHOW JOBS <select>: the
 *      first column of the select, run on the client's session);
 *   3. on a worker: the rows from pgbr.jobs, only the user's own unless admin,
 *      printed with the client session's DateStyle/TimeZone/IntervalStyle
 *      (WHEN COMPLETE: once none of the jobs is running any more).
 * Running the user's expressions as the user means they can read exactly
 * what PostgreSQL lets them read, and nothing more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    free(jobs->reason);
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

/* What the request shows: its ids (or the listing), only the user's own
 * jobs unless admin, in the client session's formats. */
static catalog_jobs_filter jobs_filter(const exec_jobs_state *jobs)
{
    return (catalog_jobs_filter){
        .listing = jobs->listing,
        .ids = jobs->ids,
        .nids = jobs->nids,
        .user_name = jobs->is_admin ? NULL : jobs->current_user,
        .datestyle = jobs->datestyle,
        .timezone = jobs->timezone,
        .intervalstyle = jobs->intervalstyle,
    };
}

/* Step 3, on a worker. */
static void jobs_work(exec_request *req, struct pg_conn *conn)
{
    exec_jobs_state *jobs = &req->jobs;
    catalog_jobs_filter filter = jobs_filter(jobs);

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

/* ---------------------------------------------------------------------------
 * SHOW JOB(S) WHEN COMPLETE: poll until every listed job is terminal, then
 * answer as SHOW JOB(S). Between polls the request holds no worker and no
 * upstream query, only a timer on the loop; a cancel or disconnect drops the
 * timer at once (exec.c).
 * ------------------------------------------------------------------------- */

/* Worker: how many are still running; when none, the rows right away. */
static void jobs_wait_work(exec_request *req, struct pg_conn *conn)
{
    exec_jobs_state *jobs = &req->jobs;
    catalog_jobs_filter filter = jobs_filter(jobs);

    jobs->rs = NULL;
    if (!catalog_jobs_count_unfinished(conn, &filter, &jobs->unfinished, &jobs->err))
        return;
    if (jobs->unfinished == 0 && !catalog_show_jobs(conn, &filter, &jobs->rs, &jobs->err))
        jobs->rs = NULL;
}

static void jobs_wait_poll(exec_request *req);

static void jobs_wait_after(exec_request *req)
{
    exec_jobs_state *jobs = &req->jobs;
    struct timespec now;

    if (pgbr_error_is_set(&jobs->err) || jobs->rs != NULL) {
        jobs_after(req);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > jobs->wait_deadline.tv_sec ||
        (now.tv_sec == jobs->wait_deadline.tv_sec && now.tv_nsec >= jobs->wait_deadline.tv_nsec)) {
        pgbr_error err = PGBR_ERROR_INIT;
        pgbr_error_set(&err, "57014", "timed out waiting for %d job%s to complete", jobs->unfinished,
                       jobs->unfinished == 1 ? "" : "s");
        pgbr_error_detail(&err, "SHOW JOBS WHEN COMPLETE waits at most %d hours.",
                          EXEC_WHEN_COMPLETE_TIMEOUT_S / 3600);
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    if (!exec_sleep(req, EXEC_WHEN_COMPLETE_POLL_MS, jobs_wait_poll))
        exec_fail(req, "XX000", "internal error: %s has no event loop to wait on", sql_stmt_name(req->stmt));
}

static void jobs_wait_poll(exec_request *req)
{
    exec_submit(req, jobs_wait_work, jobs_wait_after);
}

static void jobs_wait_start(exec_request *req)
{
    if (req->jobs.nids == 0) {
        jobs_finish_empty(req);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &req->jobs.wait_deadline);
    req->jobs.wait_deadline.tv_sec += EXEC_WHEN_COMPLETE_TIMEOUT_S;
    if (req->info.ops->watch_client != NULL)
        req->info.ops->watch_client(req->info.session);
    jobs_wait_poll(req);
}

/* ---------------------------------------------------------------------------
 * Which ids a statement names (SHOW JOB(S), PAUSE/RESUME/CANCEL JOB(S))
 * ------------------------------------------------------------------------- */

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

/* The parameters a query on the client's session needs: $1 up to the
 * highest $n in raw's own text, never more (PostgreSQL refuses a Bind with
 * more values than the query uses, as in "PAUSE JOBS SELECT ... $1 WITH
 * REASON = $2", whose select gets only $1). */
static int jobs_query_nparams(const exec_request *req, const sql_raw *raw)
{
    return raw->max_param < req->nparams ? raw->max_param : req->nparams;
}

/* The ids are known: exec_jobs_resolve's continuation. */
static void jobs_resolved(exec_request *req)
{
    exec_after_fn next = req->jobs.ids_next;

    req->jobs.ids_next = NULL;
    next(req);
}

/* (<expr>)::int8 or <select>, evaluated on the client's session. */
static void jobs_on_ids(exec_request *req, result_set *rs, pgbr_error *err)
{
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    if (rs->ncols < 1) {
        result_set_free(rs);
        exec_fail(req, "42601", "the select of %s must return the job ids in its first column",
                  sql_stmt_name(req->stmt));
        return;
    }
    for (int r = 0; r < rs->nrows; r++) {
        if (!jobs_take_id_text(req, result_set_value(rs, r, 0))) {
            result_set_free(rs);
            return;
        }
    }
    result_set_free(rs);
    jobs_resolved(req);
}

void exec_jobs_resolve(exec_request *req, sql_jobs_form form, const sql_raw *expr, const sql_raw *select,
                       exec_after_fn next)
{
    req->jobs.ids_next = next;
    if (form == SQL_JOBS_SELECT) {
        exec_run_query(req, select->text, jobs_query_nparams(req, select), (const char *const *)req->params,
                       jobs_on_ids);
        return;
    }
    /* SQL_JOBS_ONE */
    if (expr->param > 0) {
        pgbr_error err = PGBR_ERROR_INIT;
        const char *value = NULL;
        if (!exec_param_value(req, expr->param, &value, &err)) {
            exec_finish(req, NULL, &err);
            pgbr_error_clear(&err);
            return;
        }
        if (jobs_take_id_text(req, value))
            jobs_resolved(req);
        return;
    }
    if (expr->is_integer || expr->is_string) {
        /* a string literal's text is its decoded value: '123' is 123, as
         * PostgreSQL's '123'::int8 would take it */
        if (jobs_take_id_text(req, expr->text))
            jobs_resolved(req);
        return;
    }
    {
        /* Any other expression: let PostgreSQL evaluate it, as the user. */
        char *sql = NULL;
        if (asprintf(&sql, "SELECT (%s)::int8", expr->text) < 0) {
            exec_fail(req, "53200", "out of memory");
            return;
        }
        exec_run_query(req, sql, jobs_query_nparams(req, expr), (const char *const *)req->params, jobs_on_ids);
        free(sql);
    }
}

/* Step 1 done: req->current_user and req->is_admin are known. */
static void jobs_on_identity(exec_request *req)
{
    const sql_show_jobs *s = &req->stmt->u.show_jobs;

    req->jobs.current_user = jobs_strdup(req->current_user);
    req->jobs.is_admin = req->is_admin;
    if (req->jobs.listing)
        jobs_fetch(req);
    else
        exec_jobs_resolve(req, s->form, s->expr, s->select, s->when_complete ? jobs_wait_start : jobs_fetch);
}

void exec_show_jobs_start(exec_request *req)
{
    const sql_show_jobs *s = &req->stmt->u.show_jobs;

    if (s->changefeed) {
        exec_fail(req, "0A000", "SHOW CHANGEFEED JOBS is not supported by pgbr");
        return;
    }
    if (s->when_complete && s->form != SQL_JOBS_ONE && s->form != SQL_JOBS_SELECT) {
        exec_fail(req, "XX000", "internal error: SHOW JOBS WHEN COMPLETE without its jobs");
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
