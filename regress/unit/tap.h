/*
 * tap.h - a minimal TAP producer for the C unit tests (prove reads them).
 * Header-only: each test program includes it once.
 */
#ifndef PGBR_TAP_H
#define PGBR_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count;
static int tap_failed;

static inline int tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

/* Compare strings; on mismatch print both as TAP diagnostics. */
#define tap_is_str(got, expected, ...)                                                   \
    do {                                                                                 \
        const char *tap_g_ = (got), *tap_e_ = (expected);                                \
        int tap_c_ = (tap_g_ == NULL && tap_e_ == NULL) ||                               \
                     (tap_g_ != NULL && tap_e_ != NULL && strcmp(tap_g_, tap_e_) == 0);  \
        if (!tap_ok(tap_c_, __VA_ARGS__))                                                \
            printf("#   got:      %s\n#   expected: %s\n", tap_g_ ? tap_g_ : "(null)",  \
                   tap_e_ ? tap_e_ : "(null)");                                          \
    } while (0)

#define tap_is_int(got, expected, ...)                                                   \
    do {                                                                                 \
        long long tap_g_ = (long long)(got), tap_e_ = (long long)(expected);             \
        if (!tap_ok(tap_g_ == tap_e_, __VA_ARGS__))                                      \
            printf("#   got:      %lld\n#   expected: %lld\n", tap_g_, tap_e_);          \
    } while (0)

static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
