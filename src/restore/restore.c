/*
 * restore.c - RESTORE DATABASE: the plan (manifest read and verified,
 * targets and destination names checked) and its execution, one staging
 * database per restored database, renamed into place at the very end
 * (restore.h gives the steps). pg_restore does the DDL from the backup's
 * schema dump, copied to a temporary file first (pg_restore -j needs a
 * seekable file) with its SHA-256 checked; restore_load.c loads the rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pgbr/buf.h"
#include "pgbr/filter.h"
#include "pgbr/log.h"
#include "pgbr/manifest.h"
#include "pgbr/pgclient.h"
#include "restore_int.h"

#define DEFAULT_WORKERS 4
#define MAX_WORKERS 64


const char *restore_plan_subdir(const restore_plan *p)
{
    return p->subdir;
}

void restore_plan_free(restore_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        if (p->staging)
            free(p->staging[i]);
        if (p->dest)
            free(p->dest[i]);
    }
    free(p->staging);
    free(p->dest);
    free(p->dbs);
    free(p->created);
    for (size_t i = 0; i < p->nnew_roles; i++)
        free(p->new_roles[i]);
    free(p->new_roles);
    restore_tables_free(p->tables);
    if (p->admin)
        PQfinish(p->admin);
    restore_chain_free(p);
    restore_checkpoint_free(p);
    manifest_free(p->m);
    storage_close(p->st);
    free(p);
}

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

/* "sql" with one identifier %s (quoted here) */
static bool exec_ident(PGconn *conn, const char *fmt, const char *ident, const char *ident2,
                       pgbr_error *err)
{
    char *q1 = PQescapeIdentifier(conn, ident, strlen(ident));
    char *q2 = ident2 ? PQescapeIdentifier(conn, ident2, strlen(ident2)) : NULL;
    char *sql = NULL;
    bool ok = q1 && (!ident2 || q2) &&
              (ident2 ? asprintf(&sql, fmt, q1, q2) : asprintf(&sql, fmt, q1)) >= 0;
    if (!ok) {
        sql = NULL;
        oom(err);
    } else {
        ok = pgclient_exec(conn, sql, err);
    }
    PQfreemem(q1);
    PQfreemem(q2);
    free(sql);
    return ok;
}

/* Which of names[] exist as databases: the first one found, or NULL. */
static bool find_existing_database(PGconn *conn, char *const *names, size_t n, char **found,
                                   pgbr_error *err)
{
    *found = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *params[1] = { names[i] };
        PGresult *res =
            pgclient_query_params(conn, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", 1, params, err);
        if (!res)
            return false;
        bool exists = PQntuples(res) > 0;
        PQclear(res);
        if (exists) {
            *found = names[i];
            return true;
        }
    }
    return true;
}

/* The user relations of a database (at most 10 names, "db.schema.rel"),
 * appended to found; *count gets how many there are. */
static bool user_relations(restore_plan *p, const char *dbname, pgbr_buf *found, long *count, pgbr_error *err)
{
    PGconn *conn = pgclient_connect(p->req->conninfo, dbname, "pgbr restore", err);
    if (!conn)
        return false;
    PGresult *res = pgclient_query(conn,
                                   "SELECT format('%I.%I.%I', current_database(), n.nspname, c.relname), count(*) OVER () "
                                   "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                                   "  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
                                   "  AND n.nspname !~ '^pg_(toast|temp_)' ORDER BY 1 LIMIT 10",
                                   err);
    PQfinish(conn);
    if (!res)
        return false;
    *count = PQntuples(res) ? strtol(PQgetvalue(res, 0, 1), NULL, 10) : 0;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++)
        ok = (found->len == 0 || pgbr_buf_append(found, ", ", 2, err)) &&
             pgbr_buf_append(found, PQgetvalue(res, i, 0), strlen(PQgetvalue(res, i, 0)), err);
    PQclear(res);
    return ok;
}

/* A whole-server restore: the target may hold no database but postgres and
 * pgbr's catalog database, and those no user relation; every database of
 * the backup is restored, except an empty copy of one of those two. */
static bool plan_cluster(restore_plan *p, pgbr_error *err)
{
    if (p->m->targets.kind != MANIFEST_TARGET_CLUSTER)
        return pgbr_error_set(err, "22023", "full cluster RESTORE can only be used on full cluster BACKUP files");
    /* this job's own staging databases (an earlier run's) do not count */
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT datname, datname IN ('postgres', current_database()) "
             "FROM pg_catalog.pg_database WHERE NOT datistemplate "
             "AND datname !~ '^" RESTORE_STAGING_PREFIX "%" PRId64 "_[0-9]+$' ORDER BY 1",
             p->req->job_id);
    PGresult *res = pgclient_query(p->admin, sql, err);
    if (!res)
        return false;
    pgbr_buf found = PGBR_BUF_INIT;
    long nfound = 0;
    bool ok = true;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        if (strcmp(PQgetvalue(res, i, 1), "t") == 0) {
            long n = 0;
            ok = user_relations(p, name, &found, &n, err);
            nfound += n;
        } else {
            nfound++;
            ok = (found.len == 0 || pgbr_buf_append(&found, ", ", 2, err)) &&
                 pgbr_buf_append(&found, name, strlen(name), err);
        }
    }
    ok = ok && pgbr_buf_append(&found, "", 1, err);
    if (ok && nfound > 0) {
        ok = pgbr_error_set(err, "55000",
                            "full cluster restore can only be run on a cluster with no tables or databases but found "
                            "%ld descriptors: %s", nfound, (const char *)found.data);
        pgbr_error_hint(err, "Restore into a fresh PostgreSQL server, or restore single databases with RESTORE DATABASE.");
    }
    pgbr_buf_free(&found);
    const manifest *top = restore_top(p);
    p->dbs = calloc(top->ndatabases ? top->ndatabases : 1, sizeof *p->dbs);
    if (ok && !p->dbs)
        ok = oom(err);
    for (size_t j = 0; ok && j < top->ndatabases; j++) {
        manifest_database *db = top->databases[j];
        bool exists = false;
        for (int i = 0; i < PQntuples(res); i++)
            exists |= strcmp(PQgetvalue(res, i, 0), db->name) == 0;
        if (!exists) {
            p->dbs[p->n++] = db;
            continue;
        }
        if (db->ntables > 0 || db->nsequences > 0) {
            ok = pgbr_error_set(err, "0A000",
                                "database \"%s\" of the backup holds tables, and a full cluster restore cannot "
                                "replace a database that exists", db->name);
            pgbr_error_hint(err, "Restore the other databases with RESTORE DATABASE, and this one with "
                                 "RESTORE DATABASE %s ... WITH new_db_name = '...'.", db->name);
        } else {
            log_info("restore job %" PRId64 ": database \"%s\" exists and its backup holds no table: kept as it is",
                     p->req->job_id, db->name);
        }
    }
    PQclear(res);
    return ok;
}

bool restore_prepare(const restore_request *req, restore_plan **out, pgbr_error *err)
{
    restore_plan *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return oom(err);
    p->req = req;
    if (!req->cluster && req->ndatabases == 0 && req->ntables == 0) {
        pgbr_error_set(err, "22023", "a RESTORE needs at least one database");
        goto fail;
    }
    if (req->new_db_name && (req->cluster || req->ndatabases != 1)) {
        pgbr_error_set(err, "22023", "new_db_name can only be used for RESTORE DATABASE with a single target database");
        goto fail;
    }
    p->st = storage_open(req->collection_url, req->storage, err);
    if (!p->st || !layout_resolve_backup(p->st, req->subdir, p->subdir, err))
        goto fail;
    p->m = layout_read_manifest(p->st, p->subdir, NULL, NULL, err);
    if (!p->m)
        goto fail;
    if (p->m->backup_type != MANIFEST_BACKUP_FULL) {
        pgbr_error_set(err, "XX001", "backup \"%s\" is not a full backup", p->subdir);
        goto fail;
    }
    if (p->m->encryption != MANIFEST_ENCRYPTION_NONE) {
        pgbr_error_set(err, "0A000", "restoring an encrypted backup is not implemented yet");
        goto fail;
    }
    if (!restore_chain_open(p, err))
        goto fail;
    p->admin = pgclient_connect(req->conninfo, NULL, "pgbr restore", err);
    if (!p->admin)
        goto fail;
    p->server_num = PQserverVersion(p->admin);
    if (p->m->server_version_num / 10000 > p->server_num / 10000) {
        pgbr_error_set(err, "0A000", "backup from version %s is newer than current version %s",
                       p->m->server_version, PQparameterStatus(p->admin, "server_version"));
        goto fail;
    }
    if (req->ntables > 0) {
        if (!restore_tables_prepare(p, err))
            goto fail;
        *out = p;
        return true;
    }
    if (req->cluster && !plan_cluster(p, err))
        goto fail;
    if (!req->cluster)
        p->n = req->ndatabases;
    if (!p->dbs)
        p->dbs = calloc(p->n ? p->n : 1, sizeof *p->dbs);
    p->dest = calloc(p->n ? p->n : 1, sizeof *p->dest);
    p->staging = calloc(p->n ? p->n : 1, sizeof *p->staging);
    p->created = calloc(p->n ? p->n : 1, sizeof *p->created);
    if (!p->dbs || !p->dest || !p->staging || !p->created) {
        oom(err);
        goto fail;
    }
    for (size_t i = 0; i < p->n; i++) {
        const char *name = req->cluster ? p->dbs[i]->name : req->databases[i];
        for (size_t j = 0; j < restore_top(p)->ndatabases && !p->dbs[i]; j++)
            if (strcmp(restore_top(p)->databases[j]->name, name) == 0)
                p->dbs[i] = restore_top(p)->databases[j];
        if (!p->dbs[i]) {
            pgbr_error_set(err, "42704", "database \"%s\" not found in the backup", name);
            pgbr_error_hint(err, "SHOW BACKUP FROM '%s' IN '%s' lists what the backup holds.", p->subdir,
                            storage_display_url(p->st));
            goto fail;
        }
        if (p->m->targets.kind == MANIFEST_TARGET_TABLES) {
            pgbr_error_set(err, "0A000", "RESTORE DATABASE needs a backup of the whole database \"%s\"", name);
            pgbr_error_detail(err, "Backup \"%s\" holds some of its tables only; restore them with RESTORE TABLE.",
                              p->subdir);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->dbs[j]->name, name) == 0) {
                pgbr_error_set(err, "42P04", "database \"%s\" is named twice", name);
                goto fail;
            }
        p->dest[i] = strdup(req->new_db_name ? req->new_db_name : name);
        if (!p->dest[i] || asprintf(&p->staging[i], RESTORE_STAGING_PREFIX "%" PRId64 "_%zu", req->job_id, i) < 0) {
            p->staging[i] = NULL;
            oom(err);
            goto fail;
        }
        if (strncmp(p->dest[i], RESTORE_STAGING_PREFIX, strlen(RESTORE_STAGING_PREFIX)) == 0) {
            pgbr_error_set(err, "42939", "database names starting with \"%s\" are reserved for pgbr's staging databases",
                           RESTORE_STAGING_PREFIX);
            goto fail;
        }
    }
    char *found = NULL;
    if (!find_existing_database(p->admin, p->dest, p->n, &found, err))
        goto fail;
    if (found) {
        pgbr_error_set(err, "42P04", "database \"%s\" already exists", found);
        if (!req->new_db_name)
            pgbr_error_hint(err, "Use WITH new_db_name = '...' to restore it under another name, or drop or rename the existing database.");
        goto fail;
    }
    *out = p;
    return true;
fail:
    restore_plan_free(p);
    return false;
}

/* ---- staging databases ---- */

static bool role_exists(PGconn *conn, const char *role, bool *exists, pgbr_error *err)
{
    const char *params[1] = { role };
    PGresult *res = pgclient_query_params(conn, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", 1, params, err);
    if (!res)
        return false;
    *exists = PQntuples(res) > 0;
    PQclear(res);
    return true;
}

static bool append_option(pgbr_buf *b, PGconn *conn, const char *key, const char *value, pgbr_error *err)
{
    if (!value)
        return true;
    char *lit = PQescapeLiteral(conn, value, strlen(value));
    bool ok = lit && pgbr_buf_append(b, " ", 1, err) && pgbr_buf_append(b, key, strlen(key), err) &&
              pgbr_buf_append(b, " ", 1, err) && pgbr_buf_append(b, lit, strlen(lit), err);
    if (!lit)
        oom(err);
    PQfreemem(lit);
    return ok;
}

/* CREATE DATABASE <staging> with the source's encoding, locale and owner. */
static bool create_staging(restore_plan *p, size_t i, pgbr_error *err)
{
    const manifest_database *db = p->dbs[i];
    pgbr_buf b = PGBR_BUF_INIT;
    char *name = PQescapeIdentifier(p->admin, p->staging[i], strlen(p->staging[i]));
    const char *owner = p->req->owner_role;
    bool ok = name != NULL;
    if (!owner && db->owner) {
        bool exists = false;
        ok = ok && role_exists(p->admin, db->owner, &exists, err);
        owner = exists ? db->owner : NULL;
        if (ok && !exists)
            log_warning("restore job %" PRId64 ": role \"%s\" (owner of database \"%s\") does not exist; "
                        "the restored database is owned by the job's user",
                        p->req->job_id, db->owner, db->name);
    }
    ok = ok && pgbr_buf_append(&b, "CREATE DATABASE ", 16, err) &&
         pgbr_buf_append(&b, name, strlen(name), err) &&
         pgbr_buf_append(&b, " TEMPLATE template0", 19, err) &&
         append_option(&b, p->admin, "ENCODING", db->encoding, err) &&
         append_option(&b, p->admin, "LC_COLLATE", db->lc_collate, err) &&
         append_option(&b, p->admin, "LC_CTYPE", db->lc_ctype, err);
    if (ok && db->icu_locale && p->server_num >= 150000)
        ok = pgbr_buf_append(&b, " LOCALE_PROVIDER icu", 20, err) &&
             append_option(&b, p->admin, p->server_num >= 170000 ? "LOCALE" : "ICU_LOCALE", db->icu_locale, err);
    if (ok && owner) {
        char *o = PQescapeIdentifier(p->admin, owner, strlen(owner));
        ok = o && pgbr_buf_append(&b, " OWNER ", 7, err) && pgbr_buf_append(&b, o, strlen(o), err);
        if (!o)
            oom(err);
        PQfreemem(o);
    }
    ok = ok && pgbr_buf_append(&b, "", 1, err);
    if (!name)
        oom(err);
    PQfreemem(name);
    if (ok) {
        ok = pgclient_exec(p->admin, (const char *)b.data, err);
        if (ok)
            p->created[i] = true;
    }
    pgbr_buf_free(&b);
    return ok;
}

static void drop_staging(restore_plan *p, size_t i)
{
    pgbr_error e = PGBR_ERROR_INIT;
    if (!p->created[i] || !p->admin)
        return;
    const char *fmt = p->server_num >= 130000 ? "DROP DATABASE IF EXISTS %s WITH (FORCE)" : "DROP DATABASE IF EXISTS %s";
    if (exec_ident(p->admin, fmt, p->staging[i], NULL, &e))
        p->created[i] = false;
    else
        log_warning("restore job %" PRId64 ": could not drop staging database \"%s\": %s", p->req->job_id,
                    p->staging[i], e.message ? e.message : "");
    pgbr_error_clear(&e);
}

/* ---- the schema dump ---- */

typedef struct fd_sink {
    int fd;
    const char *path;
} fd_sink;

static bool write_fd(void *arg, const void *data, size_t len, pgbr_error *err)
{
    fd_sink *s = arg;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(s->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return pgbr_error_set(err, errno == ENOSPC ? "53100" : "58030", "could not write file \"%s\": %s",
                                  s->path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Copy the database's schema dump to a temporary file, checking its
 * SHA-256. *tmp gets the file's path (malloc'd); the caller unlinks it. */
bool restore_fetch_schema(restore_plan *p, const manifest_database *db, size_t i, char **tmp, pgbr_error *err)
{
    const char *dir = getenv("TMPDIR");
    char *path = NULL, *shown = NULL;
    storage_read *rd = NULL;
    filter_chain *chain = NULL;
    fd_sink sink = { -1, NULL };
    bool ok = false;
    *tmp = NULL;
    if (asprintf(tmp, "%s/pgbr-restore-%" PRId64 "-%zu-XXXXXX", dir && *dir ? dir : "/tmp", p->req->job_id, i) < 0 ||
        asprintf(&path, "%s/%s", restore_top_dir(p), db->schema_file) < 0 ||
        asprintf(&shown, "%s/%s", storage_display_url(restore_top_storage(p)), path) < 0) {
        oom(err);
        goto done;
    }
    sink.fd = mkstemp(*tmp);
    sink.path = *tmp;
    if (sink.fd < 0) {
        pgbr_error_set(err, "58030", "could not create temporary file \"%s\": %s", *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        goto done;
    }
    chain = filter_chain_new(write_fd, &sink, err);
    if (!chain)
        goto done;
    if (db->schema_sha256) {
        filter *sha = filter_sha256_new(err);
        if (!sha || !filter_sha256_expect(sha, db->schema_sha256, shown, err)) {
            filter_free(sha);
            goto done;
        }
        if (!filter_chain_add(chain, sha, "sha256", err))
            goto done;
    }
    rd = storage_read_open(restore_top_storage(p), path, 0, -1, err);
    if (!rd || !storage_read_to_sink(rd, filter_chain_sink, chain, err))
        goto done;
    ok = filter_chain_finish(chain, err);
done:
    storage_read_close(rd);
    filter_chain_free(chain);
    if (sink.fd >= 0)
        close(sink.fd);
    free(path);
    free(shown);
    return ok;
}

static bool run_pg_restore(restore_plan *p, size_t i, const char *dump, const char *list, const char *section,
                           int jobs, pgbr_error *err)
{
    char *prog = pgclient_find_tool("pg_restore", p->req->pg_restore_path, p->server_num);
    char sect[64], jarg[16], rolearg[256 + 8], what[512], listarg[4200];
    const char *args[12];
    int n = 0;
    if (!prog)
        return oom(err);
    snprintf(sect, sizeof sect, "--section=%s", section);
    snprintf(jarg, sizeof jarg, "%d", jobs);
    snprintf(what, sizeof what, "pg_restore (%s) of database \"%s\"", section, p->dbs[i]->name);
    args[n++] = sect;
    args[n++] = "--exit-on-error";
    args[n++] = "--no-password";
    args[n++] = "--no-tablespaces";     /* into the default tablespace (docs/restore.md) */
    if (list) {
        snprintf(listarg, sizeof listarg, "--use-list=%s", list);
        args[n++] = listarg;
    }
    if (jobs > 1) {
        args[n++] = "-j";
        args[n++] = jarg;
    }
    if (p->req->owner_role) {
        snprintf(rolearg, sizeof rolearg, "--role=%s", p->req->owner_role);
        args[n++] = "--no-owner";
        args[n++] = rolearg;
    }
    args[n++] = dump;
    args[n] = NULL;
    bool ok = pgclient_run_tool(prog, args, p->req->conninfo, p->staging[i], what, NULL, NULL, err);
    free(prog);
    return ok;
}

/* ---- after the data: sequences, materialized views ---- */

char *restore_qualified(PGconn *conn, const char *schema, const char *name)
{
    char *s = PQescapeIdentifier(conn, schema, strlen(schema));
    char *n = PQescapeIdentifier(conn, name, strlen(name));
    char *out = NULL;
    if (s && n && asprintf(&out, "%s.%s", s, n) < 0)
        out = NULL;
    PQfreemem(s);
    PQfreemem(n);
    return out;
}

bool restore_finish_database(restore_plan *p, const manifest_database *db, PGconn *conn, pgbr_error *err)
{
    bool ok = true;
    for (size_t k = 0; ok && k < db->nsequences; k++) {
        const manifest_sequence *s = db->sequences[k];
        char *q = restore_qualified(conn, s->schema, s->name);
        char *lit = q ? PQescapeLiteral(conn, q, strlen(q)) : NULL;
        char *sql = NULL;
        ok = lit && asprintf(&sql, "SELECT pg_catalog.setval(%s, %" PRId64 ", %s)", lit, s->last_value,
                             s->is_called ? "true" : "false") >= 0;
        if (!ok) {
            sql = NULL;
            oom(err);
        } else {
            PGresult *res = pgclient_query(conn, sql, err);
            ok = res != NULL;
            PQclear(res);
            if (!ok)
                pgbr_error_detail(err, "while setting sequence \"%s.%s\"", s->schema, s->name);
        }
        free(q);
        PQfreemem(lit);
        free(sql);
    }
    if (!ok || p->req->schema_only)
        return ok;
    /* materialized views that were populated, in passes: one built on
     * another fails until that one is refreshed */
    size_t pending = 0;
    for (size_t k = 0; k < db->ntables; k++)
        pending += db->tables[k]->kind == MANIFEST_REL_MATVIEW;
    bool *done = calloc(db->ntables ? db->ntables : 1, sizeof(bool));
    if (!done)
        return oom(err);
    pgbr_error last = PGBR_ERROR_INIT;
    while (ok && pending > 0) {
        size_t progress = 0;
        for (size_t k = 0; k < db->ntables; k++) {
            const manifest_table *t = db->tables[k];
            if (t->kind != MANIFEST_REL_MATVIEW || done[k])
                continue;
            char *q = restore_qualified(conn, t->schema, t->name);
            char *sql = NULL;
            if (!q || asprintf(&sql, "REFRESH MATERIALIZED VIEW %s", q) < 0) {
                free(q);
                ok = oom(err);
                break;
            }
            pgbr_error_clear(&last);
            if (pgclient_exec(conn, sql, &last)) {
                done[k] = true;
                pending--;
                progress++;
            }
            free(q);
            free(sql);
        }
        if (ok && pending > 0 && progress == 0) {
            pgbr_error_move(err, &last);
            ok = false;
        }
    }
    pgbr_error_clear(&last);
    free(done);
    return ok;
}

/* ---- one database ---- */

static int by_size_desc(const void *a, const void *b)
{
    uint64_t x = ((const restore_file *)a)->file->stored_bytes;
    uint64_t y = ((const restore_file *)b)->file->stored_bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* COPY <t> (<columns>) FROM STDIN for the rows of src (the same table, as
 * some layer of a chain copied it; src == t outside chains): the columns of
 * src that t still has; keep (ncolumns of src) gets which (NULL: all). */
static char *copy_statement(PGconn *conn, const manifest_table *t, const manifest_table *src, bool **keep)
{
    pgbr_buf b = PGBR_BUF_INIT;
    *keep = NULL;
    bool all = true;
    bool *k = calloc(src->ncolumns ? src->ncolumns : 1, sizeof(bool));
    if (!k)
        return NULL;
    for (size_t c = 0; c < src->ncolumns; c++) {
        for (size_t d = 0; d < t->ncolumns && !k[c]; d++)
            k[c] = strcmp(src->columns[c].name, t->columns[d].name) == 0;
        /* a table without column names recorded: take the rows as they are */
        k[c] |= src == t || t->ncolumns == 0;
        all &= k[c];
    }
    char *q = restore_qualified(conn, t->schema, t->name);
    size_t n = 0;
    bool ok = q && pgbr_buf_append(&b, "COPY ", 5, NULL) && pgbr_buf_append(&b, q, strlen(q), NULL);
    for (size_t c = 0; ok && c < src->ncolumns; c++) {
        if (!k[c])
            continue;
        char *col = PQescapeIdentifier(conn, src->columns[c].name, strlen(src->columns[c].name));
        ok = col && pgbr_buf_append(&b, n++ == 0 ? " (" : ", ", 2, NULL) && pgbr_buf_append(&b, col, strlen(col), NULL);
        PQfreemem(col);
    }
    /* no column at all has no column list ("COPY t () ..." is not SQL) */
    ok = ok && (n == 0 || pgbr_buf_append(&b, ")", 1, NULL)) && pgbr_buf_append(&b, " FROM STDIN", 12, NULL);
    free(q);
    if (!ok) {
        free(k);
        pgbr_buf_free(&b);
        return NULL;
    }
    if (all)
        free(k);
    else
        *keep = k;
    return (char *)b.data;
}

char *restore_copy_statement(PGconn *conn, const manifest_table *t)
{
    bool *keep;
    return copy_statement(conn, t, t, &keep);
}

bool restore_load_database(restore_plan *p, const manifest_database *db, const char *dbname, PGconn *conn,
                           restore_progress_fn progress, void *arg, double base, double weight,
                           restore_result *out, pgbr_error *err)
{
    restore_load ld;
    size_t nfiles = 0, k = 0;
    bool ok = false;
    memset(&ld, 0, sizeof ld);
    /* a database restore keeps track of the tables loaded (checkpoint) */
    size_t dbi = (size_t)-1;
    for (size_t i = 0; !conn && p->loaded && i < p->n; i++)
        if (p->dbs[i] == db)
            dbi = i;
    for (size_t t = 0; t < db->ntables; t++) {
        const manifest_table *src;
        const char *prefix;
        storage *st;
        if (dbi != (size_t)-1 && p->loaded[dbi][t])
            continue;
        if (restore_chain_source(p, db->name, db->tables[t], &src, &prefix, &st)) {
            nfiles += src->nfiles;
            if (dbi != (size_t)-1)
                p->files_left[dbi][t] = src->nfiles;
        }
    }
    ld.files = calloc(nfiles ? nfiles : 1, sizeof(restore_file));
    if (!ld.files)
        return oom(err);
    for (size_t t = 0; t < db->ntables; t++) {
        const manifest_table *mt = db->tables[t], *src;
        const char *prefix;
        storage *st;
        if (!restore_chain_source(p, db->name, mt, &src, &prefix, &st))
            continue;
        if (dbi != (size_t)-1 && p->loaded[dbi][t]) {
            /* an earlier run of the job loaded it */
            for (size_t f = 0; !p->req->schema_only && f < src->nfiles; f++) {
                out->rows += src->files[f]->rows;
                out->bytes += src->files[f]->raw_bytes;
            }
            continue;
        }
        for (size_t f = 0; f < src->nfiles; f++) {
            restore_file *rf = &ld.files[k++];
            rf->table = mt;
            rf->file = src->files[f];
            rf->prefix = prefix;
            rf->st = st;
            rf->ncolumns = src->ncolumns;
            rf->dbi = dbi;
            rf->table_index = t;
            rf->copy_sql = copy_statement(p->admin, mt, src, &rf->keep);
            if (!rf->copy_sql) {
                oom(err);
                goto done;
            }
            ld.total_bytes += src->files[f]->raw_bytes;
        }
    }
    nfiles = k;
    qsort(ld.files, nfiles, sizeof(restore_file), by_size_desc);
    ld.st = p->st;
    ld.prefix = p->subdir + 1;
    ld.conninfo = p->req->conninfo;
    ld.dbname = dbname;
    ld.role = p->req->owner_role;
    ld.shared = conn;
    ld.verify_only = p->req->schema_only;
    ld.nthreads = p->req->workers <= 0 ? DEFAULT_WORKERS : (p->req->workers > MAX_WORKERS ? MAX_WORKERS : p->req->workers);
    ld.nfiles = nfiles;
    ld.progress = progress;
    ld.progress_arg = arg;
    ld.fraction_base = base;
    ld.fraction_weight = weight;
    if (dbi != (size_t)-1 && !ld.verify_only) {
        ld.file_done = restore_checkpoint_file_done;
        ld.file_done_arg = p;
    }
    pthread_mutex_init(&ld.mutex, NULL);
    ok = restore_load_run(&ld, err);
    pthread_mutex_destroy(&ld.mutex);
    if (ok && !p->req->schema_only) {
        out->rows += ld.rows;
        out->bytes += ld.total_bytes;
        for (size_t t = 0; t < db->ntables; t++)
            out->index_entries += db->tables[t]->rows * db->tables[t]->index_count;
    }
done:
    for (size_t f = 0; f < nfiles; f++) {
        free(ld.files[f].copy_sql);
        free(ld.files[f].keep);
    }
    free(ld.files);
    return ok;
}

/* A resumed database: the tables the last run had not finished loading may
 * hold some of their rows (each file is its own transaction): empty them. */
static bool empty_unloaded(restore_plan *p, size_t i, pgbr_error *err)
{
    const manifest_database *db = p->dbs[i];
    PGconn *conn = pgclient_connect(p->req->conninfo, p->staging[i], "pgbr restore", err);
    if (!conn)
        return false;
    bool ok = true;
    for (size_t t = 0; ok && t < db->ntables; t++) {
        const manifest_table *src;
        const char *prefix;
        storage *st;
        if (p->loaded[i][t] || !restore_chain_source(p, db->name, db->tables[t], &src, &prefix, &st) ||
            src->nfiles == 0)
            continue;
        char *q = restore_qualified(conn, db->tables[t]->schema, db->tables[t]->name), *sql = NULL;
        ok = q && asprintf(&sql, "TRUNCATE ONLY %s", q) >= 0 ? pgclient_exec(conn, sql, err) : oom(err);
        free(q);
        free(sql);
    }
    PQfinish(conn);
    return ok;
}

/* Record that database i reached phase. */
static void reached(restore_plan *p, size_t i, restore_phase phase)
{
    p->phase[i] = phase;
    for (size_t t = 0; phase >= RESTORE_PHASE_LOADED && t < p->dbs[i]->ntables; t++)
        p->loaded[i][t] = true;
    restore_checkpoint_save(p, true);
}

static bool restore_database(restore_plan *p, size_t i, restore_progress_fn progress, void *arg,
                             restore_result *out, pgbr_error *err)
{
    double base = (double)i / (double)p->n, w = 1.0 / (double)p->n;
    char *dump = NULL, *list = NULL;
    PGconn *conn = NULL;
    bool ok = false;
    int jobs = p->req->workers <= 0 ? DEFAULT_WORKERS : (p->req->workers > MAX_WORKERS ? MAX_WORKERS : p->req->workers);
    restore_phase at = p->phase[i];

    if (at == RESTORE_PHASE_NONE)
        log_info("restore job %" PRId64 ": database \"%s\" from %s%s into \"%s\" (staging \"%s\")", p->req->job_id,
                 p->dbs[i]->name, storage_display_url(p->st), p->subdir, p->dest[i], p->staging[i]);
    else
        log_info("restore job %" PRId64 ": database \"%s\" continues in staging \"%s\" (phase %d of %d done)",
                 p->req->job_id, p->dbs[i]->name, p->staging[i], (int)at, (int)RESTORE_PHASE_FINISHED);
    if (at >= RESTORE_PHASE_FINISHED)
        return true;
    if (progress && !progress(arg, base, at ? "resuming" : "creating objects"))
        goto canceled;
    if (!restore_fetch_schema(p, p->dbs[i], i, &dump, err) ||
        !(!p->dbs[i]->publication ||
          restore_list_without_publication(p, dump, p->dbs[i]->publication, i, &list, err)))
        goto done;
    if (at < RESTORE_PHASE_CREATED) {
        /* a run killed before it recorded the staging database created */
        if (!exec_ident(p->admin, p->server_num >= 130000 ? "DROP DATABASE IF EXISTS %s WITH (FORCE)"
                                                          : "DROP DATABASE IF EXISTS %s",
                        p->staging[i], NULL, err) ||
            !create_staging(p, i, err) || !run_pg_restore(p, i, dump, list, "pre-data", 1, err))
            goto done;
        reached(p, i, RESTORE_PHASE_CREATED);
    } else if (at == RESTORE_PHASE_CREATED && !p->req->schema_only && !empty_unloaded(p, i, err)) {
        goto done;
    }
    if (at < RESTORE_PHASE_LOADED) {
        if (progress && !progress(arg, base + w * 0.05, p->req->schema_only ? "verifying data files" : "loading data"))
            goto canceled;
        if ((!p->req->schema_only || p->req->verify_data) &&
            !restore_load_database(p, p->dbs[i], p->staging[i], NULL, progress, arg, base + w * 0.05, w * 0.75, out,
                                   err))
            goto done;
        reached(p, i, RESTORE_PHASE_LOADED);
    } else if (!restore_load_database(p, p->dbs[i], p->staging[i], NULL, NULL, NULL, 0, 0, out, err)) {
        goto done;      /* every table is loaded: this only counts their rows */
    }
    if (at < RESTORE_PHASE_INDEXED) {
        if (progress && !progress(arg, base + w * 0.8, "building indexes and constraints"))
            goto canceled;
        if (!run_pg_restore(p, i, dump, list, "post-data", jobs, err))
            goto done;
        reached(p, i, RESTORE_PHASE_INDEXED);
    }
    conn = pgclient_connect(p->req->conninfo, p->staging[i], "pgbr restore", err);
    if (!conn)
        goto done;
    /* a chain: the changes of its layers, with the indexes there to find
     * the rows they change */
    if (restore_chain_replays(p) && !p->req->schema_only) {
        if (progress && !progress(arg, base + w * 0.9, "replaying changes"))
            goto canceled;
        if (!restore_chain_apply(p, p->dbs[i], conn, progress, arg, base + w * 0.9, out, err))
            goto done;
    }
    if (!restore_finish_database(p, p->dbs[i], conn, err))
        goto done;
    reached(p, i, RESTORE_PHASE_FINISHED);
    ok = true;
    goto done;
canceled:
    pgbr_error_set(err, "57014", "restore canceled");
done:
    if (conn)
        PQfinish(conn);
    if (dump) {
        unlink(dump);
        free(dump);
    }
    if (list) {
        unlink(list);
        free(list);
    }
    return ok;
}

/* ---- roles (whole-server restores) ---- */

/* The role a "CREATE ROLE name;" statement of pg_dumpall creates, unquoted
 * (malloc'd), or NULL. */
static char *created_role(const char *stmt)
{
    const char *p = stmt + strlen("CREATE ROLE ");
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ';' || p[len - 1] == ' '))
        len--;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    if (len >= 2 && p[0] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            out[k++] = p[i];
            if (p[i] == '"')
                i++;            /* "" is one quote */
        }
    } else {
        memcpy(out, p, len);
        k = len;
    }
    out[k] = '\0';
    return out;
}

/* A tablespace statement of pg_dumpall --globals-only: recorded in the
 * backup, not replayed (its directory belongs to the source server; the
 * objects are restored into the default tablespace, pg_restore
 * --no-tablespaces). */
static bool tablespace_statement(const char *sql)
{
    if (strncmp(sql, "CREATE TABLESPACE ", 18) == 0 || strncmp(sql, "ALTER TABLESPACE ", 17) == 0 ||
        strncmp(sql, "COMMENT ON TABLESPACE ", 22) == 0 || strncmp(sql, "SECURITY LABEL FOR ", 19) == 0)
        return strncmp(sql, "SECURITY LABEL FOR ", 19) != 0 || strstr(sql, " ON TABLESPACE ") != NULL;
    return (strncmp(sql, "GRANT ", 6) == 0 || strncmp(sql, "REVOKE ", 7) == 0) && strstr(sql, " ON TABLESPACE ") != NULL;
}

/* Run pg_dumpall --globals-only's statements one by one: roles that exist
 * already (the bootstrap superuser) are kept as they are; tablespaces are
 * not recreated. */
static bool restore_roles(restore_plan *p, pgbr_error *err)
{
    const manifest *m = p->m;
    char *path = NULL, *text = NULL, *shown = NULL;
    size_t len = 0;
    bool ok = false;
    if (!m->globals_file)
        return true;
    if (asprintf(&path, "%s/%s", p->subdir + 1, m->globals_file) < 0 ||
        asprintf(&shown, "%s/%s", storage_display_url(p->st), path) < 0) {
        oom(err);
        goto done;
    }
    if (!storage_get(p->st, path, 256u * 1024 * 1024, &text, &len, err))
        goto done;
    if (m->globals_sha256) {
        char hex[65];
        if (!filter_sha256_digest_hex(text, len, hex, err))
            goto done;
        if (strcasecmp(hex, m->globals_sha256) != 0) {
            pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: checksum mismatch", shown);
            goto done;
        }
    }
    ok = true;
    pgbr_buf stmt = PGBR_BUF_INIT;
    for (char *line = text, *next; ok && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        /* comments, blank lines and psql's \restrict / \unrestrict */
        if (stmt.len == 0 && (line[0] == '\0' || strncmp(line, "--", 2) == 0 || line[0] == '\\'))
            continue;
        ok = pgbr_buf_append(&stmt, line, strlen(line), err) && pgbr_buf_append(&stmt, "\n", 1, err);
        size_t l = strlen(line);
        if (!ok || l == 0 || line[l - 1] != ';')
            continue;
        ok = pgbr_buf_append(&stmt, "", 1, err);
        const char *sql = (const char *)stmt.data;
        if (ok && tablespace_statement(sql)) {
            log_info("restore job %" PRId64 ": not recreating a tablespace: %.120s", p->req->job_id, sql);
            pgbr_buf_reset(&stmt);
            continue;
        }
        bool create = ok && strncmp(sql, "CREATE ROLE ", 12) == 0;
        PGresult *res = ok ? PQexec(p->admin, sql) : NULL;
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (ok && res && PQresultStatus(res) == PGRES_COMMAND_OK) {
            if (create) {
                char *role = created_role(sql);
                char **grown = role ? realloc(p->new_roles, (p->nnew_roles + 1) * sizeof *grown) : NULL;
                if (!grown) {
                    free(role);
                    ok = oom(err);
                } else {
                    p->new_roles = grown;
                    p->new_roles[p->nnew_roles++] = role;
                }
            }
        } else if (ok && !(create && state && strcmp(state, "42710") == 0)) {
            pgclient_error_from(p->admin, res, "could not restore the roles", err);
            pgbr_error_detail(err, "statement: %.200s", sql);
            ok = false;
        }
        PQclear(res);
        stmt.len = 0;
    }
    pgbr_buf_free(&stmt);
done:
    free(path);
    free(shown);
    free(text);
    return ok;
}

static void drop_new_roles(restore_plan *p)
{
    for (size_t i = p->nnew_roles; i-- > 0;) {
        pgbr_error e = PGBR_ERROR_INIT;
        if (!exec_ident(p->admin, "DROP ROLE IF EXISTS %s", p->new_roles[i], NULL, &e))
            log_warning("restore job %" PRId64 ": could not drop role \"%s\" it created: %s", p->req->job_id,
                        p->new_roles[i], e.message ? e.message : "");
        pgbr_error_clear(&e);
    }
}

/* Rename every staging database to its destination; all or none. */
static bool publish(restore_plan *p, pgbr_error *err)
{
    char *found = NULL;
    if (!find_existing_database(p->admin, p->dest, p->n, &found, err))
        return false;
    if (found)
        return pgbr_error_set(err, "42P04", "database \"%s\" already exists", found);
    for (size_t i = 0; i < p->n; i++) {
        if (!exec_ident(p->admin, "ALTER DATABASE %s RENAME TO %s", p->staging[i], p->dest[i], err)) {
            /* a database of that name created meanwhile can surface as the
             * catalog's unique index (23505) */
            if (strcmp(err->sqlstate, "23505") == 0 || strcmp(err->sqlstate, "42P04") == 0) {
                pgbr_error_clear(err);
                pgbr_error_set(err, "42P04", "database \"%s\" already exists", p->dest[i]);
            }
            /* put back the ones renamed already, so the cleanup drops them */
            for (size_t j = 0; j < i; j++) {
                pgbr_error e = PGBR_ERROR_INIT;
                if (!exec_ident(p->admin, "ALTER DATABASE %s RENAME TO %s", p->dest[j], p->staging[j], &e))
                    log_error("restore job %" PRId64 ": could not undo the rename of \"%s\": %s", p->req->job_id,
                              p->dest[j], e.message ? e.message : "");
                pgbr_error_clear(&e);
            }
            return false;
        }
    }
    for (size_t i = 0; i < p->n; i++)
        p->created[i] = false;      /* they are the user's now */
    return true;
}

bool restore_execute(restore_plan *p, restore_progress_fn progress, void *arg, restore_result *out,
                     pgbr_error *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->subdir, sizeof out->subdir, "%s", p->subdir);
    if (p->tables)
        return restore_tables_execute(p, progress, arg, out, err);
    p->progress_arg = arg;
    bool ok = restore_checkpoint_load(p, err);
    if (ok && p->req->cluster && !p->roles_done) {
        if (progress && !progress(arg, 0, "restoring roles"))
            ok = pgbr_error_set(err, "57014", "restore canceled");
        ok = ok && restore_roles(p, err);
        p->roles_done = ok;
        restore_checkpoint_save(p, true);
    }
    for (size_t i = 0; ok && i < p->n; i++)
        ok = restore_database(p, i, progress, arg, out, err);
    if (ok && progress && !progress(arg, 0.99, "publishing"))
        ok = pgbr_error_set(err, "57014", "restore canceled");
    ok = ok && publish(p, err);
    if (!ok && p->req->keep_staged && p->req->keep_staged(arg, err)) {
        /* a pause or a retry: the staging databases and roles wait for the
         * next run */
        restore_checkpoint_save(p, true);
        log_info("restore job %" PRId64 ": stopped; its staging databases are kept for the next run", p->req->job_id);
        memset(&out->rows, 0, sizeof *out - offsetof(restore_result, rows));
        return false;
    }
    if (!ok) {
        if (PQstatus(p->admin) != CONNECTION_OK)
            PQreset(p->admin);
        for (size_t i = 0; i < p->n; i++)
            drop_staging(p, i);
        drop_new_roles(p);
        memset(&out->rows, 0, sizeof *out - offsetof(restore_result, rows));
    } else if (progress) {
        progress(arg, 1.0, "succeeded");
    }
    return ok;
}

/* ---- after a crash ---- */

/* Drop the staging databases the query lists (its one column). */
static int drop_listed(const char *conninfo, const char *sql, int nparams, const char *const *params,
                       const char *why, pgbr_error *err)
{
    PGconn *conn = pgclient_connect(conninfo, NULL, "pgbr restore cleanup", err);
    if (!conn)
        return -1;
    int dropped = 0;
    PGresult *res = pgclient_query_params(conn, sql, nparams, params, err);
    if (!res) {
        PQfinish(conn);
        return -1;
    }
    bool force = PQserverVersion(conn) >= 130000;
    for (int i = 0; i < PQntuples(res); i++) {
        pgbr_error e = PGBR_ERROR_INIT;
        if (exec_ident(conn, force ? "DROP DATABASE IF EXISTS %s WITH (FORCE)" : "DROP DATABASE IF EXISTS %s",
                       PQgetvalue(res, i, 0), NULL, &e)) {
            log_info("dropped staging database \"%s\" %s", PQgetvalue(res, i, 0), why);
            dropped++;
        } else {
            log_warning("could not drop staging database \"%s\": %s", PQgetvalue(res, i, 0),
                        e.message ? e.message : "");
        }
        pgbr_error_clear(&e);
    }
    PQclear(res);
    PQfinish(conn);
    return dropped;
}

int restore_drop_orphans(const char *conninfo, pgbr_error *err)
{
    return drop_listed(conninfo,
                       "SELECT d.datname FROM pg_catalog.pg_database d "
                       "WHERE d.datname ~ '^" RESTORE_STAGING_PREFIX "[0-9]+_[0-9]+$' "
                       "  AND NOT EXISTS (SELECT 1 FROM pgbr.jobs j WHERE j.id = substring(d.datname from '^"
                       RESTORE_STAGING_PREFIX "([0-9]+)_')::bigint AND j.status IN ('running', 'paused', 'pending', "
                       "'pause-requested', 'cancel-requested', 'reverting'))",
                       0, NULL, "of a restore that did not finish", err);
}

int restore_discard(const char *conninfo, int64_t job_id, const char *const *roles, size_t nroles, pgbr_error *err)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, job_id);
    const char *params[1] = { id };
    int dropped = drop_listed(conninfo,
                              "SELECT d.datname FROM pg_catalog.pg_database d "
                              "WHERE d.datname ~ ('^" RESTORE_STAGING_PREFIX "' || $1 || '_[0-9]+$')",
                              1, params, "left by its job", err);
    if (dropped < 0 || nroles == 0)
        return dropped;
    PGconn *conn = pgclient_connect(conninfo, NULL, "pgbr restore cleanup", err);
    if (!conn)
        return -1;
    for (size_t i = 0; i < nroles; i++) {
        pgbr_error e = PGBR_ERROR_INIT;
        if (exec_ident(conn, "DROP ROLE IF EXISTS %s", roles[i], NULL, &e))
            log_info("restore job %" PRId64 ": dropped role \"%s\" it had created", job_id, roles[i]);
        else
            log_warning("restore job %" PRId64 ": could not drop role \"%s\" it had created: %s", job_id, roles[i],
                        e.message ? e.message : "");
        pgbr_error_clear(&e);
    }
    PQfinish(conn);
    return dropped;
}
