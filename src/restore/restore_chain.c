/*
 * restore_chain.c - restoring from a chain: a full backup plus the
 * incremental layers appended to it (docs/incremental.md).
 *
 * What a chain restore does, per database:
 *   - the schema is the last layer's (it is re-taken at every layer), so
 *     tables created, altered or dropped between backups come out as they
 *     were at the chain's end;
 *   - every table's rows come from the last layer that copied it whole (the
 *     full backup, or a layer that copied a table the stream does not carry:
 *     no replica identity, or created since), loaded by column name: a
 *     column dropped since is left out of the rows, a column added since
 *     gets its default;
 *   - then each later layer's change files are replayed in order (cdc_apply:
 *     by column name, atomically per transaction, with triggers and foreign
 *     keys off), only for the tables whose rows came from an earlier layer;
 *     a change's relid is the source table's oid, mapped to the table's name
 *     at the chain's end, so renames between backups do not lose changes;
 *   - sequences and materialized views are the last layer's.
 * AS OF SYSTEM TIME t picks the layers up to the first one ending at or
 * after t and replays that one's transactions committed at or before t
 * (docs/incremental.md says what that means for keyless tables).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/cdc.h"
#include "pgbr/cdc_apply.h"
#include "pgbr/datafile.h"
#include "pgbr/filter.h"
#include "pgbr/log.h"
#include "pgbr/pgclient.h"
#include "restore_int.h"

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

static void time_text(int64_t us, char out[MANIFEST_TIME_TEXT_SIZE])
{
    if (!manifest_time_format(us, out))
        snprintf(out, MANIFEST_TIME_TEXT_SIZE, "%" PRId64, us);
}

/* ---- choosing the layers ---- */

/* The reference's rules (section 9.2) for AS OF SYSTEM TIME t over the
 * chain's layers all[0..n): sets *use (layers restored) and *until. */
static bool choose_layers(manifest *const *all, size_t n, int64_t t, size_t *use, int64_t *until, pgbr_error *err)
{
    char a[MANIFEST_TIME_TEXT_SIZE], b[MANIFEST_TIME_TEXT_SIZE];
    *until = INT64_MAX;
    for (size_t k = 0; k < n; k++)
        if (all[k]->end_time == t) {
            *use = k + 1;
            return true;
        }
    if (t < all[0]->end_time) {
        if (all[0]->revision_history) {
            time_text(all[0]->end_time, a);
            return pgbr_error_set(err, "22023",
                                  "invalid RESTORE timestamp: BACKUP for requested time only has revision history from %s", a);
        }
        return pgbr_error_set(err, "22023", "invalid RESTORE timestamp: supplied backups do not cover requested time");
    }
    if (t > all[n - 1]->end_time)
        return pgbr_error_set(err, "22023", "invalid RESTORE timestamp: supplied backups do not cover requested time");
    size_t k = 1;
    while (all[k]->end_time < t)
        k++;
    /* all[k - 1]->end_time < t < all[k]->end_time */
    if (!all[k]->revision_history) {
        time_text(all[k - 1]->end_time, a);
        time_text(all[k]->end_time, b);
        return pgbr_error_set(err, "22023",
                              "invalid RESTORE timestamp: restoring to arbitrary time requires that BACKUP for requested "
                              "time be created with 'revision_history' option. nearest BACKUP times are %s or %s", a, b);
    }
    *use = k + 1;
    *until = t;
    return true;
}

/* The layers found (layout_find_layers) that continue the chain from its
 * full backup, each naming the one before it as "previous". *nvisible gets
 * how many do; a layer whose previous one is not among those found (it is
 * stored in a location not given) ends the chain there, and *gap says which
 * (NULL: none); one naming an earlier layer than the one before it is
 * corrupt (XX001). Manifests in all[1..], directories and storages in
 * dirs[] and sts[]. */
static bool read_layers(restore_plan *p, layout_layers *found, manifest **all, char **dirs, storage **sts,
                        size_t *nvisible, const char **gap, pgbr_error *err)
{
    *gap = NULL;
    *nvisible = 1;
    for (size_t k = 1; k <= found->n; k++) {
        layout_layer *l = &found->items[k - 1];
        manifest *m = layout_read_manifest(l->st, l->dir, NULL, NULL, err);
        if (!m)
            return false;
        if (m->backup_type != MANIFEST_BACKUP_INCREMENTAL || !m->previous) {
            manifest_free(m);
            return pgbr_error_set(err, "XX001", "backup chain \"%s\" is corrupted: layer \"%s/%s\" is not an "
                                  "incremental backup", p->subdir, storage_display_url(l->st), l->dir);
        }
        if (strcmp(m->previous, dirs[k - 1]) != 0) {
            for (size_t j = 0; j + 1 < k; j++)
                if (strcmp(m->previous, dirs[j]) == 0) {
                    pgbr_error_set(err, "XX001", "backup chain \"%s\" is corrupted: layer \"%s\" does not follow "
                                                 "\"%s\"", p->subdir, l->dir, dirs[k - 1]);
                    manifest_free(m);
                    return false;
                }
            /* the layer before it is elsewhere: the chain visible ends here */
            *gap = l->dir;
            manifest_free(m);
            return true;
        }
        all[k] = m;
        dirs[k] = l->dir;
        sts[k] = l->st;
        l->dir = NULL;
        (*nvisible)++;
    }
    return true;
}

bool restore_chain_open(restore_plan *p, pgbr_error *err)
{
    const restore_request *req = p->req;
    layout_layers found = { 0 };
    if (req->incremental_location &&
        !(p->inc_st = storage_open(req->incremental_location, req->storage, err)))
        return false;
    if (!layout_find_layers(p->st, p->inc_st, p->subdir, &found, err))
        return false;
    size_t n = 1 + found.n;
    manifest **all = calloc(n, sizeof *all);
    char **dirs = calloc(n, sizeof *dirs);
    storage **sts = calloc(n, sizeof *sts);
    const char *gap = NULL;
    char *gap_dir = NULL;
    if (!all || !dirs || !sts || !(dirs[0] = strdup(p->subdir + 1))) {
        oom(err);
        goto fail;
    }
    all[0] = p->m;
    sts[0] = p->st;
    if (!read_layers(p, &found, all, dirs, sts, &n, &gap, err))
        goto fail;
    if (gap && !(gap_dir = strdup(gap))) {
        oom(err);
        goto fail;
    }
    layout_layers_free(&found);
    size_t use = n;
    p->until_us = INT64_MAX;
    if (gap && (!req->as_of || req->as_of_us > all[n - 1]->end_time)) {
        /* restoring the chain's newest state, or a time after the last layer
         * seen, needs the layers after the gap */
        pgbr_error_set(err, "58P01", "backup chain \"%s\" is incomplete: the layer before \"%s\" is not in the "
                                     "locations given", p->subdir, gap_dir);
        pgbr_error_detail(err, "The chain's layers found end with \"%s\" in \"%s\".", dirs[n - 1],
                          storage_display_url(sts[n - 1]));
        pgbr_error_hint(err, "Give the incremental_location the chain's other layers were written to (WITH "
                             "incremental_location = '...').");
        goto fail;
    }
    free(gap_dir);
    gap_dir = NULL;
    if (req->as_of && !choose_layers(all, n, req->as_of_us, &use, &p->until_us, err))
        goto fail;
    /* the layers after the ones used are not needed */
    for (size_t k = use; k < n; k++) {
        manifest_free(all[k]);
        free(dirs[k]);
        all[k] = NULL;
        dirs[k] = NULL;
    }
    p->layers = all;
    p->layer_dirs = dirs;
    p->layer_st = sts;
    p->nlayers = use;
    p->top = all[use - 1];
    /* inside a layer, its whole-table copies are of its end: too late */
    p->ncopies = p->until_us == INT64_MAX ? use : use - 1;
    if (use > 1)
        log_info("restore job %" PRId64 ": chain %s: the full backup and %zu incremental layer(s)%s", req->job_id,
                 p->subdir, use - 1, p->until_us == INT64_MAX ? "" : ", the last one up to the time requested");
    return true;
fail:
    layout_layers_free(&found);
    free(gap_dir);
    for (size_t k = 1; all && k < n; k++)
        manifest_free(all[k]);
    for (size_t k = 0; dirs && k < n; k++)
        free(dirs[k]);
    free(all);
    free(dirs);
    free(sts);
    return false;
}

void restore_chain_free(restore_plan *p)
{
    for (size_t k = 1; k < p->nlayers; k++)
        manifest_free(p->layers[k]);
    for (size_t k = 0; p->layer_dirs && k < p->nlayers; k++)
        free(p->layer_dirs[k]);
    free(p->layers);
    free(p->layer_dirs);
    free(p->layer_st);
    p->layers = NULL;
    p->layer_dirs = NULL;
    p->layer_st = NULL;
    p->nlayers = 0;
    storage_close(p->inc_st);
    p->inc_st = NULL;
}

const manifest *restore_top(const restore_plan *p)
{
    return p->top ? p->top : p->m;
}

const char *restore_top_dir(const restore_plan *p)
{
    return p->nlayers > 0 ? p->layer_dirs[p->nlayers - 1] : p->subdir + 1;
}

storage *restore_top_storage(const restore_plan *p)
{
    return p->nlayers > 0 ? p->layer_st[p->nlayers - 1] : p->st;
}

static const manifest_database *layer_db(const manifest *m, const char *name)
{
    for (size_t i = 0; i < m->ndatabases; i++)
        if (strcmp(m->databases[i]->name, name) == 0)
            return m->databases[i];
    return NULL;
}

/* The layer whose whole copy of table oid a restore loads: the last one
 * (among the first p->ncopies) that holds files for it. -1: none. */
static int base_layer(const restore_plan *p, const char *dbname, uint32_t oid, const manifest_table **src)
{
    size_t n = p->nlayers ? p->ncopies : 1;
    for (size_t k = n; k-- > 0;) {
        const manifest *m = p->nlayers ? p->layers[k] : p->m;
        const manifest_database *db = layer_db(m, dbname);
        for (size_t t = 0; db && t < db->ntables; t++)
            if (db->tables[t]->oid == oid && db->tables[t]->nfiles > 0) {
                *src = db->tables[t];
                return (int)k;
            }
    }
    return -1;
}

bool restore_chain_source(const restore_plan *p, const char *dbname, const manifest_table *top,
                          const manifest_table **src, const char **prefix, storage **st)
{
    if (p->nlayers == 0 || top->oid == 0) {
        *src = top;
        *prefix = p->subdir + 1;
        *st = p->st;
        return top->nfiles > 0;
    }
    int k = base_layer(p, dbname, top->oid, src);
    if (k < 0)
        return false;
    *prefix = p->layer_dirs[k];
    *st = p->layer_st[k];
    return true;
}

/* ---- replaying the changes ---- */

/* One relid of the change stream, for one layer. */
typedef struct chain_rel {
    uint32_t relid;
    const manifest_table *top;  /* the table at the chain's end; NULL: not restored */
    bool keep;                  /* its changes in this layer are replayed */
} chain_rel;

typedef struct chain_apply {
    restore_plan *p;
    const manifest_database *db;    /* the tables restored (top entries) */
    size_t layer;
    cdc_apply *apply;
    chain_rel *rels;
    size_t nrels, caprels;
    char *line;                     /* rewritten lines */
    size_t linecap;
    const char *file;               /* for messages */
    restore_progress_fn progress;
    void *progress_arg;
    double progress_at;
} chain_apply;

static chain_rel *find_rel(chain_apply *ca, uint32_t relid)
{
    for (size_t i = 0; i < ca->nrels; i++)
        if (ca->rels[i].relid == relid)
            return &ca->rels[i];
    return NULL;
}

/* Decide once per relid and layer whether its changes are replayed. */
static chain_rel *describe_rel(chain_apply *ca, uint32_t relid, pgbr_error *err)
{
    chain_rel *r = find_rel(ca, relid);
    if (r)
        return r;
    if (ca->nrels == ca->caprels) {
        size_t cap = ca->caprels ? ca->caprels * 2 : 32;
        chain_rel *nr = realloc(ca->rels, cap * sizeof *nr);
        if (!nr) {
            oom(err);
            return NULL;
        }
        ca->rels = nr;
        ca->caprels = cap;
    }
    r = &ca->rels[ca->nrels++];
    r->relid = relid;
    r->top = NULL;
    r->keep = false;
    for (size_t t = 0; t < ca->db->ntables && !r->top; t++)
        if (ca->db->tables[t]->oid == relid && ca->db->tables[t]->kind == MANIFEST_REL_TABLE)
            r->top = ca->db->tables[t];
    if (r->top) {
        const manifest_table *src;
        int base = base_layer(ca->p, ca->db->name, relid, &src);
        /* rows copied whole at or after this layer already hold its
         * changes; the full backup's own changes (a resumed backup's
         * catch-up) belong to the tables whose rows it holds */
        r->keep = base >= 0 && ((size_t)base < ca->layer || (ca->layer == 0 && base == 0));
    }
    return r;
}

static bool room(chain_apply *ca, size_t n, pgbr_error *err)
{
    if (n <= ca->linecap)
        return true;
    size_t cap = ca->linecap ? ca->linecap : 256;
    while (cap < n)
        cap *= 2;
    char *nl = realloc(ca->line, cap);
    if (!nl)
        return oom(err);
    ca->line = nl;
    ca->linecap = cap;
    return true;
}

static bool malformed(chain_apply *ca, pgbr_error *err)
{
    return pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: a change line is malformed", ca->file);
}

/* One change line: replayed (R lines with the table's name at the chain's
 * end), dropped (a table not restored, or whose rows already hold it), or
 * for T narrowed to the tables replayed. */
static bool chain_line(chain_apply *ca, const char *line, size_t len, pgbr_error *err)
{
    char kind = len > 0 ? line[0] : '\0';
    if (kind == 'B' || kind == 'C')
        return cdc_apply_line(ca->apply, line, len, err);
    if (len < 3 || line[1] != '\t')
        return malformed(ca, err);
    char *end;
    uint32_t relid = (uint32_t)strtoul(line + 2, &end, 10);
    if (kind == 'I' || kind == 'U' || kind == 'D') {
        chain_rel *r = find_rel(ca, relid);
        if (!r)
            return malformed(ca, err);
        return !r->keep || cdc_apply_line(ca->apply, line, len, err);
    }
    if (kind == 'R') {
        chain_rel *r = describe_rel(ca, relid, err);
        if (!r)
            return false;
        if (!r->keep)
            return true;
        /* R relid schema table rest... -> R relid <top schema> <top table> rest... */
        const char *p = memchr(line + 2, '\t', len - 2);
        const char *q = p ? memchr(p + 1, '\t', len - (size_t)(p + 1 - line)) : NULL;
        const char *rest = q ? memchr(q + 1, '\t', len - (size_t)(q + 1 - line)) : NULL;
        if (!rest)
            return malformed(ca, err);
        size_t head = (size_t)(p - line) + 1, tail = len - (size_t)(rest - line);
        if (!room(ca, head + 2 * (strlen(r->top->schema) + strlen(r->top->name)) + 1 + tail, err))
            return false;
        memcpy(ca->line, line, head);
        size_t n = head + cdc_escape(ca->line + head, r->top->schema, strlen(r->top->schema));
        ca->line[n++] = '\t';
        n += cdc_escape(ca->line + n, r->top->name, strlen(r->top->name));
        memcpy(ca->line + n, rest, tail);
        return cdc_apply_line(ca->apply, ca->line, n + tail, err);
    }
    if (kind == 'T') {
        /* T <options> <n> <relid>... -> the same with the relids replayed
         * (none: the line is dropped) */
        uint32_t options = relid;
        char *q;
        unsigned long nrel = *end == '\t' ? strtoul(end + 1, &q, 10) : 0;
        if (nrel == 0 || !room(ca, len + 64, err))
            return nrel == 0 ? malformed(ca, err) : false;
        /* the kept relids first, after room for the head */
        size_t at = 64, kept = 0;
        const char *s = q;
        for (unsigned long i = 0; i < nrel; i++) {
            if (*s != '\t')
                return malformed(ca, err);
            uint32_t id = (uint32_t)strtoul(s + 1, &end, 10);
            chain_rel *r = find_rel(ca, id);
            if (!r)
                return malformed(ca, err);
            if (r->keep) {
                size_t w = (size_t)(end - s);       /* "\t<id>" as written */
                memcpy(ca->line + at, s, w);
                at += w;
                kept++;
            }
            s = end;
        }
        if (kept == 0)
            return true;
        char head[64];
        int hn = snprintf(head, sizeof head, "T\t%" PRIu32 "\t%zu", options, kept);
        memmove(ca->line + hn, ca->line + 64, at - 64);
        memcpy(ca->line, head, (size_t)hn);
        return cdc_apply_line(ca->apply, ca->line, (size_t)hn + at - 64, err);
    }
    return malformed(ca, err);
}

static bool on_change_frame(void *arg, uint64_t index, const void *data, size_t len, uint64_t nrows,
                            pgbr_error *err)
{
    chain_apply *ca = arg;
    (void)index;
    (void)nrows;
    if (ca->progress && !ca->progress(ca->progress_arg, ca->progress_at, "replaying changes"))
        return pgbr_error_set(err, "57014", "restore canceled");
    const char *s = data, *e = s + len;
    while (s < e) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (!nl)
            return malformed(ca, err);
        if (!chain_line(ca, s, (size_t)(nl - s), err))
            return false;
        if (cdc_apply_reached_until(ca->apply))
            return true;
        s = nl + 1;
    }
    return true;
}

static bool replay_file(chain_apply *ca, storage *st, const char *dir, const manifest_file *f, pgbr_error *err)
{
    char *path = NULL, *shown = NULL;
    storage_read *rd = NULL;
    filter_chain *chain = NULL;
    filter *sha = NULL;
    datafile_reader *reader = NULL;
    bool ok = false;
    if (asprintf(&path, "%s/%s", dir, f->path) < 0 || asprintf(&shown, "%s/%s", storage_display_url(st), path) < 0) {
        oom(err);
        goto done;
    }
    ca->file = shown;
    reader = datafile_reader_new(shown, on_change_frame, ca, err);
    chain = reader ? filter_chain_new(datafile_reader_sink, reader, err) : NULL;
    sha = chain ? filter_sha256_new(err) : NULL;
    if (!sha || !filter_sha256_expect(sha, f->sha256, shown, err)) {
        filter_free(sha);
        goto done;
    }
    if (!filter_chain_add(chain, sha, "sha256", err))
        goto done;
    rd = storage_read_open(st, path, f->offset, (int64_t)f->stored_bytes, err);
    datafile_totals tot;
    ok = rd && storage_read_to_sink(rd, filter_chain_sink, chain, err) && filter_chain_finish(chain, err) &&
         datafile_reader_finish(reader, &tot, err);
    if (ok && (tot.rows != f->rows || tot.raw_bytes != f->raw_bytes)) {
        pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: it does not match the manifest", shown);
        ok = false;
    }
done:
    ca->file = NULL;
    storage_read_close(rd);
    filter_chain_free(chain);
    datafile_reader_free(reader);
    free(path);
    free(shown);
    return ok;
}

bool restore_chain_replays(const restore_plan *p)
{
    if (p->nlayers > 1)
        return true;
    const manifest *m = p->nlayers ? p->layers[0] : p->m;
    for (size_t i = 0; m && i < m->ndatabases; i++)
        if (m->databases[i]->nchanges > 0)
            return true;
    return false;
}

bool restore_chain_apply(restore_plan *p, const manifest_database *db, PGconn *conn, restore_progress_fn progress,
                         void *arg, double at, restore_result *out, pgbr_error *err)
{
    bool ok = true;
    /* layer 0 is the full backup: a resumed one holds the changes that
     * bring the tables it read before its pause to its end point */
    for (size_t k = 0; ok && k < p->nlayers; k++) {
        const manifest_database *ldb = layer_db(p->layers[k], db->name);
        if (!ldb || ldb->nchanges == 0)
            continue;
        chain_apply ca = { .p = p, .db = db, .layer = k, .progress = progress, .progress_arg = arg,
                           .progress_at = at };
        cdc_apply_options opt = { .until_time_us = k > 0 && k + 1 == p->nlayers ? p->until_us : INT64_MAX };
        ca.apply = cdc_apply_new(conn, &opt, err);
        ok = ca.apply != NULL;
        for (size_t f = 0; ok && f < ldb->nchanges && !cdc_apply_reached_until(ca.apply); f++)
            ok = replay_file(&ca, p->layer_st[k], p->layer_dirs[k], ldb->changes[f], err);
        cdc_apply_stats st;
        ok = ok && cdc_apply_finish(ca.apply, &st, err);
        if (ok) {
            log_info("restore job %" PRId64 ": database \"%s\": layer %s: %" PRIu64 " transactions replayed (%" PRIu64
                     " inserts, %" PRIu64 " updates, %" PRIu64 " deletes, %" PRIu64 " truncates)",
                     p->req->job_id, db->name, p->layer_dirs[k], st.transactions, st.inserts, st.updates,
                     st.deletes, st.truncates);
            if (out)
                out->rows += st.inserts + st.updates + st.deletes;
        }
        cdc_apply_free(ca.apply);
        free(ca.rels);
        free(ca.line);
    }
    return ok;
}
