%{
/*
 * gram.y - bison grammar for the statements pgbr executes itself: BACKUP,
 * RESTORE, SHOW BACKUP(S), the job statements, ALTER BACKUP, the backup
 * schedule statements and the external connection statements (the forms of
 * shared/spec/reference.md, listed in docs/statements.md).
 *
 * The grammar only builds a tree (include/pgbr/sql.h) in the per-parse arena
 * of its sql_parse_state; sql_parse() (src/sql/parse.c) copies the finished
 * tree out of the arena. Expressions and SELECT statements pgbr does not
 * interpret are captured as source text ("raw"): a run of tokens with
 * balanced parentheses that stops at the keywords that may follow it.
 *
 * Conventions as PostgreSQL's parser: pure parser, reentrant scanner,
 * byte-offset locations, %expect 0, keywords listed once
 * (grammar/keywords.h; here only their tokens and categories).
 */
#include <stddef.h>

/* A rule's location spans its first to its last symbol; empty rules sit at
 * the end of what precedes them. */
#define YYLLOC_DEFAULT(Current, Rhs, N)                 \
    do {                                                \
        if ((N) > 0) {                                  \
            (Current).start = YYRHSLOC(Rhs, 1).start;   \
            (Current).end = YYRHSLOC(Rhs, N).end;       \
        } else {                                        \
            (Current).start = YYRHSLOC(Rhs, 0).end;     \
            (Current).end = YYRHSLOC(Rhs, 0).end;       \
        }                                               \
    } while (0)
%}

%code requires {
#include <stdbool.h>
#include <stddef.h>

#include "pgbr/sql.h"

/* Byte offsets [start, end) of a grammar symbol in the statement text. */
typedef struct sql_location {
    int start;
    int end;
} sql_location;

typedef struct sql_parse_state sql_parse_state;

/* One token of a captured expression, as far as sql_raw's flags care. */
typedef struct sql_token {
    int kind;               /* token code; '(' for a parenthesised group */
    const char *value;      /* SCONST value, ICONST text */
    int param;              /* PARAM number */
} sql_token;

/* The shape of a captured expression: its first two top-level tokens. */
typedef struct sql_soup {
    int ntokens;
    sql_token tok[2];
    sql_location loc[2];
} sql_soup;

/* A list of URI lists (RESTORE's list_of_lists). */
typedef struct sql_string_lists {
    int n;
    sql_string_list *items;
} sql_string_lists;

/* Which backup a statement names: LATEST IN list, 's' IN list, or a path. */
typedef struct sql_backup_ref {
    bool latest;
    sql_string *subdir;         /* subdirectory, or the path when in == NULL */
    sql_string_list *in;
    sql_string_lists *from;     /* RESTORE: IN / FROM list_of_lists */
} sql_backup_ref;

/* Option descriptors: how a struct of options maps names to fields. */
typedef enum sql_opt_type {
    SQL_OPT_STRING = 1,         /* sql_string * */
    SQL_OPT_LIST,               /* sql_string_list * */
    SQL_OPT_BOOL,               /* sql_bool_opt, "name [= value]" */
    SQL_OPT_FLAG                /* sql_bool_opt, bare name only */
} sql_opt_type;

typedef struct sql_opt_desc {
    const char *name;           /* as in messages and deparse, lower-case */
    sql_opt_type type;
    size_t offset;
    bool secret;                /* value redacted */
    bool uri;                   /* value(s) are URIs: query secrets redacted */
} sql_opt_desc;

typedef struct sql_opt_table {
    const sql_opt_desc *opts;
    int n;
    size_t size;
} sql_opt_table;
}

%code provides {
/* One $n token the scanner saw: sql_make_raw finds the highest $n inside
 * an expression's text. */
struct sql_param_tok {
    int offset;
    int n;
    struct sql_param_tok *next;
};

/* Parser and scanner state of one sql_parse() call. */
struct sql_parse_state {
    void *scanner;              /* flex scanner (yyscan_t) */
    char *scanbuf;              /* copy of the text, two NULs appended */
    int len;
    struct sql_arena *arena;    /* everything the parse allocates */
    sql_stmt *result;           /* tree in the arena, set on success */
    int max_param;              /* highest $n seen */
    struct sql_param_tok *param_toks; /* every $n token, newest first (in the arena) */

    /* first error: later ones are ignored */
    bool failed;
    char sqlstate[6];
    char *message;              /* in the arena */
    char *hint;                 /* in the arena, or NULL */
    int error_location;         /* byte offset, -1 for none */

    /* scanner: literal being accumulated */
    char *literal;
    int literal_len;
    int literal_cap;
    int literal_start;
    int comment_depth;
    char *dolq_start;           /* $tag$ of the dollar quote being read */
    int state_before_stop;      /* scanner state to resume on quote continuation */
    unsigned int utf16_first;   /* first half of a surrogate pair in E'' */

    /* lexer wrapper: one token of lookahead */
    bool have_lookahead;
    int lookahead_token;
    PGBR_YYSTYPE lookahead_value;
    sql_location lookahead_location;
};

/* The token stream the parser reads (src/sql/parse.c). */
int pgbr_yylex(PGBR_YYSTYPE *lvalp, sql_location *llocp, sql_parse_state *ps);
void pgbr_yyerror(sql_location *llocp, sql_parse_state *ps, const char *message);
int pgbr_yyparse(sql_parse_state *ps);

/* Keyword lookup (src/sql/keywords.c): token for a lower-case word, or -1;
 * *name is the keyword's own static spelling. */
typedef enum sql_keyword_category { UNRESERVED_KEYWORD = 1, RESERVED_KEYWORD } sql_keyword_category;
int sql_keyword_lookup(const char *word, size_t len, const char **name, sql_keyword_category *category);

/* Errors (src/sql/build.c): record the first error at a byte offset. */
void sql_parse_error(sql_parse_state *ps, int location, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Tree building in the parse arena (src/sql/build.c). */
void *sql_palloc(sql_parse_state *ps, size_t size);
char *sql_pstrdup(sql_parse_state *ps, const char *s);
char *sql_pstrndup(sql_parse_state *ps, const char *s, size_t n);
sql_stmt *sql_new_stmt(sql_parse_state *ps, sql_stmt_kind kind);
sql_string *sql_new_string(sql_parse_state *ps, const char *value, int param, sql_location loc);
sql_string_list *sql_list_append(sql_parse_state *ps, sql_string_list *list, sql_string *item);
sql_string_lists *sql_lists_append(sql_parse_state *ps, sql_string_lists *lists, sql_string_list *item);
sql_soup sql_soup_add(sql_soup soup, sql_token tok, sql_location loc);
sql_raw *sql_make_raw(sql_parse_state *ps, const sql_soup *soup, sql_location loc);
sql_bool_opt sql_make_bool(sql_parse_state *ps, const sql_soup *soup, sql_location loc);
sql_table_pattern *sql_make_pattern(sql_parse_state *ps, const char *p1, const char *p2,
                                    const char *p3, bool star, sql_location loc);
sql_targets *sql_targets_add_table(sql_parse_state *ps, sql_targets *targets, sql_table_pattern *p);
sql_targets *sql_targets_add_database(sql_parse_state *ps, sql_targets *targets, const char *name);
sql_kv_list *sql_kv_append(sql_parse_state *ps, sql_kv_list *list, sql_kv_option *kv);
sql_kv_option *sql_make_kv(sql_parse_state *ps, const char *name, sql_string *value, sql_raw *expr,
                           sql_location loc);
void sql_opts_merge(sql_parse_state *ps, const sql_opt_table *table, void *dst, const void *src,
                    sql_location loc);
void *sql_opts_new(sql_parse_state *ps, const sql_opt_table *table);
void sql_alter_backup_add(sql_parse_state *ps, sql_alter_backup *ab, sql_string_list *new_kms,
                          sql_string_list *old_kms);
void sql_alter_schedule_add(sql_parse_state *ps, sql_alter_backup_schedule *as, sql_alter_schedule_cmd *cmd);

/* Statement constructors for the grammar's actions (src/sql/build.c). */
sql_stmt *sql_make_restore(sql_parse_state *ps, sql_targets *targets, sql_target_kind kind,
                           sql_backup_ref *from, sql_raw *as_of, sql_restore_options *options);
sql_stmt *sql_make_show_backup(sql_parse_state *ps, sql_show_backup_what what, sql_backup_ref *ref,
                               sql_show_backup_options *options);
/* flags of sql_make_show_jobs */
#define SQL_JOBS_AUTOMATIC          0x01
#define SQL_JOBS_CHANGEFEED         0x02
#define SQL_JOBS_WHEN_COMPLETE      0x04
#define SQL_JOBS_EXECUTION_DETAILS  0x08
sql_stmt *sql_make_show_jobs(sql_parse_state *ps, sql_jobs_form form, int flags, sql_raw *expr,
                             sql_raw *select);
sql_stmt *sql_make_control_jobs(sql_parse_state *ps, int action, sql_jobs_form form, sql_raw *expr,
                                sql_raw *select, const char *job_type, sql_string *reason);
sql_stmt *sql_make_backup(sql_parse_state *ps, sql_targets *targets, sql_backup *dest, sql_raw *as_of,
                          sql_string_list *incremental_from, sql_backup_options *options);
sql_backup *sql_make_dest(sql_parse_state *ps, sql_backup_dest_kind kind, sql_string *subdir,
                          sql_string_list *dest);
sql_stmt *sql_make_external(sql_parse_state *ps, sql_stmt_kind kind, bool if_not_exists, bool all,
                            sql_string *name, sql_string *uri);
sql_stmt *sql_make_show_schedules(sql_parse_state *ps, sql_schedules_filter filter, const char *for_what);
sql_stmt *sql_make_control_schedules(sql_parse_state *ps, int action, sql_raw *id, sql_raw *select);
sql_backup_ref *sql_make_ref(sql_parse_state *ps, bool latest, sql_string *subdir, sql_string_list *in,
                             sql_string_lists *from);
sql_alter_schedule_cmd *sql_make_schedule_cmd(sql_parse_state *ps, sql_alter_schedule_cmd_kind kind,
                                              sql_location loc);
sql_stmt *sql_make_show_connection(sql_parse_state *ps, sql_string *uri, sql_kv_list *options);
sql_stmt *sql_make_alter_backup(sql_parse_state *ps, sql_alter_backup *target, sql_alter_backup *cmds);
sql_stmt *sql_make_create_schedule(sql_parse_state *ps, sql_create_schedule *label, sql_targets *targets,
                                   sql_string_list *into, sql_backup_options *options,
                                   sql_create_schedule *cron, sql_create_schedule *full,
                                   sql_kv_list *schedule_options);
sql_token sql_make_token(int kind, const char *value);
sql_bool_opt sql_make_flag(bool value);

extern const sql_opt_table sql_backup_opt_table;
extern const sql_opt_table sql_restore_opt_table;
extern const sql_opt_table sql_show_backup_opt_table;
}

%code {
/*
 * Each option rule returns a struct of options with just that option set;
 * the list rules merge them (sql_opts_merge reports repeats).
 */
#define BACKUP_OPT()    ((sql_backup_options *) sql_opts_new(ps, &sql_backup_opt_table))
#define RESTORE_OPT()   ((sql_restore_options *) sql_opts_new(ps, &sql_restore_opt_table))
#define SHOW_OPT()      ((sql_show_backup_options *) sql_opts_new(ps, &sql_show_backup_opt_table))
#define tok(kind, value) sql_make_token((kind), (value))
}

%define api.pure full
%define api.prefix {pgbr_yy}
%define api.location.type {sql_location}
%locations
%param {sql_parse_state *ps}
%expect 0

%union {
    const char *keyword;
    char *str;
    int ival;
    bool boolean;
    sql_token token;
    sql_soup soup;
    sql_string *string;
    sql_string_list *list;
    sql_string_lists *lists;
    sql_raw *raw;
    sql_bool_opt boolopt;
    sql_table_pattern *pattern;
    sql_targets *targets;
    sql_backup_ref *ref;
    sql_backup_options *bopts;
    sql_restore_options *ropts;
    sql_show_backup_options *sopts;
    sql_kv_option *kv;
    sql_kv_list *kvlist;
    sql_backup *backup;
    sql_alter_backup *alter_backup;
    sql_alter_schedule_cmd *sched_cmd;
    sql_alter_backup_schedule *alter_sched;
    sql_create_schedule *create_sched;
    sql_stmt *stmt;
}

%token <str>    IDENT UIDENT SCONST USCONST BITCONST ICONST FCONST Op
%token <ival>   PARAM
%token          WITH_LA LEX_ERROR

/* Keywords, in grammar/keywords.h order. */
%token <keyword> ADD ALL ALTER ALWAYS AS AS_JSON AUTOMATIC BACKUP BACKUPS CANCEL
    CHANGEFEED CHECK_FILES COMPLETE CONCURRENTLY CONNECTION CONNECTIONS COPY CREATE
    DATABASE DEBUG_DUMP_METADATA_SST DEBUG_IDS DEFERRED DETACHED DETAILS DROP
    ENCRYPTION_INFO_DIR ENCRYPTION_PASSPHRASE EXECUTE EXECUTION EXISTS EXPERIMENTAL
    EXTERNAL FALSE_P FILES FOR FROM FULL IF_P IMMEDIATELY IMPORT IN_P
    INCLUDE_ALL_SECONDARY_TENANTS INCLUDE_ALL_VIRTUAL_CLUSTERS INCREMENTAL
    INCREMENTAL_LOCATION INTO INTO_DB JOB JOBS KMS LABEL LATEST LOCALITY NEVER
    NEW_DB_NAME NEW_KMS NOT OF OLD_KMS OPTION OPTIONS PAUSE PAUSED PRIVILEGES RANGES
    REASON RECURRING RECURSIVE REMOVE_REGIONS RESTORE RESUME REVISION_HISTORY RUNNING
    SCHEDULE SCHEDULES SCHEMA_ONLY SCHEMAS SELECT SET SHOW SIZE SKIP
    SKIP_LOCALITIES_CHECK SKIP_MISSING_FOREIGN_KEYS SKIP_MISSING_SEQUENCE_OWNERS
    SKIP_MISSING_SEQUENCES SKIP_MISSING_UDFS SKIP_MISSING_VIEWS SQL_P STATISTICS
    SYSTEM_P TABLE TIME TO TRANSFER TRUE_P UNSAFE_RESTORE_INCOMPATIBLE_VERSION
    UPDATES_CLUSTER_MONITORING_METRICS USERS VALIDATE VALUES VERIFY_BACKUP_TABLE_DATA
    VIRTUAL_CLUSTER VIRTUAL_CLUSTER_NAME WHEN WITH

%type <stmt>    stmt backup_stmt restore_stmt show_backups_stmt show_backup_stmt
                show_jobs_stmt control_jobs_stmt alter_backup_stmt create_schedule_stmt
                alter_backup_schedule_stmt show_schedules_stmt show_create_stmt
                control_schedules_stmt external_connection_stmt
%type <str>     name attr_name kv_name
%type <keyword> unreserved_keyword plain_unreserved_keyword stop_keyword
                reserved_keyword expr_reserved_keyword
%type <string>  sconst_or_param string_or_param string_nolatest
%type <list>    string_list_opt string_list
%type <lists>   list_of_lists list_seq nested_lists
%type <raw>     a_expr opt_as_of select_stmt
%type <boolopt> opt_bool_value
%type <soup>    expr_soup
%type <token>   expr_first expr_elem
%type <pattern> table_pattern
%type <targets> opt_backup_targets backup_targets table_pattern_list name_list
%type <backup>  backup_into
%type <ref>     restore_from show_backup_ref
%type <list>    opt_incremental_from
%type <bopts>   opt_with_backup_options backup_option_list backup_option
%type <ropts>   opt_with_restore_options restore_option_list restore_option
%type <sopts>   opt_with_show_backup_options show_backup_option_list show_backup_option
%type <kv>      kv_option connection_option
%type <kvlist>  kv_option_list connection_option_list opt_with_connection_options
                opt_with_schedule_options
%type <ival>    show_backup_details job_action schedule_action
%type <keyword> job_type
%type <keyword> opt_schedules_for
%type <string>  opt_with_reason
%type <alter_backup> alter_backup_target alter_backup_cmds
%type <sched_cmd> schedule_cmd
%type <alter_sched> schedule_cmds
%type <create_sched> schedule_label cron_clause opt_full_backup_clause

%%

parse_toplevel:
    stmt opt_semi                   { ps->result = $1; }
    ;

opt_semi:
    %empty
  | ';'
    ;

stmt:
    backup_stmt
  | restore_stmt
  | show_backups_stmt
  | show_backup_stmt
  | show_jobs_stmt
  | control_jobs_stmt
  | alter_backup_stmt
  | create_schedule_stmt
  | alter_backup_schedule_stmt
  | show_schedules_stmt
  | show_create_stmt
  | control_schedules_stmt
  | external_connection_stmt
    ;

/* ---- BACKUP ------------------------------------------------------------ */

backup_stmt:
    BACKUP opt_backup_targets INTO backup_into opt_as_of opt_with_backup_options
        { $$ = sql_make_backup(ps, $2, $4, $5, NULL, $6); }
  | BACKUP opt_backup_targets TO string_list_opt opt_as_of opt_incremental_from
    opt_with_backup_options
        { $$ = sql_make_backup(ps, $2, sql_make_dest(ps, SQL_BACKUP_TO, NULL, $4), $5, $6, $7); }
    ;

backup_into:
    sconst_or_param IN_P string_list_opt { $$ = sql_make_dest(ps, SQL_BACKUP_INTO_SUBDIR, $1, $3); }
  | LATEST IN_P string_list_opt     { $$ = sql_make_dest(ps, SQL_BACKUP_INTO_LATEST, NULL, $3); }
  | string_list_opt                 { $$ = sql_make_dest(ps, SQL_BACKUP_INTO, NULL, $1); }
    ;

/* the earlier backups of the chain: 'a', 'b' or ('a', 'b') */
opt_incremental_from:
    %empty                          { $$ = NULL; }
  | INCREMENTAL FROM string_list    { $$ = $3; }
  | INCREMENTAL FROM '(' string_list ')' { $$ = $4; }
    ;

opt_backup_targets:
    %empty                          { $$ = sql_palloc(ps, sizeof(sql_targets)); }
  | backup_targets                  { $$ = $1; }
    ;

backup_targets:
    table_pattern_list              { $$ = $1; }
  | TABLE table_pattern_list        { $$ = $2; }
  | DATABASE name_list              { $$ = $2; }
    ;

table_pattern_list:
    table_pattern                   { $$ = sql_targets_add_table(ps, NULL, $1); }
  | table_pattern_list ',' table_pattern { $$ = sql_targets_add_table(ps, $1, $3); }
    ;

name_list:
    name                            { $$ = sql_targets_add_database(ps, NULL, $1); }
  | name_list ',' name              { $$ = sql_targets_add_database(ps, $1, $3); }
    ;

table_pattern:
    name                            { $$ = sql_make_pattern(ps, $1, NULL, NULL, false, @$); }
  | name '.' attr_name              { $$ = sql_make_pattern(ps, $1, $3, NULL, false, @$); }
  | name '.' attr_name '.' attr_name { $$ = sql_make_pattern(ps, $1, $3, $5, false, @$); }
  | name '.' '*'                    { $$ = sql_make_pattern(ps, $1, NULL, NULL, true, @$); }
  | name '.' attr_name '.' '*'      { $$ = sql_make_pattern(ps, $1, $3, NULL, true, @$); }
  | '*'                             { $$ = sql_make_pattern(ps, NULL, NULL, NULL, true, @$); }
    ;

opt_as_of:
    %empty                          { $$ = NULL; }
  | AS OF SYSTEM_P TIME a_expr      { $$ = $5; }
    ;

opt_with_backup_options:
    %empty                          { $$ = NULL; }
  | WITH backup_option_list         { $$ = $2; }
  | WITH OPTIONS '(' backup_option_list ')' { $$ = $4; }
    ;

backup_option_list:
    backup_option                   { $$ = $1; }
  | backup_option_list ',' backup_option { sql_opts_merge(ps, &sql_backup_opt_table, $1, $3, @3); $$ = $1; }
    ;

backup_option:
    ENCRYPTION_PASSPHRASE '=' string_or_param { $$ = BACKUP_OPT(); $$->encryption_passphrase = $3; }
  | REVISION_HISTORY opt_bool_value { $$ = BACKUP_OPT(); $$->revision_history = $2; }
  | DETACHED                        { $$ = BACKUP_OPT(); $$->detached = sql_make_flag(true); }
  | DETACHED '=' TRUE_P             { $$ = BACKUP_OPT(); $$->detached = sql_make_flag(true); }
  | DETACHED '=' FALSE_P            { $$ = BACKUP_OPT(); $$->detached = sql_make_flag(false); }
  | KMS '=' string_list_opt         { $$ = BACKUP_OPT(); $$->kms = $3; }
  | INCREMENTAL_LOCATION '=' string_list_opt { $$ = BACKUP_OPT(); $$->incremental_location = $3; }
  | EXECUTION LOCALITY '=' string_or_param { $$ = BACKUP_OPT(); $$->execution_locality = $4; }
  | INCLUDE_ALL_VIRTUAL_CLUSTERS opt_bool_value { $$ = BACKUP_OPT(); $$->include_all_virtual_clusters = $2; }
  | INCLUDE_ALL_SECONDARY_TENANTS opt_bool_value { $$ = BACKUP_OPT(); $$->include_all_virtual_clusters = $2; }
  | UPDATES_CLUSTER_MONITORING_METRICS opt_bool_value
        { $$ = BACKUP_OPT(); $$->updates_cluster_monitoring_metrics = $2; }
    ;

/* Value of a boolean option: bare = true; TRUE/FALSE literals fold into the
 * value, any other expression is kept as raw text. */
opt_bool_value:
    %empty                          { $$ = sql_make_flag(true); }
  | '=' expr_soup                   { $$ = sql_make_bool(ps, &$2, @2); }
    ;

/* ---- RESTORE ----------------------------------------------------------- */

restore_stmt:
    RESTORE restore_from opt_as_of opt_with_restore_options
        { $$ = sql_make_restore(ps, NULL, SQL_TARGET_CLUSTER, $2, $3, $4); }
  | RESTORE backup_targets restore_from opt_as_of opt_with_restore_options
        { $$ = sql_make_restore(ps, $2, SQL_TARGET_TABLES, $3, $4, $5); }
  | RESTORE SYSTEM_P USERS restore_from opt_as_of opt_with_restore_options
        { $$ = sql_make_restore(ps, NULL, SQL_TARGET_SYSTEM_USERS, $4, $5, $6); }
    ;

restore_from:
    FROM LATEST IN_P list_of_lists  { $$ = sql_make_ref(ps, true, NULL, NULL, $4); }
  | FROM string_nolatest IN_P list_of_lists { $$ = sql_make_ref(ps, false, $2, NULL, $4); }
  | FROM list_of_lists              { $$ = sql_make_ref(ps, false, NULL, NULL, $2); }
    ;

/* list [, list ...] or ( (list), list ... ) */
list_of_lists:
    list_seq                        { $$ = $1; }
  | '(' nested_lists ')'            { $$ = $2; }
    ;

list_seq:
    string_list_opt                 { $$ = sql_lists_append(ps, NULL, $1); }
  | list_seq ',' string_list_opt    { $$ = sql_lists_append(ps, $1, $3); }
    ;

nested_lists:
    '(' string_list ')'             { $$ = sql_lists_append(ps, NULL, $2); }
  | nested_lists ',' string_list_opt { $$ = sql_lists_append(ps, $1, $3); }
    ;

opt_with_restore_options:
    %empty                          { $$ = NULL; }
  | WITH restore_option_list        { $$ = $2; }
  | WITH OPTIONS '(' restore_option_list ')' { $$ = $4; }
    ;

restore_option_list:
    restore_option                  { $$ = $1; }
  | restore_option_list ',' restore_option
        { sql_opts_merge(ps, &sql_restore_opt_table, $1, $3, @3); $$ = $1; }
    ;

restore_option:
    ENCRYPTION_PASSPHRASE '=' string_or_param { $$ = RESTORE_OPT(); $$->encryption_passphrase = $3; }
  | KMS '=' string_list_opt         { $$ = RESTORE_OPT(); $$->kms = $3; }
  | INTO_DB '=' string_or_param     { $$ = RESTORE_OPT(); $$->into_db = $3; }
  | SKIP_MISSING_FOREIGN_KEYS
        { $$ = RESTORE_OPT(); $$->skip_missing_foreign_keys = sql_make_flag(true); }
  | SKIP_MISSING_SEQUENCES          { $$ = RESTORE_OPT(); $$->skip_missing_sequences = sql_make_flag(true); }
  | SKIP_MISSING_SEQUENCE_OWNERS
        { $$ = RESTORE_OPT(); $$->skip_missing_sequence_owners = sql_make_flag(true); }
  | SKIP_MISSING_VIEWS              { $$ = RESTORE_OPT(); $$->skip_missing_views = sql_make_flag(true); }
  | SKIP_MISSING_UDFS               { $$ = RESTORE_OPT(); $$->skip_missing_udfs = sql_make_flag(true); }
  | DETACHED                        { $$ = RESTORE_OPT(); $$->detached = sql_make_flag(true); }
  | DETACHED '=' TRUE_P             { $$ = RESTORE_OPT(); $$->detached = sql_make_flag(true); }
  | DETACHED '=' FALSE_P            { $$ = RESTORE_OPT(); $$->detached = sql_make_flag(false); }
  | SKIP_LOCALITIES_CHECK           { $$ = RESTORE_OPT(); $$->skip_localities_check = sql_make_flag(true); }
  | NEW_DB_NAME '=' string_or_param { $$ = RESTORE_OPT(); $$->new_db_name = $3; }
  | INCREMENTAL_LOCATION '=' string_list_opt { $$ = RESTORE_OPT(); $$->incremental_location = $3; }
  | SCHEMA_ONLY                     { $$ = RESTORE_OPT(); $$->schema_only = sql_make_flag(true); }
  | VERIFY_BACKUP_TABLE_DATA
        { $$ = RESTORE_OPT(); $$->verify_backup_table_data = sql_make_flag(true); }
  | EXECUTION LOCALITY '=' string_or_param { $$ = RESTORE_OPT(); $$->execution_locality = $4; }
  | REMOVE_REGIONS                  { $$ = RESTORE_OPT(); $$->remove_regions = sql_make_flag(true); }
  | VIRTUAL_CLUSTER_NAME '=' string_or_param { $$ = RESTORE_OPT(); $$->virtual_cluster_name = $3; }
  | VIRTUAL_CLUSTER '=' string_or_param { $$ = RESTORE_OPT(); $$->virtual_cluster = $3; }
  | UNSAFE_RESTORE_INCOMPATIBLE_VERSION
        { $$ = RESTORE_OPT(); $$->unsafe_restore_incompatible_version = sql_make_flag(true); }
  | EXPERIMENTAL DEFERRED COPY
        { $$ = RESTORE_OPT(); $$->experimental_deferred_copy = sql_make_flag(true); }
    ;

/* ---- SHOW BACKUP(S) ---------------------------------------------------- */

show_backups_stmt:
    SHOW BACKUPS IN_P string_list_opt
        { $$ = sql_new_stmt(ps, SQL_SHOW_BACKUPS); $$->u.show_backups.in = *$4; }
    ;

show_backup_stmt:
    SHOW BACKUP show_backup_ref opt_with_show_backup_options
        { $$ = sql_make_show_backup(ps, SQL_SHOW_BACKUP_DEFAULT, $3, $4); }
  | SHOW BACKUP show_backup_details show_backup_ref opt_with_show_backup_options
        { $$ = sql_make_show_backup(ps, (sql_show_backup_what) $3, $4, $5); }
  | SHOW BACKUP CONNECTION string_or_param opt_with_connection_options
        { $$ = sql_make_show_connection(ps, $4, $5); }
    ;

show_backup_details:
    SCHEMAS                         { $$ = SQL_SHOW_BACKUP_SCHEMAS; }
  | FILES                           { $$ = SQL_SHOW_BACKUP_FILES; }
  | RANGES                          { $$ = SQL_SHOW_BACKUP_RANGES; }
  | VALIDATE                        { $$ = SQL_SHOW_BACKUP_VALIDATE; }
    ;

show_backup_ref:
    FROM LATEST IN_P string_list_opt { $$ = sql_make_ref(ps, true, NULL, $4, NULL); }
  | FROM string_nolatest IN_P string_list_opt { $$ = sql_make_ref(ps, false, $2, $4, NULL); }
  | LATEST IN_P string_list_opt     { $$ = sql_make_ref(ps, true, NULL, $3, NULL); }
  | string_nolatest IN_P string_list_opt { $$ = sql_make_ref(ps, false, $1, $3, NULL); }
  | string_or_param                 { $$ = sql_make_ref(ps, false, $1, NULL, NULL); }
    ;

opt_with_show_backup_options:
    %empty                          { $$ = NULL; }
  | WITH show_backup_option_list    { $$ = $2; }
  | WITH OPTIONS '(' show_backup_option_list ')' { $$ = $4; }
    ;

show_backup_option_list:
    show_backup_option              { $$ = $1; }
  | show_backup_option_list ',' show_backup_option
        { sql_opts_merge(ps, &sql_show_backup_opt_table, $1, $3, @3); $$ = $1; }
    ;

show_backup_option:
    AS_JSON                         { $$ = SHOW_OPT(); $$->as_json = sql_make_flag(true); }
  | CHECK_FILES                     { $$ = SHOW_OPT(); $$->check_files = sql_make_flag(true); }
  | DEBUG_IDS                       { $$ = SHOW_OPT(); $$->debug_ids = sql_make_flag(true); }
  | PRIVILEGES                      { $$ = SHOW_OPT(); $$->privileges = sql_make_flag(true); }
  | SKIP SIZE                       { $$ = SHOW_OPT(); $$->skip_size = sql_make_flag(true); }
  | INCREMENTAL_LOCATION '=' string_list_opt { $$ = SHOW_OPT(); $$->incremental_location = $3; }
  | KMS '=' string_list_opt         { $$ = SHOW_OPT(); $$->kms = $3; }
  | ENCRYPTION_PASSPHRASE '=' string_or_param { $$ = SHOW_OPT(); $$->encryption_passphrase = $3; }
  | ENCRYPTION_INFO_DIR '=' string_or_param { $$ = SHOW_OPT(); $$->encryption_info_dir = $3; }
  | DEBUG_DUMP_METADATA_SST         { $$ = SHOW_OPT(); $$->debug_dump_metadata_sst = sql_make_flag(true); }
    ;

/* WITH TIME ... reaches the grammar as WITH_LA (see pgbr_yylex). */
opt_with_connection_options:
    %empty                          { $$ = NULL; }
  | WITH connection_option_list     { $$ = $2; }
  | WITH_LA connection_option_list  { $$ = $2; }
  | WITH OPTIONS '(' connection_option_list ')' { $$ = $4; }
    ;

connection_option_list:
    connection_option               { $$ = sql_kv_append(ps, NULL, $1); }
  | connection_option_list ',' connection_option { $$ = sql_kv_append(ps, $1, $3); }
    ;

connection_option:
    TRANSFER '=' string_or_param    { $$ = sql_make_kv(ps, "transfer", $3, NULL, @$); }
  | TIME '=' string_or_param        { $$ = sql_make_kv(ps, "time", $3, NULL, @$); }
  | CONCURRENTLY '=' a_expr         { $$ = sql_make_kv(ps, "concurrently", NULL, $3, @$); }
    ;

/* ---- Jobs -------------------------------------------------------------- */

show_jobs_stmt:
    SHOW JOBS                       { $$ = sql_make_show_jobs(ps, SQL_JOBS_ALL, 0, NULL, NULL); }
  | SHOW AUTOMATIC JOBS
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_ALL, SQL_JOBS_AUTOMATIC, NULL, NULL); }
  | SHOW CHANGEFEED JOBS
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_ALL, SQL_JOBS_CHANGEFEED, NULL, NULL); }
  | SHOW JOBS WITH EXECUTION DETAILS
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_ALL, SQL_JOBS_EXECUTION_DETAILS, NULL, NULL); }
  | SHOW JOBS select_stmt           { $$ = sql_make_show_jobs(ps, SQL_JOBS_SELECT, 0, NULL, $3); }
  | SHOW CHANGEFEED JOBS select_stmt
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_SELECT, SQL_JOBS_CHANGEFEED, NULL, $4); }
  | SHOW JOBS WHEN COMPLETE select_stmt
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_SELECT, SQL_JOBS_WHEN_COMPLETE, NULL, $5); }
  | SHOW JOBS FOR SCHEDULES select_stmt { $$ = sql_make_show_jobs(ps, SQL_JOBS_FOR_SCHEDULES, 0, NULL, $5); }
  | SHOW JOBS FOR SCHEDULE a_expr   { $$ = sql_make_show_jobs(ps, SQL_JOBS_FOR_SCHEDULE, 0, $5, NULL); }
  | SHOW JOB a_expr                 { $$ = sql_make_show_jobs(ps, SQL_JOBS_ONE, 0, $3, NULL); }
  | SHOW JOB a_expr WITH EXECUTION DETAILS
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_ONE, SQL_JOBS_EXECUTION_DETAILS, $3, NULL); }
  | SHOW JOB WHEN COMPLETE a_expr
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_ONE, SQL_JOBS_WHEN_COMPLETE, $5, NULL); }
  | SHOW CHANGEFEED JOB a_expr
        { $$ = sql_make_show_jobs(ps, SQL_JOBS_ONE, SQL_JOBS_CHANGEFEED, $4, NULL); }
    ;

control_jobs_stmt:
    PAUSE JOB a_expr opt_with_reason
        { $$ = sql_make_control_jobs(ps, SQL_JOB_PAUSE, SQL_JOBS_ONE, $3, NULL, NULL, $4); }
  | PAUSE JOBS select_stmt opt_with_reason
        { $$ = sql_make_control_jobs(ps, SQL_JOB_PAUSE, SQL_JOBS_SELECT, NULL, $3, NULL, $4); }
  | PAUSE JOBS FOR SCHEDULE a_expr
        { $$ = sql_make_control_jobs(ps, SQL_JOB_PAUSE, SQL_JOBS_FOR_SCHEDULE, $5, NULL, NULL, NULL); }
  | PAUSE JOBS FOR SCHEDULES select_stmt
        { $$ = sql_make_control_jobs(ps, SQL_JOB_PAUSE, SQL_JOBS_FOR_SCHEDULES, NULL, $5, NULL, NULL); }
  | PAUSE ALL job_type JOBS
        { $$ = sql_make_control_jobs(ps, SQL_JOB_PAUSE, SQL_JOBS_ALL_OF_TYPE, NULL, NULL, $3, NULL); }
  | job_action JOB a_expr
        { $$ = sql_make_control_jobs(ps, $1, SQL_JOBS_ONE, $3, NULL, NULL, NULL); }
  | job_action JOBS select_stmt
        { $$ = sql_make_control_jobs(ps, $1, SQL_JOBS_SELECT, NULL, $3, NULL, NULL); }
  | job_action JOBS FOR SCHEDULE a_expr
        { $$ = sql_make_control_jobs(ps, $1, SQL_JOBS_FOR_SCHEDULE, $5, NULL, NULL, NULL); }
  | job_action JOBS FOR SCHEDULES select_stmt
        { $$ = sql_make_control_jobs(ps, $1, SQL_JOBS_FOR_SCHEDULES, NULL, $5, NULL, NULL); }
  | job_action ALL job_type JOBS
        { $$ = sql_make_control_jobs(ps, $1, SQL_JOBS_ALL_OF_TYPE, NULL, NULL, $3, NULL); }
    ;

/* PAUSE has its own rules above: only it takes WITH REASON. */
job_action:
    RESUME                          { $$ = SQL_JOB_RESUME; }
  | CANCEL                          { $$ = SQL_JOB_CANCEL; }
    ;

job_type:
    BACKUP                          { $$ = "BACKUP"; }
  | RESTORE                         { $$ = "RESTORE"; }
  | CHANGEFEED                      { $$ = "CHANGEFEED"; }
  | IMPORT                          { $$ = "IMPORT"; }
    ;

opt_with_reason:
    %empty                          { $$ = NULL; }
  | WITH REASON '=' string_or_param { $$ = $4; }
    ;

/* ---- ALTER BACKUP ------------------------------------------------------ */

alter_backup_stmt:
    ALTER BACKUP alter_backup_target alter_backup_cmds { $$ = sql_make_alter_backup(ps, $3, $4); }
    ;

alter_backup_target:
    LATEST IN_P string_list_opt
        { $$ = sql_palloc(ps, sizeof(sql_alter_backup)); $$->latest = true; $$->in = *$3; }
  | string_nolatest IN_P string_list_opt
        { $$ = sql_palloc(ps, sizeof(sql_alter_backup)); $$->subdir = $1; $$->in = *$3; }
  | string_or_param                 { $$ = sql_palloc(ps, sizeof(sql_alter_backup)); $$->subdir = $1; }
    ;

/* Only ncmds/cmds of the result are used. */
alter_backup_cmds:
    ADD NEW_KMS '=' string_list_opt WITH OLD_KMS '=' string_list_opt
        { $$ = sql_palloc(ps, sizeof(sql_alter_backup)); sql_alter_backup_add(ps, $$, $4, $8); }
  | alter_backup_cmds ADD NEW_KMS '=' string_list_opt WITH OLD_KMS '=' string_list_opt
        { $$ = $1; sql_alter_backup_add(ps, $$, $5, $9); }
    ;

/* ---- Schedules --------------------------------------------------------- */

create_schedule_stmt:
    CREATE SCHEDULE schedule_label FOR BACKUP opt_backup_targets INTO string_list_opt
    opt_with_backup_options cron_clause opt_full_backup_clause opt_with_schedule_options
        { $$ = sql_make_create_schedule(ps, $3, $6, $8, $9, $10, $11, $12); }
    ;

/* These return a sql_create_schedule with only their fields set. */
schedule_label:
    %empty                          { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); }
  | string_or_param                 { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); $$->label = $1; }
  | IF_P NOT EXISTS string_or_param
        {
            $$ = sql_palloc(ps, sizeof(sql_create_schedule));
            $$->if_not_exists = true;
            $$->label = $4;
        }
    ;

cron_clause:
    RECURRING sconst_or_param       { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); $$->recurring = $2; }
  | RECURRING NEVER
        { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); $$->recurring_never = true; }
    ;

opt_full_backup_clause:
    %empty                          { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); }
  | FULL BACKUP sconst_or_param
        { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); $$->full_backup = $3; }
  | FULL BACKUP ALWAYS
        { $$ = sql_palloc(ps, sizeof(sql_create_schedule)); $$->full_backup_always = true; }
    ;

opt_with_schedule_options:
    %empty                          { $$ = NULL; }
  | WITH SCHEDULE OPTIONS kv_option_list { $$ = $4; }
  | WITH SCHEDULE OPTIONS '(' kv_option_list ')' { $$ = $5; }
    ;

kv_option_list:
    kv_option                       { $$ = sql_kv_append(ps, NULL, $1); }
  | kv_option_list ',' kv_option    { $$ = sql_kv_append(ps, $1, $3); }
    ;

kv_option:
    kv_name                         { $$ = sql_make_kv(ps, $1, NULL, NULL, @$); }
  | kv_name '=' string_or_param     { $$ = sql_make_kv(ps, $1, $3, NULL, @$); }
    ;

kv_name:
    name                            { $$ = $1; }
  | SCONST                          { $$ = $1; }
    ;

alter_backup_schedule_stmt:
    ALTER BACKUP SCHEDULE a_expr schedule_cmds
        {
            $$ = sql_new_stmt(ps, SQL_ALTER_BACKUP_SCHEDULE);
            $$->u.alter_backup_schedule = *$5;
            $$->u.alter_backup_schedule.schedule_id = $4;
        }
    ;

schedule_cmds:
    schedule_cmd
        { $$ = sql_palloc(ps, sizeof(sql_alter_backup_schedule)); sql_alter_schedule_add(ps, $$, $1); }
  | schedule_cmds ',' schedule_cmd  { $$ = $1; sql_alter_schedule_add(ps, $$, $3); }
    ;

schedule_cmd:
    SET LABEL string_or_param
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_LABEL, @$); $$->label = $3; }
  | SET INTO string_list_opt
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_INTO, @$); $$->into = *$3; }
  | SET WITH backup_option
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_WITH, @$); $$->with = *$3; }
  | SET RECURRING sconst_or_param
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_RECURRING, @$); $$->cron = $3; }
  | SET RECURRING NEVER
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_RECURRING, @$); $$->never = true; }
  | SET FULL BACKUP sconst_or_param
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_FULL_BACKUP, @$); $$->cron = $4; }
  | SET FULL BACKUP ALWAYS
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_FULL_BACKUP, @$); $$->always = true; }
  | SET SCHEDULE OPTION kv_option
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_SET_SCHEDULE_OPTION, @$); $$->option = *$4; }
  | EXECUTE IMMEDIATELY
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_EXECUTE_IMMEDIATELY, @$); }
  | EXECUTE FULL IMMEDIATELY
        { $$ = sql_make_schedule_cmd(ps, SQL_ALTER_SCHED_EXECUTE_FULL_IMMEDIATELY, @$); }
    ;

show_schedules_stmt:
    SHOW SCHEDULES opt_schedules_for { $$ = sql_make_show_schedules(ps, SQL_SCHED_ANY, $3); }
  | SHOW RUNNING SCHEDULES opt_schedules_for { $$ = sql_make_show_schedules(ps, SQL_SCHED_RUNNING, $4); }
  | SHOW PAUSED SCHEDULES opt_schedules_for { $$ = sql_make_show_schedules(ps, SQL_SCHED_PAUSED, $4); }
  | SHOW SCHEDULE a_expr
        { $$ = sql_make_show_schedules(ps, SQL_SCHED_ANY, NULL); $$->u.show_schedules.schedule_id = $3; }
    ;

opt_schedules_for:
    %empty                          { $$ = NULL; }
  | FOR BACKUP                      { $$ = "BACKUP"; }
  | FOR SQL_P STATISTICS            { $$ = "SQL STATISTICS"; }
  | FOR CHANGEFEED                  { $$ = "CHANGEFEED"; }
    ;

show_create_stmt:
    SHOW CREATE SCHEDULE a_expr
        { $$ = sql_new_stmt(ps, SQL_SHOW_CREATE_SCHEDULE); $$->u.show_create_schedule.schedule_id = $4; }
  | SHOW CREATE ALL SCHEDULES
        { $$ = sql_new_stmt(ps, SQL_SHOW_CREATE_SCHEDULE); $$->u.show_create_schedule.all = true; }
  | SHOW CREATE EXTERNAL CONNECTION string_or_param
        { $$ = sql_make_external(ps, SQL_SHOW_CREATE_EXTERNAL_CONNECTION, false, false, $5, NULL); }
  | SHOW CREATE ALL EXTERNAL CONNECTIONS
        { $$ = sql_make_external(ps, SQL_SHOW_CREATE_EXTERNAL_CONNECTION, false, true, NULL, NULL); }
    ;

control_schedules_stmt:
    schedule_action SCHEDULE a_expr { $$ = sql_make_control_schedules(ps, $1, $3, NULL); }
  | schedule_action SCHEDULES select_stmt { $$ = sql_make_control_schedules(ps, $1, NULL, $3); }
    ;

schedule_action:
    PAUSE                           { $$ = SQL_SCHED_PAUSE; }
  | RESUME                          { $$ = SQL_SCHED_RESUME; }
  | DROP                            { $$ = SQL_SCHED_DROP; }
    ;

/* ---- External connections ---------------------------------------------- */

external_connection_stmt:
    CREATE EXTERNAL CONNECTION string_or_param AS string_or_param
        { $$ = sql_make_external(ps, SQL_CREATE_EXTERNAL_CONNECTION, false, false, $4, $6); }
  | CREATE EXTERNAL CONNECTION IF_P NOT EXISTS string_or_param AS string_or_param
        { $$ = sql_make_external(ps, SQL_CREATE_EXTERNAL_CONNECTION, true, false, $7, $9); }
  | DROP EXTERNAL CONNECTION string_or_param
        { $$ = sql_make_external(ps, SQL_DROP_EXTERNAL_CONNECTION, false, false, $4, NULL); }
    ;

/* ---- Strings, lists, names --------------------------------------------- */

sconst_or_param:
    SCONST                          { $$ = sql_new_string(ps, $1, 0, @1); }
  | PARAM                           { $$ = sql_new_string(ps, NULL, $1, @1); }
    ;

/* s: a string, a placeholder or a bare word (not LATEST where LATEST is a
 * keyword of the statement) */
string_nolatest:
    sconst_or_param                 { $$ = $1; }
  | IDENT                           { $$ = sql_new_string(ps, $1, 0, @1); }
  | plain_unreserved_keyword        { $$ = sql_new_string(ps, $1, 0, @1); }
  | stop_keyword                    { $$ = sql_new_string(ps, $1, 0, @1); }
  | ADD                             { $$ = sql_new_string(ps, $1, 0, @1); }
    ;

string_or_param:
    string_nolatest                 { $$ = $1; }
  | LATEST                          { $$ = sql_new_string(ps, $1, 0, @1); }
    ;

string_list_opt:
    string_or_param                 { $$ = sql_list_append(ps, NULL, $1); }
  | '(' string_list ')'             { $$ = $2; }
    ;

string_list:
    string_or_param                 { $$ = sql_list_append(ps, NULL, $1); }
  | string_list ',' string_or_param { $$ = sql_list_append(ps, $1, $3); }
    ;

name:
    IDENT                           { $$ = $1; }
  | unreserved_keyword              { $$ = sql_pstrdup(ps, $1); }
    ;

/* after a dot any keyword is a name, as in PostgreSQL */
attr_name:
    name                            { $$ = $1; }
  | reserved_keyword                { $$ = sql_pstrdup(ps, $1); }
    ;

/* ---- Captured expressions and SELECT statements ------------------------ */

a_expr:
    expr_soup                       { $$ = sql_make_raw(ps, &$1, @1); }
    ;

/* Tokens up to the first top-level ',', ')', ';', WITH, INCREMENTAL, SET,
 * EXECUTE or RECURRING: the words that may follow an expression here. */
expr_soup:
    expr_first                      { $$ = sql_soup_add((sql_soup) { 0 }, $1, @1); }
  | expr_soup expr_elem             { $$ = sql_soup_add($1, $2, @2); }
    ;

/* No expression starts with WHEN, IN or ADD; excluding them keeps
 * SHOW JOB WHEN COMPLETE and ALTER BACKUP <word> ADD unambiguous. */
expr_first:
    IDENT                           { $$ = tok(IDENT, $1); }
  | SCONST                          { $$ = tok(SCONST, $1); }
  | ICONST                          { $$ = tok(ICONST, $1); }
  | FCONST                          { $$ = tok(FCONST, $1); }
  | BITCONST                        { $$ = tok(BITCONST, $1); }
  | PARAM                           { $$ = tok(PARAM, NULL); $$.param = $1; }
  | TRUE_P                          { $$ = tok(TRUE_P, $1); }
  | FALSE_P                         { $$ = tok(FALSE_P, $1); }
  | Op                              { $$ = tok(Op, $1); }
  | '.'                             { $$ = tok('.', NULL); }
  | '*'                             { $$ = tok('*', NULL); }
  | '='                             { $$ = tok('=', NULL); }
  | '-'                             { $$ = tok('-', NULL); }
  | WITH_LA                         { $$ = tok(WITH_LA, NULL); }
  | '(' paren_seq ')'               { $$ = tok('(', NULL); }
  /* keywords are plain words to sql_raw's flags */
  | plain_unreserved_keyword        { $$ = tok(IDENT, $1); }
  | LATEST                          { $$ = tok(IDENT, $1); }
  | expr_reserved_keyword           { $$ = tok(IDENT, $1); }
    ;

expr_elem:
    expr_first                      { $$ = $1; }
  | WHEN                            { $$ = tok(IDENT, $1); }
  | IN_P                            { $$ = tok(IDENT, $1); }
  | ADD                             { $$ = tok(IDENT, $1); }
    ;

paren_seq:
    %empty
  | paren_seq paren_elem
    ;

paren_elem:
    any_token
  | '(' paren_seq ')'
    ;

any_token:
    IDENT {} | SCONST {} | ICONST {} | FCONST {} | BITCONST {} | PARAM {} | Op {}
  | '.' | '*' | '=' | '-' | ',' | WITH_LA
  | unreserved_keyword {} | reserved_keyword {}
    ;

select_stmt:
    select_soup                     { $$ = sql_make_raw(ps, NULL, @1); }
    ;

/* A SELECT, VALUES, TABLE or parenthesised query, possibly after a WITH
 * list; it ends at a top-level WITH (PAUSE JOBS ... WITH REASON). */
select_soup:
    select_core
  | WITH cte_list select_core
  | WITH RECURSIVE cte_list select_core
    ;

select_core:
    SELECT select_tail
  | VALUES select_tail
  | TABLE select_tail
  | '(' paren_seq ')' select_tail
    ;

select_tail:
    %empty
  | select_tail select_elem
    ;

select_elem:
    expr_elem {} | ',' | stop_keyword {}
    ;

cte_list:
    cte
  | cte_list ',' cte
    ;

/* name [(columns)] AS [[NOT] MATERIALIZED] (query) [SEARCH/CYCLE clause] */
cte:
    cte_name AS cte_mods '(' paren_seq ')' cte_trailer
  | cte_name '(' paren_seq ')' AS cte_mods '(' paren_seq ')' cte_trailer
    ;

cte_name:
    IDENT {} | unreserved_keyword {}
    ;

cte_mods:
    %empty
  | cte_mods IDENT {}
  | cte_mods NOT {}
    ;

cte_trailer:
    %empty
  | cte_trailer cte_trailer_elem
    ;

cte_trailer_elem:
    IDENT {} | unreserved_keyword {} | SCONST {} | ICONST {} | TO {} | TRUE_P {} | FALSE_P {} | '='
    ;

/* ---- Keyword categories ------------------------------------------------ */

unreserved_keyword:
    plain_unreserved_keyword
  | stop_keyword
  | ADD
  | LATEST
    ;

/* unreserved keywords that end a captured expression */
stop_keyword:
    EXECUTE | INCREMENTAL | RECURRING | SET
    ;

plain_unreserved_keyword:
    ALTER | ALWAYS | AS_JSON | AUTOMATIC | BACKUP | BACKUPS | CANCEL | CHANGEFEED
  | CHECK_FILES | COMPLETE | CONCURRENTLY | CONNECTION | CONNECTIONS | COPY | DATABASE
  | DEBUG_DUMP_METADATA_SST | DEBUG_IDS | DEFERRED | DETACHED | DETAILS | DROP
  | ENCRYPTION_INFO_DIR | ENCRYPTION_PASSPHRASE | EXECUTION | EXISTS | EXPERIMENTAL
  | EXTERNAL | FILES | FULL | IF_P | IMMEDIATELY | IMPORT | INCLUDE_ALL_SECONDARY_TENANTS
  | INCLUDE_ALL_VIRTUAL_CLUSTERS | INCREMENTAL_LOCATION | INTO_DB | JOB | JOBS | KMS
  | LABEL | LOCALITY | NEVER | NEW_DB_NAME | NEW_KMS | OF | OLD_KMS | OPTION | OPTIONS
  | PAUSE | PAUSED | PRIVILEGES | RANGES | REASON | RECURSIVE | REMOVE_REGIONS | RESTORE
  | RESUME | REVISION_HISTORY | RUNNING | SCHEDULE | SCHEDULES | SCHEMA_ONLY | SCHEMAS
  | SHOW | SIZE | SKIP | SKIP_LOCALITIES_CHECK | SKIP_MISSING_FOREIGN_KEYS
  | SKIP_MISSING_SEQUENCE_OWNERS | SKIP_MISSING_SEQUENCES | SKIP_MISSING_UDFS
  | SKIP_MISSING_VIEWS | SQL_P | STATISTICS | SYSTEM_P | TIME | TRANSFER
  | UNSAFE_RESTORE_INCOMPATIBLE_VERSION | UPDATES_CLUSTER_MONITORING_METRICS | USERS
  | VALIDATE | VERIFY_BACKUP_TABLE_DATA | VIRTUAL_CLUSTER | VIRTUAL_CLUSTER_NAME
    ;

reserved_keyword:
    expr_reserved_keyword
  | TRUE_P
  | FALSE_P
  | IN_P
  | WHEN
  | WITH
    ;

/* reserved keywords an expression may contain at top level */
expr_reserved_keyword:
    ALL | AS | CREATE | FOR | FROM | INTO | NOT | SELECT | TABLE | TO | VALUES
    ;

%%
