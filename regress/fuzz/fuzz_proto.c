/*
 * fuzz_proto.c - libFuzzer target for the wire-protocol decoders: the first
 * byte picks a decoder, the rest is the hostile input.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>

#include "pgbr/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *b = data + 1;
    size_t n;
    if (size < 1)
        return 0;
    n = size - 1;
    switch (data[0] % 8) {
    case 0: {
        proto_startup st;
        const char *why;
        uint32_t len;
        if (proto_classify_first(b, n, &len) == PROTO_FIRST_STARTUP && len <= n)
            proto_parse_startup(b, len, &st, &why);
        break;
    }
    case 1: {
        proto_parse_msg pm;
        proto_parse_parse(b, n, &pm);
        break;
    }
    case 2: {
        proto_bind_msg bm;
        if (proto_parse_bind(b, n, &bm)) {
            for (int i = 0; i < bm.nparams; i++) {
                const uint8_t *v;
                int32_t vl;
                int16_t f;
                if (!proto_bind_param(&bm, i, &v, &vl, &f))
                    abort();
            }
        }
        break;
    }
    case 3: {
        char kind;
        const char *name;
        int32_t rows;
        proto_parse_describe(b, n, &kind, &name);
        proto_parse_execute(b, n, &name, &rows);
        break;
    }
    case 4: {
        const char *names[16];
        int ncols;
        proto_parse_row_description(b, n, &ncols, names, 16);
        break;
    }
    case 5: {
        char *vals[16];
        int ncols;
        if (proto_parse_data_row(b, n, &ncols, vals, 16))
            for (int i = 0; i < ncols && i < 16; i++)
                free(vals[i]);
        break;
    }
    case 6: {
        proto_error_fields f;
        proto_parse_error(b, n, &f);
        break;
    }
    default: {
        struct evbuffer *out = evbuffer_new();
        proto_put_sasl_without_plus(out, b, n);
        evbuffer_free(out);
        break;
    }
    }
    return 0;
}
