/*
 * decode.c - the pgoutput decoder (see include/pgbr/cdc.h for the change-line
 * format and the contract; the message layout is PostgreSQL's "Logical
 * Replication Message Formats", proto_version 1).
 *
 * One message is decoded in two steps: parse it completely, building its
 * change line in the decoder's reusable line buffer, and only then write
 * anything (the pending R lines of the relations it names, then the line).
 * So a malformed message emits nothing and never leaves a half line behind.
 *
 * The parser reads through a bounds-checked cursor: every integer, string and
 * value length is checked against the bytes left before it is used, and a
 * count is never trusted to size an allocation (output grows only with the
 * bytes actually read). Relations live in an open-addressing hash table keyed
 * by relid (relid 0, InvalidOid, marks an empty slot and is refused in 'R').
 *
 * Also here: the LSN text helpers, the COPY text escape (which RESTORE uses
 * too, to rename a relation in an R line) and the reader's field split and
 * unescape, so writer and reader of change lines share one file.
 */
#include "pgbr/cdc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/buf.h"
#include "pgbr/hex.h"

#define CDC_MIN_SLOTS 16
#define CDC_ESCAPE_PIECE 4096

typedef struct cdc_relation {
    uint32_t relid;
    int ncols;              /* columns in the relation's tuples */
    bool pending;           /* rline not yet written in the current file */
    char *rline;            /* the R line, without LF */
    size_t rline_len;
} cdc_relation;

struct cdc_decoder {
    cdc_line_fn emit;
    void *arg;
    cdc_relation **slots;   /* nslots (a power of two) entries, NULL = empty */
    size_t nslots;
    size_t nrels;
    pgbr_buf line;          /* the line being built */
    bool out_failed;        /* an append to line failed: out_err says why */
    pgbr_error out_err;
    bool in_txn;            /* between a 'B' and its 'C' */
    cdc_stats stats;
};

/* A bounds-checked cursor over one message. */
typedef struct cdc_reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
    char why[160];          /* set by the first failure */
} cdc_reader;

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------- */

static bool rd_fail(cdc_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool rd_fail(cdc_reader *r, const char *fmt, ...)
{
    va_list ap;

    if (r->why[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof r->why, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool rd_need(cdc_reader *r, size_t n, const char *what)
{
    if (n > r->len - r->pos)
        return rd_fail(r, "truncated %s (%zu bytes needed, %zu left)", what, n, r->len - r->pos);
    return true;
}

static bool rd_u8(cdc_reader *r, uint8_t *v, const char *what)
{
    if (!rd_need(r, 1, what))
        return false;
    *v = r->p[r->pos++];
    return true;
}

static bool rd_u16(cdc_reader *r, uint16_t *v, const char *what)
{
    if (!rd_need(r, 2, what))
        return false;
    *v = (uint16_t)((unsigned)r->p[r->pos] << 8 | r->p[r->pos + 1]);
    r->pos += 2;
    return true;
}

static bool rd_u32(cdc_reader *r, uint32_t *v, const char *what)
{
    const unsigned char *p = r->p + r->pos;

    if (!rd_need(r, 4, what))
        return false;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->pos += 4;
    return true;
}

static bool rd_u64(cdc_reader *r, uint64_t *v, const char *what)
{
    uint32_t hi, lo;

    if (!rd_need(r, 8, what))
        return false;
    rd_u32(r, &hi, what);
    rd_u32(r, &lo, what);
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

/* A NUL-terminated string; *s points into the message, *n excludes the NUL. */
static bool rd_str(cdc_reader *r, const char **s, size_t *n, const char *what)
{
    const unsigned char *start = r->p + r->pos;
    const unsigned char *nul = r->pos < r->len ? memchr(start, '\0', r->len - r->pos) : NULL;

    if (nul == NULL)
        return rd_fail(r, "%s is not terminated", what);
    *s = (const char *)start;
    *n = (size_t)(nul - start);
    r->pos += *n + 1;
    return true;
}

/* A pgoutput timestamp, converted to the Unix epoch. */
static bool rd_time(cdc_reader *r, int64_t *us, const char *what)
{
    uint64_t raw;
    int64_t t = 0;

    if (!rd_u64(r, &raw, what))
        return false;
    t = (int64_t)raw;
    if (t > INT64_MAX - CDC_PG_EPOCH_OFFSET_US)
        return rd_fail(r, "%s is out of range", what);
    *us = t + CDC_PG_EPOCH_OFFSET_US;
    return true;
}

static bool rd_end(cdc_reader *r)
{
    if (r->pos != r->len)
        return rd_fail(r, "%zu trailing bytes", r->len - r->pos);
    return true;
}

/* ---------------------------------------------------------------------------
 * Building the line
 * ------------------------------------------------------------------------- */

static void out_bytes(cdc_decoder *d, const void *p, size_t n)
{
    if (!d->out_failed && !pgbr_buf_append(&d->line, p, n, &d->out_err))
        d->out_failed = true;
}

static void out_str(cdc_decoder *d, const char *s)
{
    out_bytes(d, s, strlen(s));
}

static void out_tab(cdc_decoder *d)
{
    out_bytes(d, "\t", 1);
}

static void out_u64(cdc_decoder *d, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);

    out_bytes(d, num, (size_t)n);
}

static void out_i64(cdc_decoder *d, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);

    out_bytes(d, num, (size_t)n);
}

static void out_lsn(cdc_decoder *d, uint64_t lsn)
{
    char text[CDC_LSN_TEXT_SIZE];

    cdc_lsn_format(lsn, text);
    out_str(d, text);
}

/* COPY text escaping, in pieces: the line grows with what is written, not
 * by twice the value at once. */
static void out_escaped(cdc_decoder *d, const char *s, size_t n)
{
    while (n > 0 && !d->out_failed) {
        size_t piece = n < CDC_ESCAPE_PIECE ? n : CDC_ESCAPE_PIECE;

        if (!pgbr_buf_reserve(&d->line, 2 * piece, &d->out_err)) {
            d->out_failed = true;
            return;
        }
        d->line.len += cdc_escape((char *)d->line.data + d->line.len, s, piece);
        s += piece;
        n -= piece;
    }
}

/* ---------------------------------------------------------------------------
 * Relations
 * ------------------------------------------------------------------------- */

static size_t rel_slot(const cdc_decoder *d, uint32_t relid)
{
    size_t mask = d->nslots - 1;
    size_t i = (size_t)((relid * UINT32_C(2654435761)) & mask);

    while (d->slots[i] != NULL && d->slots[i]->relid != relid)
        i = (i + 1) & mask;
    return i;
}

static cdc_relation *rel_find(const cdc_decoder *d, uint32_t relid)
{
    return d->slots[rel_slot(d, relid)];
}

/* Make room for one more relation (load factor at most 1/2). */
static bool rel_grow(cdc_decoder *d, pgbr_error *err)
{
    cdc_relation **old = d->slots;
    size_t oldn = d->nslots;
    size_t n = oldn;

    if ((d->nrels + 1) * 2 <= oldn)
        return true;
    while ((d->nrels + 1) * 2 > n)
        n *= 2;
    d->slots = calloc(n, sizeof *d->slots);
    if (d->slots == NULL) {
        d->slots = old;
        return pgbr_error_set(err, "53200", "out of memory growing the relation map to %zu entries", n);
    }
    d->nslots = n;
    for (size_t i = 0; i < oldn; i++)
        if (old[i] != NULL)
            d->slots[rel_slot(d, old[i]->relid)] = old[i];
    free(old);
    return true;
}

/* ---------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------- */

/* The XX001 report for a message the reader refused. */
static bool malformed(cdc_reader *r, uint64_t lsn, pgbr_error *err)
{
    char text[CDC_LSN_TEXT_SIZE];
    unsigned char type = r->len > 0 ? r->p[0] : 0;

    cdc_lsn_format(lsn, text);
    pgbr_error_set(err, "XX001", "logical decoding message at %s is malformed: %s", text,
                   r->why[0] ? r->why : "unknown reason");
    if (type >= 0x20 && type < 0x7f)
        pgbr_error_detail(err, "Message type '%c', %zu bytes, at byte offset %zu.", type, r->len, r->pos);
    else
        pgbr_error_detail(err, "Message type 0x%02x, %zu bytes, at byte offset %zu.", type, r->len, r->pos);
    return false;
}

static bool emit_line(cdc_decoder *d, const char *line, size_t len, pgbr_error *err)
{
    if (d->emit(d->arg, line, len, err))
        return true;
    if (!pgbr_error_is_set(err))
        pgbr_error_set(err, "XX000", "change line consumer failed without a reason");
    return false;
}

/* Write the relation's R line if this file has not seen it yet. */
static bool emit_pending(cdc_decoder *d, cdc_relation *rel, pgbr_error *err)
{
    if (!rel->pending)
        return true;
    if (!emit_line(d, rel->rline, rel->rline_len, err))
        return false;
    rel->pending = false;
    return true;
}

/* False with the reason when building the line ran out of memory. */
static bool built_ok(cdc_decoder *d, pgbr_error *err)
{
    if (!d->out_failed)
        return true;
    pgbr_error_move(err, &d->out_err);
    d->out_failed = false;
    return false;
}

/* Hand the built line on (after the R line of rel, when pending). */
static bool emit_built(cdc_decoder *d, cdc_relation *rel, pgbr_error *err)
{
    if (!built_ok(d, err))
        return false;
    if (rel != NULL && !emit_pending(d, rel, err))
        return false;
    return emit_line(d, (const char *)d->line.data, d->line.len, err);
}

static bool need_txn(cdc_decoder *d, cdc_reader *r, const char *what)
{
    if (!d->in_txn)
        return rd_fail(r, "%s outside a transaction", what);
    return true;
}

/* The relation a change names; unknown relids are malformed. */
static cdc_relation *read_rel(cdc_decoder *d, cdc_reader *r)
{
    uint32_t relid;
    cdc_relation *rel;

    if (!rd_u32(r, &relid, "relation id"))
        return NULL;
    rel = relid != 0 ? rel_find(d, relid) : NULL;
    if (rel == NULL)
        rd_fail(r, "relation %" PRIu32 " is unknown (no Relation message described it)", relid);
    return rel;
}

/* TupleData: a column count equal to the relation's, then one value each. */
static bool read_tuple(cdc_decoder *d, cdc_reader *r, const cdc_relation *rel)
{
    uint16_t ncols;

    if (!rd_u16(r, &ncols, "tuple column count"))
        return false;
    if ((int)ncols != rel->ncols)
        return rd_fail(r, "tuple has %u columns, relation %" PRIu32 " has %d", ncols, rel->relid,
                       rel->ncols);
    for (int i = 0; i < rel->ncols; i++) {
        uint8_t kind;
        uint32_t vlen;
        const char *v;

        if (!rd_u8(r, &kind, "column kind"))
            return false;
        out_tab(d);
        switch (kind) {
        case 'n':
            out_bytes(d, "\\N", 2);
            break;
        case 'u':
            out_bytes(d, "\\U", 2);
            break;
        case 't':
            if (!rd_u32(r, &vlen, "column value length"))
                return false;
            if (vlen > INT32_MAX)
                return rd_fail(r, "column %d has a negative length", i + 1);
            if (!rd_need(r, vlen, "column value"))
                return false;
            v = (const char *)r->p + r->pos;
            if (memchr(v, '\0', vlen) != NULL)
                return rd_fail(r, "column %d contains a zero byte", i + 1);
            out_escaped(d, v, vlen);
            r->pos += vlen;
            break;
        case 'b':
            return rd_fail(r, "column %d is in binary format, which was not requested", i + 1);
        default:
            return rd_fail(r, "column %d has unknown kind 0x%02x", i + 1, kind);
        }
    }
    return true;
}

static bool decode_begin(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    uint64_t final_lsn;
    int64_t t = 0;
    uint32_t xid;

    if (!rd_u64(r, &final_lsn, "final LSN") || !rd_time(r, &t, "commit time") ||
        !rd_u32(r, &xid, "xid") || !rd_end(r))
        return false;
    if (d->in_txn)
        return rd_fail(r, "begin inside a transaction");
    out_str(d, "B\t");
    out_lsn(d, final_lsn);
    out_tab(d);
    out_i64(d, t);
    out_tab(d);
    out_u64(d, xid);
    if (!emit_built(d, NULL, err))
        return false;
    d->in_txn = true;
    return true;
}

static bool decode_commit(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    uint8_t flags;
    uint64_t commit_lsn, end_lsn;
    int64_t t = 0;

    if (!rd_u8(r, &flags, "flags") || !rd_u64(r, &commit_lsn, "commit LSN") ||
        !rd_u64(r, &end_lsn, "end LSN") || !rd_time(r, &t, "commit time") || !rd_end(r))
        return false;
    if (flags != 0)
        return rd_fail(r, "commit flags are 0x%02x, not 0", flags);
    if (!need_txn(d, r, "commit"))
        return false;
    out_str(d, "C\t");
    out_lsn(d, commit_lsn);
    out_tab(d);
    out_lsn(d, end_lsn);
    out_tab(d);
    out_i64(d, t);
    if (!emit_built(d, NULL, err))
        return false;
    d->in_txn = false;
    d->stats.transactions++;
    d->stats.last_commit_lsn = commit_lsn;
    d->stats.last_commit_time_us = t;
    return true;
}

/* 'R': render the R line and record it; nothing is written yet. */
static bool decode_relation(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    uint32_t relid, typid, typmod;
    const char *s;
    size_t n;
    uint8_t replident, flags;
    uint16_t ncols;
    cdc_relation *rel;
    char *copy;

    if (!rd_u32(r, &relid, "relation id"))
        return false;
    if (relid == 0)
        return rd_fail(r, "relation id is 0");
    out_str(d, "R\t");
    out_u64(d, relid);
    out_tab(d);
    if (!rd_str(r, &s, &n, "namespace"))
        return false;
    out_escaped(d, s, n);
    out_tab(d);
    if (!rd_str(r, &s, &n, "relation name"))
        return false;
    out_escaped(d, s, n);
    if (!rd_u8(r, &replident, "replica identity"))
        return false;
    if (replident != 'd' && replident != 'n' && replident != 'f' && replident != 'i')
        return rd_fail(r, "replica identity 0x%02x is not d, n, f or i", replident);
    out_tab(d);
    out_bytes(d, &replident, 1);
    if (!rd_u16(r, &ncols, "column count"))
        return false;
    if (ncols > INT16_MAX)
        return rd_fail(r, "column count %u is negative", ncols);
    out_tab(d);
    out_u64(d, ncols);
    for (int i = 0; i < ncols; i++) {
        if (!rd_u8(r, &flags, "column flags"))
            return false;
        if (flags > 1)
            return rd_fail(r, "column %d has unknown flags 0x%02x", i + 1, flags);
        out_str(d, flags ? "\tk\t" : "\t-\t");
        if (!rd_str(r, &s, &n, "column name") || !rd_u32(r, &typid, "column type") ||
            !rd_u32(r, &typmod, "column type modifier"))
            return false;
        out_escaped(d, s, n);
    }
    if (!rd_end(r) || !built_ok(d, err))
        return false;

    rel = rel_find(d, relid);
    if (rel != NULL && rel->rline_len == d->line.len && memcmp(rel->rline, d->line.data, d->line.len) == 0)
        return true;    /* the same description again: written once per file is enough */
    copy = malloc(d->line.len + 1);
    if (copy == NULL)
        return pgbr_error_set(err, "53200", "out of memory recording relation %" PRIu32, relid);
    memcpy(copy, d->line.data, d->line.len);
    copy[d->line.len] = '\0';
    if (rel == NULL) {
        if (!rel_grow(d, err) || (rel = calloc(1, sizeof *rel)) == NULL) {
            free(copy);
            if (!pgbr_error_is_set(err))
                pgbr_error_set(err, "53200", "out of memory recording relation %" PRIu32, relid);
            return false;
        }
        rel->relid = relid;
        d->slots[rel_slot(d, relid)] = rel;
        d->nrels++;
    }
    free(rel->rline);
    rel->rline = copy;
    rel->rline_len = d->line.len;
    rel->ncols = ncols;
    rel->pending = true;
    return true;
}

/* The start of an I, U or D message: inside a transaction, a known relid;
 * the line starts "<kind><TAB><relid>". */
static cdc_relation *change_start(cdc_decoder *d, cdc_reader *r, const char *what, const char *kind)
{
    cdc_relation *rel;

    if (!need_txn(d, r, what) || (rel = read_rel(d, r)) == NULL)
        return NULL;
    out_str(d, kind);
    out_u64(d, rel->relid);
    return rel;
}

/* The end of an I, U or D message: its last tuple and nothing after it;
 * then the line goes out. */
static bool change_end(cdc_decoder *d, cdc_reader *r, cdc_relation *rel, pgbr_error *err)
{
    if (!read_tuple(d, r, rel) || !rd_end(r) || !emit_built(d, rel, err))
        return false;
    d->stats.changes++;
    return true;
}

static bool decode_insert(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    cdc_relation *rel = change_start(d, r, "insert", "I\t");
    uint8_t tag;

    if (rel == NULL || !rd_u8(r, &tag, "new tuple tag"))
        return false;
    if (tag != 'N')
        return rd_fail(r, "new tuple tag is 0x%02x, not 'N'", tag);
    return change_end(d, r, rel, err);
}

static bool decode_update(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    cdc_relation *rel = change_start(d, r, "update", "U\t");
    uint8_t tag;

    if (rel == NULL || !rd_u8(r, &tag, "tuple tag"))
        return false;
    if (tag == 'K' || tag == 'O') {
        out_tab(d);
        out_bytes(d, &tag, 1);
        if (!read_tuple(d, r, rel) || !rd_u8(r, &tag, "new tuple tag"))
            return false;
    } else {
        out_str(d, "\t-");
    }
    if (tag != 'N')
        return rd_fail(r, "tuple tag is 0x%02x, not 'K', 'O' or 'N'", tag);
    return change_end(d, r, rel, err);
}

static bool decode_delete(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    cdc_relation *rel = change_start(d, r, "delete", "D\t");
    uint8_t tag;

    if (rel == NULL || !rd_u8(r, &tag, "old tuple tag"))
        return false;
    if (tag != 'K' && tag != 'O')
        return rd_fail(r, "old tuple tag is 0x%02x, not 'K' or 'O'", tag);
    out_tab(d);
    out_bytes(d, &tag, 1);
    return change_end(d, r, rel, err);
}

static bool decode_truncate(cdc_decoder *d, cdc_reader *r, pgbr_error *err)
{
    uint32_t nrelids;
    uint8_t options;
    size_t first;

    if (!need_txn(d, r, "truncate") || !rd_u32(r, &nrelids, "relation count") ||
        !rd_u8(r, &options, "options"))
        return false;
    if (nrelids > INT32_MAX)
        return rd_fail(r, "relation count %" PRIu32 " is negative", nrelids);
    if ((size_t)nrelids > (r->len - r->pos) / 4)
        return rd_fail(r, "%" PRIu32 " relations do not fit in %zu bytes", nrelids, r->len - r->pos);
    out_str(d, "T\t");
    out_u64(d, options);
    out_tab(d);
    out_u64(d, nrelids);
    first = r->pos;
    for (uint32_t i = 0; i < nrelids; i++) {
        cdc_relation *rel = read_rel(d, r);

        if (rel == NULL)
            return false;
        out_tab(d);
        out_u64(d, rel->relid);
    }
    if (!rd_end(r) || !built_ok(d, err))
        return false;
    /* every relid is known (checked above): their R lines go first */
    r->pos = first;
    for (uint32_t i = 0; i < nrelids; i++) {
        cdc_relation *rel = read_rel(d, r);

        if (!emit_pending(d, rel, err))
            return false;
    }
    if (!emit_built(d, NULL, err))
        return false;
    d->stats.changes++;
    return true;
}

bool cdc_decoder_feed(cdc_decoder *d, uint64_t lsn, const void *msg, size_t len, pgbr_error *err)
{
    cdc_reader r = { .p = msg, .len = len, .pos = 0 };
    uint8_t type = 0;
    bool ok;

    pgbr_buf_reset(&d->line);
    d->out_failed = false;
    if (len == 0 || msg == NULL) {
        rd_fail(&r, "empty message");
        return malformed(&r, lsn, err);
    }
    rd_u8(&r, &type, "message type");
    switch (type) {
    case 'B': ok = decode_begin(d, &r, err); break;
    case 'C': ok = decode_commit(d, &r, err); break;
    case 'R': ok = decode_relation(d, &r, err); break;
    case 'I': ok = decode_insert(d, &r, err); break;
    case 'U': ok = decode_update(d, &r, err); break;
    case 'D': ok = decode_delete(d, &r, err); break;
    case 'T': ok = decode_truncate(d, &r, err); break;
    case 'O': /* origin, type and logical messages are not recorded */
    case 'Y':
    case 'M':
        return true;
    default:
        if (type >= 0x20 && type < 0x7f)
            rd_fail(&r, "unknown message type '%c'", type);
        else
            rd_fail(&r, "unknown message type 0x%02x", type);
        ok = false;
        break;
    }
    pgbr_error_clear(&d->out_err);
    d->out_failed = false;
    if (!ok && r.why[0] != '\0')
        return malformed(&r, lsn, err);
    return ok;
}

/* ---------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------- */

cdc_decoder *cdc_decoder_new(cdc_line_fn emit, void *arg, pgbr_error *err)
{
    cdc_decoder *d = calloc(1, sizeof *d);

    if (d != NULL)
        d->slots = calloc(CDC_MIN_SLOTS, sizeof *d->slots);
    if (d == NULL || d->slots == NULL) {
        free(d);
        pgbr_error_set(err, "53200", "out of memory creating a logical decoding decoder");
        return NULL;
    }
    d->nslots = CDC_MIN_SLOTS;
    d->emit = emit;
    d->arg = arg;
    return d;
}

void cdc_decoder_new_file(cdc_decoder *d)
{
    for (size_t i = 0; i < d->nslots; i++)
        if (d->slots[i] != NULL)
            d->slots[i]->pending = true;
}

void cdc_decoder_stats(const cdc_decoder *d, cdc_stats *out)
{
    *out = d->stats;
}

void cdc_decoder_free(cdc_decoder *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nslots; i++) {
        if (d->slots[i] != NULL) {
            free(d->slots[i]->rline);
            free(d->slots[i]);
        }
    }
    free(d->slots);
    pgbr_buf_free(&d->line);
    pgbr_error_clear(&d->out_err);
    free(d);
}

/* ---------------------------------------------------------------------------
 * LSN text
 * ------------------------------------------------------------------------- */

/* 1-8 hex digits into *v; returns the digits read, 0 when not 1-8. */
static int lsn_half(const char *s, uint32_t *v)
{
    int n = 0;

    *v = 0;
    while (n < 9 && pgbr_hex_value(s[n]) >= 0) {
        *v = *v << 4 | (uint32_t)pgbr_hex_value(s[n]);
        n++;
    }
    return n >= 1 && n <= 8 ? n : 0;
}

bool cdc_lsn_parse(const char *text, uint64_t *lsn)
{
    uint32_t hi, lo;
    int n, m;

    if (text == NULL || (n = lsn_half(text, &hi)) == 0 || text[n] != '/' ||
        (m = lsn_half(text + n + 1, &lo)) == 0 || text[n + 1 + m] != '\0')
        return false;
    *lsn = (uint64_t)hi << 32 | lo;
    return true;
}

void cdc_lsn_format(uint64_t lsn, char out[CDC_LSN_TEXT_SIZE])
{
    snprintf(out, CDC_LSN_TEXT_SIZE, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

/* ---------------------------------------------------------------------------
 * COPY text escaping, and the reader helpers
 * ------------------------------------------------------------------------- */

/* Runs of plain bytes are copied at once. */
size_t cdc_escape(char *out, const char *s, size_t n)
{
    size_t run = 0, w = 0;

    for (size_t i = 0; i < n; i++) {
        char esc;

        switch (s[i]) {
        case '\\': esc = '\\'; break;
        case '\t': esc = 't'; break;
        case '\n': esc = 'n'; break;
        case '\r': esc = 'r'; break;
        case '\b': esc = 'b'; break;
        case '\f': esc = 'f'; break;
        case '\v': esc = 'v'; break;
        default: continue;
        }
        memcpy(out + w, s + run, i - run);
        w += i - run;
        out[w++] = '\\';
        out[w++] = esc;
        run = i + 1;
    }
    memcpy(out + w, s + run, n - run);
    return w + n - run;
}

int cdc_split_fields(char *line, size_t len, char **fields, int max)
{
    int count = 0;
    char *start = line;
    char *end = line + len;

    for (;;) {
        char *tab = memchr(start, '\t', (size_t)(end - start));

        if (count >= max)
            return -1;
        fields[count++] = start;
        if (tab == NULL)
            break;
        *tab = '\0';
        start = tab + 1;
    }
    *end = '\0';
    return count;
}

bool cdc_unescape(char *field, size_t *len)
{
    size_t n = *len;
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)field[i];

        if (c != '\\') {
            field[out++] = (char)c;
            continue;
        }
        if (++i == n)
            return false;
        c = (unsigned char)field[i];
        switch (c) {
        case '\\': break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'v': c = '\v'; break;
        case 'x': {
            int h = i + 1 < n ? pgbr_hex_value(field[i + 1]) : -1;
            unsigned v;

            if (h < 0)
                return false;
            v = (unsigned)h;
            i++;
            if (i + 1 < n && (h = pgbr_hex_value(field[i + 1])) >= 0) {
                v = v << 4 | (unsigned)h;
                i++;
            }
            c = (unsigned char)v;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                unsigned v = c - '0';

                for (int k = 0; k < 2 && i + 1 < n && field[i + 1] >= '0' && field[i + 1] <= '7'; k++)
                    v = v << 3 | (unsigned)(field[++i] - '0');
                c = (unsigned char)v;   /* COPY keeps the low 8 bits of \ooo */
                break;
            }
            return false;
        }
        if (c == '\0')
            return false;
        field[out++] = (char)c;
    }
    field[out] = '\0';
    *len = out;
    return true;
}
