/*
 * internal.c - queries pgbr runs on the client's own upstream session (the
 * executor's privilege checks and user-supplied SELECTs): sent with a
 * reserved statement name, ended by Sync between batches or by Flush inside
 * the client's unsynced extended batch, and answered to pgbr instead of the
 * client. Loop thread only.
 */
#include "session.h"

#include <event2/buffer.h>
#include <stdlib.h>

#include "pgbr/proto.h"

#define INTERNAL_NAME "__pgbr_internal__"

/* ---- internal queries on the client's upstream session ---- */

void local_run_query(void *sp, const char *sql, int nparams, const char *const *params, exec_query_cb cb,
                     void *arg)
{
    session *s = sp;
    internal_query *iq;
    struct evbuffer *out;
    if (s->upstream == NULL || s->phase != PHASE_READY || s->internal != NULL) {
        pgbr_error err = PGBR_ERROR_INIT;
        pgbr_error_set(&err, "08006", "the upstream connection is not available");
        cb(arg, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    iq = calloc(1, sizeof *iq);
    iq->cb = cb;
    iq->arg = arg;
    /* Between batches a Sync ends our query; inside the client's unsynced
     * extended batch we must not end it, so Flush instead. */
    iq->synced = !s->upstream_unsynced;
    s->internal = iq;
    out = bufferevent_get_output(s->upstream);
    /* An earlier internal query that failed left its statement and portal
     * behind (PostgreSQL skipped the Closes after the error): close them
     * first. Closing what does not exist is not an error. */
    proto_put_close(out, 'P', INTERNAL_NAME);
    proto_put_close(out, 'S', INTERNAL_NAME);
    proto_put_parse(out, INTERNAL_NAME, sql);
    proto_put_bind_text(out, INTERNAL_NAME, INTERNAL_NAME, nparams, params);
    proto_put_describe(out, 'P', INTERNAL_NAME);
    proto_put_execute(out, INTERNAL_NAME, 0);
    proto_put_close(out, 'P', INTERNAL_NAME);
    proto_put_close(out, 'S', INTERNAL_NAME);
    if (iq->synced)
        proto_put_sync(out);
    else
        proto_put_flush(out);
}

static void internal_complete(session *s)
{
    internal_query *iq = s->internal;
    s->internal = NULL;
    if (iq->failed) {
        if (iq->rs)
            result_set_free(iq->rs);
        iq->cb(iq->arg, NULL, &iq->err);
    } else {
        if (iq->rs == NULL)
            iq->rs = result_set_new(0, NULL, NULL);
        iq->cb(iq->arg, iq->rs, NULL);
    }
    pgbr_error_clear(&iq->err);
    free(iq);
}

void local_internal_message(session *s, uint8_t type, const uint8_t *body, uint32_t len)
{
    internal_query *iq = s->internal;
    switch (type) {
    case 'T': {
        const char *names[1600];
        int ncols;
        if (proto_parse_row_description(body, len, &ncols, names, 1600) && ncols <= 1600 && iq->rs == NULL) {
            uint32_t *oids = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof(uint32_t));
            for (int i = 0; i < ncols; i++)
                oids[i] = PGBR_OID_TEXT;
            iq->rs = result_set_new(ncols, names, oids);
            free(oids);
        }
        break;
    }
    case 'D': {
        char *values[1600];
        int ncols;
        if (iq->rs != NULL && proto_parse_data_row(body, len, &ncols, values, 1600)) {
            if (ncols == iq->rs->ncols)
                result_set_add_row(iq->rs, (const char *const *)values);
            for (int i = 0; i < ncols && i < 1600; i++)
                free(values[i]);
        }
        break;
    }
    case 'E': {
        proto_error_fields f;
        if (!iq->failed) {
            iq->failed = true;
            if (proto_parse_error(body, len, &f) && f.message)
                pgbr_error_set(&iq->err, f.code ? f.code : "XX000", "%s", f.message);
            else
                pgbr_error_set(&iq->err, "XX000", "the upstream server reported an error");
            if (proto_parse_error(body, len, &f)) {
                if (f.detail)
                    pgbr_error_detail(&iq->err, "%s", f.detail);
                if (f.hint)
                    pgbr_error_hint(&iq->err, "%s", f.hint);
            }
        }
        if (!iq->synced)
            internal_complete(s);
        break;
    }
    case '3':   /* two leading Closes, then the two final ones */
        if (++iq->closes_seen == 4 && !iq->synced)
            internal_complete(s);
        break;
    case 'Z':
        if (len == 1)
            s->txn_status = (char)body[0];
        s->upstream_unsynced = false;
        internal_complete(s);
        break;
    default:    /* '1', '2', 'n', 'C', 'I', 'N': nothing to keep */
        break;
    }
}
