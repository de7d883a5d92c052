/*
 * posix.c - the local file system driver: nodelocal://N/path and
 * file:///abs/path, both confined to external_io_dir (posix_path.c walks to
 * every directory without following symlinks; this file does the I/O).
 *
 * Writes go to ".pgbr-tmp.<random>.<name>" in the target directory; commit
 * fsyncs it, renames it with RENAME_NOREPLACE (link + unlink where the file
 * system lacks that flag: both fail rather than replace an existing file)
 * and fsyncs the directory. Listings walk the tree with descriptors, skip
 * temporary files and symlinks, and sort the paths bytewise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "posix_int.h"

typedef struct posix_write {
    int dir_fd;
    int fd;
    char *leaf;
    char *tmp;
    char *name;       /* display name */
} posix_write;

typedef struct posix_read {
    int fd;
    uint64_t pos;
    uint64_t remaining;
    char *name;
} posix_read;

/* ---- writes ---------------------------------------------------------------- */

static void posix_write_free(posix_write *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    free(w->leaf);
    free(w->tmp);
    free(w->name);
    free(w);
}

static uint64_t posix_random(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t r;

    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    }
    return r ^ atomic_fetch_add(&counter, 0x9e3779b97f4a7c15ULL);
}

static void *posix_write_open(void *drv, const char *path, pgbr_error *err)
{
    posix_storage *ps = drv;
    posix_write *w = calloc(1, sizeof *w);
    struct stat sb;
    bool missing;

    if (w == NULL) {
        posix_oom(err);
        return NULL;
    }
    w->fd = -1;
    if ((w->name = storage_display_join(ps->display, path)) == NULL) {
        posix_oom(err);
        goto fail;
    }
    w->dir_fd = posix_parent(ps, path, true, &w->leaf, &missing, err);
    if (w->dir_fd < 0)
        goto fail;
    if (fstatat(w->dir_fd, w->leaf, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        pgbr_error_set(err, "58P02", "file \"%s\" already exists", w->name);
        pgbr_error_hint(err, "Backup files are written once and never replaced.");
        goto fail;
    }
    for (int attempt = 0; w->fd < 0; attempt++) {
        free(w->tmp);
        w->tmp = NULL;
        if (asprintf(&w->tmp, STORAGE_TEMP_PREFIX "%016llx.%.200s", (unsigned long long)posix_random(),
                     w->leaf) < 0) {
            w->tmp = NULL;
            posix_oom(err);
            goto fail;
        }
        w->fd = openat(w->dir_fd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       POSIX_FILE_MODE);
        if (w->fd < 0 && (errno != EEXIST || attempt >= 16)) {
            storage_error_errno(err, errno, "could not create file \"%s\"", w->name);
            goto fail;
        }
    }
    return w;
fail:
    free(w->tmp);
    w->tmp = NULL;
    posix_write_free(w);
    return NULL;
}

static bool posix_write_data(void *state, const void *buf, size_t len, pgbr_error *err)
{
    posix_write *w = state;
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(w->fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return storage_error_errno(err, errno, "could not write file \"%s\"", w->name);
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Publish tmp as leaf without ever replacing an existing file. */
static int posix_publish(posix_write *w)
{
    if (renameat2(w->dir_fd, w->tmp, w->dir_fd, w->leaf, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return errno;
    /* no RENAME_NOREPLACE on this file system: a hard link fails on EEXIST too */
    if (linkat(w->dir_fd, w->tmp, w->dir_fd, w->leaf, 0) != 0)
        return errno;
    unlinkat(w->dir_fd, w->tmp, 0);
    return 0;
}

static bool posix_write_commit(void *state, pgbr_error *err)
{
    posix_write *w = state;
    int e, fd = w->fd;

    w->fd = -1;
    if (fsync(fd) != 0) {
        e = errno;
        close(fd);
        storage_error_errno(err, e, "could not fsync file \"%s\"", w->name);
        goto fail;
    }
    if (close(fd) != 0) {
        storage_error_errno(err, errno, "could not close file \"%s\"", w->name);
        goto fail;
    }
    if ((e = posix_publish(w)) != 0) {
        if (e == EEXIST) {
            pgbr_error_set(err, "58P02", "file \"%s\" already exists", w->name);
            pgbr_error_hint(err, "Backup files are written once and never replaced.");
        } else {
            storage_error_errno(err, e, "could not rename a temporary file to \"%s\"", w->name);
        }
        goto fail;
    }
    free(w->tmp);
    w->tmp = NULL;
    if (fsync(w->dir_fd) != 0) {
        storage_error_errno(err, errno, "could not fsync the directory of \"%s\"", w->name);
        posix_write_free(w);
        return false;
    }
    posix_write_free(w);
    return true;
fail:
    unlinkat(w->dir_fd, w->tmp, 0);
    posix_write_free(w);
    return false;
}

static void posix_write_abort(void *state)
{
    posix_write *w = state;

    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->tmp != NULL)
        unlinkat(w->dir_fd, w->tmp, 0);
    posix_write_free(w);
}

/* ---- reads ----------------------------------------------------------------- */

static bool posix_not_found(const char *name, pgbr_error *err)
{
    return pgbr_error_set(err, "58P01", "file \"%s\" does not exist", name);
}

static void *posix_read_open(void *drv, const char *path, uint64_t offset, int64_t length,
                             pgbr_error *err)
{
    posix_storage *ps = drv;
    posix_read *r = calloc(1, sizeof *r);
    char *leaf = NULL;
    struct stat sb;
    bool missing;
    int dir_fd;

    if (r == NULL) {
        posix_oom(err);
        return NULL;
    }
    r->fd = -1;
    if ((r->name = storage_display_join(ps->display, path)) == NULL) {
        posix_oom(err);
        goto fail;
    }
    dir_fd = posix_parent(ps, path, false, &leaf, &missing, err);
    if (dir_fd < 0) {
        if (missing)
            posix_not_found(r->name, err);
        goto fail;
    }
    r->fd = openat(dir_fd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;

        if (e == ENOENT)
            posix_not_found(r->name, err);
        else if (e == ELOOP)
            posix_symlink_error(ps, path, leaf, err);
        else
            storage_error_errno(err, e, "could not open file \"%s\"", r->name);
        close(dir_fd);
        goto fail;
    }
    close(dir_fd);
    if (fstat(r->fd, &sb) != 0) {
        storage_error_errno(err, errno, "could not stat file \"%s\"", r->name);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        pgbr_error_set(err, "42809", "\"%s\" is not a file", r->name);
        goto fail;
    }
    r->pos = offset;
    r->remaining = length < 0 ? UINT64_MAX : (uint64_t)length;
    free(leaf);
    return r;
fail:
    free(leaf);
    if (r->fd >= 0)
        close(r->fd);
    free(r->name);
    free(r);
    return NULL;
}

static ssize_t posix_read_data(void *state, void *buf, size_t len, pgbr_error *err)
{
    posix_read *r = state;
    ssize_t n;

    if (len > r->remaining)
        len = (size_t)r->remaining;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    if (len == 0 || r->pos > (uint64_t)INT64_MAX)
        return 0;
    do
        n = pread(r->fd, buf, len, (off_t)r->pos);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        storage_error_errno(err, errno, "could not read file \"%s\"", r->name);
        return -1;
    }
    r->pos += (uint64_t)n;
    r->remaining -= (uint64_t)n;
    return n;
}

static void posix_read_close(void *state)
{
    posix_read *r = state;

    close(r->fd);
    free(r->name);
    free(r);
}

/* ---- listing ----------------------------------------------------------------- */

typedef struct posix_entry {
    char *path;
    uint64_t size;
    int64_t mtime;
} posix_entry;

typedef struct posix_listing {
    posix_entry *v;
    size_t n, cap;
} posix_listing;

static bool posix_listing_add(posix_listing *l, char *path, const struct stat *sb)
{
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 64 : l->cap * 2;
        posix_entry *v = realloc(l->v, cap * sizeof *v);

        if (v == NULL)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].path = path;
    l->v[l->n].size = (uint64_t)sb->st_size;
    l->v[l->n].mtime = (int64_t)sb->st_mtim.tv_sec;
    l->n++;
    return true;
}

static void posix_listing_free(posix_listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
}

/* Collect the regular files below the open directory fd (taken over), whose
 * path relative to the storage root is rel. */
static bool posix_collect(const posix_storage *ps, int fd, const char *rel, posix_listing *l,
                          pgbr_error *err)
{
    DIR *d = fdopendir(fd);
    struct dirent *de;
    bool ok = true;

    if (d == NULL) {
        storage_error_errno(err, errno, "could not list \"%s\"", ps->display);
        close(fd);
        return false;
    }
    while (ok && (errno = 0, de = readdir(d)) != NULL) {
        struct stat sb;
        char *path;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strncmp(de->d_name, STORAGE_TEMP_PREFIX, strlen(STORAGE_TEMP_PREFIX)) == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
            continue; /* symlinks are not followed, devices are not backups */
        if ((path = posix_join(rel, de->d_name)) == NULL) {
            ok = posix_oom(err);
            break;
        }
        if (S_ISREG(sb.st_mode)) {
            if (!posix_listing_add(l, path, &sb)) {
                free(path);
                ok = posix_oom(err);
            }
            continue;
        }
        int child = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
            if (errno != ENOENT) {
                char *name = storage_display_join(ps->display, path);
                ok = storage_error_errno(err, errno, "could not list \"%s\"", name ? name : path);
                free(name);
            }
        } else {
            ok = posix_collect(ps, child, path, l, err);
        }
        free(path);
    }
    if (ok && errno != 0)
        ok = storage_error_errno(err, errno, "could not list \"%s\"", ps->display);
    closedir(d);
    return ok;
}

static int posix_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const posix_entry *)a)->path, ((const posix_entry *)b)->path);
}

static bool posix_list(void *drv, const char *prefix, storage_list_cb cb, void *arg, pgbr_error *err)
{
    posix_storage *ps = drv;
    posix_listing l = { 0 };
    char *rel = posix_join(ps->root, prefix);
    bool missing, ok;
    int fd;

    if (rel == NULL)
        return posix_oom(err);
    fd = posix_open_dir(ps, rel, prefix, false, &missing, err);
    free(rel);
    if (fd < 0)
        return missing;
    ok = posix_collect(ps, fd, prefix, &l, err);
    if (ok) {
        if (l.n > 1)
            qsort(l.v, l.n, sizeof *l.v, posix_entry_cmp);
        for (size_t i = 0; i < l.n; i++) {
            storage_info info = { .path = l.v[i].path, .exists = true, .size = l.v[i].size,
                                  .mtime = l.v[i].mtime };
            if (!cb(arg, &info, err))
                break;
        }
    }
    posix_listing_free(&l);
    return ok;
}

/* ---- stat and delete ---------------------------------------------------------- */

static bool posix_stat(void *drv, const char *path, storage_info *out, pgbr_error *err)
{
    posix_storage *ps = drv;
    char *leaf;
    struct stat sb;
    bool missing;
    int fd = posix_parent(ps, path, false, &leaf, &missing, err);

    if (fd < 0)
        return missing;
    if (fstatat(fd, leaf, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        int e = errno;
        bool ok = e == ENOENT;

        if (!ok) {
            char *name = storage_display_join(ps->display, path);
            storage_error_errno(err, e, "could not stat file \"%s\"", name ? name : path);
            free(name);
        }
        close(fd);
        free(leaf);
        return ok;
    }
    close(fd);
    if (S_ISLNK(sb.st_mode)) {
        posix_symlink_error(ps, path, leaf, err);
        free(leaf);
        return false;
    }
    free(leaf);
    if (S_ISREG(sb.st_mode)) {
        out->exists = true;
        out->size = (uint64_t)sb.st_size;
        out->mtime = (int64_t)sb.st_mtim.tv_sec;
    }
    return true;
}

static bool posix_remove(void *drv, const char *path, pgbr_error *err)
{
    posix_storage *ps = drv;
    char *leaf;
    bool missing, ok = true;
    int fd = posix_parent(ps, path, false, &leaf, &missing, err);

    if (fd < 0)
        return missing;
    if (unlinkat(fd, leaf, 0) != 0 && errno != ENOENT) {
        int e = errno;
        char *name = storage_display_join(ps->display, path);

        ok = storage_error_errno(err, e, "could not remove file \"%s\"", name ? name : path);
        free(name);
    }
    close(fd);
    free(leaf);
    return ok;
}

/* Remove everything inside the open directory fd (taken over). */
static bool posix_rmtree(const posix_storage *ps, int fd, const char *path, pgbr_error *err)
{
    DIR *d = fdopendir(fd);
    struct dirent *de;
    bool ok = true;

    if (d == NULL) {
        close(fd);
        return storage_error_errno(err, errno, "could not list \"%s\"", ps->display);
    }
    while (ok && (de = readdir(d)) != NULL) {
        struct stat sb;
        int flags = 0;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            int child = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

            if (child < 0 && errno == ENOENT)
                continue;
            ok = child >= 0 ? posix_rmtree(ps, child, path, err)
                            : storage_error_errno(err, errno, "could not remove \"%s\"", path);
            flags = AT_REMOVEDIR;
        }
        if (ok && unlinkat(dirfd(d), de->d_name, flags) != 0 && errno != ENOENT)
            ok = storage_error_errno(err, errno, "could not remove \"%s\"", path);
    }
    closedir(d);
    return ok;
}

static bool posix_remove_prefix(void *drv, const char *prefix, pgbr_error *err)
{
    posix_storage *ps = drv;
    char *leaf, *name = NULL;
    struct stat sb;
    bool missing, ok = true;
    int fd = posix_parent(ps, prefix, false, &leaf, &missing, err);

    if (fd < 0)
        return missing;
    if ((name = storage_display_join(ps->display, prefix)) == NULL)
        ok = posix_oom(err);
    else if (fstatat(fd, leaf, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        ok = errno == ENOENT || storage_error_errno(err, errno, "could not remove \"%s\"", name);
    else if (S_ISDIR(sb.st_mode)) {
        int child = openat(fd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (child < 0)
            ok = errno == ENOENT || storage_error_errno(err, errno, "could not remove \"%s\"", name);
        else if ((ok = posix_rmtree(ps, child, name, err)) && unlinkat(fd, leaf, AT_REMOVEDIR) != 0 &&
                 errno != ENOENT)
            ok = storage_error_errno(err, errno, "could not remove \"%s\"", name);
    } else if (unlinkat(fd, leaf, 0) != 0 && errno != ENOENT)
        ok = storage_error_errno(err, errno, "could not remove \"%s\"", name);
    free(name);
    free(leaf);
    close(fd);
    return ok;
}

static void posix_free(void *drv)
{
    posix_storage *ps = drv;

    if (ps == NULL)
        return;
    if (ps->ext_fd >= 0)
        close(ps->ext_fd);
    free(ps->root);
    free(ps->display);
    free(ps);
}

static const storage_driver posix_driver = {
    .name = "posix",
    .write_open = posix_write_open,
    .write_data = posix_write_data,
    .write_commit = posix_write_commit,
    .write_abort = posix_write_abort,
    .read_open = posix_read_open,
    .read_data = posix_read_data,
    .read_close = posix_read_close,
    .list = posix_list,
    .stat = posix_stat,
    .remove = posix_remove,
    .remove_prefix = posix_remove_prefix,
    .free = posix_free,
};

bool storage_posix_open(const storage_url *url, const storage_config *cfg, const storage_driver **driver,
                        void **state, pgbr_error *err)
{
    posix_storage *ps = calloc(1, sizeof *ps);

    if (ps == NULL)
        return posix_oom(err);
    ps->ext_fd = -1;
    if (!posix_location(url, cfg, ps, err)) {
        posix_free(ps);
        return false;
    }
    *driver = &posix_driver;
    *state = ps;
    return true;
}
