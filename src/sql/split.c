/*
 * split.c - sql_split() and sql_maybe_ours(): where the statements of a
 * query string begin and end, and which of them are pgbr's.
 *
 * A small hand-written lexer that knows exactly as much of PostgreSQL's
 * lexical rules as splitting needs: '' strings (standard_conforming_strings
 * on), E'' strings with backslash escapes, U&'' / B'' / X'' / N'' strings,
 * "quoted" identifiers, $tag$ dollar quotes ($1 is a parameter, a$b an
 * identifier), -- comments and nested C-style comments. A ';' outside all
 * of these ends a statement, except inside the BEGIN ... END body of
 * CREATE FUNCTION/PROCEDURE (BEGIN ATOMIC), tracked with psql's heuristic.
 * A statement is ours when its leading keywords say so (classify()).
 *
 * Runs on the event loop for every query that sql_maybe_ours() lets
 * through: one pass, no allocation besides the span array.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgbr/sql.h"

#define MAX_LEAD_WORDS 5
#define MAX_WORD_LEN 16

typedef struct split_state {
    const char *q;
    size_t len;
    size_t pos;
    /* the statement being scanned */
    char words[MAX_LEAD_WORDS][MAX_WORD_LEN + 1];
    int nwords;
    bool words_done;        /* a token other than a plain word was seen */
    bool has_token;
    /* psql's BEGIN ATOMIC tracking */
    int identifier_count;
    char identifiers[4];
    int paren_depth;
    int begin_depth;
} split_state;

static bool
is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool
is_ident_cont(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Skip a quoted run ending at an undoubled `quote`; backslash escapes when `escapes`. */
static void
skip_quoted(split_state *st, char quote, bool escapes)
{
    st->pos++;  /* opening quote */
    while (st->pos < st->len) {
        char c = st->q[st->pos++];

        if (escapes && c == '\\') {
            if (st->pos < st->len)
                st->pos++;
        } else if (c == quote) {
            if (st->pos < st->len && st->q[st->pos] == quote)
                st->pos++;
            else
                return;
        }
    }
}

/* Length of a $tag$ delimiter at pos, or 0 if there is none. */
static size_t
dollar_tag_len(const split_state *st, size_t pos)
{
    size_t i = pos + 1;

    if (i < st->len && st->q[i] == '$')
        return 2;
    if (i >= st->len || !is_ident_start((unsigned char) st->q[i]))
        return 0;
    while (i < st->len && is_ident_cont((unsigned char) st->q[i]) && st->q[i] != '$')
        i++;
    return i < st->len && st->q[i] == '$' ? i + 1 - pos : 0;
}

static void
skip_dollar_quote(split_state *st, size_t taglen)
{
    const char *tag = st->q + st->pos;

    st->pos += taglen;
    while (st->pos < st->len) {
        const char *end = memchr(st->q + st->pos, '$', st->len - st->pos);

        if (end == NULL)
            break;
        st->pos = (size_t) (end - st->q);
        if (st->len - st->pos >= taglen && memcmp(end, tag, taglen) == 0) {
            st->pos += taglen;
            return;
        }
        st->pos++;
    }
    st->pos = st->len;
}

/* At "/" "*": skip a (nested) comment. */
static void
skip_block_comment(split_state *st)
{
    int depth = 0;

    st->pos += 2;
    while (st->pos < st->len) {
        if (st->q[st->pos] == '/' && st->pos + 1 < st->len && st->q[st->pos + 1] == '*') {
            depth++;
            st->pos += 2;
        } else if (st->q[st->pos] == '*' && st->pos + 1 < st->len && st->q[st->pos + 1] == '/') {
            st->pos += 2;
            if (depth-- == 0)
                return;
        } else {
            st->pos++;
        }
    }
}

/* Skip whitespace and comments. */
static void
skip_space(split_state *st)
{
    while (st->pos < st->len) {
        unsigned char c = (unsigned char) st->q[st->pos];

        if (is_space(c))
            st->pos++;
        else if (c == '-' && st->pos + 1 < st->len && st->q[st->pos + 1] == '-') {
            while (st->pos < st->len && st->q[st->pos] != '\n' && st->q[st->pos] != '\r')
                st->pos++;
        } else if (c == '/' && st->pos + 1 < st->len && st->q[st->pos + 1] == '*')
            skip_block_comment(st);
        else
            return;
    }
}

/* A word of the statement: collect leading keywords, track BEGIN ... END. */
static void
note_word(split_state *st, const char *w, size_t n)
{
    if (!st->words_done && st->nwords < MAX_LEAD_WORDS) {
        if (n <= MAX_WORD_LEN) {
            for (size_t i = 0; i < n; i++)
                st->words[st->nwords][i] = (char) (w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
            st->words[st->nwords][n] = '\0';
            st->nwords++;
        } else {
            st->words_done = true;
        }
    }

    /* psql: CREATE [OR REPLACE] {FUNCTION|PROCEDURE} ... BEGIN ... END */
    if (st->identifier_count < (int) sizeof st->identifiers) {
        static const char *const interesting[] = { "create", "function", "procedure", "or", "replace" };
        char first = 0;

        for (size_t i = 0; i < sizeof interesting / sizeof interesting[0]; i++)
            if (strlen(interesting[i]) == n && strncasecmp(interesting[i], w, n) == 0)
                first = interesting[i][0];
        st->identifiers[st->identifier_count] = first;
    }
    st->identifier_count++;
    if (st->identifiers[0] == 'c' && st->paren_depth == 0
        && (st->identifiers[1] == 'f' || st->identifiers[1] == 'p'
            || (st->identifiers[1] == 'o' && st->identifiers[2] == 'r'
                && (st->identifiers[3] == 'f' || st->identifiers[3] == 'p')))) {
        if (n == 5 && strncasecmp(w, "begin", 5) == 0)
            st->begin_depth++;
        else if (n == 4 && strncasecmp(w, "case", 4) == 0) {
            if (st->begin_depth > 0)
                st->begin_depth++;
        } else if (n == 3 && strncasecmp(w, "end", 3) == 0) {
            if (st->begin_depth > 0)
                st->begin_depth--;
        }
    }
}

static bool
word_is(const split_state *st, int i, const char *w)
{
    return i < st->nwords && strcmp(st->words[i], w) == 0;
}

static bool
word_in(const split_state *st, int i, const char *const *ws)
{
    for (; *ws != NULL; ws++)
        if (word_is(st, i, *ws))
            return true;
    return false;
}

/* Is a statement with these leading words one of ours? */
static bool
classify(const split_state *st)
{
    static const char *const show_second[] = {
        "backup", "backups", "job", "jobs", "schedule", "schedules", NULL
    };
    static const char *const job_or_jobs[] = { "job", "jobs", NULL };
    static const char *const pause_second[] = { "job", "jobs", "all", "schedule", "schedules", NULL };
    static const char *const cancel_second[] = { "job", "jobs", "all", NULL };
    static const char *const schedule_or_schedules[] = { "schedule", "schedules", NULL };
    static const char *const running_paused[] = { "running", "paused", NULL };

    if (word_is(st, 0, "backup") || word_is(st, 0, "restore"))
        return true;
    if (word_is(st, 0, "show")) {
        if (word_in(st, 1, show_second))
            return true;
        if (word_is(st, 1, "automatic"))
            return word_is(st, 2, "jobs");
        if (word_is(st, 1, "changefeed"))
            return word_in(st, 2, job_or_jobs);
        if (word_in(st, 1, running_paused))
            return word_is(st, 2, "schedules");
        if (word_is(st, 1, "create")) {
            if (word_is(st, 2, "schedule"))
                return true;
            if (word_is(st, 2, "external"))
                return word_is(st, 3, "connection");
            if (word_is(st, 2, "all"))
                return word_is(st, 3, "schedules")
                       || (word_is(st, 3, "external") && word_is(st, 4, "connections"));
        }
        return false;
    }
    if (word_is(st, 0, "pause") || word_is(st, 0, "resume"))
        return word_in(st, 1, pause_second);
    if (word_is(st, 0, "cancel"))
        return word_in(st, 1, cancel_second);
    if (word_is(st, 0, "alter"))
        return word_is(st, 1, "backup");
    if (word_is(st, 0, "create"))
        return word_is(st, 1, "schedule") || (word_is(st, 1, "external") && word_is(st, 2, "connection"));
    if (word_is(st, 0, "drop"))
        return word_in(st, 1, schedule_or_schedules)
               || (word_is(st, 1, "external") && word_is(st, 2, "connection"));
    return false;
}

/* Scan one token at st->pos (not whitespace or a comment). */
static void
scan_token(split_state *st)
{
    const char *q = st->q;
    unsigned char c = (unsigned char) q[st->pos];

    st->has_token = true;
    if (is_ident_start(c)) {
        size_t start = st->pos;
        size_t n;

        while (st->pos < st->len && is_ident_cont((unsigned char) q[st->pos]))
            st->pos++;
        n = st->pos - start;
        /* string prefixes: E'', B'', X'', N'', U&'' and U&"" */
        if (n == 1 && st->pos < st->len && q[st->pos] == '\'') {
            st->words_done = true;
            skip_quoted(st, '\'', c == 'e' || c == 'E');
            return;
        }
        if (n == 1 && (c == 'u' || c == 'U') && st->pos + 1 < st->len && q[st->pos] == '&'
            && (q[st->pos + 1] == '\'' || q[st->pos + 1] == '"')) {
            st->words_done = true;
            st->pos++;
            skip_quoted(st, q[st->pos], false);
            return;
        }
        note_word(st, q + start, n);
        return;
    }
    st->words_done = true;
    switch (c) {
    case '\'':
        skip_quoted(st, '\'', false);
        return;
    case '"':
        skip_quoted(st, '"', false);
        return;
    case '$': {
        size_t taglen = dollar_tag_len(st, st->pos);

        if (taglen > 0)
            skip_dollar_quote(st, taglen);
        else
            st->pos++;  /* $1 or a stray $: the digits follow as an ordinary token */
        return;
    }
    case '(':
        st->paren_depth++;
        break;
    case ')':
        if (st->paren_depth > 0)
            st->paren_depth--;
        break;
    default:
        break;
    }
    st->pos++;
    /* numbers and operators: skip their digits and letters as one token */
    if (c >= '0' && c <= '9')
        while (st->pos < st->len && is_ident_cont((unsigned char) q[st->pos]))
            st->pos++;
}

static bool
push_span(sql_span **spans, int *n, int *cap, size_t start, size_t end, sql_span_kind kind)
{
    if (*n == *cap) {
        int ncap = *cap > 0 ? *cap * 2 : 4;
        sql_span *p = realloc(*spans, sizeof *p * (size_t) ncap);

        if (p == NULL)
            return false;
        *spans = p;
        *cap = ncap;
    }
    (*spans)[*n].start = start;
    (*spans)[*n].end = end;
    (*spans)[*n].kind = kind;
    (*n)++;
    return true;
}

/*
 * See sql.h. Every ';'-terminated piece is a span (SQL_SPAN_EMPTY when it
 * holds no token); the piece after the last ';' is one if it holds a token,
 * or if the query has no span at all. A span's end is its ';' (or the end
 * of the query), so it keeps trailing whitespace and comments. Out of
 * memory gives *spans NULL and *nspans 0.
 */
void
sql_split(const char *query, size_t len, sql_span **spans, int *nspans)
{
    split_state st;
    int cap = 0;

    *spans = NULL;
    *nspans = 0;
    memset(&st, 0, sizeof st);
    st.q = query;
    st.len = len;

    for (;;) {
        size_t start;

        st.nwords = 0;
        st.words_done = false;
        st.has_token = false;
        st.identifier_count = 0;
        memset(st.identifiers, 0, sizeof st.identifiers);
        st.paren_depth = 0;
        st.begin_depth = 0;

        skip_space(&st);
        start = st.pos;
        while (st.pos < len) {
            skip_space(&st);
            if (st.pos >= len)
                break;
            if (query[st.pos] == ';' && st.begin_depth == 0)
                break;
            if (query[st.pos] == ';') {
                st.words_done = true;
                st.pos++;
                continue;
            }
            scan_token(&st);
        }
        if (st.pos < len || st.has_token || *nspans == 0) {
            sql_span_kind kind = !st.has_token ? SQL_SPAN_EMPTY
                                 : classify(&st) ? SQL_SPAN_OURS
                                                 : SQL_SPAN_FORWARD;

            if (!push_span(spans, nspans, &cap, start, st.pos, kind)) {
                free(*spans);
                *spans = NULL;
                *nspans = 0;
                return;
            }
        }
        if (st.pos >= len)
            return;
        st.pos++;   /* the ';' */
    }
}

static bool
match_word(const char *q, size_t len, size_t i, const char *w)
{
    size_t n = strlen(w);

    if (len - i < n)
        return false;
    for (size_t k = 1; k < n; k++)
        if ((q[i + k] | 0x20) != w[k])
            return false;
    return true;
}

/*
 * Every statement of ours contains one of these words (as a keyword), so a
 * query without any of them, in any case, is certainly forwarded. OR-ing
 * 0x20 lower-cases ASCII letters and maps no other byte onto one.
 */
bool
sql_maybe_ours(const char *q, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        switch (q[i] | 0x20) {
        case 'b':
            if (match_word(q, len, i, "backup"))
                return true;
            break;
        case 'r':
            if (match_word(q, len, i, "restore") || match_word(q, len, i, "resume"))
                return true;
            break;
        case 'j':
            if (match_word(q, len, i, "job"))
                return true;
            break;
        case 's':
            if (match_word(q, len, i, "schedule"))
                return true;
            break;
        case 'e':
            if (match_word(q, len, i, "external"))
                return true;
            break;
        case 'p':
            if (match_word(q, len, i, "pause"))
                return true;
            break;
        case 'c':
            if (match_word(q, len, i, "cancel"))
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}
