/*
 * restore_load.c - the parallel load of one database's data files into its
 * staging database. Each thread owns one connection and takes files from a
 * shared list (largest first) until none is left: COPY ... FROM STDIN, fed
 * frame by frame from the file as storage -> sha256 -> data file reader
 * (frame CRCs, zstd) -> PQputCopyData. A frame's rows reach the server only
 * after its CRC and decompression succeeded, and the COPY is ended (so its
 * rows become visible) only after the whole file's SHA-256, end frame and
 * row count matched the manifest; any mismatch ends the COPY with an error,
 * so a corrupt file never loads a row. Memory is constant: one read buffer
 * and one frame per thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/datafile.h"
#include "pgbr/filter.h"
#include "pgbr/pgclient.h"
#include "restore_int.h"

typedef struct load_thread {
    restore_load *ld;
    PGconn *conn;
    pthread_t thread;
    bool started;
} load_thread;

typedef struct frame_sink {
    restore_load *ld;
    PGconn *conn;           /* NULL: verify only */
    uint64_t rows;
    const restore_file *rf;
    char *buf;              /* rows without the columns rf->keep leaves out */
    size_t cap;
} frame_sink;

/* COPY text rows (data[0..len), whole rows) without the columns keep[c] is
 * false for: fields are TAB-separated and rows LF-terminated, and neither
 * byte can occur inside a field (COPY escapes them), so no unescaping is
 * needed. *out_len gets the new length; false when out of memory. */
static bool strip_columns(frame_sink *fs, const char *data, size_t len, size_t *out_len)
{
    if (fs->cap < len) {
        char *nb = realloc(fs->buf, len);
        if (!nb)
            return false;
        fs->buf = nb;
        fs->cap = len;
    }
    const bool *keep = fs->rf->keep;
    size_t ncol = fs->rf->ncolumns, o = 0, col = 0;
    bool first = true;
    const char *f = data, *e = data + len;
    for (const char *p = data; p < e; p++) {
        if (*p != '\t' && *p != '\n')
            continue;
        if (col < ncol && keep[col]) {
            if (!first)
                fs->buf[o++] = '\t';
            memcpy(fs->buf + o, f, (size_t)(p - f));
            o += (size_t)(p - f);
            first = false;
        }
        col++;
        f = p + 1;
        if (*p == '\n') {
            fs->buf[o++] = '\n';
            col = 0;
            first = true;
        }
    }
    *out_len = o;
    return true;
}

static void fail(restore_load *ld, pgbr_error *err)
{
    pthread_mutex_lock(&ld->mutex);
    if (!ld->failed) {
        ld->failed = true;
        pgbr_error_move(&ld->error, err);
    }
    pthread_mutex_unlock(&ld->mutex);
    pgbr_error_clear(err);
}

static bool report(restore_load *ld, const restore_file *rf, bool committed, uint64_t bytes, uint64_t rows)
{
    bool go_on = true;
    pthread_mutex_lock(&ld->mutex);
    ld->done_bytes += bytes;
    ld->rows += rows;
    if (committed && ld->file_done)
        ld->file_done(ld->file_done_arg, rf);
    if (ld->progress) {
        double f = ld->total_bytes ? (double)ld->done_bytes / (double)ld->total_bytes : 1.0;
        go_on = ld->progress(ld->progress_arg, ld->fraction_base + ld->fraction_weight * (f > 1 ? 1 : f),
                             ld->verify_only ? "verifying data files" : "loading data");
    }
    pthread_mutex_unlock(&ld->mutex);
    return go_on;
}

static bool on_frame(void *arg, uint64_t index, const void *data, size_t len, uint64_t nrows,
                     pgbr_error *err)
{
    frame_sink *fs = arg;
    (void)index;
    /* another file failed, or the job is canceled: stop this one */
    pthread_mutex_lock(&fs->ld->mutex);
    bool stop = fs->ld->failed;
    if (!stop && fs->ld->progress) {
        double f = fs->ld->total_bytes ? (double)fs->ld->done_bytes / (double)fs->ld->total_bytes : 1.0;
        stop = !fs->ld->progress(fs->ld->progress_arg, fs->ld->fraction_base + fs->ld->fraction_weight * (f > 1 ? 1 : f),
                                 fs->ld->verify_only ? "verifying data files" : "loading data");
    }
    pthread_mutex_unlock(&fs->ld->mutex);
    if (stop)
        return pgbr_error_set(err, "57014", "restore canceled");
    fs->rows += nrows;
    if (fs->conn && fs->rf->keep) {
        if (!strip_columns(fs, data, len, &len))
            return pgbr_error_set(err, "53200", "out of memory");
        data = fs->buf;
    }
    if (fs->conn && PQputCopyData(fs->conn, data, (int)len) != 1)
        return pgclient_error_from(fs->conn, NULL, "could not send COPY data", err);
    return true;
}

/* End an unfinished COPY with an error so the server discards its rows. */
static void abort_copy(PGconn *conn, const char *why)
{
    PGresult *res;
    if (PQputCopyEnd(conn, why) == 1)
        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
}

static bool load_file(restore_load *ld, PGconn *conn, const restore_file *rf, pgbr_error *err)
{
    const manifest_file *f = rf->file;
    char *path = NULL, *shown = NULL;
    storage_read *rd = NULL;
    filter_chain *chain = NULL;
    filter *sha = NULL;
    datafile_reader *reader = NULL;
    frame_sink fs = { ld, conn, 0, rf, NULL, 0 };
    storage *st = rf->st ? rf->st : ld->st;
    bool in_copy = false, ok = false;
    PGresult *res = NULL;

    if (asprintf(&path, "%s/%s", rf->prefix ? rf->prefix : ld->prefix, f->path) < 0 ||
        asprintf(&shown, "%s/%s", storage_display_url(st), path) < 0) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    reader = datafile_reader_new(shown, on_frame, &fs, err);
    chain = reader ? filter_chain_new(datafile_reader_sink, reader, err) : NULL;
    sha = chain ? filter_sha256_new(err) : NULL;
    if (!sha || !filter_sha256_expect(sha, f->sha256, shown, err)) {
        filter_free(sha);
        goto done;
    }
    if (!filter_chain_add(chain, sha, "sha256", err) ||   /* owns sha from here */
        !filter_chain_add(chain, filter_count_new(err), "count", err))
        goto done;
    /* the file's own bytes: a bundle holds several, one after the other */
    rd = storage_read_open(st, path, f->offset, (int64_t)f->stored_bytes, err);
    if (!rd)
        goto done;
    if (conn) {
        res = PQexec(conn, rf->copy_sql);
        if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
            pgclient_error_from(conn, res, NULL, err);
            pgbr_error_detail(err, "while loading table \"%s.%s\"", rf->table->schema, rf->table->name);
            goto done;
        }
        PQclear(res);
        res = NULL;
        in_copy = true;
    }
    if (!storage_read_to_sink(rd, filter_chain_sink, chain, err))
        goto done;
    datafile_totals tot;
    if (!filter_chain_finish(chain, err) || !datafile_reader_finish(reader, &tot, err))
        goto done;
    uint64_t stored = filter_count_bytes(filter_chain_get(chain, "count"));
    if (stored != f->stored_bytes || tot.rows != f->rows || tot.raw_bytes != f->raw_bytes) {
        pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: it does not match the manifest",
                       shown);
        pgbr_error_detail(err,
                          "The file holds %" PRIu64 " bytes, %" PRIu64 " rows, %" PRIu64
                          " raw bytes; the manifest says %" PRIu64 ", %" PRIu64 ", %" PRIu64 ".",
                          stored, tot.rows, tot.raw_bytes, f->stored_bytes, f->rows, f->raw_bytes);
        goto done;
    }
    if (conn) {
        in_copy = false;
        if (PQputCopyEnd(conn, NULL) != 1) {
            pgclient_error_from(conn, NULL, "could not end COPY", err);
            goto done;
        }
        res = PQgetResult(conn);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            pgclient_error_from(conn, res, NULL, err);
            pgbr_error_detail(err, "while loading table \"%s.%s\" from \"%s\"", rf->table->schema,
                              rf->table->name, shown);
            goto done;
        }
        if (strtoull(PQcmdTuples(res), NULL, 10) != tot.rows) {
            pgbr_error_set(err, "XX000", "COPY into \"%s.%s\" loaded %s rows of %" PRIu64,
                           rf->table->schema, rf->table->name, PQcmdTuples(res), tot.rows);
            goto done;
        }
        PQclear(res);
        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
    }
    ok = report(ld, rf, conn != NULL && conn != ld->shared, f->raw_bytes, ld->verify_only ? 0 : tot.rows) ||
         pgbr_error_set(err, "57014", "restore canceled");
done:
    if (in_copy)
        abort_copy(conn, err->message ? err->message : "aborted by pgbr");
    PQclear(res);
    storage_read_close(rd);
    filter_chain_free(chain);
    datafile_reader_free(reader);
    free(fs.buf);
    free(path);
    free(shown);
    return ok;
}

static void *load_main(void *arg)
{
    load_thread *lt = arg;
    restore_load *ld = lt->ld;
    pgbr_error err = PGBR_ERROR_INIT;
    for (;;) {
        restore_file *rf = NULL;
        pthread_mutex_lock(&ld->mutex);
        if (!ld->failed && ld->next < ld->nfiles)
            rf = &ld->files[ld->next++];
        pthread_mutex_unlock(&ld->mutex);
        if (!rf)
            break;
        if (!load_file(ld, lt->conn, rf, &err)) {
            fail(ld, &err);
            break;
        }
    }
    return NULL;
}

/* A loader connection: async commit is safe here because nothing is
 * visible until the final (synchronous) rename, whose WAL flush covers
 * every earlier commit. */
static PGconn *connect_loader(restore_load *ld, pgbr_error *err)
{
    PGconn *conn = pgclient_connect(ld->conninfo, ld->dbname, "pgbr restore", err);
    if (!conn)
        return NULL;
    if (!pgclient_exec(conn, "SET synchronous_commit = off", err)) {
        PQfinish(conn);
        return NULL;
    }
    if (ld->role) {
        char *id = PQescapeIdentifier(conn, ld->role, strlen(ld->role));
        char *sql = NULL;
        bool ok = id && asprintf(&sql, "SET ROLE %s", id) >= 0 && pgclient_exec(conn, sql, err);
        if (!id || !sql)
            pgbr_error_set(err, "53200", "out of memory");
        PQfreemem(id);
        free(sql);
        if (!ok) {
            PQfinish(conn);
            return NULL;
        }
    }
    return conn;
}

bool restore_load_run(restore_load *ld, pgbr_error *err)
{
    if (ld->shared) {
        load_thread lt = { .ld = ld, .conn = ld->verify_only ? NULL : ld->shared };
        load_main(&lt);
        if (pgbr_error_is_set(&ld->error)) {
            pgbr_error_move(err, &ld->error);
            return false;
        }
        return true;
    }
    int n = ld->nthreads < 1 ? 1 : ld->nthreads;
    if ((size_t)n > ld->nfiles)
        n = (int)(ld->nfiles ? ld->nfiles : 1);
    load_thread *threads = calloc((size_t)n, sizeof *threads);
    bool ok = true;
    if (!threads)
        return pgbr_error_set(err, "53200", "out of memory");
    for (int i = 0; ok && i < n; i++) {
        threads[i].ld = ld;
        if (!ld->verify_only) {
            threads[i].conn = connect_loader(ld, err);
            ok = threads[i].conn != NULL;
        }
    }
    for (int i = 0; ok && i < n; i++) {
        int rc = pthread_create(&threads[i].thread, NULL, load_main, &threads[i]);
        if (rc != 0) {
            pgbr_error_set(err, "53000", "could not start a load thread: %s", strerror(rc));
            ok = false;
            pthread_mutex_lock(&ld->mutex);
            ld->failed = true;
            pthread_mutex_unlock(&ld->mutex);
            break;
        }
        threads[i].started = true;
    }
    for (int i = 0; i < n; i++) {
        if (threads[i].started)
            pthread_join(threads[i].thread, NULL);
        if (threads[i].conn)
            PQfinish(threads[i].conn);
    }
    free(threads);
    if (ok && pgbr_error_is_set(&ld->error)) {
        pgbr_error_move(err, &ld->error);
        ok = false;
    }
    pgbr_error_clear(&ld->error);
    return ok;
}
