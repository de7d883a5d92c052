/*
 * jobs_retention_tool.c - a test driver for job retention
 * (catalog_delete_expired_jobs, src/catalog/jobs_retention.c) that
 * regress/t/028_job_control.t runs against the catalog a real pgbr created.
 *
 * Usage: jobs_retention_tool CONNINFO DURATION
 *   DURATION as --job-retention takes it (config_parse_duration).
 * stdout: the number of jobs deleted. On failure: "ERROR: <sqlstate>
 * <message>" on stderr, exit status 1; a bad command line exits 2.
 */
#include <libpq-fe.h>
#include <stdio.h>

#include "pgbr/catalog.h"
#include "pgbr/config.h"

int main(int argc, char **argv)
{
    pgbr_error err = PGBR_ERROR_INIT;
    int64_t retention_s, deleted;
    PGconn *conn;

    if (argc != 3 || !config_parse_duration(argv[2], &retention_s)) {
        fprintf(stderr, "usage: jobs_retention_tool CONNINFO DURATION (e.g. 14d, 12h, 30m, 45s, 0)\n");
        return 2;
    }
    conn = catalog_connect(argv[1], &err);
    if (conn == NULL) {
        fprintf(stderr, "ERROR: %s %s\n", err.sqlstate, err.message);
        pgbr_error_clear(&err);
        return 1;
    }
    deleted = catalog_delete_expired_jobs(conn, retention_s, &err);
    PQfinish(conn);
    if (deleted < 0) {
        fprintf(stderr, "ERROR: %s %s\n", err.sqlstate, err.message);
        pgbr_error_clear(&err);
        return 1;
    }
    printf("%lld\n", (long long)deleted);
    return 0;
}
