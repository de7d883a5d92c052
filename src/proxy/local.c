/*
 * local.c - pgbr's own statements inside a client session: simple Query
 * messages made only of our statements, and the extended protocol
 * (Parse/Bind/Describe/Execute/Close) for statements prepared from ours.
 * Also the internal queries the executor runs on the client's own upstream
 * session (privilege checks, user-supplied SELECTs), whose answers pgbr
 * consumes instead of relaying.
 *
 * Everything here runs on the loop thread. A local operation starts only when
 * every earlier forwarded message has been answered (see session.h).
 */
#include "session.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/log.h"
#include "pgbr/proto.h"


/*
 * PostgreSQL aborts a transaction (or an extended-protocol batch) when a
 * statement in it fails. When one of ours fails inside one, pgbr makes the
 * upstream transaction fail the same way, so the client sees the state it
 * expects (25P02 afterwards, ReadyForQuery 'E', the batch rolled back).
 */
#define ABORT_SQL                                                                                       \
    "DO $pgbr$BEGIN RAISE EXCEPTION 'transaction aborted because a pgbr statement failed'; END$pgbr$"

static void run_simple_next(session *s);

static struct evbuffer *client_out(session *s)
{
    return bufferevent_get_output(s->client);
}

static void put_pgbr_error(session *s, const pgbr_error *err)
{
    proto_put_error(client_out(s), "ERROR", err->sqlstate[0] ? err->sqlstate : "XX000",
                    err->message ? err->message : "internal error", err->detail, err->hint, err->position);
}

static void op_free(local_op *op)
{
    if (op == NULL)
        return;
    free(op->msg);
    free(op->query);
    free(op->spans);
    if (op->stmts != NULL)
        for (int i = 0; i < op->nspans; i++)
            sql_stmt_free(op->stmts[i]);
    free(op->stmts);
    pgbr_error_clear(&op->err);
    free(op->info_datestyle);
    free(op->info_timezone);
    free(op->info_intervalstyle);
    free(op);
}

static local_op *op_new(local_op_kind kind, const uint8_t *msg, uint32_t len)
{
    local_op *op = calloc(1, sizeof *op);
    op->kind = kind;
    op->msg = malloc(len > 0 ? len : 1);
    memcpy(op->msg, msg, len);
    op->msg_len = len;
    return op;
}

static void finish(session *s)
{
    local_op *op = s->local;
    op_free(op);
    session_finish_local(s);
}

/* Number of characters (not bytes) in the first n bytes of UTF-8 text. */
static int char_count(const char *text, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* exec_session_ops.watch_client: read the client during a long statement
 * of ours, so its EOF closes the session (session_pump_client keeps what it
 * sends for later and stops reading past SESSION_HIGH_WATER). */
static void local_watch_client(void *sp)
{
    session *s = sp;
    if (s->local != NULL && s->phase == PHASE_READY && !s->client_throttled &&
        evbuffer_get_length(bufferevent_get_input(s->client)) <= SESSION_HIGH_WATER)
        session_set_reading(s, true, true);
}

static void fill_info(session *s, local_op *op)
{
    free(op->info_datestyle);
    free(op->info_timezone);
    free(op->info_intervalstyle);
    op->info_datestyle = s->datestyle ? strdup(s->datestyle) : NULL;
    op->info_timezone = s->timezone ? strdup(s->timezone) : NULL;
    op->info_intervalstyle = s->intervalstyle ? strdup(s->intervalstyle) : NULL;
    op->info.user = s->user;
    op->info.database = s->database;
    op->info.application_name = s->application_name;
    op->info.txn_status = s->txn_status;
    op->info.datestyle = op->info_datestyle;
    op->info.timezone = op->info_timezone;
    op->info.intervalstyle = op->info_intervalstyle;
    {
        static const exec_session_ops ops = { local_run_query, local_watch_client };
        op->info.ops = &ops;
    }
    op->info.session = s;
    op->info.base = proxy_base();
}

/* ---- statements and portals ---- */

static local_stmt *find_stmt(session *s, const char *name)
{
    for (local_stmt *st = s->stmts; st; st = st->next)
        if (strcmp(st->name, name) == 0)
            return st;
    return NULL;
}

static local_portal *find_portal(session *s, const char *name)
{
    for (local_portal *p = s->portals; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static void stmt_free(local_stmt *st)
{
    free(st->name);
    free(st->text);
    sql_stmt_free(st->stmt);
    free(st->param_types);
    free(st);
}

static void portal_free(local_portal *p)
{
    free(p->name);
    free(p->text);
    sql_stmt_free(p->stmt);
    for (int i = 0; i < p->nparams; i++)
        free(p->params[i]);
    free(p->params);
    if (p->result)
        result_set_free(p->result);
    free(p);
}

static void remove_stmt(session *s, const char *name)
{
    for (local_stmt **pp = &s->stmts; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            local_stmt *st = *pp;
            *pp = st->next;
            stmt_free(st);
            return;
        }
    }
}

static void remove_portal(session *s, const char *name)
{
    for (local_portal **pp = &s->portals; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            local_portal *p = *pp;
            *pp = p->next;
            portal_free(p);
            return;
        }
    }
}

bool local_has_statement(session *s, const char *name)
{
    return find_stmt(s, name) != NULL;
}

void local_forget_unnamed_statement(session *s, const char *name)
{
    if (name[0] == '\0')
        remove_stmt(s, "");
}

void local_forget_portal(session *s, const char *name)
{
    remove_portal(s, name);
}

void local_drop_portals(session *s)
{
    while (s->portals) {
        local_portal *p = s->portals;
        s->portals = p->next;
        portal_free(p);
    }
}

void local_free_all(session *s)
{
    if (s->local) {
        if (s->local->req)
            exec_abandon(s->local->req);
        s->local->req = NULL;
    }
    if (s->internal) {
        /* The executor was abandoned above; let it release what it holds. */
        internal_query *iq = s->internal;
        pgbr_error err = PGBR_ERROR_INIT;
        s->internal = NULL;
        pgbr_error_set(&err, "08006", "the client connection was closed");
        if (iq->cb)
            iq->cb(iq->arg, NULL, &err);
        pgbr_error_clear(&err);
        if (iq->rs)
            result_set_free(iq->rs);
        pgbr_error_clear(&iq->err);
        free(iq);
    }
    op_free(s->local);
    s->local = NULL;
    while (s->stmts) {
        local_stmt *st = s->stmts;
        s->stmts = st->next;
        stmt_free(st);
    }
    local_drop_portals(s);
}

/* ---- routing: is this message ours? ---- */

/* Classify a query text: 0 = forward, 1 = only ours, -1 = a mix. */
static int classify_query(const char *query, size_t len, sql_span **spans_out, int *nspans_out)
{
    sql_span *spans = NULL;
    int nspans = 0, ours = 0, fwd = 0;
    sql_split(query, len, &spans, &nspans);
    for (int i = 0; i < nspans; i++) {
        if (spans[i].kind == SQL_SPAN_OURS)
            ours++;
        else if (spans[i].kind == SQL_SPAN_FORWARD)
            fwd++;
    }
    if (spans_out) {
        *spans_out = spans;
        *nspans_out = nspans;
    } else {
        free(spans);
    }
    if (ours == 0)
        return 0;
    return fwd == 0 ? 1 : -1;
}

bool local_handle_query(session *s, const uint8_t *body, uint32_t len)
{
    size_t qlen = strnlen((const char *)body, len);
    sql_span *spans = NULL;
    int nspans = 0;
    int kind = classify_query((const char *)body, qlen, &spans, &nspans);
    local_op *op;
    if (kind == 0) {
        free(spans);
        return false;
    }
    if (kind < 0) {
        free(spans);
        op = op_new(LOP_ERROR_READY, body, len);
        pgbr_error_set(&op->err, "0A000", "pgbr statements cannot be combined with other statements in one query");
        pgbr_error_hint(&op->err, "Send BACKUP, RESTORE, SHOW JOBS and the other pgbr statements as queries of "
                                  "their own. Nothing in this query was executed.");
        session_enqueue_local(s, op);
        return true;
    }
    op = op_new(LOP_SIMPLE_QUERY, body, len);
    op->query = (char *)op->msg;
    op->msg = NULL;
    op->query_len = qlen;
    op->spans = spans;
    op->nspans = nspans;
    session_enqueue_local(s, op);
    return true;
}

bool local_handle_parse(session *s, const uint8_t *body, uint32_t len)
{
    proto_parse_msg pm;
    int kind, nonempty = 0;
    sql_span *spans = NULL;
    int nspans = 0;
    local_op *op;
    if (!proto_parse_parse(body, len, &pm))
        return false;   /* malformed: let PostgreSQL report it */
    if (!sql_maybe_ours(pm.query, strlen(pm.query))) {
        local_forget_unnamed_statement(s, pm.name);
        if (pm.name[0] != '\0' && local_has_statement(s, pm.name))
            goto duplicate;
        return false;
    }
    kind = classify_query(pm.query, strlen(pm.query), &spans, &nspans);
    for (int i = 0; i < nspans; i++)
        if (spans[i].kind != SQL_SPAN_EMPTY)
            nonempty++;
    free(spans);
    if (kind == 0) {
        local_forget_unnamed_statement(s, pm.name);
        if (pm.name[0] != '\0' && local_has_statement(s, pm.name))
            goto duplicate;
        return false;
    }
    op = op_new(LOP_PARSE, body, len);
    if (nonempty > 1)
        pgbr_error_set(&op->err, "42601", "cannot insert multiple commands into a prepared statement");
    else if (pm.name[0] != '\0' && local_has_statement(s, pm.name))
        pgbr_error_set(&op->err, "42P05", "prepared statement \"%s\" already exists", pm.name);
    session_enqueue_local(s, op);
    return true;
duplicate:
    op = op_new(LOP_PARSE, body, len);
    pgbr_error_set(&op->err, "42P05", "prepared statement \"%s\" already exists", pm.name);
    session_enqueue_local(s, op);
    return true;
}

bool local_handle_bind(session *s, const uint8_t *body, uint32_t len)
{
    const char *portal, *statement;
    if (!proto_parse_bind_names(body, len, &portal, &statement))
        return false;
    if (!local_has_statement(s, statement)) {
        local_forget_portal(s, portal);
        return false;
    }
    session_enqueue_local(s, op_new(LOP_BIND, body, len));
    return true;
}

bool local_handle_describe(session *s, const uint8_t *body, uint32_t len)
{
    char kind;
    const char *name;
    if (!proto_parse_describe(body, len, &kind, &name))
        return false;
    if (kind == 'S' ? !local_has_statement(s, name) : find_portal(s, name) == NULL)
        return false;
    session_enqueue_local(s, op_new(LOP_DESCRIBE, body, len));
    return true;
}

bool local_handle_execute(session *s, const uint8_t *body, uint32_t len)
{
    const char *portal;
    int32_t max_rows;
    if (!proto_parse_execute(body, len, &portal, &max_rows) || find_portal(s, portal) == NULL)
        return false;
    session_enqueue_local(s, op_new(LOP_EXECUTE, body, len));
    return true;
}

bool local_handle_close(session *s, const uint8_t *body, uint32_t len)
{
    char kind;
    const char *name;
    if (!proto_parse_describe(body, len, &kind, &name))
        return false;
    if (kind == 'S' ? !local_has_statement(s, name) : find_portal(s, name) == NULL)
        return false;
    session_enqueue_local(s, op_new(LOP_CLOSE, body, len));
    return true;
}

/* ---- running local operations ---- */

static void put_result(session *s, const result_set *rs, bool with_description)
{
    if (rs->has_rows && with_description)
        proto_put_row_description(client_out(s), rs);
    proto_put_data_rows(client_out(s), rs, 0, rs->nrows);
    proto_put_command_complete(client_out(s), rs->command_tag ? rs->command_tag : "SELECT 0");
}

static void put_notices(session *s, const char *const *notices)
{
    for (int i = 0; notices && notices[i]; i++)
        proto_put_notice(client_out(s), notices[i]);
}

static void abort_done(void *arg, result_set *rs, pgbr_error *err)
{
    session *s = arg;
    (void)err;   /* the error is the point */
    if (rs)
        result_set_free(rs);
    if (s->phase != PHASE_READY || s->local == NULL)
        return;
    s->local->after_abort(s);
}

/* Report err for the running local op, abort the upstream transaction or
 * batch if there is one, then continue with cont (which finishes the op). */
static void fail_local(session *s, const pgbr_error *err, void (*cont)(void *s))
{
    put_pgbr_error(s, err);
    if (s->txn_status == 'T' || s->upstream_unsynced) {
        s->local->after_abort = cont;
        local_run_query(s, ABORT_SQL, 0, NULL, abort_done, s);
        return;
    }
    cont(s);
}

static void simple_after_error(void *sp)
{
    session *s = sp;
    proto_put_ready(client_out(s), s->txn_status);
    finish(s);
}

static void extended_after_error(void *sp)
{
    session *s = sp;
    s->local_skipping = true;
    finish(s);
}

static void simple_done(void *arg, result_set *rs, pgbr_error *err, const char *const *notices)
{
    session *s = arg;
    local_op *op = s->local;
    op->req = NULL;
    op->exec_done_gen = op->exec_gen;
    put_notices(s, notices);
    if (err != NULL) {
        if (rs)
            result_set_free(rs);
        fail_local(s, err, simple_after_error);
        return;
    }
    put_result(s, rs, true);
    result_set_free(rs);
    run_simple_next(s);
}

/* The text a span's statement is parsed from: with its ';' when it has one,
 * so errors at the end read "at or near \";\"" as PostgreSQL's do. */
static size_t span_text_len(const local_op *op, const sql_span *sp)
{
    size_t len = sp->end - sp->start;
    if (sp->end < op->query_len && op->query[sp->end] == ';')
        len++;
    return len;
}

/* PostgreSQL parses a whole query string before running any of it: a syntax
 * error anywhere means nothing runs. */
static bool parse_all(session *s, local_op *op)
{
    op->stmts = calloc((size_t)(op->nspans > 0 ? op->nspans : 1), sizeof(sql_stmt *));
    for (int i = 0; i < op->nspans; i++) {
        sql_span *sp = &op->spans[i];
        pgbr_error err = PGBR_ERROR_INIT;
        if (sp->kind == SQL_SPAN_EMPTY)
            continue;
        op->stmts[i] = sql_parse(op->query + sp->start, span_text_len(op, sp), char_count(op->query, sp->start), &err);
        if (op->stmts[i] == NULL) {
            fail_local(s, &err, simple_after_error);
            pgbr_error_clear(&err);
            return false;
        }
    }
    return true;
}

static void run_simple_next(session *s)
{
    local_op *op = s->local;
    while (op->next_span < op->nspans && op->spans[op->next_span].kind == SQL_SPAN_EMPTY)
        op->next_span++;
    if (op->cancel_requested && op->next_span < op->nspans) {
        pgbr_error err = PGBR_ERROR_INIT;
        pgbr_error_set(&err, "57014", "canceling statement due to user request");
        fail_local(s, &err, simple_after_error);
        pgbr_error_clear(&err);
        return;
    }
    if (op->next_span >= op->nspans) {
        proto_put_ready(client_out(s), s->txn_status);
        finish(s);
        return;
    }
    {
        int i = op->next_span++;
        sql_span *sp = &op->spans[i];
        char *stmt_text = strndup(op->query + sp->start, sp->end - sp->start);
        exec_params none = { 0, NULL };
        unsigned gen = ++op->exec_gen;
        exec_request *req;
        fill_info(s, op);
        op->req = NULL;
        /* exec_start may complete (and even start the next statement)
         * before it returns: keep the handle only if still running */
        req = exec_start(op->stmts[i], stmt_text, &none, &op->info, simple_done, s);
        free(stmt_text);
        if (s->local == op && op->exec_done_gen < gen)
            op->req = req;
    }
}

static void extended_error(session *s, const pgbr_error *err)
{
    fail_local(s, err, extended_after_error);
}

static void run_parse(session *s, local_op *op)
{
    proto_parse_msg pm;
    local_stmt *st;
    pgbr_error err = PGBR_ERROR_INIT;
    sql_stmt *stmt;
    proto_parse_parse(op->msg, op->msg_len, &pm);
    if (pgbr_error_is_set(&op->err)) {
        extended_error(s, &op->err);
        return;
    }
    stmt = sql_parse(pm.query, strlen(pm.query), 0, &err);
    if (stmt == NULL) {
        extended_error(s, &err);
        pgbr_error_clear(&err);
        return;
    }
    remove_stmt(s, pm.name);
    st = calloc(1, sizeof *st);
    st->name = strdup(pm.name);
    st->text = strdup(pm.query);
    st->stmt = stmt;
    st->nparam_types = pm.nparam_types;
    if (pm.nparam_types > 0) {
        st->param_types = calloc((size_t)pm.nparam_types, sizeof(uint32_t));
        for (int i = 0; i < pm.nparam_types; i++) {
            uint32_t v;
            memcpy(&v, pm.param_types + 4 * i, 4);
            st->param_types[i] = ntohl(v);
        }
    }
    st->next = s->stmts;
    s->stmts = st;
    proto_put_empty(client_out(s), '1');
    finish(s);
}

static uint32_t param_type(const local_stmt *st, int i)
{
    if (i < st->nparam_types && st->param_types[i] != 0)
        return st->param_types[i];
    return PGBR_OID_TEXT;
}

/* Binary parameter values pgbr accepts: integers, bool, and text-like types. */
static char *decode_binary_param(uint32_t type, const uint8_t *v, int32_t len, pgbr_error *err)
{
    char buf[32];
    switch (type) {
    case 21:
        if (len != 2)
            break;
        snprintf(buf, sizeof buf, "%d", (int16_t)((v[0] << 8) | v[1]));
        return strdup(buf);
    case PGBR_OID_INT4:
        if (len != 4)
            break;
        snprintf(buf, sizeof buf, "%" PRId32, (int32_t)(((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) |
                                                       ((uint32_t)v[2] << 8) | v[3]));
        return strdup(buf);
    case PGBR_OID_INT8: {
        uint64_t u = 0;
        if (len != 8)
            break;
        for (int i = 0; i < 8; i++)
            u = (u << 8) | v[i];
        snprintf(buf, sizeof buf, "%" PRId64, (int64_t)u);
        return strdup(buf);
    }
    case PGBR_OID_BOOL:
        if (len != 1)
            break;
        return strdup(v[0] ? "true" : "false");
    default: {
        char *t = malloc((size_t)len + 1);
        memcpy(t, v, (size_t)len);
        t[len] = '\0';
        return t;
    }
    }
    pgbr_error_set(err, "22P03", "incorrect binary data format in bind parameter");
    return NULL;
}

static void run_bind(session *s, local_op *op)
{
    proto_bind_msg b;
    local_stmt *st;
    local_portal *p;
    pgbr_error err = PGBR_ERROR_INIT;
    if (!proto_parse_bind(op->msg, op->msg_len, &b)) {
        pgbr_error_set(&err, "08P01", "invalid Bind message");
        goto fail;
    }
    st = find_stmt(s, b.statement);
    if (st == NULL) {
        pgbr_error_set(&err, "26000", "prepared statement \"%s\" does not exist", b.statement);
        goto fail;
    }
    if (b.nparams != st->stmt->nparams) {
        pgbr_error_set(&err, "08P01", "bind message supplies %d parameters, but prepared statement \"%s\" requires %d",
                       b.nparams, b.statement, st->stmt->nparams);
        goto fail;
    }
    for (int i = 0; i < b.nresult_formats; i++) {
        if (b.result_formats[2 * i] != 0 || b.result_formats[2 * i + 1] != 0) {
            pgbr_error_set(&err, "0A000", "binary result format is not supported for pgbr statements");
            pgbr_error_hint(&err, "Request text results for %s.", sql_stmt_name(st->stmt));
            goto fail;
        }
    }
    p = calloc(1, sizeof *p);
    p->name = strdup(b.portal);
    p->text = strdup(st->text);
    p->stmt = sql_parse(st->text, strlen(st->text), 0, &err);
    p->nparams = b.nparams;
    p->params = calloc((size_t)(b.nparams > 0 ? b.nparams : 1), sizeof(char *));
    for (int i = 0; i < b.nparams; i++) {
        const uint8_t *v;
        int32_t vlen;
        int16_t fmt;
        if (!proto_bind_param(&b, i, &v, &vlen, &fmt)) {
            pgbr_error_set(&err, "08P01", "invalid Bind message");
            break;
        }
        if (v == NULL)
            p->params[i] = NULL;
        else if (fmt == 1)
            p->params[i] = decode_binary_param(param_type(st, i), v, vlen, &err);
        else
            p->params[i] = strndup((const char *)v, (size_t)vlen);
        if (pgbr_error_is_set(&err))
            break;
    }
    if (pgbr_error_is_set(&err) || p->stmt == NULL) {
        portal_free(p);
        goto fail;
    }
    remove_portal(s, b.portal);
    p->next = s->portals;
    s->portals = p;
    proto_put_empty(client_out(s), '2');
    finish(s);
    return;
fail:
    extended_error(s, &err);
    pgbr_error_clear(&err);
}

static void run_describe(session *s, local_op *op)
{
    char kind;
    const char *name;
    result_set *rs;
    proto_parse_describe(op->msg, op->msg_len, &kind, &name);
    if (kind == 'S') {
        local_stmt *st = find_stmt(s, name);
        int n = st->stmt->nparams;
        uint32_t *oids = calloc((size_t)(n > 0 ? n : 1), sizeof(uint32_t));
        for (int i = 0; i < n; i++)
            oids[i] = param_type(st, i);
        proto_put_param_description(client_out(s), n, oids);
        free(oids);
        rs = exec_describe(st->stmt);
    } else {
        rs = exec_describe(find_portal(s, name)->stmt);
    }
    if (rs->has_rows)
        proto_put_row_description(client_out(s), rs);
    else
        proto_put_empty(client_out(s), 'n');
    result_set_free(rs);
    finish(s);
}

static void run_close(session *s, local_op *op)
{
    char kind;
    const char *name;
    proto_parse_describe(op->msg, op->msg_len, &kind, &name);
    if (kind == 'S')
        remove_stmt(s, name);
    else
        remove_portal(s, name);
    proto_put_empty(client_out(s), '3');
    finish(s);
}

/* Send (the next part of) a portal's result, honouring Execute's row limit. */
static void put_portal_rows(session *s, local_portal *p, int32_t max_rows)
{
    result_set *rs = p->result;
    int remaining = rs->nrows - p->next_row;
    if (max_rows > 0 && remaining > max_rows) {
        proto_put_data_rows(client_out(s), rs, p->next_row, p->next_row + max_rows);
        p->next_row += max_rows;
        proto_put_empty(client_out(s), 's');
        return;
    }
    proto_put_data_rows(client_out(s), rs, p->next_row, rs->nrows);
    p->next_row = rs->nrows;
    proto_put_command_complete(client_out(s), rs->command_tag ? rs->command_tag : "SELECT 0");
}

static void execute_done(void *arg, result_set *rs, pgbr_error *err, const char *const *notices)
{
    session *s = arg;
    local_op *op = s->local;
    const char *portal_name;
    int32_t max_rows;
    local_portal *p;
    op->req = NULL;
    op->exec_done_gen = op->exec_gen;
    put_notices(s, notices);
    proto_parse_execute(op->msg, op->msg_len, &portal_name, &max_rows);
    p = find_portal(s, portal_name);
    if (err != NULL || p == NULL) {
        if (rs)
            result_set_free(rs);
        if (err)
            extended_error(s, err);
        else
            finish(s);
        return;
    }
    p->executed = true;
    p->result = rs;
    p->next_row = 0;
    put_portal_rows(s, p, max_rows);
    finish(s);
}

static void run_execute(session *s, local_op *op)
{
    const char *portal_name;
    int32_t max_rows;
    local_portal *p;
    exec_params params;
    exec_request *req;
    proto_parse_execute(op->msg, op->msg_len, &portal_name, &max_rows);
    p = find_portal(s, portal_name);
    if (p->executed) {
        if (p->result)
            put_portal_rows(s, p, max_rows);
        finish(s);
        return;
    }
    fill_info(s, op);
    params.n = p->nparams;
    params.values = (const char *const *)p->params;
    {
        unsigned gen = ++op->exec_gen;
        req = exec_start(p->stmt, p->text, &params, &op->info, execute_done, s);
        if (s->local == op && op->exec_done_gen < gen)
            op->req = req;
    }
}

void local_run_if_ready(session *s)
{
    local_op *op = s->local;
    if (op == NULL || op->started || s->pending_head != NULL || s->internal != NULL)
        return;
    op->started = true;
    switch (op->kind) {
    case LOP_ERROR_READY:
        fail_local(s, &op->err, simple_after_error);
        return;
    case LOP_SIMPLE_QUERY:
        if (parse_all(s, op))
            run_simple_next(s);
        return;
    case LOP_PARSE:
        run_parse(s, op);
        return;
    case LOP_BIND:
        run_bind(s, op);
        return;
    case LOP_DESCRIBE:
        run_describe(s, op);
        return;
    case LOP_CLOSE:
        run_close(s, op);
        return;
    case LOP_EXECUTE:
        run_execute(s, op);
        return;
    }
}

/* The local op was part of an extended batch the upstream rejected: PostgreSQL
 * would skip it, so it produces no output, and messages up to Sync are dropped. */
void local_op_discard(session *s)
{
    local_op *op = s->local;
    if (op == NULL || op->started)
        return;
    if (op->kind == LOP_SIMPLE_QUERY || op->kind == LOP_ERROR_READY)
        return;   /* a Query message is not part of a batch */
    s->local_skipping = true;
    finish(s);
}

void local_cancel(session *s)
{
    local_op *op = s->local;
    if (op == NULL)
        return;
    op->cancel_requested = true;
    if (op->req)
        exec_cancel(op->req);
}
