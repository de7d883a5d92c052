/*
 * engine_copy.c - the parallel COPY of one database's chunks. Each thread
 * owns one connection that has imported the database's snapshot and takes
 * files to write from a shared list until none is left: for each chunk of
 * the file (one, or the members of a bundle of small tables), COPY (SELECT
 * <cols> FROM ONLY t [WHERE ctid range]) TO STDOUT, rows batched (64 KiB)
 * into a data file writer (zstd) whose output goes through sha256 into the
 * file's storage write.
 * Memory is constant: a row is handed on as soon as libpq returns it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "pgbr/datafile.h"
#include "pgbr/filter.h"

#define BATCH_BYTES (64 * 1024)
/* report progress at least every this many raw bytes within a chunk */
#define REPORT_BYTES (8 * 1024 * 1024)

typedef struct copy_thread {
    engine_copy *cp;
    PGconn *conn;
} copy_thread;

bool engine_copy_report(engine_copy *cp, uint64_t add_estimate, const char *status)
{
    bool go_on = true;
    pthread_mutex_lock(&cp->mutex);
    cp->done_estimate += add_estimate;
    if (cp->progress) {
        double f = cp->total_estimate ? (double)cp->done_estimate / (double)cp->total_estimate : 1.0;
        if (f > 1.0)
            f = 1.0;
        go_on = cp->progress(cp->progress_arg, cp->fraction_base + cp->fraction_weight * f * 0.99,
                             status);
    }
    pthread_mutex_unlock(&cp->mutex);
    return go_on;
}

static void fail(engine_copy *cp, pgbr_error *err)
{
    pthread_mutex_lock(&cp->mutex);
    if (!cp->failed) {
        cp->failed = true;
        pgbr_error_move(&cp->error, err);
    }
    pthread_mutex_unlock(&cp->mutex);
    pgbr_error_clear(err);
}

void engine_copy_abort(engine_copy *cp)
{
    pthread_mutex_lock(&cp->mutex);
    cp->failed = true;
    pthread_mutex_unlock(&cp->mutex);
}

static bool should_stop(engine_copy *cp)
{
    pthread_mutex_lock(&cp->mutex);
    bool f = cp->failed;
    pthread_mutex_unlock(&cp->mutex);
    return f;
}

/* The COPY statement of a chunk (malloc'd). */
static char *chunk_sql(const engine_table *t, const engine_chunk *c)
{
    char *sql = NULL;
    int rc;
    if (c->first_block < 0)
        rc = asprintf(&sql, "COPY (%s) TO STDOUT", t->select_sql);
    else if (c->end_block < 0)
        rc = asprintf(&sql, "COPY (%s WHERE ctid >= '(%" PRId64 ",0)'::tid) TO STDOUT",
                      t->select_sql, c->first_block);
    else
        rc = asprintf(&sql,
                      "COPY (%s WHERE ctid >= '(%" PRId64 ",0)'::tid AND ctid < '(%" PRId64
                      ",0)'::tid) TO STDOUT",
                      t->select_sql, c->first_block, c->end_block);
    return rc < 0 ? NULL : sql;
}

/* A storage write that counts where the next byte goes (bundles). */
typedef struct counted_write {
    storage_write *w;
    uint64_t pos;
} counted_write;

static bool storage_sink(void *arg, const void *data, size_t len, pgbr_error *err)
{
    counted_write *cw = arg;
    if (!storage_write_data(cw->w, data, len, err))
        return false;
    cw->pos += len;
    return true;
}

/* Copy one chunk as a data file into the open storage write cw, from its
 * current position. On failure the connection may be unusable. */
static bool copy_chunk(engine_copy *cp, PGconn *conn, engine_chunk *c, counted_write *cw, pgbr_error *err)
{
    const engine_table *t = &cp->tables[c->table];
    filter_chain *chain = NULL;
    datafile_writer *dw = NULL;
    PGresult *res = NULL;
    char *batch = NULL;
    size_t blen = 0;
    uint64_t brows = 0, reported = 0, since_report = 0;
    bool ok = false;

    char *sql = chunk_sql(t, c);
    batch = malloc(BATCH_BYTES);
    if (!sql || !batch) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    c->offset = cw->pos;
    chain = filter_chain_new(storage_sink, cw, err);
    if (!chain || !filter_chain_add(chain, filter_sha256_new(err), "sha256", err))
        goto done;
    datafile_writer_options opts = DATAFILE_WRITER_OPTIONS_DEFAULT;
    opts.zstd_level = cp->zstd_level;
    dw = datafile_writer_new(filter_chain_sink, chain, &opts, err);
    if (!dw)
        goto done;

    res = PQexec(conn, sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
        pgclient_error_from(conn, res, NULL, err);
        pgbr_error_detail(err, "while copying table \"%s.%s\"", t->schema, t->name);
        goto done;
    }
    PQclear(res);
    res = NULL;
    for (;;) {
        char *row = NULL;
        int n = PQgetCopyData(conn, &row, 0);
        if (n == -1)
            break;
        if (n < 0) {
            pgclient_error_from(conn, NULL, "could not read COPY data", err);
            goto done;
        }
        if (blen + (size_t)n > BATCH_BYTES && blen > 0) {
            if (!datafile_writer_add_rows(dw, batch, blen, brows, err)) {
                PQfreemem(row);
                goto done;
            }
            since_report += blen;
            blen = 0;
            brows = 0;
            if (should_stop(cp)) {
                PQfreemem(row);
                pgbr_error_set(err, "57014", "backup canceled");
                goto done;
            }
        }
        if ((size_t)n > BATCH_BYTES) {
            bool r = datafile_writer_add_rows(dw, row, (size_t)n, 1, err);
            since_report += (size_t)n;
            PQfreemem(row);
            if (!r)
                goto done;
        } else {
            memcpy(batch + blen, row, (size_t)n);
            blen += (size_t)n;
            brows++;
            PQfreemem(row);
        }
        c->rows++;
        c->raw_bytes += (uint64_t)n;
        if (since_report >= REPORT_BYTES) {
            /* progress in estimate units: raw bytes, capped at the estimate */
            uint64_t add = since_report;
            if (reported + add > c->estimate)
                add = c->estimate > reported ? c->estimate - reported : 0;
            reported += add;
            since_report = 0;
            if (!engine_copy_report(cp, add, "copying data")) {
                pgbr_error_set(err, "57014", "backup canceled");
                goto done;
            }
        }
    }
    res = PQgetResult(conn);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        pgclient_error_from(conn, res, NULL, err);
        pgbr_error_detail(err, "while copying table \"%s.%s\"", t->schema, t->name);
        goto done;
    }
    PQclear(res);
    res = PQgetResult(conn);    /* NULL: the command is over */
    if (blen > 0 && !datafile_writer_add_rows(dw, batch, blen, brows, err))
        goto done;
    datafile_totals tot;
    if (!datafile_writer_finish(dw, &tot, err) || !filter_chain_finish(chain, err))
        goto done;
    c->stored_bytes = tot.stored_bytes;
    snprintf(c->sha256, sizeof(c->sha256), "%s",
             filter_sha256_hex(filter_chain_get(chain, "sha256")));
    ok = engine_copy_report(cp, c->estimate > reported ? c->estimate - reported : 0, "copying data") ||
         pgbr_error_set(err, "57014", "backup canceled");
done:
    PQclear(res);
    datafile_writer_free(dw);
    filter_chain_free(chain);
    free(batch);
    free(sql);
    return ok;
}

/* Write one storage file: a chunk's data file, or a bundle's one after the
 * other; durable (storage_write_commit) before any of them counts as done. */
static bool copy_file(engine_copy *cp, PGconn *conn, engine_chunk *head, pgbr_error *err)
{
    counted_write cw = { storage_write_open(cp->st, head->path, err), 0 };
    if (!cw.w)
        return false;
    for (engine_chunk *c = head; c; c = c->next_in_file)
        if (!copy_chunk(cp, conn, c, &cw, err)) {
            storage_write_abort(cw.w);
            return false;
        }
    if (!storage_write_commit(cw.w, err))
        return false;
    pthread_mutex_lock(&cp->mutex);
    for (engine_chunk *c = head; c; c = c->next_in_file)
        c->done = true;
    if (cp->file_done)
        cp->file_done(cp->file_done_arg);
    pthread_mutex_unlock(&cp->mutex);
    return true;
}

static void *copy_main(void *arg)
{
    copy_thread *ct = arg;
    engine_copy *cp = ct->cp;
    pgbr_error err = PGBR_ERROR_INIT;
    size_t nwork = cp->norder ? cp->norder : cp->nchunks;
    for (;;) {
        engine_chunk *c = NULL;
        pthread_mutex_lock(&cp->mutex);
        if (!cp->failed && cp->next_chunk < nwork)
            c = &cp->chunks[cp->order ? cp->order[cp->next_chunk++] : cp->next_chunk++];
        pthread_mutex_unlock(&cp->mutex);
        if (!c)
            break;
        if (!copy_file(cp, ct->conn, c, &err)) {
            fail(cp, &err);
            /* the connection may be mid-COPY: drop it so the server stops */
            PQfinish(ct->conn);
            ct->conn = NULL;
            break;
        }
    }
    return ct;
}

bool engine_copy_start(engine_copy *cp, pthread_t *threads, pgbr_error *err)
{
    for (int i = 0; i < cp->nconns; i++) {
        copy_thread *ct = malloc(sizeof(*ct));
        if (!ct) {
            engine_copy_abort(cp);
            engine_copy_join(cp, threads, i, err);
            return pgbr_error_set(err, "53200", "out of memory");
        }
        ct->cp = cp;
        ct->conn = cp->conns[i];
        int rc = pthread_create(&threads[i], NULL, copy_main, ct);
        if (rc != 0) {
            free(ct);
            engine_copy_abort(cp);
            engine_copy_join(cp, threads, i, err);
            return pgbr_error_set(err, "53000", "could not start a copy thread: %s",
                                  strerror(rc));
        }
    }
    return true;
}

bool engine_copy_join(engine_copy *cp, pthread_t *threads, int nstarted, pgbr_error *err)
{
    for (int i = 0; i < nstarted; i++) {
        void *ret = NULL;
        pthread_join(threads[i], &ret);
        copy_thread *ct = ret;
        if (ct) {
            cp->conns[i] = ct->conn;    /* NULL when the thread closed it */
            free(ct);
        }
    }
    if (pgbr_error_is_set(&cp->error)) {
        pgbr_error_move(err, &cp->error);
        return false;
    }
    return true;
}
