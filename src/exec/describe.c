/*
 * describe.c - the result columns of each statement without running it
 * (exec_describe, for Describe in the extended protocol).
 *
 * The columns follow the statement reference (shared spec reference.md
 * sections 2.5, 3.4, 4.3, 4.4, 6.2, 7.4, 7.6, 8) with PostgreSQL wire types.
 * They must match what execution returns, column for column, or drivers that
 * trust Describe will misread the rows.
 */
#include <stdbool.h>
#include <stddef.h>

#include "pgbr/catalog.h"
#include "pgbr/exec.h"

/* bytea; result.h has no name for it yet. */
#define DESCRIBE_OID_BYTEA 17

typedef struct describe_builder {
    int n;
    const char *names[32];
    uint32_t types[32];
} describe_builder;

static void describe_add(describe_builder *b, const char *name, uint32_t type)
{
    if (b->n < (int)(sizeof b->names / sizeof b->names[0])) {
        b->names[b->n] = name;
        b->types[b->n] = type;
        b->n++;
    }
}

static result_set *describe_build(const describe_builder *b)
{
    return result_set_new(b->n, b->names, b->types);
}

static bool describe_opt_true(const sql_bool_opt *o)
{
    return o->set && (o->expr != NULL || o->value);
}

/* BACKUP and RESTORE: one row per job, or only its id when DETACHED. */
static result_set *describe_job_result(bool detached, bool deferred_copy)
{
    describe_builder b = { 0 };

    describe_add(&b, "job_id", PGBR_OID_INT8);
    if (detached)
        return describe_build(&b);
    if (deferred_copy) {
        describe_add(&b, "tables", PGBR_OID_INT8);
        describe_add(&b, "approx_rows", PGBR_OID_INT8);
        describe_add(&b, "approx_bytes", PGBR_OID_INT8);
        describe_add(&b, "background_download_job_id", PGBR_OID_INT8);
        return describe_build(&b);
    }
    describe_add(&b, "status", PGBR_OID_TEXT);
    describe_add(&b, "fraction_completed", PGBR_OID_FLOAT8);
    describe_add(&b, "rows", PGBR_OID_INT8);
    describe_add(&b, "index_entries", PGBR_OID_INT8);
    describe_add(&b, "bytes", PGBR_OID_INT8);
    return describe_build(&b);
}

static result_set *describe_show_backup(const sql_show_backup *s)
{
    describe_builder b = { 0 };
    const sql_show_backup_options *o = &s->options;
    bool ids = describe_opt_true(&o->debug_ids);

    switch (s->what) {
    case SQL_SHOW_BACKUP_FILES:
        describe_add(&b, "path", PGBR_OID_TEXT);
        describe_add(&b, "backup_type", PGBR_OID_TEXT);
        describe_add(&b, "start_pretty", PGBR_OID_TEXT);
        describe_add(&b, "end_pretty", PGBR_OID_TEXT);
        describe_add(&b, "start_key", DESCRIBE_OID_BYTEA);
        describe_add(&b, "end_key", DESCRIBE_OID_BYTEA);
        describe_add(&b, "size_bytes", PGBR_OID_INT8);
        describe_add(&b, "rows", PGBR_OID_INT8);
        describe_add(&b, "locality", PGBR_OID_TEXT);
        describe_add(&b, "file_bytes", PGBR_OID_INT8);
        return describe_build(&b);
    case SQL_SHOW_BACKUP_RANGES:
        describe_add(&b, "start_pretty", PGBR_OID_TEXT);
        describe_add(&b, "end_pretty", PGBR_OID_TEXT);
        describe_add(&b, "start_key", DESCRIBE_OID_BYTEA);
        describe_add(&b, "end_key", DESCRIBE_OID_BYTEA);
        return describe_build(&b);
    case SQL_SHOW_BACKUP_VALIDATE:
        describe_add(&b, "validation_status", PGBR_OID_TEXT);
        return describe_build(&b);
    case SQL_SHOW_BACKUP_CONNECTION: {
        /* Not in the reference: no columns promised. */
        result_set *rs = result_set_new(0, NULL, NULL);
        rs->has_rows = false;
        return rs;
    }
    case SQL_SHOW_BACKUP_DEFAULT:
    case SQL_SHOW_BACKUP_SCHEMAS:
        break;
    }
    if (describe_opt_true(&o->as_json)) {
        describe_add(&b, "manifest", PGBR_OID_JSONB);
        return describe_build(&b);
    }
    describe_add(&b, "database_name", PGBR_OID_TEXT);
    if (ids)
        describe_add(&b, "database_id", PGBR_OID_INT8);
    describe_add(&b, "parent_schema_name", PGBR_OID_TEXT);
    if (ids)
        describe_add(&b, "parent_schema_id", PGBR_OID_INT8);
    describe_add(&b, "object_name", PGBR_OID_TEXT);
    if (ids)
        describe_add(&b, "object_id", PGBR_OID_INT8);
    describe_add(&b, "object_type", PGBR_OID_TEXT);
    describe_add(&b, "backup_type", PGBR_OID_TEXT);
    describe_add(&b, "start_time", PGBR_OID_TIMESTAMPTZ);
    describe_add(&b, "end_time", PGBR_OID_TIMESTAMPTZ);
    describe_add(&b, "size_bytes", PGBR_OID_INT8);
    describe_add(&b, "rows", PGBR_OID_INT8);
    describe_add(&b, "is_full_cluster", PGBR_OID_BOOL);
    describe_add(&b, "regions", PGBR_OID_TEXT);
    if (s->what == SQL_SHOW_BACKUP_SCHEMAS)
        describe_add(&b, "create_statement", PGBR_OID_TEXT);
    if (describe_opt_true(&o->privileges)) {
        describe_add(&b, "privileges", PGBR_OID_TEXT);
        describe_add(&b, "owner", PGBR_OID_TEXT);
    }
    if (describe_opt_true(&o->check_files))
        describe_add(&b, "file_bytes", PGBR_OID_INT8);
    return describe_build(&b);
}

/* CREATE SCHEDULE FOR BACKUP and ALTER BACKUP SCHEDULE (7.4, 7.5). */
static result_set *describe_schedule_result(void)
{
    describe_builder b = { 0 };

    describe_add(&b, "schedule_id", PGBR_OID_INT8);
    describe_add(&b, "label", PGBR_OID_TEXT);
    describe_add(&b, "status", PGBR_OID_TEXT);
    describe_add(&b, "first_run", PGBR_OID_TIMESTAMPTZ);
    describe_add(&b, "schedule", PGBR_OID_TEXT);
    describe_add(&b, "backup_stmt", PGBR_OID_TEXT);
    return describe_build(&b);
}

static result_set *describe_show_schedules(const sql_show_schedules *s)
{
    describe_builder b = { 0 };
    bool for_backup = s->for_what != NULL && s->for_what[0] == 'B';

    describe_add(&b, "id", PGBR_OID_INT8);
    describe_add(&b, "label", PGBR_OID_TEXT);
    describe_add(&b, "schedule_status", PGBR_OID_TEXT);
    describe_add(&b, "next_run", PGBR_OID_TIMESTAMPTZ);
    describe_add(&b, "state", PGBR_OID_TEXT);
    describe_add(&b, "recurrence", PGBR_OID_TEXT);
    describe_add(&b, "jobsrunning", PGBR_OID_INT8);
    describe_add(&b, "owner", PGBR_OID_TEXT);
    describe_add(&b, "created", PGBR_OID_TIMESTAMPTZ);
    describe_add(&b, "on_previous_running", PGBR_OID_TEXT);
    describe_add(&b, "on_execution_failure", PGBR_OID_TEXT);
    /* With FOR BACKUP the command is the plain statement, not JSON. */
    describe_add(&b, "command", for_backup ? PGBR_OID_TEXT : PGBR_OID_JSONB);
    if (for_backup)
        describe_add(&b, "backup_type", PGBR_OID_TEXT);
    return describe_build(&b);
}

static result_set *describe_no_rows(void)
{
    result_set *rs = result_set_new(0, NULL, NULL);

    rs->has_rows = false;
    return rs;
}

result_set *exec_describe(const sql_stmt *stmt)
{
    describe_builder b = { 0 };

    switch (stmt->kind) {
    case SQL_SHOW_JOBS:
        return result_set_new(CATALOG_SHOW_JOBS_NCOLS, catalog_show_jobs_names, catalog_show_jobs_types);
    case SQL_BACKUP:
        return describe_job_result(describe_opt_true(&stmt->u.backup.options.detached), false);
    case SQL_RESTORE:
        return describe_job_result(describe_opt_true(&stmt->u.restore.options.detached),
                                   describe_opt_true(&stmt->u.restore.options.experimental_deferred_copy));
    case SQL_SHOW_BACKUPS:
        describe_add(&b, "path", PGBR_OID_TEXT);
        return describe_build(&b);
    case SQL_SHOW_BACKUP:
        return describe_show_backup(&stmt->u.show_backup);
    case SQL_CREATE_SCHEDULE:
    case SQL_ALTER_BACKUP_SCHEDULE:
        return describe_schedule_result();
    case SQL_SHOW_SCHEDULES:
        return describe_show_schedules(&stmt->u.show_schedules);
    case SQL_SHOW_CREATE_SCHEDULE:
        describe_add(&b, "schedule_id", PGBR_OID_INT8);
        describe_add(&b, "create_statement", PGBR_OID_TEXT);
        return describe_build(&b);
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION:
        describe_add(&b, "connection_name", PGBR_OID_TEXT);
        describe_add(&b, "create_statement", PGBR_OID_TEXT);
        return describe_build(&b);
    case SQL_CONTROL_JOBS:
    case SQL_ALTER_BACKUP:
    case SQL_CONTROL_SCHEDULES:
    case SQL_CREATE_EXTERNAL_CONNECTION:
    case SQL_DROP_EXTERNAL_CONNECTION:
        return describe_no_rows();
    }
    return describe_no_rows();
}
