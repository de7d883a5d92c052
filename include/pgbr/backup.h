/*
 * backup.h - the backup engine: a full backup of one or more databases of the
 * upstream PostgreSQL, or of some of their tables, into a backup collection
 * (DESIGN.md sections 1 and 4, docs/backup-engine.md).
 *
 * backup_run() is a blocking function for a worker thread (never the event
 * loop's): it opens libpq connections in blocking mode, runs pg_dump as a
 * child process and writes through storage.h. For each database it takes one
 * exported snapshot shared by req->workers copy connections, so everything
 * written for a database is consistent as of one point; different databases
 * have different snapshots (PostgreSQL snapshots do not span databases).
 *
 * What it writes, under <collection><subdir>/ (subdir from req->end_time_us):
 *   BACKUP-LOCK-<job id>            first (layout_lock_backup_dir)
 *   schema/<db>.dump                pg_dump --schema-only --format=custom
 *   data/<db>/<table oid>/<n>.pgbr  data files (datafile.h, zstd), one per chunk
 *   BACKUP_MANIFEST, BACKUP_MANIFEST.sha256   last but one
 *   then the collection's LATEST pointer (layout_write_latest).
 * <db> is the database name with every byte outside [A-Za-z0-9_-] written as
 * %XX (backup_path_component). On failure everything under the subdir is
 * removed (when this job took the lock) and LATEST is not touched.
 *
 * Threads: backup_request and the strings it points to are read-only and
 * must outlive the call. The progress callback is called from backup_run's
 * thread and from its copy threads, never two at a time.
 */
#ifndef PGBR_BACKUP_H
#define PGBR_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/layout.h"
#include "pgbr/storage.h"

#define BACKUP_BUNDLE_BYTES_DEFAULT (32ull * 1024 * 1024)

/* Tables larger than this (pg_relation_size) are split into ctid ranges. */
#define BACKUP_CHUNK_THRESHOLD_DEFAULT (64ull * 1024 * 1024)

/* One relation of a table backup, by name in its database. */
typedef struct backup_relation {
    const char *schema;
    const char *name;
} backup_relation;

typedef struct backup_request {
    /* libpq keyword=value conninfo WITHOUT dbname, e.g. "host=/tmp port=5432
     * user=postgres"; dbname is added per database. A password in it is passed
     * to pg_dump through PGPASSWORD, never on its command line. */
    const char *conninfo;
    const char *const *databases;   /* the databases to back up (n >= 1) */
    /* a whole-server backup: databases are all of the server's, and the
     * roles are kept too (pg_dumpall --roles-only into globals.sql) */
    bool cluster;
    size_t ndatabases;
    /* A table backup (BACKUP TABLE): per database, parallel to databases,
     * the relations it holds (tables[i] has ntables[i] entries, each one a
     * table, partition, partitioned table, view, materialized view, foreign
     * table or sequence that exists in that database). Only their data is
     * copied (ordinary tables), only they are locked and recorded; the schema
     * dump is still the whole database's. A relation missing under the
     * snapshot fails the backup (42P01). NULL: whole databases. */
    const backup_relation *const *tables;
    const size_t *ntables;
    /* with tables: the patterns as written (targets.given of the manifest) */
    const char *const *patterns;
    size_t npatterns;
    const char *collection_url;     /* storage_open URL of the collection */
    const storage_config *storage;
    int64_t job_id;                 /* for the lock file */
    int64_t end_time_us;            /* names the subdir and is the manifest's end_time */
    int workers;                    /* copy connections per database; <= 0: 4 */
    uint64_t chunk_threshold_bytes; /* 0: BACKUP_CHUNK_THRESHOLD_DEFAULT */
    uint64_t chunk_bytes;           /* size of one ctid chunk; 0: the threshold */
    const char *pg_dump_path;       /* NULL: /usr/lib/postgresql/<major>/bin/pg_dump,
                                     * else `pg_config --bindir`/pg_dump, else PATH */
    int zstd_level;                 /* 0: FILTER_ZSTD_LEVEL_DEFAULT */
    /* Tables of at most bundle_table_max bytes (pg_relation_size) that are
     * one chunk share bundle files of about bundle_bytes: one storage file
     * holds their data files one after the other. 0: a file per table. */
    uint64_t bundle_table_max;
    uint64_t bundle_bytes;          /* 0: BACKUP_BUNDLE_BYTES_DEFAULT */
    /* Start a chain's change stream (docs/incremental.md): when the server
     * has wal_level = logical, each database gets a publication
     * "pgbr_<job id>" and a pgoutput slot "pgbr_<job id>_<n>" whose exported
     * snapshot the backup copies under; both are dropped if it fails. */
    bool change_stream;
    /* An incremental layer (BACKUP ... INTO LATEST|'<subdir>' IN c,
     * backup_incremental_run): the full backup it extends, "LATEST" or a
     * subdir. NULL: a full backup. */
    const char *incremental_of;
    /* WITH incremental_location = X (reference 1.3): the layer goes to
     * X/<subdir>/<YYYYMMDD>/<HHMMSS.ss>, or, X being the collection itself,
     * into the full backup's own directory (v21.2 layout). The chain's
     * earlier layers are looked for in the collection and in X. NULL: the
     * collection's incrementals/ (or the v21.2 layout if the chain already
     * uses it). Unused by full backups. */
    const char *incremental_location;
    /* WITH revision_history: the manifest says so, and RESTORE ... AS OF
     * SYSTEM TIME may pick any time the layer's changes cover (every layer
     * keeps every committed transaction either way) */
    bool revision_history;
    /* Test hook: called once per database after every copy connection has
     * imported the snapshot and before any data is read. NULL: none. */
    void (*after_snapshot)(void *arg, const char *database, const char *snapshot);
    void *after_snapshot_arg;
    /* Test hook: called (from a copy thread, the others waiting) each time
     * one of a database's files is durable, with how many are and of how
     * many. NULL: none. */
    void (*after_file)(void *arg, const char *database, size_t done, size_t total);
    /* Called with the progress arg (never two at a time) with the backup's
     * checkpoint (JSON, src/backup/engine_resume.c): once it owns its
     * directory, as tables are copied (at most once a second) and when a
     * database is done. NULL: none. */
    void (*save_checkpoint)(void *arg, const char *json);
    /* The last checkpoint of an earlier run of the same job, or NULL. A full
     * backup continues: the tables it lists are kept, what is left is read
     * under a new snapshot, and the listed tables' changes between the two
     * points come from the chain's slot (databases with a change stream;
     * the others are read again). An incremental layer starts over (its
     * earlier directory is removed). */
    const char *checkpoint;
    /* After a failure (err; 57014 when the progress callback asked to
     * stop): true when the job will run again (a pause, a retry) and what
     * was written is to be kept for it; false to remove it all (a cancel,
     * a failure). NULL: always remove. */
    bool (*keep_partial)(void *arg, const pgbr_error *err);
} backup_request;

/*
 * Remove what an interrupted run of job req->job_id left: the directory
 * prefix (relative to req->collection_url; NULL: none was taken yet) and,
 * for a full backup (req->incremental_of NULL), the publication and slots
 * named after the job in each of req->databases. Missing pieces are not
 * errors. False (err set) when the storage cannot be opened.
 */
bool backup_discard(const backup_request *req, const char *prefix, pgbr_error *err);

/* Progress: fraction_completed in [0, 1] (bytes copied / bytes estimated by
 * pg_relation_size, databases weighted equally), running_status a short text.
 * Return false to cancel the backup (it then fails with 57014). */
typedef bool (*backup_progress_fn)(void *arg, double fraction_completed, const char *running_status);

typedef struct backup_result {
    char subdir[LAYOUT_SUBDIR_SIZE];    /* "/YYYY/MM/DD-HHMMSS.ss" */
    uint64_t rows;
    uint64_t bytes;             /* logical: uncompressed COPY text bytes */
    uint64_t index_entries;     /* rows x secondary (non-primary-key) indexes */
    uint64_t files;             /* data files + schema dumps */
    uint64_t stored_bytes;      /* what the data and schema files take in storage */
} backup_result;

/*
 * Take a full backup of req->databases into req->collection_url. progress may
 * be NULL. On success fills *out and returns true. On failure returns false
 * with err set: connection failures keep libpq's SQLSTATE when the server
 * sent one (08006 otherwise); an unknown database is 3D000; large objects
 * 0A000 (whole-database backups only); a relation of req->tables that does
 * not exist under the snapshot 42P01; pg_dump failing XX000 with its stderr
 * in the DETAIL; storage errors as storage.h says; a cancel from the
 * progress callback 57014.
 */
bool backup_run(const backup_request *req, backup_progress_fn progress, void *arg,
                backup_result *out, pgbr_error *err);

/*
 * Append an incremental layer to the chain of req->incremental_of
 * (docs/incremental.md): the changes since the chain's newest layer, read
 * from the chain's replication slots, plus the schema, the sequences and the
 * tables the stream does not carry, copied whole. out->subdir is the full
 * backup's subdir. Errors as backup_run's, and: no full backup to append to
 * (58P01 with the reference's message; LATEST missing as layout.h says, or
 * naming a full backup that has no manifest: 58P01 `path does not contain a
 * completed latest backup`), targets differing from the chain's (22023), a
 * chain whose slot is gone or invalidated (55000, "... is broken"), a chain
 * whose slot moved past the newest layer found (55000: a layer stored in an
 * incremental_location not given).
 */
bool backup_incremental_run(const backup_request *req, backup_progress_fn progress, void *arg,
                            backup_result *out, pgbr_error *err);

/* A name as one path component: bytes outside [A-Za-z0-9_-] become %XX
 * (upper-case hex). Returns a malloc'd string or NULL when out of memory. */
char *backup_path_component(const char *name);

#endif
