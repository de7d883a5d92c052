/*
 * fuzz_manifest.c - libFuzzer target for the BACKUP_MANIFEST decoder and its
 * checksum file (src/backup/manifest.c). The input is decoded as a manifest;
 * a manifest that is accepted must encode, and its encoding must decode and
 * encode again to the same bytes. A failure must be XX001 (or 53200). The
 * input is also checked as a BACKUP_MANIFEST.sha256 file against itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/manifest.h"

static void fuzz_expect_corrupt(pgbr_error *err)
{
    if (!pgbr_error_is_set(err) ||
        (strcmp(err->sqlstate, "XX001") != 0 && strcmp(err->sqlstate, "53200") != 0))
        abort();
    pgbr_error_clear(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgbr_error err = PGBR_ERROR_INIT, sum_err = PGBR_ERROR_INIT;
    manifest *m = manifest_decode(data, size, "fuzz/BACKUP_MANIFEST", &err), *again;
    size_t len1 = 0, len2 = 0;
    char *one, *two;

    if (!manifest_checksum_verify(data, size, data, size, "fuzz/BACKUP_MANIFEST", &sum_err))
        fuzz_expect_corrupt(&sum_err);
    if (m == NULL) {
        fuzz_expect_corrupt(&err);
        return 0;
    }
    /* accepted: it must survive encode -> decode -> encode unchanged */
    one = manifest_encode(m, &len1, &err);
    if (one == NULL)
        abort();
    again = manifest_decode(one, len1, "fuzz/BACKUP_MANIFEST", &err);
    if (again == NULL)
        abort();
    two = manifest_encode(again, &len2, &err);
    if (two == NULL || len1 != len2 || memcmp(one, two, len1) != 0)
        abort();
    free(one);
    free(two);
    manifest_free(again);
    manifest_free(m);
    return 0;
}
