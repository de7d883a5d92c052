/*
 * jobs_retention.c - forgetting old jobs: terminal rows of pgbr.jobs are
 * deleted once they finished longer ago than --job-retention (14 days by
 * default, as CockroachDB's jobs.retention_time). The node's background loop
 * calls catalog_delete_expired_jobs now and then; any node may, since the
 * DELETE is idempotent.
 */
#include "pgbr/catalog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "catalog_int.h"

/* $1 = the retention in seconds. A full backup whose replication slot
 * (pgbr_<job id>_<n>, the chain's change stream) still exists is kept: the
 * pgbr.change_streams view names the chain by that job. */
static const char retention_sql[] =
    "DELETE FROM pgbr.jobs j\n"
    " WHERE j.status IN " CATALOG_TERMINAL_SQL "\n"
    "   AND COALESCE(j.finished, j.modified) < pg_catalog.now() - $1::bigint * interval '1 second'\n"
    "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots s\n"
    "                    WHERE s.slot_name ~ ('^pgbr_' || j.id || '_[0-9]+$'))";

int64_t catalog_delete_expired_jobs(struct pg_conn *conn, int64_t retention_s, pgbr_error *err)
{
    char seconds[32];
    const char *params[1] = { seconds };
    PGresult *res;
    int64_t deleted;

    if (retention_s <= 0)
        return 0;
    if (!catalog_require_conn(conn, err))
        return -1;
    snprintf(seconds, sizeof seconds, "%lld", (long long)retention_s);
    /* A transaction only for catalog_begin's reconnect of a connection that
     * died while idle. */
    if (!catalog_begin(conn, "BEGIN", err))
        return -1;
    res = PQexecParams(conn, retention_sql, 1, NULL, params, NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        catalog_error_from_result(err, res, conn);
        PQclear(res);
        catalog_rollback(conn);
        return -1;
    }
    deleted = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (!catalog_exec(conn, "COMMIT", 0, NULL, err))
        return -1;
    return deleted;
}
