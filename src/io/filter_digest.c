/*
 * filter_digest.c - the pass-through filters that observe bytes without
 * changing them: count (bytes and lines) and sha256 (OpenSSL EVP), plus the
 * one-shot SHA-256 helper (see include/pgbr/filter.h).
 *
 * Both forward their input unchanged in the same call, so they hold no
 * buffer at all; their result is ready after finish.
 */
#include "pgbr/filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* ---- count ---- */

typedef struct count_state {
    uint64_t bytes;
    uint64_t lines;
    char text[24];
} count_state;

static bool count_process(void *state, const void *in, size_t len, filter_sink_fn out,
                          void *out_arg, pgbr_error *err)
{
    count_state *c = state;
    const char *p = in, *end = p + len;

    c->bytes += len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        c->lines++;
        p++;
    }
    return out(out_arg, in, len, err);
}

static bool count_finish(void *state, filter_sink_fn out, void *out_arg, pgbr_error *err)
{
    count_state *c = state;

    (void)out;
    (void)out_arg;
    (void)err;
    snprintf(c->text, sizeof c->text, "%" PRIu64, c->bytes);
    return true;
}

static const char *count_result(void *state)
{
    return ((count_state *)state)->text;
}

static const filter_ops count_ops = {
    .type = "count",
    .process = count_process,
    .finish = count_finish,
    .result = count_result,
    .free = free,
};

filter *filter_count_new(pgbr_error *err)
{
    count_state *c = calloc(1, sizeof *c);

    if (c == NULL) {
        pgbr_error_set(err, "53200", "out of memory creating a count filter");
        return NULL;
    }
    return filter_new(&count_ops, c, err);
}

uint64_t filter_count_bytes(const filter *f)
{
    if (f == NULL || strcmp(filter_type(f), "count") != 0)
        return 0;
    return ((count_state *)filter_state(f))->bytes;
}

uint64_t filter_count_lines(const filter *f)
{
    if (f == NULL || strcmp(filter_type(f), "count") != 0)
        return 0;
    return ((count_state *)filter_state(f))->lines;
}

/* ---- sha256 ---- */

typedef struct sha256_state {
    EVP_MD_CTX *ctx;
    bool done;
    char hex[65];
    char *expected;         /* NULL: no check at finish */
    char *file_name;
} sha256_state;

static void hex_encode(const unsigned char *bin, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 0xf];
    }
    out[2 * len] = '\0';
}

static bool sha256_process(void *state, const void *in, size_t len, filter_sink_fn out,
                           void *out_arg, pgbr_error *err)
{
    sha256_state *s = state;

    if (EVP_DigestUpdate(s->ctx, in, len) != 1)
        return pgbr_error_set(err, "XX000", "SHA-256 digest update failed");
    return out(out_arg, in, len, err);
}

static bool sha256_finish(void *state, filter_sink_fn out, void *out_arg, pgbr_error *err)
{
    sha256_state *s = state;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    (void)out;
    (void)out_arg;
    if (EVP_DigestFinal_ex(s->ctx, md, &mdlen) != 1 || mdlen != 32)
        return pgbr_error_set(err, "XX000", "SHA-256 digest final failed");
    hex_encode(md, mdlen, s->hex);
    s->done = true;
    if (s->expected != NULL && strcasecmp(s->expected, s->hex) != 0) {
        pgbr_error_set(err, "XX001", "backup file \"%s\" is corrupted: checksum mismatch",
                       s->file_name);
        pgbr_error_detail(err, "Expected SHA-256 %s, computed %s.", s->expected, s->hex);
        return false;
    }
    return true;
}

static const char *sha256_result(void *state)
{
    sha256_state *s = state;

    return s->done ? s->hex : NULL;
}

static void sha256_free(void *state)
{
    sha256_state *s = state;

    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->ctx);
    free(s->expected);
    free(s->file_name);
    free(s);
}

static const filter_ops sha256_ops = {
    .type = "sha256",
    .process = sha256_process,
    .finish = sha256_finish,
    .result = sha256_result,
    .free = sha256_free,
};

filter *filter_sha256_new(pgbr_error *err)
{
    sha256_state *s = calloc(1, sizeof *s);

    if (s == NULL || (s->ctx = EVP_MD_CTX_new()) == NULL) {
        sha256_free(s);
        pgbr_error_set(err, "53200", "out of memory creating a sha256 filter");
        return NULL;
    }
    if (EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
        sha256_free(s);
        pgbr_error_set(err, "XX000", "SHA-256 digest initialisation failed");
        return NULL;
    }
    return filter_new(&sha256_ops, s, err);
}

const char *filter_sha256_hex(const filter *f)
{
    if (f == NULL || strcmp(filter_type(f), "sha256") != 0)
        return NULL;
    return sha256_result(filter_state(f));
}

bool filter_sha256_expect(filter *f, const char *expected_hex, const char *file_name,
                          pgbr_error *err)
{
    sha256_state *s;

    if (f == NULL || strcmp(filter_type(f), "sha256") != 0)
        return pgbr_error_set(err, "XX000", "filter_sha256_expect on a non-sha256 filter");
    s = filter_state(f);
    free(s->expected);
    free(s->file_name);
    s->expected = strdup(expected_hex);
    s->file_name = strdup(file_name != NULL ? file_name : "");
    if (s->expected == NULL || s->file_name == NULL) {
        free(s->expected);
        free(s->file_name);
        s->expected = s->file_name = NULL;
        return pgbr_error_set(err, "53200", "out of memory");
    }
    return true;
}

bool filter_sha256_digest_hex(const void *data, size_t len, char out[65], pgbr_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return pgbr_error_set(err, "XX000", "SHA-256 digest failed");
    hex_encode(md, mdlen, out);
    return true;
}
