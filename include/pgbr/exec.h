/*
 * exec.h - the executor: turns a parsed statement of ours into action and a
 * result, on behalf of one client session.
 *
 * Threads: exec_start/exec_cancel/exec_describe are called on the event-loop
 * thread, and the completion callback is called there too. The executor never
 * blocks the loop: catalog work runs on the worker pool (pool.h), and queries
 * that must run as the client (privilege checks, user SELECTs) go through the
 * session services the proxy provides below.
 */
#ifndef PGBR_EXEC_H
#define PGBR_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/result.h"
#include "pgbr/sql.h"

struct event_base;

/* Called with a result set (rows converted to text) or an error. Exactly one
 * of rs/err is non-NULL. Ownership of rs passes to the callee; err is only
 * valid during the call. */
typedef void (*exec_query_cb)(void *arg, result_set *rs, pgbr_error *err);

/*
 * What the proxy offers the executor for one client session. All functions
 * are called on the loop thread.
 */
typedef struct exec_session_ops {
    /*
     * Run one SQL statement with text parameters ($1..$n) on the client's
     * own upstream session (so current_user, search_path, the open
     * transaction are the client's). The callback gets the rows or the
     * upstream's error. Safe to call only while the executor owns the
     * session's turn (between exec_start and its completion callback).
     */
    void (*run_query)(void *session, const char *sql, int nparams, const char *const *params,
                      exec_query_cb cb, void *arg);
    /*
     * The statement will wait long (SHOW JOB WHEN COMPLETE): keep reading
     * the client meanwhile, so that a client that goes away closes its
     * session (and abandons the request) at once instead of when the wait
     * ends. What the client sends meanwhile is kept, up to a bound, and
     * processed after the statement. May be NULL.
     */
    void (*watch_client)(void *session);
} exec_session_ops;

/* The client session's state the executor may read. Strings are owned by the
 * proxy and valid until the completion callback has been called. */
typedef struct exec_session_info {
    const char *user;             /* startup user */
    const char *database;         /* startup database */
    const char *application_name;
    char txn_status;              /* upstream's last ReadyForQuery status: 'I', 'T' or 'E' */
    const char *datestyle;        /* from the upstream's ParameterStatus, or NULL */
    const char *timezone;
    const char *intervalstyle;
    const exec_session_ops *ops;
    void *session;                /* opaque, passed back to ops */
    /* The loop's event base, for statements that wait by polling (SHOW JOB
     * WHEN COMPLETE); NULL: such statements fail with XX000. */
    struct event_base *base;
} exec_session_info;

/* Parameter values bound to $1..$n (text format, NULL = SQL NULL). */
typedef struct exec_params {
    int n;
    const char *const *values;
} exec_params;

/* Called once per exec_start with the outcome: rs on success (ownership
 * passes to the callee), err on failure. notices (may be NULL) is a
 * NULL-terminated array of NOTICE messages to send before the result. */
typedef void (*exec_done_cb)(void *arg, result_set *rs, pgbr_error *err, const char *const *notices);

typedef struct exec_request exec_request;

/*
 * Start executing stmt (owned by the caller, must stay valid until done is
 * called). `text` is the statement's source text. Returns a handle usable with
 * exec_cancel until done has been called; done may be called before
 * exec_start returns.
 */
exec_request *exec_start(const sql_stmt *stmt, const char *text, const exec_params *params,
                         const exec_session_info *info, exec_done_cb done, void *arg);

/* Ask a running request to stop: it finishes with SQLSTATE 57014
 * "canceling statement due to user request" as soon as it can. */
void exec_cancel(exec_request *req);

/* Forget a request whose client went away: done will not be called. */
void exec_abandon(exec_request *req);

/*
 * The result columns of stmt, without running it (for Describe in the
 * extended protocol). Returns a result set with no rows (has_rows false for
 * statements that return none); caller frees.
 */
result_set *exec_describe(const sql_stmt *stmt);

/* ---------------------------------------------------------------------------
 * Additions: configuration, and the finer points of the contract above
 * ------------------------------------------------------------------------- */

#define EXEC_DEFAULT_ADMIN_ROLE "pgbr_admin"

typedef struct exec_config {
    /* Superusers and members of this role administer pgbr: they see and
     * control every user's jobs. NULL or "" = EXEC_DEFAULT_ADMIN_ROLE. The
     * role need not exist (then only superusers are admins); pgbr never
     * creates it. */
    const char *admin_role;
    /* This node's --node-id: mixed into job ids, shown as coordinator_id. */
    int node_id;
    /* --external-io-dir: root of nodelocal:// and file:// URLs (NULL = none). */
    const char *external_io_dir;
    /* libpq conninfo of pgbr's own job connections (any dbname in it is
     * replaced per database). */
    const char *job_conninfo;
    /* --workers: parallel copy connections per database. */
    int workers;
    /* --bundle-limit, --bundle-size in bytes (backup_request's). */
    uint64_t bundle_limit, bundle_size;
} exec_config;

/*
 * Set the executor's configuration (values are copied). Loop thread only:
 * call at start and on SIGHUP; requests already running keep what they
 * started with. exec_configure(NULL) restores the defaults and frees the
 * copies (for a clean exit).
 */
void exec_configure(const exec_config *cfg);

/*
 * The node's job loop (job_node.c): a thread that renews the leases of the
 * jobs this node runs, passes PAUSE/CANCEL requests recorded in pgbr.jobs
 * on to them, adopts jobs no live node holds (a node killed or restarted, a
 * RESUME) and deletes finished jobs older than the retention. Values are
 * copied. Start once after the catalog is migrated; stop at exit.
 */
typedef struct exec_node_config {
    const char *catalog_conninfo;   /* pgbr's connection to the catalog database */
    const char *job_conninfo;       /* as exec_config's */
    const char *external_io_dir;
    int node_id;
    int workers;
    uint64_t bundle_limit, bundle_size;
    int lease_seconds;              /* --job-lease; <= 0: 30 */
    int64_t retention_seconds;      /* --job-retention; <= 0: keep forever */
} exec_node_config;
bool exec_node_start(const exec_node_config *cfg);
void exec_node_stop(void);

/*
 * Notes on the functions above:
 * - exec_start returns NULL when done was already called before it returned
 *   (errors found without any I/O); exec_cancel and exec_abandon accept NULL.
 * - After done has been called the handle is gone: do not cancel or abandon
 *   it. Between exec_start and done, call at most one of exec_abandon (the
 *   last use of the handle) or exec_cancel (which calls done with 57014
 *   at once, unless done already ran).
 * - The executor relies on run_query calling its callback exactly once,
 *   also after the request was canceled or abandoned (with an error when the
 *   session is gone); the request's memory is freed only then.
 * - exec_params values are copied by exec_start; stmt and the info strings
 *   are only read until done is called (or until exec_abandon returns).
 */

#endif
