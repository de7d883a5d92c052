/*
 * keywords.c - the keyword table built from grammar/keywords.h (the one
 * place keywords are listed) and its lookup by bisection, for the scanner
 * and for deciding when deparsed names need quotes.
 */
#include <string.h>

#include "sql_int.h"

typedef struct sql_keyword {
    const char *name;
    int token;
    sql_keyword_category category;
} sql_keyword;

#define PGBR_KEYWORD(name, token, category) { name, token, category },

static const sql_keyword sql_keywords[] = {
#include "../../grammar/keywords.h"
};

#undef PGBR_KEYWORD

#define SQL_NKEYWORDS ((int) (sizeof sql_keywords / sizeof sql_keywords[0]))

/*
 * Token of the keyword spelled word[0..len) (lower case, not NUL-terminated
 * necessarily), or -1. *name gets the table's static spelling, *category its
 * category; either may be NULL.
 */
int
sql_keyword_lookup(const char *word, size_t len, const char **name, sql_keyword_category *category)
{
    int lo = 0;
    int hi = SQL_NKEYWORDS - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *kw = sql_keywords[mid].name;
        int cmp = strncmp(kw, word, len);

        if (cmp == 0 && kw[len] != '\0')
            cmp = 1;    /* kw is longer: it sorts after word */
        if (cmp == 0) {
            if (name != NULL)
                *name = kw;
            if (category != NULL)
                *category = sql_keywords[mid].category;
            return sql_keywords[mid].token;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/*
 * As PostgreSQL's quote_identifier: a name reads back unquoted only if it is
 * lower-case letters, digits, '_' and '$' not starting with a digit or '$',
 * and not a reserved keyword.
 */
bool
sql_ident_needs_quotes(const char *s)
{
    sql_keyword_category category;

    if (s[0] == '\0' || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return true;
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '$'))
            return true;
    if (sql_keyword_lookup(s, strlen(s), NULL, &category) >= 0 && category != UNRESERVED_KEYWORD)
        return true;
    return false;
}
