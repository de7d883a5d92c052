/*
 * sql.h - the statements pgbr owns: lexical splitting of query strings, the
 * cheap "is this ours?" check, and the typed parse tree the bison grammar
 * (grammar/gram.y) builds for every statement form of the reference.
 *
 * Pure functions: nothing here touches the network, the database or the
 * configuration, and everything is safe to call from any thread.
 * Memory: a sql_stmt and everything it points to is owned by the caller of
 * sql_parse() and freed with sql_stmt_free().
 */
#ifndef PGBR_SQL_H
#define PGBR_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgbr/error.h"

/* ---------------------------------------------------------------------------
 * Splitting
 * ------------------------------------------------------------------------- */

typedef enum sql_span_kind {
    SQL_SPAN_EMPTY = 0,  /* only whitespace/comments/';' */
    SQL_SPAN_FORWARD,    /* not ours: forwarded byte for byte */
    SQL_SPAN_OURS        /* starts with one of our statements: goes to sql_parse() */
} sql_span_kind;

typedef struct sql_span {
    size_t start;        /* byte offset of the statement's first byte (after leading space/comments) */
    size_t end;          /* byte offset one past its last byte, excluding the terminating ';'
                          * (it is the ';' or the end of the query: trailing space/comments
                          * stay inside, so an "end of input" error points at the ';') */
    sql_span_kind kind;
} sql_span;

/*
 * Split a query string into statements following PostgreSQL's lexical rules
 * (single, double, dollar quotes, E'' and U& strings, nested comments, --
 * comments). Fills *spans (malloc'd, caller frees) and *nspans. Empty
 * statements are reported as SQL_SPAN_EMPTY. Never fails on unterminated
 * quotes/comments: the rest of the string becomes one statement (PostgreSQL
 * reports the error for forwarded text; sql_parse reports it for ours).
 * Every ';'-terminated piece is a span; the piece after the last ';' is one
 * only if it holds a token, or if it is all the query has (an empty or
 * all-comment query gives one SQL_SPAN_EMPTY span). A ';' inside the
 * BEGIN ... END body of CREATE FUNCTION/PROCEDURE does not split (psql's
 * rule); standard_conforming_strings is assumed on. Out of memory gives
 * *spans NULL and *nspans 0.
 */
void sql_split(const char *query, size_t len, sql_span **spans, int *nspans);

/*
 * Cheapest check: could any statement of this query be ours? False means the
 * whole query is certainly forwarded. True means call sql_split(). One pass
 * looking for the words every statement of ours contains (backup, restore,
 * job, schedule, external, pause, resume, cancel) in any case: never false
 * for a query sql_split() would find a SQL_SPAN_OURS in.
 */
bool sql_maybe_ours(const char *query, size_t len);

/* ---------------------------------------------------------------------------
 * The parse tree
 * ------------------------------------------------------------------------- */

/* A string slot: a literal (value set, param 0) or a placeholder $n (param n). */
typedef struct sql_string {
    char *value;        /* decoded literal (quotes removed, escapes applied); NULL for a placeholder */
    int param;          /* 0 for a literal, n for $n */
    int location;       /* byte offset in the parsed text */
} sql_string;

typedef struct sql_string_list {
    int n;
    sql_string *items;
} sql_string_list;

/*
 * An expression or select statement pgbr does not interpret itself
 * (a_expr of SHOW JOB, select_stmt of SHOW JOBS/PAUSE JOBS, AS OF SYSTEM TIME):
 * kept as source text, run on the upstream when needed. When the whole
 * expression is one literal or placeholder, the fields below say so, so the
 * executor can skip the round trip.
 */
typedef struct sql_raw {
    char *text;         /* exact source text of the expression */
    int location;       /* byte offset in the parsed text */
    int param;          /* n when the expression is exactly $n, else 0 */
    bool is_string;     /* expression is exactly one string literal (value in text, decoded) */
    bool is_integer;    /* expression is exactly one (optionally negative) integer literal */
    int max_param;      /* the highest $n inside the text, 0 when none (last: positional
                         * initializers of the fields above stay valid) */
} sql_raw;

typedef struct sql_table_pattern {
    int nparts;         /* 1..3 name parts before an optional .* */
    char *parts[3];     /* identifiers, case-folded as PostgreSQL does unless quoted */
    bool star;          /* ends in .*  (or is the lone *, with nparts = 0) */
    int location;
} sql_table_pattern;

typedef enum sql_target_kind {
    SQL_TARGET_CLUSTER = 0,  /* no targets */
    SQL_TARGET_DATABASES,    /* DATABASE a, b */
    SQL_TARGET_TABLES,       /* TABLE p, ... or bare patterns */
    SQL_TARGET_SYSTEM_USERS  /* RESTORE SYSTEM USERS */
} sql_target_kind;

typedef struct sql_targets {
    sql_target_kind kind;
    int n;
    char **databases;             /* kind == DATABASES */
    sql_table_pattern *tables;    /* kind == TABLES */
} sql_targets;

/* Boolean option: present? value? (bare option = true) */
typedef struct sql_bool_opt {
    bool set;
    bool value;
    sql_raw *expr;      /* non-NULL when given as "= a_expr" other than TRUE/FALSE literals */
} sql_bool_opt;

typedef struct sql_backup_options {
    sql_string *encryption_passphrase;
    sql_bool_opt revision_history;
    sql_bool_opt detached;
    sql_string_list *kms;
    sql_string_list *incremental_location;
    sql_string *execution_locality;
    sql_bool_opt include_all_virtual_clusters;
    sql_bool_opt updates_cluster_monitoring_metrics;
} sql_backup_options;

typedef struct sql_restore_options {
    sql_string *encryption_passphrase;
    sql_string_list *kms;
    sql_string *into_db;
    sql_bool_opt skip_missing_foreign_keys;
    sql_bool_opt skip_missing_sequences;
    sql_bool_opt skip_missing_sequence_owners;
    sql_bool_opt skip_missing_views;
    sql_bool_opt skip_missing_udfs;
    sql_bool_opt detached;
    sql_bool_opt skip_localities_check;
    sql_string *new_db_name;
    sql_string_list *incremental_location;
    sql_bool_opt schema_only;
    sql_bool_opt verify_backup_table_data;
    sql_string *execution_locality;
    sql_bool_opt remove_regions;
    sql_string *virtual_cluster_name;
    sql_string *virtual_cluster;
    sql_bool_opt unsafe_restore_incompatible_version;
    sql_bool_opt experimental_deferred_copy;
} sql_restore_options;

typedef struct sql_show_backup_options {
    sql_bool_opt as_json;
    sql_bool_opt check_files;
    sql_bool_opt debug_ids;
    sql_bool_opt privileges;
    sql_bool_opt skip_size;
    sql_string_list *incremental_location;
    sql_string_list *kms;
    sql_string *encryption_passphrase;
    sql_string *encryption_info_dir;
    sql_bool_opt debug_dump_metadata_sst;
} sql_show_backup_options;

/* Schedule options (WITH SCHEDULE OPTIONS / SET SCHEDULE OPTION): generic k[=v] */
typedef struct sql_kv_option {
    char *name;          /* lower-cased */
    sql_string *value;   /* NULL when given without a value */
    int location;
    sql_raw *expr;       /* value given as an expression (CONCURRENTLY = a_expr); value is NULL then */
} sql_kv_option;

typedef struct sql_kv_list {
    int n;
    sql_kv_option *items;
} sql_kv_list;

typedef enum sql_stmt_kind {
    SQL_BACKUP = 1,
    SQL_RESTORE,
    SQL_SHOW_BACKUPS,            /* SHOW BACKUPS IN list */
    SQL_SHOW_BACKUP,             /* SHOW BACKUP [SCHEMAS|FILES|RANGES|VALIDATE] ... , SHOW BACKUP CONNECTION */
    SQL_SHOW_JOBS,               /* every SHOW [AUTOMATIC|CHANGEFEED] JOB(S) form */
    SQL_CONTROL_JOBS,            /* PAUSE / RESUME / CANCEL JOB(S) forms */
    SQL_ALTER_BACKUP,
    SQL_CREATE_SCHEDULE,         /* CREATE SCHEDULE FOR BACKUP */
    SQL_ALTER_BACKUP_SCHEDULE,
    SQL_SHOW_SCHEDULES,          /* SHOW [RUNNING|PAUSED] SCHEDULES [FOR ...], SHOW SCHEDULE id */
    SQL_SHOW_CREATE_SCHEDULE,    /* SHOW CREATE SCHEDULE id / SHOW CREATE ALL SCHEDULES */
    SQL_CONTROL_SCHEDULES,       /* PAUSE / RESUME / DROP SCHEDULE(S) */
    SQL_CREATE_EXTERNAL_CONNECTION,
    SQL_DROP_EXTERNAL_CONNECTION,
    SQL_SHOW_CREATE_EXTERNAL_CONNECTION  /* SHOW CREATE EXTERNAL CONNECTION name / SHOW CREATE ALL EXTERNAL CONNECTIONS */
} sql_stmt_kind;

/* --- BACKUP ------------------------------------------------------------- */
typedef enum sql_backup_dest_kind {
    SQL_BACKUP_INTO = 1,          /* INTO list: new full backup */
    SQL_BACKUP_INTO_LATEST,       /* INTO LATEST IN list */
    SQL_BACKUP_INTO_SUBDIR,       /* INTO s IN list */
    SQL_BACKUP_TO                 /* deprecated TO list [INCREMENTAL FROM list] */
} sql_backup_dest_kind;

typedef struct sql_backup {
    sql_targets targets;
    sql_backup_dest_kind dest_kind;
    sql_string *subdir;               /* INTO s IN */
    sql_string_list dest;             /* collection URI(s) */
    sql_string_list *incremental_from;/* TO ... INCREMENTAL FROM */
    sql_raw *as_of;                   /* AS OF SYSTEM TIME */
    sql_backup_options options;
} sql_backup;

/* --- RESTORE ------------------------------------------------------------ */
typedef struct sql_restore {
    sql_targets targets;
    bool from_latest;                 /* FROM LATEST IN */
    sql_string *subdir;               /* FROM 's' IN; NULL with from_latest or the deprecated form */
    int nlocalities;                  /* list_of_lists: number of lists in from[] */
    sql_string_list *from;            /* nlocalities lists of URIs, as written: IN ('a', 'b') is one
                                       * list of two locality URIs; FROM 'a', 'b' (deprecated form:
                                       * subdir NULL, !from_latest) is two lists, one per layer */
    bool deprecated_path_form;        /* RESTORE ... FROM list (no IN) */
    sql_raw *as_of;
    sql_restore_options options;
} sql_restore;

/* --- SHOW BACKUP(S) ----------------------------------------------------- */
typedef enum sql_show_backup_what {
    SQL_SHOW_BACKUP_DEFAULT = 0,
    SQL_SHOW_BACKUP_SCHEMAS,
    SQL_SHOW_BACKUP_FILES,
    SQL_SHOW_BACKUP_RANGES,
    SQL_SHOW_BACKUP_VALIDATE,
    SQL_SHOW_BACKUP_CONNECTION
} sql_show_backup_what;

typedef struct sql_show_backup {
    sql_show_backup_what what;
    bool from_latest;
    sql_string *subdir;               /* or the full path (deprecated form), or the CONNECTION uri */
    sql_string_list in;               /* IN list; n = 0 for the deprecated path form / CONNECTION */
    sql_show_backup_options options;
    sql_kv_list connection_options;   /* SHOW BACKUP CONNECTION ... WITH TRANSFER = s, TIME = s, CONCURRENTLY = e */
} sql_show_backup;

typedef struct sql_show_backups {
    sql_string_list in;
} sql_show_backups;

/* --- Jobs --------------------------------------------------------------- */
typedef enum sql_jobs_form {
    SQL_JOBS_ALL = 0,           /* SHOW JOBS, SHOW AUTOMATIC JOBS, SHOW CHANGEFEED JOBS */
    SQL_JOBS_ONE,               /* SHOW JOB e, PAUSE JOB e, ... (expr) */
    SQL_JOBS_SELECT,            /* SHOW JOBS <select>, PAUSE JOBS <select> (select) */
    SQL_JOBS_FOR_SCHEDULE,      /* ... JOBS FOR SCHEDULE e (expr) */
    SQL_JOBS_FOR_SCHEDULES,     /* ... JOBS FOR SCHEDULES <select> (select) */
    SQL_JOBS_ALL_OF_TYPE        /* PAUSE ALL BACKUP JOBS (job_type) */
} sql_jobs_form;

typedef struct sql_show_jobs {
    sql_jobs_form form;
    bool automatic;             /* SHOW AUTOMATIC JOBS */
    bool changefeed;            /* SHOW CHANGEFEED JOB(S) */
    bool when_complete;         /* SHOW JOB(S) WHEN COMPLETE */
    bool execution_details;     /* WITH EXECUTION DETAILS */
    sql_raw *expr;              /* form ONE / FOR_SCHEDULE */
    sql_raw *select;            /* form SELECT / FOR_SCHEDULES */
} sql_show_jobs;

typedef enum sql_job_action { SQL_JOB_PAUSE = 1, SQL_JOB_RESUME, SQL_JOB_CANCEL } sql_job_action;

typedef struct sql_control_jobs {
    sql_job_action action;
    sql_jobs_form form;         /* ONE, SELECT, FOR_SCHEDULE, FOR_SCHEDULES, ALL_OF_TYPE */
    sql_raw *expr;
    sql_raw *select;
    char *job_type;             /* ALL_OF_TYPE: "BACKUP", "RESTORE", "CHANGEFEED", "IMPORT" */
    sql_string *reason;         /* PAUSE ... WITH REASON = s */
} sql_control_jobs;

/* --- ALTER BACKUP ------------------------------------------------------- */
typedef struct sql_alter_backup_cmd {
    sql_string_list new_kms;
    sql_string_list old_kms;
} sql_alter_backup_cmd;

typedef struct sql_alter_backup {
    bool latest;
    sql_string *subdir;          /* or the full path when in.n == 0 */
    sql_string_list in;
    int ncmds;
    sql_alter_backup_cmd *cmds;
} sql_alter_backup;

/* --- Schedules ---------------------------------------------------------- */
typedef struct sql_create_schedule {
    bool if_not_exists;
    sql_string *label;            /* NULL when omitted */
    sql_targets targets;
    sql_string_list into;
    sql_backup_options options;
    bool recurring_never;
    sql_string *recurring;        /* cron; NULL with recurring_never */
    bool full_backup_set;         /* FULL BACKUP clause given */
    bool full_backup_always;
    sql_string *full_backup;      /* cron */
    sql_kv_list schedule_options;
} sql_create_schedule;

typedef enum sql_alter_schedule_cmd_kind {
    SQL_ALTER_SCHED_SET_LABEL = 1,
    SQL_ALTER_SCHED_SET_INTO,
    SQL_ALTER_SCHED_SET_WITH,
    SQL_ALTER_SCHED_SET_RECURRING,
    SQL_ALTER_SCHED_SET_FULL_BACKUP,
    SQL_ALTER_SCHED_SET_SCHEDULE_OPTION,
    SQL_ALTER_SCHED_EXECUTE_IMMEDIATELY,
    SQL_ALTER_SCHED_EXECUTE_FULL_IMMEDIATELY
} sql_alter_schedule_cmd_kind;

typedef struct sql_alter_schedule_cmd {
    sql_alter_schedule_cmd_kind kind;
    sql_string *label;            /* SET LABEL */
    sql_string_list into;         /* SET INTO */
    sql_backup_options with;      /* SET WITH (exactly one option set) */
    bool never;                   /* SET RECURRING NEVER */
    bool always;                  /* SET FULL BACKUP ALWAYS */
    sql_string *cron;             /* SET RECURRING / SET FULL BACKUP */
    sql_kv_option option;         /* SET SCHEDULE OPTION */
    int location;
} sql_alter_schedule_cmd;

typedef struct sql_alter_backup_schedule {
    sql_raw *schedule_id;
    int ncmds;
    sql_alter_schedule_cmd *cmds;
} sql_alter_backup_schedule;

typedef enum sql_schedules_filter { SQL_SCHED_ANY = 0, SQL_SCHED_RUNNING, SQL_SCHED_PAUSED } sql_schedules_filter;

typedef struct sql_show_schedules {
    sql_schedules_filter filter;
    char *for_what;               /* NULL, "BACKUP", "SQL STATISTICS", "CHANGEFEED" */
    sql_raw *schedule_id;         /* SHOW SCHEDULE id; NULL for SHOW SCHEDULES */
} sql_show_schedules;

typedef struct sql_show_create_schedule {
    bool all;                     /* SHOW CREATE ALL SCHEDULES */
    sql_raw *schedule_id;
} sql_show_create_schedule;

typedef enum sql_schedule_action { SQL_SCHED_PAUSE = 1, SQL_SCHED_RESUME, SQL_SCHED_DROP } sql_schedule_action;

typedef struct sql_control_schedules {
    sql_schedule_action action;
    sql_raw *schedule_id;         /* single form */
    sql_raw *select;              /* SCHEDULES <select> form */
} sql_control_schedules;

/* --- External connections ----------------------------------------------- */
typedef struct sql_external_connection {
    bool if_not_exists;
    bool all;                     /* SHOW CREATE ALL EXTERNAL CONNECTIONS */
    sql_string *name;             /* string, placeholder or bare name */
    sql_string *uri;              /* CREATE ... AS 'uri' */
} sql_external_connection;

typedef struct sql_stmt {
    sql_stmt_kind kind;
    int nparams;                  /* highest $n used, 0 when none */
    union {
        sql_backup backup;
        sql_restore restore;
        sql_show_backups show_backups;
        sql_show_backup show_backup;
        sql_show_jobs show_jobs;
        sql_control_jobs control_jobs;
        sql_alter_backup alter_backup;
        sql_create_schedule create_schedule;
        sql_alter_backup_schedule alter_backup_schedule;
        sql_show_schedules show_schedules;
        sql_show_create_schedule show_create_schedule;
        sql_control_schedules control_schedules;
        sql_external_connection external_connection;
    } u;
} sql_stmt;

/*
 * Parse one statement (text without its trailing ';'). On a syntax error
 * returns NULL and sets err: SQLSTATE 42601, message as PostgreSQL words it
 * ("syntax error at or near \"X\"" / "syntax error at end of input"), and
 * err->position = 1-based character (not byte) position within `text` plus
 * position_base (so the caller can report positions relative to the whole
 * query string). Repeated options: 42601 "<option> option specified multiple
 * times"; unknown options are syntax errors at the option's position.
 * The text ends at len or at a NUL byte, whichever comes first. Out of
 * memory: NULL with SQLSTATE 53200. Thread-safe (no global state).
 */
sql_stmt *sql_parse(const char *text, size_t len, int position_base, pgbr_error *err);

/*
 * Free a tree. Every pointer in it (strings, lists, raws, option values) is
 * a separate malloc'd block, so a caller may replace one (free the old,
 * malloc the new), e.g. to put a bound parameter value into a placeholder.
 */
void sql_stmt_free(sql_stmt *stmt);

/* Deep copy of a tree (e.g. to bind parameters per execution). NULL when out of memory. */
sql_stmt *sql_stmt_copy(const sql_stmt *stmt);

/*
 * The statement's name as users see it in messages and command tags:
 * "BACKUP", "RESTORE", "SHOW BACKUPS", "SHOW BACKUP", "SHOW JOBS", "PAUSE JOBS",
 * "RESUME JOBS", "CANCEL JOBS", "ALTER BACKUP", "CREATE SCHEDULE FOR BACKUP",
 * "ALTER BACKUP SCHEDULE", "SHOW SCHEDULES", "SHOW CREATE SCHEDULE",
 * "PAUSE SCHEDULES", "RESUME SCHEDULES", "DROP SCHEDULES",
 * "CREATE EXTERNAL CONNECTION", "DROP EXTERNAL CONNECTION",
 * "SHOW CREATE EXTERNAL CONNECTION". Static string.
 */
const char *sql_stmt_name(const sql_stmt *stmt);

/*
 * Canonical text of the statement (keywords upper-case, names quoted when
 * needed, options in a fixed order, placeholders printed as $n). With
 * redact, secrets become 'redacted': encryption_passphrase values and the URL
 * query parameters AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, CREDENTIALS,
 * BEARER_TOKEN, AZURE_ACCOUNT_KEY, AZURE_CLIENT_SECRET (also inside KMS URIs).
 * Returns malloc'd text (NULL when out of memory).
 */
char *sql_stmt_deparse(const sql_stmt *stmt, bool redact);

/*
 * Redact secret query parameters of one URI (see sql_stmt_deparse).
 * Returns malloc'd text (NULL when out of memory).
 */
char *sql_redact_uri(const char *uri);

/*
 * A stable, exhaustive dump of the tree for unit tests and debugging, e.g.
 * "(BACKUP targets=(DATABASES a b) dest=INTO (uri 'x') options=(detached))".
 * Returns malloc'd text (NULL when out of memory).
 */
char *sql_stmt_dump(const sql_stmt *stmt);

#endif
