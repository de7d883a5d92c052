/*
 * control_jobs.c - PAUSE / RESUME / CANCEL JOB <expr>, ... JOBS <select>
 * and ... ALL <type> JOBS (docs/jobs.md).
 *
 * Steps, each a continuation of the last:
 *   1. on the client's own session: who is current_user, and is it an admin;
 *   2. which jobs: the expression or select evaluated on the client's
 *      session exactly as SHOW JOB(S) does (exec_jobs_resolve), or, for the
 *      ALL form, the job type;
 *   3. on a worker: the status changes in pgbr.jobs (catalog_control_jobs,
 *      whose header comment is the contract with the job runtime).
 * The answer is the command tag "<PAUSE|RESUME|CANCEL> JOBS <n>", n = the
 * jobs acted on, and no rows. The statements only request: the node running
 * a job notices within about a second, so a PAUSE answered means
 * "pause-requested", not yet "paused".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"

static catalog_job_action control_action(sql_job_action action)
{
    switch (action) {
    case SQL_JOB_PAUSE:
        return CATALOG_JOB_PAUSE;
    case SQL_JOB_RESUME:
        return CATALOG_JOB_RESUME;
    case SQL_JOB_CANCEL:
        break;
    }
    return CATALOG_JOB_CANCEL;
}

/* Step 3, on a worker. */
static void control_work(exec_request *req, struct pg_conn *conn)
{
    const sql_control_jobs *c = &req->stmt->u.control_jobs;
    exec_jobs_state *jobs = &req->jobs;
    catalog_control_request creq = {
        .action = control_action(c->action),
        .ids = jobs->ids,
        .nids = jobs->nids,
        .job_type = c->form == SQL_JOBS_ALL_OF_TYPE ? c->job_type : NULL,
        .user_name = jobs->current_user,
        .is_admin = jobs->is_admin,
        .reason = jobs->reason,
    };

    catalog_control_jobs(conn, &creq, &jobs->acted, &jobs->err);
}

/* Step 3, back on the loop thread. */
static void control_after(exec_request *req)
{
    result_set *rs;

    if (pgbr_error_is_set(&req->jobs.err)) {
        exec_finish(req, NULL, &req->jobs.err);
        return;
    }
    rs = result_set_new_tag_only("");
    result_set_set_tag(rs, "%s %d", sql_stmt_name(req->stmt), req->jobs.acted);
    /* a job running on this node hears of it at once, not at the next tick */
    exec_node_poke();
    exec_finish(req, rs, NULL);
}

static void control_apply(exec_request *req)
{
    exec_submit(req, control_work, control_after);
}

/* Step 1 done. */
static void control_on_identity(exec_request *req)
{
    const sql_control_jobs *c = &req->stmt->u.control_jobs;

    req->jobs.current_user = strdup(req->current_user);
    if (req->jobs.current_user == NULL) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    req->jobs.is_admin = req->is_admin;
    if (c->form == SQL_JOBS_ALL_OF_TYPE)
        control_apply(req);
    else
        exec_jobs_resolve(req, c->form, c->expr, c->select, control_apply);
}

void exec_control_jobs_start(exec_request *req)
{
    const sql_control_jobs *c = &req->stmt->u.control_jobs;

    if (c->form == SQL_JOBS_FOR_SCHEDULE || c->form == SQL_JOBS_FOR_SCHEDULES) {
        char what[64];
        snprintf(what, sizeof what, "%s FOR %s", sql_stmt_name(req->stmt),
                 c->form == SQL_JOBS_FOR_SCHEDULE ? "SCHEDULE" : "SCHEDULES");
        exec_fail_not_implemented(req, what);
        return;
    }
    if ((c->form == SQL_JOBS_ONE && c->expr == NULL) || (c->form == SQL_JOBS_SELECT && c->select == NULL) ||
        (c->form == SQL_JOBS_ALL_OF_TYPE && c->job_type == NULL) ||
        (c->form != SQL_JOBS_ONE && c->form != SQL_JOBS_SELECT && c->form != SQL_JOBS_ALL_OF_TYPE)) {
        exec_fail(req, "XX000", "internal error: %s without its jobs", sql_stmt_name(req->stmt));
        return;
    }
    if (c->reason != NULL) {
        pgbr_error err = PGBR_ERROR_INIT;
        const char *reason = exec_string_value(req, c->reason, &err);
        if (reason == NULL) {
            exec_finish(req, NULL, &err);
            pgbr_error_clear(&err);
            return;
        }
        req->jobs.reason = strdup(reason);
        if (req->jobs.reason == NULL) {
            exec_fail(req, "53200", "out of memory");
            return;
        }
    }
    exec_identify(req, control_on_identity);
}
