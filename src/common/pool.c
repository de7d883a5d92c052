/*
 * pool.c - the worker pool (see include/pgbr/pool.h).
 *
 * N threads take tasks from one mutex-protected FIFO. Each thread keeps its
 * own blocking libpq connection to the catalog database, opened lazily and
 * reopened when it breaks or the conninfo changes (SIGHUP). The first
 * successful connection in the process (and the first after a conninfo
 * change) migrates the catalog schema before any work runs. A finished task moves to a second FIFO and the loop thread is
 * woken with event_active (libevent must have been set up with
 * evthread_use_pthreads before the base was created); the loop then runs the
 * task's done callback.
 *
 * Threads: pool_start, pool_submit, pool_set_catalog_conninfo and pool_stop
 * are for the loop thread; the queues, conninfo and flags below are shared
 * and only touched under pool_lock.
 */
#include "pgbr/pool.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/catalog.h"
#include "pgbr/error.h"
#include "pgbr/log.h"

typedef struct pool_task {
    pool_work_fn work;
    pool_done_fn done;
    void *arg;
    struct pool_task *next;
} pool_task;

typedef struct pool_fifo {
    pool_task *head;
    pool_task *tail;
} pool_fifo;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static pool_fifo pool_queue;        /* submitted, not yet taken by a worker */
static pool_fifo pool_finished;     /* worked, done not yet run on the loop */
static bool pool_running;
static bool pool_stopping;
static bool pool_closed;            /* spawned work ending after pool_stop drops its done */
static char *pool_conninfo;         /* malloc'd; NULL = libpq defaults */
static unsigned pool_conninfo_gen;  /* bumped on every conninfo change */

/* Loop-thread only. */
static struct event *pool_done_event;
static pthread_t *pool_threads;
static int pool_nthreads;

/* The catalog is migrated once per process, by whichever worker connects
 * first; the others wait for it on this lock. */
static pthread_mutex_t pool_migrate_lock = PTHREAD_MUTEX_INITIALIZER;
static bool pool_migrated;

static void pool_fifo_push(pool_fifo *q, pool_task *t)
{
    t->next = NULL;
    if (q->tail != NULL)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

static pool_task *pool_fifo_pop(pool_fifo *q)
{
    pool_task *t = q->head;

    if (t != NULL) {
        q->head = t->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return t;
}

/* Connect and, the first time in the process, migrate. NULL (with the reason
 * recorded for catalog_require_conn) when either fails. */
static PGconn *pool_connect(const char *conninfo)
{
    pgbr_error err = PGBR_ERROR_INIT;
    PGconn *conn = catalog_connect(conninfo, &err);

    if (conn != NULL) {
        pthread_mutex_lock(&pool_migrate_lock);
        if (!pool_migrated) {
            if (catalog_migrate(conn, &err)) {
                pool_migrated = true;
            } else {
                PQfinish(conn);
                conn = NULL;
            }
        }
        pthread_mutex_unlock(&pool_migrate_lock);
    }
    if (conn == NULL) {
        log_warning("worker: %s", err.message != NULL ? err.message : "catalog unavailable");
        catalog_note_unavailable(&err);
        pgbr_error_clear(&err);
        return NULL;
    }
    catalog_note_unavailable(NULL);
    return conn;
}

/* Leave the connection as the next task expects it: idle, outside any
 * transaction. A work function that returned mid-transaction is rolled back;
 * one that left the connection busy (mid-COPY) costs a reconnect. */
static PGconn *pool_tidy_conn(PGconn *conn)
{
    if (conn == NULL)
        return NULL;
    switch (PQtransactionStatus(conn)) {
    case PQTRANS_IDLE:
        return conn;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR: {
        PGresult *res = PQexec(conn, "ROLLBACK");
        bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (ok)
            return conn;
        break;
    }
    default:
        break;
    }
    PQfinish(conn);
    return NULL;
}

static void *pool_worker_main(void *unused)
{
    PGconn *conn = NULL;
    unsigned conn_gen = 0;

    (void)unused;
    for (;;) {
        pool_task *task;
        char *conninfo = NULL;
        unsigned gen;
        bool need_conninfo;

        pthread_mutex_lock(&pool_lock);
        while (pool_queue.head == NULL && !pool_stopping)
            pthread_cond_wait(&pool_cond, &pool_lock);
        task = pool_fifo_pop(&pool_queue);
        if (task == NULL) {
            /* stopping and nothing left to do */
            pthread_mutex_unlock(&pool_lock);
            break;
        }
        gen = pool_conninfo_gen;
        need_conninfo = conn == NULL || conn_gen != gen || PQstatus(conn) != CONNECTION_OK;
        if (need_conninfo && pool_conninfo != NULL)
            conninfo = strdup(pool_conninfo);
        pthread_mutex_unlock(&pool_lock);

        if (need_conninfo) {
            PQfinish(conn);
            conn = pool_connect(conninfo);
            conn_gen = gen;
            free(conninfo);
        }
        task->work(task->arg, conn);
        conn = pool_tidy_conn(conn);

        pthread_mutex_lock(&pool_lock);
        pool_fifo_push(&pool_finished, task);
        pthread_mutex_unlock(&pool_lock);
        event_active(pool_done_event, EV_READ, 0);
    }
    PQfinish(conn);
    catalog_note_unavailable(NULL);
    return NULL;
}

/* Loop thread: run the done callbacks of every finished task. */
static void pool_run_done(void)
{
    for (;;) {
        pool_task *task;

        pthread_mutex_lock(&pool_lock);
        task = pool_fifo_pop(&pool_finished);
        pthread_mutex_unlock(&pool_lock);
        if (task == NULL)
            break;
        if (task->done != NULL)
            task->done(task->arg);
        free(task);
    }
}

static void pool_on_done_event(evutil_socket_t fd, short what, void *unused)
{
    (void)fd;
    (void)what;
    (void)unused;
    pool_run_done();
}

bool pool_start(struct event_base *base, const pool_config *cfg)
{
    int n = cfg->workers >= 1 ? cfg->workers : 1;

    if (pool_done_event != NULL) {
        log_error("worker pool: already started");
        return false;
    }
    pool_done_event = event_new(base, -1, 0, pool_on_done_event, NULL);
    pool_threads = calloc((size_t)n, sizeof *pool_threads);
    if (pool_done_event == NULL || pool_threads == NULL) {
        log_error("worker pool: out of memory");
        goto fail;
    }
    pthread_mutex_lock(&pool_lock);
    free(pool_conninfo);
    pool_conninfo = cfg->catalog_conninfo != NULL ? strdup(cfg->catalog_conninfo) : NULL;
    pool_conninfo_gen++;
    pool_stopping = false;
    pool_running = true;
    pool_closed = false;
    pthread_mutex_unlock(&pool_lock);

    for (pool_nthreads = 0; pool_nthreads < n; pool_nthreads++) {
        int rc = pthread_create(&pool_threads[pool_nthreads], NULL, pool_worker_main, NULL);
        if (rc != 0) {
            log_error("worker pool: could not start worker thread: %s", strerror(rc));
            pool_stop();
            return false;
        }
    }
    log_info("worker pool: %d worker%s started", n, n == 1 ? "" : "s");
    return true;

fail:
    if (pool_done_event != NULL)
        event_free(pool_done_event);
    pool_done_event = NULL;
    free(pool_threads);
    pool_threads = NULL;
    return false;
}

void pool_submit(pool_work_fn work, pool_done_fn done, void *arg)
{
    pool_task *task = calloc(1, sizeof *task);
    bool queued = false;

    if (task == NULL) {
        log_write(LOG_LEVEL_FATAL, "out of memory submitting work to the worker pool");
        abort();
    }
    task->work = work;
    task->done = done;
    task->arg = arg;

    pthread_mutex_lock(&pool_lock);
    if (pool_running && !pool_stopping) {
        pool_fifo_push(&pool_queue, task);
        pthread_cond_signal(&pool_cond);
        queued = true;
    }
    pthread_mutex_unlock(&pool_lock);
    if (queued)
        return;

    /* No workers: still honour the contract (work, then done) without
     * blocking, by running work with no connection and a clear reason. */
    {
        pgbr_error why = PGBR_ERROR_INIT;
        pgbr_error_set(&why, "57P03", "the worker pool is not running");
        catalog_note_unavailable(&why);
        pgbr_error_clear(&why);
        work(arg, NULL);
        catalog_note_unavailable(NULL);
        if (done != NULL)
            done(arg);
        free(task);
    }
}

/* A spawned task's thread: its own catalog connection for as long as the
 * work takes, then done on the loop like any task. */
static void *pool_spawned_main(void *arg)
{
    pool_task *task = arg;
    char *conninfo = NULL;

    pthread_mutex_lock(&pool_lock);
    if (pool_conninfo != NULL)
        conninfo = strdup(pool_conninfo);
    pthread_mutex_unlock(&pool_lock);
    PGconn *conn = pool_connect(conninfo);
    free(conninfo);
    task->work(task->arg, conn);
    PQfinish(conn);
    catalog_note_unavailable(NULL);

    pthread_mutex_lock(&pool_lock);
    if (pool_closed) {
        /* the process is exiting: nobody runs done any more */
        pthread_mutex_unlock(&pool_lock);
        free(task);
        return NULL;
    }
    pool_fifo_push(&pool_finished, task);
    event_active(pool_done_event, EV_READ, 0);
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

void pool_spawn(pool_work_fn work, pool_done_fn done, void *arg)
{
    pool_task *task = calloc(1, sizeof *task);
    pthread_t t;
    pthread_attr_t attr;
    bool started = false;

    if (task == NULL) {
        log_write(LOG_LEVEL_FATAL, "out of memory starting a job thread");
        abort();
    }
    task->work = work;
    task->done = done;
    task->arg = arg;
    pthread_mutex_lock(&pool_lock);
    bool open = pool_running && !pool_stopping;
    pthread_mutex_unlock(&pool_lock);
    if (open) {
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, pool_spawned_main, task) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        free(task);
        pool_submit(work, done, arg);
    }
}

void pool_set_catalog_conninfo(const char *conninfo)
{
    pthread_mutex_lock(&pool_lock);
    free(pool_conninfo);
    pool_conninfo = conninfo != NULL ? strdup(conninfo) : NULL;
    pool_conninfo_gen++;
    pthread_mutex_unlock(&pool_lock);
    /* The DSN may now name another server or database, whose catalog may
     * not exist yet: check again on the next connect (a no-op when it is
     * current). */
    pthread_mutex_lock(&pool_migrate_lock);
    pool_migrated = false;
    pthread_mutex_unlock(&pool_migrate_lock);
}

void pool_stop(void)
{
    if (pool_done_event == NULL)
        return;
    pthread_mutex_lock(&pool_lock);
    pool_stopping = true;
    pthread_cond_broadcast(&pool_cond);
    pthread_mutex_unlock(&pool_lock);

    /* Workers drain the queue before they exit. */
    for (int i = 0; i < pool_nthreads; i++)
        pthread_join(pool_threads[i], NULL);
    free(pool_threads);
    pool_threads = NULL;
    pool_nthreads = 0;

    /* Their completions are ours to deliver now: no loop iteration will. */
    pool_run_done();
    pthread_mutex_lock(&pool_lock);
    pool_closed = true;
    pthread_mutex_unlock(&pool_lock);
    pool_run_done();
    event_free(pool_done_event);
    pool_done_event = NULL;

    pthread_mutex_lock(&pool_lock);
    pool_running = false;
    pool_stopping = false;
    free(pool_conninfo);
    pool_conninfo = NULL;
    pthread_mutex_unlock(&pool_lock);
    log_info("worker pool: stopped");
}
