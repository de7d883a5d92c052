/*
 * build.c - what the grammar's actions call: the per-parse arena, error
 * recording, and constructors for the pieces of the parse tree (strings,
 * lists, captured expressions, table patterns, option structs).
 *
 * Everything here allocates from the parse arena; sql_parse() copies the
 * finished tree to malloc'd memory (tree.c) and drops the arena, so no
 * action ever frees anything, also on syntax errors.
 */
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql_int.h"

#define SQL_ARENA_BLOCK 8192

typedef struct sql_arena_block {
    struct sql_arena_block *next;
    size_t size;
    size_t used;
    alignas(max_align_t) unsigned char data[];
} sql_arena_block;

struct sql_arena {
    sql_arena_block *head;
    jmp_buf *oom;
};

/* ---- Option tables ---------------------------------------------------- */

#define OPT(type, field, name, kind, secret, uri) \
    { name, kind, offsetof(type, field), secret, uri }

static const sql_opt_desc backup_opts[] = {
    OPT(sql_backup_options, revision_history, "revision_history", SQL_OPT_BOOL, false, false),
    OPT(sql_backup_options, encryption_passphrase, "encryption_passphrase", SQL_OPT_STRING, true, false),
    OPT(sql_backup_options, detached, "detached", SQL_OPT_BOOL, false, false),
    OPT(sql_backup_options, kms, "kms", SQL_OPT_LIST, false, true),
    OPT(sql_backup_options, incremental_location, "incremental_location", SQL_OPT_LIST, false, true),
    OPT(sql_backup_options, execution_locality, "execution locality", SQL_OPT_STRING, false, false),
    OPT(sql_backup_options, include_all_virtual_clusters, "include_all_virtual_clusters", SQL_OPT_BOOL,
        false, false),
    OPT(sql_backup_options, updates_cluster_monitoring_metrics, "updates_cluster_monitoring_metrics",
        SQL_OPT_BOOL, false, false),
};

static const sql_opt_desc restore_opts[] = {
    OPT(sql_restore_options, encryption_passphrase, "encryption_passphrase", SQL_OPT_STRING, true, false),
    OPT(sql_restore_options, kms, "kms", SQL_OPT_LIST, false, true),
    OPT(sql_restore_options, into_db, "into_db", SQL_OPT_STRING, false, false),
    OPT(sql_restore_options, skip_missing_foreign_keys, "skip_missing_foreign_keys", SQL_OPT_FLAG, false,
        false),
    OPT(sql_restore_options, skip_missing_sequences, "skip_missing_sequences", SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, skip_missing_sequence_owners, "skip_missing_sequence_owners", SQL_OPT_FLAG,
        false, false),
    OPT(sql_restore_options, skip_missing_views, "skip_missing_views", SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, skip_missing_udfs, "skip_missing_udfs", SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, detached, "detached", SQL_OPT_BOOL, false, false),
    OPT(sql_restore_options, skip_localities_check, "skip_localities_check", SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, new_db_name, "new_db_name", SQL_OPT_STRING, false, false),
    OPT(sql_restore_options, incremental_location, "incremental_location", SQL_OPT_LIST, false, true),
    OPT(sql_restore_options, schema_only, "schema_only", SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, verify_backup_table_data, "verify_backup_table_data", SQL_OPT_FLAG, false,
        false),
    OPT(sql_restore_options, execution_locality, "execution locality", SQL_OPT_STRING, false, false),
    OPT(sql_restore_options, remove_regions, "remove_regions", SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, virtual_cluster_name, "virtual_cluster_name", SQL_OPT_STRING, false, false),
    OPT(sql_restore_options, virtual_cluster, "virtual_cluster", SQL_OPT_STRING, false, false),
    OPT(sql_restore_options, unsafe_restore_incompatible_version, "unsafe_restore_incompatible_version",
        SQL_OPT_FLAG, false, false),
    OPT(sql_restore_options, experimental_deferred_copy, "experimental deferred copy", SQL_OPT_FLAG, false,
        false),
};

static const sql_opt_desc show_backup_opts[] = {
    OPT(sql_show_backup_options, as_json, "as_json", SQL_OPT_FLAG, false, false),
    OPT(sql_show_backup_options, check_files, "check_files", SQL_OPT_FLAG, false, false),
    OPT(sql_show_backup_options, debug_ids, "debug_ids", SQL_OPT_FLAG, false, false),
    OPT(sql_show_backup_options, privileges, "privileges", SQL_OPT_FLAG, false, false),
    OPT(sql_show_backup_options, skip_size, "skip size", SQL_OPT_FLAG, false, false),
    OPT(sql_show_backup_options, incremental_location, "incremental_location", SQL_OPT_LIST, false, true),
    OPT(sql_show_backup_options, kms, "kms", SQL_OPT_LIST, false, true),
    OPT(sql_show_backup_options, encryption_passphrase, "encryption_passphrase", SQL_OPT_STRING, true, false),
    OPT(sql_show_backup_options, encryption_info_dir, "encryption_info_dir", SQL_OPT_STRING, false, true),
    OPT(sql_show_backup_options, debug_dump_metadata_sst, "debug_dump_metadata_sst", SQL_OPT_FLAG, false,
        false),
};

#define TABLE(opts, type) { opts, (int) (sizeof opts / sizeof opts[0]), sizeof(type) }

const sql_opt_table sql_backup_opt_table = TABLE(backup_opts, sql_backup_options);
const sql_opt_table sql_restore_opt_table = TABLE(restore_opts, sql_restore_options);
const sql_opt_table sql_show_backup_opt_table = TABLE(show_backup_opts, sql_show_backup_options);

/* ---- Arena ------------------------------------------------------------ */

sql_arena *
sql_arena_create(jmp_buf *oom)
{
    sql_arena *arena = calloc(1, sizeof *arena);

    if (arena == NULL)
        longjmp(*oom, 1);
    arena->oom = oom;
    return arena;
}

void
sql_arena_destroy(sql_arena *arena)
{
    if (arena == NULL)
        return;
    while (arena->head != NULL) {
        sql_arena_block *next = arena->head->next;
        free(arena->head);
        arena->head = next;
    }
    free(arena);
}

/* Zeroed memory aligned for any type. */
void *
sql_arena_alloc(sql_arena *arena, size_t size)
{
    const size_t align = alignof(max_align_t);
    sql_arena_block *b = arena->head;
    void *p;

    size = (size + align - 1) & ~(align - 1);
    if (size == 0)
        size = align;
    if (b == NULL || b->size - b->used < size) {
        size_t bsize = size > SQL_ARENA_BLOCK / 2 ? size : SQL_ARENA_BLOCK;

        b = malloc(sizeof *b + bsize);
        if (b == NULL)
            longjmp(*arena->oom, 1);
        b->size = bsize;
        b->used = 0;
        /* a large one-off block goes second so the current block keeps serving */
        if (bsize > SQL_ARENA_BLOCK && arena->head != NULL) {
            b->next = arena->head->next;
            arena->head->next = b;
        } else {
            b->next = arena->head;
            arena->head = b;
        }
    }
    p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

void *
sql_palloc(sql_parse_state *ps, size_t size)
{
    return sql_arena_alloc(ps->arena, size);
}

char *
sql_pstrndup(sql_parse_state *ps, const char *s, size_t n)
{
    char *p = sql_arena_alloc(ps->arena, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
sql_pstrdup(sql_parse_state *ps, const char *s)
{
    return sql_pstrndup(ps, s, strlen(s));
}

/* ---- Errors ----------------------------------------------------------- */

void
sql_parse_error(sql_parse_state *ps, int location, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->failed)
        return;
    ps->failed = true;
    snprintf(ps->sqlstate, sizeof ps->sqlstate, "%s", sqlstate);
    ps->error_location = location;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    ps->message = sql_palloc(ps, (size_t) n + 1);
    va_start(ap, fmt);
    vsnprintf(ps->message, (size_t) n + 1, fmt, ap);
    va_end(ap);
}

/* ---- Tree pieces ------------------------------------------------------ */

sql_stmt *
sql_new_stmt(sql_parse_state *ps, sql_stmt_kind kind)
{
    sql_stmt *s = sql_palloc(ps, sizeof *s);

    s->kind = kind;
    return s;
}

sql_string *
sql_new_string(sql_parse_state *ps, const char *value, int param, sql_location loc)
{
    sql_string *s = sql_palloc(ps, sizeof *s);

    s->value = value != NULL ? sql_pstrdup(ps, value) : NULL;
    s->param = param;
    s->location = loc.start;
    return s;
}

sql_string_list *
sql_list_append(sql_parse_state *ps, sql_string_list *list, sql_string *item)
{
    sql_string *items;

    if (list == NULL)
        list = sql_palloc(ps, sizeof *list);
    items = sql_palloc(ps, sizeof *items * (size_t) (list->n + 1));
    if (list->n > 0)
        memcpy(items, list->items, sizeof *items * (size_t) list->n);
    items[list->n++] = *item;
    list->items = items;
    return list;
}

sql_string_lists *
sql_lists_append(sql_parse_state *ps, sql_string_lists *lists, sql_string_list *item)
{
    sql_string_list *items;

    if (lists == NULL)
        lists = sql_palloc(ps, sizeof *lists);
    items = sql_palloc(ps, sizeof *items * (size_t) (lists->n + 1));
    if (lists->n > 0)
        memcpy(items, lists->items, sizeof *items * (size_t) lists->n);
    items[lists->n++] = *item;
    lists->items = items;
    return lists;
}

/* Remember the first two top-level tokens of an expression. */
sql_soup
sql_soup_add(sql_soup soup, sql_token tok, sql_location loc)
{
    if (soup.ntokens < 2) {
        soup.tok[soup.ntokens] = tok;
        soup.loc[soup.ntokens] = loc;
    }
    soup.ntokens++;
    return soup;
}

static bool
is_decimal(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/*
 * The source text at loc as a sql_raw. With the expression's shape (NULL
 * for SELECT statements) note when it is exactly one string literal (the
 * decoded value replaces the text), one placeholder, or one integer.
 */
sql_raw *
sql_make_raw(sql_parse_state *ps, const sql_soup *soup, sql_location loc)
{
    sql_raw *raw = sql_palloc(ps, sizeof *raw);

    raw->location = loc.start;
    raw->text = sql_pstrndup(ps, ps->scanbuf + loc.start, (size_t) (loc.end - loc.start));
    for (const struct sql_param_tok *t = ps->param_toks; t != NULL; t = t->next)
        if (t->offset >= loc.start && t->offset < loc.end && t->n > raw->max_param)
            raw->max_param = t->n;
    if (soup == NULL)
        return raw;
    if (soup->ntokens == 1) {
        switch (soup->tok[0].kind) {
        case SCONST:
            raw->is_string = true;
            raw->text = sql_pstrdup(ps, soup->tok[0].value);
            break;
        case PARAM:
            raw->param = soup->tok[0].param;
            break;
        case ICONST:
            raw->is_integer = is_decimal(soup->tok[0].value);
            break;
        default:
            break;
        }
    } else if (soup->ntokens == 2 && soup->tok[0].kind == '-' && soup->tok[1].kind == ICONST
               && soup->loc[0].end == soup->loc[1].start) {
        raw->is_integer = is_decimal(soup->tok[1].value);
    }
    return raw;
}

/* "= a_expr" of a boolean option: TRUE and FALSE fold, the rest is raw. */
sql_bool_opt
sql_make_bool(sql_parse_state *ps, const sql_soup *soup, sql_location loc)
{
    sql_bool_opt b = { true, true, NULL };

    if (soup->ntokens == 1 && soup->tok[0].kind == TRUE_P)
        return b;
    b.value = false;
    if (soup->ntokens == 1 && soup->tok[0].kind == FALSE_P)
        return b;
    b.expr = sql_make_raw(ps, soup, loc);
    return b;
}

sql_table_pattern *
sql_make_pattern(sql_parse_state *ps, const char *p1, const char *p2, const char *p3, bool star,
                 sql_location loc)
{
    sql_table_pattern *p = sql_palloc(ps, sizeof *p);
    const char *parts[3] = { p1, p2, p3 };

    for (int i = 0; i < 3 && parts[i] != NULL; i++)
        p->parts[p->nparts++] = sql_pstrdup(ps, parts[i]);
    p->star = star;
    p->location = loc.start;
    return p;
}

sql_targets *
sql_targets_add_table(sql_parse_state *ps, sql_targets *targets, sql_table_pattern *p)
{
    sql_table_pattern *tables;

    if (targets == NULL) {
        targets = sql_palloc(ps, sizeof *targets);
        targets->kind = SQL_TARGET_TABLES;
    }
    tables = sql_palloc(ps, sizeof *tables * (size_t) (targets->n + 1));
    if (targets->n > 0)
        memcpy(tables, targets->tables, sizeof *tables * (size_t) targets->n);
    tables[targets->n++] = *p;
    targets->tables = tables;
    return targets;
}

sql_targets *
sql_targets_add_database(sql_parse_state *ps, sql_targets *targets, const char *name)
{
    char **names;

    if (targets == NULL) {
        targets = sql_palloc(ps, sizeof *targets);
        targets->kind = SQL_TARGET_DATABASES;
    }
    names = sql_palloc(ps, sizeof *names * (size_t) (targets->n + 1));
    if (targets->n > 0)
        memcpy(names, targets->databases, sizeof *names * (size_t) targets->n);
    names[targets->n++] = sql_pstrdup(ps, name);
    targets->databases = names;
    return targets;
}

sql_kv_option *
sql_make_kv(sql_parse_state *ps, const char *name, sql_string *value, sql_raw *expr, sql_location loc)
{
    sql_kv_option *kv = sql_palloc(ps, sizeof *kv);

    kv->name = sql_pstrdup(ps, name);
    for (char *p = kv->name; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char) (*p + ('a' - 'A'));
    kv->value = value;
    kv->expr = expr;
    kv->location = loc.start;
    return kv;
}

/* Append kv; a name given twice is an error at the repeat. */
sql_kv_list *
sql_kv_append(sql_parse_state *ps, sql_kv_list *list, sql_kv_option *kv)
{
    sql_kv_option *items;

    if (list == NULL)
        list = sql_palloc(ps, sizeof *list);
    for (int i = 0; i < list->n; i++) {
        if (strcmp(list->items[i].name, kv->name) == 0) {
            sql_parse_error(ps, kv->location, "42601", "%s option specified multiple times", kv->name);
            return list;
        }
    }
    items = sql_palloc(ps, sizeof *items * (size_t) (list->n + 1));
    if (list->n > 0)
        memcpy(items, list->items, sizeof *items * (size_t) list->n);
    items[list->n++] = *kv;
    list->items = items;
    return list;
}

void *
sql_opts_new(sql_parse_state *ps, const sql_opt_table *table)
{
    return sql_palloc(ps, table->size);
}

static bool
opt_is_set(const void *opts, const sql_opt_desc *d)
{
    const void *f = SQL_OPT_CFIELD(opts, d);

    switch (d->type) {
    case SQL_OPT_STRING:
        return *(sql_string *const *) f != NULL;
    case SQL_OPT_LIST:
        return *(sql_string_list *const *) f != NULL;
    case SQL_OPT_BOOL:
    case SQL_OPT_FLAG:
        return ((const sql_bool_opt *) f)->set;
    }
    return false;
}

/* Move the options set in src into dst; one already set in dst is an error at loc. */
void
sql_opts_merge(sql_parse_state *ps, const sql_opt_table *table, void *dst, const void *src, sql_location loc)
{
    for (int i = 0; i < table->n; i++) {
        const sql_opt_desc *d = &table->opts[i];
        size_t size = d->type == SQL_OPT_STRING ? sizeof(sql_string *)
                    : d->type == SQL_OPT_LIST   ? sizeof(sql_string_list *)
                                                : sizeof(sql_bool_opt);

        if (!opt_is_set(src, d))
            continue;
        if (opt_is_set(dst, d)) {
            sql_parse_error(ps, loc.start, "42601", "%s option specified multiple times", d->name);
            continue;
        }
        memcpy(SQL_OPT_FIELD(dst, d), SQL_OPT_CFIELD(src, d), size);
    }
}

void
sql_alter_backup_add(sql_parse_state *ps, sql_alter_backup *ab, sql_string_list *new_kms,
                     sql_string_list *old_kms)
{
    sql_alter_backup_cmd *cmds = sql_palloc(ps, sizeof *cmds * (size_t) (ab->ncmds + 1));

    if (ab->ncmds > 0)
        memcpy(cmds, ab->cmds, sizeof *cmds * (size_t) ab->ncmds);
    cmds[ab->ncmds].new_kms = *new_kms;
    cmds[ab->ncmds].old_kms = *old_kms;
    ab->ncmds++;
    ab->cmds = cmds;
}

void
sql_alter_schedule_add(sql_parse_state *ps, sql_alter_backup_schedule *as, sql_alter_schedule_cmd *cmd)
{
    sql_alter_schedule_cmd *cmds = sql_palloc(ps, sizeof *cmds * (size_t) (as->ncmds + 1));

    if (as->ncmds > 0)
        memcpy(cmds, as->cmds, sizeof *cmds * (size_t) as->ncmds);
    cmds[as->ncmds++] = *cmd;
    as->cmds = cmds;
}

/* ---- Statements ------------------------------------------------------- */

sql_stmt *
sql_make_restore(sql_parse_state *ps, sql_targets *targets, sql_target_kind kind, sql_backup_ref *from,
             sql_raw *as_of, sql_restore_options *options)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_RESTORE);
    sql_restore *r = &s->u.restore;

    if (targets != NULL)
        r->targets = *targets;
    else
        r->targets.kind = kind;
    r->from_latest = from->latest;
    r->subdir = from->subdir;
    r->nlocalities = from->from->n;
    r->from = from->from->items;
    r->deprecated_path_form = !from->latest && from->subdir == NULL;
    r->as_of = as_of;
    if (options != NULL)
        r->options = *options;
    return s;
}

sql_stmt *
sql_make_show_jobs(sql_parse_state *ps, sql_jobs_form form, int flags, sql_raw *expr, sql_raw *select)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_SHOW_JOBS);

    s->u.show_jobs.form = form;
    s->u.show_jobs.automatic = (flags & SQL_JOBS_AUTOMATIC) != 0;
    s->u.show_jobs.changefeed = (flags & SQL_JOBS_CHANGEFEED) != 0;
    s->u.show_jobs.when_complete = (flags & SQL_JOBS_WHEN_COMPLETE) != 0;
    s->u.show_jobs.execution_details = (flags & SQL_JOBS_EXECUTION_DETAILS) != 0;
    s->u.show_jobs.expr = expr;
    s->u.show_jobs.select = select;
    return s;
}

sql_stmt *
sql_make_control_jobs(sql_parse_state *ps, int action, sql_jobs_form form, sql_raw *expr, sql_raw *select,
                      const char *job_type, sql_string *reason)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_CONTROL_JOBS);

    s->u.control_jobs.action = (sql_job_action) action;
    s->u.control_jobs.form = form;
    s->u.control_jobs.expr = expr;
    s->u.control_jobs.select = select;
    s->u.control_jobs.job_type = job_type != NULL ? sql_pstrdup(ps, job_type) : NULL;
    s->u.control_jobs.reason = reason;
    return s;
}

sql_stmt *
sql_make_control_schedules(sql_parse_state *ps, int action, sql_raw *id, sql_raw *select)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_CONTROL_SCHEDULES);
    s->u.control_schedules.action = (sql_schedule_action) action;
    s->u.control_schedules.schedule_id = id;
    s->u.control_schedules.select = select;
    return s;
}

sql_stmt *
sql_make_show_schedules(sql_parse_state *ps, sql_schedules_filter filter, const char *for_what)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_SHOW_SCHEDULES);
    s->u.show_schedules.filter = filter;
    s->u.show_schedules.for_what = for_what != NULL ? sql_pstrdup(ps, for_what) : NULL;
    return s;
}

sql_stmt *
sql_make_show_backup(sql_parse_state *ps, sql_show_backup_what what, sql_backup_ref *ref,
                 sql_show_backup_options *options)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_SHOW_BACKUP);
    s->u.show_backup.what = what;
    s->u.show_backup.from_latest = ref->latest;
    s->u.show_backup.subdir = ref->subdir;
    if (ref->in != NULL)
        s->u.show_backup.in = *ref->in;
    if (options != NULL)
        s->u.show_backup.options = *options;
    return s;
}

sql_backup_ref *
sql_make_ref(sql_parse_state *ps, bool latest, sql_string *subdir, sql_string_list *in,
             sql_string_lists *from)
{
    sql_backup_ref *r = sql_palloc(ps, sizeof(sql_backup_ref));
    r->latest = latest;
    r->subdir = subdir;
    r->in = in;
    r->from = from;
    return r;
}

sql_alter_schedule_cmd *
sql_make_schedule_cmd(sql_parse_state *ps, sql_alter_schedule_cmd_kind kind, sql_location loc)
{
    sql_alter_schedule_cmd *cmd = sql_palloc(ps, sizeof *cmd);

    cmd->kind = kind;
    cmd->location = loc.start;
    return cmd;
}

sql_backup *
sql_make_dest(sql_parse_state *ps, sql_backup_dest_kind kind, sql_string *subdir, sql_string_list *dest)
{
    sql_backup *d = sql_palloc(ps, sizeof *d);

    d->dest_kind = kind;
    d->subdir = subdir;
    d->dest = *dest;
    return d;
}

/* A BACKUP statement: dest from sql_make_dest, the rest as parsed. */
sql_stmt *
sql_make_backup(sql_parse_state *ps, sql_targets *targets, sql_backup *dest, sql_raw *as_of,
                sql_string_list *incremental_from, sql_backup_options *options)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_BACKUP);

    s->u.backup = *dest;
    s->u.backup.targets = *targets;
    s->u.backup.as_of = as_of;
    s->u.backup.incremental_from = incremental_from;
    if (options != NULL)
        s->u.backup.options = *options;
    return s;
}

sql_stmt *
sql_make_external(sql_parse_state *ps, sql_stmt_kind kind, bool if_not_exists, bool all, sql_string *name,
                  sql_string *uri)
{
    sql_stmt *s = sql_new_stmt(ps, kind);

    s->u.external_connection.if_not_exists = if_not_exists;
    s->u.external_connection.all = all;
    s->u.external_connection.name = name;
    s->u.external_connection.uri = uri;
    return s;
}

sql_stmt *
sql_make_show_connection(sql_parse_state *ps, sql_string *uri, sql_kv_list *options)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_SHOW_BACKUP);

    s->u.show_backup.what = SQL_SHOW_BACKUP_CONNECTION;
    s->u.show_backup.subdir = uri;
    if (options != NULL)
        s->u.show_backup.connection_options = *options;
    return s;
}

/* ALTER BACKUP: the target's fields plus the commands' list. */
sql_stmt *
sql_make_alter_backup(sql_parse_state *ps, sql_alter_backup *target, sql_alter_backup *cmds)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_ALTER_BACKUP);

    s->u.alter_backup = *target;
    s->u.alter_backup.ncmds = cmds->ncmds;
    s->u.alter_backup.cmds = cmds->cmds;
    return s;
}

/* CREATE SCHEDULE: label, cron and full are partial structs from their rules. */
sql_stmt *
sql_make_create_schedule(sql_parse_state *ps, sql_create_schedule *label, sql_targets *targets,
                         sql_string_list *into, sql_backup_options *options, sql_create_schedule *cron,
                         sql_create_schedule *full, sql_kv_list *schedule_options)
{
    sql_stmt *s = sql_new_stmt(ps, SQL_CREATE_SCHEDULE);
    sql_create_schedule *c = &s->u.create_schedule;

    c->if_not_exists = label->if_not_exists;
    c->label = label->label;
    c->targets = *targets;
    c->into = *into;
    if (options != NULL)
        c->options = *options;
    c->recurring_never = cron->recurring_never;
    c->recurring = cron->recurring;
    c->full_backup_always = full->full_backup_always;
    c->full_backup = full->full_backup;
    c->full_backup_set = full->full_backup_always || full->full_backup != NULL;
    if (schedule_options != NULL)
        c->schedule_options = *schedule_options;
    return s;
}

sql_token
sql_make_token(int kind, const char *value)
{
    sql_token t = { kind, value, 0 };

    return t;
}

/* A boolean option set to value without an expression. */
sql_bool_opt
sql_make_flag(bool value)
{
    sql_bool_opt b = { true, value, NULL };

    return b;
}
