/*
 * job_node.c - this node's share of the job system (DESIGN.md section 3):
 * the jobs it runs, their leases, and the jobs it adopts.
 *
 * One thread with its own catalog connection wakes every second:
 * - it renews the lease (lease_expires = now() + --job-lease) of every job
 *   this node runs, and reads their rows back: a row that says
 *   pause-requested or cancel-requested makes the job stop at its next
 *   chunk boundary (PAUSE JOB and CANCEL JOB from any node only change the
 *   row); a row this node no longer holds (its lease ran out while the
 *   process was stalled and another node took the job) makes it stop
 *   without touching anything;
 * - it claims jobs no live node holds: a lease that ran out (a killed or
 *   partitioned node), none at all (RESUME JOB clears it), and, in its first
 *   round only, every job whose coordinator is this node's id (this process
 *   restarted: nothing of them runs here). A claim is one UPDATE of one row
 *   ... FOR UPDATE SKIP LOCKED, so two nodes never claim the same job. The
 *   job is rebuilt from the spec its first run stored (no secret is ever
 *   stored) and runs on a thread of its own from its checkpoint;
 * - once an hour it deletes finished jobs older than --job-retention.
 *
 * The upstream's clock decides leases, so the nodes' clocks do not matter.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec_internal.h"
#include "pgbr/catalog.h"
#include "pgbr/exec.h"
#include "pgbr/log.h"
#include "pgbr/pgclient.h"

#define NODE_TICK_MS 1000
#define NODE_RETENTION_EVERY_S 3600

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool started, stop;
    bool poked;                 /* mu: look at the rows now */
    pthread_t thread;
    exec_job **jobs;            /* mu: the jobs running on this node */
    size_t njobs, cap;
    int lease_seconds;
    int64_t retention_seconds;
    exec_node_config cfg;       /* copies */
    /* mu: specs with their secrets, of jobs started by this process */
    int64_t *secret_ids;
    char **secret_specs;
    size_t nsecrets;
} node = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .lease_seconds = 30 };

void exec_node_poke(void)
{
    pthread_mutex_lock(&node.mu);
    node.poked = true;
    pthread_cond_signal(&node.wake);
    pthread_mutex_unlock(&node.mu);
}

void exec_node_keep_secret_spec(int64_t id, const char *spec)
{
    pthread_mutex_lock(&node.mu);
    int64_t *ids = realloc(node.secret_ids, (node.nsecrets + 1) * sizeof *ids);
    if (ids)
        node.secret_ids = ids;
    char **specs = ids ? realloc(node.secret_specs, (node.nsecrets + 1) * sizeof *specs) : NULL;
    if (specs) {
        node.secret_specs = specs;
        if ((specs[node.nsecrets] = strdup(spec)) != NULL)
            node.secret_ids[node.nsecrets++] = id;
    }
    pthread_mutex_unlock(&node.mu);
}

/* The spec with secrets this process kept for job id (malloc'd), or NULL. */
static char *secret_spec(int64_t id)
{
    char *out = NULL;
    pthread_mutex_lock(&node.mu);
    for (size_t i = 0; !out && i < node.nsecrets; i++)
        if (node.secret_ids[i] == id)
            out = strdup(node.secret_specs[i]);
    pthread_mutex_unlock(&node.mu);
    return out;
}

int exec_node_lease_seconds(void)
{
    return node.lease_seconds;
}

void exec_node_register(exec_job *job)
{
    pthread_mutex_lock(&node.mu);
    for (size_t i = 0; i < node.njobs; i++)
        if (node.jobs[i] == job) {
            pthread_mutex_unlock(&node.mu);
            return;
        }
    if (node.njobs == node.cap) {
        size_t cap = node.cap ? node.cap * 2 : 8;
        exec_job **j = realloc(node.jobs, cap * sizeof *j);
        if (j) {
            node.jobs = j;
            node.cap = cap;
        }
    }
    if (node.njobs < node.cap)
        node.jobs[node.njobs++] = job;
    pthread_mutex_unlock(&node.mu);
}

void exec_node_unregister(exec_job *job)
{
    pthread_mutex_lock(&node.mu);
    for (size_t i = 0; i < node.njobs; i++)
        if (node.jobs[i] == job) {
            node.jobs[i] = node.jobs[--node.njobs];
            break;
        }
    pthread_mutex_unlock(&node.mu);
}

/* "{1,2,3}": the ids of the jobs running here (mu held); *ids gets them
 * as numbers (both malloc'd). */
static char *local_ids(int64_t **ids)
{
    size_t cap = 3 + node.njobs * 21;
    char *s = malloc(cap), *p = s;
    *ids = malloc((node.njobs ? node.njobs : 1) * sizeof **ids);
    if (!s || !*ids) {
        free(s);
        free(*ids);
        *ids = NULL;
        return NULL;
    }
    *p++ = '{';
    for (size_t i = 0; i < node.njobs; i++) {
        (*ids)[i] = node.jobs[i]->id;
        p += snprintf(p, cap - (size_t)(p - s), "%s%" PRId64, i ? "," : "", node.jobs[i]->id);
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* What job's row says, seen by the heartbeat: pause and cancel requests. */
static void pass_on(exec_job *job, const char *status)
{
    if (strcmp(status, "pause-requested") == 0 && !job->pause_requested) {
        log_info("job %" PRId64 ": pause requested", job->id);
        job->pause_requested = true;
    } else if (strcmp(status, "cancel-requested") == 0 && !job->cancel_requested) {
        log_info("job %" PRId64 ": cancel requested", job->id);
        job->cancel_requested = true;
    } else if (strcmp(status, "running") == 0 && job->pause_requested && !job->cancel_requested) {
        /* RESUME before the pause took effect */
        job->pause_requested = false;
    }
}

/* Renew the leases of the jobs running here; pass on pause and cancel
 * requests; a job whose row this node no longer holds is lost. */
static void heartbeat(PGconn *conn)
{
    char node_id[16], lease[16];
    int64_t *asked = NULL;
    size_t nasked;
    pthread_mutex_lock(&node.mu);
    nasked = node.njobs;
    char *ids = nasked ? local_ids(&asked) : NULL;
    pthread_mutex_unlock(&node.mu);
    if (!ids)
        return;
    snprintf(node_id, sizeof node_id, "%d", node.cfg.node_id);
    snprintf(lease, sizeof lease, "%d", node.lease_seconds);
    const char *params[3] = { ids, node_id, lease };
    pgbr_error err = PGBR_ERROR_INIT;
    PGresult *res = pgclient_query_params(conn,
                                          "UPDATE pgbr.jobs SET lease_expires = now() + make_interval(secs => $3::int) "
                                          "WHERE id = ANY($1::int8[]) AND coordinator_id = $2::int8 "
                                          "RETURNING id, status",
                                          3, params, &err);
    free(ids);
    if (!res) {
        log_warning("could not renew the leases of this node's jobs: %s", err.message);
        pgbr_error_clear(&err);
        free(asked);
        return;
    }
    pthread_mutex_lock(&node.mu);
    for (size_t i = 0; i < node.njobs; i++) {
        exec_job *job = node.jobs[i];
        bool listed = false, held = false;
        /* only jobs that were running when the ids were taken */
        for (size_t k = 0; k < nasked && !listed; k++)
            listed = asked[k] == job->id;
        for (int r = 0; listed && !held && r < PQntuples(res); r++)
            if (strtoll(PQgetvalue(res, r, 0), NULL, 10) == job->id) {
                held = true;
                pass_on(job, PQgetvalue(res, r, 1));
            }
        if (listed && !held && !job->lost) {
            log_warning("job %" PRId64 ": this node no longer holds its lease", job->id);
            job->lost = true;
        }
    }
    pthread_mutex_unlock(&node.mu);
    PQclear(res);
    free(asked);
}

static const exec_job_ops *ops_for(const char *type)
{
    if (strcmp(type, "BACKUP") == 0)
        return exec_backup_job_ops();
    if (strcmp(type, "RESTORE") == 0)
        return exec_restore_job_ops();
    return NULL;
}

/* A job that cannot be adopted ends with why. */
static void fail_claimed(PGconn *conn, const char *id, const char *why)
{
    const char *params[2] = { id, why };
    pgbr_error err = PGBR_ERROR_INIT;
    log_error("job %s cannot be adopted: %s", id, why);
    if (!catalog_exec(conn,
                      "UPDATE pgbr.jobs SET status = 'failed', error = $2, finished = now(), modified = now(), "
                      "lease_expires = NULL, running_status = NULL WHERE id = $1::int8",
                      2, params, &err))
        log_warning("job %s: could not record its failure: %s", id, err.message);
    pgbr_error_clear(&err);
}

/* Rebuild a claimed row as a job and start it. */
static void adopt(PGconn *conn, PGresult *res)
{
    const char *id = PQgetvalue(res, 0, 0), *type = PQgetvalue(res, 0, 1), *status = PQgetvalue(res, 0, 2);
    const exec_job_ops *ops = ops_for(type);
    pgbr_error err = PGBR_ERROR_INIT;
    if (!ops) {
        fail_claimed(conn, id, "pgbr does not run jobs of this type");
        return;
    }
    if (PQgetisnull(res, 0, 5)) {
        fail_claimed(conn, id, "the job was started by a pgbr version that did not keep what is needed to resume it");
        return;
    }
    exec_job *job = calloc(1, sizeof *job);
    if (!job)
        return;
    job->ops = ops;
    job->id = strtoll(id, NULL, 10);
    job->user = strdup(PQgetvalue(res, 0, 3));
    job->is_admin = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
    job->description = strdup(PQgetvalue(res, 0, 4));
    job->conninfo = strdup(node.cfg.job_conninfo ? node.cfg.job_conninfo : "");
    job->external_io_dir = node.cfg.external_io_dir ? strdup(node.cfg.external_io_dir) : NULL;
    job->node_id = node.cfg.node_id;
    job->workers = node.cfg.workers;
    job->bundle_limit = node.cfg.bundle_limit;
    job->bundle_size = node.cfg.bundle_size;
    job->storage.external_io_dir = job->external_io_dir;
    job->storage.node_id = job->node_id;
    job->detached = true;
    job->adopted = true;
    job->rerun = true;
    job->spec = secret_spec(job->id);
    if (!job->spec)
        job->spec = strdup(PQgetvalue(res, 0, 5));
    job->checkpoint = PQgetisnull(res, 0, 6) ? NULL : strdup(PQgetvalue(res, 0, 6));
    if (!job->user || !job->description || !job->conninfo || !job->spec) {
        exec_job_free(job);
        return;
    }
    if (strstr(job->spec, "\"secrets\":true")) {
        /* pgbr never stores a secret: only the process that was given it
         * can run the job again */
        char why[256];
        snprintf(why, sizeof why,
                 "the job needs a secret (a credential in a storage URL) that pgbr does not keep; node %d, which "
                 "had it, restarted or is gone: run the statement again", catalog_job_id_node(job->id));
        fail_claimed(conn, id, why);
        exec_job_free(job);
        return;
    }
    if (!ops->spec_load(job, job->spec, &err)) {
        fail_claimed(conn, id, err.message ? err.message : "its stored request could not be read");
        pgbr_error_clear(&err);
        exec_job_free(job);
        return;
    }
    if (strcmp(status, "pause-requested") == 0)
        job->pause_requested = true;
    else if (strcmp(status, "cancel-requested") == 0 || strcmp(status, "reverting") == 0)
        job->cancel_requested = true;
    log_info("job %s: %s adopted by node %d (status %s)", id, type, node.cfg.node_id, status);
    /* listed as running here before the next claim looks */
    exec_node_register(job);
    exec_job_start_thread(job);
}

/* Claim the jobs no live node holds, one row at a time. */
static void claim(PGconn *conn, bool first_round)
{
    char node_id[16], lease[16];
    snprintf(node_id, sizeof node_id, "%d", node.cfg.node_id);
    snprintf(lease, sizeof lease, "%d", node.lease_seconds);
    for (int n = 0; n < 16; n++) {
        int64_t *unused = NULL;
        pthread_mutex_lock(&node.mu);
        char *ids = local_ids(&unused);
        bool stop = node.stop;
        pthread_mutex_unlock(&node.mu);
        free(unused);
        if (!ids || stop) {
            free(ids);
            return;
        }
        const char *params[4] = { node_id, lease, ids, first_round ? "t" : "f" };
        PGresult *res = PQexecParams(
            conn,
            "WITH c AS (SELECT id FROM pgbr.jobs "
            "  WHERE status IN ('pending', 'running', 'pause-requested', 'cancel-requested', 'reverting') "
            "    AND job_type IN ('BACKUP', 'RESTORE') AND NOT (id = ANY($3::int8[])) "
            "    AND (lease_expires IS NULL OR lease_expires < now() "
            "         OR ($4::bool AND coordinator_id = $1::int8)) "
            /* a job without the request a run needs is only taken (to be
             * failed, saying why) from this node's own previous life */
            "    AND (payload ? 'spec' OR ($4::bool AND coordinator_id = $1::int8)) "
            "  ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "UPDATE pgbr.jobs j SET coordinator_id = $1::int8, "
            "  lease_expires = now() + make_interval(secs => $2::int), modified = now(), "
            "  status = CASE WHEN j.status = 'pending' THEN 'running' ELSE j.status END "
            "FROM c WHERE j.id = c.id "
            "RETURNING j.id, j.job_type, j.status, j.user_name, j.description, j.payload->>'spec', "
            "  j.checkpoint::text, "
            "  COALESCE((j.payload->>'is_admin')::bool, false)",
            4, NULL, params, NULL, NULL, 0);
        free(ids);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            log_warning("could not look for jobs to adopt: %s", PQerrorMessage(conn));
            PQclear(res);
            return;
        }
        if (PQntuples(res) == 0) {
            PQclear(res);
            return;
        }
        adopt(conn, res);
        PQclear(res);
    }
}

static void retention(PGconn *conn)
{
    if (node.retention_seconds <= 0)
        return;
    pgbr_error err = PGBR_ERROR_INIT;
    int64_t n = catalog_delete_expired_jobs(conn, node.retention_seconds, &err);
    if (n < 0)
        log_warning("could not delete old jobs: %s", err.message ? err.message : "unknown error");
    else if (n > 0)
        log_info("deleted %" PRId64 " finished jobs older than the retention (--job-retention)", n);
    pgbr_error_clear(&err);
}

static void *node_main(void *arg)
{
    (void)arg;
    PGconn *conn = NULL;
    bool first_round = true;
    time_t last_retention = 0;
    pthread_mutex_lock(&node.mu);
    while (!node.stop) {
        pthread_mutex_unlock(&node.mu);
        if (conn && PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
        }
        if (!conn) {
            pgbr_error err = PGBR_ERROR_INIT;
            conn = catalog_connect(node.cfg.catalog_conninfo, &err);
            pgbr_error_clear(&err);
        }
        pgbr_error verr = PGBR_ERROR_INIT;
        bool ready = conn && catalog_schema_version(conn, &verr) >= 1;
        pgbr_error_clear(&verr);
        if (ready) {
            heartbeat(conn);
            claim(conn, first_round);
            first_round = false;
            if (time(NULL) - last_retention >= NODE_RETENTION_EVERY_S) {
                retention(conn);
                last_retention = time(NULL);
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += NODE_TICK_MS / 1000;
        pthread_mutex_lock(&node.mu);
        if (!node.stop && !node.poked)
            pthread_cond_timedwait(&node.wake, &node.mu, &ts);
        node.poked = false;
    }
    pthread_mutex_unlock(&node.mu);
    if (conn)
        PQfinish(conn);
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

bool exec_node_start(const exec_node_config *cfg)
{
    node.cfg = *cfg;
    node.cfg.catalog_conninfo = dup_or_null(cfg->catalog_conninfo);
    node.cfg.job_conninfo = dup_or_null(cfg->job_conninfo);
    node.cfg.external_io_dir = dup_or_null(cfg->external_io_dir);
    node.lease_seconds = cfg->lease_seconds > 0 ? cfg->lease_seconds : 30;
    node.retention_seconds = cfg->retention_seconds;
    node.stop = false;
    if (pthread_create(&node.thread, NULL, node_main, NULL) != 0) {
        log_error("could not start the job node thread");
        return false;
    }
    node.started = true;
    return true;
}

/* Shutting down: the jobs running here stop at their next chunk boundary,
 * keep what they wrote and leave their rows as they are, so a node adopts
 * them (this one at its next start, another once the lease has run out).
 * Waits up to NODE_SHUTDOWN_WAIT_MS for them. */
#define NODE_SHUTDOWN_WAIT_MS 15000

static void hand_over_jobs(void)
{
    pthread_mutex_lock(&node.mu);
    size_t n = node.njobs;
    for (size_t i = 0; i < node.njobs; i++) {
        node.jobs[i]->shutting_down = true;
        node.jobs[i]->lost = true;
    }
    pthread_mutex_unlock(&node.mu);
    if (n == 0)
        return;
    log_info("shutting down: %zu running job%s stop and wait for a node to adopt them", n, n == 1 ? "" : "s");
    for (int waited = 0; waited < NODE_SHUTDOWN_WAIT_MS; waited += 50) {
        pthread_mutex_lock(&node.mu);
        n = node.njobs;
        pthread_mutex_unlock(&node.mu);
        if (n == 0)
            return;
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    log_warning("shutting down: %zu job%s did not stop in time; they are adopted as after a crash", n,
                n == 1 ? "" : "s");
}

void exec_node_stop(void)
{
    if (!node.started)
        return;
    hand_over_jobs();
    pthread_mutex_lock(&node.mu);
    node.stop = true;
    pthread_cond_signal(&node.wake);
    pthread_mutex_unlock(&node.mu);
    pthread_join(node.thread, NULL);
    node.started = false;
    free((char *)node.cfg.catalog_conninfo);
    free((char *)node.cfg.job_conninfo);
    free((char *)node.cfg.external_io_dir);
    free(node.jobs);
    node.jobs = NULL;
    node.njobs = node.cap = 0;
    for (size_t i = 0; i < node.nsecrets; i++)
        free(node.secret_specs[i]);
    free(node.secret_specs);
    free(node.secret_ids);
    node.secret_specs = NULL;
    node.secret_ids = NULL;
    node.nsecrets = 0;
}
