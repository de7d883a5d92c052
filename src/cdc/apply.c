/*
 * apply.c - replaying change lines onto a PostgreSQL database (the contract is
 * include/pgbr/cdc_apply.h; the line format include/pgbr/cdc.h): the
 * applier's life cycle and its line parser. The relations, statements and
 * pipeline the parser drives are in apply_exec.c (shared: apply_int.h).
 *
 * A line is copied into a reusable buffer, split at its TABs and checked
 * completely (field count, numbers, escapes, \N and \U only where they may
 * be) before anything about it is sent, so a malformed line never leaves a
 * half-built statement behind. A change becomes a shape (which columns are
 * written, which compared and how) and its values, which apply_exec.c
 * executes.
 *
 * The first error wins: it is kept, the server transaction is rolled back
 * (own transactions) or forced into the failed state (the caller's
 * transaction), and every later call reports it again.
 */
#include "apply_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/pgclient.h"

/* What a value field holds, after the check. */
enum { VAL_TEXT, VAL_NULL, VAL_UNCHANGED };

static _Atomic uint64_t apply_next_id = 1;

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

static void error_copy(pgbr_error *dst, const pgbr_error *src)
{
    pgbr_error_set(dst, src->sqlstate[0] ? src->sqlstate : "XX000", "%s",
                   src->message ? src->message : "unknown error");
    if (src->detail)
        pgbr_error_detail(dst, "%s", src->detail);
    if (src->hint)
        pgbr_error_hint(dst, "%s", src->hint);
    dst->position = src->position;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned d;

        if (*s < '0' || *s > '9')
            return false;
        d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v;

    if (!parse_u64(s + neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v))
        return false;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return true;
}

/* ---------------------------------------------------------------------------
 * Failure
 * ------------------------------------------------------------------------- */

/*
 * Keep the first error and make sure nothing of the failed source
 * transaction can be committed: our own transaction is rolled back; the
 * caller's is left failed, which needs a failing statement when the failure
 * was ours (a malformed line) and not the server's. Returns false.
 */
static bool fail(cdc_apply *a, pgbr_error *err)
{
    pgbr_error ignored = PGBR_ERROR_INIT;
    PGresult *res = NULL;

    if (a->failed)
        return false;
    a->failed = true;
    error_copy(&a->fail_err, err);
    apply_drain(a, &ignored);     /* statements in flight are thrown away with the transaction */
    if (PQstatus(a->conn) != CONNECTION_OK)
        goto out;
    if (a->own_txn && a->server_txn_open) {
        res = PQexec(a->conn, "ROLLBACK");
        a->server_txn_open = false;
        a->stats = a->committed;
    } else if (!a->own_txn && PQtransactionStatus(a->conn) == PQTRANS_INTRANS) {
        /* plpgsql missing fails the transaction just as well */
        res = PQexec(a->conn, "DO $pgbr$BEGIN RAISE EXCEPTION USING ERRCODE = 'XX001', MESSAGE = "
                              "'applying the change file failed: roll this transaction back'; END$pgbr$");
    }
out:
    PQclear(res);
    pgbr_error_clear(&ignored);
    return false;
}

static bool malformed(cdc_apply *a, pgbr_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool malformed(cdc_apply *a, pgbr_error *err, const char *fmt, ...)
{
    va_list ap;
    char why[256];

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pgbr_error_set(err, "XX001", "change file line is malformed: %s", why);
    pgbr_error_detail(err, "Change file line %" PRIu64 ".", a->lineno);
    return fail(a, err);
}

/* ---------------------------------------------------------------------------
 * Lines
 * ------------------------------------------------------------------------- */

/* Check value fields[first .. first + n): \N is NULL, \U only when allowed,
 * anything else is unescaped in place (and then NUL-terminated). */
static bool check_values(cdc_apply *a, int first, int n, bool unchanged_ok, const char *what, pgbr_error *err)
{
    for (int i = first; i < first + n; i++) {
        char *f = a->fields[i];
        size_t len = strlen(f);

        if (strcmp(f, "\\N") == 0) {
            a->vkind[i] = VAL_NULL;
        } else if (strcmp(f, "\\U") == 0) {
            if (!unchanged_ok)
                return malformed(a, err, "\\U (unchanged TOASTed value) in the %s of column %d", what,
                                 i - first + 1);
            a->vkind[i] = VAL_UNCHANGED;
        } else if (!cdc_unescape(f, &len)) {
            return malformed(a, err, "bad escape in the %s of column %d", what, i - first + 1);
        } else {
            a->vkind[i] = VAL_TEXT;
        }
    }
    return true;
}

/* A name field: never \N or \U, unescaped in place. */
static bool check_name(cdc_apply *a, char *f, const char *what, pgbr_error *err)
{
    size_t len = strlen(f);

    if (strcmp(f, "\\N") == 0 || strcmp(f, "\\U") == 0)
        return malformed(a, err, "%s where the %s belongs", f, what);
    if (!cdc_unescape(f, &len))
        return malformed(a, err, "bad escape in the %s", what);
    return true;
}

static bool need_txn(cdc_apply *a, const char *what, pgbr_error *err)
{
    if (!a->in_src_txn)
        return malformed(a, err, "%s outside a transaction", what);
    return true;
}

static bool field_lsn(cdc_apply *a, int i, uint64_t *lsn, pgbr_error *err)
{
    if (!cdc_lsn_parse(a->fields[i], lsn))
        return malformed(a, err, "bad LSN \"%.40s\"", a->fields[i]);
    return true;
}

static bool field_time(cdc_apply *a, int i, int64_t *t, pgbr_error *err)
{
    if (!parse_i64(a->fields[i], t))
        return malformed(a, err, "bad commit time \"%.40s\"", a->fields[i]);
    return true;
}

static bool field_relid(cdc_apply *a, const char *field, uint64_t *relid, pgbr_error *err)
{
    if (!parse_u64(field, UINT32_MAX, relid) || *relid == 0)
        return malformed(a, err, "relation id \"%.40s\" is not a positive 32-bit number", field);
    return true;
}

/* The relation a change names: a number some R line described. */
static apply_rel *change_rel(cdc_apply *a, const char *field, pgbr_error *err)
{
    uint64_t relid;
    apply_rel *rel;

    if (!field_relid(a, field, &relid, err))
        return NULL;
    rel = apply_rel_find(a, (uint32_t)relid);
    if (rel == NULL)
        malformed(a, err, "relation %" PRIu64 " is unknown (no R line described it)", relid);
    return rel;
}

static bool line_begin(cdc_apply *a, int nf, pgbr_error *err)
{
    uint64_t lsn, xid;
    int64_t t;

    if (nf != 4)
        return malformed(a, err, "B line has %d fields, not 4", nf);
    if (!field_lsn(a, 1, &lsn, err) || !field_time(a, 2, &t, err))
        return false;
    if (!parse_u64(a->fields[3], UINT32_MAX, &xid))
        return malformed(a, err, "bad xid \"%.40s\"", a->fields[3]);
    if (a->in_src_txn)
        return malformed(a, err, "B line inside a transaction");
    if (t > a->until_time_us) {
        /* the first transaction after the target time: it and all later
         * ones are not applied; what came before is committed by finish */
        a->reached_until = true;
        return true;
    }
    a->in_src_txn = true;
    a->cur_lsn = lsn;
    if (a->own_txn && !a->server_txn_open) {
        if (!apply_send_sql(a, "BEGIN", 'b', err))
            return fail(a, err);
        a->server_txn_open = true;
        a->txns_in_batch = 0;
    }
    return true;
}

static bool line_commit(cdc_apply *a, int nf, pgbr_error *err)
{
    uint64_t lsn, end_lsn;
    int64_t t;

    if (nf != 4)
        return malformed(a, err, "C line has %d fields, not 4", nf);
    if (!field_lsn(a, 1, &lsn, err) || !field_lsn(a, 2, &end_lsn, err) || !field_time(a, 3, &t, err))
        return false;
    if (!need_txn(a, "C line", err))
        return false;
    a->in_src_txn = false;
    a->cur_lsn = lsn;
    a->stats.transactions++;
    a->stats.last_commit_time_us = t;
    if (a->own_txn && ++a->txns_in_batch >= a->batch) {
        /* Every result is checked before COMMIT goes out: a change that
         * matched no row succeeded as far as the server knows, so a COMMIT
         * in the same pipeline would make it durable. The COMMIT is waited
         * for too: the counters to keep on a later failure are the ones it
         * made durable. */
        if (!apply_drain(a, err) || !apply_send_sql(a, "COMMIT", 'c', err) || !apply_drain(a, err))
            return fail(a, err);
        a->server_txn_open = false;
        a->committed = a->stats;
    }
    return true;
}

static bool line_relation(cdc_apply *a, const char *raw, size_t raw_len, int nf, pgbr_error *err)
{
    uint64_t relid, ncols;
    const char *ri = a->fields[4];

    if (nf < 6)
        return malformed(a, err, "R line has %d fields, fewer than 6", nf);
    if (!field_relid(a, a->fields[1], &relid, err))
        return false;
    if (!check_name(a, a->fields[2], "schema name", err) || !check_name(a, a->fields[3], "table name", err))
        return false;
    if (strlen(ri) != 1 || strchr("dnfi", ri[0]) == NULL)
        return malformed(a, err, "replica identity \"%.40s\" is not d, n, f or i", ri);
    if (!parse_u64(a->fields[5], INT16_MAX, &ncols))
        return malformed(a, err, "bad column count \"%.40s\"", a->fields[5]);
    if ((uint64_t)nf != 6 + 2 * ncols)
        return malformed(a, err, "R line has %d fields, not 6 + 2 * %" PRIu64, nf, ncols);
    for (int i = 0; i < (int)ncols; i++) {
        const char *flags = a->fields[6 + 2 * i];

        if (strcmp(flags, "k") != 0 && strcmp(flags, "-") != 0)
            return malformed(a, err, "column %d has flags \"%.40s\", not k or -", i + 1, flags);
        if (!check_name(a, a->fields[7 + 2 * i], "column name", err))
            return false;
    }

    if (!apply_rel_describe(a, (uint32_t)relid, raw, raw_len, a->fields[2], a->fields[3], (int)ncols,
                            a->fields + 6, err))
        return fail(a, err);
    return true;
}

/* The start of an I, U or D line: at least min fields, inside a
 * transaction, a relid an R line described. */
static apply_rel *change_start(cdc_apply *a, const char *what, int nf, int min, pgbr_error *err)
{
    if (nf < min) {
        malformed(a, err, "%s has %d fields, fewer than %d", what, nf, min);
        return NULL;
    }
    if (!need_txn(a, what, err))
        return NULL;
    return change_rel(a, a->fields[1], err);
}

/* Start a->shape: kind, mode, then a '0' (neither written nor compared)
 * per column of rel. */
static bool shape_start(cdc_apply *a, const apply_rel *rel, char kind, char mode, pgbr_error *err)
{
    if (!apply_grow((void **)&a->shape, &a->shape_cap, (size_t)rel->ncols + 3, 1, err))
        return fail(a, err);
    a->shape[0] = kind;
    a->shape[1] = mode;
    memset(a->shape + 2, '0', (size_t)rel->ncols);
    a->shape[2 + rel->ncols] = '\0';
    return true;
}

/*
 * The WHERE part of an UPDATE's or DELETE's shape: with oldkind O every old
 * column the target has, else the key columns, from cmp (the old values, or
 * for oldkind - the new ones) whose kinds start at vk.
 */
static bool where_shape(cdc_apply *a, const apply_rel *rel, char oldkind, const unsigned char *vk,
                        pgbr_error *err)
{
    bool any = false;

    for (int i = 0; i < rel->ncols; i++) {
        const apply_col *c = &rel->cols[i];
        int bits = a->shape[2 + i] - '0';

        if (c->qname == NULL || (oldkind != 'O' && !c->key))
            continue;
        if (oldkind != 'O' && vk[i] == VAL_NULL)
            bits |= SHAPE_ISNULL;
        else if (vk[i] == VAL_UNCHANGED)
            return malformed(a, err, "key column %d is an unchanged TOASTed value (\\U)", i + 1);
        else
            bits |= SHAPE_CMP;
        a->shape[2 + i] = (char)('0' + bits);
        any = true;
    }
    if (!any) {
        char lsn[CDC_LSN_TEXT_SIZE];

        pgbr_error_set(err, "XX001", "change at %s for %s cannot be matched to a row",
                       apply_lsn_text(a->cur_lsn, lsn), rel->qname);
        pgbr_error_detail(err, "The target table has none of the %s columns (change file line %" PRIu64 ").",
                          oldkind == 'O' ? "changed row's" : "replica identity key", a->lineno);
        return fail(a, err);
    }
    return true;
}

/* Send the change built in a->shape, its values in fields[first .. nf):
 * \N and \U become NULL (a \U is never a parameter: its column is neither
 * written nor compared). count is the counter the change adds to. */
static bool change_send(cdc_apply *a, apply_rel *rel, int first, int nf, char *const *set_vals,
                        char *const *cmp_vals, uint64_t *count, pgbr_error *err)
{
    for (int i = first; i < nf; i++)
        if (a->vkind[i] != VAL_TEXT)
            a->fields[i] = NULL;
    if (!apply_exec_change(a, rel, set_vals, cmp_vals, err))
        return fail(a, err);
    (*count)++;
    return true;
}

static bool line_insert(cdc_apply *a, int nf, pgbr_error *err)
{
    apply_rel *rel = change_start(a, "I line", nf, 2, err);

    if (rel == NULL)
        return false;
    if (nf != 2 + rel->ncols)
        return malformed(a, err, "I line has %d values, relation %" PRIu32 " has %d columns", nf - 2,
                         rel->relid, rel->ncols);
    if (!check_values(a, 2, rel->ncols, false, "new values", err))
        return false;
    if (rel->skip) {
        a->stats.skipped++;
        return true;
    }
    if (!shape_start(a, rel, 'I', '-', err))
        return false;
    for (int i = 0; i < rel->ncols; i++)
        if (rel->cols[i].qname != NULL && rel->cols[i].insertable)
            a->shape[2 + i] = (char)('0' + SHAPE_SET);
    return change_send(a, rel, 2, nf, a->fields + 2, NULL, &a->stats.inserts, err);
}

static bool line_update(cdc_apply *a, int nf, pgbr_error *err)
{
    apply_rel *rel = change_start(a, "U line", nf, 3, err);
    const char *ok_field;
    char oldkind;
    int nold, first_new, first_cmp;

    if (rel == NULL)
        return false;
    ok_field = a->fields[2];
    if (strcmp(ok_field, "K") != 0 && strcmp(ok_field, "O") != 0 && strcmp(ok_field, "-") != 0)
        return malformed(a, err, "old tuple kind \"%.40s\" is not K, O or -", ok_field);
    oldkind = ok_field[0];
    nold = oldkind == '-' ? 0 : rel->ncols;
    first_new = 3 + nold;
    first_cmp = oldkind == '-' ? first_new : 3;
    if (nf != 3 + nold + rel->ncols)
        return malformed(a, err, "U line has %d values, relation %" PRIu32 " has %d columns (%s)", nf - 3,
                         rel->relid, rel->ncols, oldkind == '-' ? "new values only" : "old and new values");
    if (!check_values(a, 3, nold, false, "old values", err) ||
        !check_values(a, first_new, rel->ncols, true, "new values", err))
        return false;
    if (rel->skip) {
        a->stats.skipped++;
        return true;
    }
    if (!shape_start(a, rel, 'U', oldkind == 'O' ? 'O' : 'K', err))
        return false;
    for (int i = 0; i < rel->ncols; i++)
        if (rel->cols[i].qname != NULL && rel->cols[i].updatable && a->vkind[first_new + i] != VAL_UNCHANGED)
            a->shape[2 + i] = (char)('0' + SHAPE_SET);
    if (!where_shape(a, rel, oldkind, a->vkind + first_cmp, err))
        return false;
    return change_send(a, rel, 3, nf, a->fields + first_new, a->fields + first_cmp, &a->stats.updates, err);
}

static bool line_delete(cdc_apply *a, int nf, pgbr_error *err)
{
    apply_rel *rel = change_start(a, "D line", nf, 3, err);
    const char *ok_field;

    if (rel == NULL)
        return false;
    ok_field = a->fields[2];
    if (strcmp(ok_field, "K") != 0 && strcmp(ok_field, "O") != 0)
        return malformed(a, err, "old tuple kind \"%.40s\" is not K or O", ok_field);
    if (nf != 3 + rel->ncols)
        return malformed(a, err, "D line has %d values, relation %" PRIu32 " has %d columns", nf - 3,
                         rel->relid, rel->ncols);
    if (!check_values(a, 3, rel->ncols, false, "old values", err))
        return false;
    if (rel->skip) {
        a->stats.skipped++;
        return true;
    }
    if (!shape_start(a, rel, 'D', ok_field[0], err) || !where_shape(a, rel, ok_field[0], a->vkind + 3, err))
        return false;
    return change_send(a, rel, 3, nf, NULL, a->fields + 3, &a->stats.deletes, err);
}

static bool line_truncate(cdc_apply *a, int nf, pgbr_error *err)
{
    uint64_t options, nrelids;
    uint64_t ntrunc = 0, nskipped = 0;

    if (nf < 3)
        return malformed(a, err, "T line has %d fields, fewer than 3", nf);
    if (!parse_u64(a->fields[1], UINT8_MAX, &options))
        return malformed(a, err, "bad truncate options \"%.40s\"", a->fields[1]);
    if (!parse_u64(a->fields[2], INT32_MAX, &nrelids))
        return malformed(a, err, "bad relation count \"%.40s\"", a->fields[2]);
    if ((uint64_t)nf != 3 + nrelids)
        return malformed(a, err, "T line has %d relation ids, not %" PRIu64, nf - 3, nrelids);
    if (!need_txn(a, "T line", err))
        return false;
    for (int i = 3; i < nf; i++)
        if (change_rel(a, a->fields[i], err) == NULL)
            return false;
    pgbr_buf_reset(&a->sql);
    for (int i = 3; i < nf; i++) {
        const apply_rel *rel = change_rel(a, a->fields[i], err);

        if (rel->skip) {
            nskipped++;
            continue;
        }
        if (!apply_sql_add(a, err, "%s%s", ntrunc ? ", " : "TRUNCATE ", rel->target))
            return fail(a, err);
        ntrunc++;
    }
    a->stats.skipped += nskipped;
    if (ntrunc == 0)
        return true;
    /* CASCADE is not passed on: the relations it reached are listed */
    if ((options & 2) && !apply_sql_add(a, err, " RESTART IDENTITY"))
        return fail(a, err);
    if (!pgbr_buf_append(&a->sql, "", 1, err) || !apply_send_sql(a, (const char *)a->sql.data, 'T', err))
        return fail(a, err);
    a->stats.truncates += ntrunc;
    return true;
}

bool cdc_apply_line(cdc_apply *a, const char *line, size_t len, pgbr_error *err)
{
    size_t tabs = 0;
    int nf;

    if (a->failed) {
        error_copy(err, &a->fail_err);
        return false;
    }
    if (a->finished)
        return pgbr_error_set(err, "55000", "the change applier is already finished");
    a->lineno++;
    if (a->reached_until)
        return true;
    for (const char *p = line, *end = line + len; (p = memchr(p, '\t', (size_t)(end - p))) != NULL; p++)
        tabs++;
    pgbr_buf_reset(&a->line);
    if (!pgbr_buf_reserve(&a->line, len + 1, err) ||
        !apply_grow((void **)&a->fields, &a->fields_cap, tabs + 1, sizeof *a->fields, err))
        return fail(a, err);
    if (!apply_grow((void **)&a->vkind, &a->vkind_cap, a->fields_cap, 1, err))
        return fail(a, err);
    if (len > 0)
        memcpy(a->line.data, line, len);
    a->line.len = len;
    nf = cdc_split_fields((char *)a->line.data, len, a->fields, (int)(tabs + 1));
    if (strlen(a->fields[0]) != 1)
        return malformed(a, err, "unknown line kind \"%.40s\"", a->fields[0]);
    switch (a->fields[0][0]) {
    case 'B': return line_begin(a, nf, err);
    case 'C': return line_commit(a, nf, err);
    case 'R': return line_relation(a, line, len, nf, err);
    case 'I': return line_insert(a, nf, err);
    case 'U': return line_update(a, nf, err);
    case 'D': return line_delete(a, nf, err);
    case 'T': return line_truncate(a, nf, err);
    default: return malformed(a, err, "unknown line kind \"%.40s\"", a->fields[0]);
    }
}

bool cdc_apply_bytes(void *arg, const void *data, size_t len, pgbr_error *err)
{
    cdc_apply *a = arg;
    const char *p = data, *end = p + len;

    if (a->failed || a->finished)
        return cdc_apply_line(a, "", 0, err);   /* the error it reports */
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));

        if (lf == NULL) {
            /* a line continued in the next call; once the target time is
             * reached nothing is kept (the rest is ignored anyway) */
            if (!a->reached_until && !pgbr_buf_append(&a->partial, p, (size_t)(end - p), err))
                return fail(a, err);
            return true;
        }
        if (a->partial.len > 0) {
            bool ok = pgbr_buf_append(&a->partial, p, (size_t)(lf - p), err) &&
                      cdc_apply_line(a, (const char *)a->partial.data, a->partial.len, err);

            pgbr_buf_reset(&a->partial);
            if (!ok)
                return a->failed ? false : fail(a, err);
        } else if (!cdc_apply_line(a, p, (size_t)(lf - p), err)) {
            return false;
        }
        p = lf + 1;
    }
    return true;
}

bool cdc_apply_reached_until(const cdc_apply *a)
{
    return a->reached_until;
}

/* ---------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------- */

cdc_apply *cdc_apply_new(PGconn *conn, const cdc_apply_options *opt, pgbr_error *err)
{
    cdc_apply *a;
    PGTransactionStatusType ts;
    PGresult *res;
    const char *role_sql;

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        pgbr_error_set(err, "08006", "no connection to apply the changes on");
        return NULL;
    }
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF) {
        pgbr_error_set(err, "55000", "the connection to apply the changes on is in pipeline mode");
        return NULL;
    }
    ts = PQtransactionStatus(conn);
    if (ts == PQTRANS_INERROR) {
        pgbr_error_set(err, "25P02", "the transaction to apply the changes in is aborted");
        return NULL;
    }
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS) {
        pgbr_error_set(err, "55000", "the connection to apply the changes on is busy");
        return NULL;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL || (a->slots = calloc(APPLY_MIN_SLOTS, sizeof *a->slots)) == NULL) {
        free(a);
        apply_oom(err, "creating a change applier");
        return NULL;
    }
    a->nslots = APPLY_MIN_SLOTS;
    a->conn = conn;
    a->id = atomic_fetch_add(&apply_next_id, 1);
    a->own_txn = ts == PQTRANS_IDLE;
    a->released = true;     /* nothing to give back until the role is set */
    a->until_time_us = opt ? opt->until_time_us : INT64_MAX;
    a->batch = opt && opt->batch_transactions ? opt->batch_transactions : APPLY_DEFAULT_BATCH;
    if (opt && opt->nskip > 0) {
        a->skip_schemas = calloc(opt->nskip, sizeof *a->skip_schemas);
        a->skip_tables = calloc(opt->nskip, sizeof *a->skip_tables);
        if (a->skip_schemas == NULL || a->skip_tables == NULL)
            goto nomem;
        for (size_t i = 0; i < opt->nskip; i++) {
            a->nskip++;
            a->skip_schemas[i] = strdup(opt->skip_schemas[i]);
            a->skip_tables[i] = strdup(opt->skip_tables[i]);
            if (a->skip_schemas[i] == NULL || a->skip_tables[i] == NULL)
                goto nomem;
        }
    }

    /* No user or foreign key triggers while replaying: the source ran them
     * already and their effects are in the changes. Inside the caller's
     * transaction only for that transaction (SET LOCAL). */
    role_sql = a->own_txn
        ? "SELECT pg_catalog.current_setting('session_replication_role'), "
          "pg_catalog.set_config('session_replication_role', 'replica', false)"
        : "SELECT pg_catalog.current_setting('session_replication_role'), "
          "pg_catalog.set_config('session_replication_role', 'replica', true)";
    res = PQexec(conn, role_sql);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pgclient_error_from(conn, res, "could not set session_replication_role", err);
        PQclear(res);
        cdc_apply_free(a);
        return NULL;
    }
    a->old_role = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    a->released = false;
    if (a->old_role == NULL)
        goto nomem;
    return a;

nomem:
    apply_oom(err, "creating a change applier");
    cdc_apply_free(a);
    return NULL;
}

/* Give back what the applier took from the session: its statements, and
 * session_replication_role; our transaction if still open is rolled back.
 * Outside pipeline mode. Once. */
static bool release(cdc_apply *a, pgbr_error *err)
{
    const char *params[2];
    PGresult *res;
    bool ok = true;

    if (a->released)
        return true;
    a->released = true;
    if (PQstatus(a->conn) != CONNECTION_OK)
        return true;
    if (a->own_txn && a->server_txn_open) {
        PQclear(PQexec(a->conn, "ROLLBACK"));
        a->server_txn_open = false;
    }
    /* a failed caller's transaction takes nothing more; its rollback undoes
     * SET LOCAL, and our statements go with the session */
    if (PQtransactionStatus(a->conn) != PQTRANS_IDLE && PQtransactionStatus(a->conn) != PQTRANS_INTRANS)
        return true;
    ok = apply_rels_deallocate(a, err);
    params[0] = a->old_role;
    params[1] = a->own_txn ? "false" : "true";
    res = PQexecParams(a->conn, "SELECT pg_catalog.set_config('session_replication_role', $1, $2::boolean)", 2,
                       NULL, params, NULL, NULL, 0);
    if (ok && (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK))
        ok = pgclient_error_from(a->conn, res, "could not restore session_replication_role", err);
    PQclear(res);
    return ok;
}

bool cdc_apply_finish(cdc_apply *a, cdc_apply_stats *out, pgbr_error *err)
{
    if (a->finished)
        return pgbr_error_set(err, "55000", "the change applier is already finished");
    if (a->failed) {
        a->finished = true;
        error_copy(err, &a->fail_err);
        return false;
    }
    if (!a->reached_until && a->partial.len > 0) {
        a->lineno++;
        malformed(a, err, "the changes end inside a line (%zu bytes without a line feed)", a->partial.len);
        a->finished = true;
        return false;
    }
    if (!a->reached_until && a->in_src_txn) {
        malformed(a, err, "the changes end inside a transaction");
        a->finished = true;
        return false;
    }
    a->finished = true;
    /* checked before COMMIT goes out (see line_commit) */
    if (!apply_drain(a, err))
        return fail(a, err);
    if (a->own_txn && a->server_txn_open) {
        if (!apply_send_sql(a, "COMMIT", 'c', err) || !apply_drain(a, err))
            return fail(a, err);
        a->server_txn_open = false;
        a->committed = a->stats;
    }
    if (!release(a, err))
        return fail(a, err);
    if (out != NULL)
        *out = a->stats;
    return true;
}

void cdc_apply_free(cdc_apply *a)
{
    pgbr_error ignored = PGBR_ERROR_INIT;

    if (a == NULL)
        return;
    apply_drain(a, &ignored);
    release(a, &ignored);
    pgbr_error_clear(&ignored);
    apply_rels_free(a);
    for (size_t i = 0; i < a->nskip; i++) {
        free(a->skip_schemas[i]);
        free(a->skip_tables[i]);
    }
    free(a->skip_schemas);
    free(a->skip_tables);
    free(a->old_role);
    pgbr_buf_free(&a->line);
    pgbr_buf_free(&a->partial);
    pgbr_buf_free(&a->sql);
    free(a->fields);
    free(a->vkind);
    free(a->params);
    free(a->shape);
    pgbr_error_clear(&a->fail_err);
    free(a);
}
