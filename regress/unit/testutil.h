/*
 * testutil.h - small helpers the C unit tests share: removing a scratch
 * directory tree and a deterministic pseudo-random generator (xorshift64),
 * so a failing run can be repeated exactly. Header-only.
 */
#ifndef PGBR_TESTUTIL_H
#define PGBR_TESTUTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int test_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove path and everything below it (symlinks are removed, not followed). */
static inline void test_rm_rf(const char *path)
{
    nftw(path, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* xorshift64 over a caller-owned state (never 0). */
static inline uint64_t test_rng(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

#endif
