/*
 * restore_tables.c - RESTORE TABLE <patterns>: relations of a backup
 * recreated inside existing databases (docs/restore.md, "Table restores").
 *
 * A table cannot be moved between databases, so a table restore does not
 * use a staging database: each destination database gets one transaction
 * that creates the objects, loads the rows with COPY, builds the indexes
 * and constraints and sets the sequences; the transactions are committed
 * together at the very end, and any failure (or a killed pgbr, whose
 * connections the server then rolls back) leaves nothing behind.
 *
 * What to create is chosen from the table of contents of the database's
 * schema dump (`pg_restore -l -v`: every entry's dump id, catalog oid, kind,
 * schema, name, owner and the ids it depends on):
 *   - the relations the patterns name (tables, views, materialized views,
 *     sequences, foreign tables), the partitions of a partitioned table and
 *     the sequences a table owns;
 *   - what hangs off them: defaults, constraints, indexes, triggers, rules,
 *     policies, statistics, comments, grants;
 *   - the types, functions, collations, extensions... they need that the
 *     destination does not have yet (one of the same name is used as is);
 *     a schema must exist already, as the reference says.
 * A dependency on a relation that is not restored is an error naming the
 * relation's oid in the backup, as the reference words it, unless a
 * skip_missing_* option drops the foreign key, the sequence default, the
 * sequence's ownership or the view. The chosen entries become a pg_restore
 * list (-L); pg_restore turns them into SQL (-f -), which runs on the
 * destination's transaction. Reading the table of contents and writing the
 * list are restore_toc.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgbr/buf.h"
#include "pgbr/log.h"
#include "pgbr/pgclient.h"
#include "restore_int.h"
#include "restore_toc.h"

/* One source database of the backup and the destination it goes into. */
typedef struct table_group {
    const manifest_database *src;
    manifest_database view;     /* src with only the tables and sequences restored */
    char *dest;
    char *dump;                 /* the schema dump, in a temporary file */
    char *list;                 /* the pg_restore list, in a temporary file */
    toc toc;
    char **strip;               /* " DEFAULT nextval('<seq>'::regclass)" texts to remove */
    size_t nstrip;
    bool no_owner;              /* pg_restore --no-owner */
    bool no_acl;                /* pg_restore --no-acl */
    bool had_match;             /* a pattern named something of it */
    PGconn *conn;               /* the destination, in its transaction */
    bool in_txn;
} table_group;

struct restore_table_plan {
    table_group *g;
    size_t n;
};

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

void restore_tables_free(restore_table_plan *tp)
{
    if (!tp)
        return;
    for (size_t i = 0; i < tp->n; i++) {
        table_group *g = &tp->g[i];
        if (g->conn)
            PQfinish(g->conn);
        if (g->dump) {
            unlink(g->dump);
            free(g->dump);
        }
        if (g->list) {
            unlink(g->list);
            free(g->list);
        }
        free(g->view.tables);
        free(g->view.sequences);
        free(g->dest);
        for (size_t k = 0; k < g->nstrip; k++)
            free(g->strip[k]);
        free(g->strip);
        restore_toc_free(&g->toc);
    }
    free(tp->g);
    free(tp);
}

/* ---- resolving the patterns against the backup ---- */

static bool is_rel(const toc_entry *e)
{
    return e->cls == TC_REL;
}

/* Was this relation in the backup? A table backup holds only the
 * relations of its resolved targets; database and cluster backups all. */
static bool in_backup(const restore_plan *p, const table_group *g, const toc_entry *e)
{
    const manifest_targets *t = &p->m->targets;
    if (t->kind != MANIFEST_TARGET_TABLES)
        return true;
    for (size_t i = 0; i < t->nresolved; i++) {
        const manifest_target_name *r = &t->resolved[i];
        if (r->table && r->schema && e->schema && strcmp(r->database, g->src->name) == 0 &&
            strcmp(r->schema, e->schema) == 0 && strcmp(r->table, e->tag) == 0)
            return true;
    }
    return false;
}

static table_group *group_of(restore_plan *p, const char *dbname, pgbr_error *err)
{
    restore_table_plan *tp = p->tables;
    for (size_t i = 0; i < tp->n; i++)
        if (strcmp(tp->g[i].src->name, dbname) == 0)
            return &tp->g[i];
    const manifest_database *src = NULL;
    const manifest *top = restore_top(p);
    for (size_t j = 0; j < top->ndatabases && !src; j++)
        if (strcmp(top->databases[j]->name, dbname) == 0)
            src = top->databases[j];
    if (!src)
        return NULL;
    table_group *grown = realloc(tp->g, (tp->n + 1) * sizeof *grown);
    if (!grown) {
        oom(err);
        return NULL;
    }
    tp->g = grown;
    table_group *g = &tp->g[tp->n++];
    memset(g, 0, sizeof *g);
    g->src = src;
    if (!restore_fetch_schema(p, src, tp->n - 1, &g->dump, err) || !restore_toc_load(p, g->dump, g->src->name, &g->toc, err))
        return NULL;
    return g;
}

static void pattern_text(const restore_table_pattern *pt, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < pt->nparts && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? "." : "", pt->parts[i]);
    if (pt->star && off < size)
        snprintf(buf + off, size - off, "%s*", pt->nparts ? "." : "");
}

/* Choose the relations of g in schema (NULL: any) named name (NULL: any);
 * returns how many. */
static size_t choose(restore_plan *p, table_group *g, const char *schema, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < g->toc.n; i++) {
        toc_entry *e = &g->toc.e[i];
        if (!is_rel(e) || !e->schema || (schema && strcmp(e->schema, schema) != 0) ||
            (name && strcmp(e->tag, name) != 0) || !in_backup(p, g, e))
            continue;
        e->chosen = true;
        n++;
    }
    if (n)
        g->had_match = true;
    return n;
}

static bool schema_in(restore_plan *p, table_group *g, const char *schema)
{
    for (size_t i = 0; i < g->toc.n; i++) {
        const toc_entry *e = &g->toc.e[i];
        if (is_rel(e) && e->schema && strcmp(e->schema, schema) == 0 && in_backup(p, g, e))
            return true;
    }
    return false;
}

static bool not_found(restore_plan *p, const restore_table_pattern *pt, pgbr_error *err)
{
    char text[1024];
    pattern_text(pt, text, sizeof text);
    pgbr_error_set(err, "42P01", "table \"%s\" does not exist in the backup", text);
    pgbr_error_hint(err, "SHOW BACKUP FROM '%s' IN '%s' lists what the backup holds.", p->subdir,
                    storage_display_url(p->st));
    return false;
}

static bool resolve_pattern(restore_plan *p, const restore_table_pattern *pt, pgbr_error *err)
{
    const restore_request *req = p->req;
    const char *cur = req->current_database ? req->current_database : "";
    table_group *g;
    if (pt->nparts == 3 || (pt->star && pt->nparts == 2)) {
        g = group_of(p, pt->parts[0], err);
        if (!g) {
            if (!pgbr_error_is_set(err)) {
                pgbr_error_set(err, "42704", "database \"%s\" not found in the backup", pt->parts[0]);
                pgbr_error_hint(err, "SHOW BACKUP FROM '%s' IN '%s' lists what the backup holds.", p->subdir,
                                storage_display_url(p->st));
            }
            return false;
        }
        if (choose(p, g, pt->parts[1], pt->star ? NULL : pt->parts[2]) == 0)
            return not_found(p, pt, err);
        return true;
    }
    g = group_of(p, cur, err);
    if (!g && pgbr_error_is_set(err))
        return false;
    if (pt->star && pt->nparts == 0) {
        if (!g || choose(p, g, NULL, NULL) == 0)
            return not_found(p, pt, err);
        return true;
    }
    if (pt->star) {                 /* a.*: a schema of the current database, else a database */
        if (g && schema_in(p, g, pt->parts[0]))
            return choose(p, g, pt->parts[0], NULL) > 0 || not_found(p, pt, err);
        table_group *other = group_of(p, pt->parts[0], err);
        if (!other)
            return pgbr_error_is_set(err) ? false : not_found(p, pt, err);
        return choose(p, other, NULL, NULL) > 0 || not_found(p, pt, err);
    }
    if (pt->nparts == 2) {          /* s.t, else db.t meaning db.public.t */
        if (g && schema_in(p, g, pt->parts[0]))
            return choose(p, g, pt->parts[0], pt->parts[1]) > 0 || not_found(p, pt, err);
        table_group *other = group_of(p, pt->parts[0], err);
        if (!other)
            return pgbr_error_is_set(err) ? false : not_found(p, pt, err);
        return choose(p, other, "public", pt->parts[1]) > 0 || not_found(p, pt, err);
    }
    /* t: the first schema of the search path that has it */
    if (g)
        for (size_t k = 0; k < req->nsearch_path; k++)
            if (choose(p, g, req->search_path[k], pt->parts[0]) > 0)
                return true;
    return not_found(p, pt, err);
}

/* ---- choosing the entries ---- */

static bool has_dep(const toc *t, const toc_entry *e, const char *desc, bool chosen)
{
    for (size_t k = 0; k < e->ndeps; k++) {
        const toc_entry *d = &t->e[e->deps[k]];
        if (strcmp(d->desc, desc) == 0 && d->chosen == chosen)
            return true;
    }
    return false;
}

/* The relation an attached entry belongs to: the relation it depends on
 * whose name starts its own ("orders orders_pkey"), else its first. */
static const toc_entry *owner_rel(const toc *t, const toc_entry *e)
{
    const toc_entry *first = NULL, *best = NULL;
    size_t best_len = 0;
    for (size_t k = 0; k < e->ndeps; k++) {
        const toc_entry *d = &t->e[e->deps[k]];
        if (!is_rel(d))
            continue;
        if (!first)
            first = d;
        size_t l = strlen(d->tag);
        if (l > best_len && strncmp(e->tag, d->tag, l) == 0 && (e->tag[l] == ' ' || e->tag[l] == '\0') &&
            (!e->schema || !d->schema || strcmp(e->schema, d->schema) == 0)) {
            best = d;
            best_len = l;
        }
    }
    return best ? best : first;
}

static const char *rel_word(const toc_entry *e)
{
    if (strcmp(e->desc, "VIEW") == 0)
        return "view";
    if (strcmp(e->desc, "MATERIALIZED VIEW") == 0)
        return "materialized view";
    if (strcmp(e->desc, "SEQUENCE") == 0)
        return "sequence";
    return "table";
}

static bool has_owned_by(const toc *t, size_t seq)
{
    for (size_t i = 0; i < t->n; i++) {
        const toc_entry *e = &t->e[i];
        if (strcmp(e->desc, "SEQUENCE OWNED BY") == 0)
            for (size_t k = 0; k < e->ndeps; k++)
                if (e->deps[k] == seq)
                    return true;
    }
    return false;
}

/* The column default pg_dump prints for a sequence, as regclass prints
 * the name (quoted only where needed, as the server's quote_ident does). */
static bool add_strip(table_group *g, PGconn *conn, const toc_entry *seq, pgbr_error *err)
{
    const char *params[2] = { seq->schema, seq->tag };
    PGresult *res = pgclient_query_params(conn,
                                          "SELECT ' DEFAULT nextval(' || pg_catalog.quote_literal("
                                          "pg_catalog.format('%I.%I', $1::text, $2::text)) || '::regclass)'",
                                          2, params, err);
    if (!res)
        return false;
    char *s = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    char **grown = s ? realloc(g->strip, (g->nstrip + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(s);
        return oom(err);
    }
    g->strip = grown;
    g->strip[g->nstrip++] = s;
    return true;
}

/* The relations: expand (partitions, owned sequences), then check what
 * each needs among the other relations. */
static bool choose_relations(restore_plan *p, table_group *g, pgbr_error *err)
{
    toc *t = &g->toc;
    const restore_request *req = p->req;
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < t->n; i++) {
            toc_entry *e = &t->e[i];
            /* a partition of a chosen table: TABLE ATTACH <child> depends on child and parent */
            if (strcmp(e->desc, "TABLE ATTACH") == 0) {
                toc_entry *child = NULL, *parent = NULL;
                for (size_t k = 0; k < e->ndeps; k++) {
                    toc_entry *d = &t->e[e->deps[k]];
                    if (strcmp(d->desc, "TABLE") != 0)
                        continue;
                    if (!child && strcmp(d->tag, e->tag) == 0 && e->schema && d->schema &&
                        strcmp(d->schema, e->schema) == 0)
                        child = d;
                    else
                        parent = d;
                }
                if (child && parent && parent->chosen && !child->chosen && !child->dropped) {
                    child->chosen = changed = true;
                }
            }
            /* a sequence owned by a chosen table (serial or identity) */
            if (strcmp(e->desc, "SEQUENCE") == 0 && !e->chosen && !e->dropped && has_dep(t, e, "TABLE", true)) {
                e->chosen = changed = true;
            }
        }
    }
    changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < t->n; i++) {
            toc_entry *e = &t->e[i];
            if (!e->chosen)
                continue;
            for (size_t k = 0; k < e->ndeps; k++) {
                toc_entry *d = &t->e[e->deps[k]];
                if (!is_rel(d) || d->chosen)
                    continue;
                bool view = strcmp(e->desc, "VIEW") == 0 || strcmp(e->desc, "MATERIALIZED VIEW") == 0;
                if (view) {
                    if (req->skip_missing_views) {
                        e->chosen = false;
                        e->dropped = changed = true;
                        break;
                    }
                    pgbr_error_set(err, "42704", "cannot restore %s \"%s\" without referenced %s %" PRIu32
                                   " (or \"skip_missing_views\" option)", rel_word(e), e->tag, rel_word(d), d->oid);
                    pgbr_error_detail(err, "%s %" PRIu32 " is \"%s\".\"%s\" in database \"%s\" of the backup.",
                                      rel_word(d), d->oid, d->schema ? d->schema : "", d->tag, g->src->name);
                    return false;
                }
                if (strcmp(e->desc, "SEQUENCE") == 0 && strcmp(d->desc, "TABLE") == 0) {
                    if (req->skip_missing_sequence_owners) {
                        if (has_owned_by(t, i)) {
                            e->drop_owned_by = true;        /* serial: keep the sequence */
                        } else {
                            e->chosen = false;              /* identity: part of its table */
                            e->dropped = changed = true;
                        }
                        break;
                    }
                    pgbr_error_set(err, "42704", "cannot restore sequence \"%s\" without referenced owner table %" PRIu32
                                   " (or \"skip_missing_sequence_owners\" option)", e->tag, d->oid);
                    pgbr_error_detail(err, "table %" PRIu32 " is \"%s\".\"%s\" in database \"%s\" of the backup.",
                                      d->oid, d->schema ? d->schema : "", d->tag, g->src->name);
                    return false;
                }
                if (strcmp(e->desc, "TABLE") == 0 && strcmp(d->desc, "SEQUENCE") == 0) {
                    /* a column default using a sequence that is not restored */
                    if (req->skip_missing_sequences) {
                        if (!add_strip(g, g->conn, d, err))
                            return false;
                        continue;
                    }
                    pgbr_error_set(err, "42704", "cannot restore table \"%s\" without referenced sequence %" PRIu32
                                   " (or \"skip_missing_sequences\" option)", e->tag, d->oid);
                    pgbr_error_detail(err, "sequence %" PRIu32 " is \"%s\".\"%s\" in database \"%s\" of the backup.",
                                      d->oid, d->schema ? d->schema : "", d->tag, g->src->name);
                    return false;
                }
                pgbr_error_set(err, "42704", "cannot restore %s \"%s\" without referenced %s %" PRIu32,
                               rel_word(e), e->tag, rel_word(d), d->oid);
                pgbr_error_detail(err, "%s %" PRIu32 " is \"%s\".\"%s\" in database \"%s\" of the backup (an "
                                  "inheritance parent, partitioned table or a type the %s uses); restore them together.",
                                  rel_word(d), d->oid, d->schema ? d->schema : "", d->tag, g->src->name, rel_word(e));
                return false;
            }
        }
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].chosen)
            t->e[i].include = true;
    return true;
}

/* What hangs off the chosen relations. */
static bool choose_attached(restore_plan *p, table_group *g, pgbr_error *err)
{
    toc *t = &g->toc;
    const restore_request *req = p->req;
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < t->n; i++) {
            toc_entry *e = &t->e[i];
            if (e->cls != TC_ATTACHED || e->include || e->excluded)
                continue;
            bool touches = false, waiting = false;
            for (size_t k = 0; k < e->ndeps; k++) {
                const toc_entry *d = &t->e[e->deps[k]];
                touches |= d->include && (is_rel(d) || d->cls == TC_ATTACHED);
                waiting |= d->cls == TC_ATTACHED && !d->include && !d->excluded;
            }
            if (!touches)
                continue;
            if (strcmp(e->desc, "SEQUENCE OWNED BY") == 0) {
                bool drop = false;
                for (size_t k = 0; k < e->ndeps; k++)
                    drop |= t->e[e->deps[k]].drop_owned_by;
                if (drop) {
                    e->excluded = changed = true;
                    continue;
                }
            }
            const toc_entry *own = owner_rel(t, e);
            if (own && !own->chosen) {
                e->excluded = changed = true;   /* belongs to a relation not restored */
                continue;
            }
            const toc_entry *missing = NULL;
            for (size_t k = 0; k < e->ndeps && !missing; k++) {
                const toc_entry *d = &t->e[e->deps[k]];
                if (is_rel(d) && !d->chosen)
                    missing = d;
            }
            if (missing) {
                bool fk = strcmp(e->desc, "FK CONSTRAINT") == 0;
                bool def = strcmp(e->desc, "DEFAULT") == 0 && strcmp(missing->desc, "SEQUENCE") == 0;
                bool attach = strcmp(e->desc, "INDEX ATTACH") == 0 || strcmp(e->desc, "TABLE ATTACH") == 0;
                if (attach || (fk && req->skip_missing_foreign_keys) || (def && req->skip_missing_sequences)) {
                    e->excluded = changed = true;
                    continue;
                }
                const char *tname = own ? own->tag : e->tag;
                if (fk)
                    pgbr_error_set(err, "42704", "cannot restore table \"%s\" without referenced table %" PRIu32
                                   " (or \"skip_missing_foreign_keys\" option)", tname, missing->oid);
                else if (def)
                    pgbr_error_set(err, "42704", "cannot restore table \"%s\" without referenced sequence %" PRIu32
                                   " (or \"skip_missing_sequences\" option)", tname, missing->oid);
                else
                    pgbr_error_set(err, "42704", "cannot restore %s \"%s\" without referenced %s %" PRIu32,
                                   own ? rel_word(own) : "table", tname, rel_word(missing), missing->oid);
                pgbr_error_detail(err, "%s %" PRIu32 " is \"%s\".\"%s\" in database \"%s\" of the backup (needed by %s %s).",
                                  rel_word(missing), missing->oid, missing->schema ? missing->schema : "",
                                  missing->tag, g->src->name, e->desc, e->tag);
                return false;
            }
            if (waiting)
                continue;       /* e.g. a foreign key waits for the referenced key */
            e->include = changed = true;
        }
    }
    return true;
}

/* Does the destination have an object like this TC_OBJ entry? */
static bool object_exists(PGconn *conn, const toc_entry *e, bool *exists, pgbr_error *err)
{
    static const struct {
        const char *desc;
        const char *sql;
    } checks[] = {
        { "SCHEMA", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $2)" },
        { "TYPE", "SELECT pg_catalog.to_regtype(pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2)) IS NOT NULL" },
        { "SHELL TYPE", "SELECT pg_catalog.to_regtype(pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2)) IS NOT NULL" },
        { "DOMAIN", "SELECT pg_catalog.to_regtype(pg_catalog.quote_ident($1) || '.' || pg_catalog.quote_ident($2)) IS NOT NULL" },
        { "FUNCTION", "SELECT pg_catalog.to_regprocedure(pg_catalog.quote_ident($1) || '.' || "
                      "pg_catalog.quote_ident(pg_catalog.split_part($2, '(', 1)) || '(' || "
                      "pg_catalog.substr($2, pg_catalog.strpos($2, '(') + 1)) IS NOT NULL" },
        { "PROCEDURE", "SELECT pg_catalog.to_regprocedure(pg_catalog.quote_ident($1) || '.' || "
                       "pg_catalog.quote_ident(pg_catalog.split_part($2, '(', 1)) || '(' || "
                       "pg_catalog.substr($2, pg_catalog.strpos($2, '(') + 1)) IS NOT NULL" },
        { "AGGREGATE", "SELECT pg_catalog.to_regprocedure(pg_catalog.quote_ident($1) || '.' || "
                       "pg_catalog.quote_ident(pg_catalog.split_part($2, '(', 1)) || '(' || "
                       "pg_catalog.substr($2, pg_catalog.strpos($2, '(') + 1)) IS NOT NULL" },
        { "OPERATOR", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n "
                      "ON n.oid = o.oprnamespace WHERE n.nspname = $1 AND o.oprname = pg_catalog.split_part($2, '(', 1))" },
        { "OPERATOR CLASS", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_namespace n "
                            "ON n.oid = o.opcnamespace WHERE n.nspname = $1 AND o.opcname = pg_catalog.split_part($2, ' ', 1))" },
        { "OPERATOR FAMILY", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_opfamily o JOIN pg_catalog.pg_namespace n "
                             "ON n.oid = o.opfnamespace WHERE n.nspname = $1 AND o.opfname = pg_catalog.split_part($2, ' ', 1))" },
        { "COLLATION", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n "
                       "ON n.oid = c.collnamespace WHERE n.nspname = $1 AND c.collname = $2)" },
        { "CONVERSION", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_conversion c JOIN pg_catalog.pg_namespace n "
                        "ON n.oid = c.connamespace WHERE n.nspname = $1 AND c.conname = $2)" },
        { "EXTENSION", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = $2)" },
        { "TEXT SEARCH CONFIGURATION", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_ts_config c JOIN pg_catalog.pg_namespace n "
                                       "ON n.oid = c.cfgnamespace WHERE n.nspname = $1 AND c.cfgname = $2)" },
        { "TEXT SEARCH DICTIONARY", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_ts_dict c JOIN pg_catalog.pg_namespace n "
                                    "ON n.oid = c.dictnamespace WHERE n.nspname = $1 AND c.dictname = $2)" },
        { "TEXT SEARCH PARSER", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_ts_parser c JOIN pg_catalog.pg_namespace n "
                                "ON n.oid = c.prsnamespace WHERE n.nspname = $1 AND c.prsname = $2)" },
        { "TEXT SEARCH TEMPLATE", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_ts_template c JOIN pg_catalog.pg_namespace n "
                                  "ON n.oid = c.tmplnamespace WHERE n.nspname = $1 AND c.tmplname = $2)" },
        { "PROCEDURAL LANGUAGE", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_language WHERE lanname = $2)" },
        { "FOREIGN DATA WRAPPER", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_data_wrapper WHERE fdwname = $2)" },
        { "SERVER", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server WHERE srvname = $2)" },
        { "ACCESS METHOD", "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_am WHERE amname = $2)" },
    };
    const char *sql = NULL;
    for (size_t k = 0; k < sizeof checks / sizeof checks[0] && !sql; k++)
        if (strcmp(checks[k].desc, e->desc) == 0)
            sql = checks[k].sql;
    if (!sql) {
        /* casts, transforms: taken to exist (a restore needing a missing
         * one fails with the server's error, nothing left behind) */
        *exists = true;
        return true;
    }
    const char *params[2] = { e->schema, e->tag };
    const Oid types[2] = { 25, 25 };    /* text: some checks use only $2 */
    PGresult *res = PQexecParams(conn, sql, 2, types, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgclient_error_from(conn, res, NULL, err);
        PQclear(res);
        return false;
    }
    *exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

/* The first chosen relation in schema (for messages). */
static const toc_entry *first_in_schema(const toc *t, const char *schema)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].chosen && t->e[i].schema && strcmp(t->e[i].schema, schema) == 0)
            return &t->e[i];
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].chosen)
            return &t->e[i];
    return NULL;
}

/* The types, functions... the included entries need: created when the
 * destination has none of that name, followed into what they need. */
static bool choose_objects(table_group *g, pgbr_error *err)
{
    toc *t = &g->toc;
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 0; i < t->n; i++) {
            toc_entry *e = &t->e[i];
            if (!e->include)
                continue;
            for (size_t k = 0; k < e->ndeps; k++) {
                toc_entry *d = &t->e[e->deps[k]];
                if (d->cls != TC_OBJ || d->needed)
                    continue;
                d->needed = changed = true;
                if (!object_exists(g->conn, d, &d->exists, err))
                    return false;
                if (strcmp(d->desc, "SCHEMA") == 0 && !d->exists) {
                    const toc_entry *r = first_in_schema(t, d->tag);
                    pgbr_error_set(err, "3F000", "a schema named \"%s\" needs to exist to restore table \"%s\"",
                                   d->tag, r ? r->tag : "?");
                    pgbr_error_hint(err, "Create the schema in database \"%s\" first.", g->dest);
                    return false;
                }
                if (!d->exists)
                    d->include = true;
            }
        }
    }
    /* comments, grants and labels of what is created */
    for (size_t i = 0; i < t->n; i++) {
        toc_entry *e = &t->e[i];
        if (e->cls != TC_LABEL || e->ndeps == 0)
            continue;
        bool all = true;
        for (size_t k = 0; k < e->ndeps && all; k++)
            all = t->e[e->deps[k]].include;
        e->include = all;
    }
    return true;
}

/* ---- the destinations ---- */

static bool query_bool(PGconn *conn, const char *sql, int n, const char *const *params, bool *out, pgbr_error *err)
{
    PGresult *res = pgclient_query_params(conn, sql, n, params, err);
    if (!res)
        return false;
    *out = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return true;
}

static bool check_destination(restore_plan *p, table_group *g, pgbr_error *err)
{
    const restore_request *req = p->req;
    const toc_entry *first = first_in_schema(&g->toc, "");
    bool yes = false;
    const char *params[3] = { g->dest, req->user, NULL };
    if (!query_bool(p->admin, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", 1, params,
                    &yes, err))
        return false;
    if (!yes) {
        pgbr_error_set(err, "3D000", "a database named \"%s\" needs to exist to restore table \"%s\"", g->dest,
                       first ? first->tag : "?");
        if (!req->into_db)
            pgbr_error_hint(err, "Create the database first, or restore into another one WITH into_db = '...'.");
        return false;
    }
    if (req->owner_role) {
        if (!query_bool(p->admin, "SELECT pg_catalog.has_database_privilege($2, $1, 'CONNECT')", 2, params, &yes, err))
            return false;
        if (!yes)
            return pgbr_error_set(err, "42501", "permission denied for database %s", g->dest);
    }
    g->conn = pgclient_connect(req->conninfo, g->dest, "pgbr restore", err);
    return g->conn != NULL;
}

/* No relation of the same name may exist in the destination. */
static bool check_clashes(table_group *g, pgbr_error *err)
{
    bool yes = false;
    for (size_t i = 0; i < g->toc.n; i++) {
        const toc_entry *e = &g->toc.e[i];
        if (!e->chosen)
            continue;
        char *q = restore_qualified(g->conn, e->schema, e->tag);
        const char *qp[1] = { q };
        if (!q)
            return oom(err);
        bool ok = query_bool(g->conn, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, qp, &yes, err);
        free(q);
        if (!ok)
            return false;
        if (yes) {
            pgbr_error_set(err, "42P07", "relation \"%s\" already exists", e->tag);
            pgbr_error_detail(err, "Database \"%s\" has a relation \"%s\".\"%s\".", g->dest, e->schema, e->tag);
            return false;
        }
    }
    return true;
}

/* Owners: kept for an admin when every owner role exists in the
 * destination server; otherwise the restoring role owns everything (and
 * grants, which name roles too, are left out when roles are missing). */
static bool choose_ownership(restore_plan *p, table_group *g, pgbr_error *err)
{
    if (p->req->owner_role) {
        g->no_owner = true;
        return true;
    }
    for (size_t i = 0; i < g->toc.n; i++) {
        const toc_entry *e = &g->toc.e[i];
        if (!e->include || !e->owner[0])
            continue;
        const char *params[1] = { e->owner };
        bool yes = false;
        if (!query_bool(p->admin, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", 1, params,
                        &yes, err))
            return false;
        if (!yes) {
            log_warning("restore job %" PRId64 ": role \"%s\" (owner of %s \"%s\") does not exist; the restored "
                        "objects are owned by pgbr's role and their grants are not restored",
                        p->req->job_id, e->owner, e->desc, e->tag);
            g->no_owner = g->no_acl = true;
            return true;
        }
    }
    return true;
}

/* The manifest's tables and sequences of the chosen relations. */
static bool build_view(table_group *g, pgbr_error *err)
{
    const manifest_database *src = g->src;
    g->view = *src;
    g->view.tables = calloc(src->ntables ? src->ntables : 1, sizeof *g->view.tables);
    g->view.sequences = calloc(src->nsequences ? src->nsequences : 1, sizeof *g->view.sequences);
    g->view.ntables = g->view.nsequences = 0;
    if (!g->view.tables || !g->view.sequences)
        return oom(err);
    for (size_t i = 0; i < g->toc.n; i++) {
        const toc_entry *e = &g->toc.e[i];
        if (!e->chosen || !e->schema)
            continue;
        for (size_t k = 0; k < src->ntables; k++) {
            manifest_table *mt = src->tables[k];
            if (strcmp(mt->schema, e->schema) == 0 && strcmp(mt->name, e->tag) == 0)
                g->view.tables[g->view.ntables++] = mt;
        }
        for (size_t k = 0; k < src->nsequences; k++) {
            manifest_sequence *ms = src->sequences[k];
            if (strcmp(ms->schema, e->schema) == 0 && strcmp(ms->name, e->tag) == 0)
                g->view.sequences[g->view.nsequences++] = ms;
        }
    }
    return true;
}

bool restore_tables_prepare(restore_plan *p, pgbr_error *err)
{
    const restore_request *req = p->req;
    p->tables = calloc(1, sizeof *p->tables);
    if (!p->tables)
        return oom(err);
    for (size_t i = 0; i < req->ntables; i++)
        if (!resolve_pattern(p, &req->tables[i], err))
            return false;
    restore_table_plan *tp = p->tables;
    /* only the databases a pattern matched in */
    size_t kept = 0;
    for (size_t i = 0; i < tp->n; i++) {
        if (tp->g[i].had_match) {
            if (kept != i) {
                table_group tmp = tp->g[kept];
                tp->g[kept] = tp->g[i];
                tp->g[i] = tmp;
            }
            kept++;
        }
    }
    for (size_t i = 0; i < tp->n; i++) {
        table_group *g = &tp->g[i];
        if (i >= kept)
            continue;
        g->dest = strdup(req->into_db ? req->into_db : g->src->name);
        if (!g->dest)
            return oom(err);
        /* the destination first: its connection answers what exists */
        if (!check_destination(p, g, err) || !choose_relations(p, g, err) || !check_clashes(g, err) ||
            !choose_attached(p, g, err) ||
            !choose_objects(g, err) || !choose_ownership(p, g, err) || !restore_toc_write_list(p, &g->toc, i, &g->list, err) ||
            !build_view(g, err))
            return false;
    }
    /* groups that matched nothing are not restored */
    for (size_t i = kept; i < tp->n; i++) {
        table_group *g = &tp->g[i];
        if (g->dump) {
            unlink(g->dump);
            free(g->dump);
            g->dump = NULL;
        }
        restore_toc_free(&g->toc);
        free(g->dest);
        g->dest = NULL;
    }
    tp->n = kept;
    return true;
}

/* ---- execution ---- */

/* pg_restore's SQL for a section of the chosen entries, without psql's
 * \restrict lines, with the sequence defaults to drop removed. */
static bool section_sql(restore_plan *p, table_group *g, const char *section, pgbr_buf *out, pgbr_error *err)
{
    char *prog = pgclient_find_tool("pg_restore", p->req->pg_restore_path, p->server_num);
    char sect[64], what[300], listarg[4096];
    pgbr_buf raw = PGBR_BUF_INIT;
    char *argv[12];
    int n = 0;
    if (!prog)
        return oom(err);
    snprintf(sect, sizeof sect, "--section=%s", section);
    snprintf(listarg, sizeof listarg, "--use-list=%s", g->list);
    snprintf(what, sizeof what, "pg_restore (%s) of tables of database \"%s\"", section, g->src->name);
    argv[n++] = prog;
    argv[n++] = sect;
    argv[n++] = listarg;
    argv[n++] = "--file=-";
    argv[n++] = "--no-tablespaces";
    if (g->no_owner)
        argv[n++] = "--no-owner";
    if (g->no_acl)
        argv[n++] = "--no-acl";
    argv[n++] = g->dump;
    argv[n] = NULL;
    bool ok = restore_toc_capture(argv, what, &raw, err);
    free(prog);
    for (char *line = ok ? (char *)raw.data : NULL, *next; ok && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '\\')
            continue;
        for (size_t k = 0; k < g->nstrip; k++) {
            char *hit;
            size_t l = strlen(g->strip[k]);
            while ((hit = strstr(line, g->strip[k])) != NULL)
                memmove(hit, hit + l, strlen(hit + l) + 1);
        }
        ok = pgbr_buf_append(out, line, strlen(line), err) && pgbr_buf_append(out, "\n", 1, err);
    }
    ok = ok && pgbr_buf_append(out, "", 1, err);
    pgbr_buf_free(&raw);
    return ok;
}

static bool run_section(restore_plan *p, table_group *g, const char *section, pgbr_error *err)
{
    pgbr_buf sql = PGBR_BUF_INIT;
    bool ok = section_sql(p, g, section, &sql, err);
    if (ok) {
        PGresult *res = PQexec(g->conn, (const char *)sql.data);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
            pgclient_error_from(g->conn, res, NULL, err);
            pgbr_error_detail(err, "while creating the %s objects of the tables restored into database \"%s\"",
                              section, g->dest);
            ok = false;
        }
        PQclear(res);
    }
    pgbr_buf_free(&sql);
    return ok;
}

static bool begin(restore_plan *p, table_group *g, pgbr_error *err)
{
    if (!pgclient_exec(g->conn, "BEGIN", err))
        return false;
    g->in_txn = true;
    if (p->req->owner_role) {
        char *id = PQescapeIdentifier(g->conn, p->req->owner_role, strlen(p->req->owner_role));
        char *sql = NULL;
        bool ok = id && asprintf(&sql, "SET LOCAL ROLE %s", id) >= 0;
        PQfreemem(id);
        if (!ok) {
            free(sql);
            return oom(err);
        }
        ok = pgclient_exec(g->conn, sql, err);
        free(sql);
        return ok;
    }
    return true;
}

static bool restore_group(restore_plan *p, table_group *g, restore_progress_fn progress, void *arg, double base,
                          double w, restore_result *out, pgbr_error *err)
{
    size_t nrel = 0;
    for (size_t i = 0; i < g->toc.n; i++)
        nrel += g->toc.e[i].chosen;
    log_info("restore job %" PRId64 ": %zu relations of database \"%s\" from %s%s into database \"%s\"",
             p->req->job_id, nrel, g->src->name, storage_display_url(p->st), p->subdir, g->dest);
    if (progress && !progress(arg, base, "creating objects"))
        return pgbr_error_set(err, "57014", "restore canceled");
    if (!begin(p, g, err) || !run_section(p, g, "pre-data", err))
        return false;
    if (progress && !progress(arg, base + w * 0.05, p->req->schema_only ? "verifying data files" : "loading data"))
        return pgbr_error_set(err, "57014", "restore canceled");
    if ((!p->req->schema_only || p->req->verify_data) &&
        !restore_load_database(p, &g->view, g->dest, g->conn, progress, arg, base + w * 0.05, w * 0.75, out, err))
        return false;
    if (progress && !progress(arg, base + w * 0.8, "building indexes and constraints"))
        return pgbr_error_set(err, "57014", "restore canceled");
    if (!run_section(p, g, "post-data", err))
        return false;
    /* a chain: its layers' changes to the tables restored, in the same
     * transaction */
    if (restore_chain_replays(p) && !p->req->schema_only) {
        if (progress && !progress(arg, base + w * 0.9, "replaying changes"))
            return pgbr_error_set(err, "57014", "restore canceled");
        if (!restore_chain_apply(p, &g->view, g->conn, progress, arg, base + w * 0.9, out, err))
            return false;
    }
    return restore_finish_database(p, &g->view, g->conn, err);
}

bool restore_tables_execute(restore_plan *p, restore_progress_fn progress, void *arg, restore_result *out,
                            pgbr_error *err)
{
    restore_table_plan *tp = p->tables;
    bool ok = true;
    for (size_t i = 0; ok && i < tp->n; i++)
        ok = restore_group(p, &tp->g[i], progress, arg, (double)i / (double)tp->n, 1.0 / (double)tp->n, out, err);
    if (ok && progress && !progress(arg, 0.99, "committing"))
        ok = pgbr_error_set(err, "57014", "restore canceled");
    /* all transactions were open until here: commit them together */
    for (size_t i = 0; ok && i < tp->n; i++) {
        ok = pgclient_exec(tp->g[i].conn, "COMMIT", err);
        tp->g[i].in_txn = false;
        if (!ok && i > 0)
            log_error("restore job %" PRId64 ": the tables restored into database \"%s\" were committed before the "
                      "commit into \"%s\" failed", p->req->job_id, tp->g[0].dest, tp->g[i].dest);
    }
    for (size_t i = 0; i < tp->n; i++) {
        table_group *g = &tp->g[i];
        if (g->in_txn && g->conn && PQstatus(g->conn) == CONNECTION_OK) {
            PGresult *res = PQexec(g->conn, "ROLLBACK");
            PQclear(res);
        }
        g->in_txn = false;
    }
    if (!ok)
        memset(&out->rows, 0, sizeof *out - offsetof(restore_result, rows));
    else if (progress)
        progress(arg, 1.0, "succeeded");
    return ok;
}

