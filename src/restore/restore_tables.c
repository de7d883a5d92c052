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
 * destination's transaction.
 *
 * pg_restore -l prints "<id>; <tableoid> <oid> <kind> <schema> <name>
 * <owner>" with no quoting, so names with spaces are found by matching the
 * schema against the schema names the dump holds and taking the owner as
 * the last word; a role name with a space in it would end up in the name.
 * Nothing else parses the dump: pg_restore stays the only reader of its
 * format.
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

/* How an entry of the table of contents takes part in a table restore. */
typedef enum toc_class {
    TC_NEVER = 0,   /* database-wide settings, data, publications...: never */
    TC_REL,         /* a relation: restored when chosen */
    TC_OBJ,         /* a type, function, schema...: created when needed and missing */
    TC_ATTACHED,    /* hangs off relations: default, constraint, index, trigger... */
    TC_LABEL        /* COMMENT, ACL, SECURITY LABEL: follows what it is about */
} toc_class;

static const struct {
    const char *desc;
    toc_class cls;
} toc_kinds[] = {
    { "TABLE", TC_REL }, { "VIEW", TC_REL }, { "MATERIALIZED VIEW", TC_REL }, { "SEQUENCE", TC_REL },
    { "FOREIGN TABLE", TC_REL },
    { "SCHEMA", TC_OBJ }, { "TYPE", TC_OBJ }, { "SHELL TYPE", TC_OBJ }, { "DOMAIN", TC_OBJ },
    { "FUNCTION", TC_OBJ }, { "PROCEDURE", TC_OBJ }, { "AGGREGATE", TC_OBJ }, { "OPERATOR", TC_OBJ },
    { "OPERATOR CLASS", TC_OBJ }, { "OPERATOR FAMILY", TC_OBJ }, { "COLLATION", TC_OBJ },
    { "CONVERSION", TC_OBJ }, { "EXTENSION", TC_OBJ }, { "TEXT SEARCH CONFIGURATION", TC_OBJ },
    { "TEXT SEARCH DICTIONARY", TC_OBJ }, { "TEXT SEARCH PARSER", TC_OBJ },
    { "TEXT SEARCH TEMPLATE", TC_OBJ }, { "PROCEDURAL LANGUAGE", TC_OBJ },
    { "FOREIGN DATA WRAPPER", TC_OBJ }, { "SERVER", TC_OBJ }, { "ACCESS METHOD", TC_OBJ },
    { "CAST", TC_OBJ }, { "TRANSFORM", TC_OBJ },
    { "DEFAULT", TC_ATTACHED }, { "CONSTRAINT", TC_ATTACHED }, { "CHECK CONSTRAINT", TC_ATTACHED },
    { "FK CONSTRAINT", TC_ATTACHED }, { "INDEX", TC_ATTACHED }, { "INDEX ATTACH", TC_ATTACHED },
    { "TABLE ATTACH", TC_ATTACHED }, { "TRIGGER", TC_ATTACHED }, { "RULE", TC_ATTACHED },
    { "POLICY", TC_ATTACHED }, { "ROW SECURITY", TC_ATTACHED }, { "STATISTICS", TC_ATTACHED },
    { "SEQUENCE OWNED BY", TC_ATTACHED },
    { "COMMENT", TC_LABEL }, { "ACL", TC_LABEL }, { "SECURITY LABEL", TC_LABEL },
    /* known, never part of a table restore */
    { "DATABASE", TC_NEVER }, { "DATABASE PROPERTIES", TC_NEVER }, { "ENCODING", TC_NEVER },
    { "STDSTRINGS", TC_NEVER }, { "SEARCHPATH", TC_NEVER }, { "DEFAULT ACL", TC_NEVER },
    { "TABLE DATA", TC_NEVER }, { "SEQUENCE SET", TC_NEVER }, { "MATERIALIZED VIEW DATA", TC_NEVER },
    { "PUBLICATION", TC_NEVER }, { "PUBLICATION TABLE", TC_NEVER },
    { "PUBLICATION TABLES IN SCHEMA", TC_NEVER }, { "SUBSCRIPTION", TC_NEVER },
    { "SUBSCRIPTION TABLE", TC_NEVER }, { "EVENT TRIGGER", TC_NEVER }, { "USER MAPPING", TC_NEVER },
    { "LARGE OBJECT", TC_NEVER }, { "BLOB", TC_NEVER }, { "BLOBS", TC_NEVER },
    { "BLOB METADATA", TC_NEVER },
};

typedef struct toc_entry {
    int id;
    uint32_t oid;
    const char *desc;       /* from toc_kinds (or "?" for a kind pgbr does not know) */
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

static void toc_free(toc *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].schema);
        free(t->e[i].tag);
        free(t->e[i].owner);
        free(t->e[i].line);
        free(t->e[i].deps);
    }
    free(t->e);
    t->e = NULL;
    t->n = 0;
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
        toc_free(&g->toc);
    }
    free(tp->g);
    free(tp);
}

/* ---- the table of contents ---- */

static bool run_tool_capture(restore_plan *p, char *const argv[], const char *what, pgbr_buf *out, pgbr_error *err)
{
    int status = 0;
    char errbuf[PGCLIENT_STDERR_KEEP] = "";
    if (!pgclient_run(argv, NULL, pgbr_buf_sink, out, &status, errbuf, err))
        return false;
    (void)p;
    if (status != 0) {
        pgbr_error_set(err, "XX000", "%s failed with exit status %d", what, status);
        if (errbuf[0])
            pgbr_error_detail(err, "%s", errbuf);
        return false;
    }
    return pgbr_buf_append(out, "", 1, err);
}

static const char *kind_of(const char *rest, toc_class *cls, size_t *len)
{
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t k = 0; k < sizeof toc_kinds / sizeof toc_kinds[0]; k++) {
        size_t l = strlen(toc_kinds[k].desc);
        if (l > best_len && strncmp(rest, toc_kinds[k].desc, l) == 0 && rest[l] == ' ') {
            best = toc_kinds[k].desc;
            best_len = l;
            *cls = toc_kinds[k].cls;
        }
    }
    *len = best_len;
    return best;
}

static int by_id(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

/* Parse the output of pg_restore -l -v. */
static bool toc_parse(char *text, toc *t, pgbr_error *err)
{
    size_t cap = 0;
    /* first pass: the entries, with their dependency ids kept as ints in deps */
    int **rawdeps = NULL;
    size_t *nraw = NULL;
    bool ok = true;
    for (char *line = text, *next; ok && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, ";\tdepends on:", 13) == 0 && t->n > 0) {
            size_t i = t->n - 1, nd = 0;
            int *d = NULL;
            for (char *q = line + 13; ok && *q;) {
                char *end;
                long v = strtol(q, &end, 10);
                if (end == q)
                    break;
                int *g2 = realloc(d, (nd + 1) * sizeof *d);
                if (!g2) {
                    ok = oom(err);
                    break;
                }
                d = g2;
                d[nd++] = (int)v;
                q = end;
            }
            free(rawdeps[i]);
            rawdeps[i] = d;
            nraw[i] = nd;
            continue;
        }
        if (line[0] == ';' || line[0] == '\0')
            continue;
        char *end;
        long id = strtol(line, &end, 10);
        if (end == line || *end != ';')
            continue;
        char *q = end + 1;
        strtoul(q, &end, 10);       /* tableoid */
        q = end;
        unsigned long oid = strtoul(q, &end, 10);
        q = end;
        while (*q == ' ')
            q++;
        if (t->n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            toc_entry *ne = realloc(t->e, nc * sizeof *ne);
            int **nr = ne ? realloc(rawdeps, nc * sizeof *nr) : NULL;
            if (ne)
                t->e = ne;
            if (nr)
                rawdeps = nr;
            size_t *nn = nr ? realloc(nraw, nc * sizeof *nn) : NULL;
            if (nn)
                nraw = nn;
            if (!ne || !nr || !nn) {
                ok = oom(err);
                break;
            }
            cap = nc;
        }
        toc_entry *e = &t->e[t->n];
        memset(e, 0, sizeof *e);
        rawdeps[t->n] = NULL;
        nraw[t->n] = 0;
        e->id = (int)id;
        e->oid = (uint32_t)oid;
        size_t dl = 0;
        e->desc = kind_of(q, &e->cls, &dl);
        if (!e->desc) {
            e->desc = "?";
            e->cls = TC_NEVER;
            dl = strcspn(q, " ");
        }
        q += dl;
        if (*q == ' ')
            q++;
        e->line = strdup(line);
        /* schema, name, owner: split later, once the schema names are known */
        e->tag = strdup(q);
        t->n++;
        if (!e->line || !e->tag)
            ok = oom(err);
    }
    /* the schema names: "- <name> <owner>" of SCHEMA entries */
    char **schemas = NULL;
    size_t nschemas = 0;
    for (size_t i = 0; ok && i < t->n; i++) {
        toc_entry *e = &t->e[i];
        if (strcmp(e->desc, "SCHEMA") != 0 || strncmp(e->tag, "- ", 2) != 0)
            continue;
        char *last = strrchr(e->tag, ' ');
        if (!last || last < e->tag + 2)
            continue;
        char **g2 = realloc(schemas, (nschemas + 1) * sizeof *g2);
        if (!g2 || !(g2[nschemas] = strndup(e->tag + 2, (size_t)(last - e->tag - 2)))) {
            free(g2 ? NULL : schemas);
            if (g2)
                schemas = g2;
            ok = oom(err);
            break;
        }
        schemas = g2;
        nschemas++;
    }
    for (size_t i = 0; ok && i < t->n; i++) {
        toc_entry *e = &t->e[i];
        char *rest = e->tag;
        size_t slen = 0;
        bool dash = strncmp(rest, "- ", 2) == 0;
        if (dash) {
            slen = 1;
        } else {
            /* the longest schema name the line starts with */
            const char *fixed[] = { "public", "pg_catalog" };
            for (size_t k = 0; k < nschemas + 2; k++) {
                const char *s = k < nschemas ? schemas[k] : fixed[k - nschemas];
                size_t l = strlen(s);
                if (l > slen && strncmp(rest, s, l) == 0 && rest[l] == ' ')
                    slen = l;
            }
            if (slen == 0)
                slen = strcspn(rest, " ");
        }
        char *last = strrchr(rest, ' ');
        char *owner_start = last ? last + 1 : rest + strlen(rest);
        char *name_start = rest + slen + (rest[slen] == ' ');
        if (owner_start <= name_start) {
            owner_start = rest + strlen(rest);
            last = NULL;
        }
        e->schema = dash ? NULL : strndup(rest, slen);
        e->owner = strdup(owner_start);
        char *name = strndup(name_start, (size_t)((last ? last : owner_start) - name_start));
        if ((!dash && !e->schema) || !e->owner || !name) {
            free(name);
            ok = oom(err);
            break;
        }
        free(e->tag);
        e->tag = name;
    }
    for (size_t k = 0; k < nschemas; k++)
        free(schemas[k]);
    free(schemas);
    /* dependency ids to indexes */
    int *ids = ok ? malloc((t->n ? t->n : 1) * 2 * sizeof(int)) : NULL;
    if (ok && !ids)
        ok = oom(err);
    if (ok) {
        for (size_t i = 0; i < t->n; i++) {
            ids[2 * i] = t->e[i].id;
            ids[2 * i + 1] = (int)i;
        }
        qsort(ids, t->n, 2 * sizeof(int), by_id);
    }
    for (size_t i = 0; ok && i < t->n; i++) {
        toc_entry *e = &t->e[i];
        e->deps = calloc(nraw[i] ? nraw[i] : 1, sizeof(size_t));
        if (!e->deps) {
            ok = oom(err);
            break;
        }
        for (size_t k = 0; k < nraw[i]; k++) {
            int key[2] = { rawdeps[i][k], 0 };
            int *hit = bsearch(key, ids, t->n, 2 * sizeof(int), by_id);
            if (!hit || hit[1] == (int)i)
                continue;
            size_t idx = (size_t)hit[1];
            bool dup = false;
            for (size_t j = 0; j < e->ndeps && !dup; j++)
                dup = e->deps[j] == idx;
            if (!dup)
                e->deps[e->ndeps++] = idx;
        }
    }
    free(ids);
    for (size_t i = 0; i < t->n; i++)
        free(rawdeps[i]);
    free(rawdeps);
    free(nraw);
    return ok;
}

static bool load_toc(restore_plan *p, table_group *g, pgbr_error *err)
{
    char *prog = pgclient_find_tool("pg_restore", p->req->pg_restore_path, p->server_num);
    pgbr_buf out = PGBR_BUF_INIT;
    char what[300];
    if (!prog)
        return oom(err);
    snprintf(what, sizeof what, "pg_restore -l of the schema of database \"%s\"", g->src->name);
    char *argv[] = { prog, "-l", "-v", g->dump, NULL };
    bool ok = run_tool_capture(p, argv, what, &out, err) && toc_parse((char *)out.data, &g->toc, err);
    free(prog);
    pgbr_buf_free(&out);
    return ok;
}

/* ---- a database restore without pgbr's own publication ---- */

static bool write_list(restore_plan *p, table_group *g, size_t n, pgbr_error *err);

bool restore_list_without_publication(restore_plan *p, const char *dump, const char *publication, size_t n,
                                      char **list_path, pgbr_error *err)
{
    table_group g;
    memset(&g, 0, sizeof g);
    g.dump = (char *)dump;
    manifest_database fake = { .name = (char *)"?" };
    g.src = &fake;
    *list_path = NULL;
    bool ok = load_toc(p, &g, err);
    for (size_t i = 0; ok && i < g.toc.n; i++) {
        toc_entry *e = &g.toc.e[i];
        e->include = true;
        if (strcmp(e->desc, "PUBLICATION") == 0 && strcmp(e->tag, publication) == 0)
            e->include = false;
    }
    /* what hangs off it: its tables, schemas, comment */
    for (bool changed = ok; changed;) {
        changed = false;
        for (size_t i = 0; i < g.toc.n; i++) {
            toc_entry *e = &g.toc.e[i];
            for (size_t k = 0; e->include && k < e->ndeps; k++)
                if (!g.toc.e[e->deps[k]].include && strncmp(g.toc.e[e->deps[k]].desc, "PUBLICATION", 11) == 0) {
                    e->include = false;
                    changed = true;
                }
        }
    }
    if (ok) {
        g.dest = (char *)"";
        ok = write_list(p, &g, n + 1000, err);
        *list_path = g.list;
        g.list = NULL;
        g.dest = NULL;
    }
    g.dump = NULL;
    toc_free(&g.toc);
    return ok;
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
    if (!restore_fetch_schema(p, src, tp->n - 1, &g->dump, err) || !load_toc(p, g, err))
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
    PGresult *res = PQexecParams(conn,
                                 "SELECT ' DEFAULT nextval(' || pg_catalog.quote_literal(pg_catalog.format('%I.%I', "
                                 "$1::text, $2::text)) || '::regclass)'",
                                 2, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgclient_error_from(conn, res, NULL, err);
        PQclear(res);
        return false;
    }
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
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgclient_error_from(conn, res, NULL, err);
        PQclear(res);
        return false;
    }
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

static bool write_list(restore_plan *p, table_group *g, size_t n, pgbr_error *err)
{
    const char *dir = getenv("TMPDIR");
    if (asprintf(&g->list, "%s/pgbr-restore-%" PRId64 "-%zu-list-XXXXXX", dir && *dir ? dir : "/tmp",
                 p->req->job_id, n) < 0) {
        g->list = NULL;
        return oom(err);
    }
    int fd = mkstemp(g->list);
    if (fd < 0) {
        pgbr_error_set(err, "58030", "could not create temporary file \"%s\": %s", g->list, strerror(errno));
        free(g->list);
        g->list = NULL;
        return false;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return pgbr_error_set(err, "58030", "could not write \"%s\": %s", g->list, strerror(errno));
    }
    for (size_t i = 0; i < g->toc.n; i++)
        if (g->toc.e[i].include)
            fprintf(f, "%s\n", g->toc.e[i].line);
    if (fclose(f) != 0)
        return pgbr_error_set(err, "58030", "could not write \"%s\": %s", g->list, strerror(errno));
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
            !choose_objects(g, err) || !choose_ownership(p, g, err) || !write_list(p, g, i, err) ||
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
        toc_free(&g->toc);
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
    bool ok = run_tool_capture(p, argv, what, &raw, err);
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
    if (p->nlayers > 1 && !p->req->schema_only) {
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
