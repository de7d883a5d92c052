/*
 * storage_driver.h - the contract between src/storage/storage.c (URL
 * dispatch, path checks, the public handles) and the drivers (one per
 * scheme). Private to src/storage: nothing else includes it.
 *
 * As pgBackRest's StorageInterface: a driver is a table of functions plus
 * an opaque state made by its open function. storage.c has already
 * normalised every path it passes on ("a/b/c": no leading '/', no empty,
 * "." or ".." components, no reserved temporary names) and checked that
 * file paths are not empty. A driver's state must be safe to share between
 * threads; its write and read states belong to one thread at a time.
 */
#ifndef PGBR_STORAGE_DRIVER_H
#define PGBR_STORAGE_DRIVER_H

#include "pgbr/storage.h"

/* Names starting with this are temporary objects of uncommitted writes:
 * never listed, never accepted as a path component. */
#define STORAGE_TEMP_PREFIX ".pgbr-tmp."

typedef struct storage_driver {
    const char *name;
    /* Start a write; returns the write state or NULL with err set. */
    void *(*write_open)(void *drv, const char *path, pgbr_error *err);
    bool (*write_data)(void *w, const void *buf, size_t len, pgbr_error *err);
    /* Publish the file; frees w whatever the outcome. */
    bool (*write_commit)(void *w, pgbr_error *err);
    /* Drop the temporary object; frees w. */
    void (*write_abort)(void *w);
    void *(*read_open)(void *drv, const char *path, uint64_t offset, int64_t length, pgbr_error *err);
    ssize_t (*read_data)(void *r, void *buf, size_t len, pgbr_error *err);
    void (*read_close)(void *r);
    /* prefix is "" for the whole location. Calls cb in bytewise path order. */
    bool (*list)(void *drv, const char *prefix, storage_list_cb cb, void *arg, pgbr_error *err);
    bool (*stat)(void *drv, const char *path, storage_info *out, pgbr_error *err);
    bool (*remove)(void *drv, const char *path, pgbr_error *err);
    bool (*remove_prefix)(void *drv, const char *prefix, pgbr_error *err);
    void (*free)(void *drv);
} storage_driver;

/* A URL taken apart by storage.c. Strings are malloc'd and owned by
 * storage.c; a driver copies what it keeps. */
typedef struct storage_url {
    const char *raw;     /* as the user gave it */
    char *scheme;        /* lower-case */
    char *host;          /* percent-decoded, may be "" */
    char *path;          /* percent-decoded, "" or starting with '/' */
    char *query;         /* text after '?', NULL when there is none */
    char *display;       /* redacted, no trailing '/' */
} storage_url;

/* A driver's open function: fill *driver and *state, or set err. */
typedef bool (*storage_driver_open_fn)(const storage_url *url, const storage_config *cfg,
                                       const storage_driver **driver, void **state, pgbr_error *err);

/* The local file system driver: nodelocal:// and file:// (posix.c). */
bool storage_posix_open(const storage_url *url, const storage_config *cfg,
                        const storage_driver **driver, void **state, pgbr_error *err);

/* "<display>/<path>" (or display alone for an empty path), malloc'd; NULL
 * only when out of memory. */
char *storage_display_join(const char *display, const char *path);

/*
 * Set err from an errno value as PostgreSQL's errcode_for_file_access()
 * does (ENOENT 58P01, EEXIST 58P02, EACCES/EPERM/EROFS 42501, ENOTDIR/EISDIR 42809,
 * ENAMETOOLONG 42622, ENOSPC/EDQUOT 53100,
 * EMFILE/ENFILE 53000, else 58030); the message is fmt followed by ": " and
 * the OS message. Returns false.
 */
bool storage_error_errno(pgbr_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lexical normalisation shared by the front end and the drivers: "a/b/c"
 * without leading, doubled or trailing '/' and without "." components. */
typedef enum storage_norm_result {
    STORAGE_NORM_OK = 0,
    STORAGE_NORM_DOTDOT,  /* a ".." component */
    STORAGE_NORM_TEMP,    /* a component with the reserved temporary prefix (check_temp) */
    STORAGE_NORM_OOM
} storage_norm_result;
storage_norm_result storage_normalize(const char *path, bool check_temp, char **out);

#endif
