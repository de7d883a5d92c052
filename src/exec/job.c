/*
 * job.c - what every BACKUP / RESTORE job shares: the row in pgbr.jobs
 * (inserted once the statement's checks passed, progress at most once a
 * second, the end with its counts or error), and the two ways a client waits
 * for it: blocking (one result row job_id, status, fraction_completed, rows,
 * index_entries, bytes when the job ends) or WITH detached (the job id at
 * once; the job then lives on its own on the worker pool).
 *
 * Steps: on a worker, ops->prepare checks what only the upstream or the
 * storage can tell (a refused statement creates no job), then the job row
 * is inserted; ops->run does the work on a worker; its end is recorded.
 * A client that cancels its blocking statement (CancelRequest, psql's
 * Ctrl-C) cancels the job: the engine's next progress call stops it, it
 * removes what it wrote, its row says "canceled" and the statement ends
 * with 57014. Not yet: PAUSE/RESUME/CANCEL JOB, adoption after a crash (a
 * job whose node restarts is marked failed at start).
 */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec_internal.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"
#include "pgbr/pgclient.h"
#include "pgbr/pool.h"

exec_job *exec_job_new(exec_request *req, const exec_job_ops *ops, void *state, bool detached)
{
    exec_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        if (ops->free_state)
            ops->free_state(state);
        return NULL;
    }
    job->ops = ops;
    job->state = state;
    job->id = catalog_new_job_id(req->node_id);
    job->detached = detached;
    job->description = sql_stmt_deparse(req->stmt, true);
    job->conninfo = strdup(req->job_conninfo ? req->job_conninfo : "");
    job->external_io_dir = req->external_io_dir ? strdup(req->external_io_dir) : NULL;
    job->node_id = req->node_id;
    job->workers = req->workers;
    job->bundle_limit = req->bundle_limit;
    job->bundle_size = req->bundle_size;
    job->storage.external_io_dir = job->external_io_dir;
    job->storage.node_id = job->node_id;
    return job;
}

void exec_job_free(exec_job *job)
{
    if (job == NULL)
        return;
    if (job->ops->free_state)
        job->ops->free_state(job->state);
    free(job->user);
    free(job->description);
    free(job->conninfo);
    free(job->external_io_dir);
    free(job->spec);
    free(job->checkpoint);
    free(job->upstream_started);
    pgbr_error_clear(&job->err);
    free(job);
}

/* ---- worker side ---- */

/* Why a run stopped. */
typedef enum job_outcome {
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELED,
    JOB_PAUSED,
    JOB_LOST            /* another node holds the lease: leave the row alone */
} job_outcome;

/* Transient errors are retried (reference 1.7): the upstream or its
 * connection went away, the server is starting or shutting down, too many
 * connections, a serialization failure, storage I/O. */
#define JOB_MAX_ATTEMPTS 8
#define JOB_RETRY_INITIAL_MS 1000
#define JOB_RETRY_MAX_MS 30000

static bool job_error_transient(const pgbr_error *err)
{
    static const char *const codes[] = { "57P01", "57P02", "57P03", "53300", "40001", "40P01", "58030" };
    if (strncmp(err->sqlstate, "08", 2) == 0)
        return true;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(err->sqlstate, codes[i]) == 0)
            return true;
    return false;
}

static const char *job_id_text(const exec_job *job, char buf[32])
{
    snprintf(buf, 32, "%" PRId64, job->id);
    return buf;
}

/* The job's catalog connection, reconnected when the upstream restarted. */
static bool job_conn_ok(PGconn *conn)
{
    if (conn == NULL)
        return false;
    if (PQstatus(conn) != CONNECTION_OK)
        PQreset(conn);
    return PQstatus(conn) == CONNECTION_OK;
}

static bool job_stopping(const exec_job *job)
{
    return job->cancel_requested || job->pause_requested || job->lost;
}

bool exec_job_progress(void *arg, double fraction, const char *status)
{
    exec_job *job = arg;
    time_t now = time(NULL);
    char frac[32], id[32];
    const char *params[3];
    pgbr_error err = PGBR_ERROR_INIT;
    if (job_stopping(job)) {
        /* a cancel shows as reverting while the job removes what it wrote */
        if (job->cancel_requested && !job->lost && !job->reverting && job->conn != NULL) {
            params[0] = job_id_text(job, id);
            if (catalog_exec(job->conn,
                             "UPDATE pgbr.jobs SET status = 'reverting', running_status = 'reverting', "
                             "modified = now() WHERE id = $1::int8 AND status IN ('running', 'cancel-requested', "
                             "'pause-requested')",
                             1, params, &err))
                job->reverting = true;
            pgbr_error_clear(&err);
        }
        return false;
    }
    /* at most once a second: SHOW JOBS from another session sees it move */
    if (job->conn == NULL || now == job->last_progress)
        return true;
    job->last_progress = now;
    snprintf(frac, sizeof frac, "%.4f", fraction);
    params[0] = job_id_text(job, id);
    params[1] = frac;
    params[2] = status;
    if (!catalog_exec(job->conn,
                      "UPDATE pgbr.jobs SET fraction_completed = $2::float8, running_status = $3, modified = now() "
                      "WHERE id = $1::int8",
                      3, params, &err))
        log_warning("job %" PRId64 ": could not record progress: %s", job->id, err.message);
    pgbr_error_clear(&err);
    return true;
}

void exec_job_save_checkpoint(exec_job *job, const char *json)
{
    char id[32];
    const char *params[2] = { job_id_text(job, id), json };
    pgbr_error err = PGBR_ERROR_INIT;
    char *copy = json ? strdup(json) : NULL;
    free(job->checkpoint);
    job->checkpoint = copy;
    if (!job_conn_ok(job->conn) ||
        !catalog_exec(job->conn, "UPDATE pgbr.jobs SET checkpoint = $2::jsonb, modified = now() WHERE id = $1::int8",
                      2, params, &err))
        log_warning("job %" PRId64 ": could not save its checkpoint: %s", job->id,
                    err.message ? err.message : "no catalog connection");
    pgbr_error_clear(&err);
}

static void job_record_end(exec_job *job, PGconn *conn, job_outcome outcome)
{
    char id[32], rows[32], idx[32], bytes[32];
    const char *params[6];
    pgbr_error err = PGBR_ERROR_INIT;
    if (outcome == JOB_LOST)
        return;
    params[0] = job_id_text(job, id);
    if (!job_conn_ok(conn)) {
        log_error("job %" PRId64 ": could not record its end: no catalog connection", job->id);
        return;
    }
    if (outcome == JOB_PAUSED) {
        /* claimable again once resumed: no node, no lease */
        params[1] = job->err.message ? job->err.message : "";
        if (!catalog_exec(conn,
                          "UPDATE pgbr.jobs SET status = 'paused', coordinator_id = NULL, lease_expires = NULL, "
                          "running_status = CASE WHEN $2 = '' THEN 'paused' ELSE 'paused after errors: ' || $2 END, "
                          "modified = now() WHERE id = $1::int8",
                          2, params, &err))
            log_error("job %" PRId64 ": could not record its pause: %s", job->id, err.message);
        pgbr_error_clear(&err);
        return;
    }
    snprintf(rows, sizeof rows, "%" PRIu64, job->rows);
    snprintf(idx, sizeof idx, "%" PRIu64, job->index_entries);
    snprintf(bytes, sizeof bytes, "%" PRIu64, job->bytes);
    params[1] = outcome == JOB_SUCCEEDED ? "succeeded" : outcome == JOB_CANCELED ? "canceled" : "failed";
    params[2] = outcome == JOB_SUCCEEDED ? "" : (job->err.message ? job->err.message : "unknown error");
    params[3] = rows;
    params[4] = idx;
    params[5] = bytes;
    if (!catalog_exec(conn,
                      "UPDATE pgbr.jobs SET status = $2, error = $3, rows = $4::int8, index_entries = $5::int8, "
                      "bytes = $6::int8, finished = now(), modified = now(), lease_expires = NULL, "
                      "fraction_completed = CASE WHEN $2 = 'succeeded' THEN 1 ELSE fraction_completed END, "
                      "running_status = NULL WHERE id = $1::int8",
                      6, params, &err))
        log_error("job %" PRId64 ": could not record its end: %s", job->id, err.message);
    pgbr_error_clear(&err);
}

/* A transient error: recorded in execution_errors, so SHOW JOB shows why
 * the job took longer. */
static void job_record_retry(exec_job *job, PGconn *conn)
{
    char id[32];
    const char *params[2] = { job_id_text(job, id), job->err.message ? job->err.message : "unknown error" };
    pgbr_error err = PGBR_ERROR_INIT;
    if (job_conn_ok(conn) &&
        !catalog_exec(conn,
                      "UPDATE pgbr.jobs SET execution_errors = execution_errors || $2::text, "
                      "running_status = 'retrying after: ' || $2, modified = now() WHERE id = $1::int8",
                      2, params, &err))
        log_warning("job %" PRId64 ": could not record a retry: %s", job->id, err.message);
    pgbr_error_clear(&err);
}

/* Wait before the next attempt; false when the job is to stop meanwhile. */
static bool job_backoff(exec_job *job)
{
    int ms = JOB_RETRY_INITIAL_MS, max_ms = JOB_RETRY_MAX_MS;
    /* test hook (regress/t): every wait this many ms, so a test can run
     * out of attempts quickly. Unset in production. */
    const char *test_ms = getenv("PGBR_TEST_RETRY_MS");
    if (test_ms && atoi(test_ms) > 0)
        ms = max_ms = atoi(test_ms);
    for (int i = 1; i < job->attempts && ms < max_ms; i++)
        ms *= 2;
    if (ms > max_ms)
        ms = max_ms;
    for (int waited = 0; waited < ms; waited += 100) {
        if (job_stopping(job))
            return false;
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return !job_stopping(job);
}

/* When the upstream last started (text), or NULL when it cannot be asked:
 * a run that failed while the server restarted failed for that reason,
 * whatever the error it saw (pg_dump's exit status, a COPY cut short). */
static char *job_upstream_started(PGconn *conn)
{
    if (!job_conn_ok(conn))
        return NULL;
    PGresult *res = PQexec(conn, "SELECT pg_catalog.pg_postmaster_start_time()::text");
    char *out = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return out;
}

/* Did the upstream restart since the run began? Asked once per run. */
static bool job_upstream_restarted(exec_job *job, PGconn *conn)
{
    if (!job->restart_checked) {
        char *now = job_upstream_started(conn);
        job->upstream_restarted = job->upstream_started && (!now || strcmp(job->upstream_started, now) != 0);
        job->restart_checked = true;
        free(now);
    }
    return job->upstream_restarted;
}

bool exec_job_will_run_again(void *arg, const pgbr_error *err)
{
    exec_job *job = arg;
    if (job->lost)
        return true;    /* the node that holds it now continues from what is kept */
    if (job->cancel_requested)
        return false;
    if (job->pause_requested && strcmp(err->sqlstate, "57014") == 0)
        return true;
    /* a retry, or (a restore out of retries) a pause */
    return job_error_transient(err) || job_upstream_restarted(job, job->conn);
}

/* What an earlier run left, removed before running again (or for good,
 * when the job is canceled while nothing runs it). */
static void job_discard(exec_job *job)
{
    pgbr_error err = PGBR_ERROR_INIT;
    if (job->ops->discard && !job->ops->discard(job, &err))
        log_warning("job %" PRId64 ": could not remove what an earlier run left: %s", job->id,
                    err.message ? err.message : "unknown error");
    pgbr_error_clear(&err);
}

/* The outcome of a stop the job asked for (the engine returned 57014). */
static job_outcome job_stop_outcome(exec_job *job)
{
    if (job->lost)
        return JOB_LOST;
    if (job->cancel_requested)
        return JOB_CANCELED;
    return JOB_PAUSED;
}

/* pg_dump / pg_restore of a job that is to stop are stopped too */
static bool job_interrupt(void *arg)
{
    return job_stopping(arg);
}

static void job_run(exec_job *job, PGconn *conn)
{
    job_outcome outcome = JOB_FAILED;
    if (!catalog_require_conn(conn, &job->err)) {
        exec_node_unregister(job);
        if (job->adopted)
            return;     /* the lease runs out; a node adopts it again */
        job_record_end(job, conn, JOB_FAILED);
        return;
    }
    exec_node_register(job);
    for (;;) {
        if (job_stopping(job)) {
            outcome = job_stop_outcome(job);
            if (outcome == JOB_CANCELED)
                job_discard(job);
            break;
        }
        pgbr_error_clear(&job->err);
        free(job->upstream_started);
        job->upstream_started = job_upstream_started(conn);
        job->restart_checked = false;
        job->conn = conn;
        pgclient_set_interrupt(job_interrupt, job);
        job->ok = job->ops->run(job, &job->err);
        pgclient_set_interrupt(NULL, NULL);
        bool restarted = !job->ok && job_upstream_restarted(job, conn);
        job->conn = NULL;
        job->rerun = true;
        if (job->ok) {
            outcome = JOB_SUCCEEDED;
            break;
        }
        if (job_stopping(job) && strcmp(job->err.sqlstate, "57014") == 0) {
            outcome = job_stop_outcome(job);
            break;
        }
        if (!restarted && !job_error_transient(&job->err)) {
            outcome = JOB_FAILED;
            break;
        }
        job->attempts++;
        log_warning("job %" PRId64 ": %s attempt %d failed with a transient error, retrying: %s", job->id,
                    job->ops->job_type, job->attempts, job->err.message ? job->err.message : "");
        if (job->attempts >= JOB_MAX_ATTEMPTS) {
            /* a restore that keeps failing pauses instead (reference 1.7):
             * RESUME JOB tries again once the cause is fixed */
            outcome = strcmp(job->ops->job_type, "RESTORE") == 0 ? JOB_PAUSED : JOB_FAILED;
            break;
        }
        job_record_retry(job, conn);
        if (!job_backoff(job)) {
            outcome = job_stop_outcome(job);
            if (outcome == JOB_CANCELED)
                job_discard(job);
            break;
        }
    }
    exec_node_unregister(job);
    if (outcome == JOB_CANCELED) {
        pgbr_error_clear(&job->err);
        pgbr_error_set(&job->err, "57014", "canceling statement due to user request");
        pgbr_error_detail(&job->err, "Job %" PRId64 " was canceled; what it had written is removed.", job->id);
    } else if (outcome == JOB_PAUSED && job_stopping(job)) {
        pgbr_error_clear(&job->err);
    }
    job->outcome = (int)outcome;
    job_record_end(job, conn, outcome);
    switch (outcome) {
        case JOB_SUCCEEDED:
            log_info("job %" PRId64 ": %s succeeded", job->id, job->ops->job_type);
            break;
        case JOB_PAUSED:
            log_info("job %" PRId64 ": %s paused%s%s", job->id, job->ops->job_type,
                     job->err.message ? " after errors: " : "", job->err.message ? job->err.message : "");
            break;
        case JOB_LOST:
            if (job->shutting_down)
                log_info("job %" PRId64 ": stopped for the shutdown; a node adopts it from its checkpoint", job->id);
            else
                log_warning("job %" PRId64 ": another pgbr node took the job over (this node's lease ran out)",
                            job->id);
            break;
        default:
            log_info("job %" PRId64 ": %s %s: %s", job->id, job->ops->job_type,
                     outcome == JOB_CANCELED ? "canceled" : "failed",
                     job->err.message ? job->err.message : "unknown error");
    }
}

/* The statement's own checks, then the job row (worker thread). */
static void job_insert(exec_job *job, PGconn *conn)
{
    char id[32], node[16], lease[16];
    const char *params[8];
    if (!catalog_require_conn(conn, &job->err))
        return;
    if (job->ops->prepare && !job->ops->prepare(job, conn, &job->err))
        return;
    job->spec = job->ops->spec_save ? job->ops->spec_save(job, true) : NULL;
    if (job->spec && strstr(job->spec, "\"secrets\":true")) {
        char *full = job->ops->spec_save(job, false);
        if (full)
            exec_node_keep_secret_spec(job->id, full);
        free(full);
    }
    snprintf(node, sizeof node, "%d", job->node_id);
    snprintf(lease, sizeof lease, "%d", exec_node_lease_seconds());
    params[0] = job_id_text(job, id);
    params[1] = job->description;
    params[2] = job->user;
    params[3] = node;
    params[4] = job->ops->job_type;
    params[5] = job->spec;
    params[6] = lease;
    params[7] = job->is_admin ? "t" : "f";
    job->inserted = catalog_exec(conn,
                                 "INSERT INTO pgbr.jobs (id, job_type, status, description, statement, user_name, "
                                 "created, started, modified, coordinator_id, lease_expires, payload) "
                                 "VALUES ($1::int8, $5, 'running', $2, $2, $3, now(), now(), now(), $4::int8, "
                                 "now() + make_interval(secs => $7::int), "
                                 "CASE WHEN $6::jsonb IS NULL THEN NULL "
                                 "ELSE jsonb_build_object('spec', $6::jsonb, 'is_admin', $8::bool) END)",
                                 8, params, &job->err);
}

json_t *exec_spec_url(const char *url, bool redact, bool *secret)
{
    if (!url)
        return json_null();
    char *r = redact ? sql_redact_uri(url) : NULL;
    if (r && strcmp(r, url) != 0)
        *secret = true;
    json_t *v = json_string(r ? r : url);
    free(r);
    return v;
}

/* ---- detached: the job outlives the request ---- */

static void detached_work(void *arg, struct pg_conn *conn)
{
    job_run(arg, conn);
}

static void detached_done(void *arg)
{
    exec_job_free(arg);
}

/* ---- adopted: rebuilt from its row by the node loop ---- */

void exec_job_start_thread(exec_job *job)
{
    pool_spawn(detached_work, detached_done, job);
}

/* ---- loop side ---- */

static char *job_tag(const exec_job *job)
{
    char *tag = NULL;
    if (asprintf(&tag, "%s 1", job->ops->job_type) < 0)
        return NULL;
    return tag;
}

static void result_row(exec_request *req, exec_job *job)
{
    static const char *const names[] = { "job_id", "status", "fraction_completed", "rows", "index_entries", "bytes" };
    static const uint32_t types[] = { PGBR_OID_INT8, PGBR_OID_TEXT, PGBR_OID_FLOAT8,
                                      PGBR_OID_INT8, PGBR_OID_INT8, PGBR_OID_INT8 };
    char id[32], rows[32], idx[32], bytes[32];
    const char *row[6];
    result_set *rs = result_set_new(6, names, types);
    char *tag = job_tag(job);
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(rows, sizeof rows, "%" PRIu64, job->rows);
    snprintf(idx, sizeof idx, "%" PRIu64, job->index_entries);
    snprintf(bytes, sizeof bytes, "%" PRIu64, job->bytes);
    row[0] = id;
    row[1] = "succeeded";
    row[2] = "1";
    row[3] = rows;
    row[4] = idx;
    row[5] = bytes;
    result_set_add_row(rs, row);
    result_set_set_tag(rs, "%s", tag ? tag : "SELECT 1");
    free(tag);
    exec_finish(req, rs, NULL);
}

static void blocking_work(exec_request *req, struct pg_conn *conn)
{
    job_run(req->job, conn);
}

static void blocking_after(exec_request *req)
{
    exec_job *job = req->job;
    job->running = false;
    if (job->ok) {
        result_row(req, job);
    } else if (job->outcome == JOB_PAUSED && job->err.message == NULL) {
        exec_fail(req, "55000", "job %" PRId64 " was paused before it completed", job->id);
    } else if (job->outcome == JOB_LOST && job->shutting_down) {
        exec_fail(req, "57P01", "pgbr is shutting down; job %" PRId64 " continues on the next pgbr node to adopt it",
                  job->id);
    } else if (job->outcome == JOB_LOST) {
        exec_fail(req, "55000", "job %" PRId64 " was taken over by another pgbr node before it completed", job->id);
    } else if (job->outcome == JOB_PAUSED) {
        pgbr_error e = PGBR_ERROR_INIT;
        pgbr_error_set(&e, job->err.sqlstate, "job %" PRId64 " paused after repeated errors: %s", job->id,
                       job->err.message);
        pgbr_error_hint(&e, "RESUME JOB %" PRId64 " tries again.", job->id);
        exec_finish(req, NULL, &e);
        pgbr_error_clear(&e);
    } else {
        exec_finish(req, NULL, &job->err);
    }
}

static void insert_work(exec_request *req, struct pg_conn *conn)
{
    job_insert(req->job, conn);
}

static void insert_after(exec_request *req)
{
    exec_job *job = req->job;
    if (!job->inserted) {
        exec_finish(req, NULL, &job->err);
        return;
    }
    if (job->detached) {
        static const char *const names[] = { "job_id" };
        static const uint32_t types[] = { PGBR_OID_INT8 };
        char id[32];
        const char *row[1] = { id };
        result_set *rs = result_set_new(1, names, types);
        char *tag = job_tag(job);
        snprintf(id, sizeof id, "%" PRId64, job->id);
        result_set_add_row(rs, row);
        result_set_set_tag(rs, "%s", tag ? tag : "SELECT 1");
        free(tag);
        req->job = NULL;            /* the job now lives on its own */
        pool_spawn(detached_work, detached_done, job);
        exec_finish(req, rs, NULL);
        return;
    }
    job->running = true;
    exec_submit_long(req, blocking_work, blocking_after);
}

bool exec_job_cancel(exec_request *req)
{
    exec_job *job = req->job;
    if (job == NULL || job->detached || !job->running)
        return false;
    job->cancel_requested = true;
    log_info("job %" PRId64 ": canceled by its client", job->id);
    return true;
}

void exec_job_submit(exec_request *req)
{
    exec_job *job = req->job;
    if (job->user == NULL)
        job->user = strdup(req->current_user ? req->current_user : "");
    job->is_admin = req->is_admin;
    exec_submit(req, insert_work, insert_after);
}
