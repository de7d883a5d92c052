/*
 * restore_toc.h - the table of contents of a database's schema dump
 * (src/restore only): what `pg_restore -l -v` says of the dump, read into
 * entries with their kind and dependencies, and the pg_restore list (-L)
 * written back from the entries a restore includes. Table restores
 * (restore_tables.c) choose entries from it; database restores use it to
 * leave pgbr's own publication out (restore_list_without_publication, in
 * restore_int.h).
 */
#ifndef PGBR_RESTORE_TOC_H
#define PGBR_RESTORE_TOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/buf.h"
#include "pgbr/error.h"
#include "restore_int.h"

/* How an entry of the table of contents takes part in a table restore. */
typedef enum toc_class {
    TC_NEVER = 0,   /* database-wide settings, data, publications...: never */
    TC_REL,         /* a relation: restored when chosen */
    TC_OBJ,         /* a type, function, schema...: created when needed and missing */
    TC_ATTACHED,    /* hangs off relations: default, constraint, index, trigger... */
    TC_LABEL        /* COMMENT, ACL, SECURITY LABEL: follows what it is about */
} toc_class;

typedef struct toc_entry {
    int id;
    uint32_t oid;
    const char *desc;       /* from restore_toc.c's toc_kinds ("?" for a kind pgbr does not know) */
    toc_class cls;
    char *schema;           /* NULL for "-" */
    char *tag;              /* the name pg_restore -l shows */
    char *owner;
    char *line;             /* the line as pg_restore printed it (for -L) */
    size_t *deps;           /* indexes into the toc of the entries it depends on */
    size_t ndeps;
    bool chosen;            /* TC_REL: restored */
    bool dropped;           /* TC_REL: left out by skip_missing_views / _sequence_owners */
    bool drop_owned_by;     /* SEQUENCE: its OWNED BY is left out */
    bool include;           /* goes into the pg_restore list */
    bool excluded;          /* TC_ATTACHED: decided against */
    bool needed;            /* TC_OBJ: something included depends on it */
    bool exists;            /* TC_OBJ: the destination has one of that name */
} toc_entry;

typedef struct toc {
    toc_entry *e;
    size_t n;
} toc;

/* Run pg_restore (argv, argv[0] the program) and capture its standard
 * output into out, NUL-terminated. A non-zero exit is XX000 "<what> failed
 * with exit status <n>" with its standard error in the DETAIL. */
bool restore_toc_capture(char *const argv[], const char *what, pgbr_buf *out, pgbr_error *err);

/* Read the table of contents of the schema dump at path dump (of database
 * dbname, for messages) into *t, which restore_toc_free() releases (also
 * after a failure). */
bool restore_toc_load(restore_plan *p, const char *dump, const char *dbname, toc *t, pgbr_error *err);

/* Write the lines of t's included entries to a new temporary file, the
 * pg_restore list; n makes its name unique in the job. *path (malloc'd, the
 * caller unlinks and frees it) is set once the file exists, so also when
 * writing it fails afterwards. */
bool restore_toc_write_list(restore_plan *p, const toc *t, size_t n, char **path, pgbr_error *err);

void restore_toc_free(toc *t);

#endif
