/*
 * session.h - private to src/proxy: one client connection and its upstream
 * connection, and the bookkeeping that keeps responses in the client's order.
 *
 * Loop thread only.
 *
 * Ordering model: every client message that the upstream answers gets an
 * entry in a FIFO (`pending`). pgbr's own messages (local operations) are
 * never pipelined with later forwarded ones: while a local operation is
 * queued, pgbr stops reading the client, so the queue is always
 * [forwarded...] + [at most one local op at the tail]. The local operation
 * runs when every forwarded entry before it has been answered, and its
 * output therefore lands exactly where the client expects it.
 */
#ifndef PGBR_PROXY_SESSION_H
#define PGBR_PROXY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "pgbr/exec.h"
#include "pgbr/proxy.h"
#include "pgbr/result.h"
#include "pgbr/sql.h"

#define SESSION_MAX_KEY 256
/* Q/P/B messages up to this size are read whole and inspected; larger ones
 * are streamed through uninspected (no statement of ours is that big). */
#define SESSION_INSPECT_MAX (64u * 1024u * 1024u)
/* Flow control: stop reading a side when the other side's output holds more. */
#define SESSION_HIGH_WATER (1024u * 1024u)
#define SESSION_LOW_WATER (256u * 1024u)

typedef enum session_phase {
    PHASE_STARTUP = 0,   /* waiting for SSLRequest / startup packet */
    PHASE_AUTH,          /* relaying the authentication exchange */
    PHASE_READY,         /* normal traffic */
    PHASE_CLOSING        /* flushing a final message, then close */
} session_phase;

typedef struct pending_entry {
    struct pending_entry *next;
    char type;           /* client message type that expects an answer */
    bool describe_statement;
} pending_entry;

typedef struct local_stmt {
    struct local_stmt *next;
    char *name;
    char *text;
    int position_base;
    sql_stmt *stmt;
    int nparam_types;
    uint32_t *param_types;
} local_stmt;

typedef struct local_portal {
    struct local_portal *next;
    char *name;
    char *text;
    sql_stmt *stmt;
    int nparams;
    char **params;       /* text values, NULL = SQL NULL */
    result_set *result;  /* after a first Execute with a row limit */
    int next_row;
    bool executed;
} local_portal;

typedef enum local_op_kind {
    LOP_SIMPLE_QUERY = 1,
    LOP_ERROR_READY,     /* an error for a simple query, then ReadyForQuery */
    LOP_PARSE,
    LOP_BIND,
    LOP_DESCRIBE,
    LOP_EXECUTE,
    LOP_CLOSE
} local_op_kind;

typedef struct local_op {
    local_op_kind kind;
    uint8_t *msg;        /* copy of the client message body */
    uint32_t msg_len;
    /* simple query */
    char *query;
    size_t query_len;
    sql_span *spans;
    int nspans;
    int next_span;
    /* error to send (LOP_ERROR_READY / parse errors) */
    pgbr_error err;
    exec_request *req;   /* running executor request */
    exec_session_info info;  /* strings below are the op's own copies */
    char *info_datestyle, *info_timezone, *info_intervalstyle;
    bool started;
    bool cancel_requested;
    void (*after_abort)(void *s);  /* continuation (takes the session) after aborting the upstream transaction */
    sql_stmt **stmts;        /* simple query: every statement, parsed before any runs */
    unsigned exec_gen;       /* exec_start calls made */
    unsigned exec_done_gen;  /* the call whose completion arrived last */
} local_op;

typedef struct internal_query {
    exec_query_cb cb;
    void *arg;
    bool synced;         /* ended with Sync: the terminal message is ReadyForQuery */
    int closes_seen;
    result_set *rs;
    pgbr_error err;
    bool failed;
} internal_query;

typedef struct session {
    struct session *prev, *next;
    uint64_t id;
    struct bufferevent *client;
    struct bufferevent *upstream;
    session_phase phase;
    bool client_tls;
    bool over_limit;
    bool replication;
    bool upstream_connected;
    bool counted;

    /* startup */
    uint8_t *startup;
    uint32_t startup_len;
    char *user, *database, *application_name;

    /* cancel keys: ours (given to the client) and the upstream's */
    uint32_t our_pid;
    uint8_t our_key[SESSION_MAX_KEY];
    size_t our_keylen;
    uint32_t up_pid;
    uint8_t up_key[SESSION_MAX_KEY];
    size_t up_keylen;
    bool have_up_key;

    /* stream state: bytes of the current message body still to relay */
    uint32_t client_remaining;
    uint32_t upstream_remaining;
    bool upstream_msg_to_client;  /* where the streamed upstream body goes */

    /* what the upstream reported */
    char txn_status;
    char *datestyle, *timezone, *intervalstyle;

    /* response ordering */
    pending_entry *pending_head, *pending_tail;
    bool upstream_unsynced;       /* extended messages forwarded since the last ReadyForQuery */
    bool upstream_skipping;       /* upstream discards messages until our next forwarded Sync */
    bool local_skipping;          /* a local error: drop client messages until Sync */
    local_op *local;
    internal_query *internal;
    local_stmt *stmts;
    local_portal *portals;

    struct event *resume_ev;      /* resumes reading the client after a local op */
    struct event *linger_ev;      /* TLS: waits for the last bytes to leave before closing */
    struct event *flush_ev;       /* writes pending output directly, once per loop iteration */
    struct evbuffer_cb_entry *client_out_cb;
    struct event *client_rd;      /* plain sockets: pgbr's own read events (see sock_read) */
    struct event *upstream_rd;
    int linger_ticks;

    /* flow control */
    bool client_throttled;
    bool upstream_throttled;
} session;

/* session.c */
void session_accept(struct event_base *base, int fd, bool over_limit);
void session_close(session *s);
void session_close_all(void);
session *session_find_by_key(uint32_t pid, const uint8_t *key, size_t keylen);
void session_send_fatal(session *s, const char *sqlstate, const char *message, const char *detail);
void session_pump_client(session *s);
bool session_forward_client_bytes(session *s, size_t n);
void session_push_pending(session *s, char type, bool describe_statement);
void session_forward_message(session *s, uint8_t type, const uint8_t *body, uint32_t len);
/* Queue a local operation (takes op); it runs once every earlier forwarded
 * message has been answered. Reading the client pauses until it finishes. */
void session_enqueue_local(session *s, local_op *op);
/* The local operation is finished: free it and resume reading the client. */
void session_finish_local(session *s);

void session_pump_upstream(session *s);
void session_client_event_cb(struct bufferevent *bev, short what, void *arg);
void session_upstream_event_cb(struct bufferevent *bev, short what, void *arg);

/* sockio.c: socket mechanics */
void session_sock_read_cb(evutil_socket_t fd, short what, void *arg);
void session_set_reading(session *s, bool client, bool on);
void session_upstream_free(session *s);
void session_output_added_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
void session_flush_cb(evutil_socket_t fd, short what, void *arg);
void session_client_write_cb(struct bufferevent *bev, void *arg);
void session_upstream_write_cb(struct bufferevent *bev, void *arg);
/* Stop reading src while dst's output holds more than SESSION_HIGH_WATER. */
void session_throttle_check(session *s, struct bufferevent *dst, struct bufferevent *src, bool *flag);
/* Close once everything queued for the client has reached its socket. */
void session_close_when_sent(session *s);

/* local.c: pgbr's own statements */
/* Each returns true when the message is ours (it then keeps a copy of the
 * body and queues a local operation), false when it must be forwarded. */
bool local_handle_query(session *s, const uint8_t *body, uint32_t len);
bool local_handle_parse(session *s, const uint8_t *body, uint32_t len);
bool local_handle_bind(session *s, const uint8_t *body, uint32_t len);
bool local_handle_describe(session *s, const uint8_t *body, uint32_t len);
bool local_handle_execute(session *s, const uint8_t *body, uint32_t len);
bool local_handle_close(session *s, const uint8_t *body, uint32_t len);
void local_run_if_ready(session *s);
void local_op_discard(session *s);
void local_cancel(session *s);
void local_free_all(session *s);
void local_forget_unnamed_statement(session *s, const char *name);
void local_forget_portal(session *s, const char *name);
bool local_has_statement(session *s, const char *name);
void local_drop_portals(session *s);
/* internal queries on the client's upstream session */
void local_run_query(void *session, const char *sql, int nparams, const char *const *params, exec_query_cb cb,
                     void *arg);
void local_internal_message(session *s, uint8_t type, const uint8_t *body, uint32_t len);

/* cancel.c */
void cancel_handle_request(struct event_base *base, const uint8_t *pkt, uint32_t len);
void cancel_init(const struct sockaddr *upstream, int addrlen);

/* listener.c */
extern proxy_stats proxy_stats_data;
extern int proxy_max_client_conn;
const struct sockaddr *proxy_upstream_addr(int *len);
SSL_CTX *proxy_tls_ctx(void);
struct event_base *proxy_base(void);

#endif
