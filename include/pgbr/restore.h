/*
 * restore.h - the restore engine: databases of a backup recreated in the
 * upstream PostgreSQL, all or nothing (DESIGN.md section 4,
 * docs/backup-engine.md "RESTORE").
 *
 * Two steps, both blocking, for a worker thread:
 *   restore_prepare  reads and verifies the backup's manifest and checks what
 *                    can be checked before a job exists: the backup, the
 *                    targets (in the backup, backed up whole), the
 *                    destination names (must not exist);
 *   restore_execute  for each database: CREATE DATABASE <staging> (named
 *                    pgbr_restore_<job id>_<n>), pg_restore --section=pre-data,
 *                    the data files loaded in parallel with COPY FROM (every
 *                    file's SHA-256 and frame CRCs verified as it is read),
 *                    pg_restore --section=post-data -j (indexes, constraints,
 *                    triggers), sequence values, materialized views refreshed;
 *                    then every staging database is renamed to its
 *                    destination in one short step at the end.
 * On failure every staging database is dropped, and nothing is renamed, so
 * no half-restored database ever carries a user's name. A staging database
 * left behind by a killed pgbr is dropped by restore_drop_orphans at the
 * next start.
 *
 * Threads: the request and the strings it points to are read-only and must
 * outlive the plan. The progress callback is called from restore_execute's
 * thread and from its load threads, never two at a time.
 */
#ifndef PGBR_RESTORE_H
#define PGBR_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/layout.h"
#include "pgbr/storage.h"

/* The prefix of staging database names: pgbr_restore_<job id>_<n>. */
#define RESTORE_STAGING_PREFIX "pgbr_restore_"

/* A table pattern of RESTORE TABLE, as the grammar gives it: 1 to 3 name
 * parts (database, schema, table), or a trailing .* (star; nparts 0 is
 * the lone *). */
typedef struct restore_table_pattern {
    int nparts;
    const char *parts[3];
    bool star;
} restore_table_pattern;

typedef struct restore_request {
    /* libpq keyword=value conninfo; its dbname is the maintenance database
     * CREATE/ALTER/DROP DATABASE run in (pgbr's catalog database) */
    const char *conninfo;
    const char *collection_url;
    const storage_config *storage;
    const char *subdir;             /* as the user gave it; NULL: LATEST */
    /* WITH incremental_location: a location the chain's layers may also be
     * in (reference 3.3); NULL: only the collection's own places */
    const char *incremental_location;
    /* AS OF SYSTEM TIME: the state at as_of_us (microseconds since 1970,
     * UTC), from the chain's layers (docs/incremental.md); else the
     * chain's newest layer */
    bool as_of;
    int64_t as_of_us;
    int64_t job_id;
    /* RESTORE FROM ... (no targets): a whole-server backup into a server
     * with no databases but postgres and pgbr's catalog database: the roles
     * first (created ones are dropped again on failure), then every
     * database of the backup. databases is then ignored. */
    bool cluster;
    const char *const *databases;   /* RESTORE DATABASE a, b: names in the backup */
    size_t ndatabases;
    const char *new_db_name;        /* NULL, or the one database's new name */
    bool schema_only;               /* create the objects, load no rows */
    bool verify_data;               /* with schema_only: read and verify every data file */
    /* NULL: objects keep the backup's owners (admin restores). A role name:
     * everything restored is owned by that role (pg_restore --no-owner
     * --role), as a non-admin restore must be. */
    const char *owner_role;
    /* RESTORE TABLE <patterns> (databases and cluster are then unused):
     * relations of the backup restored into existing databases, in one
     * transaction per destination database (restore_tables.c) */
    const restore_table_pattern *tables;
    size_t ntables;
    const char *current_database;   /* the client's: patterns without a database */
    const char *const *search_path; /* the client's effective search path */
    size_t nsearch_path;
    const char *into_db;            /* NULL: each table's own database */
    bool skip_missing_foreign_keys;
    bool skip_missing_sequences;
    bool skip_missing_sequence_owners;
    bool skip_missing_views;
    const char *user;               /* the client's role (CONNECT checks of non-admins) */
    int workers;                    /* load connections; <= 0: 4 */
    const char *pg_restore_path;    /* NULL: found like pg_dump (pgclient_find_tool) */
    /* A database or whole-server restore keeps a checkpoint (JSON: each
     * database's phase and the tables loaded into its staging database,
     * the roles created) through save_checkpoint, called from
     * restore_execute's threads, never two at a time, after each phase and
     * as tables finish loading (at most once a second). Given the last one
     * back in checkpoint, restore_execute continues where that run stopped
     * instead of starting over. A table restore (one transaction) keeps
     * none. NULL: none. */
    const char *checkpoint;
    void (*save_checkpoint)(void *arg, const char *json);
    /* After a failure (err; 57014 when the progress callback asked to
     * stop): true when the job will run again (a pause, a retry) and what is
     * staged is to be kept for that run; false to revert everything (a
     * cancel, a failure). NULL: always revert. */
    bool (*keep_staged)(void *arg, const pgbr_error *err);
} restore_request;

/* Progress as for backups: fraction in [0, 1] and a short status. Return
 * false to cancel (the restore then fails with 57014 and reverts). */
typedef bool (*restore_progress_fn)(void *arg, double fraction_completed, const char *running_status);

typedef struct restore_result {
    char subdir[LAYOUT_SUBDIR_SIZE];    /* the backup restored */
    uint64_t rows;                      /* rows loaded (0 with schema_only) */
    uint64_t index_entries;             /* rows x secondary indexes */
    uint64_t bytes;                     /* logical bytes loaded */
} restore_result;

typedef struct restore_plan restore_plan;

/*
 * Read the backup (LATEST or subdir) and check the request against it and
 * against the upstream. Errors: no completed backup 58P01 `path does not
 * contain a completed latest backup`; unknown subdir 58P01 `backup
 * "<subdir>" not found in "<url>"`; a corrupt manifest XX001; a database not
 * in the backup 42704 `database "<d>" not found in the backup`; a database
 * that was not backed up whole 0A000; a destination that exists 42P04
 * `database "<d>" already exists`; new_db_name with several databases 22023;
 * a whole-server restore into a server that has databases (or tables in
 * postgres / the catalog database) 55000 `full cluster restore can only be
 * run on a cluster with no tables or databases but found <n> descriptors:
 * <names>`, of a backup that is not a whole-server backup 22023.
 */
bool restore_prepare(const restore_request *req, restore_plan **out, pgbr_error *err);

/* Run the restore planned. On failure nothing the restore created is left
 * (err says why: XX001 with the file's path for a corrupt file, 58P01 for a
 * missing one, 57014 when cancelled, the server's errors otherwise). */
bool restore_execute(restore_plan *plan, restore_progress_fn progress, void *arg,
                     restore_result *out, pgbr_error *err);

void restore_plan_free(restore_plan *plan);

/* The backup a plan restores: its canonical "/YYYY/MM/DD-HHMMSS.ss". */
const char *restore_plan_subdir(const restore_plan *plan);

/*
 * Drop the staging databases (pgbr_restore_<id>_<n>) whose job is not
 * running any more according to pgbr.jobs in conninfo's database (a pgbr
 * killed during a restore leaves one behind). Returns the number dropped, or
 * -1 with err set.
 */
int restore_drop_orphans(const char *conninfo, pgbr_error *err);

/* Drop the staging databases job job_id left and the roles it created
 * (its checkpoint's), when it is canceled while nothing runs it: the number
 * of databases dropped, -1 (err set) when the server cannot be reached. */
int restore_discard(const char *conninfo, int64_t job_id, const char *const *roles, size_t nroles,
                    pgbr_error *err);

#endif
