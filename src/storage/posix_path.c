/*
 * posix_path.c - confinement of the local file system driver (nodelocal://
 * and file://) to external_io_dir.
 *
 * Confinement does not rely on checking path strings once: the driver keeps
 * a descriptor of external_io_dir (resolved with realpath at open, so the
 * directory itself may be a symlink the administrator made) and reaches
 * every file by walking from it one component at a time with
 * O_NOFOLLOW|O_DIRECTORY. A symbolic link below external_io_dir is never
 * followed, so neither a link present at open nor one swapped in later can
 * lead out. ".." is refused here (URLs) and in storage.c (paths).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "posix_int.h"

bool posix_oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

char *posix_join(const char *a, const char *b)
{
    char *out = NULL;

    if (a[0] == '\0' || b[0] == '\0')
        return strdup(a[0] == '\0' ? b : a);
    if (asprintf(&out, "%s/%s", a, b) < 0)
        return NULL;
    return out;
}

bool posix_symlink_error(const posix_storage *ps, const char *path, const char *component,
                         pgbr_error *err)
{
    char *name = storage_display_join(ps->display, path);

    pgbr_error_set(err, "42501", "access to \"%s\" is refused: pgbr does not follow symbolic links "
                   "below external_io_dir", name != NULL ? name : ps->display);
    pgbr_error_detail(err, "The path component \"%s\" is a symbolic link.", component);
    free(name);
    return false;
}

/* See posix_int.h. */
int posix_open_dir(const posix_storage *ps, const char *rel, const char *path, bool create,
                   bool *missing, pgbr_error *err)
{
    int fd = openat(ps->ext_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const char *p = rel;
    char comp[NAME_MAX + 1];

    *missing = false;
    if (fd < 0) {
        storage_error_errno(err, errno, "could not open external_io_dir");
        return -1;
    }
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        int nfd;

        if (n > NAME_MAX) {
            close(fd);
            storage_error_errno(err, ENAMETOOLONG, "could not open \"%s\"", ps->display);
            return -1;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        for (int attempt = 0;; attempt++) {
            int e;
            struct stat sb;

            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (nfd >= 0)
                break;
            e = errno;
            if ((e == ELOOP || e == ENOTDIR) && fstatat(fd, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(sb.st_mode)) {
                close(fd);
                posix_symlink_error(ps, path, comp, err);
                return -1;
            }
            if ((e == ENOENT || e == ENOTDIR) && !create) {
                close(fd);
                *missing = true;
                return -1;
            }
            if (e == ENOENT && attempt < 2) {
                if (mkdirat(fd, comp, POSIX_DIR_MODE) == 0) {
                    if (fsync(fd) != 0) { /* the new entry must survive a crash */
                        e = errno;
                        close(fd);
                        storage_error_errno(err, e, "could not fsync a directory of \"%s\"", ps->display);
                        return -1;
                    }
                    continue;
                }
                if (errno == EEXIST)
                    continue;
                e = errno;
            }
            close(fd);
            char *name = storage_display_join(ps->display, path);
            storage_error_errno(err, e, "could not open directory of \"%s\"", name != NULL ? name : path);
            free(name);
            return -1;
        }
        close(fd);
        fd = nfd;
        p += n;
        if (*p == '/')
            p++;
    }
    return fd;
}

/* Split root/path into its directory and its last component (both malloc'd). */
static bool posix_split(const posix_storage *ps, const char *path, char **dir, char **leaf,
                        pgbr_error *err)
{
    char *full = posix_join(ps->root, path);
    char *slash;

    *dir = *leaf = NULL;
    if (full == NULL)
        return posix_oom(err);
    slash = strrchr(full, '/');
    if (slash == NULL) {
        *leaf = full;
        *dir = strdup("");
    } else {
        *slash = '\0';
        *leaf = strdup(slash + 1);
        *dir = full;
    }
    if (*dir == NULL || *leaf == NULL) {
        free(*dir);
        free(*leaf);
        *dir = *leaf = NULL;
        return posix_oom(err);
    }
    if (strlen(*leaf) > NAME_MAX) {
        free(*dir);
        free(*leaf);
        *dir = *leaf = NULL;
        return storage_error_errno(err, ENAMETOOLONG, "invalid storage path \"%s\"", path);
    }
    return true;
}

/* See posix_int.h. */
int posix_parent(const posix_storage *ps, const char *path, bool create, char **leaf, bool *missing,
                 pgbr_error *err)
{
    char *dir;
    int fd;

    if (!posix_split(ps, path, &dir, leaf, err)) {
        *missing = false;
        return -1;
    }
    fd = posix_open_dir(ps, dir, path, create, missing, err);
    free(dir);
    if (fd < 0) {
        free(*leaf);
        *leaf = NULL;
    }
    return fd;
}

/* ---- URL checks ------------------------------------------------------------------ */

/*
 * Normalise an absolute or relative path lexically into "a/b/c" (no leading
 * '/'). ".." is refused as leading outside external_io_dir.
 */
static bool posix_lexical(const char *in, const storage_url *url, char **out, pgbr_error *err)
{
    switch (storage_normalize(in, false, out)) {
    case STORAGE_NORM_OOM:
        return posix_oom(err);
    case STORAGE_NORM_DOTDOT:
    case STORAGE_NORM_TEMP:
        pgbr_error_set(err, "42501", "storage URL \"%s\" leads outside external_io_dir", url->display);
        pgbr_error_detail(err, "\"..\" path components are not allowed.");
        return false;
    case STORAGE_NORM_OK:
        break;
    }
    return true;
}

/* If path ("a/b/c", from '/') lies inside dir ("x/y"), *rel = the rest. */
static bool posix_inside(const char *path, const char *dir, const char **rel)
{
    size_t n = strlen(dir);

    if (n == 0) {
        *rel = path;
        return true;
    }
    if (strncmp(path, dir, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return false;
    *rel = path[n] == '/' ? path + n + 1 : path + n;
    return true;
}

/* The unknown-parameter error of nodelocal/file URLs: names, comma-separated. */
static bool posix_query_error(const storage_url *url, pgbr_error *err)
{
    char *names = strdup(url->query);
    size_t o = 0;

    if (names == NULL)
        return posix_oom(err);
    for (const char *p = url->query; *p != '\0';) {
        size_t n = strcspn(p, "&"), k = strcspn(p, "=&");

        if (k > 0) {
            if (o > 0) {
                names[o++] = ',';
                names[o++] = ' ';
            }
            memmove(names + o, p, k); /* never longer than the query itself */
            o += k;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    names[o] = '\0';
    pgbr_error_set(err, "22023", "unknown query parameters: %s", names);
    pgbr_error_detail(err, "%s URLs take no query parameters.", url->scheme);
    free(names);
    return false;
}

/* Where a nodelocal/file URL points, relative to external_io_dir. */
static bool posix_root(const storage_url *url, const storage_config *cfg, const char *ext_real,
                       char **root, pgbr_error *err)
{
    char *path, *ext_norm = NULL;
    const char *rel;
    bool ok;

    if (!posix_lexical(url->path, url, &path, err))
        return false;
    if (strcmp(url->scheme, "nodelocal") == 0) {
        *root = path;
        return true;
    }
    /* file:// names an absolute path: it must be inside external_io_dir as
     * resolved or as configured */
    ok = posix_inside(path, ext_real + 1, &rel);
    if (!ok && cfg->external_io_dir[0] == '/') {
        pgbr_error ext_err = PGBR_ERROR_INIT;

        if (posix_lexical(cfg->external_io_dir, url, &ext_norm, &ext_err))
            ok = posix_inside(path, ext_norm, &rel);
        pgbr_error_clear(&ext_err);
    }
    if (ok && (*root = strdup(rel)) == NULL)
        ok = posix_oom(err);
    else if (!ok) {
        pgbr_error_set(err, "42501", "storage URL \"%s\" leads outside external_io_dir", url->display);
        pgbr_error_detail(err, "file:// URLs must name a path inside external_io_dir.");
        pgbr_error_hint(err, "nodelocal://self/<path> names a path relative to external_io_dir.");
    }
    free(ext_norm);
    free(path);
    return ok;
}

static bool posix_check_host(const storage_url *url, const storage_config *cfg, pgbr_error *err)
{
    const char *h = url->host;
    char *end;
    long id;

    if (strcmp(url->scheme, "file") == 0) {
        if (h[0] == '\0' || strcasecmp(h, "localhost") == 0)
            return true;
        pgbr_error_set(err, "22023", "invalid storage URL \"%s\": file URLs cannot name a host", url->display);
        pgbr_error_hint(err, "Write file:///<absolute path inside external_io_dir>.");
        return false;
    }
    if (strcasecmp(h, "self") == 0)
        return true;
    errno = 0;
    id = strtol(h, &end, 10);
    if (h[0] < '0' || h[0] > '9' || *end != '\0' || errno != 0) {
        pgbr_error_set(err, "22023", "invalid storage URL \"%s\": the host of a nodelocal URL must be a "
                       "node id, 0 or self", url->display);
        return false;
    }
    if (id == 0 || id == cfg->node_id)
        return true;
    pgbr_error_set(err, "0A000", "nodelocal storage of node %s cannot be reached from node %d", h,
                   cfg->node_id);
    pgbr_error_detail(err, "pgbr runs as a single node for now: nodelocal URLs name this node's "
                      "external_io_dir.");
    pgbr_error_hint(err, "Use nodelocal://self/<path> (or nodelocal://%d/<path>).", cfg->node_id);
    return false;
}

bool posix_location(const storage_url *url, const storage_config *cfg, posix_storage *ps, pgbr_error *err)
{
    char *ext_real;
    bool missing;
    int fd;

    if (url->query != NULL && url->query[0] != '\0')
        return posix_query_error(url, err);
    if (cfg != NULL && !posix_check_host(url, cfg, err))
        return false;
    if (cfg == NULL || cfg->external_io_dir == NULL || cfg->external_io_dir[0] == '\0') {
        pgbr_error_set(err, "0A000", "%s storage is not available: external_io_dir is not set", url->scheme);
        pgbr_error_hint(err, "Start pgbr with --external-io-dir=DIR (or set external_io_dir in pgbr.conf) "
                        "to the directory nodelocal:// and file:// URLs may use.");
        return false;
    }
    if (strcmp(cfg->external_io_dir, "disabled") == 0) {
        pgbr_error_set(err, "0A000", "%s storage is disabled (external_io_dir = disabled)", url->scheme);
        return false;
    }
    if ((ext_real = realpath(cfg->external_io_dir, NULL)) == NULL)
        return storage_error_errno(err, errno, "could not open external_io_dir");
    if (!posix_root(url, cfg, ext_real, &ps->root, err)) {
        free(ext_real);
        return false;
    }
    ps->ext_fd = open(ext_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(ext_real);
    if (ps->ext_fd < 0)
        return storage_error_errno(err, errno, "could not open external_io_dir");
    if ((ps->display = strdup(url->display)) == NULL)
        return posix_oom(err);
    /* refuse a location that already crosses a symlink now, not at first use */
    fd = posix_open_dir(ps, ps->root, "", false, &missing, err);
    if (fd < 0 && !missing)
        return false;
    if (fd >= 0)
        close(fd);
    return true;
}
