/*
 * proto.h - the PostgreSQL v3 wire protocol's byte layout: bounds-checked
 * decoding of frontend messages and encoding of backend messages. Only
 * src/proxy uses it; nothing else in pgbr knows the byte layout.
 *
 * Decoders take the message body (after the 1-byte type and 4-byte length)
 * and never read past `len`; strings they return point into the body.
 * Encoders append one complete message to an evbuffer.
 */
#ifndef PGBR_PROTO_H
#define PGBR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgbr/result.h"

struct evbuffer;

#define PROTO_SSL_REQUEST_CODE 80877103u
#define PROTO_GSSENC_REQUEST_CODE 80877104u
#define PROTO_CANCEL_REQUEST_CODE 80877102u
#define PROTO_MAX_STARTUP_LEN 10000u            /* as PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PROTO_MAX_MESSAGE_LEN 0x3fffffffu       /* 1 GB - 1, PostgreSQL's PQ_LARGE_MESSAGE_LIMIT */
#define PROTO_MAX_SMALL_MESSAGE_LEN 10000u      /* PostgreSQL's PQ_SMALL_MESSAGE_LIMIT */

/* A startup packet's key/value parameters (pointers into the packet). */
typedef struct proto_startup {
    uint32_t protocol;              /* e.g. 196608 for 3.0 */
    int nparams;
    const char *keys[64];
    const char *values[64];
} proto_startup;

/* What the first 8 bytes of a connection's first packet say. */
typedef enum proto_first_kind {
    PROTO_FIRST_INCOMPLETE = 0,     /* need more bytes */
    PROTO_FIRST_BAD_LENGTH,
    PROTO_FIRST_SSL,
    PROTO_FIRST_GSSENC,
    PROTO_FIRST_CANCEL,
    PROTO_FIRST_STARTUP
} proto_first_kind;

/* Classify the first packet from its first 8 bytes; *len gets its total length. */
proto_first_kind proto_classify_first(const uint8_t *buf, size_t avail, uint32_t *len);

/* Parse a complete startup packet (len bytes including the length word).
 * Returns false with a message in *why on a malformed packet. */
bool proto_parse_startup(const uint8_t *pkt, uint32_t len, proto_startup *out, const char **why);
const char *proto_startup_get(const proto_startup *s, const char *key);

/* Parse a CancelRequest (16 bytes, or longer with protocol 3.2 keys). */
bool proto_parse_cancel(const uint8_t *pkt, uint32_t len, uint32_t *pid, const uint8_t **key, size_t *keylen);

/*
 * Validate a frontend message header: type byte and length word (which
 * counts itself). Returns NULL when acceptable, else why not.
 */
const char *proto_check_frontend_header(uint8_t type, uint32_t len);
/* Same for backend messages from the upstream. */
const char *proto_check_backend_header(uint8_t type, uint32_t len);

/* Read a NUL-terminated string at *pos; false if none fits within len. */
bool proto_get_string(const uint8_t *body, size_t len, size_t *pos, const char **out);
bool proto_get_int16(const uint8_t *body, size_t len, size_t *pos, int16_t *out);
bool proto_get_int32(const uint8_t *body, size_t len, size_t *pos, int32_t *out);

typedef struct proto_parse_msg {
    const char *name;
    const char *query;
    int nparam_types;
    const uint8_t *param_types;     /* nparam_types big-endian uint32 OIDs */
} proto_parse_msg;
bool proto_parse_parse(const uint8_t *body, size_t len, proto_parse_msg *out);

typedef struct proto_bind_msg {
    const char *portal;
    const char *statement;
    int nformats;
    const uint8_t *formats;         /* nformats int16 */
    int nparams;
    const uint8_t *params;          /* start of the parameter values */
    size_t params_len;
    int nresult_formats;
    const uint8_t *result_formats;
} proto_bind_msg;
/* Only the portal and statement names (for routing), from a prefix of the body. */
bool proto_parse_bind_names(const uint8_t *body, size_t len, const char **portal, const char **statement);
bool proto_parse_bind(const uint8_t *body, size_t len, proto_bind_msg *out);
/* Parameter i of a parsed Bind: *value NULL for SQL NULL. Returns false if malformed. */
bool proto_bind_param(const proto_bind_msg *b, int i, const uint8_t **value, int32_t *vlen, int16_t *format);

bool proto_parse_describe(const uint8_t *body, size_t len, char *kind, const char **name);
bool proto_parse_execute(const uint8_t *body, size_t len, const char **portal, int32_t *max_rows);

/* Encoders. */
void proto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate, const char *message,
                     const char *detail, const char *hint, int position);
void proto_put_notice(struct evbuffer *out, const char *message);
void proto_put_empty(struct evbuffer *out, uint8_t type); /* ParseComplete '1', BindComplete '2', ... */
void proto_put_ready(struct evbuffer *out, char status);
void proto_put_row_description(struct evbuffer *out, const result_set *rs);
void proto_put_data_rows(struct evbuffer *out, const result_set *rs, int from, int to);
void proto_put_command_complete(struct evbuffer *out, const char *tag);
void proto_put_param_description(struct evbuffer *out, int n, const uint32_t *oids);
void proto_put_backend_key(struct evbuffer *out, uint32_t pid, const uint8_t *key, size_t keylen);
void proto_put_cancel_request(struct evbuffer *out, uint32_t pid, const uint8_t *key, size_t keylen);

/* Extended-protocol messages pgbr sends upstream for its own internal queries. */
void proto_put_parse(struct evbuffer *out, const char *name, const char *query);
void proto_put_bind_text(struct evbuffer *out, const char *portal, const char *statement, int nparams,
                         const char *const *params);
void proto_put_describe(struct evbuffer *out, char kind, const char *name);
void proto_put_execute(struct evbuffer *out, const char *portal, int32_t max_rows);
void proto_put_close(struct evbuffer *out, char kind, const char *name);
void proto_put_sync(struct evbuffer *out);
void proto_put_flush(struct evbuffer *out);

/*
 * Rewrite an AuthenticationSASL body (int32 10 + mechanism list) without
 * SCRAM-SHA-256-PLUS. Writes the complete new message to out; false when the
 * body is malformed.
 */
bool proto_put_sasl_without_plus(struct evbuffer *out, const uint8_t *body, size_t len);

/* Decoding helpers for backend messages pgbr consumes itself. */
bool proto_parse_row_description(const uint8_t *body, size_t len, int *ncols, const char **names, int max);
/* Fill values[i] (malloc'd copies, NULL for SQL NULL) for up to max columns. */
bool proto_parse_data_row(const uint8_t *body, size_t len, int *ncols, char **values, int max);
/* Error/notice fields: S (severity), C (code), M (message), D, H, P. */
typedef struct proto_error_fields {
    const char *severity, *code, *message, *detail, *hint, *position;
} proto_error_fields;
bool proto_parse_error(const uint8_t *body, size_t len, proto_error_fields *out);

#endif
