/*
 * manifest.c - BACKUP_MANIFEST: the struct tree, its JSON encoding and
 * decoding with jansson, and the BACKUP_MANIFEST.sha256 checksum file (see
 * include/pgbr/manifest.h; every key is listed in docs/format.md).
 *
 * The format is described once, as tables of fields (JSON key, kind, offset
 * in the C struct), one table per struct. A generic encoder, decoder and
 * free walk those tables, so the three can never disagree about a key. The
 * encoder emits keys in table order, so one manifest always gives the same
 * bytes. The decoder keeps a running key path ("databases[0].tables[2].rows")
 * so every complaint names the offending key, then checks what spans keys
 * (full vs incremental, times in order).
 */
#include "pgbr/manifest.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "pgbr/buf.h"
#include "pgbr/filter.h"

/* Enums are read and written through int: make sure that is their size. */
_Static_assert(sizeof(manifest_backup_type) == sizeof(int) &&
               sizeof(manifest_target_kind) == sizeof(int) &&
               sizeof(manifest_rel_kind) == sizeof(int) &&
               sizeof(manifest_encryption) == sizeof(int), "enums must be int-sized");

/* ==== the format, as data ==== */

typedef enum field_kind {
    F_STR,      /* char *, non-empty */
    F_PATH,     /* char *, a relative path inside the backup */
    F_LSN,      /* char *, "X/X" */
    F_TIME,     /* int64_t microseconds, ISO-8601 UTC text */
    F_SHA256,   /* char[65], 64 lowercase hex digits */
    F_U64,      /* uint64_t, 0..INT64_MAX */
    F_U32,      /* uint32_t */
    F_I32,      /* int32_t, 0..INT32_MAX */
    F_I64,      /* int64_t */
    F_BOOL,     /* bool */
    F_ENUM,     /* an int-sized enum, as one of names[] */
    F_GROUP,    /* a JSON object whose fields live in the struct at offset */
    F_LIST,     /* an array: element array at offset, size_t count at count_offset */
    F_EXTRA     /* json_t *, an object; optional when decoding */
} field_kind;

typedef struct shape shape;

typedef struct field {
    const char *key;
    field_kind kind;
    bool nullable;              /* JSON null allowed (NULL / MANIFEST_TIME_NONE) */
    size_t offset;
    size_t count_offset;        /* F_LIST */
    const shape *sub;           /* F_GROUP, F_LIST */
    const char *const *names;   /* F_ENUM */
    size_t nnames;
    bool optional;              /* may be absent (= NULL); not written when NULL */
} field;

/* A struct (a JSON object), or with one field keyed "" a bare value (a list
 * of strings is a list of such one-field elements). */
struct shape {
    size_t size;                /* of one element */
    bool by_pointer;            /* the list holds pointers to elements */
    const field *fields;        /* ends with a NULL key */
};

#define SHAPE_IS_BARE(s) ((s)->fields[0].key[0] == '\0')

#define FLD(st, key, kind, nullable, member) \
    { key, kind, nullable, offsetof(st, member), 0, NULL, NULL, 0 }
#define FENUM(st, key, member, names) \
    { key, F_ENUM, false, offsetof(st, member), 0, NULL, names, sizeof names / sizeof names[0] }
#define FLIST(st, key, member, count, sub) \
    { key, F_LIST, false, offsetof(st, member), offsetof(st, count), &sub, NULL, 0 }
#define FOPT(st, key, member) \
    { key, F_STR, true, offsetof(st, member), 0, NULL, NULL, 0, true }
/* an optional list: not written when empty, empty when absent */
#define FLIST_OPT(st, key, member, count, sub) \
    { key, F_LIST, false, offsetof(st, member), offsetof(st, count), &sub, NULL, 0, true }
/* an optional LSN text: not written when NULL */
#define FOPT_LSN(st, key, member) \
    { key, F_LSN, true, offsetof(st, member), 0, NULL, NULL, 0, true }
/* an optional number: not written when 0, 0 when absent */
#define FOPT_U64(st, key, member) \
    { key, F_U64, false, offsetof(st, member), 0, NULL, NULL, 0, true }
#define FEND { NULL, F_STR, false, 0, 0, NULL, NULL, 0 }

static const char *const backup_type_names[] = { "full", "incremental" };
static const char *const target_kind_names[] = { "cluster", "databases", "tables" };
static const char *const rel_kind_names[] = { "table", "partitioned_table", "foreign_table",
                                              "materialized_view", "view" };
static const char *const encryption_names[] = { "none", "passphrase", "kms" };

static const field column_fields[] = {
    FLD(manifest_column, "name", F_STR, false, name),
    FLD(manifest_column, "type", F_STR, false, type),
    FEND
};
static const shape column_shape = { sizeof(manifest_column), false, column_fields };

static const field file_fields[] = {
    FLD(manifest_file, "path", F_PATH, false, path),
    FLD(manifest_file, "stored_bytes", F_U64, false, stored_bytes),
    FLD(manifest_file, "sha256", F_SHA256, false, sha256),
    FLD(manifest_file, "rows", F_U64, false, rows),
    FLD(manifest_file, "raw_bytes", F_U64, false, raw_bytes),
    FOPT_U64(manifest_file, "offset", offset),
    FEND
};
static const shape file_shape = { sizeof(manifest_file), true, file_fields };

static const field table_fields[] = {
    FLD(manifest_table, "schema", F_STR, false, schema),
    FLD(manifest_table, "name", F_STR, false, name),
    FLD(manifest_table, "oid", F_U32, false, oid),
    FENUM(manifest_table, "kind", kind, rel_kind_names),
    FLIST(manifest_table, "columns", columns, ncolumns, column_shape),
    FLD(manifest_table, "rows", F_U64, false, rows),
    FLD(manifest_table, "logical_bytes", F_U64, false, logical_bytes),
    FLD(manifest_table, "index_count", F_U32, false, index_count),
    FLIST(manifest_table, "files", files, nfiles, file_shape),
    FEND
};
static const shape table_shape = { sizeof(manifest_table), true, table_fields };

static const field sequence_fields[] = {
    FLD(manifest_sequence, "schema", F_STR, false, schema),
    FLD(manifest_sequence, "name", F_STR, false, name),
    FLD(manifest_sequence, "last_value", F_I64, false, last_value),
    FLD(manifest_sequence, "is_called", F_BOOL, false, is_called),
    FEND
};
static const shape sequence_shape = { sizeof(manifest_sequence), true, sequence_fields };

static const field database_fields[] = {
    FLD(manifest_database, "name", F_STR, false, name),
    FLD(manifest_database, "schema_file", F_PATH, false, schema_file),
    FOPT(manifest_database, "schema_sha256", schema_sha256),
    FOPT(manifest_database, "owner", owner),
    FOPT(manifest_database, "encoding", encoding),
    FOPT(manifest_database, "lc_collate", lc_collate),
    FOPT(manifest_database, "lc_ctype", lc_ctype),
    FOPT(manifest_database, "icu_locale", icu_locale),
    FLIST(manifest_database, "tables", tables, ntables, table_shape),
    FLIST(manifest_database, "sequences", sequences, nsequences, sequence_shape),
    FOPT(manifest_database, "slot_name", slot_name),
    FOPT(manifest_database, "publication", publication),
    FOPT_LSN(manifest_database, "end_lsn", end_lsn),
    FLIST_OPT(manifest_database, "changes", changes, nchanges, file_shape),
    FOPT_U64(manifest_database, "change_transactions", change_transactions),
    FEND
};
static const shape database_shape = { sizeof(manifest_database), true, database_fields };

static const field given_fields[] = { { "", F_STR, false, 0, 0, NULL, NULL, 0 }, FEND };
static const shape given_shape = { sizeof(char *), false, given_fields };

static const field resolved_fields[] = {
    FLD(manifest_target_name, "database", F_STR, false, database),
    FLD(manifest_target_name, "schema", F_STR, true, schema),
    FLD(manifest_target_name, "table", F_STR, true, table),
    FEND
};
static const shape resolved_shape = { sizeof(manifest_target_name), false, resolved_fields };

static const field targets_fields[] = {
    FENUM(manifest_targets, "kind", kind, target_kind_names),
    FLIST(manifest_targets, "given", given, ngiven, given_shape),
    FLIST(manifest_targets, "resolved", resolved, nresolved, resolved_shape),
    FEND
};
static const shape targets_shape = { sizeof(manifest_targets), false, targets_fields };

/* "options" is a JSON object whose fields are in struct manifest itself */
static const field options_fields[] = {
    FLD(manifest, "revision_history", F_BOOL, false, revision_history),
    FENUM(manifest, "encryption", encryption, encryption_names),
    FEND
};
static const shape options_shape = { sizeof(manifest), false, options_fields };

/* after "format_version", which the encoder writes and the decoder checks first */
static const field manifest_fields[] = {
    FENUM(manifest, "backup_type", backup_type, backup_type_names),
    FLD(manifest, "start_time", F_TIME, true, start_time),
    FLD(manifest, "end_time", F_TIME, false, end_time),
    FLD(manifest, "start_lsn", F_LSN, true, start_lsn),
    FLD(manifest, "end_lsn", F_LSN, false, end_lsn),
    FLD(manifest, "previous", F_PATH, true, previous),
    { "targets", F_GROUP, false, offsetof(manifest, targets), 0, &targets_shape, NULL, 0 },
    FLIST(manifest, "databases", databases, ndatabases, database_shape),
    { "options", F_GROUP, false, 0, 0, &options_shape, NULL, 0 },
    FLD(manifest, "pgbr_version", F_STR, false, pgbr_version),
    FLD(manifest, "server_version", F_STR, false, server_version),
    FLD(manifest, "server_version_num", F_I32, false, server_version_num),
    { "globals_file", F_PATH, true, offsetof(manifest, globals_file), 0, NULL, NULL, 0, true },
    FOPT(manifest, "globals_sha256", globals_sha256),
    FLD(manifest, "extra", F_EXTRA, false, extra),
    FEND
};

/* ==== generic access ==== */

/* Pointers stored in the tree are read and written with memcpy, so generic
 * code may treat a manifest_table ** member as a void *. */
static void *ptr_get(const void *at)
{
    void *p;

    memcpy(&p, at, sizeof p);
    return p;
}

static void ptr_set(void *at, void *p)
{
    memcpy(at, &p, sizeof p);
}

static void *list_elem(const void *arr, size_t i, const shape *s)
{
    if (s->by_pointer)
        return ptr_get((const char *)arr + i * sizeof(void *));
    return (char *)arr + i * s->size;
}

/*
 * Append a zeroed element to the list whose array pointer is at arrp and
 * count at n. Capacity is implicit (4, then each power of two), so the
 * structs need no capacity field.
 */
static void *list_add(void *arrp, size_t *n, size_t elem_size, bool by_pointer,
                      pgbr_error *err)
{
    size_t slot = by_pointer ? sizeof(void *) : elem_size;
    char *arr = ptr_get(arrp);
    void *elem;

    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) {
        size_t cap = *n < 4 ? 4 : *n * 2;

        if (cap > SIZE_MAX / slot || (arr = realloc(arr, cap * slot)) == NULL)
            goto oom;
        ptr_set(arrp, arr);
    }
    elem = arr + *n * slot;
    memset(elem, 0, slot);
    if (by_pointer) {
        if ((elem = calloc(1, elem_size)) == NULL)
            goto oom;
        ptr_set(arr + *n * slot, elem);
    }
    (*n)++;
    return elem;
oom:
    pgbr_error_set(err, "53200", "out of memory building a backup manifest");
    return NULL;
}

static void shape_free(void *base, const field *fields)
{
    for (const field *f = fields; f->key != NULL; f++) {
        char *p = (char *)base + f->offset;

        switch (f->kind) {
        case F_STR:
        case F_PATH:
        case F_LSN:
            free(ptr_get(p));
            break;
        case F_GROUP:
            shape_free(p, f->sub->fields);
            break;
        case F_LIST:
            for (size_t i = 0; i < *(size_t *)((char *)base + f->count_offset); i++) {
                shape_free(list_elem(ptr_get(p), i, f->sub), f->sub->fields);
                if (f->sub->by_pointer)
                    free(list_elem(ptr_get(p), i, f->sub));
            }
            free(ptr_get(p));
            break;
        case F_EXTRA:
            json_decref(ptr_get(p));
            break;
        default:
            break;
        }
    }
}

/* ==== the struct tree ==== */

manifest *manifest_new(pgbr_error *err)
{
    manifest *m = calloc(1, sizeof *m);

    if (m == NULL || (m->extra = json_object()) == NULL) {
        free(m);
        pgbr_error_set(err, "53200", "out of memory building a backup manifest");
        return NULL;
    }
    m->format_version = MANIFEST_FORMAT_VERSION;
    m->start_time = MANIFEST_TIME_NONE;
    m->end_time = MANIFEST_TIME_NONE;
    return m;
}

void manifest_free(manifest *m)
{
    if (m == NULL)
        return;
    shape_free(m, manifest_fields);
    free(m);
}

bool manifest_set_string(char **field, const char *value, pgbr_error *err)
{
    char *copy = NULL;

    if (value != NULL && (copy = strdup(value)) == NULL)
        return pgbr_error_set(err, "53200", "out of memory building a backup manifest");
    free(*field);
    *field = copy;
    return true;
}

bool manifest_add_given_target(manifest *m, const char *text, pgbr_error *err)
{
    char **slot = list_add(&m->targets.given, &m->targets.ngiven, sizeof *slot, false, err);

    return slot != NULL && manifest_set_string(slot, text, err);
}

bool manifest_add_resolved_target(manifest *m, const char *database, const char *schema,
                                  const char *table, pgbr_error *err)
{
    manifest_target_name *r;

    if (database == NULL || (schema == NULL) != (table == NULL))
        return pgbr_error_set(err, "XX000", "a resolved target needs a database, and a schema "
                              "with a table or neither");
    r = list_add(&m->targets.resolved, &m->targets.nresolved, sizeof *r, false, err);
    return r != NULL && manifest_set_string(&r->database, database, err) &&
           manifest_set_string(&r->schema, schema, err) &&
           manifest_set_string(&r->table, table, err);
}

manifest_database *manifest_add_database(manifest *m, const char *name, pgbr_error *err)
{
    manifest_database *db = list_add(&m->databases, &m->ndatabases, sizeof *db, true, err);

    return db != NULL && manifest_set_string(&db->name, name, err) ? db : NULL;
}

manifest_table *manifest_database_add_table(manifest_database *db, const char *schema,
                                            const char *name, pgbr_error *err)
{
    manifest_table *t = list_add(&db->tables, &db->ntables, sizeof *t, true, err);

    return t != NULL && manifest_set_string(&t->schema, schema, err) &&
                   manifest_set_string(&t->name, name, err) ? t : NULL;
}

manifest_sequence *manifest_database_add_sequence(manifest_database *db, const char *schema,
                                                  const char *name, pgbr_error *err)
{
    manifest_sequence *s = list_add(&db->sequences, &db->nsequences, sizeof *s, true, err);

    return s != NULL && manifest_set_string(&s->schema, schema, err) &&
                   manifest_set_string(&s->name, name, err) ? s : NULL;
}

bool manifest_table_add_column(manifest_table *t, const char *name, const char *type,
                               pgbr_error *err)
{
    manifest_column *c = list_add(&t->columns, &t->ncolumns, sizeof *c, false, err);

    return c != NULL && manifest_set_string(&c->name, name, err) &&
           manifest_set_string(&c->type, type, err);
}

manifest_file *manifest_table_add_file(manifest_table *t, const char *path, pgbr_error *err)
{
    manifest_file *f = list_add(&t->files, &t->nfiles, sizeof *f, true, err);

    return f != NULL && manifest_set_string(&f->path, path, err) ? f : NULL;
}

manifest_file *manifest_database_add_change_file(manifest_database *db, const char *path, pgbr_error *err)
{
    manifest_file *f = list_add(&db->changes, &db->nchanges, sizeof *f, true, err);

    return f != NULL && manifest_set_string(&f->path, path, err) ? f : NULL;
}

/* ==== times ==== */

bool manifest_time_format(int64_t usec, char out[MANIFEST_TIME_TEXT_SIZE])
{
    int64_t secs = usec / 1000000, frac = usec % 1000000;
    time_t t;
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    t = (time_t)secs;
    if (usec == MANIFEST_TIME_NONE || gmtime_r(&t, &tm) == NULL || tm.tm_year < 1 - 1900 ||
        tm.tm_year > 9999 - 1900)
        return false;
    snprintf(out, MANIFEST_TIME_TEXT_SIZE, "%04u-%02u-%02uT%02u:%02u:%02u.%06uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)frac % 1000000u);
    return true;
}

bool manifest_time_parse(const char *text, int64_t *usec)
{
    char again[MANIFEST_TIME_TEXT_SIZE], z;
    struct tm tm = { 0 };
    int frac;

    if (strlen(text) != MANIFEST_TIME_TEXT_SIZE - 1 ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac, &z) != 8)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *usec = (int64_t)timegm(&tm) * 1000000 + frac;
    /* only text that formats back the same is valid: that refuses signs,
     * blanks, 02-30 (which timegm normalises to 03-02), hour 24 */
    return manifest_time_format(*usec, again) && strcmp(again, text) == 0;
}

/* ==== encoding ==== */

typedef struct enc {
    pgbr_error *err;
    bool ok;
} enc;

static bool enc_fail(enc *e, const char *sqlstate, const char *why, const char *key)
{
    if (e->ok && !pgbr_error_is_set(e->err))
        pgbr_error_set(e->err, sqlstate, "backup manifest key \"%s\" %s", key, why);
    e->ok = false;
    return false;
}

/* Store val under key (or append it when key is NULL). A NULL val means its
 * maker failed: the error is set already, or it ran out of memory. */
static void enc_put(enc *e, json_t *obj, const char *key, json_t *val)
{
    if (val == NULL ||
        (key != NULL ? json_object_set_new(obj, key, val) : json_array_append_new(obj, val)))
        enc_fail(e, "53200", "could not be stored: out of memory", key != NULL ? key : "[]");
}

static json_t *enc_shape(enc *e, const void *base, const field *fields);

static json_t *enc_value(enc *e, const void *base, const field *f)
{
    const char *p = (const char *)base + f->offset;
    char text[MANIFEST_TIME_TEXT_SIZE];
    json_t *v;

    switch (f->kind) {
    case F_STR:
    case F_PATH:
    case F_LSN:
        if (ptr_get(p) == NULL && !f->nullable)
            return enc_fail(e, "XX000", "is not set", f->key), NULL;
        if (ptr_get(p) == NULL)
            return json_null();
        if ((v = json_string(ptr_get(p))) == NULL)
            enc_fail(e, "22021", "is not valid UTF-8", f->key);
        return v;
    case F_SHA256:
        return json_string(p);
    case F_TIME:
        if (*(const int64_t *)p == MANIFEST_TIME_NONE && f->nullable)
            return json_null();
        if (!manifest_time_format(*(const int64_t *)p, text))
            return enc_fail(e, "XX000", "is not a valid time", f->key), NULL;
        return json_string(text);
    case F_U64:
        if (*(const uint64_t *)p > INT64_MAX)
            return enc_fail(e, "XX000", "is too large", f->key), NULL;
        return json_integer((json_int_t) * (const uint64_t *)p);
    case F_U32:
        return json_integer(*(const uint32_t *)p);
    case F_I32:
        return json_integer(*(const int32_t *)p);
    case F_I64:
        return json_integer(*(const int64_t *)p);
    case F_BOOL:
        return json_boolean(*(const bool *)p);
    case F_ENUM:
        if (*(const int *)p < 0 || (size_t) * (const int *)p >= f->nnames)
            return enc_fail(e, "XX000", "has an invalid value", f->key), NULL;
        return json_string(f->names[*(const int *)p]);
    case F_GROUP:
        return enc_shape(e, p, f->sub->fields);
    case F_LIST:
        if ((v = json_array()) == NULL)
            return NULL;
        for (size_t i = 0; i < *(const size_t *)((const char *)base + f->count_offset); i++) {
            void *elem = list_elem(ptr_get(p), i, f->sub);

            enc_put(e, v, NULL, SHAPE_IS_BARE(f->sub) ? enc_value(e, elem, f->sub->fields)
                                                      : enc_shape(e, elem, f->sub->fields));
        }
        return v;
    case F_EXTRA:
        if (!json_is_object((json_t *)ptr_get(p)))
            return enc_fail(e, "XX000", "is not a JSON object", f->key), NULL;
        return json_deep_copy(ptr_get(p));
    }
    return NULL;
}

/* An optional field with nothing to write: a NULL string, a 0 number. */
static bool field_absent(const void *base, const field *f)
{
    if (!f->optional)
        return false;
    if (f->kind == F_LIST) {
        size_t n;
        memcpy(&n, (const char *)base + f->count_offset, sizeof n);
        return n == 0;
    }
    if (f->kind == F_U64) {
        uint64_t v;
        memcpy(&v, (const char *)base + f->offset, sizeof v);
        return v == 0;
    }
    return ptr_get((const char *)base + f->offset) == NULL;
}

static json_t *enc_shape(enc *e, const void *base, const field *fields)
{
    json_t *o = json_object();

    for (const field *f = fields; o != NULL && f->key != NULL; f++) {
        if (field_absent(base, f))
            continue;
        enc_put(e, o, f->key, enc_value(e, base, f));
    }
    return o;
}

static int enc_dump_cb(const char *buffer, size_t size, void *data)
{
    return pgbr_buf_append(data, buffer, size, NULL) ? 0 : -1;
}

char *manifest_encode(const manifest *m, size_t *len, pgbr_error *err)
{
    enc e = { err, true };
    json_t *root = json_object();
    pgbr_buf out = PGBR_BUF_INIT;

    if (root != NULL)
        enc_put(&e, root, "format_version", json_integer(MANIFEST_FORMAT_VERSION));
    for (const field *f = manifest_fields; root != NULL && f->key != NULL; f++)
        if (!field_absent(m, f))
            enc_put(&e, root, f->key, enc_value(&e, m, f));
    if (root == NULL || (e.ok && (json_dump_callback(root, enc_dump_cb, &out, JSON_INDENT(2)) ||
                                  !pgbr_buf_append(&out, "\n", 2, err))))
        enc_fail(&e, "53200", "could not be stored: out of memory", "");
    json_decref(root);
    if (!e.ok) {
        pgbr_buf_free(&out);
        return NULL;
    }
    if (len != NULL)
        *len = out.len - 1;     /* without the NUL */
    return (char *)out.data;
}

/* ==== decoding ==== */

typedef struct dec {
    const char *file;
    pgbr_error *err;
    char path[256];         /* key path of the object being read, "" at the top */
    size_t plen;
} dec;

static bool dec_fail(dec *d, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* XX001 naming path.key (key NULL: the path itself) and why. */
static bool dec_fail(dec *d, const char *key, const char *fmt, ...)
{
    char why[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (pgbr_error_is_set(d->err))     /* a builder ran out of memory: keep that */
        return false;
    return pgbr_error_set(d->err, "XX001", "backup manifest \"%s\" is corrupted: \"%s%s%s\" %s",
                          d->file, d->path, d->plen > 0 && key != NULL && *key ? "." : "",
                          key != NULL ? key : "", why);
}

/* Append ".key" or ".key[index]" (index >= 0) to the path; returns the old length. */
static size_t dec_enter(dec *d, const char *key, long index)
{
    size_t saved = d->plen, room = sizeof d->path - d->plen;
    int n = index < 0 ? snprintf(d->path + saved, room, "%s%s", saved ? "." : "", key)
                      : snprintf(d->path + saved, room, "%s%s[%ld]", saved ? "." : "", key, index);

    if (n > 0)
        d->plen += (size_t)n < room ? (size_t)n : room - 1;
    return saved;
}

static void dec_leave(dec *d, size_t saved)
{
    d->plen = saved;
    d->path[saved] = '\0';
}

/* A relative path inside the backup directory: no leading "/", no empty,
 * "." or ".." component, no backslash or control character. */
static bool path_is_safe(const char *p)
{
    const char *seg = p;

    for (;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);

            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
        } else if (*p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
}

static bool lsn_is_valid(const char *s)
{
    size_t hi = strspn(s, "0123456789ABCDEFabcdef"), lo;

    if (hi < 1 || hi > 8 || s[hi] != '/')
        return false;
    lo = strspn(s + hi + 1, "0123456789ABCDEFabcdef");
    return lo >= 1 && lo <= 8 && s[hi + 1 + lo] == '\0';
}

static bool dec_shape(dec *d, json_t *obj, void *base, const field *fields);

static bool dec_int(dec *d, const field *f, json_t *v, int64_t min, int64_t max, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return dec_fail(d, f->key, "must be an integer from %" PRId64 " to %" PRId64, min, max);
    *out = json_integer_value(v);
    return true;
}

/* One string-valued field: non-empty, then the kind's own rule. */
static bool dec_string(dec *d, const field *f, json_t *v, char *p)
{
    const char *s = json_string_value(v);
    char *copy;

    if (!json_is_string(v) || json_string_length(v) == 0)
        return dec_fail(d, f->key, "must be a non-empty string");
    if (f->kind == F_PATH && !path_is_safe(s))
        return dec_fail(d, f->key, "is not a relative path inside the backup");
    if (f->kind == F_LSN && !lsn_is_valid(s))
        return dec_fail(d, f->key, "is not an LSN like \"16/B374D848\"");
    if (f->kind == F_SHA256) {
        if (strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64)
            return dec_fail(d, f->key, "must be 64 lowercase hexadecimal digits");
        memcpy(p, s, 65);
        return true;
    }
    if ((copy = strdup(s)) == NULL)
        return pgbr_error_set(d->err, "53200", "out of memory decoding a backup manifest");
    ptr_set(p, copy);
    return true;
}

static bool dec_value(dec *d, const field *f, json_t *v, char *base);

/* The elements of an F_LIST array, objects or bare values. */
static bool dec_list(dec *d, const field *f, json_t *v, char *base)
{
    bool ok = json_is_array(v) || dec_fail(d, f->key, "must be an array");

    for (size_t i = 0; ok && i < json_array_size(v); i++) {
        json_t *item = json_array_get(v, i);
        size_t saved = dec_enter(d, f->key, (long)i);
        char *elem = NULL;

        if (!SHAPE_IS_BARE(f->sub) && !json_is_object(item))
            ok = dec_fail(d, NULL, "must be an object");
        else if ((elem = list_add(base + f->offset, (size_t *)(base + f->count_offset),
                                  f->sub->size, f->sub->by_pointer, d->err)) == NULL)
            ok = false;
        else
            ok = SHAPE_IS_BARE(f->sub) ? dec_value(d, f->sub->fields, item, elem)
                                       : dec_shape(d, item, elem, f->sub->fields);
        dec_leave(d, saved);
    }
    return ok;
}

static bool dec_value(dec *d, const field *f, json_t *v, char *base)
{
    char *p = base + f->offset;
    int64_t i64;
    size_t saved;
    bool ok;

    if (json_is_null(v) && f->nullable)
        return true;            /* the zeroed / initialised value stands */
    switch (f->kind) {
    case F_STR:
    case F_PATH:
    case F_LSN:
    case F_SHA256:
        return dec_string(d, f, v, p);
    case F_TIME:
        if (!json_is_string(v) || !manifest_time_parse(json_string_value(v), (int64_t *)p))
            return dec_fail(d, f->key, "must be a time like \"2026-11-23T12:00:00.000000Z\"");
        return true;
    case F_U64:
        return dec_int(d, f, v, 0, INT64_MAX, (int64_t *)p);
    case F_I64:
        return dec_int(d, f, v, INT64_MIN, INT64_MAX, (int64_t *)p);
    case F_U32:
    case F_I32:
        if (!dec_int(d, f, v, 0, f->kind == F_U32 ? UINT32_MAX : INT32_MAX, &i64))
            return false;
        if (f->kind == F_U32)
            *(uint32_t *)p = (uint32_t)i64;
        else
            *(int32_t *)p = (int32_t)i64;
        return true;
    case F_BOOL:
        if (!json_is_boolean(v))
            return dec_fail(d, f->key, "must be true or false");
        *(bool *)p = json_is_true(v);
        return true;
    case F_ENUM:
        for (size_t i = 0; json_is_string(v) && i < f->nnames; i++)
            if (strcmp(json_string_value(v), f->names[i]) == 0) {
                *(int *)p = (int)i;
                return true;
            }
        return dec_fail(d, f->key, "has an unknown value");
    case F_GROUP:
        if (!json_is_object(v))
            return dec_fail(d, f->key, "must be an object");
        saved = dec_enter(d, f->key, -1);
        ok = dec_shape(d, v, p, f->sub->fields);
        dec_leave(d, saved);
        return ok;
    case F_LIST:
        return dec_list(d, f, v, base);
    case F_EXTRA:
        if (!json_is_object(v))
            return dec_fail(d, f->key, "must be an object");
        json_decref(ptr_get(p));
        ptr_set(p, json_deep_copy(v));
        return ptr_get(p) != NULL ||
               pgbr_error_set(d->err, "53200", "out of memory decoding a backup manifest");
    }
    return false;
}

static bool dec_shape(dec *d, json_t *obj, void *base, const field *fields)
{
    for (const field *f = fields; f->key != NULL; f++) {
        json_t *v = json_object_get(obj, f->key);

        if (v == NULL && (f->kind == F_EXTRA || f->optional))
            continue;           /* optional: absent means {} or NULL */
        if (v == NULL)
            return dec_fail(d, f->key, "is missing");
        if (json_is_null(v) && !f->nullable)
            return dec_fail(d, f->key, "must not be null");
        if (!dec_value(d, f, v, base))
            return false;
    }
    return true;
}

/* What spans keys: the chain link, the time order. */
static bool dec_check(dec *d, const manifest *m)
{
    bool full = m->backup_type == MANIFEST_BACKUP_FULL;
    bool has_start = m->previous != NULL || m->start_time != MANIFEST_TIME_NONE ||
                     m->start_lsn != NULL;
    bool has_all = m->previous != NULL && m->start_time != MANIFEST_TIME_NONE &&
                   m->start_lsn != NULL;

    if (full && has_start)
        return dec_fail(d, "backup_type", "is full, but previous, start_time or start_lsn is set");
    if (!full && !has_all)
        return dec_fail(d, "backup_type",
                        "is incremental, but previous, start_time or start_lsn is null");
    if (!full && m->start_time > m->end_time)
        return dec_fail(d, "start_time", "is after end_time");
    for (size_t i = 0; i < m->targets.nresolved; i++)
        if ((m->targets.resolved[i].schema == NULL) != (m->targets.resolved[i].table == NULL))
            return dec_fail(d, "targets.resolved",
                            "entry %zu must have both a schema and a table, or neither", i);
    return true;
}

manifest *manifest_decode(const void *data, size_t len, const char *path, pgbr_error *err)
{
    dec d = { path != NULL ? path : "", err, "", 0 };
    json_error_t jerr;
    json_t *root, *version;
    manifest *m = NULL;

    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        pgbr_error_set(err, "XX001", "backup manifest \"%s\" is corrupted: invalid JSON at line "
                       "%d, column %d: %s", d.file, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    version = json_object_get(root, "format_version");
    if (!json_is_object(root))
        pgbr_error_set(err, "XX001", "backup manifest \"%s\" is corrupted: not a JSON object",
                       d.file);
    else if (version == NULL)
        dec_fail(&d, "format_version", "is missing");
    else if (!json_is_integer(version) || json_integer_value(version) != MANIFEST_FORMAT_VERSION)
        dec_fail(&d, "format_version", "is not %d, the only version this pgbr reads",
                 MANIFEST_FORMAT_VERSION);
    else if ((m = manifest_new(err)) != NULL &&
             (!dec_shape(&d, root, m, manifest_fields) || !dec_check(&d, m))) {
        manifest_free(m);
        m = NULL;
    }
    json_decref(root);
    return m;
}

/* ==== BACKUP_MANIFEST.sha256 ==== */

bool manifest_checksum_text(const void *manifest_bytes, size_t len,
                            char out[MANIFEST_CHECKSUM_TEXT_SIZE], pgbr_error *err)
{
    char hex[65];

    if (!filter_sha256_digest_hex(manifest_bytes, len, hex, err))
        return false;
    snprintf(out, MANIFEST_CHECKSUM_TEXT_SIZE, "%s  %s\n", hex, MANIFEST_FILE_NAME);
    return true;
}

bool manifest_checksum_verify(const void *manifest_bytes, size_t len, const void *checksum,
                              size_t checksum_len, const char *path, pgbr_error *err)
{
    const char *c = checksum;
    char hex[65], want[65];
    size_t i = 0;

    while (i < 64 && i < checksum_len && strchr("0123456789abcdefABCDEF", c[i]) != NULL &&
           c[i] != '\0')
        i++;
    if (i < 64 || (checksum_len > 64 && (c[64] == '\0' || strchr(" \t\r\n", c[64]) == NULL)))
        return pgbr_error_set(err, "XX001", "backup manifest \"%s\" is corrupted: its checksum "
                              "file %s does not start with a SHA-256 digest", path,
                              MANIFEST_CHECKSUM_FILE_NAME);
    memcpy(want, c, 64);
    want[64] = '\0';
    if (!filter_sha256_digest_hex(manifest_bytes, len, hex, err))
        return false;
    if (strcasecmp(hex, want) != 0) {
        pgbr_error_set(err, "XX001", "backup manifest \"%s\" is corrupted: checksum mismatch",
                       path);
        pgbr_error_detail(err, "%s records SHA-256 %s, the manifest's is %s.",
                          MANIFEST_CHECKSUM_FILE_NAME, want, hex);
        return false;
    }
    return true;
}
