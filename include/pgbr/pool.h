/*
 * pool.h - the worker pool: threads that run blocking work (libpq in blocking
 * mode, storage I/O, compression) off the event loop.
 *
 * pool_submit is called on the loop thread; `work` runs on a worker thread;
 * `done` then runs on the loop thread (via event_active on the loop's base).
 * The worker's catalog connection (a blocking libpq connection made with the
 * configured job DSN to the catalog database) is passed to `work`; it is
 * reconnected when found broken.
 */
#ifndef PGBR_POOL_H
#define PGBR_POOL_H

#include <stdbool.h>

struct event_base;
struct pg_conn;

typedef void (*pool_work_fn)(void *arg, struct pg_conn *catalog_conn);
typedef void (*pool_done_fn)(void *arg);

typedef struct pool_config {
    int workers;             /* number of threads, >= 1 */
    const char *catalog_conninfo; /* job DSN with dbname set to the catalog database */
} pool_config;

/* Start the pool on base. Returns false (and logs) on failure. */
bool pool_start(struct event_base *base, const pool_config *cfg);
/* Submit work; done (may be NULL) runs on the loop thread after work. */
void pool_submit(pool_work_fn work, pool_done_fn done, void *arg);
/* Like pool_submit for work that may take hours (a BACKUP or RESTORE job):
 * it runs on a thread of its own with a catalog connection of its own, so
 * it never holds a pool worker the short statements (SHOW JOBS, PAUSE JOB)
 * need. done runs on the loop as for pool_submit, unless pool_stop ran
 * first (the process is exiting; the work is then left to finish or die). */
void pool_spawn(pool_work_fn work, pool_done_fn done, void *arg);
/* Replace the catalog conninfo (SIGHUP); workers reconnect lazily. */
void pool_set_catalog_conninfo(const char *conninfo);
/* Stop accepting work, finish queued work, join the threads. */
void pool_stop(void);

#endif
