/*
 * restore_toc.c - the table of contents of a schema dump, as pg_restore
 * lists it (the contract is restore_toc.h): `pg_restore -l -v` parsed into
 * entries, and pg_restore lists (-L) written from the entries included.
 *
 * pg_restore -l prints "<id>; <tableoid> <oid> <kind> <schema> <name>
 * <owner>" with no quoting, so names with spaces are found by matching the
 * schema against the schema names the dump holds and taking the owner as
 * the last word; a role name with a space in it would end up in the name.
 * The "depends on:" comment lines of -v give each entry's dependencies by
 * dump id, turned into indexes into the entries. Nothing else parses the
 * dump: pg_restore stays the only reader of its format.
 */
#include "restore_toc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgbr/pgclient.h"

/* The kinds pg_restore -l prints, and how each takes part in a table restore. */
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

static bool oom(pgbr_error *err)
{
    return pgbr_error_set(err, "53200", "out of memory");
}

void restore_toc_free(toc *t)
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

bool restore_toc_capture(char *const argv[], const char *what, pgbr_buf *out, pgbr_error *err)
{
    int status = 0;
    char errbuf[PGCLIENT_STDERR_KEEP] = "";
    if (!pgclient_run(argv, NULL, pgbr_buf_sink, out, &status, errbuf, err))
        return false;
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

bool restore_toc_load(restore_plan *p, const char *dump, const char *dbname, toc *t, pgbr_error *err)
{
    char *prog = pgclient_find_tool("pg_restore", p->req->pg_restore_path, p->server_num);
    pgbr_buf out = PGBR_BUF_INIT;
    char what[300];
    if (!prog)
        return oom(err);
    snprintf(what, sizeof what, "pg_restore -l of the schema of database \"%s\"", dbname);
    char *argv[] = { prog, "-l", "-v", (char *)dump, NULL };
    bool ok = restore_toc_capture(argv, what, &out, err) && toc_parse((char *)out.data, t, err);
    free(prog);
    pgbr_buf_free(&out);
    return ok;
}

bool restore_toc_write_list(restore_plan *p, const toc *t, size_t n, char **path, pgbr_error *err)
{
    const char *dir = getenv("TMPDIR");
    if (asprintf(path, "%s/pgbr-restore-%" PRId64 "-%zu-list-XXXXXX", dir && *dir ? dir : "/tmp",
                 p->req->job_id, n) < 0) {
        *path = NULL;
        return oom(err);
    }
    int fd = mkstemp(*path);
    if (fd < 0) {
        pgbr_error_set(err, "58030", "could not create temporary file \"%s\": %s", *path, strerror(errno));
        free(*path);
        *path = NULL;
        return false;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return pgbr_error_set(err, "58030", "could not write \"%s\": %s", *path, strerror(errno));
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].include)
            fprintf(f, "%s\n", t->e[i].line);
    if (fclose(f) != 0)
        return pgbr_error_set(err, "58030", "could not write \"%s\": %s", *path, strerror(errno));
    return true;
}

/* ---- a database restore without pgbr's own publication ---- */

bool restore_list_without_publication(restore_plan *p, const char *dump, const char *publication, size_t n,
                                      char **list_path, pgbr_error *err)
{
    toc t = { NULL, 0 };
    *list_path = NULL;
    bool ok = restore_toc_load(p, dump, "?", &t, err);
    for (size_t i = 0; ok && i < t.n; i++) {
        toc_entry *e = &t.e[i];
        e->include = true;
        if (strcmp(e->desc, "PUBLICATION") == 0 && strcmp(e->tag, publication) == 0)
            e->include = false;
    }
    /* what hangs off it: its tables, schemas, comment */
    for (bool changed = ok; changed;) {
        changed = false;
        for (size_t i = 0; i < t.n; i++) {
            toc_entry *e = &t.e[i];
            for (size_t k = 0; e->include && k < e->ndeps; k++)
                if (!t.e[e->deps[k]].include && strncmp(t.e[e->deps[k]].desc, "PUBLICATION", 11) == 0) {
                    e->include = false;
                    changed = true;
                }
        }
    }
    if (ok)
        ok = restore_toc_write_list(p, &t, n + 1000, list_path, err);
    restore_toc_free(&t);
    return ok;
}
