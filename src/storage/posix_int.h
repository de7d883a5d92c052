/*
 * posix_int.h - what the two halves of the local file system driver share:
 * posix_path.c (URL checks, confinement to external_io_dir, walking to a
 * directory without following symlinks) and posix.c (reads, writes,
 * listings, deletes). Private to src/storage.
 */
#ifndef PGBR_POSIX_INT_H
#define PGBR_POSIX_INT_H

#include "storage_driver.h"

#define POSIX_DIR_MODE 0750
#define POSIX_FILE_MODE 0640

/* The driver state: immutable after storage_posix_open, shared by threads. */
typedef struct posix_storage {
    int ext_fd;       /* external_io_dir, opened at storage_open */
    char *root;       /* the location relative to external_io_dir: "" or "a/b" */
    char *display;    /* redacted URL for messages */
} posix_storage;

bool posix_oom(pgbr_error *err);

/* "<a>/<b>", either may be empty. malloc'd, NULL when out of memory. */
char *posix_join(const char *a, const char *b);

/* The 42501 error for a symbolic link met on the way to path. Returns false. */
bool posix_symlink_error(const posix_storage *ps, const char *path, const char *component,
                         pgbr_error *err);

/*
 * Open the directory rel (relative to external_io_dir, normalised, "" = the
 * directory itself) without following symlinks, creating missing components
 * (fsynced into their parents) when create is set. path is the storage path
 * the caller works on (for messages). Returns a descriptor, or -1: with err
 * set on failure, or with *missing = true (err untouched) when !create and
 * it does not exist (or a file is in the way).
 */
int posix_open_dir(const posix_storage *ps, const char *rel, const char *path, bool create,
                   bool *missing, pgbr_error *err);

/* The directory of storage path (created when create is set) and *leaf, its
 * last component (malloc'd). -1 as posix_open_dir, *leaf then NULL. */
int posix_parent(const posix_storage *ps, const char *path, bool create, char **leaf, bool *missing,
                 pgbr_error *err);

/*
 * Check a nodelocal/file URL against the configuration and fill ps->root,
 * ps->ext_fd and ps->display (ps comes zeroed with ext_fd = -1; on failure
 * the caller frees what was filled). Refuses query parameters, other nodes,
 * a missing external_io_dir, paths outside it and symlinks on the way.
 */
bool posix_location(const storage_url *url, const storage_config *cfg, posix_storage *ps, pgbr_error *err);

#endif
