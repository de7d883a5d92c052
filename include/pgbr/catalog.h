/*
 * catalog.h - pgbr's own tables in the upstream: the schema "pgbr" in the
 * catalog database (jobs now; schedules later), its versioned migrations,
 * job ids, the queries SHOW JOBS runs, the status changes PAUSE / RESUME /
 * CANCEL JOB make, and job retention.
 *
 * Threads: everything that takes a PGconn runs libpq in blocking mode and may
 * be called only on worker threads (pool.h), never on the event loop.
 * catalog_new_job_id and the pure helpers are safe from any thread.
 */
#ifndef PGBR_CATALOG_H
#define PGBR_CATALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/result.h"

struct pg_conn;
struct pg_result;

/* The schema every catalog object lives in. */
#define CATALOG_SCHEMA "pgbr"

/* The schema version this build migrates the catalog to. */
#define CATALOG_SCHEMA_VERSION 2

/* Key of the pg_advisory_xact_lock that serialises migrations across nodes
 * ('pgbr' in ASCII). */
#define CATALOG_MIGRATION_LOCK_KEY 0x70676272LL

/* ---------------------------------------------------------------------------
 * Connections and errors
 * ------------------------------------------------------------------------- */

/*
 * Open a blocking libpq connection to the catalog database. conninfo is a
 * connection string or URI (NULL or "" = libpq defaults); application_name
 * falls back to "pgbr". Returns NULL and sets err (SQLSTATE 08006, "could not
 * connect to the catalog database: <libpq message>") on failure.
 */
struct pg_conn *catalog_connect(const char *conninfo, pgbr_error *err);

/*
 * Record, for the calling thread, why it has no catalog connection (why is
 * copied; NULL clears and frees the record). The worker pool calls this
 * before passing a NULL connection to a work function, and with NULL when it
 * has a connection again or the thread ends.
 */
void catalog_note_unavailable(const pgbr_error *why);

/*
 * For work functions: true when conn is usable. Otherwise sets err to the
 * reason recorded by catalog_note_unavailable on this thread (or a generic
 * 08006 "could not connect to the catalog database: ..." one) and returns
 * false.
 */
bool catalog_require_conn(struct pg_conn *conn, pgbr_error *err);

/*
 * Fill err from a failed libpq result (SQLSTATE, primary message, detail,
 * hint); res may be NULL, then conn's error message is used with SQLSTATE
 * 08006 when the connection is broken, else XX000. Returns false.
 */
bool catalog_error_from_result(pgbr_error *err, const struct pg_result *res,
                               const struct pg_conn *conn);

/* ---------------------------------------------------------------------------
 * Migrations
 * ------------------------------------------------------------------------- */

/*
 * Create or upgrade the schema "pgbr" to CATALOG_SCHEMA_VERSION. Each step
 * runs in its own transaction together with its version bump, under
 * pg_advisory_xact_lock(CATALOG_MIGRATION_LOCK_KEY), so nodes starting at once
 * do not race; when the catalog is already current it changes nothing. A
 * catalog newer than this build is left alone (logged as a warning). conn
 * must be idle (no open transaction). On failure sets err with the server's
 * SQLSTATE and "could not migrate the catalog schema \"pgbr\" to version N:
 * <message>".
 */
bool catalog_migrate(struct pg_conn *conn, pgbr_error *err);

/* Run a statement with text parameters (or, with none, a script of several
 * statements); false (err filled from the server's report) unless it
 * succeeded. Worker threads only. */
bool catalog_exec(struct pg_conn *conn, const char *sql, int nparams, const char *const *params, pgbr_error *err);

/* The catalog's current schema version: 0 when it has none yet, -1 (err set)
 * on failure. */
int catalog_schema_version(struct pg_conn *conn, pgbr_error *err);

/* ---------------------------------------------------------------------------
 * Job ids and statuses
 * ------------------------------------------------------------------------- */

/* Job ids count milliseconds from 2020-01-01 00:00:00 UTC. */
#define CATALOG_JOB_ID_EPOCH_MS 1577836800000LL

/*
 * A new job id, unique across nodes and increasing within the process:
 *   (ms since CATALOG_JOB_ID_EPOCH_MS << 22) | (node_id & 0x3ff) << 12 | seq
 * with a 12-bit sequence per millisecond. When the sequence runs out or the
 * clock steps back, the millisecond part borrows from the future, so ids
 * never repeat or decrease. Thread-safe.
 */
int64_t catalog_new_job_id(int node_id);
/* The node id (10 bits) mixed into a job id. */
int catalog_job_id_node(int64_t job_id);
/* The creation time of a job id, in ms since the Unix epoch. */
int64_t catalog_job_id_unix_ms(int64_t job_id);

/* True for the ten statuses the jobs table accepts. */
bool catalog_job_status_valid(const char *status);
/* True for statuses a job never leaves: succeeded, failed, canceled,
 * revert-failed. */
bool catalog_job_status_terminal(const char *status);

/* ---------------------------------------------------------------------------
 * SHOW JOBS
 * ------------------------------------------------------------------------- */

#define CATALOG_SHOW_JOBS_NCOLS 16
/* Column names and wire types of every SHOW JOB(S) form, in order. */
extern const char *const catalog_show_jobs_names[CATALOG_SHOW_JOBS_NCOLS];
extern const uint32_t catalog_show_jobs_types[CATALOG_SHOW_JOBS_NCOLS];

/* Longest description the SHOW JOBS listing shows, in characters. */
#define CATALOG_SHOW_JOBS_DESCRIPTION_MAX 100

typedef struct catalog_jobs_filter {
    /* true: the SHOW JOBS listing (jobs that are not terminal, plus those
     * finished in the last 12 hours; descriptions truncated). false: exactly
     * the jobs in ids (any age, full descriptions). */
    bool listing;
    const int64_t *ids;
    int nids;
    /* Only jobs of this user; NULL = every user's (admins). */
    const char *user_name;
    /* The client session's settings, so timestamps print as its own session
     * would print them; NULL = the catalog connection's own. */
    const char *datestyle;
    const char *timezone;
    const char *intervalstyle;
} catalog_jobs_filter;

/*
 * The rows of SHOW JOBS / SHOW JOB for filter, in display order: jobs that
 * are not terminal first, most recently started first (never started ones
 * after those, newest created first), then terminal jobs, most recently
 * finished first; ties by id, newest first. *out gets a result set with the
 * CATALOG_SHOW_JOBS_NCOLS columns and no command tag (caller frees). Runs in
 * its own read-only transaction on conn.
 */
bool catalog_show_jobs(struct pg_conn *conn, const catalog_jobs_filter *filter, result_set **out,
                       pgbr_error *err);

/*
 * How many of filter->ids (only filter->user_name's jobs when it is set) are
 * not terminal yet: what SHOW JOB(S) WHEN COMPLETE waits for. Ids that do not
 * exist (or are another user's) do not count. filter->listing must be false.
 * One short read-only query; false (err set) on failure.
 */
bool catalog_jobs_count_unfinished(struct pg_conn *conn, const catalog_jobs_filter *filter, int *count,
                                   pgbr_error *err);

/* ---------------------------------------------------------------------------
 * PAUSE / RESUME / CANCEL JOB: the status changes (jobs_control.c)
 *
 * These only change rows; the node running a job (or, once its lease is
 * cleared, any node) acts on them. The contract with the job runtime:
 *
 *   PAUSE   pending, running, reverting -> pause-requested; payload gets
 *           "paused_from": <the status it had> and, WITH REASON,
 *           "pause_reason": <text> (without a reason the key is removed).
 *           The worker then stops at a chunk boundary, saves its checkpoint
 *           and sets 'paused' (keeping payload.paused_from).
 *           paused, pause-requested: no-op.
 *   RESUME  paused -> payload.paused_from (pending, running or reverting;
 *           'running' when absent or anything else), coordinator_id = NULL,
 *           lease_expires = NULL: any node may claim it.
 *           pause-requested -> payload.paused_from the same way, coordinator
 *           and lease kept (its worker never stopped).
 *           paused_from is removed from payload; pause_reason stays.
 *           running, reverting: no-op.
 *   CANCEL  pending, running, pause-requested -> cancel-requested;
 *           paused -> cancel-requested with coordinator_id = NULL and
 *           lease_expires = NULL (no worker holds it: any node may claim it
 *           and revert). canceled, cancel-requested: no-op.
 *
 * Every change sets modified = now(); a no-op changes nothing. Any other
 * status is SQLSTATE 55000: "job with status <s> cannot be requested to be
 * paused" / "cannot be resumed" / "cannot be requested to be canceled".
 * ------------------------------------------------------------------------- */

typedef enum catalog_job_action {
    CATALOG_JOB_PAUSE = 1,
    CATALOG_JOB_RESUME,
    CATALOG_JOB_CANCEL
} catalog_job_action;

typedef struct catalog_control_request {
    catalog_job_action action;
    /* The jobs named by id (duplicates count once)... */
    const int64_t *ids;
    int nids;
    /* ...or, when job_type is set, every job of that type ("BACKUP",
     * "RESTORE", ...) that the action changes (its no-ops and errors are
     * left out): PAUSE / RESUME / CANCEL ALL <type> JOBS. */
    const char *job_type;
    /* Who asks: a non-admin may act only on jobs whose user_name is
     * user_name (the ALL form then takes only theirs). */
    const char *user_name;
    bool is_admin;
    /* PAUSE ... WITH REASON, or NULL. */
    const char *reason;
} catalog_control_request;

/*
 * Apply req->action (above) in one transaction on conn. By id: every job is
 * locked and checked first (an unknown id is 42704 "job with ID <id> does not
 * exist"; another user's job, for a non-admin, 42501 "permission denied to
 * <pause|resume|cancel> job <id>"; a status the action does not accept,
 * 55000), so an error changes nothing. *acted = the number of jobs acted on,
 * no-ops included (by id) or the number changed (ALL form). False (err set)
 * on failure.
 */
bool catalog_control_jobs(struct pg_conn *conn, const catalog_control_request *req, int *acted,
                          pgbr_error *err);

/* ---------------------------------------------------------------------------
 * Retention (jobs_retention.c)
 * ------------------------------------------------------------------------- */

/*
 * Delete the terminal jobs (succeeded, failed, canceled, revert-failed) that
 * finished more than retention_s seconds ago (--job-retention) (modified stands in for a
 * missing finished time). Kept whatever their age: a full backup whose
 * change stream (replication slot pgbr_<job id>_<n>) still exists, so
 * pgbr.change_streams can still name it. retention_s <= 0 keeps everything
 * (returns 0 without a query). Returns the number of rows deleted, or -1 with
 * err set. Worker threads (or any thread with its own connection) only.
 */
int64_t catalog_delete_expired_jobs(struct pg_conn *conn, int64_t retention_s, pgbr_error *err);

#endif
