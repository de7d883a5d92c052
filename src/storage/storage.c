/*
 * storage.c - the public storage interface (include/pgbr/storage.h): takes a
 * URL apart, picks the driver of its scheme (or refuses the scheme with a
 * clear error), checks and normalises every path before a driver sees it,
 * and builds the whole-file helpers (put/get) on the streaming calls.
 *
 * Drivers live in their own files (posix.c for nodelocal:// and file://)
 * behind storage_driver.h; nothing here knows how a driver stores bytes.
 */
#include "pgbr/storage.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/hex.h"
#include "pgbr/sql.h"
#include "storage_driver.h"

struct storage {
    const storage_driver *driver;
    void *state;
    char *display;               /* redacted URL, no trailing '/' */
};

struct storage_write {
    storage *st;
    void *state;
    bool failed;                 /* a write_data failed: commit must not publish */
};

struct storage_read {
    storage *st;
    void *state;
};

/* Schemes pgbr recognises. open == NULL: recognised but not available yet. */
typedef struct storage_scheme {
    const char *name;
    storage_driver_open_fn open;
} storage_scheme;

static const storage_scheme storage_schemes[] = {
    { "nodelocal", storage_posix_open },
    { "file", storage_posix_open },
    { "s3", NULL },
    { "gs", NULL },
    { "azure-blob", NULL },
    { "azure", NULL },
    { "azure-storage", NULL },
    { "http", NULL },
    { "https", NULL },
    { "file-http", NULL },
    { "file-https", NULL },
};

static bool storage_oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

bool storage_error_errno(pgbr_error *err, int errnum, const char *fmt, ...)
{
    const char *state;
    char osmsg[256];
    char *text = NULL;
    va_list ap;
    int rc;

    switch (errnum) {
    case ENOENT:
        state = "58P01";
        break;
    case ENOTDIR:
    case EISDIR:
    case ENOTEMPTY:
        state = "42809";
        break;
    case ENAMETOOLONG:
        state = "42622";
        break;
    case EEXIST:
        state = "58P02";
        break;
    case EACCES:
    case EPERM:
    case EROFS:
        state = "42501";
        break;
    case ENOSPC:
    case EDQUOT:
        state = "53100";
        break;
    case EMFILE:
    case ENFILE:
        state = "53000";
        break;
    default:
        state = "58030";
        break;
    }
    va_start(ap, fmt);
    rc = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return storage_oom(err);
    pgbr_error_set(err, state, "%s: %s", text, strerror_r(errnum, osmsg, sizeof osmsg));
    free(text);
    return false;
}

char *storage_display_join(const char *display, const char *path)
{
    char *out = NULL;

    if (path == NULL || path[0] == '\0')
        return strdup(display);
    if (asprintf(&out, "%s/%s", display, path) < 0)
        return NULL;
    return out;
}

/* ---- URLs ---------------------------------------------------------------- */

static void storage_url_free(storage_url *u)
{
    free(u->scheme);
    free(u->host);
    free(u->path);
    free(u->query);
    free(u->display);
    memset(u, 0, sizeof *u);
}

/* Percent-decode s[0..len) into a new string; %00 and bad escapes fail. */
static char *url_decode(const storage_url *u, const char *s, size_t len, pgbr_error *err)
{
    char *out = malloc(len + 1);
    size_t o = 0;

    if (out == NULL) {
        storage_oom(err);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= len) { /* fewer than two characters follow the '%' */
            free(out);
            pgbr_error_set(err, "22023", "invalid storage URL \"%s\": bad escape sequence", u->display);
            return NULL;
        }
        int h = pgbr_hex_value(s[i + 1]), l = pgbr_hex_value(s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            free(out);
            pgbr_error_set(err, "22023", "invalid storage URL \"%s\": bad escape sequence \"%.3s\"",
                           u->display, s + i);
            return NULL;
        }
        out[o++] = (char)(h * 16 + l);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* The scheme of raw, lower-cased, or "" when raw does not start with one. */
static char *url_scheme(const char *raw)
{
    size_t n = 0;

    if (isalpha((unsigned char)raw[0]))
        while (isalnum((unsigned char)raw[n]) || raw[n] == '+' || raw[n] == '-' || raw[n] == '.')
            n++;
    if (raw[n] != ':')
        n = 0;
    char *s = strndup(raw, n);
    if (s != NULL)
        for (char *p = s; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
    return s;
}

/* Split scheme://host/path?query (u->scheme and u->display already set). */
static bool url_split(storage_url *u, pgbr_error *err)
{
    const char *p = u->raw + strlen(u->scheme) + 1;
    size_t host_len, path_len;

    if (strncmp(p, "//", 2) != 0)
        return pgbr_error_set(err, "22023", "invalid storage URL \"%s\": expected %s://", u->display,
                              u->scheme);
    p += 2;
    if (strchr(p, '#') != NULL)
        return pgbr_error_set(err, "22023", "invalid storage URL \"%s\": fragments (#) are not allowed",
                              u->display);
    host_len = strcspn(p, "/?");
    if ((u->host = url_decode(u, p, host_len, err)) == NULL)
        return false;
    p += host_len;
    path_len = strcspn(p, "?");
    if ((u->path = url_decode(u, p, path_len, err)) == NULL)
        return false;
    p += path_len;
    if (*p == '?' && (u->query = strdup(p + 1)) == NULL)
        return storage_oom(err);
    return true;
}

/* The errors of schemes pgbr recognises but cannot open. */
static bool storage_refuse_scheme(const char *scheme, pgbr_error *err)
{
    if (strcmp(scheme, "userfile") == 0) {
        pgbr_error_set(err, "0A000", "userfile storage is not supported by pgbr");
        pgbr_error_detail(err, "userfile:// keeps files in SQL tables of a CockroachDB cluster; "
                               "pgbr keeps backups in files or object storage.");
        pgbr_error_hint(err, "Use nodelocal://self/<path> or file:///<path> for a directory under "
                             "external_io_dir.");
        return false;
    }
    if (strcmp(scheme, "external") == 0) {
        pgbr_error_set(err, "0A000", "external connections are not supported yet");
        pgbr_error_hint(err, "Use the storage URL itself instead of external://<name>.");
        return false;
    }
    pgbr_error_set(err, "0A000", "%s storage is not implemented yet", scheme);
    pgbr_error_hint(err, "pgbr can use nodelocal:// and file:// URLs (directories under "
                         "external_io_dir) for now.");
    return false;
}

storage *storage_open(const char *url, const storage_config *cfg, pgbr_error *err)
{
    storage_url u = { .raw = url };
    const storage_scheme *scheme = NULL;
    storage *st = NULL;

    if (url == NULL)
        url = u.raw = "";
    if ((u.scheme = url_scheme(url)) == NULL || (u.display = sql_redact_uri(url)) == NULL) {
        storage_oom(err);
        goto fail;
    }
    for (size_t n = strlen(u.display); n > 0 && u.display[n - 1] == '/' &&
                                       !(n >= 3 && strncmp(u.display + n - 3, "://", 3) == 0); n--)
        u.display[n - 1] = '\0';
    for (size_t i = 0; i < sizeof storage_schemes / sizeof storage_schemes[0]; i++)
        if (strcmp(storage_schemes[i].name, u.scheme) == 0)
            scheme = &storage_schemes[i];
    if (scheme == NULL && strcmp(u.scheme, "userfile") != 0 && strcmp(u.scheme, "external") != 0) {
        pgbr_error_set(err, "0A000",
                       "unsupported storage scheme: \"%s\" - refer to docs to find supported storage schemes",
                       u.scheme);
        goto fail;
    }
    if (scheme == NULL || scheme->open == NULL) {
        storage_refuse_scheme(u.scheme, err);
        goto fail;
    }
    if (!url_split(&u, err))
        goto fail;
    if ((st = calloc(1, sizeof *st)) == NULL) {
        storage_oom(err);
        goto fail;
    }
    if (!scheme->open(&u, cfg, &st->driver, &st->state, err)) {
        free(st);
        st = NULL;
        goto fail;
    }
    st->display = u.display;
    u.display = NULL;
fail:
    storage_url_free(&u);
    return st;
}

void storage_close(storage *st)
{
    if (st == NULL)
        return;
    st->driver->free(st->state);
    free(st->display);
    free(st);
}

const char *storage_display_url(const storage *st)
{
    return st->display;
}

/* ---- paths --------------------------------------------------------------- */

storage_norm_result storage_normalize(const char *path, bool check_temp, char **out)
{
    size_t len = path != NULL ? strlen(path) : 0, o = 0, tlen = strlen(STORAGE_TEMP_PREFIX);
    char *norm = malloc(len + 1);
    const char *p = path;

    *out = NULL;
    if (norm == NULL)
        return STORAGE_NORM_OOM;
    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, "/");

        if (n == 2 && strncmp(p, "..", 2) == 0) {
            free(norm);
            return STORAGE_NORM_DOTDOT;
        }
        if (check_temp && n >= tlen && strncmp(p, STORAGE_TEMP_PREFIX, tlen) == 0) {
            free(norm);
            return STORAGE_NORM_TEMP;
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o > 0)
                norm[o++] = '/';
            memcpy(norm + o, p, n);
            o += n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    norm[o] = '\0';
    *out = norm;
    return STORAGE_NORM_OK;
}

/*
 * Normalise a path relative to the storage root into *out ("a/b/c"):
 * leading, doubled and trailing '/' and "." components go, ".." and the
 * reserved temporary prefix are refused. allow_empty: "" (the root) is fine.
 */
static bool storage_path(const storage *st, const char *path, bool allow_empty, char **out,
                         pgbr_error *err)
{
    switch (storage_normalize(path, true, out)) {
    case STORAGE_NORM_OOM:
        return storage_oom(err);
    case STORAGE_NORM_DOTDOT:
        pgbr_error_set(err, "42501", "storage path \"%s\" leads outside \"%s\"", path, st->display);
        pgbr_error_detail(err, "\"..\" path components are not allowed");
        return false;
    case STORAGE_NORM_TEMP:
        return pgbr_error_set(err, "22023", "storage path \"%s\" uses the reserved prefix \"%s\"", path,
                              STORAGE_TEMP_PREFIX);
    case STORAGE_NORM_OK:
        break;
    }
    if ((*out)[0] == '\0' && !allow_empty) {
        free(*out);
        *out = NULL;
        return pgbr_error_set(err, "22023", "empty storage path in \"%s\"", st->display);
    }
    return true;
}

/* ---- the interface --------------------------------------------------------- */

storage_write *storage_write_open(storage *st, const char *path, pgbr_error *err)
{
    storage_write *w;
    char *norm;

    if (!storage_path(st, path, false, &norm, err))
        return NULL;
    if ((w = calloc(1, sizeof *w)) == NULL) {
        free(norm);
        storage_oom(err);
        return NULL;
    }
    w->st = st;
    w->state = st->driver->write_open(st->state, norm, err);
    free(norm);
    if (w->state == NULL) {
        free(w);
        return NULL;
    }
    return w;
}

bool storage_write_data(storage_write *w, const void *buf, size_t len, pgbr_error *err)
{
    if (w->failed)
        return pgbr_error_set(err, "58030", "could not write to \"%s\": an earlier write failed",
                              w->st->display);
    if (len == 0)
        return true;
    if (!w->st->driver->write_data(w->state, buf, len, err))
        w->failed = true;
    return !w->failed;
}

bool storage_write_commit(storage_write *w, pgbr_error *err)
{
    bool ok;

    if (w->failed) {
        w->st->driver->write_abort(w->state);
        pgbr_error_set(err, "58030", "could not commit a write to \"%s\": an earlier write failed",
                       w->st->display);
        free(w);
        return false;
    }
    ok = w->st->driver->write_commit(w->state, err);
    free(w);
    return ok;
}

void storage_write_abort(storage_write *w)
{
    if (w == NULL)
        return;
    w->st->driver->write_abort(w->state);
    free(w);
}

storage_read *storage_read_open(storage *st, const char *path, uint64_t offset, int64_t length,
                                pgbr_error *err)
{
    storage_read *r;
    char *norm;

    if (length < -1) {
        pgbr_error_set(err, "22023", "invalid read length %lld", (long long)length);
        return NULL;
    }
    if (!storage_path(st, path, false, &norm, err))
        return NULL;
    if ((r = calloc(1, sizeof *r)) == NULL) {
        free(norm);
        storage_oom(err);
        return NULL;
    }
    r->st = st;
    r->state = st->driver->read_open(st->state, norm, offset, length, err);
    free(norm);
    if (r->state == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

ssize_t storage_read_data(storage_read *r, void *buf, size_t len, pgbr_error *err)
{
    if (len == 0)
        return 0;
    return r->st->driver->read_data(r->state, buf, len, err);
}

void storage_read_close(storage_read *r)
{
    if (r == NULL)
        return;
    r->st->driver->read_close(r->state);
    free(r);
}

bool storage_list(storage *st, const char *prefix, storage_list_cb cb, void *arg, pgbr_error *err)
{
    char *norm;
    bool ok;

    if (!storage_path(st, prefix, true, &norm, err))
        return false;
    ok = st->driver->list(st->state, norm, cb, arg, err);
    free(norm);
    return ok && !pgbr_error_is_set(err);
}

bool storage_stat(storage *st, const char *path, storage_info *out, pgbr_error *err)
{
    char *norm;
    bool ok;

    memset(out, 0, sizeof *out);
    if (!storage_path(st, path, false, &norm, err))
        return false;
    ok = st->driver->stat(st->state, norm, out, err);
    free(norm);
    out->path = NULL;
    return ok;
}

bool storage_delete(storage *st, const char *path, pgbr_error *err)
{
    char *norm;
    bool ok;

    if (!storage_path(st, path, false, &norm, err))
        return false;
    ok = st->driver->remove(st->state, norm, err);
    free(norm);
    return ok;
}

bool storage_delete_prefix(storage *st, const char *prefix, pgbr_error *err)
{
    char *norm;
    bool ok;

    if (!storage_path(st, prefix, true, &norm, err))
        return false;
    if (norm[0] == '\0') {
        free(norm);
        pgbr_error_set(err, "22023", "refusing to delete the whole storage location \"%s\"", st->display);
        return false;
    }
    ok = st->driver->remove_prefix(st->state, norm, err);
    free(norm);
    return ok;
}

bool storage_put(storage *st, const char *path, const void *data, size_t len, pgbr_error *err)
{
    storage_write *w = storage_write_open(st, path, err);

    if (w == NULL)
        return false;
    if (!storage_write_data(w, data, len, err)) {
        storage_write_abort(w);
        return false;
    }
    return storage_write_commit(w, err);
}

bool storage_read_to_sink(storage_read *r, bool (*sink)(void *arg, const void *data, size_t len, pgbr_error *err),
                          void *sink_arg, pgbr_error *err)
{
    enum { PIECE = 256 * 1024 };
    char *buf = malloc(PIECE);
    bool ok = buf != NULL || storage_oom(err);

    while (ok) {
        ssize_t n = storage_read_data(r, buf, PIECE, err);

        if (n <= 0) {
            ok = n == 0;
            break;
        }
        ok = sink(sink_arg, buf, (size_t)n, err);
    }
    free(buf);
    return ok;
}

bool storage_get(storage *st, const char *path, size_t max_size, char **out, size_t *len,
                 pgbr_error *err)
{
    storage_read *r;
    size_t cap, used = 0;
    char *buf;

    *out = NULL;
    *len = 0;
    if (max_size > SIZE_MAX / 4)
        max_size = SIZE_MAX / 4;
    if ((r = storage_read_open(st, path, 0, -1, err)) == NULL)
        return false;
    cap = max_size < 4096 ? max_size + 1 : 4096;
    if ((buf = malloc(cap + 1)) == NULL) {
        storage_read_close(r);
        return storage_oom(err);
    }
    for (;;) {
        ssize_t n;

        if (used == cap) {
            size_t ncap = cap > (max_size + 1) / 2 ? max_size + 1 : cap * 2;
            char *nbuf;

            if (ncap <= cap)
                break; /* holds max_size + 1 bytes: too large */
            if ((nbuf = realloc(buf, ncap + 1)) == NULL) {
                free(buf);
                storage_read_close(r);
                return storage_oom(err);
            }
            buf = nbuf;
            cap = ncap;
        }
        n = storage_read_data(r, buf + used, cap - used, err);
        if (n < 0) {
            free(buf);
            storage_read_close(r);
            return false;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    storage_read_close(r);
    if (used > max_size) {
        char *name = storage_display_join(st->display, path[0] == '/' ? path + 1 : path);

        free(buf);
        pgbr_error_set(err, "54000", "file \"%s\" is larger than %zu bytes", name ? name : path, max_size);
        free(name);
        return false;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return true;
}
