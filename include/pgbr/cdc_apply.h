/*
 * cdc_apply.h - replaying change lines (the change-file record format in
 * include/pgbr/cdc.h and docs/format.md) onto a PostgreSQL database: the
 * apply side of incremental backups, used by RESTORE after a layer's full
 * backup rows are loaded and its indexes built.
 *
 * What a change becomes:
 *
 *   I  INSERT INTO "s"."t" (cols) OVERRIDING SYSTEM VALUE VALUES ($1, ...)
 *   U  UPDATE ONLY "s"."t" SET col = $n, ... WHERE <the row>: every new
 *      value except \U (an unchanged TOASTed value is never overwritten) and
 *      except GENERATED ALWAYS identity columns (PostgreSQL refuses to set
 *      them); when that leaves nothing to set, SELECT FROM ONLY "s"."t"
 *      WHERE <the row> (the row must still be there, exactly once)
 *   D  DELETE FROM ONLY "s"."t" WHERE <the row>
 *   T  TRUNCATE ONLY "s"."t" [, ...] [RESTART IDENTITY] (CASCADE is not
 *      passed on: the relations it reached are listed in the T line anyway;
 *      a table referenced by a foreign key from one not listed, e.g. a
 *      skipped one, makes the TRUNCATE fail as it would on the server)
 *
 * ONLY because a row of an inheritance child comes with the child's relid;
 * a partitioned table (changes published through the root) is named without
 * it. Parameters are text with no type given: the server takes each one's
 * type from the column it is assigned to or compared with. So the values
 * must be read as they were written: the connection's client_encoding must
 * be the source database's encoding and its DateStyle, IntervalStyle and
 * the like those of the decoding session (pgclient_connect() pins both).
 *
 * <the row> is the replica identity key (columns flagged k in the R line),
 * compared with = (so an index on the key is used; a NULL key value becomes
 * IS NULL): from the old values when the U/D line has oldkind K, from the
 * new values when oldkind is -. With oldkind O (REPLICA IDENTITY FULL) it is
 * every old column compared with IS NOT DISTINCT FROM (columns whose type
 * has no equality operator, json or point, are compared as their text
 * output, the value cast to the column's type first), and only one row is
 * touched: WHERE ctid = (SELECT ctid ... LIMIT 1) ((tableoid, ctid) for a
 * partitioned table), so of two identical rows exactly one changes; IS NOT
 * DISTINCT FROM uses no index, so each such change scans the table. An
 * UPDATE or DELETE that does not touch exactly one row fails with XX001
 * `change at <commit lsn> for "s"."t" matched no row` (or `matched <n>
 * rows`): the changes do not fit the rows they are replayed onto. A change
 * whose key columns the target has none of fails with XX001 `change at
 * <commit lsn> for "s"."t" cannot be matched to a row`.
 *
 * Columns are matched by name against the target table's current columns
 * (looked up when an R line first describes a relid, and again when a
 * different R line re-describes it): columns the change has and the target
 * lacks (dropped later) are ignored, columns the target has and the change
 * lacks (added later) keep their default or current value, generated
 * columns are never written. Changes to a relation the target does not have
 * (dropped later, or not an ordinary or partitioned table) and to the
 * relations of the skip list are counted as skipped. Relations are found by
 * the schema and table name of the R line: a table renamed later (or moved
 * to another schema) is not found under its old name, so its changes from
 * before the rename are skipped too.
 *
 * Statements are prepared once per relation and statement shape (which
 * columns are SET and which compared, which key values are NULL), named
 * pgbr_cdc_apply_<applier>_<n>, and sent in libpq pipeline mode, a window
 * of a few hundred statements per round trip. Row counts are checked on the
 * client, so the results of a batch are all read before its COMMIT is sent
 * (one more round trip per batch). Memory grows with the number of
 * relations and statement shapes and with the longest line, never with the
 * number of changes. The statements are deallocated by cdc_apply_finish()
 * and cdc_apply_free(), except after a failure in the caller's transaction
 * (nothing can run in it any more): they then last as long as the session.
 *
 * Transactions: the source transactions (B ... C) are grouped,
 * batch_transactions at a time, into one server transaction each (BEGIN ...
 * COMMIT). When the connection is already inside a transaction block at
 * cdc_apply_new() (a table restore's single transaction), the applier sends
 * no BEGIN/COMMIT and everything happens inside the caller's transaction,
 * which the caller commits or rolls back. A source transaction is applied
 * entirely or not at all: any failure rolls back the server transaction in
 * progress, so also the source transactions of its batch that were complete
 * but not yet committed (in the caller's transaction mode the transaction
 * is left failed for the caller to roll back: when the failure was not the
 * server's, a malformed line say, the applier makes it fail with a
 * statement that raises an error, so even a COMMIT rolls it back), and the
 * applier only reports errors from then on (the first one, again).
 *
 * Errors: a malformed line (unknown kind, wrong field count, bad number or
 * LSN, bad escape, \N or \U where a name belongs, \U outside an UPDATE's new
 * values or as a key value the row is found by, a change outside B ... C, a
 * B inside a transaction, an unknown relid, changes ending inside a
 * transaction or a line) is XX001 `change
 * file line is malformed: <why>` with the line number (counted from the
 * applier's first line) in the DETAIL. Server errors come through with the
 * server's SQLSTATE and message; the DETAIL adds the relation and the commit
 * LSN of the change. 53200 when out of memory.
 *
 * Not thread-safe: an applier and its connection belong to one thread.
 */
#ifndef PGBR_CDC_APPLY_H
#define PGBR_CDC_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgbr/error.h"

typedef struct cdc_apply cdc_apply;

typedef struct cdc_apply_options {
    /* INT64_MAX: everything; else only transactions whose commit time
     * (microseconds since 1970-01-01 UTC) is <= this (AS OF SYSTEM TIME):
     * the first later transaction and everything after it are ignored */
    int64_t until_time_us;
    /* relations (schema and table name, both exact) whose changes are
     * skipped: they were copied whole in this layer. Copied. */
    const char *const *skip_schemas;
    const char *const *skip_tables;
    size_t nskip;
    /* source transactions per server transaction; 0: 1000 */
    size_t batch_transactions;
} cdc_apply_options;

typedef struct cdc_apply_stats {
    uint64_t transactions;      /* C lines applied (until_time_us: up to it) */
    uint64_t inserts, updates, deletes;
    uint64_t truncates;         /* relations truncated */
    uint64_t skipped;           /* I/U/D lines and truncated relations skipped */
    int64_t last_commit_time_us;    /* of the last transaction applied, 0 before */
} cdc_apply_stats;

/* An applier on conn (a blocking connection to the target database, not in
 * pipeline mode, idle or inside a transaction block; see above). Sets
 * session_replication_role = replica (no user or foreign key triggers fire
 * while replaying; needs a superuser) and restores the previous value in
 * cdc_apply_finish() or cdc_apply_free(). opt NULL: everything, no skip
 * list, batches of 1000. The connection stays the caller's; it must not be
 * used otherwise until the applier is finished or freed. NULL with err set
 * on failure. */
cdc_apply *cdc_apply_new(PGconn *conn, const cdc_apply_options *opt, pgbr_error *err);

/* Replay one change line, without its LF (line[0..len), no NUL needed).
 * Lines of one transaction come in order and transactions in commit order;
 * the lines may come from several change files one after another (an R line
 * re-describes a relid). Changes may be sent to the server before this
 * returns but are checked and committed later, so a failure may surface on
 * a later call or in cdc_apply_finish(). */
bool cdc_apply_line(cdc_apply *a, const char *line, size_t len, pgbr_error *err);

/* A filter_sink_fn: len bytes holding whole or partial LF-terminated lines
 * (a line may be split across calls); a is the cdc_apply. */
bool cdc_apply_bytes(void *a, const void *data, size_t len, pgbr_error *err);

/* True once until_time_us was reached: every further line is ignored, so
 * the caller may stop reading. */
bool cdc_apply_reached_until(const cdc_apply *a);

/* End of the changes: commit what is pending, release the prepared
 * statements, restore session_replication_role and copy the counters into
 * *out (may be NULL). Fails (XX001) when the changes end inside a
 * transaction or inside a line. Once only; afterwards only
 * cdc_apply_free() may be called. */
bool cdc_apply_finish(cdc_apply *a, cdc_apply_stats *out, pgbr_error *err);

/* Free the applier (NULL is fine). If it was not finished, the server
 * transaction it opened is rolled back and session_replication_role
 * restored; the connection is not closed. */
void cdc_apply_free(cdc_apply *a);

#endif
