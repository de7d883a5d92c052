/*
 * layout.h - the layout of a backup collection (spec reference 1.2-1.5), on
 * top of storage.h:
 *
 *   <collection>/<YYYY>/<MM>/<DD>-<HHMMSS.ss>/        a full backup ("subdir")
 *       BACKUP_MANIFEST, BACKUP-LOCK-<job id>, ...
 *   <collection>/incrementals/<subdir>/<YYYYMMDD>/<HHMMSS.ss>/   its incrementals
 *   <X>/<subdir>/<YYYYMMDD>/<HHMMSS.ss>/              with incremental_location = X
 *   <collection>/metadata/latest/LATEST-<hex>          the LATEST pointer (authoritative)
 *   <collection>/LATEST                                legacy LATEST (first full only)
 *
 * Times are microseconds since the Unix epoch (UTC). Subdirectory names use
 * CockroachDB's Go layout "/2006/01/02-150405.00": hundredths are truncated,
 * never rounded (rounding could carry into the next second, day or year).
 * Pure functions are thread-safe; the storage ones are as thread-safe as
 * storage.h (one handle, several threads).
 */
#ifndef PGBR_LAYOUT_H
#define PGBR_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"
#include "pgbr/storage.h"

/* Buffer sizes: "/YYYY/MM/DD-HHMMSS.ss" is 21 characters; an incremental
 * layer path "incrementals/YYYY/MM/DD-HHMMSS.ss/YYYYMMDD/HHMMSS.ss" is 52. */
#define LAYOUT_SUBDIR_SIZE 32
#define LAYOUT_PATH_SIZE 96

#define LAYOUT_MANIFEST "BACKUP_MANIFEST"
#define LAYOUT_LOCK_PREFIX "BACKUP-LOCK-"
#define LAYOUT_INCREMENTALS_DIR "incrementals"
#define LAYOUT_LATEST_DIR "metadata/latest"
#define LAYOUT_LATEST_FILE "LATEST"

/*
 * The full-backup subdirectory of an end time: "/YYYY/MM/DD-HHMMSS.ss" in
 * UTC (whatever TZ says). Years outside 0000-9999 fail with 22023.
 */
bool layout_full_subdir(int64_t end_time_us, char out[LAYOUT_SUBDIR_SIZE], pgbr_error *err);

/* True when a user-given subdirectory is the word LATEST (any case), which
 * the caller resolves with layout_read_latest instead. */
bool layout_is_latest(const char *given);

/*
 * Normalise a subdirectory as users pass it to FROM '<subdir>' IN / INTO
 * '<subdir>' IN: with or without the leading '/', with or without one
 * trailing '/'. It must have the exact shape YYYY/MM/DD-HHMMSS.ss with valid
 * month, day, hour, minute and second; anything else (including "..", paths
 * of incrementals or other files) fails with 22023 and a HINT naming the
 * expected form. out gets the canonical "/YYYY/MM/DD-HHMMSS.ss".
 */
bool layout_normalize_subdir(const char *given, char out[LAYOUT_SUBDIR_SIZE], pgbr_error *err);

/* The time a canonical or user-given subdirectory names (hundredths). */
bool layout_subdir_time(const char *subdir, int64_t *time_us, pgbr_error *err);

/* Where an incremental layer goes. */
typedef enum layout_incremental_kind {
    /* in the collection: incrementals/<subdir>/<YYYYMMDD>/<HHMMSS.ss> */
    LAYOUT_INCREMENTALS,
    /* relative to an incremental_location X (or to the collection itself in
     * the v21.2 layout): <subdir>/<YYYYMMDD>/<HHMMSS.ss> */
    LAYOUT_INCREMENTAL_LOCATION
} layout_incremental_kind;

/*
 * The directory of an incremental layer ending at end_time_us, of the full
 * backup full_subdir (any form layout_normalize_subdir accepts), relative to
 * the storage root it is written to (no leading '/').
 */
bool layout_incremental_dir(const char *full_subdir, int64_t end_time_us, layout_incremental_kind kind,
                            char out[LAYOUT_PATH_SIZE], pgbr_error *err);

/*
 * Record full_subdir as the newest full backup of a collection. Writes a NEW
 * file metadata/latest/LATEST-<hex> where hex is 16 lower-case hex digits of
 * UINT64_MAX - now_us, so a lexical listing gives the newest first (a name
 * taken in the same microsecond moves to the next microsecond). Never
 * rewrites a file: the legacy root LATEST is written only when absent, so it
 * keeps naming the first full backup and metadata/latest/ is authoritative.
 * now_us is the wall-clock time of writing (the caller passes it so tests
 * are deterministic).
 */
bool layout_write_latest(storage *coll, const char *full_subdir, int64_t now_us, pgbr_error *err);

/*
 * The newest full backup of a collection: the first LATEST-* file of
 * metadata/latest/, else the root LATEST file. None: 58P01 `path does not
 * contain a completed latest backup`. A file that is not a subdirectory:
 * XX001 `malformed LATEST file` (an unreadable one keeps the SQLSTATE of the
 * read error, with the same message). out gets the canonical subdir.
 */
bool layout_read_latest(storage *coll, char out[LAYOUT_SUBDIR_SIZE], pgbr_error *err);

/*
 * The full backup a statement names: given NULL or LATEST (any case) reads
 * the LATEST pointer, anything else goes through layout_normalize_subdir.
 * The backup must be complete (have a BACKUP_MANIFEST): otherwise 58P01
 * `backup "<subdir>" not found in "<display url>"`.
 */
bool layout_resolve_backup(storage *coll, const char *given, char out[LAYOUT_SUBDIR_SIZE],
                           pgbr_error *err);

struct manifest;
/*
 * Read, check against BACKUP_MANIFEST.sha256, and decode the manifest of the
 * backup (or layer) directory dir (relative to the storage root, with or
 * without a leading '/'). A missing manifest is 58P01, a corrupt one XX001.
 * *raw (may be NULL) gets the manifest bytes as stored (malloc'd,
 * NUL-terminated), *raw_len their length. NULL with err set on failure.
 */
struct manifest *layout_read_manifest(storage *st, const char *dir, char **raw, size_t *raw_len,
                                      pgbr_error *err);

/* A list of subdirectories or layer names (malloc'd strings). */
typedef struct layout_list {
    char **items;
    size_t n;
} layout_list;

void layout_list_free(layout_list *list);

/*
 * The full backups of a collection, as SHOW BACKUPS IN prints them:
 * directories holding a BACKUP_MANIFEST at depth three
 * (^/?[^/]+/[^/]+/[^/]+/BACKUP_MANIFEST$) whose name is a valid subdir, as
 * "/YYYY/MM/DD-HHMMSS.ss", ascending (= chronological). Incrementals, files
 * of unrelated shape and unfinished backups (no manifest) are not listed.
 * out is filled even when empty; free it with layout_list_free.
 */
bool layout_list_full_backups(storage *coll, layout_list *out, pgbr_error *err);

/*
 * The completed incremental layers of one full backup, ascending, each as
 * the directory relative to the storage root (as layout_incremental_dir
 * returns it). kind as in layout_incremental_dir.
 */
bool layout_list_incrementals(storage *st, const char *full_subdir, layout_incremental_kind kind,
                              layout_list *out, pgbr_error *err);

/* Where a layer of a chain is stored. */
typedef enum layout_place {
    LAYOUT_PLACE_INCREMENTALS = 0,  /* <collection>/incrementals/<subdir>/... (the default) */
    LAYOUT_PLACE_IN_FULL,           /* <collection>/<subdir>/... (v21.2: incremental_location = the collection) */
    LAYOUT_PLACE_LOCATION           /* <X>/<subdir>/... (incremental_location = X) */
} layout_place;

/* One incremental layer of a chain, wherever it is stored. */
typedef struct layout_layer {
    char *dir;          /* relative to st's root, no leading '/' (malloc'd) */
    storage *st;        /* borrowed: the collection or the incremental location */
    layout_place place;
} layout_layer;

typedef struct layout_layers {
    layout_layer *items;
    size_t n;
} layout_layers;

void layout_layers_free(layout_layers *layers);

/*
 * True when inc names the same location as coll (their display URLs are
 * equal): an incremental_location equal to the collection, which means the
 * v21.2 layout inside the full backup's own directory.
 */
bool layout_same_location(const storage *coll, const storage *inc);

/*
 * The completed incremental layers of the full backup full_subdir in every
 * place a chain's layers may be: the collection's incrementals/, the full
 * backup's own directory (v21.2 layout) and, when inc is not NULL and not
 * the collection itself, the incremental location inc. Ascending by end time
 * (a layer's name, <YYYYMMDD>/<HHMMSS.ss>, is its end time). A name found in
 * several places (a layer copied) is listed once, from the first place in
 * that order. Layers stored only in a location not given are not listed:
 * the caller checks that each layer's manifest names the one before it as
 * "previous". out is filled even when empty; free it with
 * layout_layers_free.
 */
bool layout_find_layers(storage *coll, storage *inc, const char *full_subdir, layout_layers *out,
                        pgbr_error *err);

/* What a storage location holds (SHOW BACKUP uses it to tell a user that a
 * collection root is not a backup). */
typedef enum layout_kind {
    LAYOUT_KIND_NONE = 0,   /* neither a backup nor a collection (maybe empty) */
    LAYOUT_KIND_BACKUP,     /* a backup directory: BACKUP_MANIFEST at its root */
    LAYOUT_KIND_COLLECTION  /* a collection: a LATEST file or full backups */
} layout_kind;

bool layout_classify(storage *st, layout_kind *out, pgbr_error *err);

/*
 * Claim the backup directory dir (relative to the storage root) for job_id
 * by writing dir/BACKUP-LOCK-<job_id>. Fails when dir already holds a
 * BACKUP_MANIFEST (58P02 `<uri> already contains a BACKUP_MANIFEST file`) or
 * another job's lock (42710 `<uri> already contains a `BACKUP-LOCK` file
 * written by job <id>`); succeeds without writing when the lock of job_id
 * is already there (a resumed job). If two jobs race, the lock is checked
 * again after writing, and a job that sees another's lock removes its own and
 * fails: at worst both fail, never both proceed.
 */
bool layout_lock_backup_dir(storage *st, const char *dir, int64_t job_id, pgbr_error *err);

#endif
