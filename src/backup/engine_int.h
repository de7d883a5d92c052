/*
 * engine_int.h - what the files of the backup engine share (src/backup/
 * engine*.c only): the pg_dump child and the parallel COPY of one database's
 * chunks.
 */
#ifndef PGBR_BACKUP_ENGINE_INT_H
#define PGBR_BACKUP_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgbr/backup.h"
#include "pgbr/error.h"
#include "pgbr/pgclient.h"
#include "pgbr/storage.h"

/* ---- pg_dump (engine_dump.c) ---- */

/* Run pg_dump --schema-only --format=custom --snapshot=... of dbname into
 * storage file path (streamed through sha256+count). stored_bytes and
 * sha256 receive the file's size and digest. */
bool engine_dump_schema(const char *pg_dump, const char *conninfo, const char *dbname,
                        const char *snapshot, storage *st, const char *path,
                        uint64_t *stored_bytes, char sha256[65], pgbr_error *err);
/* Run pg_dumpall --globals-only (roles, memberships, role settings,
 * tablespaces, parameter grants) into
 * storage file path, likewise. */
bool engine_dump_roles(const char *pg_dumpall, const char *conninfo, storage *st, const char *path,
                       uint64_t *stored_bytes, char sha256[65], pgbr_error *err);

/* ---- the chain's change stream (stream.c) ---- */

typedef struct engine_stream {
    PGconn *repl;           /* replication connection holding the exported snapshot */
    char *slot, *publication;
    char *snapshot, *lsn;   /* the exported snapshot and the slot's consistent point */
    bool created_slot, created_pub;
} engine_stream;

/* With wal_level = logical: CREATE PUBLICATION (the tables with a replica
 * identity; a table backup's filter narrows them) and a pgoutput slot with
 * an exported snapshot, *have true. Otherwise nothing, *have false. conn
 * is a plain connection to dbname. On failure what was created is in s
 * (engine_stream_drop it). */
bool engine_stream_create(PGconn *conn, const char *conninfo, const char *dbname, const char *slot,
                          const char *publication, const backup_relation *filter, size_t nfilter, bool filtered,
                          engine_stream *s, bool *have, pgbr_error *err);
/* "<verb> <publication>[ FOR TABLE | ADD TABLE t, ...]" for the tables with a
 * replica identity (and extra_cond, e.g. not yet published); *empty when none. */
bool engine_stream_publication_sql(PGconn *conn, const char *verb, const char *publication,
                                   const backup_relation *filter, size_t nfilter, bool filtered,
                                   const char *extra_cond, char **out, bool *empty, pgbr_error *err);
/* A temporary slot (gone when its connection closes) with an exported
 * snapshot: an incremental layer's end point. */
bool engine_stream_temporary(const char *conninfo, const char *dbname, const char *slot, engine_stream *s,
                             pgbr_error *err);
/* End the exported snapshot (the slot stays). */
void engine_stream_close(engine_stream *s);
void engine_stream_free(engine_stream *s);
/* Drop a slot and a publication of dbname, best effort (logged). */
void engine_stream_drop(const char *conninfo, const char *dbname, const char *slot, const char *publication);

/* ---- one database of an incremental layer (engine.c, driven by incremental.c) ---- */

typedef struct manifest manifest;
typedef struct manifest_database manifest_database;
typedef struct engine_layer_db {
    const backup_relation *copy;    /* the tables copied whole in this layer */
    size_t ncopy;
    manifest_database *mdb;         /* out: the layer's entry for the database */
} engine_layer_db;

/* The database's part of a layer: a temporary slot's snapshot (its
 * consistent point becomes mdb->end_lsn), the schema, the copy tables'
 * rows, every sequence and populated materialized view. */
bool engine_backup_database(const backup_request *req, const char *prefix, storage *st, size_t dbi, manifest *m,
                            engine_layer_db *layer, backup_progress_fn progress, void *arg, backup_result *out,
                            pgbr_error *err);

/* A resumed full backup's catch-up (incremental.c): the changes of the
 * tables only (relids, each from its own point) from the chain's slot up to end_lsn (a TRUNCATE
 * narrowed to them), into prefix/changes/<dbcomp>/0.pgbr, recorded in
 * mdb; *changes their number. */
typedef struct engine_catchup_rel {
    uint32_t relid;
    uint64_t after_lsn;         /* only transactions committed after this */
} engine_catchup_rel;
bool engine_capture_catchup(const backup_request *req, const char *prefix, storage *st, const char *dbname,
                            const char *dbcomp, const char *slot, const char *publication, const char *end_lsn,
                            const engine_catchup_rel *only, size_t nonly, manifest_database *mdb, uint64_t *changes,
                            pgbr_error *err);
/* The counts of a finished backup (rows, bytes, files), from its manifest. */
void engine_result_from_manifest(const manifest *m, backup_result *out);
/* After the backup is durable: move each database's slot to its end_lsn. */
void engine_advance_slots(const backup_request *req, const manifest *m);

/* Tell req->save_checkpoint (if any) the directory the backup now owns. */
void engine_note_prefix(const backup_request *req, void *arg, const char *prefix);

/* ---- parallel copy (engine_copy.c) ---- */

typedef struct engine_chunk {
    size_t table;           /* index into the database's table array */
    uint32_t index;         /* chunk number within its table */
    int64_t first_block;    /* -1: whole table */
    int64_t end_block;      /* -1: to the end */
    uint64_t estimate;      /* bytes, for progress */
    char *path;             /* storage path relative to the collection */
    /* a bundle: several small tables' data files written one after the
     * other into one storage file. The chunk heading it is taken by a copy
     * thread and writes the chunks of its next_in_file list too; each
     * member's data file starts at its offset. NULL / 0 otherwise. */
    struct engine_chunk *next_in_file;
    uint64_t offset;
    /* filled by the copy */
    bool done;
    uint64_t rows, raw_bytes, stored_bytes;
    char sha256[65];
} engine_chunk;

typedef struct engine_table {
    uint32_t oid;
    char *schema, *name;
    char *select_sql;       /* "SELECT <cols> FROM ONLY <qualified>" */
    uint64_t size;          /* pg_relation_size */
    uint32_t secondary_indexes;
} engine_table;

/* Shared by the copy threads of one database (mutex-protected fields
 * marked). */
typedef struct engine_copy {
    storage *st;
    int zstd_level;
    engine_table *tables;
    engine_chunk *chunks;
    size_t nchunks;
    size_t *order;          /* the order chunks are taken in (NULL: as listed) */
    size_t norder;          /* entries in order: the files to write (bundle members
                             * are not in it); 0: nchunks */
    PGconn **conns;         /* one per thread, snapshot imported */
    int nconns;
    backup_progress_fn progress;
    void *progress_arg;
    double fraction_base, fraction_weight;  /* this database's share */
    uint64_t total_estimate;
    pthread_mutex_t mutex;
    size_t next_chunk;      /* mutex */
    uint64_t done_estimate; /* mutex */
    bool failed;            /* mutex (read racily as a hint) */
    pgbr_error error;       /* mutex: the first failure */
    /* called under mutex once a file is durable and its chunks marked
     * done; NULL: none */
    void (*file_done)(void *arg);
    void *file_done_arg;
} engine_copy;

/* Start one thread per connection; each takes chunks until none is left. */
bool engine_copy_start(engine_copy *cp, pthread_t *threads, pgbr_error *err);
/* Wait for the threads started; false with the first error. */
bool engine_copy_join(engine_copy *cp, pthread_t *threads, int nstarted, pgbr_error *err);
/* Make the copy threads stop (another part failed). */
void engine_copy_abort(engine_copy *cp);
/* Report progress under the mutex; false when the callback asked to cancel. */
bool engine_copy_report(engine_copy *cp, uint64_t add_estimate, const char *status);

/* ---- one database's run (engine.c, engine_resume.c) ---- */

typedef struct json_t json_t;

/* The slots and publications this backup created, dropped again when it
 * fails. */
typedef struct stream_list {
    char **db, **slot, **pub;
    size_t n;
} stream_list;
/* Record one database's created slot and publication (either may be
 * NULL); false when out of memory. */
bool engine_stream_list_add(stream_list *l, const char *db, const char *slot, const char *pub);
/* Drop them all (engine_stream_drop) and forget them; conninfo NULL: only
 * forget them (the backup succeeded). */
void engine_stream_list_drop(stream_list *l, const char *conninfo);

/* Everything one database's backup holds while it runs (engine.c; its
 * checkpoint part in engine_resume.c). */
typedef struct db_run {
    const backup_request *req;
    const char *dbname;
    char *dbcomp;               /* dbname as a path component */
    const char *prefix;         /* the backup dir relative to the collection */
    storage *st;
    PGconn *exporter;
    PGconn **conns;
    int nconns;
    char *snapshot;
    char *lsn;
    int server_num;
    char *server_version;
    engine_table *tables;
    size_t ntables;
    engine_chunk *chunks;
    size_t nchunks;
    size_t *order;
    size_t nwork;                   /* entries of order: files to write */
    /* a table backup: the relations of this database it holds */
    bool filtered;                  /* false: the whole database */
    const backup_relation *filter;
    size_t nfilter;
    uint32_t *sel_oid;              /* filter[i]'s oid and relkind under the snapshot */
    char *sel_kind;
    char *oids_table;               /* "0, <oid>, ...": c.oid IN (...) per kind */
    char *oids_sequence;
    char *oids_matview;
    size_t dbi;                     /* index in req->databases */
    stream_list *created;           /* backup_run's list of slots to drop on failure */
    engine_layer_db *layer;         /* an incremental layer's database (incremental.c), else NULL */
    engine_stream stream;           /* the chain's slot, when this full backup created one */
    bool have_stream;
    struct engine_cp *cp;           /* the backup's checkpoint (full backups) */
    /* a resumed database: the checkpoint's entry (its chain slot,
     * publication and the tables read before), the tables kept from it */
    const json_t *resume;
    json_t *kept;                   /* array of table entries */
    PGresult *cols;                 /* the tables' columns under the snapshot */
} db_run;

/* The checkpoint of a full backup while it runs (engine_resume.c gives the
 * format): the entries of the databases done, and the one being copied. */
typedef struct engine_cp {
    const backup_request *req;
    void *arg;
    const char *prefix;
    json_t *dbs;
    db_run *cur;                    /* under the copy mutex while copying */
    int64_t last_ms;
    size_t files_done;              /* of cur, under the copy mutex */
} engine_cp;

/* The first row of cols (attrelid, name, type rows ordered by attrelid)
 * for table oid: where its columns start (a binary search). */
int engine_first_column(PGresult *cols, uint32_t oid);
/* The chain slot and publication of r's database: the checkpoint's when
 * resumed, else the ones this run created (NULL: none). */
const char *engine_db_slot(const db_run *r);
const char *engine_db_publication(const db_run *r);
/* r's checkpoint entry: the tables kept from an earlier run and those of
 * this run whose files are all durable (every table when complete). */
json_t *engine_db_entry(const db_run *r, bool complete);
/* Hand the checkpoint to req->save_checkpoint (force: now; else at most
 * once a second). */
void engine_cp_save(engine_cp *cp, bool force);
/* engine_copy's file_done (arg: the engine_cp; under the copy mutex). */
void engine_cp_file_done(void *arg);
/* A resumed database: keep the checkpoint's tables that still exist under
 * the new snapshot and are in the chain's publication, and take them out
 * of what is copied. */
bool engine_resume_keep(db_run *r, pgbr_error *err);
/* The kept tables' changes from the points they were read at up to this
 * run's snapshot, into mdb. */
bool engine_resume_catchup(db_run *r, manifest_database *mdb, backup_result *out, pgbr_error *err);
/* The kept tables, with their files, into mdb. */
bool engine_add_kept_tables(db_run *r, manifest_database *mdb, backup_result *out, pgbr_error *err);

/* ---- checkpoints (engine_resume.c) ---- */

/* Remove the files under prefix that the checkpoint does not keep (the
 * lock file stays). */
bool engine_resume_clean(storage *st, const char *prefix, const json_t *cp, pgbr_error *err);
/* The checkpoint's entry of database name, or NULL. */
const json_t *engine_resume_db(const json_t *cp, const char *name);


#endif
