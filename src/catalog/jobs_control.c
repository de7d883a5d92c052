/*
 * jobs_control.c - the catalog side of PAUSE / RESUME / CANCEL JOB(S): which
 * status a job may move to, and the row changes (see include/pgbr/catalog.h
 * for the contract with the job runtime, docs/jobs.md for the user's view).
 *
 * The statements only change rows of pgbr.jobs; the node running a job
 * notices on its next poll, and a job without a lease is claimed by any node.
 * By id, the rows are locked (in id order, so two statements never deadlock)
 * and every job is checked before any is changed: one bad id changes
 * nothing. The ALL form changes, in one UPDATE, exactly the jobs whose status
 * the action accepts and does not already have.
 */
#include "pgbr/catalog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_int.h"

/* The SET part of each action's UPDATE. In SET, "status" is the old value.
 * $1 = the reason (PAUSE only). */
#define CONTROL_SET_PAUSE                                                                               \
    "status = 'pause-requested', modified = pg_catalog.now(),\n"                                        \
    "       payload = (COALESCE(payload, '{}'::jsonb) - 'pause_reason')\n"                              \
    "                 || pg_catalog.jsonb_build_object('paused_from', status)\n"                          \
    "                 || CASE WHEN $1::text IS NULL THEN '{}'::jsonb\n"                                     \
    "                         ELSE pg_catalog.jsonb_build_object('pause_reason', $1::text) END"

#define CONTROL_SET_RESUME                                                                              \
    "status = CASE WHEN payload->>'paused_from' IN ('pending', 'running', 'reverting')\n"              \
    "                   THEN payload->>'paused_from' ELSE 'running' END,\n"                             \
    "       coordinator_id = CASE WHEN status = 'paused' THEN NULL ELSE coordinator_id END,\n"         \
    "       lease_expires = CASE WHEN status = 'paused' THEN NULL ELSE lease_expires END,\n"           \
    "       payload = payload - 'paused_from', modified = pg_catalog.now()"

#define CONTROL_SET_CANCEL                                                                              \
    "status = 'cancel-requested',\n"                                                                    \
    "       coordinator_id = CASE WHEN status = 'paused' THEN NULL ELSE coordinator_id END,\n"         \
    "       lease_expires = CASE WHEN status = 'paused' THEN NULL ELSE lease_expires END,\n"           \
    "       modified = pg_catalog.now()"

/* By id: $2 = int8[] of the ids (checked and locked already), $3 = text[] of
 * the statuses the action changes. */
#define CONTROL_WHERE_IDS " WHERE id = ANY ($2::int8[]) AND status = ANY ($3::text[])"
/* ALL form: $2 = job type, $3 = statuses, $4 = user name or NULL (admins). */
#define CONTROL_WHERE_TYPE                                                                              \
    " WHERE job_type = $2::text AND status = ANY ($3::text[])"                                          \
    " AND ($4::text IS NULL OR user_name = $4::text)"

typedef struct control_action {
    const char *verb;                 /* for the 42501 message */
    const char *const *changes;       /* statuses the action moves on (NULL-terminated) */
    const char *const *noops;         /* statuses where it does nothing */
    const char *refusal;              /* 55000 message, %s = the status */
    const char *update_ids;
    const char *update_type;
} control_action;

static const char *const pause_changes[] = { "pending", "running", "reverting", NULL };
static const char *const pause_noops[] = { "paused", "pause-requested", NULL };
static const char *const resume_changes[] = { "paused", "pause-requested", NULL };
static const char *const resume_noops[] = { "running", "reverting", NULL };
static const char *const cancel_changes[] = { "pending", "running", "paused", "pause-requested", NULL };
static const char *const cancel_noops[] = { "canceled", "cancel-requested", NULL };

static const control_action control_actions[] = {
    [CATALOG_JOB_PAUSE] = { "pause", pause_changes, pause_noops,
                            "job with status %s cannot be requested to be paused",
                            "UPDATE pgbr.jobs SET " CONTROL_SET_PAUSE CONTROL_WHERE_IDS,
                            "UPDATE pgbr.jobs SET " CONTROL_SET_PAUSE CONTROL_WHERE_TYPE },
    [CATALOG_JOB_RESUME] = { "resume", resume_changes, resume_noops, "job with status %s cannot be resumed",
                             "UPDATE pgbr.jobs SET " CONTROL_SET_RESUME CONTROL_WHERE_IDS,
                             "UPDATE pgbr.jobs SET " CONTROL_SET_RESUME CONTROL_WHERE_TYPE },
    [CATALOG_JOB_CANCEL] = { "cancel", cancel_changes, cancel_noops,
                             "job with status %s cannot be requested to be canceled",
                             "UPDATE pgbr.jobs SET " CONTROL_SET_CANCEL CONTROL_WHERE_IDS,
                             "UPDATE pgbr.jobs SET " CONTROL_SET_CANCEL CONTROL_WHERE_TYPE },
};

static bool control_status_in(const char *status, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(status, *list) == 0)
            return true;
    return false;
}

/* "{a,b}": a status list as a text[] literal (statuses need no quoting). */
static char *control_status_array(const char *const *list)
{
    size_t len = 3;
    char *out, *p;

    for (const char *const *s = list; *s != NULL; s++)
        len += strlen(*s) + 1;
    out = malloc(len);
    if (out == NULL)
        return NULL;
    p = out;
    *p++ = '{';
    for (const char *const *s = list; *s != NULL; s++)
        p += snprintf(p, len - (size_t)(p - out), "%s%s", s == list ? "" : ",", *s);
    *p++ = '}';
    *p = '\0';
    return out;
}

/* The ids sorted, without duplicates (lock order, and a job named twice
 * counts once). malloc'd; NULL when out of memory. */
static int control_cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t *control_distinct_ids(const int64_t *ids, int nids, int *out_n)
{
    int64_t *sorted = malloc((size_t)(nids > 0 ? nids : 1) * sizeof *sorted);
    int n = 0;

    if (sorted == NULL)
        return NULL;
    memcpy(sorted, ids, (size_t)nids * sizeof *sorted);
    qsort(sorted, (size_t)nids, sizeof *sorted, control_cmp_id);
    for (int i = 0; i < nids; i++)
        if (n == 0 || sorted[n - 1] != sorted[i])
            sorted[n++] = sorted[i];
    *out_n = n;
    return sorted;
}

/*
 * Check every job of req->ids against the locked rows in res (id, status,
 * user_name, ordered by id), in the order the user named them, so the first
 * bad one in their list is the one reported.
 */
static bool control_check(const catalog_control_request *req, const control_action *act, const PGresult *res,
                          pgbr_error *err)
{
    for (int i = 0; i < req->nids; i++) {
        int64_t id = req->ids[i];
        int row = -1, lo = 0, hi = PQntuples(res) - 1;
        const char *status, *owner;

        while (lo <= hi) {
            int mid = lo + (hi - lo) / 2;
            long long v = strtoll(PQgetvalue(res, mid, 0), NULL, 10);
            if (v == id) {
                row = mid;
                break;
            }
            if (v < id)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        if (row < 0)
            return pgbr_error_set(err, "42704", "job with ID %lld does not exist", (long long)id);
        status = PQgetvalue(res, row, 1);
        owner = PQgetvalue(res, row, 2);
        if (!req->is_admin && (req->user_name == NULL || strcmp(owner, req->user_name) != 0)) {
            pgbr_error_set(err, "42501", "permission denied to %s job %lld", act->verb, (long long)id);
            pgbr_error_detail(err, "Job %lld belongs to role \"%s\"; only its owner and pgbr admins may %s it.",
                              (long long)id, owner, act->verb);
            return false;
        }
        if (!control_status_in(status, act->changes) && !control_status_in(status, act->noops)) {
            pgbr_error_set(err, "55000", act->refusal, status);
            return false;
        }
    }
    return true;
}

/* Run one of the UPDATEs: the number of rows changed, or -1 (err set). $1,
 * the reason, is typed text: RESUME and CANCEL do not use it, and PostgreSQL
 * refuses a parameter it cannot type. */
static int control_update(PGconn *conn, const char *sql, int nparams, const char *const *params, pgbr_error *err)
{
    const Oid types[4] = { 25 /* text */, 0, 0, 0 };
    PGresult *res = PQexecParams(conn, sql, nparams, types, params, NULL, NULL, 0);
    int changed = -1;

    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
        changed = atoi(PQcmdTuples(res));
    else
        catalog_error_from_result(err, res, conn);
    PQclear(res);
    return changed;
}

/* By id: lock, check all, change those the action moves on. */
static bool control_by_id(PGconn *conn, const catalog_control_request *req, const control_action *act,
                          const char *statuses, int *acted, pgbr_error *err)
{
    int nsorted = 0;
    int64_t *sorted = control_distinct_ids(req->ids, req->nids, &nsorted);
    char *id_array = sorted != NULL ? catalog_id_array(sorted, nsorted) : NULL;
    PGresult *res = NULL;
    bool ok = false;

    if (id_array == NULL) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    if (!catalog_begin(conn, "BEGIN", err))
        goto done;
    {
        const char *params[1] = { id_array };
        res = PQexecParams(conn,
                           "SELECT id, status, user_name FROM pgbr.jobs WHERE id = ANY ($1::int8[])"
                           " ORDER BY id FOR UPDATE",
                           1, NULL, params, NULL, NULL, 0);
    }
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        catalog_error_from_result(err, res, conn);
        goto rollback;
    }
    if (!control_check(req, act, res, err))
        goto rollback;
    {
        const char *params[3] = { req->reason, id_array, statuses };
        if (control_update(conn, act->update_ids, 3, params, err) < 0)
            goto rollback;
    }
    if (!catalog_exec(conn, "COMMIT", 0, NULL, err))
        goto done;
    *acted = nsorted;
    ok = true;
    goto done;

rollback:
    catalog_rollback(conn);
done:
    PQclear(res);
    free(id_array);
    free(sorted);
    return ok;
}

/* ALL <type> JOBS: one UPDATE of the jobs the action moves on. */
static bool control_by_type(PGconn *conn, const catalog_control_request *req, const control_action *act,
                            const char *statuses, int *acted, pgbr_error *err)
{
    const char *params[4] = { req->reason, req->job_type, statuses, req->is_admin ? NULL : req->user_name };
    int changed;

    if (!req->is_admin && req->user_name == NULL)
        return pgbr_error_set(err, "42501", "permission denied to %s jobs of an unknown user", act->verb);
    /* In a transaction only for catalog_begin's reconnect: a bare UPDATE
     * that failed on a dead connection could not be retried safely. */
    if (!catalog_begin(conn, "BEGIN", err))
        return false;
    changed = control_update(conn, act->update_type, 4, params, err);
    if (changed < 0) {
        catalog_rollback(conn);
        return false;
    }
    if (!catalog_exec(conn, "COMMIT", 0, NULL, err))
        return false;
    *acted = changed;
    return true;
}

bool catalog_control_jobs(struct pg_conn *conn, const catalog_control_request *req, int *acted,
                          pgbr_error *err)
{
    const control_action *act;
    char *statuses;
    bool ok;

    *acted = 0;
    if (req->action < CATALOG_JOB_PAUSE || req->action > CATALOG_JOB_CANCEL)
        return pgbr_error_set(err, "XX000", "internal error: unknown job action %d", (int)req->action);
    act = &control_actions[req->action];
    if (req->job_type == NULL && req->nids <= 0)
        return true;
    if (!catalog_require_conn(conn, err))
        return false;
    statuses = control_status_array(act->changes);
    if (statuses == NULL)
        return pgbr_error_set(err, "53200", "out of memory");
    if (req->job_type != NULL)
        ok = control_by_type(conn, req, act, statuses, acted, err);
    else
        ok = control_by_id(conn, req, act, statuses, acted, err);
    free(statuses);
    return ok;
}
