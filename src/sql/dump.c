/*
 * dump.c - sql_stmt_dump(): an exhaustive, stable s-expression of a parse
 * tree for unit tests and debugging. Every field that is not at its
 * default appears; strings are quoted SQL literals or $n, string lists are
 * ('a' 'b'), captured expressions are (raw <text>) or (raw:string '..'),
 * (raw:param $n), (raw:int n) when sql_raw says so.
 */
#include <stdlib.h>

#include "sql_int.h"

static void
dump_string(sql_buf *b, const sql_string *s)
{
    if (s->value == NULL)
        sql_buf_printf(b, "$%d", s->param);
    else
        sql_buf_quote_literal(b, s->value);
}

static void
dump_list(sql_buf *b, const sql_string_list *l)
{
    sql_buf_append(b, "(");
    for (int i = 0; i < l->n; i++) {
        if (i > 0)
            sql_buf_append(b, " ");
        dump_string(b, &l->items[i]);
    }
    sql_buf_append(b, ")");
}

static void
dump_raw(sql_buf *b, const sql_raw *r)
{
    if (r->param > 0)
        sql_buf_printf(b, "(raw:param $%d)", r->param);
    else if (r->is_string) {
        sql_buf_append(b, "(raw:string ");
        sql_buf_quote_literal(b, r->text);
        sql_buf_append(b, ")");
    } else if (r->is_integer)
        sql_buf_printf(b, "(raw:int %s)", r->text);
    else
        sql_buf_printf(b, "(raw %s)", r->text);
}

static void
dump_field_string(sql_buf *b, const char *name, const sql_string *s)
{
    if (s == NULL)
        return;
    sql_buf_printf(b, " %s=", name);
    dump_string(b, s);
}

static void
dump_field_raw(sql_buf *b, const char *name, const sql_raw *r)
{
    if (r == NULL)
        return;
    sql_buf_printf(b, " %s=", name);
    dump_raw(b, r);
}

static void
dump_targets(sql_buf *b, const sql_targets *t)
{
    switch (t->kind) {
    case SQL_TARGET_CLUSTER:
        sql_buf_append(b, " targets=(CLUSTER)");
        return;
    case SQL_TARGET_SYSTEM_USERS:
        sql_buf_append(b, " targets=(SYSTEM USERS)");
        return;
    case SQL_TARGET_DATABASES:
        sql_buf_append(b, " targets=(DATABASES");
        for (int i = 0; i < t->n; i++) {
            sql_buf_append(b, " ");
            sql_buf_quote_ident(b, t->databases[i]);
        }
        sql_buf_append(b, ")");
        return;
    case SQL_TARGET_TABLES:
        sql_buf_append(b, " targets=(TABLES");
        for (int i = 0; i < t->n; i++) {
            const sql_table_pattern *p = &t->tables[i];

            sql_buf_append(b, " ");
            for (int j = 0; j < p->nparts; j++) {
                if (j > 0)
                    sql_buf_append(b, ".");
                sql_buf_quote_ident(b, p->parts[j]);
            }
            if (p->star)
                sql_buf_append(b, p->nparts > 0 ? ".*" : "*");
        }
        sql_buf_append(b, ")");
        return;
    }
}

static void
dump_opts(sql_buf *b, const char *field, const sql_opt_table *t, const void *opts)
{
    bool any = false;

    for (int i = 0; i < t->n; i++) {
        const sql_opt_desc *d = &t->opts[i];
        const void *f = SQL_OPT_CFIELD(opts, d);
        const sql_bool_opt *bo = f;

        switch (d->type) {
        case SQL_OPT_STRING:
        case SQL_OPT_LIST:
            if (*(void *const *) f == NULL)
                continue;
            break;
        case SQL_OPT_BOOL:
        case SQL_OPT_FLAG:
            if (!bo->set)
                continue;
            break;
        }
        sql_buf_printf(b, any ? " " : " %s=(", field);
        any = true;
        sql_buf_append(b, d->name);
        switch (d->type) {
        case SQL_OPT_STRING:
            sql_buf_append(b, "=");
            dump_string(b, *(sql_string *const *) f);
            break;
        case SQL_OPT_LIST:
            sql_buf_append(b, "=");
            dump_list(b, *(sql_string_list *const *) f);
            break;
        case SQL_OPT_BOOL:
        case SQL_OPT_FLAG:
            if (bo->expr != NULL) {
                sql_buf_append(b, "=");
                dump_raw(b, bo->expr);
            } else if (!bo->value)
                sql_buf_append(b, "=false");
            break;
        }
    }
    if (any)
        sql_buf_append(b, ")");
}

static void
dump_kv(sql_buf *b, const sql_kv_option *kv)
{
    sql_buf_quote_ident(b, kv->name);
    if (kv->value != NULL) {
        sql_buf_append(b, "=");
        dump_string(b, kv->value);
    } else if (kv->expr != NULL) {
        sql_buf_append(b, "=");
        dump_raw(b, kv->expr);
    }
}

static void
dump_kv_list(sql_buf *b, const char *field, const sql_kv_list *l)
{
    if (l->n == 0)
        return;
    sql_buf_printf(b, " %s=(", field);
    for (int i = 0; i < l->n; i++) {
        if (i > 0)
            sql_buf_append(b, " ");
        dump_kv(b, &l->items[i]);
    }
    sql_buf_append(b, ")");
}

static const char *
jobs_form_name(sql_jobs_form form)
{
    static const char *const names[] = { "ALL", "ONE", "SELECT", "FOR_SCHEDULE", "FOR_SCHEDULES",
                                         "ALL_OF_TYPE" };

    return (unsigned) form < sizeof names / sizeof names[0] ? names[form] : "?";
}

static void
dump_backup_ref(sql_buf *b, bool latest, const sql_string *subdir, const sql_string_list *in)
{
    if (latest) {
        sql_buf_append(b, " latest_in=");
        dump_list(b, in);
    } else if (in->n > 0) {
        dump_field_string(b, "subdir", subdir);
        sql_buf_append(b, " in=");
        dump_list(b, in);
    } else {
        dump_field_string(b, "path", subdir);
    }
}

static void
dump_backup(sql_buf *b, const sql_backup *s)
{
    sql_buf_append(b, "(BACKUP");
    dump_targets(b, &s->targets);
    switch (s->dest_kind) {
    case SQL_BACKUP_INTO:
        sql_buf_append(b, " into=");
        break;
    case SQL_BACKUP_INTO_LATEST:
        sql_buf_append(b, " into_latest_in=");
        break;
    case SQL_BACKUP_INTO_SUBDIR:
        dump_field_string(b, "into_subdir", s->subdir);
        sql_buf_append(b, " in=");
        break;
    case SQL_BACKUP_TO:
        sql_buf_append(b, " to=");
        break;
    }
    dump_list(b, &s->dest);
    dump_field_raw(b, "as_of", s->as_of);
    if (s->incremental_from != NULL) {
        sql_buf_append(b, " incremental_from=");
        dump_list(b, s->incremental_from);
    }
    dump_opts(b, "options", &sql_backup_opt_table, &s->options);
}

static void
dump_restore(sql_buf *b, const sql_restore *s)
{
    sql_buf_append(b, "(RESTORE");
    dump_targets(b, &s->targets);
    if (s->from_latest)
        sql_buf_append(b, " latest_in=(");
    else if (s->subdir != NULL) {
        dump_field_string(b, "subdir", s->subdir);
        sql_buf_append(b, " in=(");
    } else
        sql_buf_append(b, " from=(");
    for (int i = 0; i < s->nlocalities; i++) {
        if (i > 0)
            sql_buf_append(b, " ");
        dump_list(b, &s->from[i]);
    }
    sql_buf_append(b, ")");
    dump_field_raw(b, "as_of", s->as_of);
    dump_opts(b, "options", &sql_restore_opt_table, &s->options);
}

static void
dump_show_backup(sql_buf *b, const sql_show_backup *s)
{
    static const char *const what[] = { "", "SCHEMAS", "FILES", "RANGES", "VALIDATE", "CONNECTION" };

    if (s->what == SQL_SHOW_BACKUP_CONNECTION) {
        sql_buf_append(b, "(SHOW BACKUP CONNECTION");
        dump_field_string(b, "uri", s->subdir);
        dump_kv_list(b, "options", &s->connection_options);
        return;
    }
    sql_buf_append(b, "(SHOW BACKUP");
    if (s->what != SQL_SHOW_BACKUP_DEFAULT)
        sql_buf_printf(b, " what=%s", what[s->what]);
    dump_backup_ref(b, s->from_latest, s->subdir, &s->in);
    dump_opts(b, "options", &sql_show_backup_opt_table, &s->options);
}

static void
dump_alter_schedule(sql_buf *b, const sql_alter_backup_schedule *s)
{
    sql_buf_append(b, "(ALTER BACKUP SCHEDULE");
    dump_field_raw(b, "id", s->schedule_id);
    sql_buf_append(b, " cmds=(");
    for (int i = 0; i < s->ncmds; i++) {
        const sql_alter_schedule_cmd *c = &s->cmds[i];

        sql_buf_append(b, i > 0 ? " (" : "(");
        switch (c->kind) {
        case SQL_ALTER_SCHED_SET_LABEL:
            sql_buf_append(b, "set_label ");
            dump_string(b, c->label);
            break;
        case SQL_ALTER_SCHED_SET_INTO:
            sql_buf_append(b, "set_into ");
            dump_list(b, &c->into);
            break;
        case SQL_ALTER_SCHED_SET_WITH:
            sql_buf_append(b, "set_with");
            dump_opts(b, "option", &sql_backup_opt_table, &c->with);
            break;
        case SQL_ALTER_SCHED_SET_RECURRING:
            sql_buf_append(b, "set_recurring ");
            if (c->never)
                sql_buf_append(b, "NEVER");
            else
                dump_string(b, c->cron);
            break;
        case SQL_ALTER_SCHED_SET_FULL_BACKUP:
            sql_buf_append(b, "set_full_backup ");
            if (c->always)
                sql_buf_append(b, "ALWAYS");
            else
                dump_string(b, c->cron);
            break;
        case SQL_ALTER_SCHED_SET_SCHEDULE_OPTION:
            sql_buf_append(b, "set_schedule_option ");
            dump_kv(b, &c->option);
            break;
        case SQL_ALTER_SCHED_EXECUTE_IMMEDIATELY:
            sql_buf_append(b, "execute_immediately");
            break;
        case SQL_ALTER_SCHED_EXECUTE_FULL_IMMEDIATELY:
            sql_buf_append(b, "execute_full_immediately");
            break;
        }
        sql_buf_append(b, ")");
    }
    sql_buf_append(b, ")");
}

static void
dump_create_schedule(sql_buf *b, const sql_create_schedule *s)
{
    sql_buf_append(b, "(CREATE SCHEDULE FOR BACKUP");
    if (s->if_not_exists)
        sql_buf_append(b, " if_not_exists");
    dump_field_string(b, "label", s->label);
    dump_targets(b, &s->targets);
    sql_buf_append(b, " into=");
    dump_list(b, &s->into);
    dump_opts(b, "options", &sql_backup_opt_table, &s->options);
    if (s->recurring_never)
        sql_buf_append(b, " recurring=NEVER");
    else
        dump_field_string(b, "recurring", s->recurring);
    if (s->full_backup_always)
        sql_buf_append(b, " full_backup=ALWAYS");
    else if (s->full_backup_set)
        dump_field_string(b, "full_backup", s->full_backup);
    dump_kv_list(b, "schedule_options", &s->schedule_options);
}

char *
sql_stmt_dump(const sql_stmt *s)
{
    static const char *const job_actions[] = { "?", "PAUSE", "RESUME", "CANCEL" };
    static const char *const sched_actions[] = { "?", "PAUSE", "RESUME", "DROP" };
    sql_buf b;

    sql_buf_init(&b);
    switch (s->kind) {
    case SQL_BACKUP:
        dump_backup(&b, &s->u.backup);
        break;
    case SQL_RESTORE:
        dump_restore(&b, &s->u.restore);
        break;
    case SQL_SHOW_BACKUPS:
        sql_buf_append(&b, "(SHOW BACKUPS in=");
        dump_list(&b, &s->u.show_backups.in);
        break;
    case SQL_SHOW_BACKUP:
        dump_show_backup(&b, &s->u.show_backup);
        break;
    case SQL_SHOW_JOBS: {
        const sql_show_jobs *j = &s->u.show_jobs;

        sql_buf_printf(&b, "(SHOW JOBS form=%s%s%s%s%s", jobs_form_name(j->form),
                       j->automatic ? " automatic" : "", j->changefeed ? " changefeed" : "",
                       j->when_complete ? " when_complete" : "",
                       j->execution_details ? " execution_details" : "");
        dump_field_raw(&b, "expr", j->expr);
        dump_field_raw(&b, "select", j->select);
        break;
    }
    case SQL_CONTROL_JOBS: {
        const sql_control_jobs *j = &s->u.control_jobs;

        sql_buf_printf(&b, "(%s JOBS form=%s", job_actions[j->action % 4], jobs_form_name(j->form));
        dump_field_raw(&b, "expr", j->expr);
        dump_field_raw(&b, "select", j->select);
        if (j->job_type != NULL)
            sql_buf_printf(&b, " type=%s", j->job_type);
        dump_field_string(&b, "reason", j->reason);
        break;
    }
    case SQL_ALTER_BACKUP: {
        const sql_alter_backup *a = &s->u.alter_backup;

        sql_buf_append(&b, "(ALTER BACKUP");
        dump_backup_ref(&b, a->latest, a->subdir, &a->in);
        sql_buf_append(&b, " cmds=(");
        for (int i = 0; i < a->ncmds; i++) {
            sql_buf_append(&b, i > 0 ? " (new_kms=" : "(new_kms=");
            dump_list(&b, &a->cmds[i].new_kms);
            sql_buf_append(&b, " old_kms=");
            dump_list(&b, &a->cmds[i].old_kms);
            sql_buf_append(&b, ")");
        }
        sql_buf_append(&b, ")");
        break;
    }
    case SQL_CREATE_SCHEDULE:
        dump_create_schedule(&b, &s->u.create_schedule);
        break;
    case SQL_ALTER_BACKUP_SCHEDULE:
        dump_alter_schedule(&b, &s->u.alter_backup_schedule);
        break;
    case SQL_SHOW_SCHEDULES: {
        const sql_show_schedules *sh = &s->u.show_schedules;

        if (sh->schedule_id != NULL) {
            sql_buf_append(&b, "(SHOW SCHEDULE");
            dump_field_raw(&b, "id", sh->schedule_id);
            break;
        }
        sql_buf_append(&b, "(SHOW SCHEDULES");
        if (sh->filter != SQL_SCHED_ANY)
            sql_buf_append(&b, sh->filter == SQL_SCHED_RUNNING ? " filter=RUNNING" : " filter=PAUSED");
        if (sh->for_what != NULL)
            sql_buf_printf(&b, " for=(%s)", sh->for_what);
        break;
    }
    case SQL_SHOW_CREATE_SCHEDULE:
        if (s->u.show_create_schedule.all)
            sql_buf_append(&b, "(SHOW CREATE ALL SCHEDULES");
        else {
            sql_buf_append(&b, "(SHOW CREATE SCHEDULE");
            dump_field_raw(&b, "id", s->u.show_create_schedule.schedule_id);
        }
        break;
    case SQL_CONTROL_SCHEDULES:
        sql_buf_printf(&b, "(%s SCHEDULES", sched_actions[s->u.control_schedules.action % 4]);
        dump_field_raw(&b, "id", s->u.control_schedules.schedule_id);
        dump_field_raw(&b, "select", s->u.control_schedules.select);
        break;
    case SQL_CREATE_EXTERNAL_CONNECTION:
    case SQL_DROP_EXTERNAL_CONNECTION:
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION: {
        const sql_external_connection *e = &s->u.external_connection;

        if (e->all) {
            sql_buf_append(&b, "(SHOW CREATE ALL EXTERNAL CONNECTIONS");
            break;
        }
        sql_buf_printf(&b, "(%s", sql_stmt_name(s));
        if (e->if_not_exists)
            sql_buf_append(&b, " if_not_exists");
        dump_field_string(&b, "name", e->name);
        dump_field_string(&b, "uri", e->uri);
        break;
    }
    }
    if (s->nparams > 0)
        sql_buf_printf(&b, " nparams=%d", s->nparams);
    sql_buf_append(&b, ")");
    return sql_buf_finish(&b);
}
