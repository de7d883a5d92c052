/*
 * engine.c - a full backup of one or more databases (backup.h): for each
 * database, export a snapshot, have every copy connection import it, list
 * tables and sequences under it, run pg_dump for the schema while the copy
 * threads read the data in chunks, then write the manifest, its checksum and
 * the LATEST pointer. On failure everything written under the backup's
 * directory is removed. docs/backup-engine.md describes the protocol.
 *
 * A table backup (req->tables) runs the same steps for the databases it
 * touches, with the relations narrowed to the ones it names: only they are
 * locked, copied and recorded; the schema dump stays the whole database's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine_int.h"
#include "pgbr/buf.h"
#include "pgbr/log.h"
#include "pgbr/manifest.h"

#ifndef PGBR_VERSION
#define PGBR_VERSION "0.1.0"
#endif

#define DEFAULT_WORKERS 4
#define MAX_WORKERS 64

/* The relations a backup may hold: outside the system schemas and pgbr's
 * own, not temporary, not extension members (their extension's script
 * creates them). c is pg_class, n its pg_namespace. */
#define BACKUP_RELATION_COND                                                            \
    "c.relpersistence <> 't' "                                                         \
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "               \
    "AND n.nspname !~ '^pg_(toast|temp)' "                                             \
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d "                            \
    "                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "    \
    "                  AND d.objid = c.oid AND d.deptype = 'e') "

/* The tables a backup copies: ordinary tables (partitions included) outside
 * the system schemas and pgbr's own, not temporary, not extension members
 * (their extension's script creates them), with the non-generated columns.
 * A table backup adds " AND c.oid IN (...)" before tables_order. */
static const char tables_sql[] =
    "SELECT c.oid, n.nspname, c.relname, format('%I.%I', n.nspname, c.relname), "
    "       pg_relation_size(c.oid), 0, "
    "       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND NOT i.indisprimary), "
    "       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a "
    "         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "           AND a.attgenerated = '') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND c.relpersistence <> 't' "
    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
    "  AND n.nspname !~ '^pg_toast' "
    "  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "                  AND d.objid = c.oid AND d.deptype = 'e') ";
static const char tables_order[] = " ORDER BY n.nspname, c.relname";

/* The columns the data files hold, for the manifest (same table set, and
 * the partitioned tables a table backup records). */
static const char columns_sql[] =
    "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' "
    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
    "  AND n.nspname !~ '^pg_toast' "
    "  AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
    "ORDER BY a.attrelid::bigint, a.attnum";

static const char sequences_sql[] =
    "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'S' AND c.relpersistence <> 't' "
    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
    "  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "                  AND d.objid = c.oid AND d.deptype = 'e') ";
static const char sequences_order[] = " ORDER BY n.nspname, c.relname";

/* A table backup's relations, found by name under the snapshot: the
 * VALUES list (schema, name, position) goes between the two parts. */
static const char selected_head[] = "SELECT f.o, r.oid, r.relkind FROM (VALUES ";
static const char selected_tail[] =
    ") AS f(s, t, o) LEFT JOIN ("
    "SELECT c.oid, c.relkind, n.nspname, c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND " BACKUP_RELATION_COND
    ") r ON r.nspname = f.s AND r.relname = f.t ORDER BY f.o";

char *backup_path_component(const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(name);
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '_' || *s == '-') {
            *p++ = (char)*s;
        } else {
            *p++ = '%';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 15];
        }
    }
    *p = '\0';
    return out;
}




static void db_run_free(db_run *r)
{
    engine_stream_free(&r->stream);
    json_decref(r->kept);
    PQclear(r->cols);
    for (int i = 0; i < r->nconns; i++)
        if (r->conns[i])
            PQfinish(r->conns[i]);
    free(r->conns);
    if (r->exporter)
        PQfinish(r->exporter);
    for (size_t i = 0; i < r->ntables; i++) {
        free(r->tables[i].schema);
        free(r->tables[i].name);
        free(r->tables[i].select_sql);
    }
    free(r->tables);
    for (size_t i = 0; i < r->nchunks; i++)
        free(r->chunks[i].path);
    free(r->chunks);
    free(r->order);
    free(r->sel_oid);
    free(r->sel_kind);
    free(r->oids_table);
    free(r->oids_sequence);
    free(r->oids_matview);
    free(r->snapshot);
    free(r->lsn);
    free(r->server_version);
    free(r->dbcomp);
}


/* Export the snapshot, then have every copy connection import it. */
static bool import_snapshot(db_run *r, pgbr_error *err);

static bool take_snapshot(db_run *r, pgbr_error *err)
{
    r->exporter = pgclient_connect(r->req->conninfo, r->dbname, "pgbr backup", err);
    if (!r->exporter)
        return false;
    r->server_num = PQserverVersion(r->exporter);
    const char *sv = PQparameterStatus(r->exporter, "server_version");
    r->server_version = strdup(sv ? sv : "");
    if (r->server_num < 120000)
        return pgbr_error_set(err, "0A000", "pgbr backups need PostgreSQL 12 or later (server is %s)",
                              r->server_version ? r->server_version : "?");
    if (r->layer || (r->resume && engine_db_slot(r))) {
        /* an incremental layer, or a resumed database: a temporary slot exports the snapshot the
         * layer's whole tables and schema are read under; its consistent
         * point is where the layer's change stream ends */
        char tmp[64];
        snprintf(tmp, sizeof tmp, "pgbr_tmp_%" PRId64 "_%zu", r->req->job_id, r->dbi);
        if (!engine_stream_temporary(r->req->conninfo, r->dbname, tmp, &r->stream, err))
            return false;
        r->have_stream = true;
    } else if (r->req->change_stream) {
        /* a chain's full backup: the slot exports the snapshot, so the
         * rows and the change stream start at the same point */
        char slot[64], pub[64];
        snprintf(slot, sizeof slot, "pgbr_%" PRId64 "_%zu", r->req->job_id, r->dbi);
        snprintf(pub, sizeof pub, "pgbr_%" PRId64, r->req->job_id);
        /* an earlier run of the job that got no further may have left them */
        if (r->req->checkpoint)
            engine_stream_drop(r->req->conninfo, r->dbname, slot, pub);
        bool ok = engine_stream_create(r->exporter, r->req->conninfo, r->dbname, slot, pub, r->filter, r->nfilter,
                                       r->filtered, &r->stream, &r->have_stream, err);
        if (r->stream.created_slot || r->stream.created_pub) {
            /* from here a failure must drop them (backup_run does) */
            if (r->created && !engine_stream_list_add(r->created, r->dbname, r->stream.created_slot ? slot : NULL,
                                               r->stream.created_pub ? pub : NULL))
                ok = pgbr_error_set(err, "53200", "out of memory");
        }
        if (!ok)
            return false;
    }
    if (r->have_stream) {
        r->snapshot = strdup(r->stream.snapshot);
        r->lsn = strdup(r->stream.lsn);
        if (!r->snapshot || !r->lsn)
            return pgbr_error_set(err, "53200", "out of memory");
        char *lit = PQescapeLiteral(r->exporter, r->snapshot, strlen(r->snapshot));
        char *sql = NULL;
        bool ok = lit && asprintf(&sql, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT %s",
                                  lit) >= 0;
        PQfreemem(lit);
        if (!ok) {
            free(sql);
            return pgbr_error_set(err, "53200", "out of memory");
        }
        ok = pgclient_exec(r->exporter, sql, err);
        free(sql);
        if (!ok)
            return false;
        return import_snapshot(r, err);
    }
    if (!pgclient_exec(r->exporter, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", err))
        return false;
    PGresult *res = pgclient_query(r->exporter,
                                   "SELECT pg_export_snapshot(), CASE WHEN pg_is_in_recovery() "
                                   "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END",
                                   err);
    if (!res)
        return false;
    r->snapshot = strdup(PQgetvalue(res, 0, 0));
    r->lsn = strdup(PQgetisnull(res, 0, 1) ? "0/0" : PQgetvalue(res, 0, 1));
    PQclear(res);
    if (!r->snapshot || !r->lsn)
        return pgbr_error_set(err, "53200", "out of memory");
    return import_snapshot(r, err);
}

/* Every copy connection imports the snapshot (the exporter only waits). */
static bool import_snapshot(db_run *r, pgbr_error *err)
{
    char *lit = PQescapeLiteral(r->exporter, r->snapshot, strlen(r->snapshot));
    char *set_sql = NULL;
    if (!lit || asprintf(&set_sql, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                                   "SET TRANSACTION SNAPSHOT %s", lit) < 0) {
        PQfreemem(lit);
        return pgbr_error_set(err, "53200", "out of memory");
    }
    PQfreemem(lit);
    bool ok = true;
    for (int i = 0; ok && i < r->nconns; i++) {
        r->conns[i] = pgclient_connect(r->req->conninfo, r->dbname, "pgbr backup", err);
        ok = r->conns[i] && pgclient_exec(r->conns[i], set_sql, err);
    }
    free(set_sql);
    return ok;
}

/* head, then " AND c.oid IN (<oids>)" when oids is set, then tail
 * (malloc'd; NULL when out of memory). */
static char *filtered_sql(const char *head, const char *oids, const char *tail)
{
    char *sql = NULL;
    if (asprintf(&sql, "%s%s%s%s%s", head, oids ? " AND c.oid IN (" : "", oids ? oids : "",
                 oids ? ")" : "", tail) < 0)
        return NULL;
    return sql;
}

/* "0, <oid>, ..." of the selected relations of one relkind (0 keeps an
 * empty list valid SQL). */
static char *oid_list(const db_run *r, char kind)
{
    pgbr_buf b = PGBR_BUF_INIT;
    bool ok = pgbr_buf_append(&b, "0", 1, NULL);
    for (size_t i = 0; ok && i < r->nfilter; i++) {
        char num[24];
        if (r->sel_kind[i] != kind)
            continue;
        int n = snprintf(num, sizeof num, ", %" PRIu32, r->sel_oid[i]);
        ok = pgbr_buf_append(&b, num, (size_t)n, NULL);
    }
    if (!ok || !pgbr_buf_append(&b, "", 1, NULL)) {
        pgbr_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* A table backup: find its relations by name under the snapshot. One that
 * is gone (dropped or renamed since the statement resolved its targets)
 * fails the backup. */
static bool select_relations(db_run *r, pgbr_error *err)
{
    pgbr_buf q = PGBR_BUF_INIT;
    bool ok = true;
    r->sel_oid = calloc(r->nfilter ? r->nfilter : 1, sizeof *r->sel_oid);
    r->sel_kind = calloc(r->nfilter ? r->nfilter : 1, 1);
    if (!r->sel_oid || !r->sel_kind)
        return pgbr_error_set(err, "53200", "out of memory");
    if (r->nfilter > 0) {
        ok = pgbr_buf_append(&q, selected_head, strlen(selected_head), err);
        for (size_t i = 0; ok && i < r->nfilter; i++) {
            const backup_relation *f = &r->filter[i];
            char *s = PQescapeLiteral(r->exporter, f->schema, strlen(f->schema));
            char *t = PQescapeLiteral(r->exporter, f->name, strlen(f->name));
            char *row = NULL;
            if (!s || !t || asprintf(&row, "%s(%s, %s, %zu)", i ? ", " : "", s, t, i) < 0) {
                row = NULL;
                ok = pgbr_error_set(err, "53200", "out of memory");
            } else {
                ok = pgbr_buf_append(&q, row, strlen(row), err);
            }
            PQfreemem(s);
            PQfreemem(t);
            free(row);
        }
        ok = ok && pgbr_buf_append(&q, selected_tail, sizeof selected_tail, err);
        PGresult *res = ok ? pgclient_query(r->exporter, (const char *)q.data, err) : NULL;
        pgbr_buf_free(&q);
        if (!res)
            return false;
        for (int i = 0; ok && i < PQntuples(res); i++) {
            size_t k = (size_t)strtoull(PQgetvalue(res, i, 0), NULL, 10);
            if (k >= r->nfilter)
                continue;
            if (PQgetisnull(res, i, 1)) {
                pgbr_error_set(err, "42P01", "table \"%s.%s.%s\" does not exist", r->dbname,
                               r->filter[k].schema, r->filter[k].name);
                pgbr_error_detail(err, "It was dropped or renamed after the backup resolved its targets.");
                ok = false;
                break;
            }
            r->sel_oid[k] = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
            r->sel_kind[k] = PQgetvalue(res, i, 2)[0];
        }
        PQclear(res);
        if (!ok)
            return false;
    }
    r->oids_table = oid_list(r, 'r');
    r->oids_sequence = oid_list(r, 'S');
    r->oids_matview = oid_list(r, 'm');
    if (!r->oids_table || !r->oids_sequence || !r->oids_matview)
        return pgbr_error_set(err, "53200", "out of memory");
    return true;
}

static bool list_tables(db_run *r, pgbr_error *err)
{
    PGresult *res;
    /* large objects belong to no table: only a whole-database backup
     * would have to hold them */
    bool has_lo = false;
    if (r->filtered) {
        if (!select_relations(r, err))
            return false;
    } else {
        res = pgclient_query(r->exporter, "SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)", err);
        if (!res)
            return false;
        has_lo = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
    }
    if (has_lo) {
        pgbr_error_set(err, "0A000", "large objects are not supported by pgbr backups yet");
        pgbr_error_detail(err, "database \"%s\" has large objects (pg_largeobject_metadata)",
                          r->dbname);
        return false;
    }
    char *sql = filtered_sql(tables_sql, r->oids_table, tables_order);
    if (!sql)
        return pgbr_error_set(err, "53200", "out of memory");
    res = pgclient_query(r->exporter, sql, err);
    free(sql);
    if (!res)
        return false;
    int n = PQntuples(res);
    r->tables = calloc(n ? (size_t)n : 1, sizeof(engine_table));
    if (!r->tables) {
        PQclear(res);
        return pgbr_error_set(err, "53200", "out of memory");
    }
    r->ntables = (size_t)n;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        engine_table *t = &r->tables[i];
        t->oid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        t->schema = strdup(PQgetvalue(res, i, 1));
        t->name = strdup(PQgetvalue(res, i, 2));
        t->size = strtoull(PQgetvalue(res, i, 4), NULL, 10);
        t->secondary_indexes = (uint32_t)strtoul(PQgetvalue(res, i, 6), NULL, 10);
        const char *cols = PQgetisnull(res, i, 7) ? "" : PQgetvalue(res, i, 7);
        ok = t->schema && t->name &&
             asprintf(&t->select_sql, "SELECT %s FROM ONLY %s", cols, PQgetvalue(res, i, 3)) >= 0;
        if (!ok)
            t->select_sql = NULL;
    }
    PQclear(res);
    if (!ok)
        return pgbr_error_set(err, "53200", "out of memory");
    if (r->ntables == 0)
        return true;
    /* narrow the window for TRUNCATE / DROP (not MVCC-safe) as pg_dump does */
    pgbr_buf lock = PGBR_BUF_INIT;
    ok = pgbr_buf_append(&lock, "LOCK TABLE ", 11, err);
    for (size_t i = 0; ok && i < r->ntables; i++) {
        const char *q = strstr(r->tables[i].select_sql, " FROM ONLY ") + 11;
        ok = (i == 0 || pgbr_buf_append(&lock, ", ", 2, err)) &&
             pgbr_buf_append(&lock, q, strlen(q), err);
    }
    ok = ok && pgbr_buf_append(&lock, " IN ACCESS SHARE MODE", 22, err) &&
         pgclient_exec(r->exporter, (const char *)lock.data, err);
    pgbr_buf_free(&lock);
    return ok;
}

/* Split the tables into chunks and name their files. */
static bool plan_chunks(db_run *r, pgbr_error *err)
{
    uint64_t threshold = r->req->chunk_threshold_bytes ? r->req->chunk_threshold_bytes
                                                       : BACKUP_CHUNK_THRESHOLD_DEFAULT;
    uint64_t chunk_bytes = r->req->chunk_bytes ? r->req->chunk_bytes : threshold;
    const uint64_t block = 8192;
    uint64_t chunk_blocks = chunk_bytes / block ? chunk_bytes / block : 1;
    size_t total = 0;
    for (size_t i = 0; i < r->ntables; i++) {
        uint64_t nb = r->tables[i].size / block;
        /* TID range scans exist from PostgreSQL 14; before, one chunk */
        if (r->server_num >= 140000 && r->tables[i].size > threshold && nb > chunk_blocks)
            total += (size_t)((nb + chunk_blocks - 1) / chunk_blocks);
        else
            total += 1;
    }
    r->chunks = calloc(total ? total : 1, sizeof(engine_chunk));
    r->order = calloc(total ? total : 1, sizeof(size_t));
    if (!r->chunks || !r->order)
        return pgbr_error_set(err, "53200", "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < r->ntables; i++) {
        const engine_table *t = &r->tables[i];
        uint64_t nb = t->size / block;
        uint64_t n = 1;
        if (r->server_num >= 140000 && t->size > threshold && nb > chunk_blocks)
            n = (nb + chunk_blocks - 1) / chunk_blocks;
        for (uint64_t j = 0; j < n; j++) {
            engine_chunk *c = &r->chunks[k];
            c->table = i;
            c->index = (uint32_t)j;
            c->first_block = n == 1 ? -1 : (int64_t)(j * chunk_blocks);
            /* the last range is open-ended: rows the snapshot sees may sit
             * in blocks added after pg_relation_size was read */
            c->end_block = (n == 1 || j == n - 1) ? -1 : (int64_t)((j + 1) * chunk_blocks);
            c->estimate = n == 1 ? t->size : t->size / n;
            /* a resumed run's files get names of their own: a file is
             * never written twice (object lock) */
            if ((r->req->checkpoint ? asprintf(&c->path, "%s/data/%s/%" PRIu32 "/%" PRIu64 "-%" PRId64 ".pgbr",
                                               r->prefix, r->dbcomp, t->oid, j, r->req->end_time_us)
                                    : asprintf(&c->path, "%s/data/%s/%" PRIu32 "/%" PRIu64 ".pgbr", r->prefix,
                                               r->dbcomp, t->oid, j)) < 0) {
                c->path = NULL;
                return pgbr_error_set(err, "53200", "out of memory");
            }
            r->order[k] = k;
            k++;
            r->nchunks = k;
        }
    }
    return true;
}

/*
 * Many small tables, one file each, cost a storage object (a PUT on S3, an
 * fsync locally) apiece: tables of at most req->bundle_table_max bytes that
 * are one chunk are written one after the other into bundle files of about
 * req->bundle_bytes ("data/<db>/bundle-<n>.pgbr"), each table's data file
 * at its own offset (manifest "offset"), as pgBackRest bundles small files.
 * r->order then lists only the files to write (a bundle by its first
 * member), and r->nwork their number.
 */
static bool plan_bundles(db_run *r, pgbr_error *err)
{
    const uint64_t table_max = r->req->bundle_table_max;
    const uint64_t bundle_bytes = r->req->bundle_bytes ? r->req->bundle_bytes : BACKUP_BUNDLE_BYTES_DEFAULT;
    engine_chunk *head = NULL, *tail = NULL;
    uint64_t bytes = 0;
    size_t nbundles = 0, k = 0;
    for (size_t i = 0; i < r->nchunks; i++) {
        engine_chunk *c = &r->chunks[i];
        bool single = c->first_block < 0 && (i + 1 == r->nchunks || r->chunks[i + 1].table != c->table);
        if (!single || table_max == 0 || r->tables[c->table].size > table_max) {
            r->order[k++] = i;
            continue;
        }
        if (head == NULL || bytes + c->estimate > bundle_bytes) {
            head = tail = c;
            bytes = 0;
            r->order[k++] = i;
            nbundles++;
        } else {
            tail->next_in_file = c;
            tail = c;
        }
        bytes += c->estimate;
        char *path = NULL;
        /* a resumed run keeps bundles of the last run: its own get other
         * names (a file is never written twice) */
        int n = r->req->checkpoint
                    ? asprintf(&path, "%s/data/%s/bundle-%zu-%" PRId64 ".pgbr", r->prefix, r->dbcomp, nbundles - 1,
                               r->req->end_time_us)
                    : asprintf(&path, "%s/data/%s/bundle-%zu.pgbr", r->prefix, r->dbcomp, nbundles - 1);
        if (n < 0)
            return pgbr_error_set(err, "53200", "out of memory");
        free(c->path);
        c->path = path;
    }
    /* a bundle of one table is that table's own file again */
    for (size_t j = 0; j < k; j++) {
        engine_chunk *c = &r->chunks[r->order[j]];
        if (c->next_in_file == NULL && strstr(c->path, "/bundle-") != NULL) {
            const engine_table *t = &r->tables[c->table];
            char *path = NULL;
            if ((r->req->checkpoint ? asprintf(&path, "%s/data/%s/%" PRIu32 "/0-%" PRId64 ".pgbr", r->prefix,
                                               r->dbcomp, t->oid, r->req->end_time_us)
                                    : asprintf(&path, "%s/data/%s/%" PRIu32 "/0.pgbr", r->prefix, r->dbcomp, t->oid)) < 0)
                return pgbr_error_set(err, "53200", "out of memory");
            free(c->path);
            c->path = path;
        }
    }
    r->nwork = k;
    return true;
}

/* The estimate of a file: its chunk's, or all of a bundle's members'. */
static uint64_t file_estimate(const engine_chunk *c)
{
    uint64_t e = 0;
    for (; c; c = c->next_in_file)
        e += c->estimate ? c->estimate : 1;
    return e;
}

static int by_estimate_desc(const void *a, const void *b, void *arg)
{
    const uint64_t *est = arg;
    uint64_t ea = est[*(const size_t *)a];
    uint64_t eb = est[*(const size_t *)b];
    if (ea != eb)
        return ea < eb ? 1 : -1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/* Sequence values: not transactional, so what they are now (after the
 * snapshot), which is never behind what the data uses. */
static bool add_sequences(db_run *r, manifest_database *mdb, pgbr_error *err)
{
    /* a layer's filter names the tables it copies whole; its sequences are all */
    char *list_sql = filtered_sql(sequences_sql, r->layer ? NULL : r->oids_sequence, sequences_order);
    if (!list_sql)
        return pgbr_error_set(err, "53200", "out of memory");
    PGresult *res = pgclient_query(r->exporter, list_sql, err);
    free(list_sql);
    if (!res)
        return false;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        char *sql = NULL;
        if (asprintf(&sql, "SELECT last_value, is_called FROM %s", PQgetvalue(res, i, 2)) < 0) {
            ok = pgbr_error_set(err, "53200", "out of memory");
            break;
        }
        PGresult *v = pgclient_query(r->exporter, sql, err);
        free(sql);
        if (!v) {
            ok = false;
            break;
        }
        manifest_sequence *s =
            manifest_database_add_sequence(mdb, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), err);
        if (s) {
            s->last_value = strtoll(PQgetvalue(v, 0, 0), NULL, 10);
            s->is_called = strcmp(PQgetvalue(v, 0, 1), "t") == 0;
        }
        ok = s != NULL;
        PQclear(v);
    }
    PQclear(res);
    return ok;
}

/* What CREATE DATABASE needs to recreate the database as it was (owner,
 * encoding, locale), and the populated materialized views, which the
 * restore refreshes once the data is in (pg_dump --schema-only has no
 * REFRESH for them). */
static bool add_database_properties(db_run *r, manifest_database *mdb, pgbr_error *err)
{
    const char *icu = r->server_num >= 170000   ? "CASE WHEN datlocprovider = 'i' THEN datlocale END"
                      : r->server_num >= 150000 ? "CASE WHEN datlocprovider = 'i' THEN daticulocale END"
                                                : "NULL";
    char *sql = NULL;
    if (asprintf(&sql,
                 "SELECT pg_catalog.pg_get_userbyid(datdba), pg_catalog.pg_encoding_to_char(encoding), "
                 "datcollate, datctype, %s FROM pg_catalog.pg_database WHERE datname = current_database()",
                 icu) < 0)
        return pgbr_error_set(err, "53200", "out of memory");
    PGresult *res = pgclient_query(r->exporter, sql, err);
    free(sql);
    if (!res)
        return false;
    bool ok = PQntuples(res) == 1 && manifest_set_string(&mdb->owner, PQgetvalue(res, 0, 0), err) &&
              manifest_set_string(&mdb->encoding, PQgetvalue(res, 0, 1), err) &&
              manifest_set_string(&mdb->lc_collate, PQgetvalue(res, 0, 2), err) &&
              manifest_set_string(&mdb->lc_ctype, PQgetvalue(res, 0, 3), err) &&
              (PQgetisnull(res, 0, 4) || manifest_set_string(&mdb->icu_locale, PQgetvalue(res, 0, 4), err));
    PQclear(res);
    if (!ok)
        return pgbr_error_is_set(err) ? false : pgbr_error_set(err, "XX000", "could not read the properties of database \"%s\"", r->dbname);
    sql = filtered_sql("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c "
                       "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.relkind = 'm' AND c.relispopulated "
                       "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
                       "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass "
                       "                  AND d.objid = c.oid AND d.deptype = 'e')",
                       r->layer ? NULL : r->oids_matview, " ORDER BY c.oid");
    if (!sql)
        return pgbr_error_set(err, "53200", "out of memory");
    res = pgclient_query(r->exporter, sql, err);
    free(sql);
    if (!res)
        return false;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        manifest_table *mt = manifest_database_add_table(mdb, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), err);
        if (mt) {
            mt->oid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
            mt->kind = MANIFEST_REL_MATVIEW;
        }
        ok = mt != NULL;
    }
    PQclear(res);
    return ok;
}

/* The columns of relation oid (cols: columns_sql's rows, ordered by oid). */
int engine_first_column(PGresult *cols, uint32_t oid)
{
    int lo = 0, hi = PQntuples(cols);
    /* the columns are ordered by oid */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if ((uint32_t)strtoul(PQgetvalue(cols, mid, 0), NULL, 10) < oid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool add_columns(manifest_table *mt, PGresult *cols, uint32_t oid, pgbr_error *err)
{
    int ncols = PQntuples(cols);
    bool ok = true;
    for (int ci = engine_first_column(cols, oid); ok && ci < ncols; ci++) {
        if ((uint32_t)strtoul(PQgetvalue(cols, ci, 0), NULL, 10) != oid)
            break;
        ok = manifest_table_add_column(mt, PQgetvalue(cols, ci, 1), PQgetvalue(cols, ci, 2), err);
    }
    return ok;
}

/* A table backup's relations that hold no data of their own: views,
 * partitioned tables (their partitions hold the rows) and foreign tables,
 * recorded so that a restore knows they belong to the backup. */
static bool add_dataless_relations(db_run *r, manifest_database *mdb, PGresult *cols, pgbr_error *err)
{
    bool ok = true;
    for (size_t i = 0; ok && i < r->nfilter; i++) {
        manifest_rel_kind kind;
        switch (r->sel_kind[i]) {
        case 'p':
            kind = MANIFEST_REL_PARTITIONED;
            break;
        case 'v':
            kind = MANIFEST_REL_VIEW;
            break;
        case 'f':
            kind = MANIFEST_REL_FOREIGN;
            break;
        default:
            continue;
        }
        manifest_table *mt = manifest_database_add_table(mdb, r->filter[i].schema, r->filter[i].name, err);
        ok = mt != NULL;
        if (ok) {
            mt->oid = r->sel_oid[i];
            mt->kind = kind;
            if (kind == MANIFEST_REL_PARTITIONED)
                ok = add_columns(mt, cols, mt->oid, err);
        }
    }
    return ok;
}

/* Tables, columns and files of one database into the manifest. */
static bool add_tables(db_run *r, manifest_database *mdb, backup_result *out, pgbr_error *err)
{
    PGresult *cols = r->cols;
    bool ok = true;
    size_t k = 0;
    for (size_t i = 0; ok && i < r->ntables; i++) {
        const engine_table *t = &r->tables[i];
        manifest_table *mt = manifest_database_add_table(mdb, t->schema, t->name, err);
        if (!mt) {
            ok = false;
            break;
        }
        mt->oid = t->oid;
        mt->kind = MANIFEST_REL_TABLE;
        mt->index_count = t->secondary_indexes;
        ok = add_columns(mt, cols, t->oid, err);
        for (; ok && k < r->nchunks && r->chunks[k].table == i; k++) {
            const engine_chunk *c = &r->chunks[k];
            manifest_file *f = manifest_table_add_file(mt, c->path + strlen(r->prefix) + 1, err);
            if (!f) {
                ok = false;
                break;
            }
            f->stored_bytes = c->stored_bytes;
            f->offset = c->offset;
            memcpy(f->sha256, c->sha256, sizeof(f->sha256));
            f->rows = c->rows;
            f->raw_bytes = c->raw_bytes;
            mt->rows += c->rows;
            mt->logical_bytes += c->raw_bytes;
            out->files++;
            out->stored_bytes += c->stored_bytes;
        }
        out->rows += mt->rows;
        out->bytes += mt->logical_bytes;
        out->index_entries += mt->rows * t->secondary_indexes;
    }
    ok = ok && add_dataless_relations(r, mdb, cols, err);
    return ok;
}


/* targets.resolved: the database, or a table backup's relations. */
static bool add_resolved_targets(const db_run *r, manifest *m, pgbr_error *err)
{
    if (r->layer)
        return true;    /* incremental.c: the chain's targets */
    if (!r->filtered)
        return manifest_add_resolved_target(m, r->dbname, NULL, NULL, err);
    for (size_t i = 0; i < r->nfilter; i++)
        if (!manifest_add_resolved_target(m, r->dbname, r->filter[i].schema, r->filter[i].name, err))
            return false;
    return true;
}

static bool backup_database(const backup_request *req, const char *prefix, storage *st,
                            size_t dbi, manifest *m, stream_list *created, engine_layer_db *layer, engine_cp *cpt,
                            const json_t *resume, backup_progress_fn progress, void *arg, backup_result *out,
                            pgbr_error *err)
{
    db_run r = { .req = req, .dbname = req->databases[dbi], .prefix = prefix, .st = st, .dbi = dbi,
                 .created = created, .layer = layer, .cp = cpt, .resume = resume };
    if (layer) {
        r.filtered = true;
        r.filter = layer->copy;
        r.nfilter = layer->ncopy;
    } else if (req->tables) {
        r.filtered = true;
        r.filter = req->tables[dbi];
        r.nfilter = req->ntables[dbi];
    }
    pthread_t threads[MAX_WORKERS];
    int started = 0;
    bool ok = false;
    engine_copy cp = { .st = st, .zstd_level = req->zstd_level };
    bool mutex_ready = false;

    r.nconns = req->workers <= 0 ? DEFAULT_WORKERS
                                 : (req->workers > MAX_WORKERS ? MAX_WORKERS : req->workers);
    r.conns = calloc((size_t)r.nconns, sizeof(PGconn *));
    r.dbcomp = backup_path_component(r.dbname);
    if (!r.conns || !r.dbcomp) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    /* a resumed database's chain slot: dropped if this run fails for good */
    if (resume && engine_db_slot(&r) && created && !engine_stream_list_add(created, r.dbname, engine_db_slot(&r), engine_db_publication(&r))) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    if (!take_snapshot(&r, err) || !list_tables(&r, err))
        goto done;
    if (!(r.cols = pgclient_query(r.exporter, columns_sql, err)))
        goto done;
    if (resume && engine_db_slot(&r) && !engine_resume_keep(&r, err))
        goto done;
    if (!plan_chunks(&r, err))
        goto done;
    if (req->after_snapshot)
        req->after_snapshot(req->after_snapshot_arg, r.dbname, r.snapshot);

    /* largest chunks first, so the last ones to finish are small */
    if (!plan_bundles(&r, err))
        goto done;
    {
        uint64_t *est = calloc(r.nchunks ? r.nchunks : 1, sizeof *est);
        if (!est) {
            pgbr_error_set(err, "53200", "out of memory");
            goto done;
        }
        for (size_t j = 0; j < r.nwork; j++)
            est[r.order[j]] = file_estimate(&r.chunks[r.order[j]]);
        qsort_r(r.order, r.nwork, sizeof(size_t), by_estimate_desc, est);
        free(est);
    }
    cp.tables = r.tables;
    cp.chunks = r.chunks;
    cp.nchunks = r.nchunks;
    cp.order = r.order;
    cp.norder = r.nwork;
    cp.conns = r.conns;
    cp.nconns = r.nconns;
    cp.progress = progress;
    cp.progress_arg = arg;
    cp.fraction_base = (double)dbi / (double)req->ndatabases;
    cp.fraction_weight = 1.0 / (double)req->ndatabases;
    for (size_t i = 0; i < r.nchunks; i++)
        cp.total_estimate += r.chunks[i].estimate;
    if (r.cp) {
        r.cp->cur = &r;
        r.cp->files_done = 0;
        cp.file_done = engine_cp_file_done;
        cp.file_done_arg = r.cp;
    }
    pthread_mutex_init(&cp.mutex, NULL);
    mutex_ready = true;
    if (!engine_copy_report(&cp, 0, "copying data")) {
        pgbr_error_set(err, "57014", "backup canceled");
        goto done;
    }
    if (!engine_copy_start(&cp, threads, err))
        goto done;
    started = r.nconns;

    /* the schema, while the copy threads read the data */
    char *pg_dump = pgclient_find_tool("pg_dump", req->pg_dump_path, r.server_num);
    char *schema_rel = NULL, *schema_path = NULL;
    uint64_t schema_bytes = 0;
    char schema_sha[65] = "";
    bool dumped = pg_dump && asprintf(&schema_rel, "schema/%s.dump", r.dbcomp) >= 0 &&
                  asprintf(&schema_path, "%s/%s", prefix, schema_rel) >= 0;
    if (!dumped)
        pgbr_error_set(err, "53200", "out of memory");
    else
        dumped = engine_dump_schema(pg_dump, req->conninfo, r.dbname, r.snapshot, st,
                                    schema_path, &schema_bytes, schema_sha, err);
    free(pg_dump);
    free(schema_path);
    if (!dumped)
        engine_copy_abort(&cp);
    pgbr_error copy_err = PGBR_ERROR_INIT;
    bool copied = engine_copy_join(&cp, threads, started, &copy_err);
    started = 0;
    if (!dumped) {
        pgbr_error_clear(&copy_err);
        free(schema_rel);
        goto done;
    }
    if (!copied) {
        pgbr_error_move(err, &copy_err);
        free(schema_rel);
        goto done;
    }
    out->files++;
    out->stored_bytes += schema_bytes;

    manifest_database *mdb = manifest_add_database(m, r.dbname, err);
    ok = mdb && manifest_set_string(&mdb->schema_file, schema_rel, err) &&
         manifest_set_string(&mdb->schema_sha256, schema_sha, err) &&
         add_tables(&r, mdb, out, err) && engine_add_kept_tables(&r, mdb, out, err) &&
         (!resume || !engine_db_slot(&r) || engine_resume_catchup(&r, mdb, out, err)) && add_database_properties(&r, mdb, err) &&
         add_sequences(&r, mdb, err) && add_resolved_targets(&r, m, err) &&
         manifest_set_string(&m->end_lsn, r.lsn, err) && manifest_set_string(&mdb->end_lsn, r.lsn, err) &&
         (r.layer || !engine_db_slot(&r) || (manifest_set_string(&mdb->slot_name, engine_db_slot(&r), err) &&
                                      manifest_set_string(&mdb->publication, engine_db_publication(&r), err))) &&
         manifest_set_string(&m->server_version, r.server_version, err);
    free(schema_rel);
    m->server_version_num = r.server_num;
    if (ok) {
        for (int i = 0; i < r.nconns; i++)
            if (r.conns[i])
                PQclear(PQexec(r.conns[i], "COMMIT"));
    }
done:
    if (started > 0) {
        pgbr_error e2 = PGBR_ERROR_INIT;
        engine_copy_abort(&cp);
        engine_copy_join(&cp, threads, started, &e2);
        pgbr_error_clear(&e2);
    }
    if (mutex_ready)
        pthread_mutex_destroy(&cp.mutex);
    pgbr_error_clear(&cp.error);
    if (r.cp) {
        if (ok) {
            json_array_append_new(r.cp->dbs, engine_db_entry(&r, true));
            r.cp->cur = NULL;
            engine_cp_save(r.cp, true);
        } else if (req->keep_partial && req->keep_partial(arg, err)) {
            engine_cp_save(r.cp, true);    /* what this run got done, for the next */
            json_t *e = engine_db_entry(&r, false);
            log_info("backup job %" PRId64 ": database \"%s\": %zu tables are kept for the next run", req->job_id,
                     r.dbname, json_array_size(json_object_get(e, "tables")));
            json_decref(e);
        }
        r.cp->cur = NULL;
    }
    db_run_free(&r);
    return ok;
}

/* A whole-server backup keeps the globals, as pg_dumpall --globals-only gives
 * them (with their password hashes, as pg_dumpall does). */
static bool backup_roles(const backup_request *req, const char *prefix, storage *st, manifest *m,
                         backup_result *out, pgbr_error *err)
{
    PGconn *conn = pgclient_connect(req->conninfo, NULL, "pgbr backup", err);
    if (!conn)
        return false;
    int server_num = PQserverVersion(conn);
    PQfinish(conn);
    char *prog = pgclient_find_tool("pg_dumpall", NULL, server_num);
    char *path = NULL;
    char sha[65] = "";
    uint64_t bytes = 0;
    bool ok = prog && asprintf(&path, "%s/globals.sql", prefix) >= 0;
    if (!ok) {
        path = NULL;
        pgbr_error_set(err, "53200", "out of memory");
    }
    ok = ok && engine_dump_roles(prog, req->conninfo, st, path, &bytes, sha, err) &&
         manifest_set_string(&m->globals_file, "globals.sql", err) &&
         manifest_set_string(&m->globals_sha256, sha, err);
    if (ok) {
        out->files++;
        out->stored_bytes += bytes;
    }
    free(prog);
    free(path);
    return ok;
}

/*
 * A new full backup in a collection supersedes the chain LATEST pointed to:
 * its slots and publications are dropped, so WAL is held for one chain per
 * collection, not for every full backup ever taken (docs/incremental.md).
 * That chain can no longer be extended (its next incremental says the
 * chain is broken). Best effort: failures are logged.
 */
static void supersede_chain(const backup_request *req, storage *st, const char *previous)
{
    pgbr_error e = PGBR_ERROR_INIT;
    manifest *old = layout_read_manifest(st, previous, NULL, NULL, &e);
    if (!old) {
        log_warning("backup job %" PRId64 ": could not read the previous chain %s to release its replication "
                    "slots: %s", req->job_id, previous, e.message ? e.message : "");
        pgbr_error_clear(&e);
        return;
    }
    for (size_t i = 0; i < old->ndatabases; i++) {
        const manifest_database *d = old->databases[i];
        if (!d->slot_name && !d->publication)
            continue;
        log_info("backup job %" PRId64 ": chain %s is superseded: releasing its change stream in database \"%s\"",
                 req->job_id, previous, d->name);
        engine_stream_drop(req->conninfo, d->name, d->slot_name, d->publication);
    }
    manifest_free(old);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool write_manifest(storage *st, const char *prefix, const manifest *m, pgbr_error *err)
{
    size_t len = 0;
    char *json = manifest_encode(m, &len, err);
    if (!json)
        return false;
    char sum[MANIFEST_CHECKSUM_TEXT_SIZE];
    char *mpath = NULL, *spath = NULL;
    bool ok = manifest_checksum_text(json, len, sum, err);
    if (ok && (asprintf(&mpath, "%s/%s", prefix, MANIFEST_FILE_NAME) < 0 ||
               asprintf(&spath, "%s/%s", prefix, MANIFEST_CHECKSUM_FILE_NAME) < 0))
        ok = pgbr_error_set(err, "53200", "out of memory");
    /* the checksum first: a manifest is what makes a backup visible */
    ok = ok && storage_put(st, spath, sum, strlen(sum), err) &&
         storage_put(st, mpath, json, len, err);
    free(json);
    free(mpath);
    free(spath);
    return ok;
}

bool backup_run(const backup_request *req, backup_progress_fn progress, void *arg,
                backup_result *out, pgbr_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!req || req->ndatabases == 0 || !req->databases || !req->collection_url)
        return pgbr_error_set(err, "22023", "a backup needs a collection and at least one database");
    if (req->tables && (!req->ntables || req->cluster))
        return pgbr_error_set(err, "22023", "a table backup needs a relation count per database and "
                                            "cannot be a whole-server backup");
    /* an earlier run of the job: continue in its directory */
    json_error_t jerr;
    json_t *resume = req->checkpoint ? json_loads(req->checkpoint, 0, &jerr) : NULL;
    const char *resume_prefix = json_string_value(json_object_get(resume, "prefix"));
    if (resume_prefix && strlen(resume_prefix) + 2 <= sizeof out->subdir)
        snprintf(out->subdir, sizeof out->subdir, "/%s", resume_prefix);
    else if (!layout_full_subdir(req->end_time_us, out->subdir, err)) {
        json_decref(resume);
        return false;
    }
    const char *prefix = out->subdir + 1;   /* no leading '/' */
    storage *st = storage_open(req->collection_url, req->storage, err);
    if (!st) {
        json_decref(resume);
        return false;
    }
    manifest *m = NULL;
    bool locked = false, ok = false;
    stream_list created = { 0 };
    engine_cp cpt = { .req = req, .arg = arg, .prefix = prefix, .dbs = json_array() };
    if (resume_prefix) {
        /* the earlier run wrote its manifest and died before it was
         * recorded: the backup is done; LATEST and the slots may still
         * have to move */
        pgbr_error e2 = PGBR_ERROR_INIT;
        manifest *done_m = layout_read_manifest(st, prefix, NULL, NULL, &e2);
        pgbr_error_clear(&e2);
        if (done_m) {
            log_info("backup job %" PRId64 ": %s%s was complete already", req->job_id, storage_display_url(st),
                     out->subdir);
            char latest[LAYOUT_SUBDIR_SIZE] = "";
            if (!layout_read_latest(st, latest, &e2))
                latest[0] = '\0';
            pgbr_error_clear(&e2);
            if (strcmp(latest, out->subdir) < 0) {
                ok = layout_write_latest(st, out->subdir, now_us(), err);
                if (ok && latest[0])
                    supersede_chain(req, st, latest);
            } else {
                ok = true;
            }
            if (ok) {
                engine_advance_slots(req, done_m);
                engine_result_from_manifest(done_m, out);
            }
            manifest_free(done_m);
            locked = false;
            goto done;
        }
    }
    if (!layout_lock_backup_dir(st, prefix, req->job_id, err))
        goto done;
    locked = true;
    if (resume_prefix) {
        log_info("backup job %" PRId64 ": continues in %s%s", req->job_id, storage_display_url(st), out->subdir);
        if (!engine_resume_clean(st, prefix, resume, err))
            goto done;
    }
    engine_cp_save(&cpt, true);
    m = manifest_new(err);
    if (!m)
        goto done;
    m->backup_type = MANIFEST_BACKUP_FULL;
    m->revision_history = req->revision_history;
    m->end_time = req->end_time_us;
    m->targets.kind = req->cluster  ? MANIFEST_TARGET_CLUSTER
                      : req->tables ? MANIFEST_TARGET_TABLES
                                    : MANIFEST_TARGET_DATABASES;
    m->encryption = MANIFEST_ENCRYPTION_NONE;
    if (!manifest_set_string(&m->pgbr_version, PGBR_VERSION, err))
        goto done;
    for (size_t i = 0; !req->cluster && !req->tables && i < req->ndatabases; i++)
        if (!manifest_add_given_target(m, req->databases[i], err))
            goto done;
    for (size_t i = 0; req->tables && i < req->npatterns; i++)
        if (!manifest_add_given_target(m, req->patterns[i], err))
            goto done;
    if (req->cluster && !backup_roles(req, prefix, st, m, out, err))
        goto done;
    for (size_t i = 0; i < req->ndatabases; i++) {
        log_info("backup job %" PRId64 ": database \"%s\" into %s%s", req->job_id,
                 req->databases[i], storage_display_url(st), out->subdir);
        if (!backup_database(req, prefix, st, i, m, &created, NULL, &cpt, engine_resume_db(resume, req->databases[i]),
                             progress, arg, out, err))
            goto done;
    }
    if (progress && !progress(arg, 0.99, "writing manifest")) {
        pgbr_error_set(err, "57014", "backup canceled");
        goto done;
    }
    /* the chain LATEST pointed to until now: superseded below */
    char previous[LAYOUT_SUBDIR_SIZE] = "";
    {
        pgbr_error e2 = PGBR_ERROR_INIT;
        if (!layout_read_latest(st, previous, &e2))
            previous[0] = '\0';
        pgbr_error_clear(&e2);
    }
    if (!write_manifest(st, prefix, m, err) || !layout_write_latest(st, out->subdir, now_us(), err))
        goto done;
    ok = true;
    /* a resumed database's slot moves from where the last run read to
     * where this one did (a no-op for the others) */
    if (resume_prefix)
        engine_advance_slots(req, m);
    if (previous[0] && strcmp(previous, out->subdir) != 0)
        supersede_chain(req, st, previous);
    if (progress)
        progress(arg, 1.0, "succeeded");
done:
    if (!ok && locked && req->keep_partial && req->keep_partial(arg, err)) {
        /* a pause or a retry: the next run continues from the checkpoint */
        log_info("backup job %" PRId64 ": stopped; %s%s is kept for the next run", req->job_id,
                 storage_display_url(st), out->subdir);
        engine_stream_list_drop(&created, NULL);
        locked = false;
    }
    /* a failed backup drops the slots and publications it created */
    engine_stream_list_drop(&created, ok ? NULL : req->conninfo);
    json_decref(resume);
    json_decref(cpt.dbs);
    if (!ok && locked) {
        pgbr_error e2 = PGBR_ERROR_INIT;
        if (!storage_delete_prefix(st, prefix, &e2))
            log_warning("backup job %" PRId64 ": could not remove %s%s: %s", req->job_id,
                        storage_display_url(st), out->subdir, e2.message ? e2.message : "");
        pgbr_error_clear(&e2);
    }
    manifest_free(m);
    storage_close(st);
    return ok;
}

void engine_note_prefix(const backup_request *req, void *arg, const char *prefix)
{
    if (!req->save_checkpoint)
        return;
    json_t *o = json_pack("{s:s}", "prefix", prefix);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        req->save_checkpoint(arg, text);
    free(text);
    json_decref(o);
}

bool backup_discard(const backup_request *req, const char *prefix, pgbr_error *err)
{
    if (prefix && prefix[0]) {
        storage *st = storage_open(req->collection_url, req->storage, err);
        if (!st)
            return false;
        pgbr_error e2 = PGBR_ERROR_INIT;
        if (!storage_delete_prefix(st, prefix, &e2))
            log_warning("backup job %" PRId64 ": could not remove %s/%s: %s", req->job_id, storage_display_url(st),
                        prefix, e2.message ? e2.message : "");
        else
            log_info("backup job %" PRId64 ": removed %s/%s, left by an earlier run", req->job_id,
                     storage_display_url(st), prefix);
        pgbr_error_clear(&e2);
        storage_close(st);
    }
    /* a full backup's change stream is named after its job */
    for (size_t i = 0; !req->incremental_of && i < req->ndatabases; i++) {
        char slot[64], pub[64];
        snprintf(slot, sizeof slot, "pgbr_%" PRId64 "_%zu", req->job_id, i);
        snprintf(pub, sizeof pub, "pgbr_%" PRId64, req->job_id);
        engine_stream_drop(req->conninfo, req->databases[i], slot, pub);
    }
    return true;
}

bool engine_backup_database(const backup_request *req, const char *prefix, storage *st, size_t dbi, manifest *m,
                            engine_layer_db *layer, backup_progress_fn progress, void *arg, backup_result *out,
                            pgbr_error *err)
{
    size_t before = m->ndatabases;
    bool ok = backup_database(req, prefix, st, dbi, m, NULL, layer, NULL, NULL, progress, arg, out, err);
    layer->mdb = ok && m->ndatabases > before ? m->databases[m->ndatabases - 1] : NULL;
    return ok;
}
