/*
 * show_backups.c - SHOW BACKUPS IN <collection>: the full backups of a
 * collection, one row per subdirectory (`path`, ascending), as the
 * reference's section 4.3 gives them. Incrementals are not listed.
 *
 * Privileges (spec/README.md): reading a nodelocal:// or file:// location
 * needs the admin role (superuser or member of --admin-role), decided on the
 * client's own session. The listing itself runs on a worker thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "pgbr/layout.h"
#include "pgbr/storage.h"

/* Worker thread: list the collection. Touches only req->backups and the
 * immutable configuration copies. */
static void backups_work(exec_request *req, struct pg_conn *catalog_conn)
{
    storage_config cfg = { req->external_io_dir, req->node_id };
    static const char *const names[] = { "path" };
    static const uint32_t types[] = { PGBR_OID_TEXT };
    storage *st;
    layout_list list = { 0 };

    (void)catalog_conn;
    st = storage_open(req->backups.uri, &cfg, &req->backups.err);
    if (st == NULL)
        return;
    if (layout_list_full_backups(st, &list, &req->backups.err)) {
        result_set *rs = result_set_new(1, names, types);
        for (size_t i = 0; i < list.n; i++) {
            const char *row[1] = { list.items[i] };
            result_set_add_row(rs, row);
        }
        result_set_set_tag(rs, "SHOW BACKUPS %d", rs->nrows);
        req->backups.rs = rs;
    }
    layout_list_free(&list);
    storage_close(st);
}

static void backups_after(exec_request *req)
{
    result_set *rs = req->backups.rs;
    req->backups.rs = NULL;
    if (rs != NULL)
        exec_finish(req, rs, NULL);
    else
        exec_finish(req, NULL, &req->backups.err);
}

static void backups_on_identity(exec_request *req)
{
    if (exec_check_implicit_access(req, req->backups.uri))
        exec_submit(req, backups_work, backups_after);
}

void exec_show_backups_start(exec_request *req)
{
    const sql_show_backups *sb = &req->stmt->u.show_backups;
    pgbr_error err = PGBR_ERROR_INIT;
    const char *uri;

    if (sb->in.n < 1) {
        exec_fail(req, "42601", "SHOW BACKUPS needs a collection URI");
        return;
    }
    /* With locality-aware URIs, the first (default locality) one holds the
     * backups' manifests (reference section 11). */
    uri = exec_string_value(req, &sb->in.items[0], &err);
    if (uri == NULL) {
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    req->backups.uri = strdup(uri);
    exec_identify(req, backups_on_identity);
}
