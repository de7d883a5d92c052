/*
 * proto.c - PostgreSQL v3 wire protocol: bounds-checked decoders for the
 * frontend messages pgbr inspects and encoders for the backend messages it
 * writes itself. Every length read here is treated as hostile until checked
 * against the bytes actually present.
 */
#include "pgbr/proto.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

proto_first_kind proto_classify_first(const uint8_t *buf, size_t avail, uint32_t *len)
{
    uint32_t code;
    if (avail < 8)
        return PROTO_FIRST_INCOMPLETE;
    *len = rd32(buf);
    code = rd32(buf + 4);
    if (*len < 8 || *len > PROTO_MAX_STARTUP_LEN)
        return PROTO_FIRST_BAD_LENGTH;
    if (code == PROTO_SSL_REQUEST_CODE)
        return *len == 8 ? PROTO_FIRST_SSL : PROTO_FIRST_BAD_LENGTH;
    if (code == PROTO_GSSENC_REQUEST_CODE)
        return *len == 8 ? PROTO_FIRST_GSSENC : PROTO_FIRST_BAD_LENGTH;
    if (code == PROTO_CANCEL_REQUEST_CODE)
        return (*len >= 16 && *len <= 16 + 256) ? PROTO_FIRST_CANCEL : PROTO_FIRST_BAD_LENGTH;
    return PROTO_FIRST_STARTUP;
}

bool proto_parse_startup(const uint8_t *pkt, uint32_t len, proto_startup *out, const char **why)
{
    size_t pos = 8;
    memset(out, 0, sizeof *out);
    if (len < 8) {
        *why = "invalid length of startup packet";
        return false;
    }
    out->protocol = rd32(pkt + 4);
    if ((out->protocol >> 16) != 3) {
        *why = "unsupported frontend protocol";
        return false;
    }
    for (;;) {
        const char *k, *v;
        if (pos >= len) {
            *why = "invalid startup packet layout: expected terminator as last byte";
            return false;
        }
        if (pkt[pos] == '\0') {
            if (pos + 1 != len) {
                *why = "invalid startup packet layout: expected terminator as last byte";
                return false;
            }
            break;
        }
        if (!proto_get_string(pkt, len, &pos, &k) || !proto_get_string(pkt, len, &pos, &v)) {
            *why = "invalid startup packet layout: expected terminator as last byte";
            return false;
        }
        if (out->nparams >= (int)(sizeof out->keys / sizeof out->keys[0])) {
            *why = "too many startup parameters";
            return false;
        }
        out->keys[out->nparams] = k;
        out->values[out->nparams] = v;
        out->nparams++;
    }
    if (proto_startup_get(out, "user") == NULL || proto_startup_get(out, "user")[0] == '\0') {
        *why = "no PostgreSQL user name specified in startup packet";
        return false;
    }
    return true;
}

const char *proto_startup_get(const proto_startup *s, const char *key)
{
    for (int i = 0; i < s->nparams; i++)
        if (strcmp(s->keys[i], key) == 0)
            return s->values[i];
    return NULL;
}

bool proto_parse_cancel(const uint8_t *pkt, uint32_t len, uint32_t *pid, const uint8_t **key, size_t *keylen)
{
    if (len < 16 || len > 16 + 256 || rd32(pkt) != len)
        return false;
    *pid = rd32(pkt + 8);
    *key = pkt + 12;
    *keylen = len - 12;
    return true;
}

const char *proto_check_frontend_header(uint8_t type, uint32_t len)
{
    if (len < 4)
        return "invalid message length";
    switch (type) {
    case 'S': case 'H': case 'X': case 'c':
        return len == 4 ? NULL : "invalid message length";
    case 'Q': case 'P': case 'B': case 'd': case 'F': case 'p':
        return len <= PROTO_MAX_MESSAGE_LEN ? NULL : "invalid message length";
    case 'D': case 'E': case 'C': case 'f':
        return len <= PROTO_MAX_SMALL_MESSAGE_LEN ? NULL : "invalid message length";
    default:
        return "invalid frontend message type";
    }
}

const char *proto_check_backend_header(uint8_t type, uint32_t len)
{
    (void)type;
    if (len < 4 || len > PROTO_MAX_MESSAGE_LEN)
        return "invalid message length from the upstream server";
    return NULL;
}

bool proto_get_string(const uint8_t *body, size_t len, size_t *pos, const char **out)
{
    const uint8_t *nul;
    if (*pos >= len)
        return false;
    nul = memchr(body + *pos, '\0', len - *pos);
    if (nul == NULL)
        return false;
    *out = (const char *)body + *pos;
    *pos = (size_t)(nul - body) + 1;
    return true;
}

bool proto_get_int16(const uint8_t *body, size_t len, size_t *pos, int16_t *out)
{
    if (*pos + 2 > len)
        return false;
    *out = (int16_t)((body[*pos] << 8) | body[*pos + 1]);
    *pos += 2;
    return true;
}

bool proto_get_int32(const uint8_t *body, size_t len, size_t *pos, int32_t *out)
{
    if (*pos + 4 > len)
        return false;
    *out = (int32_t)rd32(body + *pos);
    *pos += 4;
    return true;
}

bool proto_parse_parse(const uint8_t *body, size_t len, proto_parse_msg *out)
{
    size_t pos = 0;
    int16_t n;
    memset(out, 0, sizeof *out);
    if (!proto_get_string(body, len, &pos, &out->name) || !proto_get_string(body, len, &pos, &out->query) ||
        !proto_get_int16(body, len, &pos, &n) || n < 0)
        return false;
    if (pos + (size_t)n * 4 != len)
        return false;
    out->nparam_types = n;
    out->param_types = body + pos;
    return true;
}

bool proto_parse_bind_names(const uint8_t *body, size_t len, const char **portal, const char **statement)
{
    size_t pos = 0;
    return proto_get_string(body, len, &pos, portal) && proto_get_string(body, len, &pos, statement);
}

bool proto_parse_bind(const uint8_t *body, size_t len, proto_bind_msg *out)
{
    size_t pos = 0;
    int16_t n;
    memset(out, 0, sizeof *out);
    if (!proto_get_string(body, len, &pos, &out->portal) || !proto_get_string(body, len, &pos, &out->statement))
        return false;
    if (!proto_get_int16(body, len, &pos, &n) || n < 0 || pos + (size_t)n * 2 > len)
        return false;
    out->nformats = n;
    out->formats = body + pos;
    pos += (size_t)n * 2;
    if (!proto_get_int16(body, len, &pos, &n) || n < 0)
        return false;
    out->nparams = n;
    out->params = body + pos;
    for (int i = 0; i < out->nparams; i++) {
        int32_t vlen;
        if (!proto_get_int32(body, len, &pos, &vlen) || vlen < -1)
            return false;
        if (vlen > 0) {
            if ((size_t)vlen > len - pos)
                return false;
            pos += (size_t)vlen;
        }
    }
    out->params_len = (size_t)(body + pos - out->params);
    if (!proto_get_int16(body, len, &pos, &n) || n < 0 || pos + (size_t)n * 2 != len)
        return false;
    out->nresult_formats = n;
    out->result_formats = body + pos;
    if (out->nformats > 1 && out->nformats != out->nparams)
        return false;
    return true;
}

bool proto_bind_param(const proto_bind_msg *b, int i, const uint8_t **value, int32_t *vlen, int16_t *format)
{
    size_t pos = 0;
    if (i < 0 || i >= b->nparams)
        return false;
    for (int k = 0;; k++) {
        int32_t l;
        if (!proto_get_int32(b->params, b->params_len, &pos, &l))
            return false;
        if (k == i) {
            *vlen = l;
            *value = l < 0 ? NULL : b->params + pos;
            break;
        }
        if (l > 0)
            pos += (size_t)l;
    }
    if (b->nformats == 0)
        *format = 0;
    else {
        const uint8_t *f = b->formats + 2 * (b->nformats == 1 ? 0 : i);
        *format = (int16_t)((f[0] << 8) | f[1]);
    }
    return true;
}

bool proto_parse_describe(const uint8_t *body, size_t len, char *kind, const char **name)
{
    size_t pos = 1;
    if (len < 2 || (body[0] != 'S' && body[0] != 'P'))
        return false;
    *kind = (char)body[0];
    return proto_get_string(body, len, &pos, name) && pos == len;
}

bool proto_parse_execute(const uint8_t *body, size_t len, const char **portal, int32_t *max_rows)
{
    size_t pos = 0;
    return proto_get_string(body, len, &pos, portal) && proto_get_int32(body, len, &pos, max_rows) && pos == len;
}

/* ---- encoders ---- */

static void put_header(struct evbuffer *out, uint8_t type, size_t body_len)
{
    uint8_t h[5];
    uint32_t l = htonl((uint32_t)(body_len + 4));
    h[0] = type;
    memcpy(h + 1, &l, 4);
    evbuffer_add(out, h, 5);
}

static void put_i16(struct evbuffer *out, int v)
{
    uint16_t n = htons((uint16_t)v);
    evbuffer_add(out, &n, 2);
}

static void put_i32(struct evbuffer *out, uint32_t v)
{
    uint32_t n = htonl(v);
    evbuffer_add(out, &n, 4);
}

static void put_str(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, s, strlen(s) + 1);
}

static void put_field(struct evbuffer *body, char code, const char *value)
{
    if (value == NULL)
        return;
    evbuffer_add(body, &code, 1);
    put_str(body, value);
}

static void put_built(struct evbuffer *out, uint8_t type, struct evbuffer *body)
{
    put_header(out, type, evbuffer_get_length(body));
    evbuffer_add_buffer(out, body);
    evbuffer_free(body);
}

void proto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *message,
                     const char *detail, const char *hint, int position)
{
    struct evbuffer *b = evbuffer_new();
    char pos[16];
    put_field(b, 'S', severity);
    put_field(b, 'V', severity);
    put_field(b, 'C', sqlstate);
    put_field(b, 'M', message);
    put_field(b, 'D', detail);
    put_field(b, 'H', hint);
    if (position > 0) {
        snprintf(pos, sizeof pos, "%d", position);
        put_field(b, 'P', pos);
    }
    evbuffer_add(b, "", 1);
    put_built(out, 'E', b);
}

void proto_put_notice(struct evbuffer *out, const char *message)
{
    struct evbuffer *b = evbuffer_new();
    put_field(b, 'S', "NOTICE");
    put_field(b, 'V', "NOTICE");
    put_field(b, 'C', "00000");
    put_field(b, 'M', message);
    evbuffer_add(b, "", 1);
    put_built(out, 'N', b);
}

void proto_put_empty(struct evbuffer *out, uint8_t type)
{
    put_header(out, type, 0);
}

void proto_put_ready(struct evbuffer *out, char status)
{
    put_header(out, 'Z', 1);
    evbuffer_add(out, &status, 1);
}

void proto_put_row_description(struct evbuffer *out, const result_set *rs)
{
    struct evbuffer *b = evbuffer_new();
    put_i16(b, rs->ncols);
    for (int i = 0; i < rs->ncols; i++) {
        put_str(b, rs->cols[i].name);
        put_i32(b, 0);                  /* table oid */
        put_i16(b, 0);                  /* column number */
        put_i32(b, rs->cols[i].type_oid);
        switch (rs->cols[i].type_oid) { /* typlen */
        case PGBR_OID_BOOL: put_i16(b, 1); break;
        case PGBR_OID_INT4: put_i16(b, 4); break;
        case PGBR_OID_INT8: case PGBR_OID_FLOAT8: case PGBR_OID_TIMESTAMPTZ: put_i16(b, 8); break;
        default: put_i16(b, -1); break;
        }
        put_i32(b, 0xffffffffu);        /* typmod -1 */
        put_i16(b, 0);                  /* text format */
    }
    put_built(out, 'T', b);
}

void proto_put_data_rows(struct evbuffer *out, const result_set *rs, int from, int to)
{
    for (int r = from; r < to && r < rs->nrows; r++) {
        size_t blen = 2;
        for (int c = 0; c < rs->ncols; c++) {
            const char *v = result_set_value(rs, r, c);
            blen += 4 + (v ? strlen(v) : 0);
        }
        put_header(out, 'D', blen);
        put_i16(out, rs->ncols);
        for (int c = 0; c < rs->ncols; c++) {
            const char *v = result_set_value(rs, r, c);
            if (v == NULL)
                put_i32(out, 0xffffffffu);
            else {
                size_t l = strlen(v);
                put_i32(out, (uint32_t)l);
                evbuffer_add(out, v, l);
            }
        }
    }
}

void proto_put_command_complete(struct evbuffer *out, const char *tag)
{
    put_header(out, 'C', strlen(tag) + 1);
    put_str(out, tag);
}

void proto_put_param_description(struct evbuffer *out, int n, const uint32_t *oids)
{
    put_header(out, 't', 2 + 4 * (size_t)n);
    put_i16(out, n);
    for (int i = 0; i < n; i++)
        put_i32(out, oids[i]);
}

void proto_put_backend_key(struct evbuffer *out, uint32_t pid, const uint8_t *key, size_t keylen)
{
    put_header(out, 'K', 4 + keylen);
    put_i32(out, pid);
    evbuffer_add(out, key, keylen);
}

void proto_put_cancel_request(struct evbuffer *out, uint32_t pid, const uint8_t *key, size_t keylen)
{
    put_i32(out, (uint32_t)(12 + keylen));
    put_i32(out, PROTO_CANCEL_REQUEST_CODE);
    put_i32(out, pid);
    evbuffer_add(out, key, keylen);
}

void proto_put_parse(struct evbuffer *out, const char *name, const char *query)
{
    put_header(out, 'P', strlen(name) + 1 + strlen(query) + 1 + 2);
    put_str(out, name);
    put_str(out, query);
    put_i16(out, 0);
}

void proto_put_bind_text(struct evbuffer *out, const char *portal, const char *statement, int nparams,
                         const char *const *params)
{
    struct evbuffer *b = evbuffer_new();
    put_str(b, portal);
    put_str(b, statement);
    put_i16(b, 0);                      /* all parameters text */
    put_i16(b, nparams);
    for (int i = 0; i < nparams; i++) {
        if (params[i] == NULL)
            put_i32(b, 0xffffffffu);
        else {
            put_i32(b, (uint32_t)strlen(params[i]));
            evbuffer_add(b, params[i], strlen(params[i]));
        }
    }
    put_i16(b, 0);                      /* all results text */
    put_built(out, 'B', b);
}

void proto_put_describe(struct evbuffer *out, char kind, const char *name)
{
    put_header(out, 'D', 1 + strlen(name) + 1);
    evbuffer_add(out, &kind, 1);
    put_str(out, name);
}

void proto_put_execute(struct evbuffer *out, const char *portal, int32_t max_rows)
{
    put_header(out, 'E', strlen(portal) + 1 + 4);
    put_str(out, portal);
    put_i32(out, (uint32_t)max_rows);
}

void proto_put_close(struct evbuffer *out, char kind, const char *name)
{
    put_header(out, 'C', 1 + strlen(name) + 1);
    evbuffer_add(out, &kind, 1);
    put_str(out, name);
}

void proto_put_sync(struct evbuffer *out)
{
    put_header(out, 'S', 0);
}

void proto_put_flush(struct evbuffer *out)
{
    put_header(out, 'H', 0);
}

bool proto_put_sasl_without_plus(struct evbuffer *out, const uint8_t *body, size_t len)
{
    size_t pos = 0;
    int32_t code;
    struct evbuffer *b;
    if (!proto_get_int32(body, len, &pos, &code) || code != 10)
        return false;
    b = evbuffer_new();
    put_i32(b, 10);
    for (;;) {
        const char *mech;
        if (!proto_get_string(body, len, &pos, &mech)) {
            evbuffer_free(b);
            return false;
        }
        if (mech[0] == '\0')
            break;
        if (strcmp(mech, "SCRAM-SHA-256-PLUS") != 0)
            put_str(b, mech);
    }
    evbuffer_add(b, "", 1);
    put_built(out, 'R', b);
    return true;
}

bool proto_parse_row_description(const uint8_t *body, size_t len, int *ncols, const char **names, int max)
{
    size_t pos = 0;
    int16_t n;
    if (!proto_get_int16(body, len, &pos, &n) || n < 0)
        return false;
    *ncols = n;
    for (int i = 0; i < n; i++) {
        const char *name;
        if (!proto_get_string(body, len, &pos, &name) || pos + 18 > len)
            return false;
        if (i < max)
            names[i] = name;
        pos += 18;
    }
    return pos == len;
}

bool proto_parse_data_row(const uint8_t *body, size_t len, int *ncols, char **values, int max)
{
    size_t pos = 0;
    int16_t n;
    if (!proto_get_int16(body, len, &pos, &n) || n < 0)
        return false;
    *ncols = n;
    for (int i = 0; i < n; i++) {
        int32_t l;
        if (!proto_get_int32(body, len, &pos, &l) || l < -1 || (l > 0 && (size_t)l > len - pos)) {
            for (int k = 0; k < i && k < max; k++)
                free(values[k]);
            return false;
        }
        if (i < max) {
            if (l < 0)
                values[i] = NULL;
            else {
                values[i] = malloc((size_t)l + 1);
                memcpy(values[i], body + pos, (size_t)l);
                values[i][l] = '\0';
            }
        }
        if (l > 0)
            pos += (size_t)l;
    }
    if (pos != len) {
        for (int k = 0; k < n && k < max; k++)
            free(values[k]);
        return false;
    }
    return true;
}

bool proto_parse_error(const uint8_t *body, size_t len, proto_error_fields *out)
{
    size_t pos = 0;
    memset(out, 0, sizeof *out);
    while (pos < len && body[pos] != '\0') {
        char code = (char)body[pos++];
        const char *v;
        if (!proto_get_string(body, len, &pos, &v))
            return false;
        switch (code) {
        case 'S': out->severity = v; break;
        case 'C': out->code = v; break;
        case 'M': out->message = v; break;
        case 'D': out->detail = v; break;
        case 'H': out->hint = v; break;
        case 'P': out->position = v; break;
        default: break;
        }
    }
    return pos < len;
}
