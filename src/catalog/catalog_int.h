/*
 * catalog_int.h - what the files of src/catalog share and nobody else needs:
 * the terminal statuses as SQL, ids as an int8[] literal, and opening a
 * transaction on a worker's connection that may have died while idle.
 *
 * Threads: worker threads only (blocking libpq), like catalog.h's queries.
 */
#ifndef PGBR_CATALOG_INT_H
#define PGBR_CATALOG_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "pgbr/error.h"

struct pg_conn;

/* The statuses a job never leaves (catalog_job_status_terminal), as an SQL
 * list for "status IN ...". */
#define CATALOG_TERMINAL_SQL "('succeeded', 'failed', 'canceled', 'revert-failed')"

/* "{1,2,3}": ids as an int8[] literal. malloc'd; NULL when out of memory. */
char *catalog_id_array(const int64_t *ids, int nids);

/*
 * Run begin_sql ("BEGIN", "BEGIN READ ONLY") on conn. A worker's idle
 * connection may have died since its last use (server restart, idle timeout)
 * and libpq only notices on use; BEGIN has no effect yet, so when it fails on
 * a broken connection this reconnects once and tries again. False (err set)
 * on failure; no transaction is open then.
 */
bool catalog_begin(struct pg_conn *conn, const char *begin_sql, pgbr_error *err);

/* Roll back the open transaction, if the connection is still there; the
 * caller's err already says why. */
void catalog_rollback(struct pg_conn *conn);

#endif
