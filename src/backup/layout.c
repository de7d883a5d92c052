/*
 * layout.c - where things live in a backup collection (include/pgbr/layout.h):
 * subdirectory names of full and incremental backups, the LATEST pointer,
 * the listing SHOW BACKUPS IN prints, and the per-directory job lock.
 *
 * Everything goes through storage.h, so it works the same on every driver.
 * Every file written here is new (LATEST-<hex>, BACKUP-LOCK-<id>): nothing is
 * rewritten, so object-locked buckets hold a collection.
 */
#include "pgbr/layout.h"
#include "pgbr/manifest.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LAYOUT_LATEST_MAX 4096 /* a LATEST file holds one subdir; more is garbage */

/* A broken-down UTC time with hundredths. */
typedef struct layout_time {
    int year, month, day, hour, minute, second, hundredths;
} layout_time;

static bool layout_oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), and back:
 * Howard Hinnant's algorithms, independent of TZ and of time_t's range. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, layout_time *t)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    t->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    t->month = (int)(mp < 10 ? mp + 3 : mp - 9);
    t->year = (int)(yoe + era * 400 + (t->month <= 2));
}

static bool layout_time_from_us(int64_t us, layout_time *t, pgbr_error *err)
{
    int64_t sec = floor_div(us, 1000000);
    int64_t sod = sec - floor_div(sec, 86400) * 86400;

    civil_from_days(floor_div(sec, 86400), t);
    t->hour = (int)(sod / 3600);
    t->minute = (int)(sod / 60 % 60);
    t->second = (int)(sod % 60);
    t->hundredths = (int)((us - sec * 1000000) / 10000); /* truncated, as Go's ".00" */
    if (t->year < 0 || t->year > 9999)
        return pgbr_error_set(err, "22023", "backup time is out of range (year %d)", t->year);
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : days[month - 1];
}

/* The value of n decimal digits at s, or -1 if one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool layout_full_subdir(int64_t end_time_us, char out[LAYOUT_SUBDIR_SIZE], pgbr_error *err)
{
    layout_time t;
    int n;

    if (!layout_time_from_us(end_time_us, &t, err))
        return false;
    n = snprintf(out, LAYOUT_SUBDIR_SIZE, "/%04d/%02d/%02d-%02d%02d%02d.%02d", t.year, t.month, t.day, t.hour,
                 t.minute, t.second, t.hundredths);
    if (n < 0 || n >= LAYOUT_SUBDIR_SIZE)
        return pgbr_error_set(err, "XX000", "backup subdirectory name does not fit");
    return true;
}

bool layout_is_latest(const char *given)
{
    return given != NULL && strcasecmp(given, "LATEST") == 0;
}

/* Parse "YYYY/MM/DD-HHMMSS.ss" (exactly 20 characters at s). */
static bool layout_parse_subdir(const char *s, size_t len, layout_time *t)
{
    if (len != 20 || s[4] != '/' || s[7] != '/' || s[10] != '-' || s[17] != '.')
        return false;
    t->year = digits(s, 4);
    t->month = digits(s + 5, 2);
    t->day = digits(s + 8, 2);
    t->hour = digits(s + 11, 2);
    t->minute = digits(s + 13, 2);
    t->second = digits(s + 15, 2);
    t->hundredths = digits(s + 18, 2);
    return t->year >= 0 && t->month >= 1 && t->month <= 12 && t->day >= 1 &&
           t->day <= days_in_month(t->year, t->month) && t->hour >= 0 && t->hour <= 23 &&
           t->minute >= 0 && t->minute <= 59 && t->second >= 0 && t->second <= 59 && t->hundredths >= 0;
}

/* Parse a user-given subdir into t; false (no error set) when it is not one. */
static bool layout_given_subdir(const char *given, layout_time *t)
{
    size_t len;

    if (given == NULL)
        return false;
    if (given[0] == '/')
        given++;
    len = strlen(given);
    if (len > 0 && given[len - 1] == '/')
        len--;
    return layout_parse_subdir(given, len, t);
}

bool layout_normalize_subdir(const char *given, char out[LAYOUT_SUBDIR_SIZE], pgbr_error *err)
{
    layout_time t;
    const char *s;

    if (!layout_given_subdir(given, &t)) {
        pgbr_error_set(err, "22023", "invalid backup subdirectory \"%s\"", given != NULL ? given : "");
        pgbr_error_hint(err, "A full backup's subdirectory has the form /YYYY/MM/DD-HHMMSS.ss, as SHOW "
                             "BACKUPS IN lists it, or is LATEST.");
        return false;
    }
    s = given[0] == '/' ? given + 1 : given;
    out[0] = '/';
    memcpy(out + 1, s, 20);
    out[21] = '\0';
    return true;
}

bool layout_subdir_time(const char *subdir, int64_t *time_us, pgbr_error *err)
{
    layout_time t;
    char canon[LAYOUT_SUBDIR_SIZE];
    int64_t days;

    if (!layout_normalize_subdir(subdir, canon, err) || !layout_given_subdir(canon, &t))
        return false;
    days = days_from_civil(t.year, t.month, t.day);
    *time_us = ((days * 86400 + t.hour * 3600 + t.minute * 60 + t.second) * 100 + t.hundredths) * 10000;
    return true;
}

bool layout_incremental_dir(const char *full_subdir, int64_t end_time_us, layout_incremental_kind kind,
                            char out[LAYOUT_PATH_SIZE], pgbr_error *err)
{
    char canon[LAYOUT_SUBDIR_SIZE];
    layout_time t;
    int n;

    if (!layout_normalize_subdir(full_subdir, canon, err) || !layout_time_from_us(end_time_us, &t, err))
        return false;
    n = snprintf(out, LAYOUT_PATH_SIZE, "%s%s/%04d%02d%02d/%02d%02d%02d.%02d",
                 kind == LAYOUT_INCREMENTALS ? LAYOUT_INCREMENTALS_DIR : "",
                 kind == LAYOUT_INCREMENTALS ? canon : canon + 1, t.year, t.month, t.day, t.hour, t.minute,
                 t.second, t.hundredths);
    if (n < 0 || n >= LAYOUT_PATH_SIZE)
        return pgbr_error_set(err, "XX000", "incremental backup path does not fit");
    return true;
}

/* ---- LATEST ---------------------------------------------------------------- */

bool layout_write_latest(storage *coll, const char *full_subdir, int64_t now_us, pgbr_error *err)
{
    char canon[LAYOUT_SUBDIR_SIZE];
    char name[sizeof LAYOUT_LATEST_DIR + 32];
    storage_info info;

    if (!layout_normalize_subdir(full_subdir, canon, err))
        return false;
    for (int attempt = 0;; attempt++) {
        uint64_t desc = UINT64_MAX - (uint64_t)(now_us + attempt);

        snprintf(name, sizeof name, LAYOUT_LATEST_DIR "/" LAYOUT_LATEST_FILE "-%016" PRIx64, desc);
        if (storage_put(coll, name, canon, strlen(canon), err))
            break;
        /* a name taken in the same microsecond: ours is newer, take the next one */
        if (strcmp(err->sqlstate, "58P02") != 0 || attempt >= 1000)
            return false;
        pgbr_error_clear(err);
    }
    /* the legacy pointer, for readers that know only it: never rewritten */
    if (!storage_stat(coll, LAYOUT_LATEST_FILE, &info, err))
        return false;
    if (!info.exists && !storage_put(coll, LAYOUT_LATEST_FILE, canon, strlen(canon), err)) {
        if (strcmp(err->sqlstate, "58P02") != 0)
            return false;
        pgbr_error_clear(err); /* another writer got there first: fine */
    }
    return true;
}

typedef struct latest_scan {
    char *path;
} latest_scan;

static bool latest_first(void *arg, const storage_info *info, pgbr_error *err)
{
    latest_scan *scan = arg;
    const char *base = info->path + strlen(LAYOUT_LATEST_DIR "/");

    if (strchr(base, '/') != NULL || strncmp(base, LAYOUT_LATEST_FILE "-", strlen(LAYOUT_LATEST_FILE "-")) != 0)
        return true; /* not ours: keep looking */
    if ((scan->path = strdup(info->path)) == NULL)
        return layout_oom(err);
    return false; /* the first in lexical order is the newest */
}

bool layout_read_latest(storage *coll, char out[LAYOUT_SUBDIR_SIZE], pgbr_error *err)
{
    latest_scan scan = { NULL };
    storage_info info;
    char *text = NULL;
    size_t len;
    bool ok;

    if (!storage_list(coll, LAYOUT_LATEST_DIR, latest_first, &scan, err)) {
        free(scan.path);
        return false;
    }
    if (scan.path == NULL) {
        if (!storage_stat(coll, LAYOUT_LATEST_FILE, &info, err))
            return false;
        if (!info.exists) {
            pgbr_error_set(err, "58P01", "path does not contain a completed latest backup");
            pgbr_error_detail(err, "No LATEST file was found in \"%s\".", storage_display_url(coll));
            return false;
        }
        if ((scan.path = strdup(LAYOUT_LATEST_FILE)) == NULL)
            return layout_oom(err);
    }
    if (!storage_get(coll, scan.path, LAYOUT_LATEST_MAX, &text, &len, err)) {
        pgbr_error cause = PGBR_ERROR_INIT;

        pgbr_error_move(&cause, err);
        pgbr_error_set(err, strcmp(cause.sqlstate, "54000") == 0 ? "XX001" : cause.sqlstate,
                       "malformed LATEST file");
        pgbr_error_detail(err, "%s", cause.message);
        pgbr_error_clear(&cause);
        free(scan.path);
        return false;
    }
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        text[--len] = '\0';
    ok = strlen(text) == len && layout_normalize_subdir(text, out, err);
    if (!ok) {
        pgbr_error_set(err, "XX001", "malformed LATEST file");
        pgbr_error_detail(err, "\"%s/%s\" does not hold a backup subdirectory.", storage_display_url(coll),
                          scan.path);
    }
    free(text);
    free(scan.path);
    return ok;
}

/* ---- listings ---------------------------------------------------------------- */

void layout_list_free(layout_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

/* Append a copy of s[0..len) with an optional prefix. */
static bool layout_list_add(layout_list *list, const char *prefix, const char *s, size_t len, pgbr_error *err)
{
    char **items = realloc(list->items, (list->n + 1) * sizeof *items);
    char *item = NULL;

    if (items == NULL)
        return layout_oom(err);
    list->items = items;
    if (asprintf(&item, "%s%.*s", prefix, (int)len, s) < 0)
        return layout_oom(err);
    list->items[list->n++] = item;
    return true;
}

static int layout_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool full_backup_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    layout_list *list = arg;
    const char *p = info->path;
    size_t len = strlen(p), mlen = strlen("/" LAYOUT_MANIFEST);
    layout_time t;

    /* <a>/<b>/<c>/BACKUP_MANIFEST, and <a>/<b>/<c> a backup subdir */
    if (len <= mlen || strcmp(p + len - mlen, "/" LAYOUT_MANIFEST) != 0 ||
        !layout_parse_subdir(p, len - mlen, &t))
        return true;
    return layout_list_add(list, "/", p, len - mlen, err);
}

bool layout_list_full_backups(storage *coll, layout_list *out, pgbr_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (!storage_list(coll, "", full_backup_cb, out, err)) {
        layout_list_free(out);
        return false;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, layout_cmp);
    return true;
}

typedef struct incremental_scan {
    layout_list *list;
    const char *base;   /* "incrementals/YYYY/MM/DD-HHMMSS.ss" or "YYYY/MM/DD-HHMMSS.ss" */
} incremental_scan;

static bool incremental_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    incremental_scan *scan = arg;
    size_t blen = strlen(scan->base);
    const char *rest = info->path + blen + 1; /* YYYYMMDD/HHMMSS.ss/BACKUP_MANIFEST */

    if (strlen(info->path) != blen + 1 + 18 + strlen("/" LAYOUT_MANIFEST) || info->path[blen] != '/' ||
        strcmp(rest + 18, "/" LAYOUT_MANIFEST) != 0)
        return true;
    if (digits(rest, 8) < 0 || rest[8] != '/' || digits(rest + 9, 6) < 0 || rest[15] != '.' ||
        digits(rest + 16, 2) < 0)
        return true;
    return layout_list_add(scan->list, "", info->path, blen + 1 + 18, err);
}

bool layout_list_incrementals(storage *st, const char *full_subdir, layout_incremental_kind kind,
                              layout_list *out, pgbr_error *err)
{
    char canon[LAYOUT_SUBDIR_SIZE];
    char base[LAYOUT_PATH_SIZE];
    incremental_scan scan = { out, base };

    out->items = NULL;
    out->n = 0;
    if (!layout_normalize_subdir(full_subdir, canon, err))
        return false;
    snprintf(base, sizeof base, "%s%s", kind == LAYOUT_INCREMENTALS ? LAYOUT_INCREMENTALS_DIR : "",
             kind == LAYOUT_INCREMENTALS ? canon : canon + 1);
    if (!storage_list(st, base, incremental_cb, &scan, err)) {
        layout_list_free(out);
        return false;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, layout_cmp);
    return true;
}

void layout_layers_free(layout_layers *layers)
{
    if (layers == NULL)
        return;
    for (size_t i = 0; i < layers->n; i++)
        free(layers->items[i].dir);
    free(layers->items);
    layers->items = NULL;
    layers->n = 0;
}

bool layout_same_location(const storage *coll, const storage *inc)
{
    return inc != NULL && (inc == coll || strcmp(storage_display_url(coll), storage_display_url(inc)) == 0);
}

/* A layer's name: the last 18 characters of its directory, "YYYYMMDD/HHMMSS.ss". */
static const char *layer_name(const char *dir)
{
    size_t len = strlen(dir);

    return len >= 18 ? dir + len - 18 : dir;
}

static int layer_cmp(const void *a, const void *b)
{
    const layout_layer *x = a, *y = b;
    int c = strcmp(layer_name(x->dir), layer_name(y->dir));

    /* the same name in two places: the first place wins (qsort is not stable) */
    return c != 0 ? c : (int)x->place - (int)y->place;
}

/* Append the layers of one place. */
static bool layers_add_place(layout_layers *out, storage *st, const char *full_subdir, layout_place place,
                             pgbr_error *err)
{
    layout_list list;

    if (!layout_list_incrementals(st, full_subdir,
                                  place == LAYOUT_PLACE_INCREMENTALS ? LAYOUT_INCREMENTALS : LAYOUT_INCREMENTAL_LOCATION,
                                  &list, err))
        return false;
    if (list.n > 0) {
        layout_layer *items = realloc(out->items, (out->n + list.n) * sizeof *items);

        if (items == NULL) {
            layout_list_free(&list);
            return layout_oom(err);
        }
        out->items = items;
        for (size_t i = 0; i < list.n; i++) {
            out->items[out->n++] = (layout_layer){ list.items[i], st, place };
            list.items[i] = NULL;
        }
    }
    layout_list_free(&list);
    return true;
}

bool layout_find_layers(storage *coll, storage *inc, const char *full_subdir, layout_layers *out,
                        pgbr_error *err)
{
    size_t n = 0;

    out->items = NULL;
    out->n = 0;
    if (!layers_add_place(out, coll, full_subdir, LAYOUT_PLACE_INCREMENTALS, err) ||
        !layers_add_place(out, coll, full_subdir, LAYOUT_PLACE_IN_FULL, err) ||
        (inc != NULL && !layout_same_location(coll, inc) && !layers_add_place(out, inc, full_subdir, LAYOUT_PLACE_LOCATION, err))) {
        layout_layers_free(out);
        return false;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, layer_cmp);
    for (size_t i = 0; i < out->n; i++) {
        if (n > 0 && strcmp(layer_name(out->items[n - 1].dir), layer_name(out->items[i].dir)) == 0) {
            free(out->items[i].dir);
            continue;
        }
        out->items[n++] = out->items[i];
    }
    out->n = n;
    return true;
}

static bool any_file_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    (void)info;
    (void)err;
    *(bool *)arg = true;
    return false;
}

bool layout_classify(storage *st, layout_kind *out, pgbr_error *err)
{
    storage_info info;
    layout_list fulls;
    bool any = false;

    *out = LAYOUT_KIND_NONE;
    if (!storage_stat(st, LAYOUT_MANIFEST, &info, err))
        return false;
    if (info.exists) {
        *out = LAYOUT_KIND_BACKUP;
        return true;
    }
    if (!storage_list(st, LAYOUT_LATEST_DIR, any_file_cb, &any, err) ||
        !storage_stat(st, LAYOUT_LATEST_FILE, &info, err))
        return false;
    if (any || info.exists) {
        *out = LAYOUT_KIND_COLLECTION;
        return true;
    }
    if (!layout_list_full_backups(st, &fulls, err))
        return false;
    if (fulls.n > 0)
        *out = LAYOUT_KIND_COLLECTION;
    layout_list_free(&fulls);
    return true;
}

/* ---- the lock ------------------------------------------------------------------ */

typedef struct lock_scan {
    size_t dir_len;      /* length of the normalised dir ("" = 0) */
    int64_t job_id;
    bool own;
    char *other;         /* the job id of another lock, malloc'd */
} lock_scan;

static bool lock_cb(void *arg, const storage_info *info, pgbr_error *err)
{
    lock_scan *scan = arg;
    const char *name = info->path + (scan->dir_len > 0 ? scan->dir_len + 1 : 0);
    const char *id = name + strlen(LAYOUT_LOCK_PREFIX);
    char own[32];

    if (strchr(name, '/') != NULL || strncmp(name, LAYOUT_LOCK_PREFIX, strlen(LAYOUT_LOCK_PREFIX)) != 0)
        return true;
    snprintf(own, sizeof own, "%" PRId64, scan->job_id);
    if (strcmp(id, own) == 0)
        scan->own = true;
    else if (scan->other == NULL && (scan->other = strdup(id)) == NULL)
        return layout_oom(err);
    return true;
}

/* Normalise a directory as storage does ("a/b"), into a malloc'd string. */
static char *layout_trim_dir(const char *dir)
{
    size_t len = strlen(dir), o = 0;
    char *out = malloc(len + 1);

    if (out == NULL)
        return NULL;
    for (const char *p = dir; *p != '\0';) {
        size_t n = strcspn(p, "/");

        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    out[o] = '\0';
    return out;
}

static bool lock_scan_dir(storage *st, const char *dir, lock_scan *scan, pgbr_error *err)
{
    scan->own = false;
    free(scan->other);
    scan->other = NULL;
    return storage_list(st, dir, lock_cb, scan, err);
}

bool layout_lock_backup_dir(storage *st, const char *dir, int64_t job_id, pgbr_error *err)
{
    char *norm = layout_trim_dir(dir != NULL ? dir : "");
    char *manifest = NULL, *lock = NULL, *uri = NULL, content[32];
    lock_scan scan = { 0, job_id, false, NULL };
    storage_info info;
    bool ok = false;

    if (norm == NULL || asprintf(&manifest, "%s/" LAYOUT_MANIFEST, norm) < 0) {
        manifest = NULL;
        layout_oom(err);
        goto done;
    }
    if (asprintf(&lock, "%s/" LAYOUT_LOCK_PREFIX "%" PRId64, norm, job_id) < 0) {
        lock = NULL;
        layout_oom(err);
        goto done;
    }
    if (asprintf(&uri, "%s%s%s", storage_display_url(st), norm[0] != '\0' ? "/" : "", norm) < 0) {
        uri = NULL;
        layout_oom(err);
        goto done;
    }
    scan.dir_len = strlen(norm);
    if (!storage_stat(st, manifest, &info, err))
        goto done;
    if (info.exists) {
        pgbr_error_set(err, "58P02", "%s already contains a " LAYOUT_MANIFEST " file", uri);
        goto done;
    }
    if (!lock_scan_dir(st, norm, &scan, err))
        goto done;
    if (scan.other == NULL && !scan.own) {
        snprintf(content, sizeof content, "%" PRId64 "\n", job_id);
        if (!storage_put(st, lock, content, strlen(content), err)) {
            if (strcmp(err->sqlstate, "58P02") != 0)
                goto done;
            pgbr_error_clear(err); /* our own lock, written meanwhile */
        }
        /* two jobs may both have seen no lock: look again after writing */
        if (!lock_scan_dir(st, norm, &scan, err))
            goto done;
        if (scan.other != NULL) {
            pgbr_error ignore = PGBR_ERROR_INIT;

            storage_delete(st, lock, &ignore);
            pgbr_error_clear(&ignore);
        }
    }
    if (scan.other != NULL) {
        pgbr_error_set(err, "42710", "%s already contains a `BACKUP-LOCK` file written by job %s", uri,
                       scan.other);
        goto done;
    }
    ok = true;
done:
    free(scan.other);
    free(uri);
    free(lock);
    free(manifest);
    free(norm);
    return ok;
}

bool layout_resolve_backup(storage *coll, const char *given, char out[LAYOUT_SUBDIR_SIZE],
                           pgbr_error *err)
{
    storage_info info;
    char path[LAYOUT_PATH_SIZE];
    if (given == NULL || layout_is_latest(given)) {
        if (!layout_read_latest(coll, out, err))
            return false;
    } else if (!layout_normalize_subdir(given, out, err)) {
        return false;
    }
    snprintf(path, sizeof path, "%s/%s", out + 1, LAYOUT_MANIFEST);
    if (!storage_stat(coll, path, &info, err))
        return false;
    if (!info.exists) {
        pgbr_error_set(err, "58P01", "backup \"%s\" not found in \"%s\"", out,
                       storage_display_url(coll));
        pgbr_error_hint(err, "SHOW BACKUPS IN '%s' lists the backups of the collection.",
                        storage_display_url(coll));
        return false;
    }
    return true;
}

/* A manifest is small; anything bigger than this is not one. */
#define MANIFEST_MAX_SIZE (512u * 1024 * 1024)

manifest *layout_read_manifest(storage *st, const char *dir, char **raw, size_t *raw_len,
                               pgbr_error *err)
{
    char *mpath = NULL, *spath = NULL, *text = NULL, *sum = NULL, *shown = NULL;
    size_t len = 0, sum_len = 0;
    manifest *m = NULL;
    while (*dir == '/')
        dir++;
    if (asprintf(&mpath, "%s/%s", dir, LAYOUT_MANIFEST) < 0 ||
        asprintf(&spath, "%s/%s", dir, MANIFEST_CHECKSUM_FILE_NAME) < 0 ||
        asprintf(&shown, "%s/%s", storage_display_url(st), mpath) < 0) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    if (!storage_get(st, mpath, MANIFEST_MAX_SIZE, &text, &len, err) ||
        !storage_get(st, spath, 4096, &sum, &sum_len, err) ||
        !manifest_checksum_verify(text, len, sum, sum_len, shown, err))
        goto done;
    m = manifest_decode(text, len, shown, err);
    if (m && raw) {
        *raw = text;
        text = NULL;
        if (raw_len)
            *raw_len = len;
    }
done:
    free(mpath);
    free(spath);
    free(shown);
    free(text);
    free(sum);
    return m;
}
