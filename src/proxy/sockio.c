/*
 * sockio.c - the socket mechanics of a session: reading plain sockets with
 * pgbr's own events (one readv per read), writing queued output directly
 * once per loop iteration (one writev, EV_WRITE armed only when the kernel
 * is full), flow control between the two sides, and closing once the last
 * bytes have left (also through TLS). Loop thread only.
 */
#include "session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* ---- input ----
 *
 * libevent's socket bufferevents ask the kernel how much is readable
 * (ioctl FIONREAD) before every read. On plain sockets pgbr reads with its own
 * persistent read event straight into the bufferevent's input buffer, one
 * recv() per read. TLS connections keep the bufferevent path. */

#define SOCK_READ_CHUNK 65536

/* Read what the socket has into bev's input. Returns bytes read, 0 at EOF,
 * -1 on error, -2 when nothing was ready. */
static ssize_t sock_read(struct bufferevent *bev, evutil_socket_t fd)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec vec[1];
    ssize_t r;
    evbuffer_unfreeze(in, 0);
    /* One contiguous extent and recv(): the cheapest read the kernel offers
     * (readv goes through the generic iovec path). */
    if (evbuffer_reserve_space(in, SOCK_READ_CHUNK, vec, 1) < 1) {
        evbuffer_freeze(in, 0);
        errno = ENOMEM;
        return -1;
    }
    r = recv(fd, vec[0].iov_base, vec[0].iov_len, 0);
    if (r > 0) {
        vec[0].iov_len = (size_t)r;
        evbuffer_commit_space(in, vec, 1);
    }
    evbuffer_freeze(in, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return -2;
    return r;
}

/* Write as much of out as the socket takes: send() for one chunk (the usual
 * case for small messages), sendmsg() with up to 16 chunks otherwise. */
static ssize_t sock_write(struct evbuffer *out, evutil_socket_t fd)
{
    struct evbuffer_iovec vec[16];
    struct iovec iov[16];
    int n = evbuffer_peek(out, -1, NULL, vec, 16);
    ssize_t w;
    if (n > 16)
        n = 16;
    if (n <= 1) {
        if (n < 1)
            return 0;
        w = send(fd, vec[0].iov_base, vec[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = vec[i].iov_base;
            iov[i].iov_len = vec[i].iov_len;
        }
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    }
    if (w > 0)
        evbuffer_drain(out, (size_t)w);
    return w;
}

/* A plain socket of the session is readable: read it, then process. */
void session_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
    session *s = arg;
    bool client = s->client_rd != NULL && fd == event_get_fd(s->client_rd);
    struct bufferevent *bev = client ? s->client : s->upstream;
    ssize_t r = sock_read(bev, fd);
    short ev;
    (void)what;
    if (r == -2)
        return;
    if (r > 0) {
        if (client)
            session_pump_client(s);
        else
            session_pump_upstream(s);
        return;
    }
    ev = BEV_EVENT_READING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
    if (client)
        session_client_event_cb(bev, ev, s);
    else
        session_upstream_event_cb(bev, ev, s);
}

void session_upstream_free(session *s)
{
    if (s->upstream_rd) {
        event_free(s->upstream_rd);
        s->upstream_rd = NULL;
    }
    if (s->upstream) {
        bufferevent_free(s->upstream);
        s->upstream = NULL;
    }
}

/* Start or stop reading one side (flow control, waiting for a local op). */
void session_set_reading(session *s, bool client, bool on)
{
    struct event *ev = client ? s->client_rd : s->upstream_rd;
    struct bufferevent *bev = client ? s->client : s->upstream;
    if (ev != NULL) {
        if (on)
            event_add(ev, NULL);
        else
            event_del(ev);
    } else if (bev != NULL) {
        if (on)
            bufferevent_enable(bev, EV_READ);
        else
            bufferevent_disable(bev, EV_READ);
    }
}

/* ---- output ----
 *
 * libevent's socket bufferevents arm EV_WRITE when data is queued and disarm
 * it once written: two epoll_ctl calls per relayed message. Like PgBouncer,
 * pgbr instead writes directly to the socket, once per loop iteration after
 * everything of that iteration is queued, and arms EV_WRITE only when the
 * kernel would not take it all. TLS connections keep libevent's path. */

void session_output_added_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    session *s = arg;
    (void)buf;
    if (info->n_added > 0 && s->flush_ev != NULL)
        event_active(s->flush_ev, EV_TIMEOUT, 0);
}

/* Write bev's output now. Returns false when the session was closed. */
static bool flush_direct(session *s, struct bufferevent *bev, bool is_client)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    ssize_t n;
    if (evbuffer_get_length(out) == 0 || (is_client && s->client_tls) || (!is_client && !s->upstream_connected))
        return true;
    /* A socket bufferevent keeps the drain side of its output frozen so only
     * it writes; thaw it around our write exactly as libevent's own writer does. */
    evbuffer_unfreeze(out, 1);
    n = sock_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        bufferevent_enable(bev, EV_WRITE);  /* libevent reports the error through the event callback */
        return true;
    }
    if (evbuffer_get_length(out) > 0) {
        bufferevent_enable(bev, EV_WRITE);
        return true;
    }
    /* drained: what the write callback would have done */
    if (is_client) {
        session_client_write_cb(bev, s);
        return false;   /* may have closed the session */
    }
    session_upstream_write_cb(bev, s);
    return true;
}

void session_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    session *s = arg;
    (void)fd;
    (void)what;
    if (s->upstream && !flush_direct(s, s->upstream, false))
        return;
    flush_direct(s, s->client, true);
}

/* ---- flow control ---- */

void session_throttle_check(session *s, struct bufferevent *dst, struct bufferevent *src, bool *flag)
{
    if (evbuffer_get_length(bufferevent_get_output(dst)) > SESSION_HIGH_WATER && !*flag) {
        *flag = true;
        session_set_reading(s, src == s->client, false);
        bufferevent_setwatermark(dst, EV_WRITE, SESSION_LOW_WATER, 0);
    }
}

/* Bytes still waiting to reach the client's socket: with TLS, the filter
 * hands its output to the underlying socket bufferevent, which must drain too. */
static size_t client_unsent(session *s)
{
    struct bufferevent *under = bufferevent_get_underlying(s->client);
    return evbuffer_get_length(bufferevent_get_output(s->client)) +
           (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    session *s = arg;
    struct timeval tv = { 0, 10000 };
    (void)fd;
    (void)what;
    /* give up after ~5 s: a client that does not read loses its last message */
    if (client_unsent(s) == 0 || ++s->linger_ticks > 500) {
        session_close(s);
        return;
    }
    evtimer_add(s->linger_ev, &tv);
}

void session_close_when_sent(session *s)
{
    struct timeval tv = { 0, 10000 };
    if (client_unsent(s) == 0) {
        session_close(s);
        return;
    }
    if (s->client_tls && evbuffer_get_length(bufferevent_get_output(s->client)) == 0) {
        if (s->linger_ev == NULL)
            s->linger_ev = evtimer_new(bufferevent_get_base(s->client), linger_cb, s);
        evtimer_add(s->linger_ev, &tv);
    }
}

void session_client_write_cb(struct bufferevent *bev, void *arg)
{
    session *s = arg;
    if (!s->client_tls && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (s->phase == PHASE_CLOSING) {
        session_close_when_sent(s);
        return;
    }
    if (s->upstream_throttled && evbuffer_get_length(bufferevent_get_output(s->client)) <= SESSION_LOW_WATER) {
        s->upstream_throttled = false;
        bufferevent_setwatermark(s->client, EV_WRITE, 0, 0);
        if (s->upstream)
            session_set_reading(s, false, true);
        session_pump_upstream(s);
    }
}

void session_upstream_write_cb(struct bufferevent *bev, void *arg)
{
    session *s = arg;
    if (s->upstream_connected && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    if (s->client_throttled && evbuffer_get_length(bufferevent_get_output(s->upstream)) <= SESSION_LOW_WATER) {
        s->client_throttled = false;
        bufferevent_setwatermark(s->upstream, EV_WRITE, 0, 0);
        if (s->local == NULL)
            session_set_reading(s, true, true);
        session_pump_client(s);
    }
}
