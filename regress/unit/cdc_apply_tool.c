/*
 * cdc_apply_tool.c - a test driver for the change applier (src/cdc/apply.c)
 * that regress/t/026_cdc_apply.t runs against a real PostgreSQL.
 *
 *   cdc_apply_tool <conninfo> [--until-us N] [--skip schema.table]...
 *                  [--batch N] [--in-txn] [--commit-on-error] [--chunk N]
 *
 * conninfo: the target database (a superuser; connected with pgclient's
 * pinned output settings). --in-txn: BEGIN before the applier is created
 * and COMMIT after it finished, so everything runs in that transaction;
 * with --commit-on-error the tool sends COMMIT even after a failure (to show
 * that the applier left the transaction failed). --skip splits at the first
 * dot. --chunk: stdin is handed to cdc_apply_bytes() N bytes at a time
 * (default 65536), so lines are split across calls.
 *
 * stdin: change lines, as build/unit/cdc_decode_tool prints them.
 * stderr: on success one line "stats transactions=N inserts=N updates=N
 * deletes=N truncates=N skipped=N last_commit_time_us=N reached_until=0|1";
 * on failure "ERROR: <sqlstate> <message>" (then "DETAIL: ..." and
 * "HINT: ..." when set), exit status 1. Exit status 2: bad arguments.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/cdc_apply.h"
#include "pgbr/pgclient.h"

static int report(const pgbr_error *err)
{
    fprintf(stderr, "ERROR: %s %s\n", err->sqlstate, err->message ? err->message : "(no message)");
    if (err->detail != NULL)
        fprintf(stderr, "DETAIL: %s\n", err->detail);
    if (err->hint != NULL)
        fprintf(stderr, "HINT: %s\n", err->hint);
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: cdc_apply_tool <conninfo> [--until-us N] [--skip schema.table]... [--batch N] "
                    "[--in-txn] [--commit-on-error] [--chunk N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_apply_options opt = { .until_time_us = INT64_MAX };
    const char **schemas = calloc((size_t)argc, sizeof *schemas);
    const char **tables = calloc((size_t)argc, sizeof *tables);
    bool in_txn = false, commit_on_error = false, ok = true, reached;
    size_t chunk = 65536;
    char *buf = NULL;
    PGconn *conn;
    cdc_apply *a = NULL;
    cdc_apply_stats st = { 0 };
    int rc = 0;

    if (argc < 2 || schemas == NULL || tables == NULL)
        return usage();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--until-us") == 0 && i + 1 < argc) {
            opt.until_time_us = strtoll(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc) {
            char *dot = strchr(argv[++i], '.');

            if (dot == NULL)
                return usage();
            *dot = '\0';
            schemas[opt.nskip] = argv[i];
            tables[opt.nskip++] = dot + 1;
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            opt.batch_transactions = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) {
            chunk = strtoull(argv[++i], NULL, 10);
            if (chunk == 0)
                return usage();
        } else if (strcmp(argv[i], "--in-txn") == 0) {
            in_txn = true;
        } else if (strcmp(argv[i], "--commit-on-error") == 0) {
            commit_on_error = true;
        } else {
            return usage();
        }
    }
    opt.skip_schemas = schemas;
    opt.skip_tables = tables;

    conn = pgclient_connect(argv[1], NULL, "cdc_apply_tool", &err);
    if (conn == NULL)
        return report(&err);
    if (in_txn && !pgclient_exec(conn, "BEGIN", &err)) {
        rc = report(&err);
        goto out;
    }
    a = cdc_apply_new(conn, &opt, &err);
    buf = malloc(chunk);
    if (a == NULL || buf == NULL) {
        rc = a == NULL ? report(&err) : 1;
        goto out;
    }
    for (;;) {
        size_t n = fread(buf, 1, chunk, stdin);

        if (n > 0 && !cdc_apply_bytes(a, buf, n, &err)) {
            ok = false;
            break;
        }
        if (n < chunk)
            break;
    }
    if (ok)
        ok = cdc_apply_finish(a, &st, &err);
    if (!ok)
        rc = report(&err);
    reached = cdc_apply_reached_until(a);
    cdc_apply_free(a);
    a = NULL;
    if (in_txn && (ok || commit_on_error)) {
        pgbr_error cerr = PGBR_ERROR_INIT;
        PGresult *res = PQexec(conn, "COMMIT");

        /* a failed transaction answers COMMIT with ROLLBACK */
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = report((pgclient_error_from(conn, res, "COMMIT failed", &cerr), &cerr));
        else
            fprintf(stderr, "commit: %s\n", PQcmdStatus(res));
        PQclear(res);
        pgbr_error_clear(&cerr);
    }
    if (rc == 0)
        fprintf(stderr,
                "stats transactions=%" PRIu64 " inserts=%" PRIu64 " updates=%" PRIu64 " deletes=%" PRIu64
                " truncates=%" PRIu64 " skipped=%" PRIu64 " last_commit_time_us=%" PRId64 " reached_until=%d\n",
                st.transactions, st.inserts, st.updates, st.deletes, st.truncates, st.skipped,
                st.last_commit_time_us, reached ? 1 : 0);
out:
    cdc_apply_free(a);
    PQfinish(conn);
    free(buf);
    free(schemas);
    free(tables);
    pgbr_error_clear(&err);
    return rc;
}
