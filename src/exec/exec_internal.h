/*
 * exec_internal.h - what the executor's files (the .c files of src/exec) share: the
 * request object, its lifetime rules, and the two ways a request waits
 * (a query on the client's session, a task on the worker pool).
 *
 * Lifetime: a request is reference counted. exec_start holds one reference
 * while it dispatches; every outstanding run_query or pool task holds one.
 * A request is finished once done was called (or suppressed by
 * exec_abandon); it is freed when it is finished and no reference is left.
 * Continuations (exec_step_cb, exec_after_fn) run only while the request is
 * not finished, so they may read stmt and info freely.
 *
 * Threads: everything here is loop-thread only, except the exec_work_fn of
 * exec_submit, which runs on a worker and may touch only the request fields
 * documented as worker-owned (the jobs state below).
 */
#ifndef PGBR_EXEC_INTERNAL_H
#define PGBR_EXEC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <time.h>

#include "pgbr/exec.h"
#include "pgbr/storage.h"

struct event;
struct pg_conn;
typedef struct exec_request exec_request;

typedef void (*exec_step_cb)(exec_request *req, result_set *rs, pgbr_error *err);
typedef void (*exec_work_fn)(exec_request *req, struct pg_conn *catalog_conn);
typedef void (*exec_after_fn)(exec_request *req);

/* State of a SHOW JOB(S) request. Filled on the loop thread before the pool
 * task is submitted; the task then reads it and fills rs/err; the loop
 * thread reads rs/err after the task is done. */
typedef struct exec_jobs_state {
    bool listing;            /* SHOW JOBS (not specific ids) */
    char *current_user;      /* from the privilege query */
    bool is_admin;
    int64_t *ids;
    int nids;
    int ids_cap;
    char *datestyle;         /* copies of the session's settings: the */
    char *timezone;          /* worker may still read them after the */
    char *intervalstyle;     /* proxy's strings are gone (cancel) */
    result_set *rs;          /* worker output */
    pgbr_error err;          /* worker output */
    /* SHOW JOB(S) WHEN COMPLETE */
    struct timespec wait_deadline;  /* loop thread: CLOCK_MONOTONIC */
    int unfinished;          /* worker output: listed jobs not terminal yet */
    /* PAUSE / RESUME / CANCEL JOB(S) (control_jobs.c) */
    char *reason;            /* PAUSE ... WITH REASON */
    int acted;               /* worker output: jobs acted on */
    exec_after_fn ids_next;  /* exec_jobs_resolve's continuation */
} exec_jobs_state;

/* State of a SHOW BACKUPS request: filled on the loop thread, read by the
 * worker task, which fills rs/err. */
typedef struct exec_backups_state {
    char *uri;
    result_set *rs;
    pgbr_error err;
} exec_backups_state;

/* State of a SHOW BACKUP request (show_backup.c). The loop thread fills the
 * request part before the pool task is submitted; the task reads it and
 * fills rs/err; afterwards only the loop thread touches it (times). */
typedef struct exec_show_backup_state {
    char *uri;               /* the collection; the backup itself when deprecated */
    char *subdir;            /* as given; NULL = LATEST (or the deprecated form) */
    char *inc_uri;           /* WITH incremental_location (its first URI); NULL: none */
    bool deprecated;         /* SHOW BACKUP '<backup URL>' without IN */
    bool schemas;            /* SHOW BACKUP SCHEMAS: create_statement */
    bool as_json, check_files, debug_ids;
    result_set *rs;          /* worker output, then kept while times are formatted */
    pgbr_error err;          /* worker output */
    char **times;            /* loop thread: distinct manifest times to format */
    int ntimes;
} exec_show_backup_state;

/* A BACKUP or RESTORE job (job.c): the generic part; ops give the
 * statement's own checks and work, state its own data. Filled on the loop
 * thread; afterwards only the worker running it touches it (the loop thread
 * reads ok/err/counts after the work is done). */
typedef struct exec_job exec_job;
typedef struct exec_job_ops {
    const char *job_type;   /* "BACKUP", "RESTORE": pgbr.jobs.job_type and the command tag */
    /* worker: checks that need the upstream or the storage, before the job
     * row exists (a refused statement creates no job). May be NULL. */
    bool (*prepare)(exec_job *job, struct pg_conn *catalog, pgbr_error *err);
    /* worker: the work. Sets job->rows, index_entries, bytes. Report
     * progress with exec_job_progress(job, ...). */
    bool (*run)(exec_job *job, pgbr_error *err);
    void (*free_state)(void *state);
    /* worker, after prepare: what run needs, as JSON text without any
     * secret (malloc'd; NULL when out of memory). Kept in pgbr.jobs.payload
     * so another run (a RESUME, an adoption after a crash, another node)
     * can rebuild the job without the client's session. redact: secrets
     * in URLs become "redacted" and the spec says "secrets": true (what is
     * stored); else the whole text, kept only in this process's memory. */
    char *(*spec_save)(exec_job *job, bool redact);
    /* node loop: rebuild job->state from spec_save's text. job->id, user,
     * is_admin, description and the configuration are set. */
    bool (*spec_load)(exec_job *job, const char *spec, pgbr_error *err);
    /* remove what the job's runs left (its files, slots, staging
     * databases), using job->checkpoint when it has one: for a cancel of a
     * job that is not running (paused, or adopted while cancel-requested). */
    bool (*discard)(exec_job *job, pgbr_error *err);
} exec_job_ops;

struct exec_job {
    const exec_job_ops *ops;
    void *state;
    int64_t id;
    bool detached;
    char *user;                 /* who runs it (from exec_identify) */
    bool is_admin;
    char *description;          /* the redacted canonical statement */
    char *conninfo;             /* pgbr's job conninfo (catalog database) */
    char *external_io_dir;
    int node_id;
    int workers;
    uint64_t bundle_limit, bundle_size;
    storage_config storage;     /* points into this struct */
    struct pg_conn *conn;       /* the worker's catalog connection, during run */
    time_t last_progress;
    /* set by the loop thread when the client cancels a blocking job (its
     * CancelRequest), or by the node loop when the row says
     * cancel-requested; the worker's next progress call then stops the job */
    _Atomic bool cancel_requested;
    /* node loop: the row says pause-requested (stop, keep the checkpoint) */
    _Atomic bool pause_requested;
    /* node loop: another node holds the job's lease now: stop without
     * touching the row or what was written */
    _Atomic bool lost;
    bool adopted;               /* rebuilt from pgbr.jobs by the node loop */
    _Atomic bool shutting_down; /* with lost: this node stops (SIGTERM) */
    bool rerun;                 /* an earlier run left state: discard it first */
    char *spec;                 /* ops->spec_save's text */
    char *checkpoint;           /* the last checkpoint saved (JSON), or NULL */
    int attempts;               /* runs that ended in a transient error */
    bool reverting;             /* the row says reverting */
    char *upstream_started;     /* pg_postmaster_start_time() when the run began */
    bool restart_checked, upstream_restarted;
    int outcome;                /* job.c's job_outcome once run is over */
    bool running;               /* the job row exists and run has not returned */
    bool inserted;
    bool ok;
    uint64_t rows, index_entries, bytes;
    pgbr_error err;
};

/* A job for req's statement (description, id, configuration copied from
 * req). Takes ownership of state (freed by ops->free_state). NULL when out
 * of memory. */
exec_job *exec_job_new(exec_request *req, const exec_job_ops *ops, void *state, bool detached);
void exec_job_free(exec_job *job);
/* Run req->job: prepare + insert on a worker, then the result (detached:
 * the job id at once; blocking: the row when the job ends). Call after
 * exec_identify. */
void exec_job_submit(exec_request *req);
/* A backup_progress_fn / restore_progress_fn with the job as arg: false
 * once the job is to stop (its client cancelled it). */
bool exec_job_progress(void *job, double fraction, const char *status);
/* The client cancelled req's statement: true when it is a blocking job
 * that is asked to stop (the statement then ends with the job, 57014);
 * false when there is no such job to stop. */
bool exec_job_cancel(exec_request *req);
/* After a failed run (err): true when the job will run again (a pause, a
 * retry, another node's run) and what it staged is to be kept. Worker only,
 * during run. */
bool exec_job_will_run_again(void *job, const pgbr_error *err);
/* Save the job's checkpoint (JSON text, no secrets) in its row; worker
 * only, during run. Logged, not fatal, when the catalog cannot be reached. */
void exec_job_save_checkpoint(exec_job *job, const char *json);
/* The ops of a job type ("BACKUP", "RESTORE"), or NULL. */
const exec_job_ops *exec_backup_job_ops(void);
const exec_job_ops *exec_restore_job_ops(void);

/* ---- the node's jobs (job_node.c) ---- */
/* A job starts or stops running on this node (its lease is renewed and its
 * row watched for pause and cancel requests meanwhile). Any thread. */
void exec_node_register(exec_job *job);
void exec_node_unregister(exec_job *job);
/* PAUSE/RESUME/CANCEL changed rows: the node loop looks at them now
 * (a job running here stops without waiting for the next tick; a resumed
 * job is claimed at once). Any thread. */
void exec_node_poke(void);
/* A URL as a job's spec keeps it: with redact, secret query parameters
 * become "redacted" and *secret is set when that changed it. */
typedef struct json_t json_t;
json_t *exec_spec_url(const char *url, bool redact, bool *secret);

/* The unredacted spec of a job whose stored one lost secrets: kept in this
 * process's memory only, so this node can still resume the job. Any
 * thread; takes a copy. */
void exec_node_keep_secret_spec(int64_t id, const char *spec);
/* Seconds a lease lasts (--job-lease). */
int exec_node_lease_seconds(void);
/* Run a job this node adopted or resumed, on a thread of its own with its
 * own catalog connection (pool_spawn); the job is freed when it is over.
 * Any thread. */
void exec_job_start_thread(exec_job *job);

struct exec_request {
    int refs;
    bool finished;
    bool abandoned;
    const sql_stmt *stmt;          /* valid while !finished */
    exec_session_info info;        /* strings valid while !finished */
    int nparams;
    char **params;                 /* copies of the bound values (NULL = SQL NULL) */
    exec_done_cb done;
    void *done_arg;
    char *admin_role;              /* configuration at exec_start */
    int node_id;
    exec_step_cb query_cb;         /* the outstanding run_query's continuation */
    exec_work_fn work_fn;          /* the outstanding pool task */
    exec_after_fn after_fn;
    exec_after_fn identity_next;   /* exec_identify's continuation */
    struct event *sleep_ev;        /* exec_sleep's timer (created on first use) */
    exec_after_fn sleep_fn;        /* its continuation; non-NULL while it is pending */
    char *current_user;            /* after exec_identify */
    bool is_admin;                 /* superuser or member of the admin role */
    char *external_io_dir;         /* configuration at exec_start */
    char *job_conninfo;            /* configuration at exec_start */
    int workers;
    uint64_t bundle_limit, bundle_size;    /* configuration at exec_start */
    exec_job *job;                 /* BACKUP/RESTORE: the job until it runs on its own */
    exec_jobs_state jobs;
    exec_backups_state backups;
    exec_show_backup_state show_backup;
};

/* Complete the request: done(rs) or done(err) unless already finished or
 * abandoned. Takes ownership of rs. */
void exec_finish(exec_request *req, result_set *rs, pgbr_error *err);
/* Complete the request with a new error. */
void exec_fail(exec_request *req, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 0A000 "<what> is not implemented yet". */
void exec_fail_not_implemented(exec_request *req, const char *what);

/* Run sql on the client's own session; cb runs later (or before this
 * returns) unless the request finished meanwhile. */
void exec_run_query(exec_request *req, const char *sql, int nparams, const char *const *params,
                    exec_step_cb cb);
/* Run work on a worker with its catalog connection, then after on the loop
 * thread unless the request finished meanwhile. */
void exec_submit(exec_request *req, exec_work_fn work, exec_after_fn after);

/* Run next on the loop thread after ms milliseconds, unless the request
 * finished meanwhile. A client's cancel or disconnect drops the timer at
 * once (no wait for it to fire). Needs req->info.base (false, request not
 * finished, when there is none: the caller reports it). */
bool exec_sleep(exec_request *req, int ms, exec_after_fn next);

/* exec_submit for work that may take hours (a job): on a thread of its
 * own (pool_spawn), so it holds no pool worker. */
void exec_submit_long(exec_request *req, exec_work_fn work, exec_after_fn after);

/* Parse text as PostgreSQL's int8 input does (surrounding spaces allowed).
 * Errors: 22P02 invalid input syntax, 22003 out of range. */
bool exec_parse_int8(const char *text, int64_t *out, pgbr_error *err);

/* The bound value of $n: *value is NULL for SQL NULL. False (err set,
 * 08P01) when the statement was not given that many values. */
bool exec_param_value(const exec_request *req, int n, const char **value, pgbr_error *err);

/* Who is asking: run the privilege query on the client's own session, set
 * req->current_user and req->is_admin, then continue with next. */
void exec_identify(exec_request *req, exec_after_fn next);

/* nodelocal:// and file:// reach the server's own files: only admins may
 * (spec/README.md). False (the request finished with 42501) otherwise.
 * Call after exec_identify. */
bool exec_check_implicit_access(exec_request *req, const char *uri);
/* The same check without finishing the request: false with err set (the
 * same 42501 and hint) when req's user may not use uri. */
bool exec_implicit_access_allowed(const exec_request *req, const char *uri, pgbr_error *err);

/* WITH incremental_location = <list>: as many URIs as the destination's
 * ndest (reference 11.2), else 22023 `the incremental_location option must
 * contain the same number of locality aware URIs as the full backup
 * destination` and false (the request finished). True when absent. */
bool exec_check_incremental_location(exec_request *req, const sql_string_list *inc, int ndest);

/* The value of a string slot: a literal or a bound $n. NULL (err set) for
 * a missing parameter or SQL NULL. */
const char *exec_string_value(exec_request *req, const sql_string *str, pgbr_error *err);

/* BACKUP DATABASE ... INTO (backup_job.c), after exec.c's checks. */
void exec_backup_job_start(exec_request *req, bool detached);
/* RESTORE (restore_job.c), after exec.c's checks. */
void exec_restore_job_start(exec_request *req, bool detached);

/* SHOW BACKUPS IN (show_backups.c). */
void exec_show_backups_start(exec_request *req);

/* SHOW BACKUP [SCHEMAS] ... (show_backup.c). */
void exec_show_backup_start(exec_request *req);
/* Free what exec_show_backup_start and its steps allocated (show_backup.c). */
void exec_show_backup_free(exec_show_backup_state *state);

/* SHOW JOB(S) WHEN COMPLETE re-checks its jobs this often, and gives up
 * after this long (CockroachDB's 24 hours) with 57014. */
#define EXEC_WHEN_COMPLETE_POLL_MS 500
#define EXEC_WHEN_COMPLETE_TIMEOUT_S (24 * 3600)

/* SHOW [AUTOMATIC|CHANGEFEED] JOB(S) in every form (show_jobs.c). */
void exec_show_jobs_start(exec_request *req);
/* Free what exec_show_jobs_start allocated (show_jobs.c). */
void exec_show_jobs_free(exec_jobs_state *jobs);
/* The job ids a statement names, into req->jobs.ids (show_jobs.c): form
 * SQL_JOBS_ONE evaluates expr (a literal or $n as is, anything else as
 * "SELECT (expr)::int8" on the client's session), SQL_JOBS_SELECT runs
 * select there and takes its first column; NULLs name no job. Then next, or
 * the request finishes with the error. Call after exec_identify. */
void exec_jobs_resolve(exec_request *req, sql_jobs_form form, const sql_raw *expr, const sql_raw *select,
                       exec_after_fn next);

/* PAUSE / RESUME / CANCEL JOB(S) in every form (control_jobs.c). */
void exec_control_jobs_start(exec_request *req);

#endif
