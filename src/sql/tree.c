/*
 * tree.c - walking the parse tree of include/pgbr/sql.h: deep copy (also
 * how sql_parse moves a tree out of its arena), free, and statement names.
 *
 * The copy allocates every string, list and node separately with malloc,
 * so the caller may replace any single pointer and sql_stmt_free still
 * frees exactly what is there.
 */
#include <stdlib.h>
#include <string.h>

#include "sql_int.h"

/* ---- Copy ------------------------------------------------------------- */

typedef struct copy_ctx {
    bool failed;
} copy_ctx;

static void *
cp_alloc(copy_ctx *c, size_t n, size_t size)
{
    void *p;

    if (n == 0)
        return NULL;
    p = calloc(n, size);
    if (p == NULL)
        c->failed = true;
    return p;
}

static char *
cp_str(copy_ctx *c, const char *s)
{
    char *p;

    if (s == NULL)
        return NULL;
    p = strdup(s);
    if (p == NULL)
        c->failed = true;
    return p;
}

static void
cp_string_into(copy_ctx *c, sql_string *dst, const sql_string *src)
{
    *dst = *src;
    dst->value = cp_str(c, src->value);
}

static sql_string *
cp_string(copy_ctx *c, const sql_string *src)
{
    sql_string *s;

    if (src == NULL)
        return NULL;
    s = cp_alloc(c, 1, sizeof *s);
    if (s != NULL)
        cp_string_into(c, s, src);
    return s;
}

static void
cp_list_into(copy_ctx *c, sql_string_list *dst, const sql_string_list *src)
{
    dst->n = 0;
    dst->items = cp_alloc(c, (size_t) src->n, sizeof *dst->items);
    if (dst->items == NULL)
        return;
    dst->n = src->n;
    for (int i = 0; i < src->n; i++)
        cp_string_into(c, &dst->items[i], &src->items[i]);
}

static sql_string_list *
cp_list(copy_ctx *c, const sql_string_list *src)
{
    sql_string_list *l;

    if (src == NULL)
        return NULL;
    l = cp_alloc(c, 1, sizeof *l);
    if (l != NULL)
        cp_list_into(c, l, src);
    return l;
}

static sql_raw *
cp_raw(copy_ctx *c, const sql_raw *src)
{
    sql_raw *r;

    if (src == NULL)
        return NULL;
    r = cp_alloc(c, 1, sizeof *r);
    if (r == NULL)
        return NULL;
    *r = *src;
    r->text = cp_str(c, src->text);
    return r;
}

static void
cp_targets(copy_ctx *c, sql_targets *dst, const sql_targets *src)
{
    dst->kind = src->kind;
    dst->n = 0;
    dst->databases = NULL;
    dst->tables = NULL;
    if (src->databases != NULL) {
        dst->databases = cp_alloc(c, (size_t) src->n, sizeof *dst->databases);
        if (dst->databases == NULL)
            return;
        dst->n = src->n;
        for (int i = 0; i < src->n; i++)
            dst->databases[i] = cp_str(c, src->databases[i]);
    } else if (src->tables != NULL) {
        dst->tables = cp_alloc(c, (size_t) src->n, sizeof *dst->tables);
        if (dst->tables == NULL)
            return;
        dst->n = src->n;
        for (int i = 0; i < src->n; i++) {
            dst->tables[i] = src->tables[i];
            for (int j = 0; j < 3; j++)
                dst->tables[i].parts[j] = cp_str(c, src->tables[i].parts[j]);
        }
    }
}

/* Copy every option of a table-described options struct. */
static void
cp_opts(copy_ctx *c, const sql_opt_table *t, void *dst, const void *src)
{
    memcpy(dst, src, t->size);
    for (int i = 0; i < t->n; i++) {
        const sql_opt_desc *d = &t->opts[i];
        void *f = SQL_OPT_FIELD(dst, d);

        switch (d->type) {
        case SQL_OPT_STRING:
            *(sql_string **) f = cp_string(c, *(sql_string **) f);
            break;
        case SQL_OPT_LIST:
            *(sql_string_list **) f = cp_list(c, *(sql_string_list **) f);
            break;
        case SQL_OPT_BOOL:
        case SQL_OPT_FLAG:
            ((sql_bool_opt *) f)->expr = cp_raw(c, ((sql_bool_opt *) f)->expr);
            break;
        }
    }
}

static void
cp_kv_into(copy_ctx *c, sql_kv_option *dst, const sql_kv_option *src)
{
    *dst = *src;
    dst->name = cp_str(c, src->name);
    dst->value = cp_string(c, src->value);
    dst->expr = cp_raw(c, src->expr);
}

static void
cp_kv_list(copy_ctx *c, sql_kv_list *dst, const sql_kv_list *src)
{
    dst->n = 0;
    dst->items = cp_alloc(c, (size_t) src->n, sizeof *dst->items);
    if (dst->items == NULL)
        return;
    dst->n = src->n;
    for (int i = 0; i < src->n; i++)
        cp_kv_into(c, &dst->items[i], &src->items[i]);
}

static void
cp_backup(copy_ctx *c, sql_backup *dst, const sql_backup *src)
{
    cp_targets(c, &dst->targets, &src->targets);
    dst->dest_kind = src->dest_kind;
    dst->subdir = cp_string(c, src->subdir);
    cp_list_into(c, &dst->dest, &src->dest);
    dst->incremental_from = cp_list(c, src->incremental_from);
    dst->as_of = cp_raw(c, src->as_of);
    cp_opts(c, &sql_backup_opt_table, &dst->options, &src->options);
}

static void
cp_restore(copy_ctx *c, sql_restore *dst, const sql_restore *src)
{
    *dst = *src;
    cp_targets(c, &dst->targets, &src->targets);
    dst->subdir = cp_string(c, src->subdir);
    dst->nlocalities = 0;
    dst->from = cp_alloc(c, (size_t) src->nlocalities, sizeof *dst->from);
    if (dst->from != NULL) {
        dst->nlocalities = src->nlocalities;
        for (int i = 0; i < src->nlocalities; i++)
            cp_list_into(c, &dst->from[i], &src->from[i]);
    }
    dst->as_of = cp_raw(c, src->as_of);
    cp_opts(c, &sql_restore_opt_table, &dst->options, &src->options);
}

static void
cp_alter_schedule(copy_ctx *c, sql_alter_backup_schedule *dst, const sql_alter_backup_schedule *src)
{
    dst->schedule_id = cp_raw(c, src->schedule_id);
    dst->ncmds = 0;
    dst->cmds = cp_alloc(c, (size_t) src->ncmds, sizeof *dst->cmds);
    if (dst->cmds == NULL)
        return;
    dst->ncmds = src->ncmds;
    for (int i = 0; i < src->ncmds; i++) {
        const sql_alter_schedule_cmd *s = &src->cmds[i];
        sql_alter_schedule_cmd *d = &dst->cmds[i];

        d->kind = s->kind;
        d->never = s->never;
        d->always = s->always;
        d->location = s->location;
        d->label = cp_string(c, s->label);
        cp_list_into(c, &d->into, &s->into);
        cp_opts(c, &sql_backup_opt_table, &d->with, &s->with);
        d->cron = cp_string(c, s->cron);
        cp_kv_into(c, &d->option, &s->option);
    }
}

sql_stmt *
sql_stmt_copy(const sql_stmt *src)
{
    copy_ctx c = { false };
    sql_stmt *s;

    if (src == NULL)
        return NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->kind = src->kind;
    s->nparams = src->nparams;
    switch (src->kind) {
    case SQL_BACKUP:
        cp_backup(&c, &s->u.backup, &src->u.backup);
        break;
    case SQL_RESTORE:
        cp_restore(&c, &s->u.restore, &src->u.restore);
        break;
    case SQL_SHOW_BACKUPS:
        cp_list_into(&c, &s->u.show_backups.in, &src->u.show_backups.in);
        break;
    case SQL_SHOW_BACKUP: {
        const sql_show_backup *f = &src->u.show_backup;
        sql_show_backup *t = &s->u.show_backup;

        t->what = f->what;
        t->from_latest = f->from_latest;
        t->subdir = cp_string(&c, f->subdir);
        cp_list_into(&c, &t->in, &f->in);
        cp_opts(&c, &sql_show_backup_opt_table, &t->options, &f->options);
        cp_kv_list(&c, &t->connection_options, &f->connection_options);
        break;
    }
    case SQL_SHOW_JOBS:
        s->u.show_jobs = src->u.show_jobs;
        s->u.show_jobs.expr = cp_raw(&c, src->u.show_jobs.expr);
        s->u.show_jobs.select = cp_raw(&c, src->u.show_jobs.select);
        break;
    case SQL_CONTROL_JOBS:
        s->u.control_jobs = src->u.control_jobs;
        s->u.control_jobs.expr = cp_raw(&c, src->u.control_jobs.expr);
        s->u.control_jobs.select = cp_raw(&c, src->u.control_jobs.select);
        s->u.control_jobs.job_type = cp_str(&c, src->u.control_jobs.job_type);
        s->u.control_jobs.reason = cp_string(&c, src->u.control_jobs.reason);
        break;
    case SQL_ALTER_BACKUP: {
        const sql_alter_backup *f = &src->u.alter_backup;
        sql_alter_backup *t = &s->u.alter_backup;

        t->latest = f->latest;
        t->subdir = cp_string(&c, f->subdir);
        cp_list_into(&c, &t->in, &f->in);
        t->cmds = cp_alloc(&c, (size_t) f->ncmds, sizeof *t->cmds);
        if (t->cmds != NULL) {
            t->ncmds = f->ncmds;
            for (int i = 0; i < f->ncmds; i++) {
                cp_list_into(&c, &t->cmds[i].new_kms, &f->cmds[i].new_kms);
                cp_list_into(&c, &t->cmds[i].old_kms, &f->cmds[i].old_kms);
            }
        }
        break;
    }
    case SQL_CREATE_SCHEDULE: {
        const sql_create_schedule *f = &src->u.create_schedule;
        sql_create_schedule *t = &s->u.create_schedule;

        *t = *f;
        t->label = cp_string(&c, f->label);
        cp_targets(&c, &t->targets, &f->targets);
        cp_list_into(&c, &t->into, &f->into);
        cp_opts(&c, &sql_backup_opt_table, &t->options, &f->options);
        t->recurring = cp_string(&c, f->recurring);
        t->full_backup = cp_string(&c, f->full_backup);
        cp_kv_list(&c, &t->schedule_options, &f->schedule_options);
        break;
    }
    case SQL_ALTER_BACKUP_SCHEDULE:
        cp_alter_schedule(&c, &s->u.alter_backup_schedule, &src->u.alter_backup_schedule);
        break;
    case SQL_SHOW_SCHEDULES:
        s->u.show_schedules.filter = src->u.show_schedules.filter;
        s->u.show_schedules.for_what = cp_str(&c, src->u.show_schedules.for_what);
        s->u.show_schedules.schedule_id = cp_raw(&c, src->u.show_schedules.schedule_id);
        break;
    case SQL_SHOW_CREATE_SCHEDULE:
        s->u.show_create_schedule.all = src->u.show_create_schedule.all;
        s->u.show_create_schedule.schedule_id = cp_raw(&c, src->u.show_create_schedule.schedule_id);
        break;
    case SQL_CONTROL_SCHEDULES:
        s->u.control_schedules.action = src->u.control_schedules.action;
        s->u.control_schedules.schedule_id = cp_raw(&c, src->u.control_schedules.schedule_id);
        s->u.control_schedules.select = cp_raw(&c, src->u.control_schedules.select);
        break;
    case SQL_CREATE_EXTERNAL_CONNECTION:
    case SQL_DROP_EXTERNAL_CONNECTION:
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION:
        s->u.external_connection.if_not_exists = src->u.external_connection.if_not_exists;
        s->u.external_connection.all = src->u.external_connection.all;
        s->u.external_connection.name = cp_string(&c, src->u.external_connection.name);
        s->u.external_connection.uri = cp_string(&c, src->u.external_connection.uri);
        break;
    }
    if (c.failed) {
        sql_stmt_free(s);
        return NULL;
    }
    return s;
}

/* ---- Free ------------------------------------------------------------- */

static void
free_string(sql_string *s)
{
    if (s == NULL)
        return;
    free(s->value);
    free(s);
}

static void
free_list_items(sql_string_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->items[i].value);
    free(l->items);
}

static void
free_list(sql_string_list *l)
{
    if (l == NULL)
        return;
    free_list_items(l);
    free(l);
}

static void
free_raw(sql_raw *r)
{
    if (r == NULL)
        return;
    free(r->text);
    free(r);
}

static void
free_targets(sql_targets *t)
{
    for (int i = 0; i < t->n; i++) {
        if (t->databases != NULL)
            free(t->databases[i]);
        if (t->tables != NULL)
            for (int j = 0; j < 3; j++)
                free(t->tables[i].parts[j]);
    }
    free(t->databases);
    free(t->tables);
}

static void
free_opts(const sql_opt_table *t, void *opts)
{
    for (int i = 0; i < t->n; i++) {
        const sql_opt_desc *d = &t->opts[i];
        void *f = SQL_OPT_FIELD(opts, d);

        switch (d->type) {
        case SQL_OPT_STRING:
            free_string(*(sql_string **) f);
            break;
        case SQL_OPT_LIST:
            free_list(*(sql_string_list **) f);
            break;
        case SQL_OPT_BOOL:
        case SQL_OPT_FLAG:
            free_raw(((sql_bool_opt *) f)->expr);
            break;
        }
    }
}

static void
free_kv(sql_kv_option *kv)
{
    free(kv->name);
    free_string(kv->value);
    free_raw(kv->expr);
}

static void
free_kv_list(sql_kv_list *l)
{
    for (int i = 0; i < l->n; i++)
        free_kv(&l->items[i]);
    free(l->items);
}

void
sql_stmt_free(sql_stmt *s)
{
    if (s == NULL)
        return;
    switch (s->kind) {
    case SQL_BACKUP:
        free_targets(&s->u.backup.targets);
        free_string(s->u.backup.subdir);
        free_list_items(&s->u.backup.dest);
        free_list(s->u.backup.incremental_from);
        free_raw(s->u.backup.as_of);
        free_opts(&sql_backup_opt_table, &s->u.backup.options);
        break;
    case SQL_RESTORE:
        free_targets(&s->u.restore.targets);
        free_string(s->u.restore.subdir);
        for (int i = 0; i < s->u.restore.nlocalities; i++)
            free_list_items(&s->u.restore.from[i]);
        free(s->u.restore.from);
        free_raw(s->u.restore.as_of);
        free_opts(&sql_restore_opt_table, &s->u.restore.options);
        break;
    case SQL_SHOW_BACKUPS:
        free_list_items(&s->u.show_backups.in);
        break;
    case SQL_SHOW_BACKUP:
        free_string(s->u.show_backup.subdir);
        free_list_items(&s->u.show_backup.in);
        free_opts(&sql_show_backup_opt_table, &s->u.show_backup.options);
        free_kv_list(&s->u.show_backup.connection_options);
        break;
    case SQL_SHOW_JOBS:
        free_raw(s->u.show_jobs.expr);
        free_raw(s->u.show_jobs.select);
        break;
    case SQL_CONTROL_JOBS:
        free_raw(s->u.control_jobs.expr);
        free_raw(s->u.control_jobs.select);
        free(s->u.control_jobs.job_type);
        free_string(s->u.control_jobs.reason);
        break;
    case SQL_ALTER_BACKUP:
        free_string(s->u.alter_backup.subdir);
        free_list_items(&s->u.alter_backup.in);
        for (int i = 0; i < s->u.alter_backup.ncmds; i++) {
            free_list_items(&s->u.alter_backup.cmds[i].new_kms);
            free_list_items(&s->u.alter_backup.cmds[i].old_kms);
        }
        free(s->u.alter_backup.cmds);
        break;
    case SQL_CREATE_SCHEDULE:
        free_string(s->u.create_schedule.label);
        free_targets(&s->u.create_schedule.targets);
        free_list_items(&s->u.create_schedule.into);
        free_opts(&sql_backup_opt_table, &s->u.create_schedule.options);
        free_string(s->u.create_schedule.recurring);
        free_string(s->u.create_schedule.full_backup);
        free_kv_list(&s->u.create_schedule.schedule_options);
        break;
    case SQL_ALTER_BACKUP_SCHEDULE:
        free_raw(s->u.alter_backup_schedule.schedule_id);
        for (int i = 0; i < s->u.alter_backup_schedule.ncmds; i++) {
            sql_alter_schedule_cmd *cmd = &s->u.alter_backup_schedule.cmds[i];

            free_string(cmd->label);
            free_list_items(&cmd->into);
            free_opts(&sql_backup_opt_table, &cmd->with);
            free_string(cmd->cron);
            free_kv(&cmd->option);
        }
        free(s->u.alter_backup_schedule.cmds);
        break;
    case SQL_SHOW_SCHEDULES:
        free(s->u.show_schedules.for_what);
        free_raw(s->u.show_schedules.schedule_id);
        break;
    case SQL_SHOW_CREATE_SCHEDULE:
        free_raw(s->u.show_create_schedule.schedule_id);
        break;
    case SQL_CONTROL_SCHEDULES:
        free_raw(s->u.control_schedules.schedule_id);
        free_raw(s->u.control_schedules.select);
        break;
    case SQL_CREATE_EXTERNAL_CONNECTION:
    case SQL_DROP_EXTERNAL_CONNECTION:
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION:
        free_string(s->u.external_connection.name);
        free_string(s->u.external_connection.uri);
        break;
    }
    free(s);
}

/* ---- Names ------------------------------------------------------------ */

const char *
sql_stmt_name(const sql_stmt *s)
{
    switch (s->kind) {
    case SQL_BACKUP:
        return "BACKUP";
    case SQL_RESTORE:
        return "RESTORE";
    case SQL_SHOW_BACKUPS:
        return "SHOW BACKUPS";
    case SQL_SHOW_BACKUP:
        return "SHOW BACKUP";
    case SQL_SHOW_JOBS:
        return "SHOW JOBS";
    case SQL_CONTROL_JOBS:
        switch (s->u.control_jobs.action) {
        case SQL_JOB_PAUSE:
            return "PAUSE JOBS";
        case SQL_JOB_RESUME:
            return "RESUME JOBS";
        case SQL_JOB_CANCEL:
            return "CANCEL JOBS";
        }
        break;
    case SQL_ALTER_BACKUP:
        return "ALTER BACKUP";
    case SQL_CREATE_SCHEDULE:
        return "CREATE SCHEDULE FOR BACKUP";
    case SQL_ALTER_BACKUP_SCHEDULE:
        return "ALTER BACKUP SCHEDULE";
    case SQL_SHOW_SCHEDULES:
        return "SHOW SCHEDULES";
    case SQL_SHOW_CREATE_SCHEDULE:
        return "SHOW CREATE SCHEDULE";
    case SQL_CONTROL_SCHEDULES:
        switch (s->u.control_schedules.action) {
        case SQL_SCHED_PAUSE:
            return "PAUSE SCHEDULES";
        case SQL_SCHED_RESUME:
            return "RESUME SCHEDULES";
        case SQL_SCHED_DROP:
            return "DROP SCHEDULES";
        }
        break;
    case SQL_CREATE_EXTERNAL_CONNECTION:
        return "CREATE EXTERNAL CONNECTION";
    case SQL_DROP_EXTERNAL_CONNECTION:
        return "DROP EXTERNAL CONNECTION";
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION:
        return "SHOW CREATE EXTERNAL CONNECTION";
    }
    return "UNKNOWN";
}
