/*
 * pgclient.h - how jobs talk to the upstream PostgreSQL: libpq connections in
 * blocking mode with the output settings pinned, libpq failures turned into
 * pgbr_errors, and PostgreSQL's client programs (pg_dump, pg_restore,
 * pg_dumpall) run as child processes without a shell.
 *
 * Worker threads only: everything here blocks. The functions are thread-safe
 * (each connection belongs to one thread at a time).
 */
#ifndef PGBR_PGCLIENT_H
#define PGBR_PGCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "pgbr/error.h"
#include "pgbr/filter.h"

/* Connect to dbname with conninfo (a keyword=value string whose own dbname
 * and application_name are replaced; dbname NULL keeps conninfo's), blocking, and pin the output settings
 * (DateStyle, IntervalStyle, extra_float_digits, TimeZone, client_encoding,
 * standard_conforming_strings, bytea_output, no timeouts). An unknown
 * database gives 3D000; other failures libpq's message with 08006. */
PGconn *pgclient_connect(const char *conninfo, const char *dbname, const char *application_name,
                         pgbr_error *err);
/* Run a command that returns no rows; false with err set (the server's
 * SQLSTATE and message) otherwise. */
bool pgclient_exec(PGconn *conn, const char *sql, pgbr_error *err);
/* Run a query that returns rows; NULL with err set otherwise. */
PGresult *pgclient_query(PGconn *conn, const char *sql, pgbr_error *err);
/* The same with text parameters $1..$n (the extended protocol). */
PGresult *pgclient_query_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
                                pgbr_error *err);
/* Set err from a failed result (or from the connection when res is NULL):
 * the server's SQLSTATE, message, detail and hint; context (may be NULL)
 * prefixes the message. Returns false. */
bool pgclient_error_from(PGconn *conn, const PGresult *res, const char *context, pgbr_error *err);
/* The conninfo of dbname (NULL: conninfo's own) without the password as a keyword='value' string
 * (malloc'd) and the password (malloc'd, NULL when none): what a client
 * program gets on its command line and in PGPASSWORD. */
bool pgclient_conninfo_for_tool(const char *conninfo, const char *dbname, char **out,
                                char **password, pgbr_error *err);

/* Find a client program (name: "pg_dump", "pg_restore", "pg_dumpall") for a
 * server of version server_num: override when set, else
 * /usr/lib/postgresql/<major>/bin/<name>, else `pg_config --bindir`/<name>,
 * else the bare name (looked up in PATH). Returns a malloc'd string. */
char *pgclient_find_tool(const char *name, const char *override, int server_num);

#define PGCLIENT_STDERR_KEEP 4096

/*
 * Run argv (argv[0] a path, or a name looked up in PATH when it has no '/')
 * with stdin from /dev/null and extra_env (may be NULL, e.g.
 * "PGPASSWORD=...") added to the environment. Its stdout goes to sink (NULL:
 * discarded); when the sink fails the child is sent SIGTERM. *status gets
 * the exit status (128 + signal when killed); errbuf the first bytes of its
 * stderr. False only when the child could not be run or the sink failed.
 */
/* For the calling thread: a child program it runs is terminated (SIGTERM)
 * as soon as stop(arg) returns true (asked four times a second), and the
 * run then fails with 57014. NULL: never. */
void pgclient_set_interrupt(bool (*stop)(void *arg), void *arg);

bool pgclient_run(char *const argv[], const char *extra_env, filter_sink_fn sink, void *sink_arg,
                  int *status, char errbuf[PGCLIENT_STDERR_KEEP], pgbr_error *err);

/* Like pgclient_run for a program connecting to dbname: the conninfo goes on
 * the command line as "-d <conninfo without password>" after args, the
 * password through PGPASSWORD. A non-zero exit fails with XX000
 * "<what> failed with exit status <n>" and the first lines of its stderr in
 * the DETAIL. */
bool pgclient_run_tool(const char *program, const char *const *args, const char *conninfo,
                       const char *dbname, const char *what, filter_sink_fn sink, void *sink_arg,
                       pgbr_error *err);

#endif
