/*
 * restore_int.h - what the files of the restore engine share (src/restore
 * only): the parallel load of one database's data files.
 */
#ifndef PGBR_RESTORE_INT_H
#define PGBR_RESTORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgbr/error.h"
#include "pgbr/manifest.h"
#include "pgbr/restore.h"
#include "pgbr/storage.h"

/* One data file to load. */
typedef struct restore_file {
    const manifest_table *table;
    const manifest_file *file;
    char *copy_sql;         /* COPY <qualified> (<columns>) FROM STDIN */
    const char *prefix;     /* its layer's directory; NULL: restore_load's prefix */
    storage *st;            /* its layer's storage; NULL: restore_load's */
    /* NULL: every column of the file is loaded. Else keep[c] says whether
     * the file's column c is (a chain restore: a column dropped since the
     * file was written is left out of each row) */
    bool *keep;
    size_t ncolumns;
    /* a database restore's checkpoint: the plan's database and the index
     * of table among its tables */
    size_t dbi, table_index;
} restore_file;

/* The load of one database, shared by its load threads (fields marked
 * "mutex" are protected by mutex). */
typedef struct restore_load {
    storage *st;
    const char *prefix;         /* the backup's directory, relative to the collection */
    const char *conninfo;
    const char *dbname;         /* the staging database */
    const char *role;           /* SET ROLE to this (NULL: none) */
    /* NULL: nthreads connections of their own. Else every file is loaded
     * in the calling thread over this connection, inside whatever
     * transaction it has open (a table restore's), and role is ignored. */
    PGconn *shared;
    bool verify_only;           /* read and verify; no connection, no rows loaded */
    int nthreads;
    restore_file *files;        /* largest first */
    size_t nfiles;
    restore_progress_fn progress;
    void *progress_arg;
    double fraction_base, fraction_weight;
    uint64_t total_bytes;
    pthread_mutex_t mutex;
    size_t next;                /* mutex */
    uint64_t done_bytes;        /* mutex */
    uint64_t rows;              /* mutex */
    bool failed;                /* mutex */
    pgbr_error error;           /* mutex: the first failure */
    /* called under mutex once a file's rows are committed (not in verify
     * mode nor over a shared connection); NULL: none */
    void (*file_done)(void *arg, const restore_file *rf);
    void *file_done_arg;
} restore_load;

/* Load every file with nthreads threads; false with the first error. */
bool restore_load_run(restore_load *ld, pgbr_error *err);

typedef struct restore_table_plan restore_table_plan;

/* How far one database of a restore got; each phase is kept in the
 * checkpoint once it is complete. */
typedef enum restore_phase {
    RESTORE_PHASE_NONE = 0,
    RESTORE_PHASE_CREATED,      /* staging database and pre-data are there: loading */
    RESTORE_PHASE_LOADED,       /* every table's rows */
    RESTORE_PHASE_INDEXED,      /* post-data (indexes, constraints, triggers) */
    RESTORE_PHASE_FINISHED      /* changes replayed, sequences set, views refreshed */
} restore_phase;

struct restore_plan {
    const restore_request *req;
    storage *st;
    manifest *m;
    char subdir[LAYOUT_SUBDIR_SIZE];
    size_t n;
    manifest_database **dbs;    /* the databases restored, in the manifest */
    char **dest;                /* their destination names */
    char **staging;             /* their staging names */
    bool *created;              /* staging database exists */
    PGconn *admin;              /* the maintenance connection */
    char **new_roles;           /* roles a whole-server restore created */
    size_t nnew_roles;
    int server_num;
    restore_table_plan *tables; /* RESTORE TABLE (restore_tables.c); NULL otherwise */
    /* a chain (restore_chain.c): layers[0] is m (the full backup), then the
     * incremental layers restored; 0 before restore_chain_open */
    size_t nlayers;
    manifest **layers;
    char **layer_dirs;          /* relative to their storage, no leading '/' */
    storage **layer_st;         /* each layer's storage: st or inc_st */
    storage *inc_st;            /* WITH incremental_location; NULL: none */
    manifest *top;              /* layers[nlayers - 1]: schema, tables, sequences */
    int64_t until_us;           /* AS OF SYSTEM TIME inside the last layer, else INT64_MAX */
    size_t ncopies;             /* the layers whose whole-table copies are used */
    /* where each database stands (restore_checkpoint.c): a resumed run
     * skips what is done */
    restore_phase *phase;       /* per database */
    bool **loaded;              /* per database, per table of its top entry: rows committed */
    size_t **files_left;        /* per database, per table: files not loaded yet */
    bool roles_done;
    int64_t last_checkpoint_ms;
    void *progress_arg;         /* restore_execute's, for save_checkpoint */
};

/* ---- checkpoints (restore_checkpoint.c) ---- */

/* Allocate the plan's progress (phase, loaded) and fill it from
 * req->checkpoint when there is one. XX000 for a checkpoint that does not
 * fit the plan. */
bool restore_checkpoint_load(restore_plan *p, pgbr_error *err);
void restore_checkpoint_free(restore_plan *p);
/* Hand the plan's progress to req->save_checkpoint (force: now; else at
 * most once a second). */
void restore_checkpoint_save(restore_plan *p, bool force);
/* A restore_load file_done callback (arg: the plan; rf's dbi and
 * table_index say which table). */
void restore_checkpoint_file_done(void *arg, const restore_file *rf);

/* ---- chains (restore_chain.c) ---- */

/* Read the incremental layers of the plan's full backup (in the collection,
 * and in req->incremental_location when given: layout_find_layers) and
 * choose those restored (req->as_of: the reference's rules, 22023 with its
 * messages). A layer whose previous one was not found (stored in a location
 * not given) ends the chain seen; restoring past it fails with 58P01. */
bool restore_chain_open(restore_plan *p, pgbr_error *err);
void restore_chain_free(restore_plan *p);
/* The layer that gives the schema, the tables and the sequences. */
const manifest *restore_top(const restore_plan *p);
const char *restore_top_dir(const restore_plan *p);
storage *restore_top_storage(const restore_plan *p);
/* Where the rows of top (a table of the top layer's database dbname) come
 * from: *src, the entry with its files, in the layer at *prefix of storage
 * *st. False: no layer holds rows for it (it is empty). */
bool restore_chain_source(const restore_plan *p, const char *dbname, const manifest_table *top,
                          const manifest_table **src, const char **prefix, storage **st);
/* True when the restore has changes to replay: incremental layers, or a
 * full backup that was resumed (its catch-up changes). */
bool restore_chain_replays(const restore_plan *p);
/* Replay the changes of every incremental layer (and the full backup's
 * own, when it has some) onto db's tables (the top
 * layer's entries; a table restore passes only the tables it restores) over
 * conn: a connection of its own (database restores), or inside the caller's
 * transaction (table restores). */
bool restore_chain_apply(restore_plan *p, const manifest_database *db, PGconn *conn, restore_progress_fn progress,
                         void *arg, double at, restore_result *out, pgbr_error *err);

/* Copy db's schema dump to a temporary file (n makes its name unique within
 * the job), checking its SHA-256; *tmp gets the path, the caller unlinks. */
bool restore_fetch_schema(restore_plan *p, const manifest_database *db, size_t n, char **tmp, pgbr_error *err);
/* "schema"."name", quoted as needed (malloc'd; NULL when out of memory). */
char *restore_qualified(PGconn *conn, const char *schema, const char *name);
/* COPY <qualified> (<columns>) FROM STDIN for t (malloc'd). */
char *restore_copy_statement(PGconn *conn, const manifest_table *t);
/* Load db's data files (every table of db that has files) into dbname:
 * over conn when given (in its open transaction), else in parallel. */
bool restore_load_database(restore_plan *p, const manifest_database *db, const char *dbname, PGconn *conn,
                           restore_progress_fn progress, void *arg, double base, double weight,
                           restore_result *out, pgbr_error *err);
/* Sequence values, then populated materialized views refreshed. */
bool restore_finish_database(restore_plan *p, const manifest_database *db, PGconn *conn, pgbr_error *err);

/* RESTORE TABLE (restore_tables.c): resolve the patterns against the backup,
 * choose what the schema dump restores, check the destinations. */
bool restore_tables_prepare(restore_plan *p, pgbr_error *err);
bool restore_tables_execute(restore_plan *p, restore_progress_fn progress, void *arg, restore_result *out,
                            pgbr_error *err);
void restore_tables_free(restore_table_plan *tp);
/* A pg_restore --use-list of the whole dump but the chain's publication
 * (pgbr's own, docs/incremental.md) and what depends on it, in a temporary
 * file (*list_path, malloc'd; the caller unlinks it). */
bool restore_list_without_publication(restore_plan *p, const char *dump, const char *publication, size_t n,
                                      char **list_path, pgbr_error *err);

#endif
