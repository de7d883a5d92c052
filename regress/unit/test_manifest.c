/*
 * test_manifest.c - unit tests for BACKUP_MANIFEST (src/backup/manifest.c):
 * encode -> decode -> encode gives the same bytes, every key removed or
 * given a value of another JSON type is refused with XX001 naming the key,
 * value rules (paths, LSNs, times, digests, enums, ranges), the chain rules
 * of full and incremental backups, times, and the BACKUP_MANIFEST.sha256 file.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/manifest.h"
#include "tap.h"

#define PATH "2026/11/23-120000.00/BACKUP_MANIFEST"

static const char *SHA_A = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char *SHA_B = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* A manifest with two databases, tables, columns, files and sequences. */
static manifest *sample(bool incremental)
{
    pgbr_error err = PGBR_ERROR_INIT;
    manifest *m = manifest_new(&err);
    manifest_database *db;
    manifest_table *t;
    manifest_file *f;
    manifest_sequence *s;

    m->backup_type = incremental ? MANIFEST_BACKUP_INCREMENTAL : MANIFEST_BACKUP_FULL;
    m->end_time = 1795435200123456LL;
    manifest_set_string(&m->end_lsn, "16/B374D848", &err);
    if (incremental) {
        m->start_time = 1795431600000001LL;
        manifest_set_string(&m->start_lsn, "16/A0000000", &err);
        manifest_set_string(&m->previous, "2026/11/23-110000.00", &err);
    }
    m->targets.kind = MANIFEST_TARGET_TABLES;
    manifest_add_given_target(m, "bank.public.*", &err);
    manifest_add_given_target(m, "shop.orders", &err);
    manifest_add_resolved_target(m, "bank", "public", "accounts", &err);
    manifest_add_resolved_target(m, "shop", "public", "orders", &err);
    manifest_add_resolved_target(m, "shop", NULL, NULL, &err);
    m->revision_history = true;
    m->encryption = MANIFEST_ENCRYPTION_PASSPHRASE;
    manifest_set_string(&m->pgbr_version, "0.1.0", &err);
    manifest_set_string(&m->server_version, "16.4 (Debian 16.4-1)", &err);
    m->server_version_num = 160004;
    json_object_set_new(m->extra, "note", json_string("späť \"quoted\" \\ tab\t"));

    db = manifest_add_database(m, "bank", &err);
    manifest_set_string(&db->schema_file, "schema/bank.dump", &err);
    t = manifest_database_add_table(db, "public", "accounts", &err);
    t->oid = 4294967295u;
    t->kind = MANIFEST_REL_TABLE;
    manifest_table_add_column(t, "id", "integer", &err);
    manifest_table_add_column(t, "balance", "numeric(12,2)", &err);
    manifest_table_add_column(t, "weird \"name\"", "character varying(20)[]", &err);
    t->rows = 100000;
    t->logical_bytes = 12345678;
    t->index_count = 2;
    for (int i = 0; i < 3; i++) {
        char path[64];

        snprintf(path, sizeof path, "data/bank/16384/%d.pgbr", i);
        f = manifest_table_add_file(t, path, &err);
        f->stored_bytes = 1000 + (uint64_t)i;
        snprintf(f->sha256, sizeof f->sha256, "%s", i % 2 ? SHA_A : SHA_B);
        f->rows = 33333;
        f->raw_bytes = INT64_MAX;
        f->offset = i == 2 ? 2001 : 0;  /* a member of a bundle */
    }
    t = manifest_database_add_table(db, "sales", "by_month", &err);
    t->kind = MANIFEST_REL_PARTITIONED;
    s = manifest_database_add_sequence(db, "public", "accounts_id_seq", &err);
    s->last_value = INT64_MIN;
    s->is_called = true;
    s = manifest_database_add_sequence(db, "public", "other_seq", &err);
    s->last_value = 42;
    manifest_set_string(&db->slot_name, "pgbr_913000000000000001_0", &err);
    manifest_set_string(&db->publication, "pgbr_913000000000000001", &err);
    manifest_set_string(&db->end_lsn, "0/1A2B3C4", &err);
    f = manifest_database_add_change_file(db, "changes/bank/0.pgbr", &err);
    f->stored_bytes = 77;
    snprintf(f->sha256, sizeof f->sha256, "%s", SHA_A);
    f->rows = 12;
    f->raw_bytes = 300;
    db->change_transactions = 3;

    db = manifest_add_database(m, "shop", &err);
    manifest_set_string(&db->schema_file, "schema/shop.dump", &err);
    t = manifest_database_add_table(db, "public", "orders", &err);
    t->kind = MANIFEST_REL_MATVIEW;
    if (pgbr_error_is_set(&err)) {
        tap_diag("sample: %s", err.message);
        exit(1);
    }
    return m;
}

static char *encode(const manifest *m, size_t *len)
{
    pgbr_error err = PGBR_ERROR_INIT;
    char *out = manifest_encode(m, len, &err);

    if (out == NULL) {
        tap_diag("encode failed: %s", err.message);
        pgbr_error_clear(&err);
    }
    return out;
}

/* Decode text; return the error message (static copy) or NULL on success. */
static const char *decode_error(const char *text, size_t len, char *sqlstate_out)
{
    static char msg[1024];
    pgbr_error err = PGBR_ERROR_INIT;
    manifest *m = manifest_decode(text, len, PATH, &err);

    if (m != NULL) {
        manifest_free(m);
        return NULL;
    }
    snprintf(msg, sizeof msg, "%s", err.message ? err.message : "(no message)");
    if (sqlstate_out != NULL)
        memcpy(sqlstate_out, err.sqlstate, 6);
    pgbr_error_clear(&err);
    return msg;
}

static const char *decode_json_error(json_t *root, char *sqlstate_out)
{
    char *text = json_dumps(root, JSON_COMPACT);
    const char *msg = decode_error(text, strlen(text), sqlstate_out);

    free(text);
    return msg;
}

static void test_round_trip(bool incremental)
{
    manifest *m = sample(incremental), *back;
    pgbr_error err = PGBR_ERROR_INIT;
    size_t len1 = 0, len2 = 0;
    char *one = encode(m, &len1), *two = NULL;
    const char *kind = incremental ? "incremental" : "full";

    tap_ok(one != NULL && len1 == strlen(one) && one[len1 - 1] == '\n',
           "%s: encode gives NUL-terminated text ending in a newline", kind);
    back = manifest_decode(one, len1, PATH, &err);
    tap_ok(back != NULL, "%s: decode of the encoding succeeds%s%s", kind,
           err.message ? ": " : "", err.message ? err.message : "");
    if (back == NULL) {
        free(one);
        manifest_free(m);
        pgbr_error_clear(&err);
        return;
    }
    two = encode(back, &len2);
    tap_ok(two != NULL && len1 == len2 && memcmp(one, two, len1) == 0,
           "%s: encode -> decode -> encode gives identical bytes", kind);
    tap_is_int(back->ndatabases, 2, "%s: two databases", kind);
    tap_is_str(back->databases[0]->tables[0]->columns[2].name, "weird \"name\"",
               "%s: column names with quotes survive", kind);
    tap_is_int(back->databases[0]->tables[0]->oid, 4294967295u, "%s: oid 2^32-1 survives", kind);
    tap_is_int(back->databases[0]->sequences[0]->last_value, INT64_MIN,
               "%s: sequence value INT64_MIN survives", kind);
    tap_ok(back->databases[0]->tables[0]->files[1]->raw_bytes == INT64_MAX,
           "%s: raw_bytes INT64_MAX survives", kind);
    tap_is_str(back->databases[0]->tables[0]->files[1]->sha256, SHA_A, "%s: sha256 survives",
               kind);
    tap_is_int(back->databases[0]->tables[1]->kind, MANIFEST_REL_PARTITIONED,
               "%s: table kinds survive", kind);
    tap_is_int(back->targets.nresolved, 3, "%s: resolved targets", kind);
    tap_ok(back->targets.resolved[2].schema == NULL && back->targets.resolved[2].table == NULL,
           "%s: a database target keeps null schema and table", kind);
    tap_is_str(json_string_value(json_object_get(back->extra, "note")),
               "späť \"quoted\" \\ tab\t", "%s: extra survives, UTF-8 and escapes", kind);
    tap_ok(back->end_time == m->end_time && back->start_time == m->start_time,
           "%s: times survive to the microsecond", kind);
    tap_ok(incremental ? strcmp(back->previous, "2026/11/23-110000.00") == 0
                       : back->previous == NULL, "%s: previous survives", kind);
    tap_ok(strstr(one, incremental ? "\"start_time\": \"2026-11-23T11:00:00.000001Z\""
                                   : "\"start_time\": null") != NULL,
           "%s: start_time text", kind);
    tap_ok(strstr(one, "\"end_time\": \"2026-11-23T12:00:00.123456Z\"") != NULL,
           "%s: end_time is ISO-8601 UTC with microseconds", kind);
    tap_ok(strncmp(one, "{\n  \"format_version\": 1,\n  \"backup_type\": ", 42) == 0,
           "%s: format_version comes first", kind);
    free(one);
    free(two);
    manifest_free(m);
    manifest_free(back);
}

/* Every key at every depth: removed, or replaced by a value of another JSON
 * type, the manifest is refused with XX001 naming that key. */
static int mutations, mutation_failures;

static bool same_type(json_t *a, json_t *b)
{
    return json_typeof(a) == json_typeof(b) || (json_is_boolean(a) && json_is_boolean(b));
}

static void mutate_all(json_t *root, json_t *node, const char *path)
{
    json_t *replacements[] = { json_integer(7), json_string("x"), json_true(), json_array(),
                               json_object(), json_real(1.5) };
    const size_t nrep = sizeof replacements / sizeof replacements[0];

    if (json_is_object(node)) {
        size_t nkeys = json_object_size(node), k = 0;
        char **keys = calloc(nkeys, sizeof *keys);
        const char *name;
        json_t *value;

        /* copies: deleting a key frees jansson's copy of its name */
        json_object_foreach(node, name, value)
            keys[k++] = strdup(name);
        for (k = 0; k < nkeys; k++) {
            const char *key = keys[k];
            char sub[512], sqlstate[6] = "";
            const char *msg;

            value = json_incref(json_object_get(node, key));
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
            /* optional keys (docs/format.md) may be absent */
            static const char *const optional[] = { "offset", "slot_name", "publication", "end_lsn", "changes",
                                                    "change_transactions", "globals_file", "globals_sha256", "schema_sha256", "owner",
                                                    "encoding", "lc_collate", "lc_ctype", "icu_locale" };
            bool is_optional = false;
            for (size_t o = 0; o < sizeof optional / sizeof optional[0]; o++)
                is_optional |= strcmp(key, optional[o]) == 0;
            if (strcmp(sub, "extra") != 0 && !is_optional) {
                json_object_del(node, key);
                msg = decode_json_error(root, sqlstate);
                mutations++;
                if (msg == NULL || strcmp(sqlstate, "XX001") != 0 || strstr(msg, key) == NULL) {
                    mutation_failures++;
                    tap_diag("removing %s: %s", sub, msg ? msg : "accepted");
                }
            }
            for (size_t r = 0; r < nrep; r++) {
                if (same_type(replacements[r], value))
                    continue;
                json_object_set(node, key, replacements[r]);
                msg = decode_json_error(root, sqlstate);
                mutations++;
                if (msg == NULL || strcmp(sqlstate, "XX001") != 0) {
                    mutation_failures++;
                    tap_diag("%s as JSON type %d: %s", sub, (int)json_typeof(replacements[r]),
                             msg ? msg : "accepted");
                }
            }
            json_object_set(node, key, value);
            json_decref(value);
            if (strcmp(sub, "extra") != 0)      /* free-form inside */
                mutate_all(root, value, sub);
            free(keys[k]);
        }
        free(keys);
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            json_t *value = json_incref(json_array_get(node, i));
            char sub[512], sqlstate[6] = "";

            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            for (size_t r = 0; r < nrep; r++) {
                const char *msg;

                if (same_type(replacements[r], value))
                    continue;
                json_array_set(node, i, replacements[r]);
                msg = decode_json_error(root, sqlstate);
                mutations++;
                if (msg == NULL || strcmp(sqlstate, "XX001") != 0) {
                    mutation_failures++;
                    tap_diag("%s replaced: %s", sub, msg ? msg : "accepted");
                }
            }
            json_array_set(node, i, value);
            json_decref(value);
            mutate_all(root, value, sub);
        }
    }
    for (size_t r = 0; r < nrep; r++)
        json_decref(replacements[r]);
}

static void test_mutations(bool incremental)
{
    manifest *m = sample(incremental);
    char *text = encode(m, NULL);
    json_t *root = json_loads(text, 0, NULL);

    mutations = mutation_failures = 0;
    mutate_all(root, root, "");
    tap_ok(mutations > 300 && mutation_failures == 0,
           "%s: %d removals/type changes of every key, all refused with XX001 naming the key",
           incremental ? "incremental" : "full", mutations);
    json_decref(root);
    free(text);
    manifest_free(m);
}

/* Set key_path ("a.b[2].c": dot-separated keys, each with at most one
 * [index]) of the sample's JSON to the JSON text value (NULL: delete the
 * key); return the decode error, or NULL when the manifest was accepted. */
static const char *decode_with(bool incremental, const char *key_path, const char *value,
                               char *sqlstate)
{
    static char msg[1024];
    manifest *m = sample(incremental);
    char *text = encode(m, NULL), path[256], *save = NULL;
    json_t *root = json_loads(text, 0, NULL), *node = root;
    json_t *newval = value != NULL ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
    const char *res;

    snprintf(path, sizeof path, "%s", key_path);
    for (char *seg = strtok_r(path, ".", &save); seg != NULL && node != NULL;
         seg = strtok_r(NULL, ".", &save)) {
        char *br = strchr(seg, '[');
        bool last = *save == '\0';
        size_t idx = br != NULL ? strtoul(br + 1, NULL, 10) : 0;

        if (br != NULL)
            *br = '\0';
        if (br == NULL && last && newval == NULL)
            json_object_del(node, seg);
        else if (br == NULL && last)
            json_object_set(node, seg, newval);
        else if (br == NULL)
            node = json_object_get(node, seg);
        else if (last)
            json_array_set(json_object_get(node, seg), idx, newval);
        else
            node = json_array_get(json_object_get(node, seg), idx);
    }
    json_decref(newval);
    res = decode_json_error(root, sqlstate);
    snprintf(msg, sizeof msg, "%s", res ? res : "(accepted)");
    json_decref(root);
    free(text);
    manifest_free(m);
    return res ? msg : NULL;
}

static void expect_refused(bool incremental, const char *path, const char *value,
                           const char *expected_msg, const char *what)
{
    char sqlstate[6] = "";
    const char *msg = decode_with(incremental, path, value, sqlstate);

    if (!tap_ok(msg != NULL && strcmp(sqlstate, "XX001") == 0 &&
                (expected_msg == NULL || strcmp(msg, expected_msg) == 0), "%s", what))
        tap_diag("got: %s (%s)", msg ? msg : "accepted", sqlstate);
}

static void test_values(void)
{
    char sqlstate[6] = "";
    const char *big = "backup manifest \"" PATH "\" is corrupted: ";

    expect_refused(false, "format_version", "2",
                   "backup manifest \"" PATH "\" is corrupted: \"format_version\" is not 1, "
                   "the only version this pgbr reads", "unknown format version 2");
    expect_refused(false, "format_version", "\"1\"", NULL, "format_version as a string");
    expect_refused(false, "format_version", NULL,
                   "backup manifest \"" PATH "\" is corrupted: \"format_version\" is missing",
                   "missing format_version");
    expect_refused(false, "databases[0].tables[0].files[1].sha256", NULL,
                   "backup manifest \"" PATH "\" is corrupted: "
                   "\"databases[0].tables[0].files[1].sha256\" is missing",
                   "a nested missing key is named with its full path");
    expect_refused(false, "databases[0].tables[0].rows", "-1",
                   "backup manifest \"" PATH "\" is corrupted: \"databases[0].tables[0].rows\" "
                   "must be an integer from 0 to 9223372036854775807", "negative row count");
    expect_refused(false, "databases[0].tables[0].oid", "4294967296", NULL, "oid above 2^32-1");
    expect_refused(false, "databases[0].tables[0].kind", "\"heap\"",
                   "backup manifest \"" PATH "\" is corrupted: \"databases[0].tables[0].kind\" "
                   "has an unknown value", "unknown table kind");
    expect_refused(false, "targets.kind", "\"everything\"", NULL, "unknown target kind");
    expect_refused(false, "options.encryption", "\"rot13\"",
                   "backup manifest \"" PATH "\" is corrupted: \"options.encryption\" has an "
                   "unknown value", "unknown encryption mode, named under options");
    expect_refused(false, "backup_type", "\"differential\"", NULL, "unknown backup type");
    expect_refused(false, "databases[0].tables[0].files[0].sha256", "\"BA7816BF8F01CFEA414140"
                   "DE5DAE2223B00361A396177A9CB410FF61F20015AD\"", NULL, "uppercase sha256");
    expect_refused(false, "databases[0].tables[0].files[0].sha256", "\"abc\"", NULL,
                   "short sha256");
    expect_refused(false, "databases[0].tables[0].files[0].path", "\"../../etc/passwd\"", NULL,
                   "a path escaping the backup with ..");
    expect_refused(false, "databases[0].tables[0].files[0].path", "\"/etc/passwd\"", NULL,
                   "an absolute path");
    expect_refused(false, "databases[0].tables[0].files[0].path", "\"data//x\"", NULL,
                   "a path with an empty component");
    expect_refused(false, "databases[0].tables[0].files[0].path", "\"data/./x\"", NULL,
                   "a path with a . component");
    expect_refused(false, "databases[0].schema_file", "\"schema\\\\..\\\\x\"", NULL,
                   "a path with backslashes");
    expect_refused(false, "databases[0].tables[0].files[0].path", "\"data/x\\n\"", NULL,
                   "a path with a control character");
    expect_refused(false, "end_lsn", "\"16/B374D84G\"", NULL, "LSN with a non-hex digit");
    expect_refused(false, "end_lsn", "\"123456789/0\"", NULL, "LSN with 9 digits");
    expect_refused(false, "end_lsn", "\"16B374D848\"", NULL, "LSN without a slash");
    expect_refused(false, "end_time", "\"2026-02-30T00:00:00.000000Z\"", NULL,
                   "February 30th");
    expect_refused(false, "end_time", "\"2026-11-23T12:00:00Z\"", NULL,
                   "a time without microseconds");
    expect_refused(false, "end_time", "\"2026-11-23 12:00:00.000000+00\"", NULL,
                   "a time in PostgreSQL's output format");
    expect_refused(false, "end_time", "null", NULL, "a null end_time");
    expect_refused(false, "databases[0].name", "\"\"", NULL, "an empty database name");
    expect_refused(false, "previous", "\"2026/11/23-110000.00\"",
                   "backup manifest \"" PATH "\" is corrupted: \"backup_type\" is full, but "
                   "previous, start_time or start_lsn is set", "a full backup with previous");
    expect_refused(true, "previous", "null", NULL, "an incremental without previous");
    expect_refused(true, "start_lsn", "null", NULL, "an incremental without start_lsn");
    expect_refused(true, "start_time", "\"2026-11-23T12:00:00.123457Z\"", NULL,
                   "start_time after end_time");
    expect_refused(false, "targets.resolved[0]", "{\"database\":\"a\",\"schema\":\"b\","
                   "\"table\":null}", NULL, "a resolved target with a schema and no table");
    expect_refused(false, "extra", "[]", NULL, "extra as an array");
    expect_refused(false, "server_version_num", "-1", NULL, "negative server_version_num");
    expect_refused(false, "databases[0].tables[0].index_count", "4294967296", NULL,
                   "index_count above 2^32-1");
    tap_ok(decode_with(false, "extra", NULL, sqlstate) == NULL,
           "a missing extra is accepted (it is optional)");
    tap_ok(decode_with(false, "some_future_key", "{\"a\":1}", sqlstate) == NULL,
           "unknown keys are ignored");
    tap_ok(decode_with(false, "databases", "[]", sqlstate) == NULL, "no databases is valid");

    tap_ok(decode_error("", 0, sqlstate) != NULL && strcmp(sqlstate, "XX001") == 0,
           "empty input: XX001");
    tap_ok(strncmp(decode_error("{\"a\":", 5, sqlstate), big, strlen(big)) == 0,
           "truncated JSON: corrupted message");
    tap_ok(decode_error("[1,2]", 5, sqlstate) != NULL, "a top-level array is refused");
    tap_ok(decode_error("{\"format_version\":1,\"format_version\":1}", 39, sqlstate) != NULL,
           "duplicate keys are refused");
    tap_ok(decode_error("{\"format_version\":1}\0garbage", 28, sqlstate) != NULL,
           "a NUL and garbage after the object are refused");
    tap_ok(decode_error("\xff\xfe{}", 4, sqlstate) != NULL, "invalid UTF-8 is refused");
}

static void test_encode_errors(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    manifest *m = sample(false);
    manifest_table *t;
    char *out;

    free(m->end_lsn);
    m->end_lsn = NULL;
    out = manifest_encode(m, NULL, &err);
    tap_ok(out == NULL && strcmp(err.sqlstate, "XX000") == 0 && strstr(err.message, "end_lsn"),
           "encode without end_lsn: XX000 naming it (%s)", err.message);
    pgbr_error_clear(&err);
    manifest_set_string(&m->end_lsn, "0/0", &err);
    m->end_time = MANIFEST_TIME_NONE;
    out = manifest_encode(m, NULL, &err);
    tap_ok(out == NULL && strstr(err.message, "end_time") != NULL,
           "encode without end_time fails");
    pgbr_error_clear(&err);
    m->end_time = 0;
    manifest_set_string(&m->databases[0]->name, "caf\xe9", &err);
    out = manifest_encode(m, NULL, &err);
    tap_ok(out == NULL && strcmp(err.sqlstate, "22021") == 0,
           "a LATIN1 name is refused with 22021");
    pgbr_error_clear(&err);
    manifest_set_string(&m->databases[0]->name, "bank", &err);
    m->databases[0]->tables[0]->kind = (manifest_rel_kind)99;
    out = manifest_encode(m, NULL, &err);
    tap_ok(out == NULL && strcmp(err.sqlstate, "XX000") == 0, "an invalid enum is refused");
    pgbr_error_clear(&err);
    m->databases[0]->tables[0]->kind = MANIFEST_REL_TABLE;
    tap_ok(!manifest_add_resolved_target(m, "db", "schema", NULL, &err),
           "a resolved target with a schema but no table is refused by the builder");
    pgbr_error_clear(&err);

    /* element pointers stay valid while lists grow */
    t = manifest_database_add_table(m->databases[1], "s", "first", &err);
    for (int i = 0; i < 1000; i++) {
        manifest_database_add_table(m->databases[1], "s", "more", &err);
        manifest_table_add_column(t, "c", "int", &err);
        manifest_add_given_target(m, "x", &err);
    }
    tap_ok(m->databases[1]->tables[1] == t && t->ncolumns == 1000 &&
           m->targets.ngiven == 1002 && !pgbr_error_is_set(&err),
           "1000 more tables, columns and targets: earlier pointers are unchanged");
    out = manifest_encode(m, NULL, &err);
    tap_ok(out != NULL, "a manifest with 1000 tables encodes");
    free(out);
    manifest_free(m);
}

static void test_times(void)
{
    char text[MANIFEST_TIME_TEXT_SIZE];
    int64_t v = 0;

    tap_ok(manifest_time_format(0, text) && strcmp(text, "1970-01-01T00:00:00.000000Z") == 0,
           "the epoch");
    tap_ok(manifest_time_format(-1, text) && strcmp(text, "1969-12-31T23:59:59.999999Z") == 0,
           "one microsecond before the epoch");
    tap_ok(manifest_time_parse("1969-12-31T23:59:59.999999Z", &v) && v == -1,
           "parse before the epoch");
    tap_ok(manifest_time_parse("2024-02-29T23:59:59.000001Z", &v) &&
           manifest_time_format(v, text) && strcmp(text, "2024-02-29T23:59:59.000001Z") == 0,
           "a leap day round-trips");
    tap_ok(!manifest_time_parse("2023-02-29T00:00:00.000000Z", &v), "no leap day in 2023");
    tap_ok(!manifest_time_parse("2026-11-23T24:00:00.000000Z", &v), "hour 24 is refused");
    tap_ok(!manifest_time_parse("2026-11-23T12:00:00.000000z", &v), "lower-case z is refused");
    tap_ok(!manifest_time_parse("2026-11-23T12:00:00.0000000Z", &v), "7 digits are refused");
    tap_ok(manifest_time_parse("9999-12-31T23:59:59.999999Z", &v) &&
           !manifest_time_format(v + 1, text), "year 9999 is the last");
    tap_ok(!manifest_time_format(MANIFEST_TIME_NONE, text), "NONE does not format");
}

static void test_checksum(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    char text[MANIFEST_CHECKSUM_TEXT_SIZE], upper[MANIFEST_CHECKSUM_TEXT_SIZE];
    const char *body = "abc";

    tap_ok(manifest_checksum_text(body, 3, text, &err), "checksum text of \"abc\"");
    tap_is_str(text, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  "
               "BACKUP_MANIFEST\n", "sha256sum format: digest, two spaces, file name");
    tap_ok(manifest_checksum_verify(body, 3, text, strlen(text), PATH, &err),
           "verify accepts its own checksum file");
    tap_ok(manifest_checksum_verify(body, 3, text, 64, PATH, &err),
           "verify accepts the bare digest");
    for (size_t i = 0; i <= strlen(text); i++)
        upper[i] = (char)(i < 64 && text[i] >= 'a' && text[i] <= 'f' ? text[i] - 32 : text[i]);
    tap_ok(manifest_checksum_verify(body, 3, upper, strlen(upper), PATH, &err),
           "verify accepts an upper-case digest");
    tap_ok(!manifest_checksum_verify("abd", 3, text, strlen(text), PATH, &err) &&
           strcmp(err.sqlstate, "XX001") == 0 &&
           strcmp(err.message, "backup manifest \"" PATH "\" is corrupted: checksum mismatch") == 0
           && err.detail != NULL, "one changed byte: XX001 checksum mismatch with a detail");
    pgbr_error_clear(&err);
    tap_ok(!manifest_checksum_verify(body, 3, text, 63, PATH, &err) &&
           strcmp(err.sqlstate, "XX001") == 0, "a truncated checksum file is refused");
    pgbr_error_clear(&err);
    tap_ok(!manifest_checksum_verify(body, 3, "", 0, PATH, &err), "an empty checksum file");
    pgbr_error_clear(&err);
    text[10] = 'g';
    tap_ok(!manifest_checksum_verify(body, 3, text, strlen(text), PATH, &err) &&
           strstr(err.message, "does not start with a SHA-256 digest") != NULL,
           "a non-hex character is refused");
    pgbr_error_clear(&err);
    memcpy(upper + 64, "x\n", 3);
    tap_ok(!manifest_checksum_verify(body, 3, upper, 66, PATH, &err),
           "a 65th hex-like character is refused");
    pgbr_error_clear(&err);
}

int main(void)
{
    test_round_trip(false);
    test_round_trip(true);
    test_mutations(false);
    test_mutations(true);
    test_values();
    test_encode_errors();
    test_times();
    test_checksum();
    return tap_done();
}
