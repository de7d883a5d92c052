/*
 * migrate.c - creates and upgrades the catalog schema "pgbr" (see
 * include/pgbr/catalog.h).
 *
 * The schema is versioned: pgbr.schema_version holds one row with the number
 * of migration steps applied. catalog_migrations[i] takes the catalog from
 * version i to i + 1. Steps are append-only: a released step is never edited,
 * a change is a new step. Every step runs in one transaction that also bumps
 * the version, after taking a transaction-scoped advisory lock, so several
 * pgbr nodes starting against one upstream apply each step exactly once.
 */
#include "pgbr/catalog.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "catalog_int.h"
#include "pgbr/log.h"

static const char *const catalog_migrations[] = {
    /* 0 -> 1: the schema, its version row, and the jobs table. */
    "CREATE SCHEMA IF NOT EXISTS pgbr;\n"
    "CREATE TABLE IF NOT EXISTS pgbr.schema_version (\n"
    "    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),\n"
    "    version integer NOT NULL\n"
    ");\n"
    "INSERT INTO pgbr.schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;\n"
    "CREATE TABLE pgbr.jobs (\n"
    "    id bigint PRIMARY KEY,\n"
    "    job_type text NOT NULL,\n"
    "    status text NOT NULL DEFAULT 'pending' CONSTRAINT jobs_status_check CHECK (status IN (\n"
    "        'pending', 'running', 'paused', 'pause-requested', 'cancel-requested',\n"
    "        'reverting', 'revert-failed', 'succeeded', 'failed', 'canceled')),\n"
    "    description text NOT NULL DEFAULT '',\n"
    "    statement text NOT NULL DEFAULT '',\n"
    "    user_name text NOT NULL,\n"
    "    created timestamptz NOT NULL DEFAULT now(),\n"
    "    started timestamptz,\n"
    "    finished timestamptz,\n"
    "    modified timestamptz NOT NULL DEFAULT now(),\n"
    "    fraction_completed float8 DEFAULT 0,\n"
    "    running_status text,\n"
    "    error text NOT NULL DEFAULT '',\n"
    "    execution_errors text[] NOT NULL DEFAULT '{}',\n"
    "    coordinator_id bigint,\n"
    "    lease_expires timestamptz,\n"
    "    checkpoint jsonb,\n"
    "    rows bigint NOT NULL DEFAULT 0,\n"
    "    index_entries bigint NOT NULL DEFAULT 0,\n"
    "    bytes bigint NOT NULL DEFAULT 0,\n"
    "    payload jsonb,\n"
    "    trace_id bigint\n"
    ");\n"
    /* SHOW JOBS reads the jobs that are not terminal (few, any age) and the
     * terminal ones finished recently: one partial index for each half. */
    "CREATE INDEX jobs_active_idx ON pgbr.jobs (started DESC NULLS LAST, created DESC)\n"
    "    WHERE status NOT IN " CATALOG_TERMINAL_SQL ";\n"
    "CREATE INDEX jobs_finished_idx ON pgbr.jobs (finished DESC)\n"
    "    WHERE status IN " CATALOG_TERMINAL_SQL ";\n"
    /* Non-admins see only their own jobs. */
    "CREATE INDEX jobs_user_idx ON pgbr.jobs (user_name, created DESC);\n"
    /* Adoption scans for expired leases of unfinished jobs. */
    "CREATE INDEX jobs_lease_idx ON pgbr.jobs (lease_expires)\n"
    "    WHERE status NOT IN " CATALOG_TERMINAL_SQL ";\n"
    "COMMENT ON TABLE pgbr.jobs IS 'pgbr jobs (BACKUP, RESTORE, ...): read by SHOW JOBS';\n",
    /* 1 -> 2: the chains' replication slots and the WAL each holds back
     * (docs/incremental.md, "What to monitor"). */
    "CREATE VIEW pgbr.change_streams AS\n"
    "SELECT substring(s.slot_name FROM '^pgbr_([0-9]+)_[0-9]+$')::bigint AS job_id,\n"
    "       s.slot_name, s.database, s.active, s.wal_status, s.restart_lsn, s.confirmed_flush_lsn,\n"
    "       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint AS wal_held_bytes,\n"
    "       j.description AS full_backup\n"
    "FROM pg_catalog.pg_replication_slots s\n"
    "LEFT JOIN pgbr.jobs j ON j.id = substring(s.slot_name FROM '^pgbr_([0-9]+)_[0-9]+$')::bigint\n"
    "WHERE s.slot_name ~ '^pgbr_[0-9]+_[0-9]+$';\n"
    "COMMENT ON VIEW pgbr.change_streams IS 'replication slots of pgbr backup chains: the full backup job that "
    "created each, and the WAL it holds back';\n",
};

#define CATALOG_NSTEPS ((int)(sizeof catalog_migrations / sizeof catalog_migrations[0]))

_Static_assert(CATALOG_NSTEPS == CATALOG_SCHEMA_VERSION,
               "CATALOG_SCHEMA_VERSION must equal the number of migration steps");


/* The version as seen inside the current transaction; -1 on error. */
static int catalog_read_version(PGconn *conn, pgbr_error *err)
{
    PGresult *res;
    int version = 0;

    res = PQexec(conn, "SELECT pg_catalog.to_regclass('pgbr.schema_version') IS NOT NULL");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        catalog_error_from_result(err, res, conn);
        PQclear(res);
        return -1;
    }
    if (PQgetvalue(res, 0, 0)[0] != 't') {
        PQclear(res);
        return 0;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT version FROM pgbr.schema_version");
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        catalog_error_from_result(err, res, conn);
        PQclear(res);
        return -1;
    }
    if (PQntuples(res) > 0)
        version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return version;
}

int catalog_schema_version(struct pg_conn *conn, pgbr_error *err)
{
    return catalog_read_version(conn, err);
}

/*
 * Apply step `step` (0-based) unless another node already has. Returns false
 * with err set on failure; *newer is set when the catalog is ahead of us.
 */
static bool catalog_apply_step(PGconn *conn, int step, bool *newer, pgbr_error *err)
{
    char sql[128];
    int version;

    if (!catalog_exec(conn, "BEGIN", 0, NULL, err))
        return false;
    /* Serialise with other nodes. The lock is released at COMMIT/ROLLBACK,
     * and the version is read only after it is held, so a node that waited
     * sees the step the other node committed and skips it. */
    snprintf(sql, sizeof sql, "SELECT pg_catalog.pg_advisory_xact_lock(%lld)",
             (long long)CATALOG_MIGRATION_LOCK_KEY);
    if (!catalog_exec(conn, sql, 0, NULL, err))
        goto fail;
    version = catalog_read_version(conn, err);
    if (version < 0)
        goto fail;
    if (version > CATALOG_SCHEMA_VERSION)
        *newer = true;
    if (version > step) {
        /* Already applied (by an earlier start or another node). */
        return catalog_exec(conn, "COMMIT", 0, NULL, err);
    }
    log_info("catalog: migrating schema \"pgbr\" from version %d to %d", step, step + 1);
    if (!catalog_exec(conn, catalog_migrations[step], 0, NULL, err))
        goto fail;
    snprintf(sql, sizeof sql, "UPDATE pgbr.schema_version SET version = %d", step + 1);
    if (!catalog_exec(conn, sql, 0, NULL, err))
        goto fail;
    return catalog_exec(conn, "COMMIT", 0, NULL, err);

fail:
    catalog_rollback(conn);
    return false;
}

bool catalog_migrate(struct pg_conn *conn, pgbr_error *err)
{
    bool newer = false;

    for (int step = 0; step < CATALOG_NSTEPS; step++) {
        pgbr_error step_err = PGBR_ERROR_INIT;

        if (!catalog_apply_step(conn, step, &newer, &step_err)) {
            pgbr_error_set(err, step_err.sqlstate[0] != '\0' ? step_err.sqlstate : "XX000",
                           "could not migrate the catalog schema \"pgbr\" to version %d: %s", step + 1,
                           step_err.message != NULL ? step_err.message : "unknown error");
            if (step_err.detail != NULL)
                pgbr_error_detail(err, "%s", step_err.detail);
            if (step_err.hint != NULL)
                pgbr_error_hint(err, "%s", step_err.hint);
            pgbr_error_clear(&step_err);
            return false;
        }
    }
    if (newer)
        log_warning("catalog: schema \"pgbr\" is newer than version %d, which this pgbr knows; "
                    "leaving it as it is",
                    CATALOG_SCHEMA_VERSION);
    return true;
}
