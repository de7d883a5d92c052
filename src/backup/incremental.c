/*
 * incremental.c - BACKUP ... INTO LATEST IN c / INTO '<subdir>' IN c: an
 * incremental layer appended to a chain (docs/incremental.md).
 *
 * For each database of the chain:
 *   1. its slot must still exist and be usable, else the chain is broken;
 *   2. tables with a replica identity that the publication does not list
 *      yet (created since) are added to it;
 *   3. a temporary slot exports a snapshot: its consistent point is the
 *      layer's end; under it the schema is re-taken, every sequence read,
 *      and the tables the stream did not carry until now (no replica
 *      identity, or new) are copied whole (engine_backup_database);
 *   4. the chain's slot is read up to that end with
 *      pg_logical_slot_peek_binary_changes (single-row mode: memory does not
 *      grow with the changes), decoded into change lines (src/cdc) and
 *      written as a change file through the usual data file writer, sha256
 *      and storage; transactions the previous layer already holds (a replay
 *      after a crash) are skipped by their commit LSN.
 * Then the layer's manifest is written, and only then is each slot advanced
 * to its end (WAL is released only once the changes are durable).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"
#include "pgbr/cdc.h"
#include "pgbr/datafile.h"
#include "pgbr/filter.h"
#include "pgbr/log.h"
#include "pgbr/manifest.h"

#ifndef PGBR_VERSION
#define PGBR_VERSION "0.1.0"
#endif

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

static const manifest_database *find_db(const manifest *m, const char *name)
{
    for (size_t i = 0; i < m->ndatabases; i++)
        if (strcmp(m->databases[i]->name, name) == 0)
            return m->databases[i];
    return NULL;
}

/* ---- the chain ---- */

typedef struct chain {
    char full[LAYOUT_SUBDIR_SIZE];      /* "/YYYY/MM/DD-HHMMSS.ss" */
    manifest *full_m;
    manifest *prev_m;                   /* the newest layer (the full when none) */
    char prev_dir[LAYOUT_PATH_SIZE];    /* its directory, relative to its storage root */
    size_t nlayers;                     /* incrementals so far (those found) */
    bool in_full;                       /* some are in the v21.2 layout (in the full backup's directory) */
} chain;

static void chain_free(chain *c)
{
    if (c->prev_m != c->full_m)
        manifest_free(c->prev_m);
    manifest_free(c->full_m);
}

/* The full backup LATEST names must be complete (reference 21.1: "INTO
 * LATEST with no full backup, or an incremental_location chain missing its
 * full"). */
static bool latest_full(storage *st, char full[LAYOUT_SUBDIR_SIZE], pgbr_error *err)
{
    char path[LAYOUT_SUBDIR_SIZE + sizeof LAYOUT_MANIFEST + 1];
    storage_info info;
    if (!layout_read_latest(st, full, err))
        return false;
    int n = snprintf(path, sizeof path, "%s/%s", full + 1, LAYOUT_MANIFEST);
    if (n < 0 || (size_t)n >= sizeof path)
        return pgbr_error_set(err, "XX000", "backup subdirectory name does not fit");
    if (!storage_stat(st, path, &info, err))
        return false;
    if (!info.exists) {
        pgbr_error_set(err, "58P01", "path does not contain a completed latest backup");
        pgbr_error_detail(err, "The LATEST file of \"%s\" names \"%s\", which holds no %s.", storage_display_url(st),
                          full, LAYOUT_MANIFEST);
        return false;
    }
    return true;
}

/* The chain's full backup in the collection st, and its newest layer in any
 * place layers may be (layout_find_layers: the collection, and inc when
 * given). */
static bool open_chain(storage *st, storage *inc, const char *given, chain *c, pgbr_error *err)
{
    memset(c, 0, sizeof *c);
    if (!given || layout_is_latest(given)) {
        if (!latest_full(st, c->full, err))
            return false;
    } else {
        pgbr_error e = PGBR_ERROR_INIT;
        bool ok = layout_resolve_backup(st, given, c->full, &e);
        if (!ok && strcmp(e.sqlstate, "58P01") == 0) {
            pgbr_error_clear(&e);
            return pgbr_error_set(err, "58P01",
                                  "No full backup exists in \"%s\" to append an incremental backup to. To take a full "
                                  "backup, remove the subdirectory from the backup command (i.e. run 'BACKUP ... INTO "
                                  "<collectionURI>'). ",
                                  given);
        }
        if (!ok) {
            pgbr_error_move(err, &e);
            return false;
        }
    }
    c->full_m = layout_read_manifest(st, c->full, NULL, NULL, err);
    if (!c->full_m)
        return false;
    c->prev_m = c->full_m;
    snprintf(c->prev_dir, sizeof c->prev_dir, "%s", c->full + 1);
    layout_layers layers = { 0 };
    if (!layout_find_layers(st, inc, c->full, &layers, err))
        return false;
    c->nlayers = layers.n;
    for (size_t i = 0; i < layers.n; i++)
        c->in_full |= layers.items[i].place == LAYOUT_PLACE_IN_FULL;
    bool ok = true;
    if (layers.n > 0) {
        const layout_layer *last = &layers.items[layers.n - 1];
        snprintf(c->prev_dir, sizeof c->prev_dir, "%s", last->dir);
        c->prev_m = layout_read_manifest(last->st, c->prev_dir, NULL, NULL, err);
        ok = c->prev_m != NULL;
        if (!ok)
            c->prev_m = c->full_m;
    }
    layout_layers_free(&layers);
    return ok;
}

/* The reference's rule: an incremental covers the chain's targets. */
static bool check_targets(const backup_request *req, const chain *c, pgbr_error *err)
{
    const manifest *f = c->full_m;
    if (req->tables || f->targets.kind == MANIFEST_TARGET_TABLES)
        return pgbr_error_set(err, "0A000", "incremental backups of tables are not implemented yet");
    if (req->cluster != (f->targets.kind == MANIFEST_TARGET_CLUSTER)) {
        if (req->cluster)
            return pgbr_error_set(err, "22023", "previous backup does not contain the complete cluster");
        return pgbr_error_set(err, "22023", "previous backup does not contain the complete database \"%s\"",
                              req->databases[0]);
    }
    if (req->cluster) {
        for (size_t i = 0; i < req->ndatabases; i++)
            if (!find_db(f, req->databases[i])) {
                pgbr_error_set(err, "55000", "database \"%s\" was created after the full backup \"%s\" of this chain",
                               req->databases[i], c->full);
                pgbr_error_hint(err, "Take a new full backup (BACKUP INTO '<collection>'); it starts a new chain.");
                return false;
            }
        return true;
    }
    for (size_t i = 0; i < req->ndatabases; i++)
        if (!find_db(f, req->databases[i]))
            return pgbr_error_set(err, "22023", "previous backup does not contain the complete database \"%s\"",
                                  req->databases[i]);
    if (f->ndatabases != req->ndatabases)
        return pgbr_error_set(err, "22023", "previous backup does not contain the same databases: it holds %zu, "
                                            "this backup names %zu", f->ndatabases, req->ndatabases);
    return true;
}

/* ---- one database ---- */

typedef struct rel_count {
    uint32_t relid;             /* 0: free slot */
    uint64_t changes, bytes;
} rel_count;

typedef struct change_sink {
    datafile_writer *w;
    uint64_t skip_upto;         /* transactions committed at or before this are the previous layer's */
    bool skipping;
    uint64_t transactions, lines, changes;   /* C lines, all lines, I/U/D/T lines */
    /* lines are handed to the data file writer in batches of about
     * CHANGE_BATCH bytes, each line one "row" */
    char *buf;
    size_t len, cap, rows;
    /* per relid: I/U/D lines and their bytes (SHOW BACKUP's rows and
     * size_bytes of a streamed table), open addressing */
    rel_count *rels;
    size_t nrels, caprels;
    /* a resumed full backup: only the changes of these relids (sorted) are
     * kept, and a TRUNCATE line keeps only them; NULL: all */
    const engine_catchup_rel *only;
    size_t nonly;
    uint64_t txn_lsn;           /* the current transaction's commit LSN */
    char *tline;                /* a rewritten T line */
} change_sink;

#define CHANGE_BATCH (64 * 1024)

static bool flush_lines(change_sink *cs, pgbr_error *err)
{
    if (cs->rows == 0)
        return true;
    bool ok = datafile_writer_add_rows(cs->w, cs->buf, cs->len, cs->rows, err);
    cs->len = cs->rows = 0;
    return ok;
}

/* The final LSN of a "B\t<lsn>\t..." line; 0 when it has none. */
static uint64_t begin_lsn(const char *line, size_t len)
{
    char lsn[CDC_LSN_TEXT_SIZE];
    const char *p = memchr(line, '\t', len);
    const char *q = p ? memchr(p + 1, '\t', len - (size_t)(p + 1 - line)) : NULL;
    uint64_t v = 0;
    if (p && q && (size_t)(q - p - 1) < sizeof lsn) {
        memcpy(lsn, p + 1, (size_t)(q - p - 1));
        lsn[q - p - 1] = '\0';
        cdc_lsn_parse(lsn, &v);
    }
    return v;
}

static rel_count *rel_slot(change_sink *cs, uint32_t relid)
{
    size_t mask = cs->caprels - 1, i = (relid * 2654435761u) & mask;
    while (cs->rels[i].relid != 0 && cs->rels[i].relid != relid)
        i = (i + 1) & mask;
    return &cs->rels[i];
}

static bool count_change(change_sink *cs, const char *line, size_t len, pgbr_error *err)
{
    uint32_t relid = (uint32_t)strtoul(line + 2, NULL, 10);   /* "I\t<relid>\t..." */
    if (relid == 0)
        return true;
    if ((cs->nrels + 1) * 2 > cs->caprels) {
        size_t cap = cs->caprels ? cs->caprels * 2 : 64;
        rel_count *old = cs->rels, *nr = calloc(cap, sizeof *nr);
        if (!nr)
            return oom(err);
        size_t oldcap = cs->caprels;
        cs->rels = nr;
        cs->caprels = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].relid != 0)
                *rel_slot(cs, old[i].relid) = old[i];
        free(old);
    }
    rel_count *rc = rel_slot(cs, relid);
    if (rc->relid == 0) {
        rc->relid = relid;
        cs->nrels++;
    }
    rc->changes++;
    rc->bytes += len + 1;
    return true;
}

static int cmp_relid(const void *a, const void *b)
{
    uint32_t x = ((const engine_catchup_rel *)a)->relid, y = ((const engine_catchup_rel *)b)->relid;
    return x < y ? -1 : x > y;
}

/* A change of relid in the current transaction is kept: the table is one
 * of cs->only and its rows were read before this transaction committed. */
static bool wanted(const change_sink *cs, uint32_t relid)
{
    engine_catchup_rel key = { relid, 0 };
    const engine_catchup_rel *r = bsearch(&key, cs->only, cs->nonly, sizeof key, cmp_relid);
    return r && cs->txn_lsn > r->after_lsn;
}

/* "T\t<options>\t<n>\t<relid>..." narrowed to the wanted relids: *line
 * and *len are the rewritten line (cs->tline), *len 0 when none is left. */
static bool narrow_truncate(change_sink *cs, const char **line, size_t *len, pgbr_error *err)
{
    size_t cap = *len + 32;
    char *copy = strndup(*line, *len), *relids = malloc(cap), *save = NULL;
    free(cs->tline);
    cs->tline = malloc(cap);
    if (!copy || !relids || !cs->tline) {
        free(copy);
        free(relids);
        return oom(err);
    }
    strtok_r(copy, "\t", &save);                       /* T */
    const char *options = strtok_r(NULL, "\t", &save);
    strtok_r(NULL, "\t", &save);                        /* n */
    size_t rl = 0, kept = 0;
    relids[0] = '\0';
    for (char *r = strtok_r(NULL, "\t", &save); r; r = strtok_r(NULL, "\t", &save))
        if (wanted(cs, (uint32_t)strtoul(r, NULL, 10))) {
            rl += (size_t)snprintf(relids + rl, cap - rl, "\t%s", r);
            kept++;
        }
    int n = kept ? snprintf(cs->tline, cap, "T\t%s\t%zu%s", options ? options : "0", kept, relids) : 0;
    free(copy);
    free(relids);
    *line = cs->tline;
    *len = n > 0 ? (size_t)n : 0;
    return true;
}

static bool on_line(void *arg, const char *line, size_t len, pgbr_error *err)
{
    change_sink *cs = arg;
    char kind = len > 0 ? line[0] : '\0';
    if (kind == 'B')
        cs->txn_lsn = begin_lsn(line, len);
    if (cs->only && (kind == 'I' || kind == 'U' || kind == 'D') && len > 2 &&
        !wanted(cs, (uint32_t)strtoul(line + 2, NULL, 10)))
        return true;
    if (cs->only && kind == 'T') {
        if (!narrow_truncate(cs, &line, &len, err))
            return false;
        if (len == 0)
            return true;
    }
    if (kind == 'B') {
        /* a replay after a crash: the previous layer holds this one */
        uint64_t v = begin_lsn(line, len);
        cs->skipping = v != 0 && v <= cs->skip_upto;
    }
    if (cs->skipping && kind != 'R') {
        if (kind == 'C')
            cs->skipping = false;
        return true;
    }
    if (kind == 'C')
        cs->transactions++;
    if (kind == 'I' || kind == 'U' || kind == 'D' || kind == 'T')
        cs->changes++;
    if ((kind == 'I' || kind == 'U' || kind == 'D') && len > 2 && !count_change(cs, line, len, err))
        return false;
    cs->lines++;
    if (cs->len + len + 1 > cs->cap) {
        size_t cap = cs->cap ? cs->cap : CHANGE_BATCH;
        while (cap < cs->len + len + 1)
            cap *= 2;
        char *nb = realloc(cs->buf, cap);
        if (!nb)
            return oom(err);
        cs->buf = nb;
        cs->cap = cap;
    }
    memcpy(cs->buf + cs->len, line, len);
    cs->buf[cs->len + len] = '\n';
    cs->len += len + 1;
    cs->rows++;
    return cs->len < CHANGE_BATCH || flush_lines(cs, err);
}

static bool storage_sink(void *w, const void *data, size_t len, pgbr_error *err)
{
    return storage_write_data(w, data, len, err);
}

/* Read the chain's slot up to end_lsn into the layer's change file. */
static bool capture_changes(const backup_request *req, const char *prefix, storage *st, const char *dbname,
                            const char *dbcomp, const char *slot, const char *publication, const char *end_lsn,
                            change_sink *cs_out, manifest_database *mdb, pgbr_error *err)
{
    char *path = NULL;
    if (asprintf(&path, "%s/changes/%s/0.pgbr", prefix, dbcomp) < 0)
        return oom(err);
    PGconn *conn = pgclient_connect(req->conninfo, dbname, "pgbr backup changes", err);
    storage_write *w = NULL;
    filter_chain *chain = NULL;
    datafile_writer *dw = NULL;
    cdc_decoder *dec = NULL;
    change_sink cs = *cs_out;
    bool ok = false, in_query = false;
    if (!conn)
        goto done;
    w = storage_write_open(st, path, err);
    chain = w ? filter_chain_new(storage_sink, w, err) : NULL;
    if (!chain || !filter_chain_add(chain, filter_sha256_new(err), "sha256", err))
        goto done;
    datafile_writer_options opts = DATAFILE_WRITER_OPTIONS_DEFAULT;
    dw = datafile_writer_new(filter_chain_sink, chain, &opts, err);
    cs.w = dw;
    dec = dw ? cdc_decoder_new(on_line, &cs, err) : NULL;
    if (!dec)
        goto done;
    const char *params[3] = { slot, end_lsn, publication };
    if (!PQsendQueryParams(conn,
                           "SELECT lsn::text, data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, "
                           "NULL, 'proto_version', '1', 'publication_names', $3)",
                           3, NULL, params, NULL, NULL, 1) ||
        !PQsetSingleRowMode(conn)) {
        pgclient_error_from(conn, NULL, "could not read the change stream", err);
        goto done;
    }
    in_query = true;
    ok = true;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType rs = PQresultStatus(res);
        if (rs == PGRES_SINGLE_TUPLE && ok) {
            uint64_t lsn = 0;
            cdc_lsn_parse(PQgetvalue(res, 0, 0), &lsn);
            ok = cdc_decoder_feed(dec, lsn, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), err);
        } else if (rs != PGRES_TUPLES_OK && rs != PGRES_SINGLE_TUPLE && ok) {
            pgclient_error_from(conn, res, "could not read the change stream", err);
            pgbr_error_detail(err, "replication slot \"%s\" of database \"%s\"", slot, dbname);
            ok = false;
        }
        PQclear(res);
    }
    in_query = false;
    datafile_totals tot;
    ok = ok && flush_lines(&cs, err) && datafile_writer_finish(dw, &tot, err) && filter_chain_finish(chain, err);
    if (ok) {
        manifest_file *f = manifest_database_add_change_file(mdb, path + strlen(prefix) + 1, err);
        ok = f != NULL;
        if (ok) {
            f->stored_bytes = tot.stored_bytes;
            snprintf(f->sha256, sizeof f->sha256, "%s", filter_sha256_hex(filter_chain_get(chain, "sha256")));
            f->rows = tot.rows;
            f->raw_bytes = tot.raw_bytes;
            mdb->change_transactions = cs.transactions;
        }
    }
    ok = ok && storage_write_commit(w, err);
    w = NULL;
    if (ok)
        log_info("backup job %" PRId64 ": database \"%s\": %" PRIu64 " transactions (%" PRIu64
                 " change lines) from slot \"%s\" up to %s", req->job_id, dbname, cs.transactions, cs.lines, slot,
                 end_lsn);
done:
    (void)in_query;
    cdc_decoder_free(dec);
    free(cs.buf);
    cs.buf = NULL;
    *cs_out = cs;
    datafile_writer_free(dw);
    filter_chain_free(chain);
    storage_write_abort(w);
    if (conn)
        PQfinish(conn);
    free(path);
    return ok;
}

/* The slot of the chain in dbname must exist and still hold its WAL, and
 * must not have moved past prev_lsn, the end of the newest layer found (the
 * previous one, prev_dir): a slot further on means the chain has a newer
 * layer stored where this backup did not look (an incremental_location not
 * given), and a layer on top of prev_dir would miss its changes. */
static bool check_slot(PGconn *conn, const chain *c, const char *slot, const char *prev_lsn, pgbr_error *err)
{
    const char *params[2] = { slot, prev_lsn };
    PGresult *res = pgclient_query_params(
        conn,
        "SELECT coalesce(wal_status, ''), coalesce(confirmed_flush_lsn > $2::pg_lsn, false), "
        "confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
        2, params, err);
    if (!res)
        return false;
    const char *why = NULL;
    bool ahead = false;
    char at[CDC_LSN_TEXT_SIZE] = "";
    if (PQntuples(res) == 0)
        why = "does not exist";
    else if (strcmp(PQgetvalue(res, 0, 0), "lost") == 0)
        why = "was invalidated: the server removed WAL it still needed (max_slot_wal_keep_size)";
    else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        ahead = true;
        snprintf(at, sizeof at, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    if (why) {
        pgbr_error_set(err, "55000", "the change stream of backup chain \"%s\" is broken: replication slot \"%s\" %s",
                       c->full, slot, why);
        pgbr_error_hint(err, "Take a new full backup (BACKUP ... INTO '<collection>'); it starts a new chain.");
        return false;
    }
    if (ahead) {
        pgbr_error_set(err, "55000", "backup chain \"%s\" has a layer newer than \"%s\" that this backup does not see",
                       c->full, c->prev_dir);
        pgbr_error_detail(err, "Replication slot \"%s\" is at %s, past that layer's end %s.", slot, at, prev_lsn);
        pgbr_error_hint(err, "Give the incremental_location the chain's newer layers were written to (WITH "
                             "incremental_location = '...').");
        return false;
    }
    return true;
}

/* The tables the stream did not carry before this layer: every table of
 * the database outside the publication (no replica identity, or new). */
static bool tables_to_copy(PGconn *conn, const char *publication, backup_relation **out, size_t *n, pgbr_error *err)
{
    const char *params[1] = { publication };
    PGresult *res = pgclient_query_params(
        conn,
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND c.relpersistence <> 't' "
        "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') AND n.nspname !~ '^pg_(toast|temp)' "
        "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
        "                  AND d.objid = c.oid AND d.deptype = 'e') "
        "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p "
        "                  ON p.oid = pr.prpubid WHERE p.pubname = $1 AND pr.prrelid = c.oid) "
        "ORDER BY 1, 2",
        1, params, err);
    if (!res)
        return false;
    *n = (size_t)PQntuples(res);
    *out = calloc(*n ? *n : 1, sizeof **out);
    bool ok = *out != NULL;
    for (size_t i = 0; ok && i < *n; i++) {
        (*out)[i].schema = strdup(PQgetvalue(res, (int)i, 0));
        (*out)[i].name = strdup(PQgetvalue(res, (int)i, 1));
        ok = (*out)[i].schema && (*out)[i].name;
    }
    PQclear(res);
    return ok || oom(err);
}

/* Tables of the publication that lost their replica identity since (a
 * dropped primary key, REPLICA IDENTITY NOTHING) leave it: PostgreSQL
 * refuses UPDATE and DELETE on a published table without one, and pgbr
 * must not make application writes fail. They are then copied whole, like
 * every keyless table. */
static bool leave_keyless(PGconn *conn, const char *publication, pgbr_error *err)
{
    const char *params[1] = { publication };
    PGresult *res = pgclient_query_params(
        conn,
        "SELECT pg_catalog.string_agg(pg_catalog.format('%I.%I', n.nspname, c.relname), ', ') "
        "FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid "
        "JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE p.pubname = $1 AND (c.relreplident = 'n' "
        "  OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
        "                                           WHERE i.indrelid = c.oid AND i.indisprimary)) "
        "  OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
        "                                           WHERE i.indrelid = c.oid AND i.indisreplident)))",
        1, params, err);
    if (!res)
        return false;
    bool ok = true;
    if (!PQgetisnull(res, 0, 0)) {
        char *id = PQescapeIdentifier(conn, publication, strlen(publication));
        char *sql = NULL;
        ok = id && asprintf(&sql, "ALTER PUBLICATION %s DROP TABLE %s", id, PQgetvalue(res, 0, 0)) >= 0;
        if (!ok)
            sql = NULL;
        ok = ok ? pgclient_exec(conn, sql, err) : oom(err);
        if (ok)
            log_info("publication \"%s\": %s left it (no replica identity any more); copied whole from now on",
                     publication, PQgetvalue(res, 0, 0));
        PQfreemem(id);
        free(sql);
    }
    PQclear(res);
    return ok;
}

static void relations_free(backup_relation *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free((char *)r[i].schema);
        free((char *)r[i].name);
    }
    free(r);
}

/* The tables the stream carries, as entries without files: their rows and
 * size are the layer's changes to them. Every table of the database is then
 * in the layer's manifest with its oid, which is how a restore maps a
 * change's relid to the table's name at the chain's end (renames). */
static bool add_streamed_tables(PGconn *conn, const char *publication, manifest_database *mdb, change_sink *cs,
                                pgbr_error *err)
{
    const char *params[1] = { publication };
    PGresult *res = pgclient_query_params(
        conn,
        "SELECT c.oid, n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
        "FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid "
        "JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "  AND a.attgenerated = '' "
        "WHERE p.pubname = $1 ORDER BY c.oid, a.attnum",
        1, params, err);
    if (!res)
        return false;
    bool ok = true;
    manifest_table *t = NULL;
    uint32_t cur = 0;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        uint32_t oid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        if (oid != cur) {
            cur = oid;
            t = NULL;
            bool copied = false;
            for (size_t k = 0; k < mdb->ntables && !copied; k++)
                copied = mdb->tables[k]->oid == oid;
            if (copied)
                continue;       /* joined the stream in this layer: copied whole */
            t = manifest_database_add_table(mdb, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), err);
            ok = t != NULL;
            if (!ok)
                break;
            t->oid = oid;
            t->kind = MANIFEST_REL_TABLE;
            if (cs->caprels) {
                rel_count *rc = rel_slot(cs, oid);
                t->rows = rc->changes;
                t->logical_bytes = rc->bytes;
            }
        }
        if (t && !PQgetisnull(res, i, 3))
            ok = manifest_table_add_column(t, PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), err);
    }
    PQclear(res);
    return ok;
}

static bool layer_database(const backup_request *req, const chain *c, const char *prefix, storage *st, size_t dbi,
                           manifest *m, backup_progress_fn progress, void *arg, backup_result *out, pgbr_error *err)
{
    const char *dbname = req->databases[dbi];
    const manifest_database *fdb = find_db(c->full_m, dbname);
    const manifest_database *pdb = find_db(c->prev_m, dbname);
    if (!fdb || !fdb->slot_name || !fdb->publication) {
        pgbr_error_set(err, "55000", "backup chain \"%s\" has no change stream for database \"%s\": its full backup was "
                                     "taken while the server's wal_level was not \"logical\"",
                       c->full, dbname);
        pgbr_error_hint(err, "Set wal_level = logical on the server, restart it, and take a new full backup.");
        return false;
    }
    PGconn *conn = pgclient_connect(req->conninfo, dbname, "pgbr backup", err);
    if (!conn)
        return false;
    backup_relation *copy = NULL;
    size_t ncopy = 0;
    char *alter = NULL;
    bool empty = true;
    char extra[512];
    char *lit = PQescapeLiteral(conn, fdb->publication, strlen(fdb->publication));
    snprintf(extra, sizeof extra,
             " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p "
             "ON p.oid = pr.prpubid WHERE p.pubname = %s AND pr.prrelid = c.oid)",
             lit ? lit : "''");
    PQfreemem(lit);
    bool ok = check_slot(conn, c, fdb->slot_name, pdb ? pdb->end_lsn : NULL, err) &&
              leave_keyless(conn, fdb->publication, err) && tables_to_copy(conn, fdb->publication, &copy, &ncopy, err) &&
              engine_stream_publication_sql(conn, "ALTER PUBLICATION", fdb->publication, NULL, 0, false, extra, &alter,
                                            &empty, err);
    /* new tables join the stream now (before the layer's end point), and
     * are copied whole in this layer */
    if (ok && !empty)
        ok = pgclient_exec(conn, alter, err);
    free(alter);
    engine_layer_db layer = { .copy = copy, .ncopy = ncopy };
    ok = ok && engine_backup_database(req, prefix, st, dbi, m, &layer, progress, arg, out, err);
    change_sink cs = { 0 };
    if (ok) {
        manifest_database *mdb = layer.mdb;
        if (pdb && pdb->end_lsn)
            cdc_lsn_parse(pdb->end_lsn, &cs.skip_upto);
        char *dbcomp = backup_path_component(dbname);
        ok = dbcomp && manifest_set_string(&mdb->slot_name, fdb->slot_name, err) &&
             manifest_set_string(&mdb->publication, fdb->publication, err) &&
             capture_changes(req, prefix, st, dbname, dbcomp, fdb->slot_name, fdb->publication, mdb->end_lsn, &cs,
                             mdb, err) &&
             add_streamed_tables(conn, fdb->publication, mdb, &cs, err);
        if (!dbcomp)
            oom(err);
        free(dbcomp);
        if (ok) {
            out->rows += cs.changes;
            for (size_t k = 0; k < mdb->nchanges; k++) {
                out->bytes += mdb->changes[k]->raw_bytes;
                out->stored_bytes += mdb->changes[k]->stored_bytes;
                out->files++;
            }
        }
    }
    free(cs.rels);
    PQfinish(conn);
    relations_free(copy, ncopy);
    return ok;
}

bool engine_capture_catchup(const backup_request *req, const char *prefix, storage *st, const char *dbname,
                            const char *dbcomp, const char *slot, const char *publication, const char *end_lsn,
                            const engine_catchup_rel *only, size_t nonly, manifest_database *mdb, uint64_t *changes,
                            pgbr_error *err)
{
    change_sink cs;
    memset(&cs, 0, sizeof cs);
    engine_catchup_rel *sorted = malloc((nonly ? nonly : 1) * sizeof *sorted);
    if (!sorted)
        return oom(err);
    memcpy(sorted, only, nonly * sizeof *sorted);
    qsort(sorted, nonly, sizeof *sorted, cmp_relid);
    cs.only = sorted;
    cs.nonly = nonly;
    bool ok = capture_changes(req, prefix, st, dbname, dbcomp, slot, publication, end_lsn, &cs, mdb, err);
    *changes = cs.changes;
    free(cs.rels);
    free(cs.tline);
    free(sorted);
    return ok;
}

/* Test hook (PGBR_TEST_ADVANCE_DIR): with the layer durable and its slots
 * not advanced yet, write <dir>/advance.wait and wait up to a minute for
 * <dir>/advance.go, so a test can kill pgbr right there. */
static void test_hold_before_advance(void)
{
    const char *dir = getenv("PGBR_TEST_ADVANCE_DIR");
    char wait[4096], go[4096];
    if (!dir)
        return;
    snprintf(wait, sizeof wait, "%s/advance.wait", dir);
    snprintf(go, sizeof go, "%s/advance.go", dir);
    FILE *f = fopen(wait, "w");
    if (f)
        fclose(f);
    for (int i = 0; i < 600 && access(go, F_OK) != 0; i++) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* After the layer is durable: release the WAL up to its end. */
void engine_advance_slots(const backup_request *req, const manifest *m)
{
    for (size_t i = 0; i < m->ndatabases; i++) {
        const manifest_database *d = m->databases[i];
        if (!d->slot_name || !d->end_lsn)
            continue;
        pgbr_error e = PGBR_ERROR_INIT;
        PGconn *conn = pgclient_connect(req->conninfo, d->name, "pgbr backup", &e);
        const char *params[2] = { d->slot_name, d->end_lsn };
        PGresult *res = conn ? PQexecParams(conn, "SELECT pg_catalog.pg_replication_slot_advance($1, $2::pg_lsn)", 2,
                                            NULL, params, NULL, NULL, 0)
                             : NULL;
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            log_warning("backup job %" PRId64 ": could not advance replication slot \"%s\" to %s (the next incremental "
                        "reads those changes again and skips them): %s",
                        req->job_id, d->slot_name, d->end_lsn, conn ? PQerrorMessage(conn) : e.message);
        PQclear(res);
        if (conn)
            PQfinish(conn);
        pgbr_error_clear(&e);
    }
}

/* The layer's name, "YYYYMMDD/HHMMSS.ss": the last 18 characters of its directory. */
static const char *layer_name(const char *dir)
{
    size_t len = strlen(dir);
    return len >= 18 ? dir + len - 18 : dir;
}

/* The counts of a finished backup, from its manifest. */
void engine_result_from_manifest(const manifest *m, backup_result *out)
{
    for (size_t i = 0; i < m->ndatabases; i++) {
        const manifest_database *d = m->databases[i];
        for (size_t t = 0; t < d->ntables; t++) {
            out->rows += d->tables[t]->rows;
            out->bytes += d->tables[t]->logical_bytes;
            out->index_entries += d->tables[t]->rows * d->tables[t]->index_count;
            out->files += d->tables[t]->nfiles;
        }
        out->files += d->nchanges;
    }
}

/*
 * What an earlier run of the job left in the layer directory its checkpoint
 * names (it holds the job's lock file): a complete layer (its manifest was
 * written; the run died before it moved the slots) is the job's result, so
 * this run only moves the slots (*done, *m the layer's manifest); an
 * unfinished one is removed and the layer starts over.
 */
static void earlier_run(const backup_request *req, storage *st, storage *inc, bool *done, manifest **m)
{
    json_error_t jerr;
    json_t *cp = req->checkpoint ? json_loads(req->checkpoint, 0, &jerr) : NULL;
    const char *dir = json_string_value(json_object_get(cp, "prefix"));
    storage *places[2] = { st, inc };
    *done = false;
    *m = NULL;
    for (int i = 0; dir && i < 2 && !*done; i++) {
        char lock[LAYOUT_PATH_SIZE + 64];
        storage_info info;
        pgbr_error e = PGBR_ERROR_INIT;
        snprintf(lock, sizeof lock, "%s/" LAYOUT_LOCK_PREFIX "%" PRId64, dir, req->job_id);
        if (places[i] && storage_stat(places[i], lock, &info, &e) && info.exists) {
            *m = layout_read_manifest(places[i], dir, NULL, NULL, &e);
            if (*m) {
                *done = true;
                log_info("backup job %" PRId64 ": %s/%s was complete already; only its slots move", req->job_id,
                         storage_display_url(places[i]), dir);
            } else if (storage_delete_prefix(places[i], dir, &e)) {
                log_info("backup job %" PRId64 ": removed %s/%s, left by an earlier run", req->job_id,
                         storage_display_url(places[i]), dir);
            }
        }
        pgbr_error_clear(&e);
    }
    json_decref(cp);
}

bool backup_incremental_run(const backup_request *req, backup_progress_fn progress, void *arg, backup_result *out,
                            pgbr_error *err)
{
    memset(out, 0, sizeof(*out));
    storage *st = storage_open(req->collection_url, req->storage, err);
    if (!st)
        return false;
    storage *inc = NULL;
    if (req->incremental_location && !(inc = storage_open(req->incremental_location, req->storage, err))) {
        storage_close(st);
        return false;
    }
    chain c;
    manifest *m = NULL;
    char dir[LAYOUT_PATH_SIZE] = "";
    storage *lst = st;  /* where the layer goes */
    bool locked = false, ok = false;
    /* an earlier run of this job: a finished layer is kept, an unfinished
     * one starts over */
    bool earlier_done = false;
    earlier_run(req, st, inc, &earlier_done, &m);
    if (earlier_done) {
        engine_advance_slots(req, m);
        engine_result_from_manifest(m, out);
        manifest_free(m);
        storage_close(st);
        storage_close(inc);
        return true;
    }
    if (!open_chain(st, inc, req->incremental_of, &c, err) || !check_targets(req, &c, err))
        goto done;
    snprintf(out->subdir, sizeof out->subdir, "%s", c.full);
    /* reference 1.3: incremental_location X puts the layer in X; X equal to
     * the collection, or a chain that already has layers in that place,
     * keeps the v21.2 layout inside the full backup's directory */
    bool in_full = inc ? layout_same_location(st, inc) : c.in_full;
    if (inc && !in_full)
        lst = inc;
    if (!layout_incremental_dir(c.full, req->end_time_us,
                                inc || in_full ? LAYOUT_INCREMENTAL_LOCATION : LAYOUT_INCREMENTALS, dir, err))
        goto done;
    if (c.prev_m->end_time >= req->end_time_us ||
        (c.nlayers > 0 && strcmp(layer_name(dir), layer_name(c.prev_dir)) <= 0)) {
        pgbr_error_set(err, "22023", "the chain's newest layer ends at or after this backup's time");
        goto done;
    }
    if (!layout_lock_backup_dir(lst, dir, req->job_id, err))
        goto done;
    locked = true;
    engine_note_prefix(req, arg, dir);
    m = manifest_new(err);
    if (!m)
        goto done;
    m->backup_type = MANIFEST_BACKUP_INCREMENTAL;
    m->start_time = c.prev_m->end_time;
    m->end_time = req->end_time_us;
    m->targets.kind = c.full_m->targets.kind;
    m->encryption = MANIFEST_ENCRYPTION_NONE;
    m->revision_history = req->revision_history;
    ok = manifest_set_string(&m->pgbr_version, PGBR_VERSION, err) &&
         manifest_set_string(&m->previous, c.prev_dir, err) &&
         manifest_set_string(&m->start_lsn, c.prev_m->end_lsn, err);
    for (size_t i = 0; ok && i < c.full_m->targets.ngiven; i++)
        ok = manifest_add_given_target(m, c.full_m->targets.given[i], err);
    for (size_t i = 0; ok && i < c.full_m->targets.nresolved; i++)
        ok = manifest_add_resolved_target(m, c.full_m->targets.resolved[i].database, c.full_m->targets.resolved[i].schema,
                                          c.full_m->targets.resolved[i].table, err);
    for (size_t i = 0; ok && i < req->ndatabases; i++) {
        log_info("backup job %" PRId64 ": incremental of database \"%s\" into %s/%s", req->job_id, req->databases[i],
                 storage_display_url(lst), dir);
        ok = layer_database(req, &c, dir, lst, i, m, progress, arg, out, err);
    }
    if (!ok)
        goto done;
    ok = false;
    if (progress && !progress(arg, 0.99, "writing manifest")) {
        pgbr_error_set(err, "57014", "backup canceled");
        goto done;
    }
    size_t len = 0;
    char *json = manifest_encode(m, &len, err);
    char sum[MANIFEST_CHECKSUM_TEXT_SIZE];
    char *mpath = NULL, *spath = NULL;
    ok = json && manifest_checksum_text(json, len, sum, err) &&
         asprintf(&mpath, "%s/%s", dir, MANIFEST_FILE_NAME) >= 0 &&
         asprintf(&spath, "%s/%s", dir, MANIFEST_CHECKSUM_FILE_NAME) >= 0 &&
         storage_put(lst, spath, sum, strlen(sum), err) && storage_put(lst, mpath, json, len, err);
    free(json);
    free(mpath);
    free(spath);
    if (!ok)
        goto done;
    test_hold_before_advance();
    engine_advance_slots(req, m);
    if (progress)
        progress(arg, 1.0, "succeeded");
done:
    if (!ok && locked) {
        pgbr_error e2 = PGBR_ERROR_INIT;
        if (!storage_delete_prefix(lst, dir, &e2))
            log_warning("backup job %" PRId64 ": could not remove %s/%s: %s", req->job_id, storage_display_url(lst),
                        dir, e2.message ? e2.message : "");
        pgbr_error_clear(&e2);
    }
    manifest_free(m);
    chain_free(&c);
    storage_close(inc);
    storage_close(st);
    return ok;
}
