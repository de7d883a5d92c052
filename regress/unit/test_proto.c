/*
 * test_proto.c - protocol framing: startup packets, message headers and the
 * decoders of the messages pgbr inspects, with truncated and oversized
 * lengths; and round trips of the encoders pgbr uses.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <string.h>

#include "pgbr/proto.h"
#include "tap.h"

static size_t put32(uint8_t *p, uint32_t v)
{
    uint32_t n = htonl(v);
    memcpy(p, &n, 4);
    return 4;
}

static size_t build_startup(uint8_t *buf, const char *const *kv, int n, uint32_t protocol)
{
    size_t pos = 8;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(kv[i]) + 1;
        memcpy(buf + pos, kv[i], l);
        pos += l;
    }
    buf[pos++] = '\0';
    put32(buf, (uint32_t)pos);
    put32(buf + 4, protocol);
    return pos;
}

static void test_first_packet(void)
{
    uint8_t buf[64];
    uint32_t len = 0;
    put32(buf, 8);
    put32(buf + 4, PROTO_SSL_REQUEST_CODE);
    tap_ok(proto_classify_first(buf, 4, &len) == PROTO_FIRST_INCOMPLETE, "4 bytes: incomplete");
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_SSL, "SSLRequest recognised");
    put32(buf + 4, PROTO_GSSENC_REQUEST_CODE);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_GSSENC, "GSSENCRequest recognised");
    put32(buf, 12);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_BAD_LENGTH, "GSSENCRequest with wrong length refused");
    put32(buf, 16);
    put32(buf + 4, PROTO_CANCEL_REQUEST_CODE);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_CANCEL && len == 16, "CancelRequest recognised");
    put32(buf, 0x7fffffff);
    put32(buf + 4, 196608);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_BAD_LENGTH, "absurd startup length refused");
    put32(buf, 3);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_BAD_LENGTH, "startup length below 8 refused");
    put32(buf, PROTO_MAX_STARTUP_LEN + 1);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_BAD_LENGTH, "startup length above 10000 refused");
    put32(buf, 64);
    tap_ok(proto_classify_first(buf, 8, &len) == PROTO_FIRST_STARTUP && len == 64, "startup packet length read");
}

static void test_startup(void)
{
    uint8_t buf[256];
    proto_startup st;
    const char *why = NULL;
    const char *kv[] = { "user", "alice", "database", "shop", "options", "-c x=y" };
    size_t n = build_startup(buf, kv, 6, 196608);
    tap_ok(proto_parse_startup(buf, (uint32_t)n, &st, &why), "valid startup packet parses");
    tap_is_str(proto_startup_get(&st, "user"), "alice", "user parameter");
    tap_is_str(proto_startup_get(&st, "options"), "-c x=y", "options parameter kept");
    tap_ok(!proto_parse_startup(buf, (uint32_t)n - 1, &st, &why), "truncated startup packet refused");
    tap_ok(why != NULL && strstr(why, "terminator") != NULL, "truncation explained: %s", why ? why : "");
    buf[n - 1] = 'x';
    tap_ok(!proto_parse_startup(buf, (uint32_t)n, &st, &why), "missing terminator refused");
    n = build_startup(buf, kv, 6, 2 << 16);
    tap_ok(!proto_parse_startup(buf, (uint32_t)n, &st, &why) && strstr(why, "protocol"),
           "protocol 2 refused");
    {
        const char *nouser[] = { "database", "x" };
        n = build_startup(buf, nouser, 2, 196608);
        tap_ok(!proto_parse_startup(buf, (uint32_t)n, &st, &why) && strstr(why, "user name"),
               "startup without user refused");
    }
    {
        const char *odd[] = { "user" };
        n = build_startup(buf, odd, 1, 196608);
        tap_ok(!proto_parse_startup(buf, (uint32_t)n, &st, &why), "key without value refused");
    }
}

static void test_headers(void)
{
    tap_ok(proto_check_frontend_header('Q', 3) != NULL, "length 3 refused");
    tap_ok(proto_check_frontend_header('Q', 0x7fffffff) != NULL, "1 GB+ query refused");
    tap_ok(proto_check_frontend_header('Q', 0x3fffffff) == NULL, "1 GB - 1 query accepted");
    tap_ok(proto_check_frontend_header('S', 5) != NULL, "Sync with a body refused");
    tap_ok(proto_check_frontend_header('S', 4) == NULL, "Sync accepted");
    tap_ok(proto_check_frontend_header('E', 20000) != NULL, "oversized Execute refused");
    tap_ok(proto_check_frontend_header('z', 4) != NULL, "unknown message type refused");
    tap_ok(proto_check_frontend_header(0, 4) != NULL, "NUL message type refused");
    tap_ok(proto_check_backend_header('D', 2) != NULL, "backend length 2 refused");
}

static void test_decoders(void)
{
    uint8_t body[128];
    size_t n = 0;
    proto_parse_msg pm;
    proto_bind_msg bm;
    const char *portal, *stmt;
    char kind;
    int32_t maxrows;

    memcpy(body, "s1\0SHOW JOBS\0", 13);
    n = 13;
    body[n++] = 0;
    body[n++] = 1;
    n += put32(body + n, 25);
    tap_ok(proto_parse_parse(body, n, &pm) && pm.nparam_types == 1 && strcmp(pm.query, "SHOW JOBS") == 0,
           "Parse decodes");
    tap_ok(!proto_parse_parse(body, n - 1, &pm), "Parse with truncated parameter types refused");
    tap_ok(!proto_parse_parse(body, 5, &pm), "Parse without query terminator refused");
    body[13] = 0x7f;
    tap_ok(!proto_parse_parse(body, n, &pm), "Parse claiming 32000 parameter types refused");

    n = 0;
    memcpy(body, "p\0s\0", 4);
    n = 4;
    body[n++] = 0; body[n++] = 0;            /* no format codes */
    body[n++] = 0; body[n++] = 2;            /* 2 params */
    n += put32(body + n, 3);
    memcpy(body + n, "abc", 3);
    n += 3;
    n += put32(body + n, 0xffffffffu);       /* NULL */
    body[n++] = 0; body[n++] = 0;            /* no result formats */
    tap_ok(proto_parse_bind(body, n, &bm) && bm.nparams == 2, "Bind decodes");
    {
        const uint8_t *v;
        int32_t vl;
        int16_t f;
        tap_ok(proto_bind_param(&bm, 0, &v, &vl, &f) && vl == 3 && memcmp(v, "abc", 3) == 0 && f == 0,
               "Bind parameter 1");
        tap_ok(proto_bind_param(&bm, 1, &v, &vl, &f) && v == NULL, "Bind parameter 2 is NULL");
        tap_ok(!proto_bind_param(&bm, 2, &v, &vl, &f), "Bind parameter 3 does not exist");
    }
    tap_ok(!proto_parse_bind(body, n - 1, &bm), "Bind truncated in the result formats refused");
    put32(body + 8, 1000);                   /* param length beyond the message */
    tap_ok(!proto_parse_bind(body, n, &bm), "Bind with a parameter longer than the message refused");
    put32(body + 8, 0x80000000u);
    tap_ok(!proto_parse_bind(body, n, &bm), "Bind with a negative parameter length refused");
    tap_ok(proto_parse_bind_names(body, n, &portal, &stmt) && strcmp(stmt, "s") == 0, "Bind names decode");

    memcpy(body, "Sname\0", 6);
    tap_ok(proto_parse_describe(body, 6, &kind, &stmt) && kind == 'S' && strcmp(stmt, "name") == 0,
           "Describe decodes");
    body[0] = 'X';
    tap_ok(!proto_parse_describe(body, 6, &kind, &stmt), "Describe of kind X refused");
    memcpy(body, "p\0", 2);
    put32(body + 2, 10);
    tap_ok(proto_parse_execute(body, 6, &portal, &maxrows) && maxrows == 10, "Execute decodes");
    tap_ok(!proto_parse_execute(body, 5, &portal, &maxrows), "truncated Execute refused");
}

static void test_encoders(void)
{
    struct evbuffer *b = evbuffer_new();
    uint8_t buf[256];
    size_t n;
    proto_error_fields f;
    const char *names[4];
    int ncols;
    char *vals[4];
    result_set *rs;
    const char *cols[] = { "a", "b" };
    const uint32_t oids[] = { PGBR_OID_INT8, PGBR_OID_TEXT };
    const char *row[] = { "1", NULL };

    proto_put_error(b, "ERROR", "42601", "syntax error at or near \"x\"", NULL, "a hint", 7);
    n = evbuffer_remove(b, buf, sizeof buf);
    {
        uint32_t l;
        memcpy(&l, buf + 1, 4);
        tap_ok(buf[0] == 'E' && ntohl(l) == n - 1, "ErrorResponse framed");
    }
    tap_ok(proto_parse_error(buf + 5, n - 5, &f) && strcmp(f.code, "42601") == 0 && strcmp(f.position, "7") == 0 &&
               strcmp(f.hint, "a hint") == 0,
           "ErrorResponse fields round-trip");

    rs = result_set_new(2, cols, oids);
    result_set_add_row(rs, row);
    proto_put_row_description(b, rs);
    n = evbuffer_remove(b, buf, sizeof buf);
    tap_ok(buf[0] == 'T' && proto_parse_row_description(buf + 5, n - 5, &ncols, names, 4) && ncols == 2 &&
               strcmp(names[1], "b") == 0,
           "RowDescription round-trips");
    proto_put_data_rows(b, rs, 0, 1);
    n = evbuffer_remove(b, buf, sizeof buf);
    tap_ok(buf[0] == 'D' && proto_parse_data_row(buf + 5, n - 5, &ncols, vals, 4) && ncols == 2 &&
               strcmp(vals[0], "1") == 0 && vals[1] == NULL,
           "DataRow round-trips with NULL");
    free(vals[0]);
    tap_ok(!proto_parse_data_row(buf + 5, n - 6, &ncols, vals, 4), "truncated DataRow refused");
    result_set_free(rs);

    {
        uint8_t sasl[64];
        size_t l = 0;
        l += put32(sasl, 10);
        memcpy(sasl + l, "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0", 34);
        l += 34;
        tap_ok(proto_put_sasl_without_plus(b, sasl, l), "SASL offer rewritten");
        n = evbuffer_remove(b, buf, sizeof buf);
        tap_ok(n == 5 + 4 + 14 + 1 && memmem(buf, n, "PLUS", 4) == NULL && memmem(buf, n, "SCRAM-SHA-256", 13),
               "SCRAM-SHA-256-PLUS stripped, SCRAM-SHA-256 kept");
        tap_ok(!proto_put_sasl_without_plus(b, sasl, l - 1), "unterminated SASL list refused");
    }
    evbuffer_free(b);
}

int main(void)
{
    test_first_packet();
    test_startup();
    test_headers();
    test_decoders();
    test_encoders();
    return tap_done();
}
