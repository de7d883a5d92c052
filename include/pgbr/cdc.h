/*
 * cdc.h - change data capture: the decoder that turns the binary messages of
 * PostgreSQL's pgoutput plugin (proto_version 1, no binary option) into
 * pgbr's change lines, and the helpers a writer (the COPY text escape) and a
 * reader of change lines need.
 *
 * Change lines (pgbr's change-file record format, version 1; also in
 * docs/format.md, "Change lines")
 * -------------------------------------------------------------------------
 * A change file is a pgbr data file (src/io/datafile.c) whose "rows" are
 * change lines instead of COPY rows. Each line ends with LF; fields are
 * separated by TAB; every field that carries a name or a value is escaped
 * exactly like PostgreSQL's COPY text format (backslash escapes \\ \t \n \r
 * \b \f \v; NULL is the two characters \N). One extra marker: the two
 * characters \U (backslash, capital U) as a whole field means "unchanged
 * TOASTed value, not sent by the server" (pgoutput's 'u' column kind); it can
 * never come out of escaping a real value, since a real backslash is written
 * \\.
 *
 * LSNs are written as PostgreSQL's pg_lsn text ("16/B374D848"). Times are
 * integers: microseconds since 1970-01-01 00:00:00 UTC (pgoutput sends
 * microseconds since 2000-01-01; 946684800000000 is added).
 *
 * Lines, by first field:
 *
 *   B <TAB> final_lsn <TAB> commit_time_us <TAB> xid
 *         a transaction begins (pgoutput 'B')
 *   R <TAB> relid <TAB> schema <TAB> table <TAB> replident <TAB> ncols
 *         { <TAB> flags <TAB> name }*ncols
 *         a relation's description (pgoutput 'R'); replident is one of d, n,
 *         f, i (pg_class.relreplident); flags is "k" when the column is part
 *         of the replica identity key, "-" otherwise. Written before the
 *         first change of that relid in each change file, and again whenever
 *         the server sends a new 'R' for it (after DDL).
 *   I <TAB> relid <TAB> ncols values
 *         INSERT (pgoutput 'I', new tuple)
 *   U <TAB> relid <TAB> oldkind <TAB> [ncols old values, only when oldkind
 *         is K or O] <TAB> ncols new values
 *         UPDATE (pgoutput 'U'); oldkind is K (old key tuple sent: non-key
 *         columns are \N), O (old full tuple sent: REPLICA IDENTITY FULL) or
 *         - (no old tuple: the key did not change, take it from the new
 *         values' key columns). New values may contain \U.
 *   D <TAB> relid <TAB> oldkind <TAB> ncols old values
 *         DELETE (pgoutput 'D'); oldkind K or O as above.
 *   T <TAB> options <TAB> nrelids { <TAB> relid }*nrelids
 *         TRUNCATE (pgoutput 'T'); options is the integer bit set
 *         (1 = CASCADE, 2 = RESTART IDENTITY).
 *   C <TAB> commit_lsn <TAB> end_lsn <TAB> commit_time_us
 *         the transaction commits (pgoutput 'C').
 *
 * Every I/U/D/T line of a transaction lies between its B and C lines.
 * Transactions appear in commit order (as logical decoding emits them).
 * ncols is the relation's column count from its last R line. pgoutput
 * messages pgbr does not record: 'O' (origin), 'Y' (type), 'M' (logical
 * message).
 * -------------------------------------------------------------------------
 *
 * The decoder keeps one entry per relation (its rendered R line and column
 * count), so its memory grows with the number of relations and the longest
 * line, never with the number of changes. R lines are written lazily: an 'R'
 * message only records the relation; its R line goes out just before the next
 * change (I/U/D, or a T naming it) of that relid when it was not yet written
 * in the current change file or differs from the one last written (a repeated
 * identical 'R', which every new decoding session sends, is not written
 * twice in one file). T lines list only relids known from 'R' messages;
 * pgoutput always describes a relation before its first change.
 *
 * Every length and count in a message is hostile: a message that is
 * truncated, has trailing bytes, an unknown type or column kind, a binary
 * ('b') column, a tuple whose column count differs from its relation's, a
 * zero byte inside a value, a change for a relid no 'R' described, a change
 * outside a transaction or a 'B' inside one fails with SQLSTATE XX001
 * "logical decoding message at <lsn> is malformed: <why>" (DETAIL: message
 * type and byte offset), with nothing emitted for that message.
 *
 * Not thread-safe: a decoder belongs to one thread (the worker running the
 * incremental backup).
 */
#ifndef PGBR_CDC_H
#define PGBR_CDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/error.h"

/* Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch). */
#define CDC_PG_EPOCH_OFFSET_US INT64_C(946684800000000)

/* Room for the longest LSN text "FFFFFFFF/FFFFFFFF" and its NUL. */
#define CDC_LSN_TEXT_SIZE 20

/* Called once per complete change line, without its final LF. The line is
 * only valid during the call. Return false with err set to stop the decoder
 * (cdc_decoder_feed then returns false with that error). */
typedef bool (*cdc_line_fn)(void *arg, const char *line, size_t len, pgbr_error *err);

typedef struct cdc_decoder cdc_decoder;

/* Counters for the manifest. transactions and changes count the C lines and
 * the I/U/D/T lines emitted; last_commit_lsn and last_commit_time_us are the
 * commit_lsn and commit time (Unix epoch, microseconds) of the last 'C'
 * message decoded (0 before the first). */
typedef struct cdc_stats {
    uint64_t transactions, changes;
    uint64_t last_commit_lsn;
    int64_t last_commit_time_us;
} cdc_stats;

/* A decoder that hands every change line to emit(arg, ...). NULL with err set
 * (53200) when out of memory. Free it with cdc_decoder_free(). */
cdc_decoder *cdc_decoder_new(cdc_line_fn emit, void *arg, pgbr_error *err);

/* Decode one pgoutput message, as pg_logical_slot_peek_binary_changes()
 * returns it (column data) with that row's lsn (column lsn; used in error
 * messages only). Emits zero or more lines. False with err set: XX001 for a
 * malformed message (nothing emitted for it), 53200 out of memory, or the
 * error of a failing emit. After a failure the decoder's transaction state is
 * undefined: throw it away. */
bool cdc_decoder_feed(cdc_decoder *d, uint64_t lsn, const void *msg, size_t len, pgbr_error *err);

/* Start a new change file: every known relation's R line is written again
 * before the next change of that relid. */
void cdc_decoder_new_file(cdc_decoder *d);

/* Copy the counters into *out. */
void cdc_decoder_stats(const cdc_decoder *d, cdc_stats *out);

/* Free the decoder and its relation map (NULL is fine). */
void cdc_decoder_free(cdc_decoder *d);

/* Parse PostgreSQL's pg_lsn text: 1-8 hex digits, '/', 1-8 hex digits, either
 * case, nothing else. False (and *lsn untouched) when text is not that. */
bool cdc_lsn_parse(const char *text, uint64_t *lsn);

/* Format an LSN as pg_lsn text ("16/B374D848": upper-case hex, no leading
 * zeros), NUL-terminated. */
void cdc_lsn_format(uint64_t lsn, char out[CDC_LSN_TEXT_SIZE]);

/* Escape s[0..n) as COPY text, as change lines carry names and values: a
 * backslash, TAB, LF, CR, BS, FF and VT become \\ \t \n \r \b \f \v,
 * every other byte stays as it is. Writes into out, which needs room for
 * 2 * n bytes, and returns the bytes written (no NUL is added). */
size_t cdc_escape(char *out, const char *s, size_t n);

/* Reader helpers. A reader takes a line without its LF, splits it into fields
 * with cdc_split_fields(), compares whole fields with "\N" (NULL) and "\U"
 * (unchanged TOASTed value) itself, and only then unescapes the other fields
 * with cdc_unescape(): unescaping "\N" or "\U" fails. */

/* Split line[0..len) at every TAB, in place: each TAB, and line[len], becomes
 * a NUL, so line must have len + 1 writable bytes (the LF's place does). The
 * fields are stored in fields[0..count); a change line's fields never contain
 * a zero byte, so strlen() gives each field's length. Returns the count (an
 * empty line is one empty field), or -1 when there are more than max fields
 * (line is then partly split). */
int cdc_split_fields(char *line, size_t len, char **fields, int max);

/* Undo COPY text escaping of field[0..*len) in place and set *len to the new
 * length; field[*len] becomes a NUL, so field must have *len + 1 writable
 * bytes (a field cdc_split_fields() made has). Accepts the escapes COPY text defines:
 * \\ \b \f \n \r \t \v, \ooo (1-3 octal digits) and \xhh (1-2 hex digits).
 * False (field contents then unspecified) for a backslash at the end, any
 * other escaped character (which includes \N and \U), or an escape that
 * gives a zero byte. */
bool cdc_unescape(char *field, size_t *len);

#endif
