/*
 * exec.c - the executor's entry points (see include/pgbr/exec.h): request
 * lifetime, cancel/abandon, dispatch by statement kind, and the checks the
 * reference makes of BACKUP and RESTORE before anything else.
 *
 * Statements whose execution does not exist yet fail with 0A000 "<statement>
 * is not implemented yet": pgbr never reports a success it did not earn.
 * Everything here runs on the event-loop thread; the only blocking work
 * (catalog queries) goes through exec_submit to the worker pool, and a
 * statement that waits for something outside (SHOW JOB WHEN COMPLETE) polls
 * with exec_sleep's timer on the loop.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "pgbr/log.h"
#include "pgbr/pool.h"

/* Loop-thread only. */
static char *exec_admin_role;
static int exec_node_id;
static char *exec_external_io_dir;
static char *exec_job_conninfo;
static int exec_workers;
static uint64_t exec_bundle_limit = 1024 * 1024, exec_bundle_size = 32 * 1024 * 1024;

void exec_configure(const exec_config *cfg)
{
    free(exec_admin_role);
    exec_admin_role = NULL;
    free(exec_external_io_dir);
    exec_external_io_dir = NULL;
    free(exec_job_conninfo);
    exec_job_conninfo = NULL;
    exec_node_id = 0;
    if (cfg == NULL)
        return;
    if (cfg->admin_role != NULL && cfg->admin_role[0] != '\0')
        exec_admin_role = strdup(cfg->admin_role);
    if (cfg->external_io_dir != NULL && cfg->external_io_dir[0] != '\0')
        exec_external_io_dir = strdup(cfg->external_io_dir);
    exec_node_id = cfg->node_id;
    exec_workers = cfg->workers;
    exec_bundle_limit = cfg->bundle_limit;
    exec_bundle_size = cfg->bundle_size;
    if (cfg->job_conninfo != NULL)
        exec_job_conninfo = strdup(cfg->job_conninfo);
}

static void *exec_xalloc(void *p)
{
    if (p == NULL) {
        log_write(LOG_LEVEL_FATAL, "out of memory in the executor");
        abort();
    }
    return p;
}

/* ---------------------------------------------------------------------------
 * Request lifetime
 * ------------------------------------------------------------------------- */

static void exec_request_free(exec_request *req)
{
    for (int i = 0; i < req->nparams; i++)
        free(req->params[i]);
    free(req->params);
    free(req->admin_role);
    free(req->current_user);
    free(req->external_io_dir);
    free(req->job_conninfo);
    exec_job_free(req->job);
    free(req->backups.uri);
    result_set_free(req->backups.rs);
    pgbr_error_clear(&req->backups.err);
    exec_show_backup_free(&req->show_backup);
    exec_show_jobs_free(&req->jobs);
    if (req->sleep_ev != NULL)
        event_free(req->sleep_ev);
    free(req);
}

static void exec_ref(exec_request *req)
{
    req->refs++;
}

static void exec_unref(exec_request *req)
{
    if (--req->refs > 0)
        return;
    if (!req->finished) {
        /* Nothing is pending and nobody answered: a bug, but the client
         * must still get an answer rather than hang. */
        log_error("executor: %s ended without a result", sql_stmt_name(req->stmt));
        req->refs++;
        exec_fail(req, "XX000", "internal error: %s ended without a result", sql_stmt_name(req->stmt));
        req->refs--;
    }
    exec_request_free(req);
}

void exec_finish(exec_request *req, result_set *rs, pgbr_error *err)
{
    if (req->finished) {
        result_set_free(rs);
        return;
    }
    req->finished = true;
    if (req->abandoned) {
        result_set_free(rs);
        return;
    }
    if (rs != NULL)
        req->done(req->done_arg, rs, NULL, NULL);
    else {
        pgbr_error fallback = PGBR_ERROR_INIT;
        if (err == NULL || !pgbr_error_is_set(err)) {
            pgbr_error_set(&fallback, "XX000", "internal error: no result and no error");
            err = &fallback;
        }
        req->done(req->done_arg, NULL, err, NULL);
        pgbr_error_clear(&fallback);
    }
}

void exec_fail(exec_request *req, const char *sqlstate, const char *fmt, ...)
{
    pgbr_error err = PGBR_ERROR_INIT;
    char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    pgbr_error_set(&err, sqlstate, "%s", msg != NULL ? msg : "out of memory");
    free(msg);
    exec_finish(req, NULL, &err);
    pgbr_error_clear(&err);
}

void exec_fail_not_implemented(exec_request *req, const char *what)
{
    exec_fail(req, "0A000", "%s is not implemented yet", what);
}

/* A pending exec_sleep is dropped rather than left to fire: true when there
 * was one; its reference is then the caller's to release. */
static bool exec_sleep_drop(exec_request *req)
{
    if (req->sleep_fn == NULL)
        return false;
    event_del(req->sleep_ev);
    req->sleep_fn = NULL;
    return true;
}

void exec_cancel(exec_request *req)
{
    pgbr_error err = PGBR_ERROR_INIT;

    if (req == NULL || req->finished)
        return;
    /* A blocking BACKUP / RESTORE stops, cleans up and then answers 57014. */
    if (exec_job_cancel(req))
        return;
    /* Answer now; whatever is in flight is discarded when it returns. */
    pgbr_error_set(&err, "57014", "canceling statement due to user request");
    exec_finish(req, NULL, &err);
    pgbr_error_clear(&err);
    /* Last: this may free the request. */
    if (exec_sleep_drop(req))
        exec_unref(req);
}

void exec_abandon(exec_request *req)
{
    if (req == NULL)
        return;
    req->abandoned = true;
    req->finished = true;
    if (exec_sleep_drop(req))
        req->refs--;
    if (req->refs == 0)
        exec_request_free(req);
}

/* ---------------------------------------------------------------------------
 * Waiting: queries on the client's session, tasks on the pool
 * ------------------------------------------------------------------------- */

static void exec_query_returned(void *arg, result_set *rs, pgbr_error *err)
{
    exec_request *req = arg;
    exec_step_cb cb = req->query_cb;

    req->query_cb = NULL;
    if (req->finished)
        result_set_free(rs);
    else
        cb(req, rs, err);
    exec_unref(req);
}

void exec_run_query(exec_request *req, const char *sql, int nparams, const char *const *params,
                    exec_step_cb cb)
{
    exec_ref(req);
    req->query_cb = cb;
    req->info.ops->run_query(req->info.session, sql, nparams, params, exec_query_returned, req);
}

static void exec_task_work(void *arg, struct pg_conn *conn)
{
    exec_request *req = arg;

    req->work_fn(req, conn);
}

static void exec_task_done(void *arg)
{
    exec_request *req = arg;
    exec_after_fn after = req->after_fn;

    req->work_fn = NULL;
    req->after_fn = NULL;
    if (!req->finished)
        after(req);
    exec_unref(req);
}

void exec_submit(exec_request *req, exec_work_fn work, exec_after_fn after)
{
    exec_ref(req);
    req->work_fn = work;
    req->after_fn = after;
    pool_submit(exec_task_work, exec_task_done, req);
}

void exec_submit_long(exec_request *req, exec_work_fn work, exec_after_fn after)
{
    exec_ref(req);
    req->work_fn = work;
    req->after_fn = after;
    pool_spawn(exec_task_work, exec_task_done, req);
}

static void exec_sleep_fired(evutil_socket_t fd, short what, void *arg)
{
    exec_request *req = arg;
    exec_after_fn next = req->sleep_fn;

    (void)fd;
    (void)what;
    req->sleep_fn = NULL;
    if (next != NULL && !req->finished)
        next(req);
    exec_unref(req);
}

bool exec_sleep(exec_request *req, int ms, exec_after_fn next)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (req->info.base == NULL)
        return false;
    if (req->sleep_ev == NULL)
        req->sleep_ev = exec_xalloc(evtimer_new(req->info.base, exec_sleep_fired, req));
    exec_ref(req);
    req->sleep_fn = next;
    evtimer_add(req->sleep_ev, &tv);
    return true;
}

/* ---------------------------------------------------------------------------
 * Small shared helpers
 * ------------------------------------------------------------------------- */

bool exec_parse_int8(const char *text, int64_t *out, pgbr_error *err)
{
    const char *p = text;
    bool neg = false;
    uint64_t acc = 0;
    /* the magnitude of INT64_MIN, which has no positive counterpart */
    const uint64_t limit_neg = (uint64_t)INT64_MAX + 1;

    while (*p != '\0' && isspace((unsigned char)*p))
        p++;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return pgbr_error_set(err, "22P02", "invalid input syntax for type bigint: \"%s\"", text);
    for (; isdigit((unsigned char)*p); p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (acc > (limit_neg - digit) / 10) {
            /* keep scanning for the PostgreSQL order of checks: a bad
             * character anywhere is a syntax error, not a range error */
            while (isdigit((unsigned char)*p))
                p++;
            while (*p != '\0' && isspace((unsigned char)*p))
                p++;
            if (*p != '\0')
                return pgbr_error_set(err, "22P02", "invalid input syntax for type bigint: \"%s\"", text);
            return pgbr_error_set(err, "22003", "value \"%s\" is out of range for type bigint", text);
        }
        acc = acc * 10 + digit;
    }
    while (*p != '\0' && isspace((unsigned char)*p))
        p++;
    if (*p != '\0')
        return pgbr_error_set(err, "22P02", "invalid input syntax for type bigint: \"%s\"", text);
    if (!neg && acc > (uint64_t)INT64_MAX)
        return pgbr_error_set(err, "22003", "value \"%s\" is out of range for type bigint", text);
    *out = neg ? (acc == limit_neg ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
    return true;
}

bool exec_param_value(const exec_request *req, int n, const char **value, pgbr_error *err)
{
    if (n < 1 || n > req->nparams)
        return pgbr_error_set(err, "08P01", "there is no parameter $%d", n);
    *value = req->params[n - 1];
    return true;
}

/* ---------------------------------------------------------------------------
 * Who is asking
 * ------------------------------------------------------------------------- */

/* Superuser, or member of the admin role (a role that does not exist has no
 * members), decided by PostgreSQL on the client's own session. */
static const char exec_privilege_sql[] =
    "SELECT current_user::text,"
    " r.rolsuper OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles a"
    " WHERE a.rolname = $1 AND pg_catalog.pg_has_role(current_user, a.oid, 'MEMBER'))"
    " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

static void exec_on_identity(exec_request *req, result_set *rs, pgbr_error *err)
{
    const char *user, *admin;
    exec_after_fn next = req->identity_next;

    req->identity_next = NULL;
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    user = result_set_value(rs, 0, 0);
    admin = result_set_value(rs, 0, 1);
    if (user == NULL) {
        result_set_free(rs);
        exec_fail(req, "42704", "could not determine the current user's role");
        return;
    }
    free(req->current_user);
    req->current_user = exec_xalloc(strdup(user));
    req->is_admin = admin != NULL && strcmp(admin, "t") == 0;
    result_set_free(rs);
    next(req);
}

void exec_identify(exec_request *req, exec_after_fn next)
{
    const char *params[1] = { req->admin_role };
    req->identity_next = next;
    exec_run_query(req, exec_privilege_sql, 1, params, exec_on_identity);
}

bool exec_implicit_access_allowed(const exec_request *req, const char *uri, pgbr_error *err)
{
    const char *sep = strstr(uri, "://");
    size_t n = sep ? (size_t)(sep - uri) : 0;
    bool implicit = sep != NULL && ((n == 9 && strncmp(uri, "nodelocal", 9) == 0) || (n == 4 && strncmp(uri, "file", 4) == 0));
    if (!implicit || req->is_admin)
        return true;
    pgbr_error_set(err, "42501", "only users with the admin role are allowed to access the specified %.*s URI",
                   (int)n, uri);
    pgbr_error_hint(err, "Superusers and members of role \"%s\" are pgbr admins.", req->admin_role);
    return false;
}

bool exec_check_implicit_access(exec_request *req, const char *uri)
{
    pgbr_error err = PGBR_ERROR_INIT;
    if (exec_implicit_access_allowed(req, uri, &err))
        return true;
    exec_finish(req, NULL, &err);
    pgbr_error_clear(&err);
    return false;
}

bool exec_check_incremental_location(exec_request *req, const sql_string_list *inc, int ndest)
{
    if (inc == NULL || inc->n == ndest)
        return true;
    exec_fail(req, "22023", "the incremental_location option must contain the same number of locality aware URIs as "
                            "the full backup destination");
    return false;
}

const char *exec_string_value(exec_request *req, const sql_string *str, pgbr_error *err)
{
    const char *v = NULL;
    if (str->param == 0)
        return str->value;
    if (!exec_param_value(req, str->param, &v, err))
        return NULL;
    if (v == NULL)
        pgbr_error_set(err, "22004", "parameter $%d must not be NULL", str->param);
    return v;
}

/* ---------------------------------------------------------------------------
 * BACKUP / RESTORE: the checks the reference makes before anything else
 * ------------------------------------------------------------------------- */

/* Definitely true: set to TRUE (a bare option or a TRUE literal). */
static bool exec_opt_true(const sql_bool_opt *o)
{
    return o->set && o->expr == NULL && o->value;
}

/* Possibly true: TRUE, or an expression we cannot judge without running it. */
static bool exec_opt_maybe(const sql_bool_opt *o)
{
    return o->set && (o->expr != NULL || o->value);
}

static bool exec_has_kms(const sql_string_list *kms)
{
    return kms != NULL && kms->n > 0;
}

/* Inside a transaction block, only DETACHED jobs may be created (they start
 * when the transaction commits). */
static bool exec_check_txn(exec_request *req, const char *what, const sql_bool_opt *detached)
{
    if (req->info.txn_status == 'T' && !exec_opt_maybe(detached)) {
        exec_fail(req, "25001", "%s cannot be used inside a multi-statement transaction without DETACHED option",
                  what);
        return false;
    }
    return true;
}

static void exec_backup(exec_request *req)
{
    const sql_backup *b = &req->stmt->u.backup;

    if (!exec_check_txn(req, "BACKUP", &b->options.detached))
        return;
    if (b->options.encryption_passphrase != NULL && exec_has_kms(b->options.kms)) {
        exec_fail(req, "22023", "cannot have both encryption_passphrase and kms option set");
        return;
    }
    if (b->options.detached.expr != NULL) {
        exec_fail_not_implemented(req, "BACKUP with detached given as an expression");
        return;
    }
    exec_backup_job_start(req, exec_opt_true(&b->options.detached));
}

static void exec_restore(exec_request *req)
{
    const sql_restore *r = &req->stmt->u.restore;
    const sql_restore_options *o = &r->options;

    if (!exec_check_txn(req, "RESTORE", &o->detached))
        return;
    if (o->encryption_passphrase != NULL && exec_has_kms(o->kms)) {
        exec_fail(req, "22023", "cannot have both encryption_passphrase and kms option set");
        return;
    }
    if (exec_opt_true(&o->verify_backup_table_data) && !exec_opt_maybe(&o->schema_only)) {
        exec_fail(req, "22023", "to set the verify_backup_table_data option, the schema_only option must be set");
        return;
    }
    if (o->new_db_name != NULL && !(r->targets.kind == SQL_TARGET_DATABASES && r->targets.n == 1)) {
        exec_fail(req, "22023", "new_db_name can only be used for RESTORE DATABASE with a single target database");
        return;
    }
    if (o->into_db != NULL && r->targets.kind == SQL_TARGET_DATABASES) {
        exec_fail(req, "22023", "cannot use \"into_db\" option when restoring database(s)");
        return;
    }
    exec_restore_job_start(req, exec_opt_true(&o->detached));
}

/* ---------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------- */

static void exec_dispatch(exec_request *req)
{
    /* As PostgreSQL does: nothing runs in a failed transaction block. */
    if (req->info.txn_status == 'E') {
        exec_fail(req, "25P02", "current transaction is aborted, commands ignored until end of transaction block");
        return;
    }
    switch (req->stmt->kind) {
    case SQL_SHOW_JOBS:
        exec_show_jobs_start(req);
        return;
    case SQL_BACKUP:
        exec_backup(req);
        return;
    case SQL_RESTORE:
        exec_restore(req);
        return;
    case SQL_SHOW_BACKUPS:
        exec_show_backups_start(req);
        return;
    case SQL_SHOW_BACKUP:
        exec_show_backup_start(req);
        return;
    case SQL_CONTROL_JOBS:
        exec_control_jobs_start(req);
        return;
    case SQL_ALTER_BACKUP:
    case SQL_CREATE_SCHEDULE:
    case SQL_ALTER_BACKUP_SCHEDULE:
    case SQL_SHOW_SCHEDULES:
    case SQL_SHOW_CREATE_SCHEDULE:
    case SQL_CONTROL_SCHEDULES:
    case SQL_CREATE_EXTERNAL_CONNECTION:
    case SQL_DROP_EXTERNAL_CONNECTION:
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION:
        exec_fail_not_implemented(req, sql_stmt_name(req->stmt));
        return;
    }
    exec_fail(req, "XX000", "internal error: unknown statement kind %d", (int)req->stmt->kind);
}

exec_request *exec_start(const sql_stmt *stmt, const char *text, const exec_params *params,
                         const exec_session_info *info, exec_done_cb done, void *arg)
{
    exec_request *req = exec_xalloc(calloc(1, sizeof *req));
    exec_request *handle;

    (void)text;
    req->refs = 1; /* ours, while dispatching */
    req->stmt = stmt;
    req->info = *info;
    req->done = done;
    req->done_arg = arg;
    req->admin_role = exec_xalloc(strdup(exec_admin_role != NULL ? exec_admin_role : EXEC_DEFAULT_ADMIN_ROLE));
    req->node_id = exec_node_id;
    if (exec_external_io_dir != NULL)
        req->external_io_dir = exec_xalloc(strdup(exec_external_io_dir));
    if (exec_job_conninfo != NULL)
        req->job_conninfo = exec_xalloc(strdup(exec_job_conninfo));
    req->workers = exec_workers;
    req->bundle_limit = exec_bundle_limit;
    req->bundle_size = exec_bundle_size;
    if (params != NULL && params->n > 0) {
        req->nparams = params->n;
        req->params = exec_xalloc(calloc((size_t)params->n, sizeof *req->params));
        for (int i = 0; i < params->n; i++)
            if (params->values[i] != NULL)
                req->params[i] = exec_xalloc(strdup(params->values[i]));
    }

    exec_dispatch(req);

    handle = req->finished ? NULL : req;
    exec_unref(req);
    return handle;
}
