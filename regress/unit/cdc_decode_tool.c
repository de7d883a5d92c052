/*
 * cdc_decode_tool.c - a test driver for the pgoutput decoder (src/cdc/decode.c)
 * that regress/t/025_cdc_decode.t runs against a real PostgreSQL.
 *
 * stdin: one pgoutput message per line, "lsn<TAB>hexdata", as
 *   psql -A -t -F '<TAB>' -c "SELECT lsn, encode(data, 'hex')
 *                             FROM pg_logical_slot_peek_binary_changes(...)"
 * prints it; a line "--new-file" calls cdc_decoder_new_file(); empty lines
 * are skipped.
 * stdout: the change lines, each followed by LF.
 * stderr: on success one line "stats transactions=N changes=N
 * last_commit_lsn=X/X last_commit_time_us=N"; on failure
 * "ERROR: <sqlstate> <message>" (and "DETAIL: ..."), exit status 1.
 * Exit status 2: bad input line (not the decoder's fault).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/cdc.h"
#include "pgbr/hex.h"

static bool print_line(void *arg, const char *line, size_t len, pgbr_error *err)
{
    (void)arg;
    if (fwrite(line, 1, len, stdout) != len || putchar('\n') == EOF)
        return pgbr_error_set(err, "58030", "could not write to stdout");
    return true;
}

int main(void)
{
    pgbr_error err = PGBR_ERROR_INIT;
    cdc_decoder *d = cdc_decoder_new(print_line, NULL, &err);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0;
    cdc_stats st;
    char lsn_text[CDC_LSN_TEXT_SIZE];
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "ERROR: %s %s\n", err.sqlstate, err.message);
        return 1;
    }
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        char *tab;
        uint64_t lsn;
        size_t hexlen, len;

        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (strcmp(line, "--new-file") == 0) {
            cdc_decoder_new_file(d);
            continue;
        }
        tab = strchr(line, '\t');
        if (tab != NULL)
            *tab = '\0';
        if (tab == NULL || !cdc_lsn_parse(line, &lsn)) {
            fprintf(stderr, "line %lu: expected \"lsn<TAB>hexdata\"\n", lineno);
            rc = 2;
            break;
        }
        hexlen = strlen(tab + 1);
        if (hexlen % 2 != 0) {
            fprintf(stderr, "line %lu: odd number of hex digits\n", lineno);
            rc = 2;
            break;
        }
        len = hexlen / 2;
        /* decode the hex in place, over itself */
        for (size_t i = 0; i < len; i++) {
            int hi = pgbr_hex_value(tab[1 + 2 * i]), lo = pgbr_hex_value(tab[2 + 2 * i]);

            if (hi < 0 || lo < 0) {
                fprintf(stderr, "line %lu: bad hex digit\n", lineno);
                rc = 2;
                break;
            }
            tab[1 + i] = (char)(hi << 4 | lo);
        }
        if (rc != 0)
            break;
        if (!cdc_decoder_feed(d, lsn, tab + 1, len, &err)) {
            fflush(stdout);
            fprintf(stderr, "ERROR: %s %s\n", err.sqlstate, err.message);
            if (err.detail != NULL)
                fprintf(stderr, "DETAIL: %s\n", err.detail);
            rc = 1;
            break;
        }
    }
    if (rc == 0) {
        cdc_decoder_stats(d, &st);
        cdc_lsn_format(st.last_commit_lsn, lsn_text);
        fprintf(stderr, "stats transactions=%" PRIu64 " changes=%" PRIu64 " last_commit_lsn=%s last_commit_time_us=%" PRId64 "\n",
                st.transactions, st.changes, lsn_text, st.last_commit_time_us);
    }
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "could not write to stdout\n");
        rc = 1;
    }
    free(line);
    pgbr_error_clear(&err);
    cdc_decoder_free(d);
    return rc;
}
