/*
 * test_result.c - unit tests for result sets (src/common/result.c) and the
 * pure parts of the catalog: job ids and job statuses (src/catalog/catalog.c).
 * Needs no database.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "pgbr/catalog.h"
#include "pgbr/result.h"
#include "tap.h"

static void test_result_sets(void)
{
    const char *names[] = { "job_id", "status", "fraction_completed" };
    const uint32_t types[] = { PGBR_OID_INT8, PGBR_OID_TEXT, PGBR_OID_FLOAT8 };
    result_set *rs = result_set_new(3, names, types);
    char buf[32];
    int ok_values = 1;

    tap_is_int(rs->ncols, 3, "result_set_new: three columns");
    tap_is_str(rs->cols[1].name, "status", "column names are copied");
    tap_is_int(rs->cols[2].type_oid, PGBR_OID_FLOAT8, "column types are kept");
    tap_ok(rs->has_rows, "a result set with columns returns rows");
    tap_is_int(rs->nrows, 0, "no rows yet");
    tap_ok(rs->command_tag == NULL, "no command tag yet");

    for (int i = 0; i < 1000; i++) {
        const char *row[3];
        snprintf(buf, sizeof buf, "%d", i);
        row[0] = buf;
        row[1] = i % 2 == 0 ? "running" : NULL;
        row[2] = "0.5";
        result_set_add_row(rs, row);
    }
    /* the caller's buffer changed after each add: values must be copies */
    tap_is_int(rs->nrows, 1000, "1000 rows added (the array grew)");
    for (int i = 0; i < 1000; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        if (strcmp(result_set_value(rs, i, 0), buf) != 0 ||
            (i % 2 == 0) != (result_set_value(rs, i, 1) != NULL))
            ok_values = 0;
    }
    tap_ok(ok_values, "every value is a copy; NULLs stay NULL");
    tap_ok(result_set_value(rs, 1000, 0) == NULL, "a row out of range reads as NULL");
    tap_ok(result_set_value(rs, 0, 3) == NULL, "a column out of range reads as NULL");
    tap_ok(result_set_value(rs, -1, 0) == NULL, "a negative row reads as NULL");
    tap_ok(result_set_value(NULL, 0, 0) == NULL, "a NULL result set reads as NULL");

    result_set_set_tag(rs, "SHOW JOBS %d", rs->nrows);
    tap_is_str(rs->command_tag, "SHOW JOBS 1000", "result_set_set_tag formats the tag");
    result_set_set_tag(rs, "%s", "SELECT 1");
    tap_is_str(rs->command_tag, "SELECT 1", "result_set_set_tag replaces the tag");
    result_set_free(rs);

    rs = result_set_new_tag_only("PAUSE JOBS 1");
    tap_ok(!rs->has_rows, "tag-only result: no rows (NoData)");
    tap_is_int(rs->ncols, 0, "tag-only result: no columns");
    tap_is_str(rs->command_tag, "PAUSE JOBS 1", "tag-only result: the tag");
    result_set_free(rs);

    rs = result_set_new(0, NULL, NULL);
    result_set_add_row(rs, NULL);
    tap_is_int(rs->nrows, 1, "a row of zero columns can be added");
    result_set_free(rs);
    result_set_free(NULL);
    tap_ok(1, "result_set_free(NULL) is harmless");
}

#define IDS_PER_THREAD 20000

typedef struct id_thread {
    int node;
    int64_t *ids;
    int monotonic;
} id_thread;

static void *id_thread_main(void *arg)
{
    id_thread *t = arg;

    t->monotonic = 1;
    for (int i = 0; i < IDS_PER_THREAD; i++) {
        t->ids[i] = catalog_new_job_id(t->node);
        if (i > 0 && t->ids[i] <= t->ids[i - 1])
            t->monotonic = 0;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_job_ids(void)
{
    struct timeval tv;
    int64_t now_ms, id, prev;
    int monotonic = 1, node_ok = 1;
    id_thread threads[4];
    pthread_t tids[4];
    int64_t *all;
    int unique = 1, all_monotonic = 1, nodes_ok = 1;

    gettimeofday(&tv, NULL);
    now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    id = catalog_new_job_id(7);
    tap_ok(id > 0, "a job id is positive");
    tap_is_int(catalog_job_id_node(id), 7, "the node id is in bits 12-21");
    tap_ok(llabs(catalog_job_id_unix_ms(id) - now_ms) < 2000, "the time part is now (ms since 2020-01-01)");
    tap_ok(id >> 62 == 0, "ids leave the top bits free for decades");
    tap_is_int(catalog_job_id_node(catalog_new_job_id(1023)), 1023, "node 1023 fits");
    tap_is_int(catalog_job_id_node(catalog_new_job_id(1024 + 5)), 5, "only the low 10 bits of the node id are used");

    /* 100000 ids in a tight loop: far more than 4096 per millisecond, so the
     * sequence overflows and the millisecond part must borrow. */
    prev = catalog_new_job_id(3);
    for (int i = 0; i < 100000; i++) {
        id = catalog_new_job_id(3);
        if (id <= prev)
            monotonic = 0;
        if (catalog_job_id_node(id) != 3)
            node_ok = 0;
        prev = id;
    }
    tap_ok(monotonic, "100000 ids in a row are strictly increasing");
    tap_ok(node_ok, "and all carry their node id");
    gettimeofday(&tv, NULL);
    now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    tap_ok(catalog_job_id_unix_ms(prev) - now_ms < 60000, "borrowing from the future stays bounded");

    /* A lower node id right after a higher one must still not go down. */
    prev = catalog_new_job_id(1000);
    id = catalog_new_job_id(1);
    tap_ok(id > prev, "switching to a lower node id keeps ids increasing");
    tap_is_int(catalog_job_id_node(id), 1, "and the new node id is used");

    all = calloc(4 * IDS_PER_THREAD, sizeof *all);
    for (int t = 0; t < 4; t++) {
        threads[t].node = t + 1;
        threads[t].ids = all + t * IDS_PER_THREAD;
        pthread_create(&tids[t], NULL, id_thread_main, &threads[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(tids[t], NULL);
        if (!threads[t].monotonic)
            all_monotonic = 0;
        for (int i = 0; i < IDS_PER_THREAD; i++)
            if (catalog_job_id_node(threads[t].ids[i]) != t + 1)
                nodes_ok = 0;
    }
    qsort(all, 4 * IDS_PER_THREAD, sizeof *all, cmp_i64);
    for (int i = 1; i < 4 * IDS_PER_THREAD; i++)
        if (all[i] == all[i - 1])
            unique = 0;
    tap_ok(all_monotonic, "ids from 4 threads are increasing within each thread");
    tap_ok(unique, "80000 ids from 4 threads are all distinct");
    tap_ok(nodes_ok, "each thread's ids carry its node id");
    free(all);
}

static void test_statuses(void)
{
    const char *valid[] = { "pending",   "running",       "paused",    "pause-requested", "cancel-requested",
                            "reverting", "revert-failed", "succeeded", "failed",          "canceled" };
    int all_valid = 1;

    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        if (!catalog_job_status_valid(valid[i]))
            all_valid = 0;
    tap_ok(all_valid, "the ten job statuses are valid");
    tap_ok(!catalog_job_status_valid("retry-running"), "retry-running is not a pgbr status");
    tap_ok(!catalog_job_status_valid(NULL), "NULL is not a status");
    tap_ok(catalog_job_status_terminal("succeeded") && catalog_job_status_terminal("failed") &&
               catalog_job_status_terminal("canceled") && catalog_job_status_terminal("revert-failed"),
           "succeeded, failed, canceled, revert-failed are terminal");
    tap_ok(!catalog_job_status_terminal("paused") && !catalog_job_status_terminal("running") &&
               !catalog_job_status_terminal("reverting") && !catalog_job_status_terminal("pending"),
           "paused, running, reverting, pending are not terminal");
}

static void test_show_jobs_columns(void)
{
    tap_is_int(CATALOG_SHOW_JOBS_NCOLS, 16, "SHOW JOBS has 16 columns");
    tap_is_str(catalog_show_jobs_names[0], "job_id", "the first is job_id");
    tap_is_int(catalog_show_jobs_types[0], PGBR_OID_INT8, "job_id is int8");
    tap_is_str(catalog_show_jobs_names[7], "created", "column 8 is created");
    tap_is_int(catalog_show_jobs_types[7], PGBR_OID_TIMESTAMPTZ, "created is timestamptz");
    tap_is_str(catalog_show_jobs_names[11], "fraction_completed", "column 12 is fraction_completed");
    tap_is_int(catalog_show_jobs_types[11], PGBR_OID_FLOAT8, "fraction_completed is float8");
    tap_is_str(catalog_show_jobs_names[15], "execution_errors", "the last is execution_errors");
    tap_is_int(catalog_show_jobs_types[15], PGBR_OID_TEXT_ARRAY, "execution_errors is text[]");
}

int main(void)
{
    test_result_sets();
    test_job_ids();
    test_statuses();
    test_show_jobs_columns();
    return tap_done();
}
