/*
 * manifest.h - BACKUP_MANIFEST: what one backup layer holds, as a C struct
 * tree, encoded to and decoded from JSON with jansson (docs/format.md lists
 * every key), and its checksum file BACKUP_MANIFEST.sha256.
 *
 * Ownership: a manifest owns everything reachable from it (strings are
 * malloc'd copies); manifest_free() frees the tree. Build one with
 * manifest_new() and the manifest_*_add_* functions; pointers they return
 * stay valid until manifest_free(). Set a string field with
 * manifest_set_string() (or assign a malloc'd string after freeing the old
 * one). Not thread-safe: one owner at a time (the job writing or reading it).
 *
 * Decoding treats the bytes as hostile: wrong JSON, a missing required key,
 * a value of the wrong type or out of range, an unknown enum text, an unknown
 * format version, a path escaping the backup directory all fail with
 * SQLSTATE XX001 `backup manifest "<path>" is corrupted: <why>`, where <why>
 * names the key (e.g. "databases[0].tables[2].rows"). Unknown keys are
 * ignored, so a later pgbr may add keys without a format version bump as long
 * as old readers may skip them; anything else bumps MANIFEST_FORMAT_VERSION.
 */
#ifndef PGBR_MANIFEST_H
#define PGBR_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"

struct json_t;              /* jansson's; the `extra` object */

#define MANIFEST_FORMAT_VERSION 1
#define MANIFEST_FILE_NAME "BACKUP_MANIFEST"
#define MANIFEST_CHECKSUM_FILE_NAME "BACKUP_MANIFEST.sha256"

/* A time: microseconds since 1970-01-01 00:00:00 UTC; MANIFEST_TIME_NONE is
 * JSON null. In JSON: "2026-11-23T12:00:00.000000Z" (always UTC, always six
 * fractional digits), years 0001 to 9999. */
#define MANIFEST_TIME_NONE INT64_MIN
#define MANIFEST_TIME_TEXT_SIZE 28  /* 27 characters + NUL */

typedef enum manifest_backup_type {
    MANIFEST_BACKUP_FULL = 0,       /* "full" */
    MANIFEST_BACKUP_INCREMENTAL     /* "incremental" */
} manifest_backup_type;

typedef enum manifest_target_kind {
    MANIFEST_TARGET_CLUSTER = 0,    /* "cluster" */
    MANIFEST_TARGET_DATABASES,      /* "databases" */
    MANIFEST_TARGET_TABLES          /* "tables" */
} manifest_target_kind;

typedef enum manifest_rel_kind {
    MANIFEST_REL_TABLE = 0,         /* "table" (relkind r) */
    MANIFEST_REL_PARTITIONED,       /* "partitioned_table" (p) */
    MANIFEST_REL_FOREIGN,           /* "foreign_table" (f) */
    MANIFEST_REL_MATVIEW,           /* "materialized_view" (m) */
    MANIFEST_REL_VIEW               /* "view" (v) */
} manifest_rel_kind;

typedef enum manifest_encryption {
    MANIFEST_ENCRYPTION_NONE = 0,   /* "none" */
    MANIFEST_ENCRYPTION_PASSPHRASE, /* "passphrase" */
    MANIFEST_ENCRYPTION_KMS         /* "kms" */
} manifest_encryption;

/* One resolved target: a database (schema and table NULL) or a table. */
typedef struct manifest_target_name {
    char *database;
    char *schema;
    char *table;
} manifest_target_name;

typedef struct manifest_targets {
    manifest_target_kind kind;
    char **given;           /* database names / table patterns as written */
    size_t ngiven;
    manifest_target_name *resolved;
    size_t nresolved;
} manifest_targets;

/* A data file of a table (docs/format.md, "Data files"). */
typedef struct manifest_file {
    char *path;             /* relative to the backup's directory, e.g. "data/db/16384/0.pgbr" */
    uint64_t stored_bytes;  /* file size */
    char sha256[65];        /* lowercase hex of the stored bytes */
    uint64_t rows;
    uint64_t raw_bytes;     /* uncompressed COPY bytes */
    /* optional (0 = absent): where this data file starts inside path when
     * path is a bundle of several small tables' data files, one after the
     * other; the data file is then stored_bytes bytes from there */
    uint64_t offset;
} manifest_file;

typedef struct manifest_column {
    char *name;
    char *type;             /* format_type() text, e.g. "character varying(20)" */
} manifest_column;

typedef struct manifest_table {
    char *schema;
    char *name;
    uint32_t oid;           /* in the source database */
    manifest_rel_kind kind;
    manifest_column *columns;
    size_t ncolumns;
    uint64_t rows;
    uint64_t logical_bytes; /* SHOW BACKUP size_bytes */
    uint32_t index_count;
    manifest_file **files;
    size_t nfiles;
} manifest_table;

typedef struct manifest_sequence {
    char *schema;
    char *name;
    int64_t last_value;
    bool is_called;         /* setval(..., last_value, is_called) restores it */
} manifest_sequence;

typedef struct manifest_database {
    char *name;
    char *schema_file;      /* e.g. "schema/db.dump", relative to the backup's directory */
    /* optional (NULL = not recorded): what CREATE DATABASE needs to give the
     * restored database the source's owner, encoding and locale */
    char *schema_sha256;    /* SHA-256 of the schema file (64 lowercase hex) */
    char *owner;
    char *encoding;         /* pg_encoding_to_char(encoding), e.g. "UTF8" */
    char *lc_collate;
    char *lc_ctype;
    char *icu_locale;       /* set only when the locale provider is ICU */
    manifest_table **tables;
    size_t ntables;
    manifest_sequence **sequences;
    size_t nsequences;
    /* optional (NULL / empty = absent), the change stream of a chain
     * (docs/incremental.md): the logical replication slot and publication
     * the full backup created in this database, the LSN this layer's data
     * of the database is consistent at, and an incremental layer's change
     * files (change lines, docs/format.md) with their transaction count */
    char *slot_name;
    char *publication;
    char *end_lsn;
    manifest_file **changes;
    size_t nchanges;
    uint64_t change_transactions;
} manifest_database;

typedef struct manifest {
    int format_version;     /* MANIFEST_FORMAT_VERSION (encode always writes it) */
    manifest_backup_type backup_type;
    int64_t start_time;     /* NONE for a full backup; the previous layer's end time */
    int64_t end_time;       /* required */
    char *start_lsn;        /* "16/B374D848" text; NULL for a full backup */
    char *end_lsn;          /* required */
    char *previous;         /* subdir of the previous layer; NULL for a full backup */
    manifest_targets targets;
    manifest_database **databases;
    size_t ndatabases;
    bool revision_history;
    manifest_encryption encryption;
    char *pgbr_version;
    char *server_version;       /* server_version, e.g. "16.4" */
    int32_t server_version_num; /* server_version_num, e.g. 160004 */
    /* optional: a whole-server backup's roles (pg_dumpall --roles-only) */
    char *globals_file;         /* e.g. "globals.sql" */
    char *globals_sha256;
    struct json_t *extra;       /* a JSON object for later issues; never NULL */
} manifest;

/* An empty full-backup manifest: times NONE, extra {}. */
manifest *manifest_new(pgbr_error *err);
/* Free the manifest and everything reachable from it. NULL is a no-op. */
void manifest_free(manifest *m);

/* Replace *field with a copy of value (NULL allowed). */
bool manifest_set_string(char **field, const char *value, pgbr_error *err);
bool manifest_add_given_target(manifest *m, const char *text, pgbr_error *err);
/* schema and table are both NULL (a database) or both set (a table). */
bool manifest_add_resolved_target(manifest *m, const char *database, const char *schema,
                                  const char *table, pgbr_error *err);
manifest_database *manifest_add_database(manifest *m, const char *name, pgbr_error *err);
manifest_table *manifest_database_add_table(manifest_database *db, const char *schema,
                                            const char *name, pgbr_error *err);
manifest_sequence *manifest_database_add_sequence(manifest_database *db, const char *schema,
                                                  const char *name, pgbr_error *err);
bool manifest_table_add_column(manifest_table *t, const char *name, const char *type,
                               pgbr_error *err);
manifest_file *manifest_table_add_file(manifest_table *t, const char *path, pgbr_error *err);
manifest_file *manifest_database_add_change_file(manifest_database *db, const char *path, pgbr_error *err);

/*
 * The JSON text of m (keys in a fixed order, two-space indentation, a final
 * newline), malloc'd and NUL-terminated; *len (may be NULL) gets its length
 * without the NUL. The same manifest always encodes to the same bytes. NULL
 * with XX000 if a required field is unset, 22021 if a string is not UTF-8.
 */
char *manifest_encode(const manifest *m, size_t *len, pgbr_error *err);
/* Decode and validate len bytes read from path (used in messages only). */
manifest *manifest_decode(const void *data, size_t len, const char *path, pgbr_error *err);

/* Time text <-> microseconds (see MANIFEST_TIME_NONE). parse is strict:
 * exactly the format above, a real calendar date. */
bool manifest_time_format(int64_t usec, char out[MANIFEST_TIME_TEXT_SIZE]);
bool manifest_time_parse(const char *text, int64_t *usec);

/* The contents of BACKUP_MANIFEST.sha256 for these manifest bytes:
 * "<64 hex>  BACKUP_MANIFEST\n", which `sha256sum -c` understands. */
#define MANIFEST_CHECKSUM_TEXT_SIZE 83
bool manifest_checksum_text(const void *manifest_bytes, size_t len,
                            char out[MANIFEST_CHECKSUM_TEXT_SIZE], pgbr_error *err);
/* Check manifest bytes against the checksum file's contents: XX001
 * `backup manifest "<path>" is corrupted: checksum mismatch` (or a malformed
 * checksum file). */
bool manifest_checksum_verify(const void *manifest_bytes, size_t len, const void *checksum,
                              size_t checksum_len, const char *path, pgbr_error *err);

#endif
