/*
 * show_backup.c - SHOW BACKUP [SCHEMAS] {FROM LATEST | [FROM] '<subdir>'} IN
 * <collection> [WITH ...] and the deprecated SHOW BACKUP '<backup URL>'
 * (reference sections 4.4 and 15, docs/statements.md): one row per object
 * per backup layer, the layers' manifests as JSON (as_json), or a check that
 * every file the manifests list is in storage with its recorded size
 * (check_files).
 *
 * Steps, each a continuation of the last:
 *   1. loop thread: refuse what pgbr cannot honour (FILES, RANGES, VALIDATE,
 *      CONNECTION, privileges and encryption options); on the client's own
 *      session, who is asking (nodelocal:// and file:// need the admin role,
 *      as for SHOW BACKUPS IN, for the collection and an incremental_location
 *      alike);
 *   2. worker: resolve the backup, read and check each layer's manifest (the
 *      full one, then its incrementals in end time order, from the
 *      collection and, WITH incremental_location, from that location too),
 *      stat the files with check_files, build the rows with times in the
 *      manifest's UTC text;
 *   3. loop thread: the client's own session turns those times into its
 *      timestamptz text (SELECT ...::timestamptz), so they follow its
 *      DateStyle and TimeZone byte for byte, as SHOW JOBS's do.
 *
 * The rows say what BACKUP_MANIFEST records (docs/format.md) and nothing
 * more: create_statement is rebuilt from the recorded columns; the full DDL
 * is the layer's schema/<db>.dump, which pg_restore reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "pgbr/layout.h"
#include "pgbr/log.h"
#include "pgbr/manifest.h"
#include "pgbr/storage.h"

/* check_files lists at most this many problems (reference section 15). */
#define SHOW_BACKUP_MAX_LISTED 10

static void *sb_xalloc(void *p)
{
    if (p == NULL) {
        log_write(LOG_LEVEL_FATAL, "out of memory in SHOW BACKUP");
        abort();
    }
    return p;
}

static char *sb_strdup(const char *s)
{
    return s == NULL ? NULL : sb_xalloc(strdup(s));
}

void exec_show_backup_free(exec_show_backup_state *state)
{
    free(state->uri);
    free(state->subdir);
    free(state->inc_uri);
    result_set_free(state->rs);
    pgbr_error_clear(&state->err);
    for (int i = 0; i < state->ntimes; i++)
        free(state->times[i]);
    free(state->times);
    memset(state, 0, sizeof *state);
}

/* ---------------------------------------------------------------------------
 * Text building
 * ------------------------------------------------------------------------- */

typedef struct sb_text {
    char *s;
    size_t len, cap;
} sb_text;

static void sb_append_n(sb_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap == 0 ? 128 : t->cap;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->s = sb_xalloc(realloc(t->s, cap));
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void sb_append(sb_text *t, const char *s)
{
    sb_append_n(t, s, strlen(s));
}

/*
 * Keywords PostgreSQL's quote_ident quotes (every category but unreserved):
 * pg_get_keywords() of PostgreSQL 15 plus what 16 and 17 added, sorted. A
 * word quoted that a given server would not quote still reads back the same.
 */
static const char *const sb_quoted_keywords[] = {
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
    "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character",
    "check", "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
    "current_timestamp", "current_user", "dec", "decimal", "default", "deferrable", "desc",
    "distinct", "do", "else", "end", "except", "exists", "extract", "false", "fetch", "float", "for",
    "foreign", "freeze", "from", "full", "grant", "greatest", "group", "grouping", "having", "ilike",
    "in", "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into", "is",
    "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object",
    "json_objectagg", "json_query", "json_scalar", "json_serialize", "json_table", "json_value",
    "lateral", "leading", "least", "left", "like", "limit", "localtime", "localtimestamp",
    "merge_action", "national", "natural", "nchar", "none", "normalize", "not", "notnull", "null",
    "nullif", "numeric", "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay",
    "placing", "position", "precision", "primary", "real", "references", "returning", "right", "row",
    "select", "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric",
    "system_user", "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat",
    "trim", "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose",
    "when", "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
    "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
};

static int sb_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* As PostgreSQL's quote_ident: bare only when lower-case letters, digits and
 * '_', not starting with a digit, and not a keyword it quotes. */
static void sb_append_ident(sb_text *t, const char *name)
{
    bool safe = (name[0] >= 'a' && name[0] <= 'z') || name[0] == '_';

    for (const char *p = name; safe && *p != '\0'; p++)
        safe = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (safe && bsearch(&name, sb_quoted_keywords, sizeof sb_quoted_keywords / sizeof sb_quoted_keywords[0],
                        sizeof sb_quoted_keywords[0], sb_cmp_str) != NULL)
        safe = false;
    if (safe) {
        sb_append(t, name);
        return;
    }
    sb_append_n(t, "\"", 1);
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '"')
            sb_append_n(t, "\"", 1);
        sb_append_n(t, p, 1);
    }
    sb_append_n(t, "\"", 1);
}

static void sb_append_qualified(sb_text *t, const char *schema, const char *name)
{
    sb_append_ident(t, schema);
    sb_append_n(t, ".", 1);
    sb_append_ident(t, name);
}

/* The create_statement of a table, rebuilt from its recorded columns; NULL
 * (caller frees) for kinds whose definition the manifest does not hold. */
static char *sb_create_table(const manifest_table *mt)
{
    sb_text t = { 0 };

    if (mt->kind != MANIFEST_REL_TABLE && mt->kind != MANIFEST_REL_PARTITIONED)
        return NULL;
    sb_append(&t, "CREATE TABLE ");
    sb_append_qualified(&t, mt->schema, mt->name);
    sb_append(&t, " (");
    for (size_t i = 0; i < mt->ncolumns; i++) {
        if (i > 0)
            sb_append(&t, ", ");
        sb_append_ident(&t, mt->columns[i].name);
        sb_append_n(&t, " ", 1);
        sb_append(&t, mt->columns[i].type); /* format_type() text: already quoted */
    }
    sb_append(&t, ")");
    return t.s;
}

static char *sb_create_sequence(const manifest_sequence *ms)
{
    sb_text t = { 0 };

    sb_append(&t, "CREATE SEQUENCE ");
    sb_append_qualified(&t, ms->schema, ms->name);
    return t.s;
}

/* ---------------------------------------------------------------------------
 * The chain: the full backup's manifest, then its incrementals'
 * ------------------------------------------------------------------------- */

typedef struct sb_layer {
    storage *st;        /* borrowed: the collection or the incremental location */
    char *dir;          /* relative to the storage root, no leading '/' ("" = the root) */
    manifest *m;
    char *raw;          /* as_json: the manifest as stored */
} sb_layer;

typedef struct sb_chain {
    sb_layer *layers;
    size_t n;
} sb_chain;

static void sb_chain_free(sb_chain *chain)
{
    for (size_t i = 0; i < chain->n; i++) {
        free(chain->layers[i].dir);
        manifest_free(chain->layers[i].m);
        free(chain->layers[i].raw);
    }
    free(chain->layers);
    chain->layers = NULL;
    chain->n = 0;
}

static bool sb_add_layer(storage *st, const char *dir, bool want_raw, sb_chain *chain, pgbr_error *err)
{
    sb_layer layer = { 0 };

    while (*dir == '/')
        dir++;
    layer.m = layout_read_manifest(st, dir, want_raw ? &layer.raw : NULL, NULL, err);
    if (layer.m == NULL)
        return false;
    layer.dir = sb_strdup(dir);
    layer.st = st;
    chain->layers = sb_xalloc(realloc(chain->layers, (chain->n + 1) * sizeof *chain->layers));
    chain->layers[chain->n++] = layer;
    return true;
}

/* The deprecated form: the URL is the backup itself. */
static bool sb_read_deprecated(const exec_show_backup_state *state, storage *st, sb_chain *chain,
                               pgbr_error *err)
{
    layout_kind kind;

    if (!layout_classify(st, &kind, err))
        return false;
    if (kind != LAYOUT_KIND_BACKUP) {
        pgbr_error_set(err, "58P01", "no backup found at \"%s\"", storage_display_url(st));
        pgbr_error_detail(err, "The location holds no %s file.", MANIFEST_FILE_NAME);
        if (kind == LAYOUT_KIND_COLLECTION)
            pgbr_error_hint(err, "The specified path is the root of a backup collection. Use SHOW BACKUPS IN "
                                 "with this path to list all the backup subdirectories in the collection. SHOW "
                                 "BACKUP can be used with any of these subdirectories to inspect a backup.");
        return false;
    }
    return sb_add_layer(st, "", state->as_json, chain, err);
}

/* The full backup, then every layer found for it (layout_find_layers: in
 * the collection, and in inc when given), in end time order. */
static bool sb_read_chain(const exec_show_backup_state *state, storage *st, storage *inc, sb_chain *chain,
                          pgbr_error *err)
{
    char subdir[LAYOUT_SUBDIR_SIZE];
    layout_layers layers = { 0 };
    bool ok;

    if (state->deprecated)
        return sb_read_deprecated(state, st, chain, err);
    if (!layout_resolve_backup(st, state->subdir, subdir, err) ||
        !sb_add_layer(st, subdir, state->as_json, chain, err) ||
        !layout_find_layers(st, inc, subdir, &layers, err))
        return false;
    ok = true;
    for (size_t i = 0; ok && i < layers.n; i++)
        ok = sb_add_layer(layers.items[i].st, layers.items[i].dir, state->as_json, chain, err);
    layout_layers_free(&layers);
    return ok;
}

/* ---------------------------------------------------------------------------
 * check_files
 * ------------------------------------------------------------------------- */

typedef struct sb_check {
    int problems;                               /* found so far (we stop past the limit) */
    char *listed[SHOW_BACKUP_MAX_LISTED];       /* as shown: URL / layer dir / path */
    char *size_detail;                          /* the first size mismatch, for the DETAIL */
} sb_check;

/* Stat one file of the layer; a missing, unreadable or (size known) wrongly
 * sized file is a problem. */
static void sb_check_file(sb_check *c, const sb_layer *layer, const char *path, bool check_size,
                          uint64_t size)
{
    pgbr_error err = PGBR_ERROR_INIT;
    storage_info info = { 0 };
    sb_text rel = { 0 };
    char *shown = NULL;
    bool found;

    if (c->problems > SHOW_BACKUP_MAX_LISTED)
        return; /* enough to choose the heading */
    if (*layer->dir != '\0') {
        sb_append(&rel, layer->dir);
        sb_append_n(&rel, "/", 1);
    }
    sb_append(&rel, path);
    /* An error (permissions, a symlink refused) is a problem like absence:
     * the file cannot be read from the backup. */
    found = storage_stat(layer->st, rel.s, &info, &err) && info.exists;
    pgbr_error_clear(&err);
    if (found && (!check_size || info.size == size)) {
        free(rel.s);
        return;
    }
    if (asprintf(&shown, "%s/%s", storage_display_url(layer->st), rel.s) < 0)
        sb_xalloc(NULL);
    free(rel.s);
    if (found && c->size_detail == NULL &&
        asprintf(&c->size_detail, "File \"%s\" has %llu bytes where the manifest records %llu.", shown,
                 (unsigned long long)info.size, (unsigned long long)size) < 0)
        sb_xalloc(NULL);
    if (c->problems < SHOW_BACKUP_MAX_LISTED)
        c->listed[c->problems] = shown;
    else
        free(shown);
    c->problems++;
}

typedef struct sb_file_end {
    const char *path;
    size_t idx;         /* in manifest order */
    uint64_t end;
} sb_file_end;

static int sb_by_path(const void *a, const void *b)
{
    const sb_file_end *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Every file the manifests list: each database's schema dump, each table's
 * data files (with their sizes), a whole-server backup's globals. Fails
 * with the reference's wording, SQLSTATE 58P01. */
static bool sb_check_files(const sb_chain *chain, pgbr_error *err)
{
    sb_check c = { 0 };
    sb_text msg = { 0 };

    for (size_t l = 0; l < chain->n; l++) {
        const sb_layer *layer = &chain->layers[l];
        const manifest *m = layer->m;
        for (size_t d = 0; d < m->ndatabases; d++) {
            const manifest_database *db = m->databases[d];
            if (db->schema_file != NULL)
                sb_check_file(&c, layer, db->schema_file, false, 0);
            /* a bundle holds several tables' files: check each path once
             * (where the manifest lists it first), for the size its last
             * member ends at */
            size_t nf = 0, k = 0;
            for (size_t t = 0; t < db->ntables; t++)
                nf += db->tables[t]->nfiles;
            sb_file_end *ends = sb_xalloc(calloc(nf ? nf : 1, sizeof *ends));
            uint64_t *check = sb_xalloc(calloc(nf ? nf : 1, sizeof *check));
            for (size_t t = 0; t < db->ntables; t++)
                for (size_t f = 0; f < db->tables[t]->nfiles; f++) {
                    const manifest_file *mf = db->tables[t]->files[f];
                    ends[k].path = mf->path;
                    ends[k].idx = k;
                    ends[k++].end = mf->offset + mf->stored_bytes;
                }
            qsort(ends, nf, sizeof *ends, sb_by_path);
            for (size_t i = 0; i < nf; i++) {
                size_t first = i;
                uint64_t end = ends[i].end;
                while (i + 1 < nf && strcmp(ends[i + 1].path, ends[i].path) == 0) {
                    i++;
                    if (ends[i].end > end)
                        end = ends[i].end;
                }
                for (size_t j = first; j <= i; j++)
                    check[ends[j].idx] = j == first ? end + 1 : 0;  /* 0: not here */
            }
            k = 0;
            for (size_t t = 0; t < db->ntables; t++)
                for (size_t f = 0; f < db->tables[t]->nfiles; f++, k++)
                    if (check[k] != 0)
                        sb_check_file(&c, layer, db->tables[t]->files[f]->path, true, check[k] - 1);
            free(check);
            free(ends);
        }
        if (m->globals_file != NULL)
            sb_check_file(&c, layer, m->globals_file, false, 0);
    }
    if (c.problems == 0)
        return true;
    sb_append(&msg, c.problems > SHOW_BACKUP_MAX_LISTED ? "Multiple files cannot be read from the backup including:"
                                                        : "The following files are missing from the backup:");
    for (int i = 0; i < c.problems && i < SHOW_BACKUP_MAX_LISTED; i++) {
        sb_append(&msg, "\n\t");
        sb_append(&msg, c.listed[i]);
        free(c.listed[i]);
    }
    pgbr_error_set(err, "58P01", "%s", msg.s);
    if (c.size_detail != NULL)
        pgbr_error_detail(err, "%s", c.size_detail);
    free(c.size_detail);
    free(msg.s);
    return false;
}

/* ---------------------------------------------------------------------------
 * The rows
 * ------------------------------------------------------------------------- */

enum {
    SB_DATABASE_NAME, SB_DATABASE_ID, SB_PARENT_SCHEMA_NAME, SB_PARENT_SCHEMA_ID, SB_OBJECT_NAME,
    SB_OBJECT_ID, SB_OBJECT_TYPE, SB_BACKUP_TYPE, SB_START_TIME, SB_END_TIME, SB_SIZE_BYTES, SB_ROWS,
    SB_IS_FULL_CLUSTER, SB_REGIONS, SB_CREATE_STATEMENT, SB_FILE_BYTES, SB_NFIELDS
};

/* Every column SHOW BACKUP may show, in the reference's order (debug_ids
 * columns follow the column they describe); describe.c must agree. */
static const struct {
    const char *name;
    uint32_t type;
} sb_fields[SB_NFIELDS] = {
    [SB_DATABASE_NAME] = { "database_name", PGBR_OID_TEXT },
    [SB_DATABASE_ID] = { "database_id", PGBR_OID_INT8 },
    [SB_PARENT_SCHEMA_NAME] = { "parent_schema_name", PGBR_OID_TEXT },
    [SB_PARENT_SCHEMA_ID] = { "parent_schema_id", PGBR_OID_INT8 },
    [SB_OBJECT_NAME] = { "object_name", PGBR_OID_TEXT },
    [SB_OBJECT_ID] = { "object_id", PGBR_OID_INT8 },
    [SB_OBJECT_TYPE] = { "object_type", PGBR_OID_TEXT },
    [SB_BACKUP_TYPE] = { "backup_type", PGBR_OID_TEXT },
    [SB_START_TIME] = { "start_time", PGBR_OID_TIMESTAMPTZ },
    [SB_END_TIME] = { "end_time", PGBR_OID_TIMESTAMPTZ },
    [SB_SIZE_BYTES] = { "size_bytes", PGBR_OID_INT8 },
    [SB_ROWS] = { "rows", PGBR_OID_INT8 },
    [SB_IS_FULL_CLUSTER] = { "is_full_cluster", PGBR_OID_BOOL },
    [SB_REGIONS] = { "regions", PGBR_OID_TEXT },
    [SB_CREATE_STATEMENT] = { "create_statement", PGBR_OID_TEXT },
    [SB_FILE_BYTES] = { "file_bytes", PGBR_OID_INT8 },
};

/* Which fields this statement shows: field -> column index, or -1. */
typedef struct sb_columns {
    int index[SB_NFIELDS];
    int n;
} sb_columns;

static bool sb_field_shown(const exec_show_backup_state *state, int field)
{
    switch (field) {
    case SB_DATABASE_ID:
    case SB_PARENT_SCHEMA_ID:
    case SB_OBJECT_ID:
        return state->debug_ids;
    case SB_CREATE_STATEMENT:
        return state->schemas;
    case SB_FILE_BYTES:
        return state->check_files;
    default:
        return true;
    }
}

static result_set *sb_new_result(const exec_show_backup_state *state, sb_columns *cols)
{
    const char *names[SB_NFIELDS];
    uint32_t types[SB_NFIELDS];

    cols->n = 0;
    for (int f = 0; f < SB_NFIELDS; f++) {
        cols->index[f] = -1;
        if (!sb_field_shown(state, f))
            continue;
        names[cols->n] = sb_fields[f].name;
        types[cols->n] = sb_fields[f].type;
        cols->index[f] = cols->n++;
    }
    return result_set_new(cols->n, names, types);
}

/* One row being filled: values by field; numbers get their own buffers. */
typedef struct sb_row {
    const char *v[SB_NFIELDS];
    char object_id[24], size_bytes[24], rows[24], file_bytes[24];
} sb_row;

static void sb_add_row(result_set *rs, const sb_columns *cols, const sb_row *row)
{
    const char *values[SB_NFIELDS];

    for (int f = 0; f < SB_NFIELDS; f++)
        if (cols->index[f] >= 0)
            values[cols->index[f]] = row->v[f];
    result_set_add_row(rs, values);
}

/* The fields every row of a layer shares. */
static void sb_row_init(sb_row *row, const manifest *m, const char *start, const char *end)
{
    memset(row, 0, sizeof *row);
    row->v[SB_BACKUP_TYPE] = m->backup_type == MANIFEST_BACKUP_FULL ? "full" : "incremental";
    row->v[SB_START_TIME] = start;
    row->v[SB_END_TIME] = end;
    row->v[SB_IS_FULL_CLUSTER] = m->targets.kind == MANIFEST_TARGET_CLUSTER ? "t" : "f";
}

/* The distinct schemas of a database's tables and sequences, sorted
 * bytewise. *n gets their number; the strings belong to the manifest. */
static const char **sb_schemas(const manifest_database *db, size_t *n)
{
    size_t total = db->ntables + db->nsequences, k = 0;
    const char **all = sb_xalloc(calloc(total + 1, sizeof *all));

    for (size_t i = 0; i < db->ntables; i++)
        all[k++] = db->tables[i]->schema;
    for (size_t i = 0; i < db->nsequences; i++)
        all[k++] = db->sequences[i]->schema;
    qsort(all, total, sizeof *all, sb_cmp_str);
    *n = 0;
    for (size_t i = 0; i < total; i++)
        if (*n == 0 || strcmp(all[*n - 1], all[i]) != 0)
            all[(*n)++] = all[i];
    return all;
}

/*
 * The rows of one layer: per database, the database, its schemas (sorted),
 * its tables (manifest order: tables, then materialized views) and its
 * sequences, which CockroachDB lists as tables: object_type `table`, with
 * size_bytes, rows and file_bytes 0 (their value lives in the manifest, not
 * in a data file).
 */
static void sb_layer_rows(const exec_show_backup_state *state, result_set *rs, const sb_columns *cols,
                          const manifest *m)
{
    char start[MANIFEST_TIME_TEXT_SIZE], end[MANIFEST_TIME_TEXT_SIZE];
    bool has_start = m->start_time != MANIFEST_TIME_NONE && manifest_time_format(m->start_time, start);
    bool has_end = manifest_time_format(m->end_time, end);
    sb_row row;

    for (size_t d = 0; d < m->ndatabases; d++) {
        const manifest_database *db = m->databases[d];
        const char **schemas;
        size_t nschemas;

        sb_row_init(&row, m, has_start ? start : NULL, has_end ? end : NULL);
        row.v[SB_OBJECT_NAME] = db->name;
        row.v[SB_OBJECT_TYPE] = "database";
        sb_add_row(rs, cols, &row);

        schemas = sb_schemas(db, &nschemas);
        for (size_t i = 0; i < nschemas; i++) {
            sb_row_init(&row, m, has_start ? start : NULL, has_end ? end : NULL);
            row.v[SB_DATABASE_NAME] = db->name;
            row.v[SB_OBJECT_NAME] = schemas[i];
            row.v[SB_OBJECT_TYPE] = "schema";
            sb_add_row(rs, cols, &row);
        }
        free(schemas);

        for (size_t i = 0; i < db->ntables; i++) {
            const manifest_table *mt = db->tables[i];
            char *create = state->schemas ? sb_create_table(mt) : NULL;
            uint64_t file_bytes = 0;

            for (size_t f = 0; f < mt->nfiles; f++)
                file_bytes += mt->files[f]->stored_bytes;
            sb_row_init(&row, m, has_start ? start : NULL, has_end ? end : NULL);
            row.v[SB_DATABASE_NAME] = db->name;
            row.v[SB_PARENT_SCHEMA_NAME] = mt->schema;
            row.v[SB_OBJECT_NAME] = mt->name;
            snprintf(row.object_id, sizeof row.object_id, "%u", (unsigned)mt->oid);
            row.v[SB_OBJECT_ID] = row.object_id;
            row.v[SB_OBJECT_TYPE] = "table";
            snprintf(row.size_bytes, sizeof row.size_bytes, "%llu", (unsigned long long)mt->logical_bytes);
            row.v[SB_SIZE_BYTES] = row.size_bytes;
            snprintf(row.rows, sizeof row.rows, "%llu", (unsigned long long)mt->rows);
            row.v[SB_ROWS] = row.rows;
            row.v[SB_CREATE_STATEMENT] = create;
            snprintf(row.file_bytes, sizeof row.file_bytes, "%llu", (unsigned long long)file_bytes);
            row.v[SB_FILE_BYTES] = row.file_bytes;
            sb_add_row(rs, cols, &row);
            free(create);
        }

        for (size_t i = 0; i < db->nsequences; i++) {
            const manifest_sequence *ms = db->sequences[i];
            char *create = state->schemas ? sb_create_sequence(ms) : NULL;

            sb_row_init(&row, m, has_start ? start : NULL, has_end ? end : NULL);
            row.v[SB_DATABASE_NAME] = db->name;
            row.v[SB_PARENT_SCHEMA_NAME] = ms->schema;
            row.v[SB_OBJECT_NAME] = ms->name;
            row.v[SB_OBJECT_TYPE] = "table";
            row.v[SB_SIZE_BYTES] = "0";
            row.v[SB_ROWS] = "0";
            row.v[SB_CREATE_STATEMENT] = create;
            row.v[SB_FILE_BYTES] = "0";
            sb_add_row(rs, cols, &row);
            free(create);
        }
    }
}

static result_set *sb_object_rows(const exec_show_backup_state *state, const sb_chain *chain)
{
    sb_columns cols;
    result_set *rs = sb_new_result(state, &cols);

    for (size_t l = 0; l < chain->n; l++)
        sb_layer_rows(state, rs, &cols, chain->layers[l].m);
    return rs;
}

/* WITH as_json: one row per layer, the manifest as stored. */
static result_set *sb_json_rows(const sb_chain *chain)
{
    static const char *const names[] = { "manifest" };
    static const uint32_t types[] = { PGBR_OID_JSONB };
    result_set *rs = result_set_new(1, names, types);

    for (size_t l = 0; l < chain->n; l++) {
        const char *row[1] = { chain->layers[l].raw };
        result_set_add_row(rs, row);
    }
    return rs;
}

/* ---------------------------------------------------------------------------
 * The steps
 * ------------------------------------------------------------------------- */

/* Step 2, on a worker: touches only req->show_backup and the configuration
 * copies. */
static void sb_work(exec_request *req, struct pg_conn *catalog_conn)
{
    exec_show_backup_state *state = &req->show_backup;
    storage_config cfg = { req->external_io_dir, req->node_id };
    sb_chain chain = { 0 };
    storage *st, *inc = NULL;

    (void)catalog_conn;
    st = storage_open(state->uri, &cfg, &state->err);
    if (st == NULL)
        return;
    if (state->inc_uri != NULL && (inc = storage_open(state->inc_uri, &cfg, &state->err)) == NULL) {
        storage_close(st);
        return;
    }
    if (sb_read_chain(state, st, inc, &chain, &state->err) &&
        (!state->check_files || sb_check_files(&chain, &state->err))) {
        state->rs = state->as_json ? sb_json_rows(&chain) : sb_object_rows(state, &chain);
        result_set_set_tag(state->rs, "SHOW BACKUP %d", state->rs->nrows);
    }
    sb_chain_free(&chain);
    storage_close(inc);
    storage_close(st);
}

static int sb_time_index(const exec_show_backup_state *state, const char *text)
{
    for (int i = 0; i < state->ntimes; i++)
        if (strcmp(state->times[i], text) == 0)
            return i;
    return -1;
}

/* The time columns of rs (-1 when not shown). */
static void sb_time_columns(const result_set *rs, int out[2])
{
    out[0] = out[1] = -1;
    for (int c = 0; c < rs->ncols; c++) {
        if (rs->cols[c].type_oid != PGBR_OID_TIMESTAMPTZ)
            continue;
        if (out[0] < 0)
            out[0] = c;
        else
            out[1] = c;
    }
}

/* Step 3 done: put the session's text of each time in place. */
static void sb_on_times(exec_request *req, result_set *formatted, pgbr_error *err)
{
    exec_show_backup_state *state = &req->show_backup;
    result_set *rs = state->rs;
    int tcols[2];

    if (formatted == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    if (formatted->ncols < 1 || formatted->nrows != state->ntimes) {
        result_set_free(formatted);
        exec_fail(req, "XX000", "internal error: formatting %d times gave %d rows", state->ntimes,
                  formatted->nrows);
        return;
    }
    sb_time_columns(rs, tcols);
    for (int r = 0; r < rs->nrows; r++) {
        for (int k = 0; k < 2; k++) {
            char **cell;
            int i;

            if (tcols[k] < 0)
                continue;
            cell = &rs->values[(size_t)r * (size_t)rs->ncols + (size_t)tcols[k]];
            if (*cell == NULL || (i = sb_time_index(state, *cell)) < 0)
                continue;
            free(*cell);
            *cell = sb_strdup(result_set_value(formatted, i, 0));
        }
    }
    result_set_free(formatted);
    state->rs = NULL;
    exec_finish(req, rs, NULL);
}

/* Step 2 done, back on the loop thread. */
static void sb_after(exec_request *req)
{
    static const char format_sql[] =
        "SELECT u.t FROM pg_catalog.unnest($1::pg_catalog.timestamptz[]) WITH ORDINALITY AS u(t, n)"
        " ORDER BY u.n";
    exec_show_backup_state *state = &req->show_backup;
    result_set *rs = state->rs;
    sb_text array = { 0 };
    const char *params[1];
    int tcols[2];

    if (rs == NULL) {
        exec_finish(req, NULL, &state->err);
        return;
    }
    sb_time_columns(rs, tcols);
    for (int r = 0; r < rs->nrows; r++) {
        for (int k = 0; k < 2; k++) {
            const char *v = tcols[k] < 0 ? NULL : result_set_value(rs, r, tcols[k]);
            if (v == NULL || sb_time_index(state, v) >= 0)
                continue;
            state->times = sb_xalloc(realloc(state->times, (size_t)(state->ntimes + 1) * sizeof *state->times));
            state->times[state->ntimes++] = sb_strdup(v);
        }
    }
    if (state->ntimes == 0) {
        state->rs = NULL;
        exec_finish(req, rs, NULL);
        return;
    }
    /* The manifest's times ("2026-11-23T12:00:00.000000Z") need no quoting
     * in an array literal; PostgreSQL reads them whatever DateStyle says. */
    sb_append(&array, "{");
    for (int i = 0; i < state->ntimes; i++) {
        if (i > 0)
            sb_append(&array, ",");
        sb_append(&array, state->times[i]);
    }
    sb_append(&array, "}");
    params[0] = array.s;
    exec_run_query(req, format_sql, 1, params, sb_on_times);
    free(array.s);
}

static void sb_on_identity(exec_request *req)
{
    const exec_show_backup_state *state = &req->show_backup;

    if (exec_check_implicit_access(req, state->uri) &&
        (state->inc_uri == NULL || exec_check_implicit_access(req, state->inc_uri)))
        exec_submit(req, sb_work, sb_after);
}

static bool sb_flag(const sql_bool_opt *o)
{
    return o->set && o->value;
}

/* Options pgbr does not honour: false (the request failed) when one is set. */
static bool sb_check_options(exec_request *req, const sql_show_backup_options *o)
{
    if (sb_flag(&o->privileges)) {
        exec_fail_not_implemented(req, "SHOW BACKUP WITH privileges");
        return false;
    }
    if (o->kms != NULL || o->encryption_passphrase != NULL || o->encryption_info_dir != NULL) {
        exec_fail_not_implemented(req, o->kms != NULL                     ? "SHOW BACKUP WITH kms"
                                       : o->encryption_passphrase != NULL ? "SHOW BACKUP WITH encryption_passphrase"
                                                                          : "SHOW BACKUP WITH encryption_info_dir");
        return false;
    }
    if (sb_flag(&o->debug_dump_metadata_sst)) {
        pgbr_error err = PGBR_ERROR_INIT;
        pgbr_error_set(&err, "0A000", "SHOW BACKUP WITH debug_dump_metadata_sst is not supported by pgbr");
        pgbr_error_hint(&err, "pgbr backups hold no metadata SST; WITH as_json shows a backup's manifest.");
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return false;
    }
    return true;
}

void exec_show_backup_start(exec_request *req)
{
    const sql_show_backup *s = &req->stmt->u.show_backup;
    exec_show_backup_state *state = &req->show_backup;
    pgbr_error err = PGBR_ERROR_INIT;
    const char *uri, *subdir = NULL, *inc = NULL;

    switch (s->what) {
    case SQL_SHOW_BACKUP_DEFAULT:
    case SQL_SHOW_BACKUP_SCHEMAS:
        break;
    case SQL_SHOW_BACKUP_FILES:
        exec_fail_not_implemented(req, "SHOW BACKUP FILES");
        return;
    case SQL_SHOW_BACKUP_RANGES:
        exec_fail_not_implemented(req, "SHOW BACKUP RANGES");
        return;
    case SQL_SHOW_BACKUP_VALIDATE:
        exec_fail_not_implemented(req, "SHOW BACKUP VALIDATE");
        return;
    case SQL_SHOW_BACKUP_CONNECTION:
        exec_fail_not_implemented(req, "SHOW BACKUP CONNECTION");
        return;
    }
    if (!sb_check_options(req, &s->options))
        return;
    if (s->in.n > 0) {
        /* With locality-aware URIs, the first (default locality) one holds
         * the manifests (reference section 11), of the incremental_location
         * too. */
        if (!exec_check_incremental_location(req, s->options.incremental_location, s->in.n))
            return;
        uri = exec_string_value(req, &s->in.items[0], &err);
        if (uri != NULL && !s->from_latest && s->subdir != NULL)
            subdir = exec_string_value(req, s->subdir, &err);
        if (uri != NULL && !pgbr_error_is_set(&err) && s->options.incremental_location != NULL)
            inc = exec_string_value(req, &s->options.incremental_location->items[0], &err);
    } else if (s->options.incremental_location != NULL) {
        exec_fail_not_implemented(req, "SHOW BACKUP '<backup URL>' WITH incremental_location (SHOW BACKUP FROM "
                                       "'<subdir>' IN '<collection>' WITH incremental_location reads a chain)");
        return;
    } else {
        uri = s->subdir != NULL ? exec_string_value(req, s->subdir, &err) : NULL;
        if (uri == NULL && !pgbr_error_is_set(&err))
            pgbr_error_set(&err, "42601", "SHOW BACKUP needs a backup location");
    }
    if (pgbr_error_is_set(&err)) {
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    state->uri = sb_strdup(uri);
    state->subdir = sb_strdup(subdir);
    state->inc_uri = sb_strdup(inc);
    state->deprecated = s->in.n == 0;
    state->schemas = s->what == SQL_SHOW_BACKUP_SCHEMAS;
    state->as_json = sb_flag(&s->options.as_json);
    state->check_files = sb_flag(&s->options.check_files);
    state->debug_ids = sb_flag(&s->options.debug_ids);
    exec_identify(req, sb_on_identity);
}
