/*
 * engine_dump.c - the schema of a database, taken by pg_dump run as a child
 * process (pgclient_run_tool) under the backup's exported snapshot. Its
 * stdout streams through sha256 + count into a storage file, so the dump is
 * never held in memory.
 */
#include <stdio.h>

#include "engine_int.h"
#include "pgbr/filter.h"

static bool storage_sink(void *w, const void *data, size_t len, pgbr_error *err)
{
    return storage_write_data(w, data, len, err);
}

/* Run a client program into a storage file through sha256 + count. */
static bool dump_to_storage(const char *prog, const char *const *args, const char *conninfo,
                            const char *dbname, const char *what, storage *st, const char *path,
                            uint64_t *stored_bytes, char sha256[65], pgbr_error *err)
{
    storage_write *w = NULL;
    filter_chain *chain = NULL;
    bool ok = false;
    w = storage_write_open(st, path, err);
    if (!w)
        goto done;
    chain = filter_chain_new(storage_sink, w, err);
    if (!chain || !filter_chain_add(chain, filter_sha256_new(err), "sha256", err) ||
        !filter_chain_add(chain, filter_count_new(err), "count", err))
        goto done;
    if (!pgclient_run_tool(prog, args, conninfo, dbname, what, filter_chain_sink, chain, err))
        goto done;
    if (!filter_chain_finish(chain, err))
        goto done;
    *stored_bytes = filter_count_bytes(filter_chain_get(chain, "count"));
    snprintf(sha256, 65, "%s", filter_sha256_hex(filter_chain_get(chain, "sha256")));
    if (*stored_bytes == 0) {
        pgbr_error_set(err, "XX000", "%s wrote nothing", what);
        goto done;
    }
    ok = storage_write_commit(w, err);
    w = NULL;
done:
    filter_chain_free(chain);
    storage_write_abort(w);
    return ok;
}

bool engine_dump_schema(const char *pg_dump, const char *conninfo, const char *dbname,
                        const char *snapshot, storage *st, const char *path,
                        uint64_t *stored_bytes, char sha256[65], pgbr_error *err)
{
    char snaparg[128], what[256];
    snprintf(snaparg, sizeof(snaparg), "--snapshot=%s", snapshot);
    snprintf(what, sizeof(what), "pg_dump of database \"%s\"", dbname);
    const char *args[] = { "--schema-only", "--format=custom", snaparg, "--no-sync",
                           "--exclude-schema=pgbr", NULL };
    return dump_to_storage(pg_dump, args, conninfo, dbname, what, st, path, stored_bytes, sha256, err);
}

bool engine_dump_roles(const char *pg_dumpall, const char *conninfo, storage *st, const char *path,
                       uint64_t *stored_bytes, char sha256[65], pgbr_error *err)
{
    const char *args[] = { "--globals-only", "--no-sync", NULL };
    return dump_to_storage(pg_dumpall, args, conninfo, NULL, "pg_dumpall --globals-only", st, path,
                           stored_bytes, sha256, err);
}
