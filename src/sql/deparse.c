/*
 * deparse.c - sql_stmt_deparse(): the canonical text of a parse tree, and
 * sql_redact_uri().
 *
 * Canonical: keywords upper-case, option names as CockroachDB prints them
 * (lower-case, "name = value", a true boolean as the bare name), options in
 * the order of their table (build.c), strings as '' literals, bare-word
 * strings quoted, placeholders as $n, bare table patterns as TABLE ... .
 * Parsing the output gives the same tree (the unit tests check this).
 * With redact, passphrases and the secret parts of URIs become 'redacted',
 * so the text can go to jobs tables, logs and SHOW output.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql_int.h"

/* URL query parameters holding credentials (as CockroachDB redacts them). */
static const char *const secret_params[] = {
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "CREDENTIALS",
    "BEARER_TOKEN", "AZURE_ACCOUNT_KEY", "AZURE_CLIENT_SECRET",
};

static bool
is_secret_param(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof secret_params / sizeof secret_params[0]; i++)
        if (strlen(secret_params[i]) == len && strncasecmp(secret_params[i], name, len) == 0)
            return true;
    return false;
}

/*
 * The URI with the password of its user info and the values of the secret
 * query parameters replaced by "redacted"; everything else as given.
 */
static void
redact_uri_into(sql_buf *b, const char *uri)
{
    const char *p = uri;
    const char *scheme_end = strstr(uri, "://");
    const char *query;

    if (scheme_end != NULL && strcspn(uri, "?#") > (size_t) (scheme_end - uri)) {
        const char *auth = scheme_end + 3;
        size_t auth_len = strcspn(auth, "/?#");
        const char *at = NULL;

        for (const char *q = auth; q < auth + auth_len; q++)
            if (*q == '@')
                at = q;
        if (at != NULL) {
            const char *colon = memchr(auth, ':', (size_t) (at - auth));

            if (colon != NULL) {
                sql_buf_append_n(b, uri, (size_t) (colon + 1 - uri));
                sql_buf_append(b, "redacted");
                p = at;
            }
        }
    }
    query = strchr(p, '?');
    if (query == NULL) {
        sql_buf_append(b, p);
        return;
    }
    sql_buf_append_n(b, p, (size_t) (query + 1 - p));
    p = query + 1;
    while (*p != '\0' && *p != '#') {
        size_t len = strcspn(p, "&#");
        const char *eq = memchr(p, '=', len);

        if (eq != NULL && is_secret_param(p, (size_t) (eq - p))) {
            sql_buf_append_n(b, p, (size_t) (eq + 1 - p));
            sql_buf_append(b, "redacted");
        } else {
            sql_buf_append_n(b, p, len);
        }
        p += len;
        if (*p == '&') {
            sql_buf_append_n(b, "&", 1);
            p++;
        }
    }
    sql_buf_append(b, p);
}

char *
sql_redact_uri(const char *uri)
{
    sql_buf b;

    sql_buf_init(&b);
    redact_uri_into(&b, uri);
    return sql_buf_finish(&b);
}

/* How a string slot is printed under redaction. */
typedef enum { PLAIN, URI, SECRET } redact_kind;

typedef struct deparse_ctx {
    sql_buf *b;
    bool redact;
} deparse_ctx;

static void
put(deparse_ctx *c, const char *s)
{
    sql_buf_append(c->b, s);
}

static void
put_upper(deparse_ctx *c, const char *s)
{
    for (; *s != '\0'; s++) {
        char ch = *s >= 'a' && *s <= 'z' ? (char) (*s - ('a' - 'A')) : *s;
        sql_buf_append_n(c->b, &ch, 1);
    }
}

static void
put_string(deparse_ctx *c, const sql_string *s, redact_kind kind)
{
    if (s->value == NULL) {
        sql_buf_printf(c->b, "$%d", s->param);
    } else if (c->redact && kind == SECRET && s->value[0] != '\0') {
        /* '' (which unsets the option) hides nothing */
        sql_buf_quote_literal(c->b, "redacted");
    } else if (c->redact && kind == URI) {
        sql_buf r;
        char *text;

        sql_buf_init(&r);
        redact_uri_into(&r, s->value);
        text = sql_buf_finish(&r);
        if (text == NULL) {
            c->b->failed = true;
            return;
        }
        sql_buf_quote_literal(c->b, text);
        free(text);
    } else {
        sql_buf_quote_literal(c->b, s->value);
    }
}

/* 'a' or ('a', 'b') */
static void
put_list(deparse_ctx *c, const sql_string_list *l, redact_kind kind)
{
    if (l->n == 1) {
        put_string(c, &l->items[0], kind);
        return;
    }
    put(c, "(");
    for (int i = 0; i < l->n; i++) {
        if (i > 0)
            put(c, ", ");
        put_string(c, &l->items[i], kind);
    }
    put(c, ")");
}

static void
put_raw(deparse_ctx *c, const sql_raw *r)
{
    if (r->param > 0)
        sql_buf_printf(c->b, "$%d", r->param);
    else if (r->is_string)
        sql_buf_quote_literal(c->b, r->text);
    else
        put(c, r->text);
}

static void
put_targets(deparse_ctx *c, const sql_targets *t)
{
    switch (t->kind) {
    case SQL_TARGET_CLUSTER:
        return;
    case SQL_TARGET_SYSTEM_USERS:
        put(c, " SYSTEM USERS");
        return;
    case SQL_TARGET_DATABASES:
        put(c, " DATABASE ");
        for (int i = 0; i < t->n; i++) {
            if (i > 0)
                put(c, ", ");
            sql_buf_quote_ident(c->b, t->databases[i]);
        }
        return;
    case SQL_TARGET_TABLES:
        put(c, " TABLE ");
        for (int i = 0; i < t->n; i++) {
            const sql_table_pattern *p = &t->tables[i];

            if (i > 0)
                put(c, ", ");
            for (int j = 0; j < p->nparts; j++) {
                if (j > 0)
                    put(c, ".");
                sql_buf_quote_ident(c->b, p->parts[j]);
            }
            if (p->star)
                put(c, p->nparts > 0 ? ".*" : "*");
        }
        return;
    }
}

/* ", "-separated options set in opts (nothing when none is set). */
static bool
put_opts(deparse_ctx *c, const char *prefix, const sql_opt_table *t, const void *opts)
{
    bool any = false;

    for (int i = 0; i < t->n; i++) {
        const sql_opt_desc *d = &t->opts[i];
        const void *f = SQL_OPT_CFIELD(opts, d);
        const sql_bool_opt *bo = f;
        redact_kind kind = d->secret ? SECRET : d->uri ? URI : PLAIN;

        if ((d->type == SQL_OPT_STRING || d->type == SQL_OPT_LIST) ? *(void *const *) f == NULL : !bo->set)
            continue;
        put(c, any ? ", " : prefix);
        any = true;
        put(c, d->name);
        switch (d->type) {
        case SQL_OPT_STRING:
            put(c, " = ");
            put_string(c, *(sql_string *const *) f, kind);
            break;
        case SQL_OPT_LIST:
            put(c, " = ");
            put_list(c, *(sql_string_list *const *) f, kind);
            break;
        case SQL_OPT_BOOL:
            if (bo->expr != NULL) {
                put(c, " = ");
                put_raw(c, bo->expr);
            } else if (!bo->value) {
                put(c, " = false");
            }
            break;
        case SQL_OPT_FLAG:
            break;
        }
    }
    return any;
}

static void
put_kv(deparse_ctx *c, const sql_kv_option *kv)
{
    if (sql_ident_needs_quotes(kv->name))
        sql_buf_quote_literal(c->b, kv->name);
    else
        put(c, kv->name);
    if (kv->value != NULL) {
        put(c, " = ");
        put_string(c, kv->value, PLAIN);
    } else if (kv->expr != NULL) {
        put(c, " = ");
        put_raw(c, kv->expr);
    }
}

/* LATEST IN list / 'subdir' IN list / 'path', for SHOW BACKUP and ALTER BACKUP */
static void
put_backup_ref(deparse_ctx *c, bool latest, const sql_string *subdir, const sql_string_list *in)
{
    if (latest) {
        put(c, "LATEST IN ");
        put_list(c, in, URI);
    } else if (in->n > 0) {
        put_string(c, subdir, PLAIN);
        put(c, " IN ");
        put_list(c, in, URI);
    } else {
        put_string(c, subdir, URI);
    }
}

static void
put_backup(deparse_ctx *c, const sql_backup *s)
{
    put(c, "BACKUP");
    put_targets(c, &s->targets);
    switch (s->dest_kind) {
    case SQL_BACKUP_INTO:
        put(c, " INTO ");
        break;
    case SQL_BACKUP_INTO_LATEST:
        put(c, " INTO LATEST IN ");
        break;
    case SQL_BACKUP_INTO_SUBDIR:
        put(c, " INTO ");
        put_string(c, s->subdir, PLAIN);
        put(c, " IN ");
        break;
    case SQL_BACKUP_TO:
        put(c, " TO ");
        break;
    }
    put_list(c, &s->dest, URI);
    if (s->as_of != NULL) {
        put(c, " AS OF SYSTEM TIME ");
        put_raw(c, s->as_of);
    }
    if (s->incremental_from != NULL) {
        put(c, " INCREMENTAL FROM ");
        for (int i = 0; i < s->incremental_from->n; i++) {
            if (i > 0)
                put(c, ", ");
            put_string(c, &s->incremental_from->items[i], URI);
        }
    }
    put_opts(c, " WITH ", &sql_backup_opt_table, &s->options);
}

static void
put_restore(deparse_ctx *c, const sql_restore *s)
{
    put(c, "RESTORE");
    put_targets(c, &s->targets);
    put(c, " FROM ");
    if (s->from_latest)
        put(c, "LATEST IN ");
    else if (s->subdir != NULL) {
        put_string(c, s->subdir, PLAIN);
        put(c, " IN ");
    }
    for (int i = 0; i < s->nlocalities; i++) {
        if (i > 0)
            put(c, ", ");
        put_list(c, &s->from[i], URI);
    }
    if (s->as_of != NULL) {
        put(c, " AS OF SYSTEM TIME ");
        put_raw(c, s->as_of);
    }
    put_opts(c, " WITH ", &sql_restore_opt_table, &s->options);
}

static void
put_show_backup(deparse_ctx *c, const sql_show_backup *s)
{
    static const char *const what[] = { "", "SCHEMAS ", "FILES ", "RANGES ", "VALIDATE " };

    if (s->what == SQL_SHOW_BACKUP_CONNECTION) {
        put(c, "SHOW BACKUP CONNECTION ");
        put_string(c, s->subdir, URI);
        for (int i = 0; i < s->connection_options.n; i++) {
            const sql_kv_option *kv = &s->connection_options.items[i];

            put(c, i == 0 ? " WITH " : ", ");
            put_upper(c, kv->name);
            put(c, " = ");
            if (kv->value != NULL)
                put_string(c, kv->value, PLAIN);
            else if (kv->expr != NULL)
                put_raw(c, kv->expr);
        }
        return;
    }
    put(c, "SHOW BACKUP ");
    if ((unsigned) s->what < sizeof what / sizeof what[0])
        put(c, what[s->what]);
    if (s->from_latest || s->in.n > 0)
        put(c, "FROM ");
    put_backup_ref(c, s->from_latest, s->subdir, &s->in);
    put_opts(c, " WITH ", &sql_show_backup_opt_table, &s->options);
}

static void
put_show_jobs(deparse_ctx *c, const sql_show_jobs *j)
{
    bool plural = j->form != SQL_JOBS_ONE;

    put(c, "SHOW ");
    if (j->automatic)
        put(c, "AUTOMATIC ");
    if (j->changefeed)
        put(c, "CHANGEFEED ");
    put(c, plural ? "JOBS" : "JOB");
    if (j->when_complete)
        put(c, " WHEN COMPLETE");
    if (j->form == SQL_JOBS_FOR_SCHEDULE)
        put(c, " FOR SCHEDULE");
    else if (j->form == SQL_JOBS_FOR_SCHEDULES)
        put(c, " FOR SCHEDULES");
    if (j->expr != NULL) {
        put(c, " ");
        put_raw(c, j->expr);
    }
    if (j->select != NULL) {
        put(c, " ");
        put_raw(c, j->select);
    }
    if (j->execution_details)
        put(c, " WITH EXECUTION DETAILS");
}

static void
put_control_jobs(deparse_ctx *c, const sql_control_jobs *j)
{
    static const char *const actions[] = { "", "PAUSE ", "RESUME ", "CANCEL " };

    put(c, actions[j->action % 4]);
    switch (j->form) {
    case SQL_JOBS_ALL_OF_TYPE:
        sql_buf_printf(c->b, "ALL %s JOBS", j->job_type);
        return;
    case SQL_JOBS_ONE:
        put(c, "JOB ");
        break;
    case SQL_JOBS_FOR_SCHEDULE:
        put(c, "JOBS FOR SCHEDULE ");
        break;
    case SQL_JOBS_FOR_SCHEDULES:
        put(c, "JOBS FOR SCHEDULES ");
        break;
    default:
        put(c, "JOBS ");
        break;
    }
    put_raw(c, j->expr != NULL ? j->expr : j->select);
    if (j->reason != NULL) {
        put(c, " WITH REASON = ");
        put_string(c, j->reason, PLAIN);
    }
}

static void
put_create_schedule(deparse_ctx *c, const sql_create_schedule *s)
{
    put(c, "CREATE SCHEDULE ");
    if (s->if_not_exists)
        put(c, "IF NOT EXISTS ");
    if (s->label != NULL) {
        put_string(c, s->label, PLAIN);
        put(c, " ");
    }
    put(c, "FOR BACKUP");
    put_targets(c, &s->targets);
    put(c, " INTO ");
    put_list(c, &s->into, URI);
    put_opts(c, " WITH ", &sql_backup_opt_table, &s->options);
    put(c, " RECURRING ");
    if (s->recurring_never)
        put(c, "NEVER");
    else
        put_string(c, s->recurring, PLAIN);
    if (s->full_backup_set) {
        put(c, " FULL BACKUP ");
        if (s->full_backup_always)
            put(c, "ALWAYS");
        else
            put_string(c, s->full_backup, PLAIN);
    }
    for (int i = 0; i < s->schedule_options.n; i++) {
        put(c, i == 0 ? " WITH SCHEDULE OPTIONS " : ", ");
        put_kv(c, &s->schedule_options.items[i]);
    }
}

static void
put_alter_schedule(deparse_ctx *c, const sql_alter_backup_schedule *s)
{
    put(c, "ALTER BACKUP SCHEDULE ");
    put_raw(c, s->schedule_id);
    for (int i = 0; i < s->ncmds; i++) {
        const sql_alter_schedule_cmd *cmd = &s->cmds[i];

        put(c, i == 0 ? " " : ", ");
        switch (cmd->kind) {
        case SQL_ALTER_SCHED_SET_LABEL:
            put(c, "SET LABEL ");
            put_string(c, cmd->label, PLAIN);
            break;
        case SQL_ALTER_SCHED_SET_INTO:
            put(c, "SET INTO ");
            put_list(c, &cmd->into, URI);
            break;
        case SQL_ALTER_SCHED_SET_WITH:
            put_opts(c, "SET WITH ", &sql_backup_opt_table, &cmd->with);
            break;
        case SQL_ALTER_SCHED_SET_RECURRING:
            put(c, "SET RECURRING ");
            if (cmd->never)
                put(c, "NEVER");
            else
                put_string(c, cmd->cron, PLAIN);
            break;
        case SQL_ALTER_SCHED_SET_FULL_BACKUP:
            put(c, "SET FULL BACKUP ");
            if (cmd->always)
                put(c, "ALWAYS");
            else
                put_string(c, cmd->cron, PLAIN);
            break;
        case SQL_ALTER_SCHED_SET_SCHEDULE_OPTION:
            put(c, "SET SCHEDULE OPTION ");
            put_kv(c, &cmd->option);
            break;
        case SQL_ALTER_SCHED_EXECUTE_IMMEDIATELY:
            put(c, "EXECUTE IMMEDIATELY");
            break;
        case SQL_ALTER_SCHED_EXECUTE_FULL_IMMEDIATELY:
            put(c, "EXECUTE FULL IMMEDIATELY");
            break;
        }
    }
}

char *
sql_stmt_deparse(const sql_stmt *s, bool redact)
{
    static const char *const sched_actions[] = { "", "PAUSE", "RESUME", "DROP" };
    sql_buf b;
    deparse_ctx c = { &b, redact };

    sql_buf_init(&b);
    switch (s->kind) {
    case SQL_BACKUP:
        put_backup(&c, &s->u.backup);
        break;
    case SQL_RESTORE:
        put_restore(&c, &s->u.restore);
        break;
    case SQL_SHOW_BACKUPS:
        put(&c, "SHOW BACKUPS IN ");
        put_list(&c, &s->u.show_backups.in, URI);
        break;
    case SQL_SHOW_BACKUP:
        put_show_backup(&c, &s->u.show_backup);
        break;
    case SQL_SHOW_JOBS:
        put_show_jobs(&c, &s->u.show_jobs);
        break;
    case SQL_CONTROL_JOBS:
        put_control_jobs(&c, &s->u.control_jobs);
        break;
    case SQL_ALTER_BACKUP:
        put(&c, "ALTER BACKUP ");
        put_backup_ref(&c, s->u.alter_backup.latest, s->u.alter_backup.subdir, &s->u.alter_backup.in);
        for (int i = 0; i < s->u.alter_backup.ncmds; i++) {
            put(&c, " ADD NEW_KMS = ");
            put_list(&c, &s->u.alter_backup.cmds[i].new_kms, URI);
            put(&c, " WITH OLD_KMS = ");
            put_list(&c, &s->u.alter_backup.cmds[i].old_kms, URI);
        }
        break;
    case SQL_CREATE_SCHEDULE:
        put_create_schedule(&c, &s->u.create_schedule);
        break;
    case SQL_ALTER_BACKUP_SCHEDULE:
        put_alter_schedule(&c, &s->u.alter_backup_schedule);
        break;
    case SQL_SHOW_SCHEDULES: {
        const sql_show_schedules *sh = &s->u.show_schedules;

        if (sh->schedule_id != NULL) {
            put(&c, "SHOW SCHEDULE ");
            put_raw(&c, sh->schedule_id);
            break;
        }
        put(&c, sh->filter == SQL_SCHED_RUNNING ? "SHOW RUNNING SCHEDULES"
                : sh->filter == SQL_SCHED_PAUSED ? "SHOW PAUSED SCHEDULES"
                                                 : "SHOW SCHEDULES");
        if (sh->for_what != NULL) {
            put(&c, " FOR ");
            put(&c, sh->for_what);
        }
        break;
    }
    case SQL_SHOW_CREATE_SCHEDULE:
        if (s->u.show_create_schedule.all) {
            put(&c, "SHOW CREATE ALL SCHEDULES");
        } else {
            put(&c, "SHOW CREATE SCHEDULE ");
            put_raw(&c, s->u.show_create_schedule.schedule_id);
        }
        break;
    case SQL_CONTROL_SCHEDULES:
        put(&c, sched_actions[s->u.control_schedules.action % 4]);
        if (s->u.control_schedules.schedule_id != NULL) {
            put(&c, " SCHEDULE ");
            put_raw(&c, s->u.control_schedules.schedule_id);
        } else {
            put(&c, " SCHEDULES ");
            put_raw(&c, s->u.control_schedules.select);
        }
        break;
    case SQL_CREATE_EXTERNAL_CONNECTION:
        put(&c, "CREATE EXTERNAL CONNECTION ");
        if (s->u.external_connection.if_not_exists)
            put(&c, "IF NOT EXISTS ");
        put_string(&c, s->u.external_connection.name, PLAIN);
        put(&c, " AS ");
        put_string(&c, s->u.external_connection.uri, URI);
        break;
    case SQL_DROP_EXTERNAL_CONNECTION:
        put(&c, "DROP EXTERNAL CONNECTION ");
        put_string(&c, s->u.external_connection.name, PLAIN);
        break;
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION:
        if (s->u.external_connection.all) {
            put(&c, "SHOW CREATE ALL EXTERNAL CONNECTIONS");
        } else {
            put(&c, "SHOW CREATE EXTERNAL CONNECTION ");
            put_string(&c, s->u.external_connection.name, PLAIN);
        }
        break;
    }
    return sql_buf_finish(&b);
}
