/*
 * session.c - one client connection and its upstream PostgreSQL connection.
 *
 * Startup: answers SSLRequest ('S' with TLS termination when a certificate
 * is configured, else 'N') and GSSENCRequest ('N'), hands CancelRequests to
 * cancel.c, and relays the startup packet byte for byte to a new upstream
 * connection. The authentication exchange is relayed untouched (pgbr never
 * learns the password), except that BackendKeyData is replaced by pgbr's own
 * key and, when pgbr terminates TLS, SCRAM-SHA-256-PLUS is removed from the
 * upstream's SASL offer (channel binding cannot span two TLS legs).
 *
 * Afterwards messages are relayed as a stream: the 5-byte header of every
 * message is examined, bodies of DataRow/CopyData/FunctionCall and forwarded
 * Bind messages are streamed without being held whole, and only Query and
 * Parse (and the small Bind/Describe/Execute/Close) are read whole so the
 * router can decide whether they are ours (see session.h for the ordering
 * model and local.c for what happens to ours).
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgbr/log.h"
#include "pgbr/proto.h"

static session *all_sessions;
static uint64_t next_session_id = 1;
static uint32_t next_pid = 0;

static void client_read_cb(struct bufferevent *bev, void *arg);
static void upstream_read_cb(struct bufferevent *bev, void *arg);

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void session_accept(struct event_base *base, int fd, bool over_limit)
{
    session *s = calloc(1, sizeof *s);
    s->id = next_session_id++;
    s->over_limit = over_limit;
    s->txn_status = 'I';
    s->client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->client == NULL) {
        close(fd);
        free(s);
        return;
    }
    s->next = all_sessions;
    if (all_sessions)
        all_sessions->prev = s;
    all_sessions = s;
    if (!over_limit) {
        s->counted = true;
        proxy_stats_data.clients_current++;
        proxy_stats_data.clients_total++;
    } else {
        proxy_stats_data.clients_refused++;
    }
    s->flush_ev = event_new(base, -1, 0, session_flush_cb, s);
    bufferevent_setcb(s->client, client_read_cb, session_client_write_cb, session_client_event_cb, s);
    s->client_out_cb = evbuffer_add_cb(bufferevent_get_output(s->client), session_output_added_cb, s);
    /* EV_WRITE stays off on plain sockets: session_flush_cb writes directly and arms
     * it only when the socket's buffer is full. Reading uses pgbr's own event. */
    bufferevent_disable(s->client, EV_READ | EV_WRITE);
    s->client_rd = event_new(base, fd, EV_READ | EV_PERSIST, session_sock_read_cb, s);
    event_add(s->client_rd, NULL);
}

void session_close(session *s)
{
    s->phase = PHASE_CLOSING;   /* callbacks reached from here must not act */
    if (s->prev)
        s->prev->next = s->next;
    else if (all_sessions == s)
        all_sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (s->counted)
        proxy_stats_data.clients_current--;
    local_free_all(s);
    if (s->resume_ev)
        event_free(s->resume_ev);
    if (s->linger_ev)
        event_free(s->linger_ev);
    if (s->flush_ev)
        event_free(s->flush_ev);
    if (s->client_rd)
        event_free(s->client_rd);
    if (s->client)
        bufferevent_free(s->client);
    session_upstream_free(s);
    while (s->pending_head) {
        pending_entry *e = s->pending_head;
        s->pending_head = e->next;
        free(e);
    }
    free(s->startup);
    free(s->user);
    free(s->database);
    free(s->application_name);
    free(s->datestyle);
    free(s->timezone);
    free(s->intervalstyle);
    free(s);
}

void session_close_all(void)
{
    while (all_sessions)
        session_close(all_sessions);
}

session *session_find_by_key(uint32_t pid, const uint8_t *key, size_t keylen)
{
    for (session *s = all_sessions; s; s = s->next) {
        if (s->our_pid == pid && s->our_keylen == keylen && s->our_keylen > 0) {
            unsigned char diff = 0;
            for (size_t i = 0; i < keylen; i++)
                diff |= (unsigned char)(s->our_key[i] ^ key[i]);
            return diff == 0 ? s : NULL;
        }
    }
    return NULL;
}

/* Send a FATAL error to the client and close once it is written. */
void session_send_fatal(session *s, const char *sqlstate, const char *message, const char *detail)
{
    if (s->phase == PHASE_CLOSING)
        return;
    proto_put_error(bufferevent_get_output(s->client), "FATAL", sqlstate, message, detail, NULL, 0);
    s->phase = PHASE_CLOSING;
    session_set_reading(s, true, false);
    if (s->upstream) {
        session_upstream_free(s);
    }
}

/* ---- startup ---- */

static void upstream_connect(session *s)
{
    int len;
    const struct sockaddr *sa = proxy_upstream_addr(&len);
    s->upstream = bufferevent_socket_new(bufferevent_get_base(s->client), -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->upstream, upstream_read_cb, session_upstream_write_cb, session_upstream_event_cb, s);
    evbuffer_add_cb(bufferevent_get_output(s->upstream), session_output_added_cb, s);
    bufferevent_enable(s->upstream, EV_READ | EV_WRITE);   /* EV_WRITE detects the connect */
    /* The startup packet waits in the output buffer until the connection is up. */
    evbuffer_add(bufferevent_get_output(s->upstream), s->startup, s->startup_len);
    if (bufferevent_socket_connect(s->upstream, sa, len) < 0) {
        session_send_fatal(s, "08006", "pgbr could not connect to the upstream server", strerror(errno));
        return;
    }
}

static void start_tls(session *s)
{
    SSL *ssl = SSL_new(proxy_tls_ctx());
    struct bufferevent *tls;
    /* the TLS filter drives the socket bufferevent itself */
    evbuffer_remove_cb_entry(bufferevent_get_output(s->client), s->client_out_cb);
    s->client_out_cb = NULL;
    if (s->client_rd) {
        event_free(s->client_rd);
        s->client_rd = NULL;
    }
    bufferevent_enable(s->client, EV_READ | EV_WRITE);
    if (ssl == NULL) {
        session_close(s);
        return;
    }
    tls = bufferevent_openssl_filter_new(bufferevent_get_base(s->client), s->client, ssl,
                                         BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (tls == NULL) {
        SSL_free(ssl);
        session_close(s);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
    s->client = tls;
    s->client_tls = true;
    bufferevent_setcb(s->client, client_read_cb, session_client_write_cb, session_client_event_cb, s);
    bufferevent_enable(s->client, EV_READ | EV_WRITE);
}

static char *dup_or_null(const char *v)
{
    return v ? strdup(v) : NULL;
}

/* Returns false when the session was closed or is waiting for more bytes. */
static bool handle_startup(session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->client);
    uint8_t head[8];
    uint32_t len;
    proto_first_kind kind;
    uint8_t *pkt;
    proto_startup st;
    const char *why;

    if (evbuffer_copyout(in, head, 8) < 8)
        return false;
    kind = proto_classify_first(head, 8, &len);
    if (kind == PROTO_FIRST_BAD_LENGTH) {
        session_send_fatal(s, "08P01", "invalid length of startup packet", NULL);
        return false;
    }
    if (evbuffer_get_length(in) < len)
        return false;
    pkt = malloc(len);
    evbuffer_remove(in, pkt, len);
    switch (kind) {
    case PROTO_FIRST_SSL:
        if (s->client_tls) {
            free(pkt);
            session_send_fatal(s, "08P01", "unexpected SSL request on an encrypted connection", NULL);
            return false;
        }
        free(pkt);
        if (proxy_tls_ctx() != NULL && !s->over_limit) {
            bufferevent_write(s->client, "S", 1);
            start_tls(s);
            return false;   /* the TLS bufferevent calls us back */
        }
        bufferevent_write(s->client, "N", 1);
        return true;
    case PROTO_FIRST_GSSENC:
        free(pkt);
        bufferevent_write(s->client, "N", 1);
        return true;
    case PROTO_FIRST_CANCEL:
        cancel_handle_request(bufferevent_get_base(s->client), pkt, len);
        free(pkt);
        session_close(s);
        return false;
    default:
        break;
    }
    if (!proto_parse_startup(pkt, len, &st, &why)) {
        free(pkt);
        session_send_fatal(s, "08P01", why, NULL);
        return false;
    }
    if (s->over_limit) {
        char detail[128];
        free(pkt);
        snprintf(detail, sizeof detail, "pgbr accepts at most %d client connections (max_client_conn).",
                 proxy_max_client_conn);
        session_send_fatal(s, "53300", "sorry, too many clients already", detail);
        return false;
    }
    s->user = dup_or_null(proto_startup_get(&st, "user"));
    s->database = dup_or_null(proto_startup_get(&st, "database"));
    if (s->database == NULL)
        s->database = strdup(s->user);
    s->application_name = dup_or_null(proto_startup_get(&st, "application_name"));
    {
        const char *repl = proto_startup_get(&st, "replication");
        s->replication = repl != NULL && strcmp(repl, "false") != 0 && strcmp(repl, "0") != 0 &&
                         strcmp(repl, "off") != 0 && strcmp(repl, "no") != 0;
    }
    s->startup = pkt;
    s->startup_len = len;
    s->phase = PHASE_AUTH;
    upstream_connect(s);
    return s->phase == PHASE_AUTH;
}

/* ---- client -> upstream ---- */

bool session_forward_client_bytes(session *s, size_t n)
{
    struct evbuffer *in = bufferevent_get_input(s->client);
    evbuffer_remove_buffer(in, bufferevent_get_output(s->upstream), n);
    proxy_stats_data.bytes_client_to_upstream += n;
    return true;
}

void session_push_pending(session *s, char type, bool describe_statement)
{
    pending_entry *e;
    if (s->upstream_skipping && type != 'S')
        return;    /* the upstream will not answer it */
    e = calloc(1, sizeof *e);
    e->type = type;
    e->describe_statement = describe_statement;
    if (s->pending_tail)
        s->pending_tail->next = e;
    else
        s->pending_head = e;
    s->pending_tail = e;
    if (type == 'S')
        s->upstream_skipping = false;
}

/* Take one whole message (header + body) out of the client input; body malloc'd. */
static uint8_t *take_message(struct evbuffer *in, uint32_t len)
{
    uint8_t *body = malloc(len > 4 ? len - 4 : 1);
    evbuffer_drain(in, 5);
    if (len > 4)
        evbuffer_remove(in, body, len - 4);
    return body;
}

/* Forward a message we have taken whole. */
void session_forward_message(session *s, uint8_t type, const uint8_t *body, uint32_t len)
{
    uint8_t h[5];
    uint32_t nl = htonl(len);
    struct evbuffer *out = bufferevent_get_output(s->upstream);
    h[0] = type;
    memcpy(h + 1, &nl, 4);
    evbuffer_add(out, h, 5);
    if (len > 4)
        evbuffer_add(out, body, len - 4);
    proxy_stats_data.bytes_client_to_upstream += len + 1;
}

static bool is_extended(uint8_t type)
{
    return type == 'P' || type == 'B' || type == 'D' || type == 'E' || type == 'C' || type == 'H';
}

/* Process what the client sent, message by message, until a local operation
 * must wait or the input runs dry. */
void session_pump_client(session *s)
{
    struct evbuffer *in;
    while (s->phase == PHASE_STARTUP) {
        if (!handle_startup(s))
            return;
    }
    if (s->phase == PHASE_CLOSING || s->upstream == NULL)
        return;
    in = bufferevent_get_input(s->client);
    /* A long statement of ours reads on to notice the client leaving
     * (local_watch_client); what arrives waits here for it, within bounds. */
    if (s->local != NULL && evbuffer_get_length(in) > SESSION_HIGH_WATER)
        session_set_reading(s, true, false);
    while (s->local == NULL && !s->client_throttled) {
        uint8_t h[5];
        uint8_t type;
        uint32_t len;
        const char *bad;
        size_t avail = evbuffer_get_length(in);

        if (s->client_remaining > 0) {
            size_t n = avail < s->client_remaining ? avail : s->client_remaining;
            if (n == 0)
                break;
            session_forward_client_bytes(s, n);
            s->client_remaining -= (uint32_t)n;
            session_throttle_check(s, s->upstream, s->client, &s->client_throttled);
            continue;
        }
        if (avail < 5)
            break;
        evbuffer_copyout(in, h, 5);
        type = h[0];
        len = rd32(h + 1);
        if ((bad = proto_check_frontend_header(type, len)) != NULL) {
            char msg[96];
            if (strcmp(bad, "invalid frontend message type") == 0)
                snprintf(msg, sizeof msg, "invalid frontend message type %d", type);
            else
                snprintf(msg, sizeof msg, "invalid message length %u for message type \"%c\"", len,
                         type >= 32 && type < 127 ? type : '?');
            log_info("session %llu: protocol violation from client: %s", (unsigned long long)s->id, msg);
            session_send_fatal(s, "08P01", msg, NULL);
            return;
        }

        if (s->phase == PHASE_AUTH || s->replication) {
            /* Authentication exchange and replication connections: relay as is. */
            session_forward_client_bytes(s, 5);
            s->client_remaining = len - 4;
            if (s->phase == PHASE_READY && (type == 'Q' || type == 'S' || type == 'F'))
                session_push_pending(s, (char)type, false);
            if (type == 'X') {
                s->phase = PHASE_CLOSING;
                session_forward_client_bytes(s, len - 4);
                s->client_remaining = 0;
            }
            continue;
        }

        if (s->local_skipping && type != 'S') {
            /* After an error of ours in an extended-protocol batch, PostgreSQL
             * discards everything up to Sync: so do we. */
            if ((size_t)len + 1 > avail && type != 'd')
                break;
            if (type == 'X') {
                session_forward_client_bytes(s, len + 1);
                s->phase = PHASE_CLOSING;
                session_set_reading(s, true, false);
                return;
            }
            evbuffer_drain(in, (size_t)len + 1 < avail ? (size_t)len + 1 : avail);
            if ((size_t)len + 1 > avail)
                s->client_remaining = 0; /* partial CopyData: drop the rest as it comes */
            continue;
        }

        switch (type) {
        case 'Q':
        case 'P':
        case 'B':
        case 'D':
        case 'E':
        case 'C': {
            const uint8_t *body;
            bool local = false;
            if (len - 4 > SESSION_INSPECT_MAX) {
                session_forward_client_bytes(s, 5);
                s->client_remaining = len - 4;
                session_push_pending(s, (char)type, false);
                s->upstream_unsynced = s->upstream_unsynced || is_extended(type);
                continue;
            }
            if ((size_t)len + 1 > avail) {
                evbuffer_expand(in, (size_t)len + 1 - avail);
                goto out;
            }
            /* Look at the message in place; forwarding then moves it without a copy. */
            body = evbuffer_pullup(in, (ssize_t)len + 1) + 5;
            switch (type) {
            case 'Q':
                local = sql_maybe_ours((const char *)body, len > 5 ? len - 5 : 0) &&
                        local_handle_query(s, body, len - 4);
                break;
            case 'P': local = local_handle_parse(s, body, len - 4); break;
            case 'B': local = local_handle_bind(s, body, len - 4); break;
            case 'D': local = local_handle_describe(s, body, len - 4); break;
            case 'E': local = local_handle_execute(s, body, len - 4); break;
            case 'C': local = local_handle_close(s, body, len - 4); break;
            }
            if (local) {
                evbuffer_drain(in, (size_t)len + 1);
            } else {
                bool desc_stmt = type == 'D' && len > 4 && body[0] == 'S';
                session_forward_client_bytes(s, (size_t)len + 1);
                session_push_pending(s, (char)type, desc_stmt);
                if (is_extended(type))
                    s->upstream_unsynced = true;
            }
            if (s->phase != PHASE_READY)
                return;
            continue;
        }
        case 'S':
            s->local_skipping = false;
            session_forward_client_bytes(s, 5);
            session_push_pending(s, 'S', false);
            continue;
        case 'H':
            session_forward_client_bytes(s, 5);
            continue;
        case 'X':
            session_forward_client_bytes(s, 5);
            s->phase = PHASE_CLOSING;
            session_set_reading(s, true, false);
            return;
        case 'F':
            session_forward_client_bytes(s, 5);
            s->client_remaining = len - 4;
            session_push_pending(s, 'F', false);
            continue;
        default:    /* 'd', 'c', 'f', 'p': streamed through */
            session_forward_client_bytes(s, 5);
            s->client_remaining = len - 4;
            continue;
        }
    }
out:
    session_throttle_check(s, s->upstream, s->client, &s->client_throttled);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    session_pump_client(arg);
}

void session_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    session *s = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        session_close(s);   /* abandons a running statement of ours */
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    session *s = arg;
    (void)fd;
    (void)what;
    session_pump_client(s);
}

void session_enqueue_local(session *s, local_op *op)
{
    s->local = op;
    session_set_reading(s, true, false);
    proxy_stats_data.local_statements++;
    if (s->pending_head != NULL) {
        /* Make the upstream deliver the answers the local op waits behind
         * even when the client has not sent Sync/Flush yet. */
        if (s->upstream_unsynced)
            proto_put_flush(bufferevent_get_output(s->upstream));
        return;
    }
    local_run_if_ready(s);
}

void session_finish_local(session *s)
{
    s->local = NULL;
    if (s->phase != PHASE_READY)
        return;
    if (!s->client_throttled)
        session_set_reading(s, true, true);
    /* Continue with what the client already sent, from the loop rather than
     * from deep inside the callback chain that finished the op. */
    if (s->resume_ev == NULL)
        s->resume_ev = event_new(bufferevent_get_base(s->client), -1, 0, resume_cb, s);
    event_active(s->resume_ev, EV_TIMEOUT, 0);
}

/* ---- upstream -> client ---- */

/* Does this backend message answer the oldest pending entry? */
static bool ends_entry(const pending_entry *e, uint8_t type)
{
    switch (e->type) {
    case 'P': return type == '1' || type == 'E';
    case 'B': return type == '2' || type == 'E';
    case 'C': return type == '3' || type == 'E';
    case 'D': return type == 'T' || type == 'n' || type == 'E';
    case 'E': return type == 'C' || type == 'I' || type == 's' || type == 'E';
    case 'S': case 'Q': case 'F': return type == 'Z';
    default: return false;
    }
}

static void pop_pending(session *s)
{
    pending_entry *e = s->pending_head;
    if (e == NULL)
        return;
    s->pending_head = e->next;
    if (s->pending_head == NULL)
        s->pending_tail = NULL;
    free(e);
}

/* An error answered an extended-protocol message: the upstream now skips
 * everything up to the next Sync, so entries before that Sync get no answer. */
static void upstream_error_in_batch(session *s)
{
    pending_entry **pp = &s->pending_head;
    while (*pp && (*pp)->type != 'S') {
        pending_entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    s->pending_tail = NULL;
    for (pending_entry *e = s->pending_head; e; e = e->next)
        s->pending_tail = e;
    if (s->pending_head == NULL) {
        s->upstream_skipping = true;
        if (s->local != NULL)
            local_op_discard(s);  /* it belonged to the failed batch */
    }
}

static void set_param(char **slot, const char *value)
{
    free(*slot);
    *slot = strdup(value);
}

/* Messages pgbr must see whole: small ones whose content matters. */
static bool needs_whole(session *s, uint8_t type)
{
    if (s->internal)
        return true;
    switch (type) {
    case 'S': case 'K': case 'R':
        return true;
    case 'E':
        return s->phase == PHASE_AUTH;
    default:
        return false;
    }
}

/* Record what a relayed message means for the ordering queue. */
static void track_answer(session *s, uint8_t type)
{
    pending_entry *e = s->pending_head;
    if (s->phase != PHASE_READY || e == NULL || type == 'N' || type == 'A' || type == 'S')
        return;
    if (ends_entry(e, type)) {
        bool extended_error = type == 'E' && e->type != 'Q' && e->type != 'S' && e->type != 'F';
        pop_pending(s);
        if (extended_error)
            upstream_error_in_batch(s);
        if (type == 'Z' && s->txn_status == 'I')
            local_drop_portals(s);
    }
}

static void note_ready_for_query(session *s, char status)
{
    s->txn_status = status;
    s->upstream_unsynced = false;
    if (s->phase == PHASE_AUTH) {
        s->phase = PHASE_READY;
        free(s->startup);
        s->startup = NULL;
    }
}

/* Move the first n bytes of the upstream input to the client. */
static void relay_run(struct evbuffer *in, struct evbuffer *out, size_t *run)
{
    if (*run == 0)
        return;
    evbuffer_remove_buffer(in, out, *run);
    proxy_stats_data.bytes_upstream_to_client += *run;
    *run = 0;
}

void session_pump_upstream(session *s)
{
    struct evbuffer *in, *out;
    size_t run = 0;     /* complete messages at the front of `in`, relayed in one move */
    if (s->upstream == NULL || s->phase == PHASE_CLOSING)
        return;
    in = bufferevent_get_input(s->upstream);
    out = bufferevent_get_output(s->client);
    while (!s->upstream_throttled) {
        uint8_t h[6];
        uint8_t type;
        uint32_t len;
        size_t avail;
        const char *bad;
        struct evbuffer_ptr ptr;

        if (s->upstream_remaining > 0) {
            size_t n;
            relay_run(in, out, &run);
            n = evbuffer_get_length(in);
            if (n > s->upstream_remaining)
                n = s->upstream_remaining;
            if (n == 0)
                break;
            evbuffer_remove_buffer(in, out, n);
            proxy_stats_data.bytes_upstream_to_client += n;
            s->upstream_remaining -= (uint32_t)n;
            session_throttle_check(s, s->client, s->upstream, &s->upstream_throttled);
            continue;
        }
        avail = evbuffer_get_length(in) - run;
        if (avail < 5)
            break;
        evbuffer_ptr_set(in, &ptr, run, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(in, &ptr, h, avail >= 6 ? 6 : 5);
        type = h[0];
        len = rd32(h + 1);
        if ((bad = proto_check_backend_header(type, len)) != NULL) {
            relay_run(in, out, &run);
            log_error("session %llu: %s", (unsigned long long)s->id, bad);
            session_send_fatal(s, "08P01", "pgbr lost the protocol stream of the upstream server", bad);
            return;
        }
        if (needs_whole(s, type)) {
            uint8_t *body;
            relay_run(in, out, &run);
            if ((size_t)len + 1 > avail) {
                evbuffer_expand(in, (size_t)len + 1 - avail);
                break;
            }
            body = take_message(in, len);
            if (s->internal && type != 'A' && type != 'S') {
                local_internal_message(s, type, body, len - 4);
                free(body);
                continue;
            }
            if (type == 'K') {
                if (len - 4 >= 8 && len - 4 <= 4 + SESSION_MAX_KEY) {
                    s->up_pid = rd32(body);
                    s->up_keylen = len - 8;
                    memcpy(s->up_key, body + 4, s->up_keylen);
                    s->have_up_key = true;
                    s->our_pid = ++next_pid == 0 ? ++next_pid : next_pid;
                    s->our_keylen = s->up_keylen;
                    RAND_bytes(s->our_key, (int)s->our_keylen);
                    proto_put_backend_key(out, s->our_pid, s->our_key, s->our_keylen);
                }
                free(body);
                continue;
            }
            if (type == 'R' && s->client_tls && len - 4 >= 4 && rd32(body) == 10 &&
                proto_put_sasl_without_plus(out, body, len - 4)) {
                free(body);
                continue;
            }
            if (type == 'S') {
                size_t pos = 0;
                const char *k, *v;
                if (proto_get_string(body, len - 4, &pos, &k) && proto_get_string(body, len - 4, &pos, &v)) {
                    if (strcmp(k, "DateStyle") == 0)
                        set_param(&s->datestyle, v);
                    else if (strcmp(k, "TimeZone") == 0)
                        set_param(&s->timezone, v);
                    else if (strcmp(k, "IntervalStyle") == 0)
                        set_param(&s->intervalstyle, v);
                }
            }
            {
                uint8_t hh[5];
                uint32_t nl = htonl(len);
                hh[0] = type;
                memcpy(hh + 1, &nl, 4);
                evbuffer_add(out, hh, 5);
                if (len > 4)
                    evbuffer_add(out, body, len - 4);
                proxy_stats_data.bytes_upstream_to_client += (size_t)len + 1;
            }
            free(body);
            if (type == 'E' && s->phase == PHASE_AUTH) {
                /* authentication failed: the error is relayed, now close */
                s->phase = PHASE_CLOSING;
                session_upstream_free(s);
                return;
            }
        } else if ((size_t)len + 1 <= avail) {
            /* complete: joins the run of messages relayed in one move */
            if (type == 'Z' && len == 5)
                note_ready_for_query(s, (char)h[5]);
            run += (size_t)len + 1;
        } else {
            /* incomplete (a big DataRow, say): relay the header, stream the rest */
            relay_run(in, out, &run);
            evbuffer_remove_buffer(in, out, 5);
            proxy_stats_data.bytes_upstream_to_client += 5;
            s->upstream_remaining = len - 4;
            if (type == 'Z')
                note_ready_for_query(s, 'I');  /* a 5-byte Z is always complete; defensive */
        }
        track_answer(s, type);
        if (s->local != NULL && s->pending_head == NULL && s->upstream_remaining == 0) {
            relay_run(in, out, &run);
            local_run_if_ready(s);
        }
        if (run >= SESSION_HIGH_WATER)
            relay_run(in, out, &run);
        session_throttle_check(s, s->client, s->upstream, &s->upstream_throttled);
    }
    relay_run(in, out, &run);
    /* The answer that completed the last forwarded entry may have been
     * streamed: start the waiting local op once all of it is relayed. */
    if (s->local != NULL && s->pending_head == NULL && s->upstream_remaining == 0)
        local_run_if_ready(s);
}

static void upstream_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    session_pump_upstream(arg);
}

void session_upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
    session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        s->upstream_connected = true;
        /* request/response traffic: never let Nagle hold a message back */
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bufferevent_disable(bev, EV_READ);
        s->upstream_rd = event_new(bufferevent_get_base(bev), bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                                   session_sock_read_cb, s);
        if (!s->upstream_throttled)
            event_add(s->upstream_rd, NULL);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (!s->upstream_connected) {
            session_send_fatal(s, "08006", "pgbr could not connect to the upstream server",
                               evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
            return;
        }
        /* Relay whatever the upstream said last (e.g. a FATAL), then close. */
        session_pump_upstream(s);
        if (s->upstream) {
            session_upstream_free(s);
        }
        if (s->phase != PHASE_CLOSING)
            s->phase = PHASE_CLOSING;
        session_set_reading(s, true, false);
        session_close_when_sent(s);
    }
}
