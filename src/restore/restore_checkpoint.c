/*
 * restore_checkpoint.c - where a database or whole-server restore stands,
 * kept so that a paused, retried or adopted job continues instead of
 * starting over (docs/operations.md).
 *
 * The checkpoint is JSON:
 *   {"roles_done": true, "new_roles": ["r1"],
 *    "dbs": [{"phase": 1, "ntables": 4, "loaded": [0, 2]}]}
 * phase is a restore_phase; loaded lists the tables (indexes into the
 * database's entry of the backup restored) whose rows are all committed in
 * the staging database. A table is recorded only once its last file is
 * committed; one that was loading when the run stopped is emptied and
 * loaded again. The checkpoint is saved on pgbr's catalog connection with
 * a synchronous commit, which also makes durable the loaders' earlier
 * asynchronous commits (one WAL stream), so a table recorded loaded is
 * loaded even after the server crashes.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "restore_int.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void restore_checkpoint_free(restore_plan *p)
{
    for (size_t i = 0; p->loaded && i < p->n; i++) {
        free(p->loaded[i]);
        free(p->files_left[i]);
    }
    free(p->loaded);
    free(p->files_left);
    free(p->phase);
    p->loaded = NULL;
    p->files_left = NULL;
    p->phase = NULL;
}

static bool bad(pgbr_error *err)
{
    return pgbr_error_set(err, "XX000", "the checkpoint of the restore job does not match its backup");
}

bool restore_checkpoint_load(restore_plan *p, pgbr_error *err)
{
    p->phase = calloc(p->n ? p->n : 1, sizeof *p->phase);
    p->loaded = calloc(p->n ? p->n : 1, sizeof *p->loaded);
    p->files_left = calloc(p->n ? p->n : 1, sizeof *p->files_left);
    if (!p->phase || !p->loaded || !p->files_left)
        return pgbr_error_set(err, "53200", "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        size_t nt = p->dbs[i]->ntables;
        p->loaded[i] = calloc(nt ? nt : 1, sizeof **p->loaded);
        p->files_left[i] = calloc(nt ? nt : 1, sizeof **p->files_left);
        if (!p->loaded[i] || !p->files_left[i])
            return pgbr_error_set(err, "53200", "out of memory");
    }
    if (!p->req->checkpoint)
        return true;
    json_error_t jerr;
    json_t *o = json_loads(p->req->checkpoint, 0, &jerr);
    json_t *dbs = json_object_get(o, "dbs"), *roles = json_object_get(o, "new_roles");
    bool ok = json_is_object(o) && (!dbs || json_is_array(dbs));
    if (ok && !dbs) {
        /* a checkpoint of something else (an older run): start over */
        json_decref(o);
        return true;
    }
    ok = ok && json_array_size(dbs) == p->n;
    for (size_t i = 0; ok && i < p->n; i++) {
        json_t *d = json_array_get(dbs, i), *loaded = json_object_get(d, "loaded");
        json_int_t phase = json_integer_value(json_object_get(d, "phase"));
        ok = json_is_object(d) && phase >= RESTORE_PHASE_NONE && phase <= RESTORE_PHASE_FINISHED &&
             (json_int_t)p->dbs[i]->ntables == json_integer_value(json_object_get(d, "ntables")) &&
             json_is_array(loaded);
        p->phase[i] = ok ? (restore_phase)phase : RESTORE_PHASE_NONE;
        for (size_t k = 0; ok && k < json_array_size(loaded); k++) {
            json_int_t t = json_integer_value(json_array_get(loaded, k));
            ok = t >= 0 && (size_t)t < p->dbs[i]->ntables;
            if (ok)
                p->loaded[i][t] = true;
        }
        /* the staging database exists: a cancel drops it */
        if (ok && p->phase[i] >= RESTORE_PHASE_CREATED)
            p->created[i] = true;
    }
    p->roles_done = json_is_true(json_object_get(o, "roles_done"));
    for (size_t k = 0; ok && json_is_array(roles) && k < json_array_size(roles); k++) {
        const char *r = json_string_value(json_array_get(roles, k));
        char **grown = r ? realloc(p->new_roles, (p->nnew_roles + 1) * sizeof *grown) : NULL;
        ok = grown != NULL;
        if (ok) {
            p->new_roles = grown;
            ok = (p->new_roles[p->nnew_roles] = strdup(r)) != NULL;
            p->nnew_roles += ok;
        }
    }
    json_decref(o);
    if (!ok) {
        for (size_t i = 0; i < p->n; i++) {
            p->phase[i] = RESTORE_PHASE_NONE;
            p->created[i] = false;
        }
        return bad(err);
    }
    return true;
}

void restore_checkpoint_save(restore_plan *p, bool force)
{
    if (!p->req->save_checkpoint || !p->phase)
        return;
    int64_t now = now_ms();
    if (!force && now - p->last_checkpoint_ms < 1000)
        return;
    p->last_checkpoint_ms = now;
    json_t *o = json_object(), *dbs = json_array(), *roles = json_array();
    for (size_t i = 0; i < p->n; i++) {
        json_t *loaded = json_array();
        for (size_t k = 0; k < p->dbs[i]->ntables; k++)
            if (p->loaded[i][k])
                json_array_append_new(loaded, json_integer((json_int_t)k));
        json_array_append_new(dbs, json_pack("{s:i, s:I, s:o}", "phase", (int)p->phase[i], "ntables",
                                             (json_int_t)p->dbs[i]->ntables, "loaded", loaded));
    }
    for (size_t k = 0; k < p->nnew_roles; k++)
        json_array_append_new(roles, json_string(p->new_roles[k]));
    json_object_set_new(o, "roles_done", json_boolean(p->roles_done));
    json_object_set_new(o, "new_roles", roles);
    json_object_set_new(o, "dbs", dbs);
    char *text = json_dumps(o, JSON_COMPACT);
    if (text)
        p->req->save_checkpoint(p->progress_arg, text);
    free(text);
    json_decref(o);
}

void restore_checkpoint_file_done(void *arg, const restore_file *rf)
{
    restore_plan *p = arg;
    if (!p->files_left || rf->dbi >= p->n || rf->table_index >= p->dbs[rf->dbi]->ntables)
        return;
    size_t *left = &p->files_left[rf->dbi][rf->table_index];
    if (*left > 0 && --*left == 0) {
        p->loaded[rf->dbi][rf->table_index] = true;
        restore_checkpoint_save(p, false);
    }
}
