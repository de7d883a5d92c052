/*
 * parse.c - sql_parse(): runs the flex scanner and the bison parser over one
 * statement, turns the first error into a pgbr_error with PostgreSQL's
 * wording and a character position, and copies the tree out of the parse
 * arena.
 *
 * Also the token stream between scanner and parser (pgbr_yylex), which, as
 * PostgreSQL's parser.c does, looks one token ahead to turn WITH before
 * TIME/ORDINALITY/TIES into WITH_LA, and applies U&'' / U&"" escapes with an
 * optional UESCAPE clause.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/hex.h"
#include "sql_int.h"

#define YYSTYPE PGBR_YYSTYPE
#define YYLTYPE sql_location
#include "scan.h"

static int unicode_decode(sql_parse_state *ps, char **value, int location, char escape);

/* Characters (not bytes) in s[0..n): the 1-based position PostgreSQL reports is this + 1. */
static int
char_count(const char *s, int n)
{
    int count = 0;

    for (int i = 0; i < n; i++)
        if ((((unsigned char) s[i]) & 0xC0) != 0x80)
            count++;
    return count;
}

sql_stmt *
sql_parse(const char *text, size_t len, int position_base, pgbr_error *err)
{
    /*
     * On the heap: its fields change after setjmp, where a local struct's
     * would be indeterminate after the longjmp; the pointer is volatile for
     * the same reason (some compilers warn otherwise).
     */
    sql_parse_state *volatile ps = calloc(1, sizeof *ps);
    jmp_buf oom;
    sql_stmt *volatile stmt = NULL;
    volatile bool out_of_memory = false;

    if (ps == NULL) {
        pgbr_error_set(err, "53200", "out of memory");
        return NULL;
    }
    /* a query string ends at a NUL byte, as PostgreSQL's C strings do */
    len = strnlen(text, len);
    if (len > (size_t) (INT_MAX / 2)) {
        free(ps);
        pgbr_error_set(err, "54000", "statement is too long");
        return NULL;
    }
    ps->len = (int) len;
    ps->error_location = -1;
    if (setjmp(oom) != 0) {
        out_of_memory = true;
        goto done;
    }
    ps->arena = sql_arena_create(&oom);
    ps->scanbuf = sql_arena_alloc(ps->arena, (size_t) ps->len + 2);
    memcpy(ps->scanbuf, text, (size_t) ps->len);
    if (pgbr_core_yylex_init_extra(ps, &ps->scanner) != 0) {
        out_of_memory = true;
        goto done;
    }
    pgbr_core_yy_scan_buffer(ps->scanbuf, (size_t) ps->len + 2, ps->scanner);

    if (pgbr_yyparse(ps) == 0 && !ps->failed && ps->result != NULL) {
        ps->result->nparams = ps->max_param;
        stmt = sql_stmt_copy(ps->result);
        if (stmt == NULL)
            out_of_memory = true;
    } else if (!ps->failed) {
        sql_parse_error(ps, ps->len, "42601", "syntax error at end of input");
    }

done:
    if (out_of_memory) {
        pgbr_error_set(err, "53200", "out of memory");
    } else if (stmt == NULL) {
        pgbr_error_set(err, ps->sqlstate, "%s", ps->message);
        if (ps->hint != NULL)
            pgbr_error_hint(err, "%s", ps->hint);
        if (ps->error_location >= 0)
            err->position = position_base + char_count(ps->scanbuf, ps->error_location) + 1;
    }
    if (ps->scanner != NULL)
        pgbr_core_yylex_destroy(ps->scanner);
    sql_arena_destroy(ps->arena);
    free(ps);
    return stmt;
}

/* Bison's report of a syntax error at the lookahead token. */
void
pgbr_yyerror(sql_location *llocp, sql_parse_state *ps, const char *message)
{
    /* bison's only other message is for a parser stack overflow */
    const char *sqlstate = strcmp(message, "syntax error") == 0 ? "42601" : "54001";

    if (llocp->start >= ps->len)
        sql_parse_error(ps, ps->len, sqlstate, "%s at end of input", message);
    else
        sql_parse_error(ps, llocp->start, sqlstate, "%s at or near \"%.*s\"", message,
                        llocp->end - llocp->start, ps->scanbuf + llocp->start);
}

static int
next_token(sql_parse_state *ps, YYSTYPE *lvalp, sql_location *llocp)
{
    if (ps->have_lookahead) {
        ps->have_lookahead = false;
        *lvalp = ps->lookahead_value;
        *llocp = ps->lookahead_location;
        return ps->lookahead_token;
    }
    return pgbr_core_yylex(lvalp, llocp, ps->scanner);
}

static void
push_back(sql_parse_state *ps, int token, const YYSTYPE *lval, const sql_location *lloc)
{
    ps->have_lookahead = true;
    ps->lookahead_token = token;
    ps->lookahead_value = *lval;
    ps->lookahead_location = *lloc;
}

int
pgbr_yylex(YYSTYPE *lvalp, sql_location *llocp, sql_parse_state *ps)
{
    int token = next_token(ps, lvalp, llocp);
    YYSTYPE next_val;
    sql_location next_loc;
    int next;

    switch (token) {
    case WITH:
        next = next_token(ps, &next_val, &next_loc);
        if (next == TIME
            || (next == IDENT
                && (strcmp(next_val.str, "ordinality") == 0 || strcmp(next_val.str, "ties") == 0)))
            token = WITH_LA;
        push_back(ps, next, &next_val, &next_loc);
        break;

    case UIDENT:
    case USCONST: {
        char escape = '\\';

        next = next_token(ps, &next_val, &next_loc);
        if (next == IDENT && strcmp(next_val.str, "uescape") == 0) {
            next = next_token(ps, &next_val, &next_loc);
            if (next != SCONST) {
                sql_parse_error(ps, next_loc.start, "42601",
                                "UESCAPE must be followed by a simple string literal");
                return LEX_ERROR;
            }
            /* as PostgreSQL: one character, not a hex digit, '+', quote or space */
            if (strlen(next_val.str) != 1
                || strchr("0123456789abcdefABCDEF+'\" \t\n\r\f", next_val.str[0]) != NULL) {
                sql_parse_error(ps, next_loc.start, "42601", "invalid Unicode escape character");
                return LEX_ERROR;
            }
            escape = next_val.str[0];
            llocp->end = next_loc.end;
        } else {
            push_back(ps, next, &next_val, &next_loc);
        }
        if (!unicode_decode(ps, &lvalp->str, llocp->start, escape))
            return LEX_ERROR;
        if (token == UIDENT) {
            size_t n = strlen(lvalp->str);

            /* truncate as ordinary identifiers are */
            if (n > 63) {
                n = 63;
                while (n > 0 && (((unsigned char) lvalp->str[n]) & 0xC0) == 0x80)
                    n--;
                lvalp->str[n] = '\0';
            }
            token = IDENT;
        } else {
            token = SCONST;
        }
        break;
    }

    default:
        break;
    }
    return token;
}

static bool
hex_digits(const char *s, int n, unsigned int *value)
{
    *value = 0;
    for (int i = 0; i < n; i++) {
        int h = pgbr_hex_value(s[i]);
        if (h < 0)
            return false;
        *value = *value * 16 + (unsigned int) h;
    }
    return true;
}

static int
put_utf8(char *out, unsigned int c)
{
    if (c < 0x80) {
        out[0] = (char) c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char) (0xC0 | (c >> 6));
        out[1] = (char) (0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char) (0xE0 | (c >> 12));
        out[1] = (char) (0x80 | ((c >> 6) & 0x3F));
        out[2] = (char) (0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char) (0xF0 | (c >> 18));
    out[1] = (char) (0x80 | ((c >> 12) & 0x3F));
    out[2] = (char) (0x80 | ((c >> 6) & 0x3F));
    out[3] = (char) (0x80 | (c & 0x3F));
    return 4;
}

/*
 * Apply the escapes of a U&'' string or U&"" identifier in place: escape
 * followed by 4 hex digits, '+' and 6 hex digits, or a second escape.
 * UTF-8 output is never longer than the escape it replaces.
 */
static int
unicode_decode(sql_parse_state *ps, char **value, int location, char escape)
{
    const char *in = *value;
    char *out = sql_palloc(ps, strlen(in) + 1);
    char *o = out;
    unsigned int pair_first = 0;

    while (*in != '\0') {
        unsigned int c;

        if (*in != escape) {
            if (pair_first != 0)
                goto bad_pair;
            *o++ = *in++;
            continue;
        }
        if (in[1] == escape) {
            if (pair_first != 0)
                goto bad_pair;
            *o++ = escape;
            in += 2;
            continue;
        }
        if (hex_digits(in + 1, 4, &c))
            in += 5;
        else if (in[1] == '+' && hex_digits(in + 2, 6, &c))
            in += 8;
        else {
            sql_parse_error(ps, location, "42601", "invalid Unicode escape");
            ps->hint = sql_pstrdup(ps, "Unicode escapes must be \\XXXX or \\+XXXXXX.");
            return 0;
        }
        if (pair_first != 0) {
            if (c < 0xDC00 || c > 0xDFFF)
                goto bad_pair;
            c = ((pair_first & 0x3FF) << 10) + 0x10000 + (c & 0x3FF);
            pair_first = 0;
        } else if (c >= 0xD800 && c <= 0xDBFF) {
            pair_first = c;
            continue;
        } else if (c >= 0xDC00 && c <= 0xDFFF) {
            goto bad_pair;
        }
        if (c == 0 || c > 0x10FFFF) {
            sql_parse_error(ps, location, "42601", "invalid Unicode escape value");
            return 0;
        }
        o += put_utf8(o, c);
    }
    if (pair_first != 0)
        goto bad_pair;
    *o = '\0';
    *value = out;
    return 1;

bad_pair:
    sql_parse_error(ps, location, "42601", "invalid Unicode surrogate pair");
    return 0;
}
