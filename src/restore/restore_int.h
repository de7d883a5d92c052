/*
 * restore_int.h - what the files of the restore engine share (src/restore
 * only): the parallel load of one database's data files.
 */
#ifndef PGBR_RESTORE_INT_H
#define PGBR_RESTORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/manifest.h"
#include "pgbr/restore.h"
#include "pgbr/storage.h"

/* One data file to load. */
typedef struct restore_file {
    const manifest_table *table;
    const manifest_file *file;
    char *copy_sql;         /* COPY <qualified> (<columns>) FROM STDIN */
} restore_file;

/* The load of one database, shared by its load threads (fields marked
 * "mutex" are protected by mutex). */
typedef struct restore_load {
    storage *st;
    const char *prefix;         /* the backup's directory, relative to the collection */
    const char *conninfo;
    const char *dbname;         /* the staging database */
    const char *role;           /* SET ROLE to this (NULL: none) */
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
} restore_load;

/* Load every file with nthreads threads; false with the first error. */
bool restore_load_run(restore_load *ld, pgbr_error *err);

#endif
