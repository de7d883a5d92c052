/*
 * stream.c - a backup chain's change stream (docs/incremental.md): the
 * publication and the logical replication slot (pgoutput) a full backup
 * creates in each database, with the snapshot the slot exports, so the
 * full backup's rows and the stream start at exactly the same point.
 *
 * The publication lists only tables that have a replica identity (a primary
 * key, a replica identity index, or REPLICA IDENTITY FULL): a table without
 * one in a publication that publishes updates and deletes makes the
 * application's own UPDATE and DELETE fail, which pgbr must never cause.
 * Tables left out are copied whole by each incremental instead.
 *
 * The exported snapshot lives as long as the replication connection that
 * created the slot stays open and runs nothing else: engine_stream keeps
 * it, the exporter and copy connections import the snapshot, pg_dump gets
 * it with --snapshot, and engine_stream_close ends it at the database's
 * end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "pgbr/buf.h"
#include "pgbr/log.h"

/* The tables a chain's publication lists: ordinary tables (partitions
 * included), permanent (unlogged tables are not logged, so not decoded),
 * outside the system schemas and pgbr's own, not extension members, with a
 * replica identity. */
static const char identity_tables_sql[] =
    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND c.relpersistence = 'p' "
    "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') AND n.nspname !~ '^pg_(toast|temp)' "
    "  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
    "                  AND d.objid = c.oid AND d.deptype = 'e') "
    "  AND (c.relreplident = 'f' "
    "       OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) "
    "       OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))";

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

/* " AND (n.nspname, c.relname) IN ((...), ...)" for a table backup's relations. */
static bool append_filter(pgbr_buf *q, PGconn *conn, const backup_relation *filter, size_t nfilter, pgbr_error *err)
{
    static const char head[] = " AND (n.nspname, c.relname) IN (VALUES ('', ''::name)";
    bool ok = pgbr_buf_append(q, head, strlen(head), err);
    for (size_t i = 0; ok && i < nfilter; i++) {
        char *s = PQescapeLiteral(conn, filter[i].schema, strlen(filter[i].schema));
        char *t = PQescapeLiteral(conn, filter[i].name, strlen(filter[i].name));
        ok = s && t && pgbr_buf_append(q, ", (", 3, err) && pgbr_buf_append(q, s, strlen(s), err) &&
             pgbr_buf_append(q, ", ", 2, err) && pgbr_buf_append(q, t, strlen(t), err) &&
             pgbr_buf_append(q, "::name)", 7, err);
        if (!s || !t)
            ok = oom(err);
        PQfreemem(s);
        PQfreemem(t);
    }
    return ok && pgbr_buf_append(q, ")", 1, err);
}

bool engine_stream_publication_sql(PGconn *conn, const char *verb, const char *publication,
                                   const backup_relation *filter, size_t nfilter, bool filtered,
                                   const char *extra_cond, char **out, bool *empty, pgbr_error *err)
{
    pgbr_buf q = PGBR_BUF_INIT;
    pgbr_buf stmt = PGBR_BUF_INIT;
    bool ok = pgbr_buf_append(&q, identity_tables_sql, strlen(identity_tables_sql), err) &&
              (!filtered || append_filter(&q, conn, filter, nfilter, err)) &&
              (!extra_cond || pgbr_buf_append(&q, extra_cond, strlen(extra_cond), err)) &&
              pgbr_buf_append(&q, " ORDER BY 1", 12, err);
    PGresult *res = ok ? pgclient_query(conn, (const char *)q.data, err) : NULL;
    pgbr_buf_free(&q);
    *out = NULL;
    if (!res)
        return false;
    char *pub = PQescapeIdentifier(conn, publication, strlen(publication));
    ok = pub && pgbr_buf_append(&stmt, verb, strlen(verb), err) && pgbr_buf_append(&stmt, " ", 1, err) &&
         pgbr_buf_append(&stmt, pub, strlen(pub), err);
    if (!pub)
        ok = oom(err);
    PQfreemem(pub);
    *empty = PQntuples(res) == 0;
    const char *lead = strcmp(verb, "CREATE PUBLICATION") == 0 ? " FOR TABLE " : " ADD TABLE ";
    for (int i = 0; ok && i < PQntuples(res); i++) {
        const char *t = PQgetvalue(res, i, 0);
        const char *sep = i ? ", " : lead;
        ok = pgbr_buf_append(&stmt, sep, strlen(sep), err) && pgbr_buf_append(&stmt, t, strlen(t), err);
    }
    PQclear(res);
    ok = ok && pgbr_buf_append(&stmt, "", 1, err);
    if (!ok) {
        pgbr_buf_free(&stmt);
        return false;
    }
    *out = (char *)stmt.data;
    return true;
}

/* A replication connection (s->repl, kept open: the exported snapshot lives
 * as long as it does) and a pgoutput slot on it with an exported snapshot;
 * s->lsn and s->snapshot get the slot's consistent point and snapshot name.
 * A temporary slot is gone when the connection closes. */
static bool open_slot(const char *conninfo, const char *dbname, const char *slot, bool temporary, engine_stream *s,
                      pgbr_error *err)
{
    char *repl_info = NULL;
    if (asprintf(&repl_info, "%s replication=database", conninfo ? conninfo : "") < 0)
        return oom(err);
    s->repl = pgclient_connect(repl_info, dbname, "pgbr backup stream", err);
    free(repl_info);
    if (!s->repl)
        return false;
    char *id = PQescapeIdentifier(s->repl, slot, strlen(slot));
    char *cmd = NULL;
    if (!id || asprintf(&cmd, "CREATE_REPLICATION_SLOT %s%s LOGICAL pgoutput EXPORT_SNAPSHOT", id,
                        temporary ? " TEMPORARY" : "") < 0) {
        PQfreemem(id);
        return oom(err);
    }
    PQfreemem(id);
    PGresult *res = PQexec(s->repl, cmd);
    free(cmd);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 3) {
        pgclient_error_from(s->repl, res,
                            temporary ? "could not create a temporary replication slot"
                                      : "could not create the backup chain's replication slot",
                            err);
        PQclear(res);
        return false;
    }
    s->lsn = strdup(PQgetvalue(res, 0, 1));
    s->snapshot = strdup(PQgetvalue(res, 0, 2));
    PQclear(res);
    return (s->lsn && s->snapshot) || oom(err);
}

bool engine_stream_create(PGconn *conn, const char *conninfo, const char *dbname, const char *slot,
                          const char *publication, const backup_relation *filter, size_t nfilter, bool filtered,
                          engine_stream *s, bool *have, pgbr_error *err)
{
    memset(s, 0, sizeof *s);
    *have = false;
    PGresult *res = pgclient_query(conn, "SELECT pg_catalog.current_setting('wal_level')", err);
    if (!res)
        return false;
    bool logical = strcmp(PQgetvalue(res, 0, 0), "logical") == 0;
    if (!logical)
        log_info("database \"%s\": wal_level is \"%s\", not \"logical\": this full backup has no change stream "
                 "and cannot be extended by incremental backups", dbname, PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!logical)
        return true;

    /* the publication first: decoding looks tables up in it as of each
     * change's position, so it must exist before the slot's start */
    char *sql = NULL;
    bool empty = true;
    if (!engine_stream_publication_sql(conn, "CREATE PUBLICATION", publication, filter, nfilter, filtered, NULL, &sql,
                                       &empty, err))
        return false;
    bool ok = pgclient_exec(conn, sql, err);
    free(sql);
    if (!ok)
        return false;
    s->created_pub = true;
    s->publication = strdup(publication);
    s->slot = strdup(slot);
    if (!s->publication || !s->slot)
        return oom(err);

    if (!open_slot(conninfo, dbname, slot, false, s, err))
        return false;
    s->created_slot = true;
    *have = true;
    log_info("database \"%s\": change stream slot \"%s\" (publication \"%s\"%s) starts at %s", dbname, slot,
             publication, empty ? ", no table with a replica identity yet" : "", s->lsn);
    return true;
}

bool engine_stream_temporary(const char *conninfo, const char *dbname, const char *slot, engine_stream *s,
                             pgbr_error *err)
{
    memset(s, 0, sizeof *s);
    return open_slot(conninfo, dbname, slot, true, s, err);
}

void engine_stream_close(engine_stream *s)
{
    if (s->repl)
        PQfinish(s->repl);
    s->repl = NULL;
}

void engine_stream_free(engine_stream *s)
{
    engine_stream_close(s);
    free(s->slot);
    free(s->publication);
    free(s->snapshot);
    free(s->lsn);
    memset(s, 0, sizeof *s);
}

void engine_stream_drop(const char *conninfo, const char *dbname, const char *slot, const char *publication)
{
    pgbr_error err = PGBR_ERROR_INIT;
    PGconn *conn = pgclient_connect(conninfo, dbname, "pgbr backup cleanup", &err);
    if (!conn) {
        log_warning("could not drop replication slot \"%s\" / publication \"%s\" of database \"%s\": %s",
                    slot ? slot : "", publication ? publication : "", dbname, err.message ? err.message : "");
        pgbr_error_clear(&err);
        return;
    }
    if (slot) {
        const char *params[1] = { slot };
        PGresult *res = PQexecParams(conn,
                                     "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots "
                                     "WHERE slot_name = $1",
                                     1, NULL, params, NULL, NULL, 0);
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            log_warning("could not drop replication slot \"%s\": %s", slot, PQerrorMessage(conn));
        else
            log_info("dropped replication slot \"%s\"", slot);
        PQclear(res);
    }
    if (publication) {
        char *id = PQescapeIdentifier(conn, publication, strlen(publication));
        char *sql = NULL;
        if (id && asprintf(&sql, "DROP PUBLICATION IF EXISTS %s", id) >= 0 && !pgclient_exec(conn, sql, &err)) {
            log_warning("could not drop publication \"%s\": %s", publication, err.message ? err.message : "");
            pgbr_error_clear(&err);
        }
        PQfreemem(id);
        free(sql);
    }
    PQfinish(conn);
}

bool engine_stream_list_add(stream_list *l, const char *db, const char *slot, const char *pub)
{
    char **d = realloc(l->db, (l->n + 1) * sizeof *d);
    if (d)
        l->db = d;
    char **s2 = d ? realloc(l->slot, (l->n + 1) * sizeof *s2) : NULL;
    if (s2)
        l->slot = s2;
    char **p = s2 ? realloc(l->pub, (l->n + 1) * sizeof *p) : NULL;
    if (p)
        l->pub = p;
    if (!p)
        return false;
    l->db[l->n] = strdup(db);
    l->slot[l->n] = slot ? strdup(slot) : NULL;
    l->pub[l->n] = pub ? strdup(pub) : NULL;
    l->n++;
    return l->db[l->n - 1] != NULL;
}

void engine_stream_list_drop(stream_list *l, const char *conninfo)
{
    for (size_t i = 0; i < l->n; i++) {
        if (conninfo && l->db[i])
            engine_stream_drop(conninfo, l->db[i], l->slot[i], l->pub[i]);
        free(l->db[i]);
        free(l->slot[i]);
        free(l->pub[i]);
    }
    free(l->db);
    free(l->slot);
    free(l->pub);
    memset(l, 0, sizeof *l);
}
