/*
 * storage.h - where backups are written and read: one interface, one driver
 * per URL scheme (modeled on pgBackRest's src/storage).
 *
 * A storage handle names a location (a "storage root": a collection, an
 * incremental_location, ...) given as a URL. Every path passed to the
 * functions below is relative to that root, '/'-separated, with or without a
 * leading '/'; "." and empty components are ignored and ".." is refused.
 * Nothing outside src/storage knows which driver a handle talks to.
 *
 * Schemes implemented now:
 *   nodelocal://N/path  N = 0, "self" or this node's id; path relative to
 *                       external_io_dir
 *   file:///abs/path    an absolute path that must lie inside external_io_dir
 * Both are confined to external_io_dir: ".." components, absolute paths
 * outside it and symbolic links below it are refused (SQLSTATE 42501), and
 * the check is repeated on every operation (symlinks are never followed below
 * external_io_dir, so a link created later cannot lead out either).
 * s3, gs, azure-blob (azure, azure-storage), http(s), userfile and external
 * URLs are recognised and refused with 0A000 and a clear message.
 *
 * Files are written once: a write streams into a temporary object and
 * becomes visible under its name only at commit, and committing over an
 * existing file fails (58P02). This is what makes object-lock / WORM buckets
 * work and what a later multipart-upload driver needs (data, then commit).
 *
 * Errors follow PostgreSQL's errcode_for_file_access(): missing file 58P01,
 * already exists 58P02, permission 42501, a file where a directory belongs
 * (or the reverse) 42809, name too long 42622, disk full 53100, too many
 * open files 53000, any other I/O error 58030, always with the OS message.
 *
 * Threads: a storage handle is immutable after storage_open and may be used
 * by several threads at once, each on its own files (its own storage_write /
 * storage_read handles). A storage_write or storage_read handle belongs to one
 * thread at a time. Nothing here blocks the event loop's thread only because
 * it is never called there: all of it is blocking file or network I/O.
 */
#ifndef PGBR_STORAGE_H
#define PGBR_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgbr/error.h"

typedef struct storage storage;
typedef struct storage_write storage_write;
typedef struct storage_read storage_read;

/* What storage_open needs from the configuration (copied; the caller keeps
 * ownership of its strings). */
typedef struct storage_config {
    const char *external_io_dir; /* root of nodelocal:// and file:// URLs; NULL
                                  * or "" = not configured, "disabled" = off */
    int node_id;                 /* this pgbr node's id (nodelocal://<id>/) */
} storage_config;

/* A file as storage_stat and storage_list describe it. */
typedef struct storage_info {
    const char *path;  /* storage_list only: relative to the storage root, no
                        * leading '/'; valid during the callback only */
    bool exists;       /* storage_stat only; always true in a listing */
    uint64_t size;     /* bytes */
    int64_t mtime;     /* modification time, seconds since the Unix epoch */
} storage_info;

/*
 * Open the location a URL names. No I/O beyond checking the configuration and
 * that the part of the location that already exists is confined to
 * external_io_dir; the location itself need not exist yet (it is created by
 * the first write). Errors: unknown scheme, scheme not implemented,
 * userfile/external URLs (0A000), no external_io_dir (0A000 with a HINT),
 * another node's nodelocal (0A000), query parameters on nodelocal/file URLs
 * (22023 "unknown query parameters: ..."), malformed URLs (22023), paths
 * leading outside external_io_dir (42501). Returns NULL with err set.
 * A URL query parameter COCKROACH_LOCALITY is not storage's business: the
 * caller removes it before opening.
 */
storage *storage_open(const char *url, const storage_config *cfg, pgbr_error *err);

/* Free the handle. Writes and reads opened through it must be finished. */
void storage_close(storage *st);

/* The URL with secrets redacted and without a trailing '/', for messages and
 * logs. Owned by the handle. */
const char *storage_display_url(const storage *st);

/*
 * Start writing a new file. Parent directories are created as needed. Fails
 * with 58P02 `file "<url>/<path>" already exists` when the file exists (it is
 * checked again at commit). The data goes to a temporary object that no
 * listing shows. The returned handle is finished by exactly one call of
 * storage_write_commit or storage_write_abort. NULL with err set on failure.
 */
storage_write *storage_write_open(storage *st, const char *path, pgbr_error *err);

/* Append len bytes. On failure the handle stays valid and must still be
 * aborted (or committed, which then fails and publishes nothing). */
bool storage_write_data(storage_write *w, const void *buf, size_t len, pgbr_error *err);

/*
 * Make the file visible under its name, durably: the local driver fsyncs the
 * temporary file, renames it to the final name without ever replacing an
 * existing file, and fsyncs the directory. Fails with 58P02 when the name
 * was taken meanwhile. Frees the handle whether it succeeds or not (on
 * failure the temporary object is removed).
 */
bool storage_write_commit(storage_write *w, pgbr_error *err);

/* Drop the temporary object and free the handle. NULL is allowed. */
void storage_write_abort(storage_write *w);

/*
 * Open a file for reading bytes [offset, offset + length), or to its end when
 * length is -1. A range past the end reads as short or empty. A missing file
 * is 58P01 `file "<url>/<path>" does not exist`. NULL with err set on failure.
 */
storage_read *storage_read_open(storage *st, const char *path, uint64_t offset, int64_t length,
                                pgbr_error *err);

/* Read up to len bytes: the number read, 0 at the end of the range, -1 with
 * err set on failure. */
ssize_t storage_read_data(storage_read *r, void *buf, size_t len, pgbr_error *err);

/* Free the handle. NULL is allowed. */
void storage_read_close(storage_read *r);

/* Read the rest of the range and hand it, in pieces of at most 256 KiB, to
 * sink (a filter chain, a data file reader...). False with err set when a
 * read or the sink fails. The handle stays open. */
bool storage_read_to_sink(storage_read *r, bool (*sink)(void *arg, const void *data, size_t len, pgbr_error *err),
                          void *sink_arg, pgbr_error *err);

/*
 * The callback of storage_list: return true to go on, false to stop. A
 * callback that stops because of an error sets err; storage_list then
 * returns false.
 */
typedef bool (*storage_list_cb)(void *arg, const storage_info *info, pgbr_error *err);

/*
 * Call cb for every file under the directory prefix (NULL or "" = the whole
 * location), recursively, in bytewise order of the path relative to the
 * storage root. Temporary objects of uncommitted writes are never listed;
 * neither are symbolic links (not followed) nor anything that is not a
 * regular file. A prefix that does not exist (or is a file) lists nothing.
 * Returns false with err set on failure (or when cb set err).
 */
bool storage_list(storage *st, const char *prefix, storage_list_cb cb, void *arg, pgbr_error *err);

/* Describe a file: out->exists is false (without an error) when there is no
 * file of that name; a directory is not a file. out->path is NULL. */
bool storage_stat(storage *st, const char *path, storage_info *out, pgbr_error *err);

/* Remove a file. A missing file is not an error. */
bool storage_delete(storage *st, const char *path, pgbr_error *err);

/* Remove everything under the directory prefix, recursively, and the prefix
 * itself (a cancelled backup removes its directory). Missing is not an error;
 * an empty prefix (the whole location) is refused with 22023. */
bool storage_delete_prefix(storage *st, const char *prefix, pgbr_error *err);

/* Write a whole (small) file: open, data, commit. */
bool storage_put(storage *st, const char *path, const void *data, size_t len, pgbr_error *err);

/*
 * Read a whole file of at most max_size bytes. On success *out is malloc'd
 * (the caller frees it), holds *len bytes and one extra '\0' so text can be
 * used as a string. A larger file fails with 54000.
 */
bool storage_get(storage *st, const char *path, size_t max_size, char **out, size_t *len,
                 pgbr_error *err);

#endif
