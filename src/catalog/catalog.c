/*
 * catalog.c - connecting to the catalog database, turning libpq failures into
 * pgbr_errors, job ids and job statuses (see include/pgbr/catalog.h).
 *
 * The "why is there no catalog connection" record is per thread: each worker
 * owns its connection, so each worker has its own reason for lacking one.
 */
#include "pgbr/catalog.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog_int.h"

/* Why this thread has no catalog connection; sqlstate "" = nothing recorded. */
static _Thread_local pgbr_error catalog_unavailable = PGBR_ERROR_INIT;

/* libpq messages end in a newline and may span lines ("...refused\n\tIs
 * the server running..."): make them one line, as a log line and an error
 * message should be, by folding each line break (and the indentation after
 * it) into one space and dropping trailing whitespace. */
static char *catalog_trimmed(const char *msg)
{
    size_t n, len = 0;
    char *out;

    if (msg == NULL)
        msg = "";
    n = strlen(msg);
    while (n > 0 && isspace((unsigned char)msg[n - 1]))
        n--;
    out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (msg[i] == '\n') {
            while (i + 1 < n && isspace((unsigned char)msg[i + 1]))
                i++;
            out[len++] = ' ';
            continue;
        }
        out[len++] = msg[i];
    }
    out[len] = '\0';
    return out;
}

struct pg_conn *catalog_connect(const char *conninfo, pgbr_error *err)
{
    /* The conninfo is expanded as "dbname" so both key=value strings and URIs
     * work; application_name is only a fallback the DSN may override. */
    const char *keys[] = { "dbname", "fallback_application_name", NULL };
    const char *vals[] = { conninfo != NULL && conninfo[0] != '\0' ? conninfo : NULL, "pgbr", NULL };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
        return conn;
    {
        char *msg = catalog_trimmed(conn != NULL ? PQerrorMessage(conn) : "out of memory");
        pgbr_error_set(err, "08006", "could not connect to the catalog database: %s",
                       msg != NULL ? msg : "out of memory");
        free(msg);
    }
    PQfinish(conn);
    return NULL;
}

void catalog_note_unavailable(const pgbr_error *why)
{
    pgbr_error_clear(&catalog_unavailable);
    if (why == NULL || !pgbr_error_is_set(why))
        return;
    pgbr_error_set(&catalog_unavailable, why->sqlstate, "%s", why->message);
    if (why->detail != NULL)
        pgbr_error_detail(&catalog_unavailable, "%s", why->detail);
    if (why->hint != NULL)
        pgbr_error_hint(&catalog_unavailable, "%s", why->hint);
}

bool catalog_require_conn(struct pg_conn *conn, pgbr_error *err)
{
    if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
        return true;
    if (conn == NULL && pgbr_error_is_set(&catalog_unavailable)) {
        pgbr_error_set(err, catalog_unavailable.sqlstate, "%s", catalog_unavailable.message);
        if (catalog_unavailable.detail != NULL)
            pgbr_error_detail(err, "%s", catalog_unavailable.detail);
        if (catalog_unavailable.hint != NULL)
            pgbr_error_hint(err, "%s", catalog_unavailable.hint);
        return false;
    }
    {
        char *msg = catalog_trimmed(conn != NULL ? PQerrorMessage(conn) : "no connection");
        pgbr_error_set(err, "08006", "could not connect to the catalog database: %s",
                       msg != NULL && msg[0] != '\0' ? msg : "connection lost");
        free(msg);
    }
    return false;
}

bool catalog_error_from_result(pgbr_error *err, const struct pg_result *res,
                               const struct pg_conn *conn)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char *msg;

    if (primary != NULL) {
        pgbr_error_set(err, state != NULL ? state : "XX000", "%s", primary);
        if (PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) != NULL)
            pgbr_error_detail(err, "%s", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
        if (PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) != NULL)
            pgbr_error_hint(err, "%s", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
        return false;
    }
    /* No server error fields: a client-side failure (connection lost, out of
     * memory). libpq's result or connection message says which. */
    msg = catalog_trimmed(res != NULL && PQresultErrorMessage(res)[0] != '\0'
                              ? PQresultErrorMessage(res)
                              : conn != NULL ? PQerrorMessage(conn) : "no connection");
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        pgbr_error_set(err, "08006", "lost the connection to the catalog database: %s",
                       msg != NULL ? msg : "out of memory");
    else
        pgbr_error_set(err, "XX000", "catalog query failed: %s", msg != NULL ? msg : "out of memory");
    free(msg);
    return false;
}

/* ---------------------------------------------------------------------------
 * Job ids
 * ------------------------------------------------------------------------- */

#define CATALOG_JOB_ID_SEQ_BITS 12
#define CATALOG_JOB_ID_NODE_BITS 10
#define CATALOG_JOB_ID_SEQ_MASK ((1 << CATALOG_JOB_ID_SEQ_BITS) - 1)
#define CATALOG_JOB_ID_NODE_MASK ((1 << CATALOG_JOB_ID_NODE_BITS) - 1)

static pthread_mutex_t catalog_id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t catalog_id_last_ms = -1;
static int catalog_id_seq;
static int64_t catalog_id_last = -1;

static int64_t catalog_job_id_compose(int64_t ms, int node_id, int seq)
{
    return (ms << (CATALOG_JOB_ID_SEQ_BITS + CATALOG_JOB_ID_NODE_BITS)) |
           ((int64_t)(node_id & CATALOG_JOB_ID_NODE_MASK) << CATALOG_JOB_ID_SEQ_BITS) |
           (int64_t)(seq & CATALOG_JOB_ID_SEQ_MASK);
}

int64_t catalog_new_job_id(int node_id)
{
    struct timespec ts;
    int64_t now_ms, id;

    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - CATALOG_JOB_ID_EPOCH_MS;
    if (now_ms < 0)
        now_ms = 0;

    pthread_mutex_lock(&catalog_id_lock);
    if (now_ms > catalog_id_last_ms) {
        catalog_id_last_ms = now_ms;
        catalog_id_seq = 0;
    } else if (++catalog_id_seq > CATALOG_JOB_ID_SEQ_MASK) {
        /* 4096 ids in one millisecond, or the clock stepped back: borrow
         * the next millisecond rather than repeat an id. */
        catalog_id_last_ms++;
        catalog_id_seq = 0;
    }
    id = catalog_job_id_compose(catalog_id_last_ms, node_id, catalog_id_seq);
    /* A smaller node id than the previous call's (reconfiguration) could
     * make the id go down within one millisecond: move on a millisecond. */
    while (id <= catalog_id_last) {
        catalog_id_last_ms++;
        catalog_id_seq = 0;
        id = catalog_job_id_compose(catalog_id_last_ms, node_id, catalog_id_seq);
    }
    catalog_id_last = id;
    pthread_mutex_unlock(&catalog_id_lock);
    return id;
}

int catalog_job_id_node(int64_t job_id)
{
    return (int)((job_id >> CATALOG_JOB_ID_SEQ_BITS) & CATALOG_JOB_ID_NODE_MASK);
}

int64_t catalog_job_id_unix_ms(int64_t job_id)
{
    return (job_id >> (CATALOG_JOB_ID_SEQ_BITS + CATALOG_JOB_ID_NODE_BITS)) + CATALOG_JOB_ID_EPOCH_MS;
}

/* ---------------------------------------------------------------------------
 * Statuses
 * ------------------------------------------------------------------------- */

static const char *const catalog_statuses[] = {
    "pending", "running",  "paused", "pause-requested", "cancel-requested",
    "reverting", "revert-failed", "succeeded", "failed", "canceled",
};

bool catalog_job_status_valid(const char *status)
{
    if (status == NULL)
        return false;
    for (size_t i = 0; i < sizeof catalog_statuses / sizeof catalog_statuses[0]; i++)
        if (strcmp(status, catalog_statuses[i]) == 0)
            return true;
    return false;
}

bool catalog_job_status_terminal(const char *status)
{
    return status != NULL && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
                              strcmp(status, "canceled") == 0 || strcmp(status, "revert-failed") == 0);
}

bool catalog_exec(struct pg_conn *conn, const char *sql, int nparams, const char *const *params, pgbr_error *err)
{
    /* Without parameters use the simple protocol: migrations are scripts of
     * several statements, which the extended protocol refuses. */
    bool idle = PQtransactionStatus(conn) == PQTRANS_IDLE;
    PGresult *res = nparams == 0 ? PQexec(conn, sql) : PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    /* A connection the server closed (it restarted) is only found out by
     * using it: outside a transaction, reconnect once and try again. */
    if (idle && PQstatus(conn) == CONNECTION_BAD) {
        PQclear(res);
        PQreset(conn);
        res = PQstatus(conn) != CONNECTION_OK ? NULL
              : nparams == 0 ? PQexec(conn, sql)
                             : PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    }
    bool ok = res != NULL &&
              (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);

    if (!ok)
        catalog_error_from_result(err, res, conn);
    PQclear(res);
    return ok;
}

/* ---------------------------------------------------------------------------
 * Shared by the catalog's queries (catalog_int.h)
 * ------------------------------------------------------------------------- */

char *catalog_id_array(const int64_t *ids, int nids)
{
    size_t cap = 2 + (size_t)(nids > 0 ? nids : 0) * 21 + 1, len = 0;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    out[len++] = '{';
    for (int i = 0; i < nids; i++) {
        int n = snprintf(out + len, cap - len, "%s%lld", i > 0 ? "," : "", (long long)ids[i]);
        if (n < 0 || (size_t)n >= cap - len) {
            free(out);
            return NULL;
        }
        len += (size_t)n;
    }
    out[len++] = '}';
    out[len] = '\0';
    return out;
}

bool catalog_begin(struct pg_conn *conn, const char *begin_sql, pgbr_error *err)
{
    if (catalog_exec(conn, begin_sql, 0, NULL, err))
        return true;
    if (PQstatus(conn) != CONNECTION_BAD)
        return false;
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK)
        return false;
    pgbr_error_clear(err);
    return catalog_exec(conn, begin_sql, 0, NULL, err);
}

void catalog_rollback(struct pg_conn *conn)
{
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, "ROLLBACK");
        PQclear(res);
    }
}
