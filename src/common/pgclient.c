/*
 * pgclient.c - libpq connections of backup and restore jobs: connect to one
 * database with the output settings pinned (so COPY text is the same whatever
 * the server's or role's defaults), run commands, turn libpq failures into
 * pgbr_errors, and build the conninfo given to pg_dump and pg_restore.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/pgclient.h"
#include "pgbr/buf.h"

/* Output settings every engine connection runs with. No timeouts: the
 * exporting connection idles in its transaction for the whole backup. */
static const char pinned_settings[] =
    "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
    "SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; "
    "SET bytea_output = hex; SET statement_timeout = 0; SET lock_timeout = 0; "
    "SET idle_in_transaction_session_timeout = 0";

bool pgclient_error_from(PGconn *conn, const PGresult *res, const char *context, pgbr_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char *own = NULL;
    if (!msg || !*msg) {
        own = strdup(conn ? PQerrorMessage(conn) : "out of memory");
        if (own) {
            size_t n = strlen(own);
            while (n > 0 && (own[n - 1] == '\n' || own[n - 1] == ' '))
                own[--n] = '\0';
        }
        msg = own ? own : "out of memory";
    }
    if (!state || strlen(state) != 5)
        state = "08006";
    if (context)
        pgbr_error_set(err, state, "%s: %s", context, msg);
    else
        pgbr_error_set(err, state, "%s", msg);
    if (res) {
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
        if (detail)
            pgbr_error_detail(err, "%s", detail);
        if (hint)
            pgbr_error_hint(err, "%s", hint);
    }
    free(own);
    return false;
}

bool pgclient_exec(PGconn *conn, const char *sql, pgbr_error *err)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pgclient_error_from(conn, res, NULL, err);
    PQclear(res);
    return ok;
}

/* keyword/value arrays of conninfo with dbname replaced (the values point into
 * opts, which the caller frees with PQconninfoFree). */
static PQconninfoOption *parse_conninfo(const char *conninfo, pgbr_error *err)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &errmsg);
    if (!opts) {
        pgbr_error_set(err, "22023", "invalid connection string: %s",
                       errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
    }
    return opts;
}

/* res of a query that should have returned rows, or NULL (err set). */
static PGresult *rows_or_error(PGconn *conn, PGresult *res, pgbr_error *err)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgclient_error_from(conn, res, NULL, err);
        PQclear(res);
        return NULL;
    }
    return res;
}

PGresult *pgclient_query(PGconn *conn, const char *sql, pgbr_error *err)
{
    return rows_or_error(conn, PQexec(conn, sql), err);
}

PGresult *pgclient_query_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                                pgbr_error *err)
{
    return rows_or_error(conn, PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0), err);
}

PGconn *pgclient_connect(const char *conninfo, const char *dbname, const char *application_name,
                         pgbr_error *err)
{
    PQconninfoOption *opts = parse_conninfo(conninfo, err);
    if (!opts)
        return NULL;
    const char *keys[64];
    const char *vals[64];
    int n = 0;
    for (PQconninfoOption *o = opts; o->keyword && n < 60; o++) {
        if (!o->val || (dbname && strcmp(o->keyword, "dbname") == 0) ||
            strcmp(o->keyword, "application_name") == 0)
            continue;
        keys[n] = o->keyword;
        vals[n++] = o->val;
    }
    if (dbname) {
        keys[n] = "dbname";
        vals[n++] = dbname;
    }
    keys[n] = "application_name";
    vals[n++] = application_name ? application_name : "pgbr";
    keys[n] = NULL;
    vals[n] = NULL;
    PGconn *conn = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    if (!conn) {
        pgbr_error_set(err, "53200", "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        /* libpq gives no SQLSTATE for a failed connection: recognise the
         * common case a user can act on. */
        const char *msg = PQerrorMessage(conn);
        if (strstr(msg, "does not exist") && strstr(msg, "database"))
            pgbr_error_set(err, "3D000", "database \"%s\" does not exist", dbname ? dbname : "?");
        else
            pgclient_error_from(conn, NULL, "could not connect to the upstream", err);
        PQfinish(conn);
        return NULL;
    }
    if (!pgclient_exec(conn, pinned_settings, err)) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Append value single-quoted as conninfo wants it ('\'' and '\\' escaped). */
static bool append_quoted(pgbr_buf *b, const char *value, pgbr_error *err)
{
    if (!pgbr_buf_append(b, "'", 1, err))
        return false;
    for (const char *p = value; *p; p++) {
        if ((*p == '\'' || *p == '\\') && !pgbr_buf_append(b, "\\", 1, err))
            return false;
        if (!pgbr_buf_append(b, p, 1, err))
            return false;
    }
    return pgbr_buf_append(b, "'", 1, err);
}

static bool append_str(pgbr_buf *b, const char *s, pgbr_error *err)
{
    return pgbr_buf_append(b, s, strlen(s), err);
}

bool pgclient_conninfo_for_tool(const char *conninfo, const char *dbname, char **out,
                              char **password, pgbr_error *err)
{
    *out = NULL;
    *password = NULL;
    PQconninfoOption *opts = parse_conninfo(conninfo, err);
    if (!opts)
        return false;
    pgbr_buf b = PGBR_BUF_INIT;
    bool ok = true;
    for (PQconninfoOption *o = opts; ok && o->keyword; o++) {
        if (!o->val || (dbname && strcmp(o->keyword, "dbname") == 0))
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            free(*password);
            *password = strdup(o->val);
            ok = *password != NULL || pgbr_error_set(err, "53200", "out of memory");
            continue;
        }
        ok = append_str(&b, o->keyword, err) && append_str(&b, "=", err) &&
             append_quoted(&b, o->val, err) && append_str(&b, " ", err);
    }
    if (dbname)
        ok = ok && append_str(&b, "dbname=", err) && append_quoted(&b, dbname, err);
    ok = ok && pgbr_buf_append(&b, "", 1, err);
    PQconninfoFree(opts);
    if (!ok) {
        pgbr_buf_free(&b);
        free(*password);
        *password = NULL;
        return false;
    }
    *out = (char *)b.data;
    return true;
}
