/*
 * restore_job.c - RESTORE DATABASE a [, ...] FROM LATEST|'<subdir>' IN
 * <collection> [WITH new_db_name, schema_only, verify_backup_table_data,
 * detached, ...]: a restore run as a job (job.c: recorded in pgbr.jobs,
 * blocking or WITH detached), the work done by the restore engine
 * (src/restore).
 *
 * Steps: on the loop thread, the checks of exec.c, then the caller's
 * identity: nodelocal/file need the admin role (for the collection and for
 * an incremental_location alike), a non-admin needs CREATEDB
 * (and then owns what is restored); on a worker, restore_prepare reads the
 * backup and checks the targets and destination names before the job row
 * exists, so a refused RESTORE creates no job; then restore_execute.
 * RESTORE FROM ... without targets restores a whole-server backup (roles
 * and every database) and needs the admin role.
 * RESTORE TABLE <patterns> [WITH into_db, skip_missing_*] restores relations
 * into existing databases (src/restore/restore_tables.c); the patterns are
 * resolved with the client's current database and search path, read from
 * its own session. AS OF SYSTEM TIME and chains (WITH incremental_location
 * too) are restore_chain.c's. Not yet: encryption, locality-aware URIs.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "pgbr/restore.h"

typedef struct restore_state {
    char *url;
    char *subdir;               /* NULL: LATEST */
    char *incremental_location; /* NULL: none */
    char **dbs;
    int ndbs;
    char *new_db_name;
    char *owner_role;
    /* RESTORE TABLE */
    restore_table_pattern *tables;
    int ntables;
    char *into_db;
    char *current_db;           /* the client's session's */
    char **search_path;         /* its current_schemas(false) */
    int nsearch_path;
    restore_request rr;
    restore_plan *plan;
    /* AS OF SYSTEM TIME: the query that turns it into microseconds since
     * 1970, run in the client's session (its TimeZone reads a time without
     * zone), and its parameter; NULL: none */
    char *as_of_sql;
    char *as_of_param;
    char *checkpoint;           /* the run's copy of the job's checkpoint */
} restore_state;

static void state_free(void *arg)
{
    restore_state *st = arg;
    if (st == NULL)
        return;
    restore_plan_free(st->plan);
    free(st->checkpoint);
    free(st->as_of_sql);
    free(st->as_of_param);
    free(st->url);
    free(st->subdir);
    free(st->incremental_location);
    for (int i = 0; st->dbs != NULL && i < st->ndbs; i++)
        free(st->dbs[i]);
    free(st->dbs);
    free(st->new_db_name);
    free(st->owner_role);
    for (int i = 0; st->tables != NULL && i < st->ntables; i++)
        for (int k = 0; k < st->tables[i].nparts; k++)
            free((char *)st->tables[i].parts[k]);
    free(st->tables);
    free(st->into_db);
    free(st->current_db);
    for (int i = 0; i < st->nsearch_path; i++)
        free(st->search_path[i]);
    free(st->search_path);
    free(st);
}

/* ---- worker side ---- */

static void restore_save_checkpoint(void *arg, const char *json)
{
    exec_job_save_checkpoint(arg, json);
}

static bool restore_keep_staged(void *arg, const pgbr_error *err)
{
    return exec_job_will_run_again(arg, err);
}

/* The request from the state (the loop side or spec_load filled it). */
static void fill_request(exec_job *job)
{
    restore_state *st = job->state;
    st->rr.conninfo = job->conninfo;
    st->rr.collection_url = st->url;
    st->rr.storage = &job->storage;
    st->rr.subdir = st->subdir;
    st->rr.incremental_location = st->incremental_location;
    st->rr.job_id = job->id;
    st->rr.databases = (const char *const *)st->dbs;
    st->rr.ndatabases = (size_t)st->ndbs;
    st->rr.new_db_name = st->new_db_name;
    st->rr.owner_role = job->is_admin ? NULL : job->user;
    st->rr.user = job->user;
    st->rr.tables = st->tables;
    st->rr.ntables = (size_t)st->ntables;
    st->rr.into_db = st->into_db;
    st->rr.current_database = st->current_db;
    st->rr.search_path = (const char *const *)st->search_path;
    st->rr.nsearch_path = (size_t)st->nsearch_path;
    st->rr.workers = job->workers;
    /* a copy: saving a new checkpoint during the run replaces the job's */
    free(st->checkpoint);
    st->checkpoint = job->checkpoint ? strdup(job->checkpoint) : NULL;
    st->rr.checkpoint = st->checkpoint;
    st->rr.save_checkpoint = restore_save_checkpoint;
    st->rr.keep_staged = restore_keep_staged;
}

static bool restore_prepare_job(exec_job *job, struct pg_conn *conn, pgbr_error *err)
{
    restore_state *st = job->state;
    (void)conn;
    fill_request(job);
    if (!restore_prepare(&st->rr, &st->plan, err))
        return false;
    /* the job records the backup LATEST resolved to (reference 1.7): the
     * canonical text has exactly one " FROM LATEST IN " */
    const char *latest = strstr(job->description, " FROM LATEST IN ");
    char *desc = NULL;
    if (latest != NULL &&
        asprintf(&desc, "%.*s FROM '%s' IN %s", (int)(latest - job->description), job->description,
                 restore_plan_subdir(st->plan), latest + strlen(" FROM LATEST IN ")) >= 0) {
        free(job->description);
        job->description = desc;
    }
    return true;
}

static bool restore_work(exec_job *job, pgbr_error *err)
{
    restore_state *st = job->state;
    restore_result res;
    memset(&res, 0, sizeof res);
    /* another run (a retry, a resume, an adoption): the checks again */
    if (st->plan == NULL) {
        fill_request(job);
        if (!restore_prepare(&st->rr, &st->plan, err))
            return false;
    }
    bool ok = restore_execute(st->plan, exec_job_progress, job, &res, err);
    job->rows = res.rows;
    job->index_entries = res.index_entries;
    job->bytes = res.bytes;
    restore_plan_free(st->plan);
    st->plan = NULL;
    return ok;
}

/* ---- another run of the job (job_node.c) ---- */

static json_t *string_array(char *const *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *string_or_null(const char *v)
{
    return v ? json_string(v) : json_null();
}

static char *spec_save(exec_job *job, bool redact)
{
    restore_state *st = job->state;
    bool secret = false;
    const restore_request *r = &st->rr;
    json_t *o = json_object(), *tables = json_array();
    for (int i = 0; tables && i < st->ntables; i++) {
        json_t *parts = json_array();
        for (int k = 0; parts && k < st->tables[i].nparts; k++)
            json_array_append_new(parts, json_string(st->tables[i].parts[k]));
        json_array_append_new(tables, json_pack("{s:o, s:b}", "parts", parts, "star", st->tables[i].star));
    }
    /* the backup LATEST resolved to: a later run restores the same one */
    const char *subdir = st->plan ? restore_plan_subdir(st->plan) : st->subdir;
    json_object_set_new(o, "url", exec_spec_url(st->url, redact, &secret));
    json_object_set_new(o, "incremental_location", exec_spec_url(st->incremental_location, redact, &secret));
    json_object_set_new(o, "secrets", json_boolean(secret));
    json_object_set_new(o, "subdir", string_or_null(subdir));
    json_object_set_new(o, "databases", string_array(st->dbs, st->ndbs));
    json_object_set_new(o, "new_db_name", string_or_null(st->new_db_name));
    json_object_set_new(o, "tables", tables);
    json_object_set_new(o, "into_db", string_or_null(st->into_db));
    json_object_set_new(o, "current_database", string_or_null(st->current_db));
    json_object_set_new(o, "search_path", string_array(st->search_path, st->nsearch_path));
    json_object_set_new(o, "cluster", json_boolean(r->cluster));
    json_object_set_new(o, "as_of", json_boolean(r->as_of));
    json_object_set_new(o, "as_of_us", json_integer(r->as_of_us));
    json_object_set_new(o, "schema_only", json_boolean(r->schema_only));
    json_object_set_new(o, "verify_data", json_boolean(r->verify_data));
    json_object_set_new(o, "skip_missing_foreign_keys", json_boolean(r->skip_missing_foreign_keys));
    json_object_set_new(o, "skip_missing_sequences", json_boolean(r->skip_missing_sequences));
    json_object_set_new(o, "skip_missing_sequence_owners", json_boolean(r->skip_missing_sequence_owners));
    json_object_set_new(o, "skip_missing_views", json_boolean(r->skip_missing_views));
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* A string member: *out NULL for null or missing; false when it is there
 * but not a string (or out of memory). */
static bool spec_string(json_t *o, const char *key, char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    return json_is_string(v) && (*out = strdup(json_string_value(v))) != NULL;
}

static bool spec_strings(json_t *o, const char *key, char ***out, int *n)
{
    json_t *a = json_object_get(o, key);
    size_t len = json_array_size(a);
    *n = 0;
    if (!json_is_array(a) || (*out = calloc(len + 1, sizeof **out)) == NULL)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!json_is_string(json_array_get(a, i)) ||
            ((*out)[(*n)++] = strdup(json_string_value(json_array_get(a, i)))) == NULL)
            return false;
    return true;
}

static bool spec_load(exec_job *job, const char *text, pgbr_error *err)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    restore_state *st = calloc(1, sizeof *st);
    if (!st) {
        json_decref(o);
        return pgbr_error_set(err, "53200", "out of memory");
    }
    json_t *tables = json_object_get(o, "tables");
    bool ok = json_is_object(o) && spec_string(o, "url", &st->url) && st->url &&
              spec_string(o, "subdir", &st->subdir) &&
              spec_string(o, "incremental_location", &st->incremental_location) && spec_strings(o, "databases", &st->dbs, &st->ndbs) &&
              spec_string(o, "new_db_name", &st->new_db_name) && spec_string(o, "into_db", &st->into_db) &&
              spec_string(o, "current_database", &st->current_db) &&
              spec_strings(o, "search_path", &st->search_path, &st->nsearch_path) && json_is_array(tables) &&
              (st->tables = calloc(json_array_size(tables) + 1, sizeof *st->tables)) != NULL;
    for (size_t i = 0; ok && i < json_array_size(tables); i++) {
        json_t *t = json_array_get(tables, i), *parts = json_object_get(t, "parts");
        restore_table_pattern *p = &st->tables[st->ntables++];
        p->star = json_is_true(json_object_get(t, "star"));
        ok = json_is_array(parts) && json_array_size(parts) <= 3;
        for (size_t k = 0; ok && k < json_array_size(parts); k++)
            ok = json_is_string(json_array_get(parts, k)) &&
                 (p->parts[p->nparts++] = strdup(json_string_value(json_array_get(parts, k)))) != NULL;
    }
    if (ok) {
        restore_request *r = &st->rr;
        r->cluster = json_is_true(json_object_get(o, "cluster"));
        r->as_of = json_is_true(json_object_get(o, "as_of"));
        r->as_of_us = json_integer_value(json_object_get(o, "as_of_us"));
        r->schema_only = json_is_true(json_object_get(o, "schema_only"));
        r->verify_data = json_is_true(json_object_get(o, "verify_data"));
        r->skip_missing_foreign_keys = json_is_true(json_object_get(o, "skip_missing_foreign_keys"));
        r->skip_missing_sequences = json_is_true(json_object_get(o, "skip_missing_sequences"));
        r->skip_missing_sequence_owners = json_is_true(json_object_get(o, "skip_missing_sequence_owners"));
        r->skip_missing_views = json_is_true(json_object_get(o, "skip_missing_views"));
    }
    json_decref(o);
    if (!ok) {
        state_free(st);
        return pgbr_error_set(err, "XX000", "the stored request of the job cannot be read");
    }
    job->state = st;
    return true;
}

/* What an earlier run staged: its staging databases. */
static bool restore_discard_job(exec_job *job, pgbr_error *err)
{
    json_error_t jerr;
    json_t *cp = job->checkpoint ? json_loads(job->checkpoint, 0, &jerr) : NULL;
    json_t *roles = json_object_get(cp, "new_roles");
    size_t n = json_array_size(roles);
    const char **names = calloc(n + 1, sizeof *names);
    size_t k = 0;
    for (size_t i = 0; names && i < n; i++)
        if (json_is_string(json_array_get(roles, i)))
            names[k++] = json_string_value(json_array_get(roles, i));
    bool ok = restore_discard(job->conninfo, job->id, names, k, err) >= 0;
    free(names);
    json_decref(cp);
    return ok;
}

static const exec_job_ops restore_ops = { "RESTORE", restore_prepare_job, restore_work, state_free,
                                          spec_save, spec_load, restore_discard_job };

const exec_job_ops *exec_restore_job_ops(void)
{
    return &restore_ops;
}

/* ---- loop side ---- */

static void on_createdb(exec_request *req, result_set *rs, pgbr_error *err)
{
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    bool may = rs->nrows == 1 && strcmp(result_set_value(rs, 0, 0), "t") == 0;
    result_set_free(rs);
    if (!may) {
        exec_fail(req, "42501", "permission denied to create database");
        return;
    }
    exec_job_submit(req);
}

/* RESTORE TABLE: the client's database and search path resolve the
 * patterns. Rows: (current_database(), NULL, 0), then (NULL, schema, n). */
static void on_search_path(exec_request *req, result_set *rs, pgbr_error *err)
{
    restore_state *st = req->job->state;
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    bool ok = rs->nrows >= 1 && (st->current_db = strdup(result_set_value(rs, 0, 0))) != NULL;
    st->search_path = calloc((size_t)rs->nrows + 1, sizeof *st->search_path);
    ok = ok && st->search_path != NULL;
    for (int i = 1; ok && i < rs->nrows; i++) {
        ok = (st->search_path[st->nsearch_path] = strdup(result_set_value(rs, i, 1))) != NULL;
        if (ok)
            st->nsearch_path++;
    }
    result_set_free(rs);
    if (!ok) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_job_submit(req);
}

static void checked_identity(exec_request *req);

static void on_as_of(exec_request *req, result_set *rs, pgbr_error *err)
{
    restore_state *st = req->job->state;
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    const char *v = rs->nrows == 1 ? result_set_value(rs, 0, 0) : NULL;
    if (v == NULL) {
        result_set_free(rs);
        exec_fail(req, "22023", "AS OF SYSTEM TIME: the expression must give a time");
        return;
    }
    st->rr.as_of = true;
    st->rr.as_of_us = strtoll(v, NULL, 10);
    result_set_free(rs);
    checked_identity(req);
}

static void on_identity(exec_request *req)
{
    restore_state *st = req->job->state;
    if (st->as_of_sql) {
        const char *params[1] = { st->as_of_param };
        exec_run_query(req, st->as_of_sql, st->as_of_param ? 1 : 0, params, on_as_of);
        return;
    }
    checked_identity(req);
}

static void checked_identity(exec_request *req)
{
    restore_state *st = req->job->state;
    if (st->rr.cluster && !req->is_admin) {
        exec_fail(req, "42501", "only users with the admin role or the RESTORE system privilege are allowed to "
                                "perform a full cluster restore");
        return;
    }
    if (!exec_check_implicit_access(req, st->url) ||
        (st->incremental_location != NULL && !exec_check_implicit_access(req, st->incremental_location)))
        return;
    if (st->ntables > 0) {
        /* a non-admin's rights are PostgreSQL's: the restore runs under
         * SET ROLE to the client's role, CONNECT is checked first */
        exec_run_query(req, "SELECT pg_catalog.current_database()::text, NULL::text, 0::bigint UNION ALL "
                            "SELECT NULL, s, o FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) "
                            "WITH ORDINALITY AS u(s, o) ORDER BY 3",
                       0, NULL, on_search_path);
        return;
    }
    if (req->is_admin) {
        exec_job_submit(req);
        return;
    }
    exec_run_query(req, "SELECT rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = current_user", 0, NULL,
                   on_createdb);
}

void exec_restore_job_start(exec_request *req, bool detached)
{
    const sql_restore *r = &req->stmt->u.restore;
    const sql_restore_options *o = &r->options;
    pgbr_error err = PGBR_ERROR_INIT;
    const char *url, *subdir = NULL, *new_name = NULL;

    if (r->targets.kind == SQL_TARGET_SYSTEM_USERS) {
        exec_fail_not_implemented(req, "RESTORE SYSTEM USERS");
        return;
    }
    if (o->into_db != NULL && r->targets.kind == SQL_TARGET_CLUSTER) {
        exec_fail(req, "22023", "cannot use \"into_db\" option when restoring database(s)");
        return;
    }
    if (o->skip_missing_foreign_keys.expr || o->skip_missing_sequences.expr || o->skip_missing_sequence_owners.expr ||
        o->skip_missing_views.expr) {
        exec_fail_not_implemented(req, "RESTORE with an option given as an expression");
        return;
    }
    if (r->deprecated_path_form) {
        exec_fail_not_implemented(req, "RESTORE ... FROM '<path>' (use RESTORE ... FROM LATEST IN '<collection>')");
        return;
    }
    if (o->encryption_passphrase || o->kms || o->execution_locality || o->virtual_cluster_name || o->virtual_cluster ||
        o->experimental_deferred_copy.set) {
        exec_fail_not_implemented(req,
                                  "RESTORE with encryption, EXECUTION LOCALITY, virtual clusters or deferred copy");
        return;
    }
    if (o->detached.expr != NULL || o->schema_only.expr != NULL || o->verify_backup_table_data.expr != NULL) {
        exec_fail_not_implemented(req, "RESTORE with an option given as an expression");
        return;
    }
    if (detached && req->info.txn_status == 'T') {
        exec_fail_not_implemented(req, "RESTORE ... WITH detached inside a transaction block");
        return;
    }
    if (r->from != NULL && !exec_check_incremental_location(req, o->incremental_location, r->from[0].n))
        return;
    if (r->nlocalities != 1 || r->from == NULL || r->from[0].n != 1) {
        exec_fail_not_implemented(req, "locality-aware RESTORE");
        return;
    }
    url = exec_string_value(req, &r->from[0].items[0], &err);
    const char *inc = NULL;
    if (url != NULL && o->incremental_location != NULL)
        inc = exec_string_value(req, &o->incremental_location->items[0], &err);
    if (url != NULL && r->subdir != NULL)
        subdir = exec_string_value(req, r->subdir, &err);
    if (url != NULL && o->new_db_name != NULL)
        new_name = exec_string_value(req, o->new_db_name, &err);
    const char *into = NULL;
    if (url != NULL && !pgbr_error_is_set(&err) && o->into_db != NULL)
        into = exec_string_value(req, o->into_db, &err);
    if (pgbr_error_is_set(&err)) {
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    if (new_name != NULL && *new_name == '\0') {
        exec_fail(req, "22023", "new_db_name must not be empty");
        return;
    }
    if (into != NULL && *into == '\0') {
        exec_fail(req, "22023", "into_db must not be empty");
        return;
    }
    restore_state *st = calloc(1, sizeof *st);
    bool ok = st != NULL;
    if (ok) {
        st->url = strdup(url);
        st->subdir = subdir ? strdup(subdir) : NULL;
        st->incremental_location = inc ? strdup(inc) : NULL;
        st->new_db_name = new_name ? strdup(new_name) : NULL;
        st->rr.cluster = r->targets.kind == SQL_TARGET_CLUSTER;
        bool tables = r->targets.kind == SQL_TARGET_TABLES;
        st->ndbs = st->rr.cluster || tables ? 0 : r->targets.n;
        if (tables) {
            st->ntables = r->targets.n;
            st->tables = calloc((size_t)st->ntables + 1, sizeof *st->tables);
            ok = ok && st->tables != NULL;
            for (int i = 0; ok && i < st->ntables; i++) {
                const sql_table_pattern *pt = &r->targets.tables[i];
                st->tables[i].star = pt->star;
                for (int k = 0; ok && k < pt->nparts; k++) {
                    ok = (st->tables[i].parts[k] = strdup(pt->parts[k])) != NULL;
                    if (ok)
                        st->tables[i].nparts = k + 1;
                }
            }
            st->into_db = into ? strdup(into) : NULL;
            ok = ok && (!into || st->into_db);
        }
        st->rr.skip_missing_foreign_keys = (o->skip_missing_foreign_keys.set && o->skip_missing_foreign_keys.value);
        st->rr.skip_missing_sequences = (o->skip_missing_sequences.set && o->skip_missing_sequences.value);
        st->rr.skip_missing_sequence_owners = (o->skip_missing_sequence_owners.set && o->skip_missing_sequence_owners.value);
        st->rr.skip_missing_views = (o->skip_missing_views.set && o->skip_missing_views.value);
        st->dbs = calloc((size_t)st->ndbs + 1, sizeof *st->dbs);
        ok = ok && st->url && (!subdir || st->subdir) && (!inc || st->incremental_location) &&
             (!new_name || st->new_db_name) && st->dbs;
        for (int i = 0; ok && i < st->ndbs; i++)
            ok = (st->dbs[i] = strdup(r->targets.databases[i])) != NULL;
        st->rr.schema_only = o->schema_only.set && o->schema_only.value;
        st->rr.verify_data = o->verify_backup_table_data.set && o->verify_backup_table_data.value;
    }
    if (ok && r->as_of != NULL) {
        /* a string (or $n): a time, or an interval to add to now() when it
         * starts with a sign ('-10s'); an integer: nanoseconds since 1970;
         * any other expression: evaluated as a timestamptz */
        static const char text_sql[] =
            "SELECT (EXTRACT(epoch FROM CASE WHEN $1 ~ '^\\s*[-+]' THEN pg_catalog.now() + $1::interval "
            "ELSE $1::timestamptz END) * 1000000)::int8::text";
        const char *value = NULL;
        if (r->as_of->param > 0 && (!exec_param_value(req, r->as_of->param, &value, &err) || value == NULL)) {
            state_free(st);
            if (pgbr_error_is_set(&err))
                exec_finish(req, NULL, &err);
            else
                exec_fail(req, "22004", "AS OF SYSTEM TIME must not be NULL");
            pgbr_error_clear(&err);
            return;
        }
        if (r->as_of->is_string || r->as_of->param > 0) {
            st->as_of_sql = strdup(text_sql);
            st->as_of_param = strdup(value ? value : r->as_of->text);
            ok = st->as_of_sql && st->as_of_param;
        } else if (r->as_of->is_integer) {
            ok = asprintf(&st->as_of_sql, "SELECT (%s::numeric / 1000)::int8::text", r->as_of->text) >= 0;
        } else {
            ok = asprintf(&st->as_of_sql, "SELECT (EXTRACT(epoch FROM (%s)::timestamptz) * 1000000)::int8::text",
                          r->as_of->text) >= 0;
        }
        if (!ok)
            st->as_of_sql = NULL;
    }
    if (!ok || (req->job = exec_job_new(req, &restore_ops, st, detached)) == NULL) {
        if (!ok)
            state_free(st);
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_identify(req, on_identity);
}
