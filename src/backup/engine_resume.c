/*
 * engine_resume.c - the checkpoint of a full backup, so that a paused,
 * retried or adopted backup continues instead of starting over
 * (DESIGN.md section 3, docs/operations.md).
 *
 * The checkpoint is JSON:
 *   {"prefix": "2026/11/24/...", "dbs": [
 *      {"name": "shop", "slot": "pgbr_<job>_0", "publication": "pgbr_<job>",
 *       "lsn": "0/1234", "complete": false,
 *       "tables": [{"oid": 16384, "schema": "public", "name": "t",
 *                   "index_count": 1, "columns": [["id", "integer"]],
 *                   "files": [{"path": "data/shop/16384/0.pgbr", "offset": 0,
 *                              "stored": 10, "raw": 20, "rows": 2,
 *                              "sha256": "..."}]}]}]}
 * A table is listed once every file holding its rows is durable. lsn is
 * the point of the chain's slot the rows were read at (its exported
 * snapshot). A resumed run reads what is left under a new snapshot and
 * records, from the chain's slot, the changes the listed tables had
 * between the two points, so the finished backup is consistent as of the
 * later one (engine.c).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "pgbr/cdc.h"
#include "pgbr/log.h"
#include "pgbr/manifest.h"

static json_t *columns_json(PGresult *cols, uint32_t oid)
{
    json_t *a = json_array();
    for (int i = cols ? engine_first_column(cols, oid) : 0;
         a && cols && i < PQntuples(cols) && (uint32_t)strtoul(PQgetvalue(cols, i, 0), NULL, 10) == oid; i++)
        json_array_append_new(a, json_pack("[s, s]", PQgetvalue(cols, i, 1), PQgetvalue(cols, i, 2)));
    return a;
}

/* A table's checkpoint entry: its chunks (nchunks of them), with paths
 * relative to the backup's directory (prefix_len strips the prefix). */
static json_t *table_json(const engine_table *t, const engine_chunk *chunks, size_t nchunks, size_t prefix_len,
                          PGresult *cols, const char *lsn)
{
    json_t *files = json_array();
    for (size_t k = 0; files && k < nchunks; k++) {
        const engine_chunk *c = &chunks[k];
        json_array_append_new(files, json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "path", c->path + prefix_len,
                                               "offset", (json_int_t)c->offset, "stored", (json_int_t)c->stored_bytes,
                                               "raw", (json_int_t)c->raw_bytes, "rows", (json_int_t)c->rows,
                                               "sha256", c->sha256));
    }
    return json_pack("{s:I, s:s, s:s, s:I, s:o, s:o, s:s}", "oid", (json_int_t)t->oid, "schema", t->schema, "name",
                     t->name, "index_count", (json_int_t)t->secondary_indexes, "columns", columns_json(cols, t->oid),
                     "files", files, "lsn", lsn);
}

static bool add_table(manifest_database *mdb, const json_t *tj, backup_result *out, pgbr_error *err)
{
    const char *schema = json_string_value(json_object_get(tj, "schema"));
    const char *name = json_string_value(json_object_get(tj, "name"));
    json_t *cols = json_object_get(tj, "columns"), *files = json_object_get(tj, "files");
    if (!schema || !name || !json_is_array(cols) || !json_is_array(files))
        return pgbr_error_set(err, "XX000", "the checkpoint of the backup job is damaged");
    manifest_table *mt = manifest_database_add_table(mdb, schema, name, err);
    if (!mt)
        return false;
    mt->oid = (uint32_t)json_integer_value(json_object_get(tj, "oid"));
    mt->kind = MANIFEST_REL_TABLE;
    mt->index_count = (uint32_t)json_integer_value(json_object_get(tj, "index_count"));
    for (size_t i = 0; i < json_array_size(cols); i++) {
        json_t *c = json_array_get(cols, i);
        const char *cn = json_string_value(json_array_get(c, 0)), *ct = json_string_value(json_array_get(c, 1));
        if (!cn || !ct)
            return pgbr_error_set(err, "XX000", "the checkpoint of the backup job is damaged");
        if (!manifest_table_add_column(mt, cn, ct, err))
            return false;
    }
    for (size_t i = 0; i < json_array_size(files); i++) {
        json_t *fj = json_array_get(files, i);
        const char *path = json_string_value(json_object_get(fj, "path"));
        const char *sha = json_string_value(json_object_get(fj, "sha256"));
        if (!path || !sha)
            return pgbr_error_set(err, "XX000", "the checkpoint of the backup job is damaged");
        manifest_file *f = manifest_table_add_file(mt, path, err);
        if (!f)
            return false;
        f->offset = (uint64_t)json_integer_value(json_object_get(fj, "offset"));
        f->stored_bytes = (uint64_t)json_integer_value(json_object_get(fj, "stored"));
        f->raw_bytes = (uint64_t)json_integer_value(json_object_get(fj, "raw"));
        f->rows = (uint64_t)json_integer_value(json_object_get(fj, "rows"));
        snprintf(f->sha256, sizeof f->sha256, "%s", sha);
        mt->rows += f->rows;
        mt->logical_bytes += f->raw_bytes;
        out->files++;
        out->stored_bytes += f->stored_bytes;
    }
    out->rows += mt->rows;
    out->bytes += mt->logical_bytes;
    out->index_entries += mt->rows * mt->index_count;
    return true;
}

/* The files a checkpoint keeps (paths relative to the backup's directory). */
typedef struct keep_scan {
    const json_t *cp;
    storage *st;
    size_t prefix_len;
    uint64_t removed;
} keep_scan;

static bool kept(const json_t *cp, const char *rel)
{
    json_t *dbs = json_object_get(cp, "dbs");
    for (size_t i = 0; i < json_array_size(dbs); i++) {
        json_t *tables = json_object_get(json_array_get(dbs, i), "tables");
        for (size_t k = 0; k < json_array_size(tables); k++) {
            json_t *files = json_object_get(json_array_get(tables, k), "files");
            for (size_t f = 0; f < json_array_size(files); f++) {
                const char *p = json_string_value(json_object_get(json_array_get(files, f), "path"));
                if (p && strcmp(p, rel) == 0)
                    return true;
            }
        }
    }
    return false;
}

static bool remove_unkept(void *arg, const storage_info *info, pgbr_error *err)
{
    keep_scan *ks = arg;
    const char *rel = info->path + ks->prefix_len;
    /* the lock file stays: the directory is still this job's */
    if (strncmp(rel, "data/", 5) != 0 && strncmp(rel, "schema/", 7) != 0 && strncmp(rel, "changes/", 8) != 0 &&
        strcmp(rel, "globals.sql") != 0)
        return true;
    if (kept(ks->cp, rel))
        return true;
    ks->removed++;
    return storage_delete(ks->st, info->path, err);
}

bool engine_resume_clean(storage *st, const char *prefix, const json_t *cp, pgbr_error *err)
{
    keep_scan ks = { cp, st, strlen(prefix) + 1, 0 };
    if (!storage_list(st, prefix, remove_unkept, &ks, err))
        return false;
    if (ks.removed)
        log_info("resumed backup: removed %" PRIu64 " files of %s the last run had not finished", ks.removed, prefix);
    return true;
}

const json_t *engine_resume_db(const json_t *cp, const char *name)
{
    json_t *dbs = json_object_get(cp, "dbs");
    for (size_t i = 0; i < json_array_size(dbs); i++) {
        const char *n = json_string_value(json_object_get(json_array_get(dbs, i), "name"));
        if (n && strcmp(n, name) == 0)
            return json_array_get(dbs, i);
    }
    return NULL;
}

/* ---- a database's part (engine.c drives it) ---- */

/* The chain slot and publication of r's database: the checkpoint's when
 * resumed, else the ones this run created (NULL: none). */
const char *engine_db_slot(const db_run *r)
{
    if (r->resume)
        return json_string_value(json_object_get(r->resume, "slot"));
    return r->have_stream && !r->layer ? r->stream.slot : NULL;
}

const char *engine_db_publication(const db_run *r)
{
    if (r->resume)
        return json_string_value(json_object_get(r->resume, "publication"));
    return r->have_stream && !r->layer ? r->stream.publication : NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* r's checkpoint entry: the tables kept from an earlier run and those of
 * this run whose files are all durable (every table when complete). */
json_t *engine_db_entry(const db_run *r, bool complete)
{
    json_t *tables = json_array();
    for (size_t k = 0; r->kept && k < json_array_size(r->kept); k++)
        json_array_append(tables, json_array_get(r->kept, k));
    /* the chunks are in table order: each table's are one run */
    size_t k = 0;
    for (size_t t = 0; t < r->ntables; t++) {
        size_t first = k;
        bool all = true;
        for (; k < r->nchunks && r->chunks[k].table == t; k++)
            all = all && r->chunks[k].done;
        if (all || complete)
            json_array_append_new(tables, table_json(&r->tables[t], r->chunks + first, k - first,
                                                     strlen(r->prefix) + 1, r->cols, r->lsn));
    }
    const char *slot = engine_db_slot(r), *pub = engine_db_publication(r);
    return json_pack("{s:s, s:o, s:o, s:s, s:b, s:o}", "name", r->dbname, "slot",
                     slot ? json_string(slot) : json_null(), "publication", pub ? json_string(pub) : json_null(),
                     "lsn", r->lsn ? r->lsn : "0/0", "complete", complete, "tables", tables);
}

void engine_cp_save(engine_cp *cp, bool force)
{
    if (!cp || !cp->req->save_checkpoint)
        return;
    int64_t now = mono_ms();
    if (!force && now - cp->last_ms < 1000)
        return;
    cp->last_ms = now;
    json_t *dbs = json_array();
    for (size_t i = 0; i < json_array_size(cp->dbs); i++)
        json_array_append(dbs, json_array_get(cp->dbs, i));
    if (cp->cur)
        json_array_append_new(dbs, engine_db_entry(cp->cur, false));
    json_t *root = json_pack("{s:s, s:o}", "prefix", cp->prefix, "dbs", dbs);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text)
        cp->req->save_checkpoint(cp->arg, text);
    free(text);
    json_decref(root);
}

/* engine_copy's file_done (under the copy mutex) */
void engine_cp_file_done(void *arg)
{
    engine_cp *cp = arg;
    cp->files_done++;
    engine_cp_save(cp, false);
    if (cp->req->after_file && cp->cur)
        cp->req->after_file(cp->req->after_snapshot_arg, cp->cur->dbname, cp->files_done, cp->cur->nwork);
}

/* A resumed database: keep the checkpoint's tables that still exist under
 * the new snapshot and are in the chain's publication (their changes since
 * come from the slot), take them out of what is copied, and read the rest.
 * A keyless table (not published) is read again. */
bool engine_resume_keep(db_run *r, pgbr_error *err)
{
    const char *pub = engine_db_publication(r);
    json_t *tables = json_object_get(r->resume, "tables");
    r->kept = json_array();
    if (!r->kept)
        return pgbr_error_set(err, "53200", "out of memory");
    if (!pub || json_array_size(tables) == 0)
        return true;
    const char *params[1] = { pub };
    PGresult *res = pgclient_query_params(
        r->exporter,
        "SELECT pr.prrelid::bigint FROM pg_catalog.pg_publication_rel pr "
        "JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1",
        1, params, err);
    if (!res)
        return false;
    size_t w = 0;
    for (size_t t = 0; t < r->ntables; t++) {
        engine_table *et = &r->tables[t];
        const json_t *found = NULL;
        for (size_t k = 0; !found && k < json_array_size(tables); k++)
            if ((uint32_t)json_integer_value(json_object_get(json_array_get(tables, k), "oid")) == et->oid)
                found = json_array_get(tables, k);
        bool published = false;
        for (int i = 0; found && !published && i < PQntuples(res); i++)
            published = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10) == et->oid;
        if (found && published) {
            json_array_append(r->kept, (json_t *)found);
            free(et->schema);
            free(et->name);
            free(et->select_sql);
        } else {
            r->tables[w++] = *et;
        }
    }
    r->ntables = w;
    PQclear(res);
    log_info("backup job %" PRId64 ": database \"%s\": %zu tables kept from the last run, %zu to read",
             r->req->job_id, r->dbname, json_array_size(r->kept), r->ntables);
    return true;
}

/* A resumed database's catch-up: the kept tables' changes from the points
 * they were read at up to this run's snapshot. */
bool engine_resume_catchup(db_run *r, manifest_database *mdb, backup_result *out, pgbr_error *err)
{
    size_t n = json_array_size(r->kept);
    engine_catchup_rel *rels = calloc(n ? n : 1, sizeof *rels);
    if (!rels)
        return pgbr_error_set(err, "53200", "out of memory");
    for (size_t k = 0; k < n; k++) {
        json_t *tj = json_array_get(r->kept, k);
        rels[k].relid = (uint32_t)json_integer_value(json_object_get(tj, "oid"));
        cdc_lsn_parse(json_string_value(json_object_get(tj, "lsn")), &rels[k].after_lsn);
    }
    uint64_t changes = 0;
    bool ok = n == 0 || engine_capture_catchup(r->req, r->prefix, r->st, r->dbname, r->dbcomp, engine_db_slot(r),
                                               engine_db_publication(r), r->lsn, rels, n, mdb, &changes, err);
    free(rels);
    for (size_t k = 0; ok && k < mdb->nchanges; k++) {
        out->files++;
        out->stored_bytes += mdb->changes[k]->stored_bytes;
    }
    return ok;
}

/* A resumed database: the tables an earlier run read, with their files. */
bool engine_add_kept_tables(db_run *r, manifest_database *mdb, backup_result *out, pgbr_error *err)
{
    for (size_t k = 0; r->kept && k < json_array_size(r->kept); k++)
        if (!add_table(mdb, json_array_get(r->kept, k), out, err))
            return false;
    return true;
}
