/*
 * cancel.c - CancelRequest handling. A client's cancel carries pgbr's own
 * key (handed out in place of the upstream's BackendKeyData). pgbr looks the
 * session up, cancels its own running statement if there is one, and sends
 * a CancelRequest with the upstream's key to the upstream on a new
 * connection, as libpq's PQcancel would. Nothing is answered to the client,
 * as PostgreSQL answers nothing. Loop thread only.
 */
#include "session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "pgbr/log.h"
#include "pgbr/proto.h"

static struct sockaddr_storage cancel_addr;
static int cancel_addrlen;

void cancel_init(const struct sockaddr *upstream, int addrlen)
{
    memcpy(&cancel_addr, upstream, (size_t)addrlen);
    cancel_addrlen = addrlen;
}

static void cancel_write_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_free(bev);
}

static void cancel_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (what & BEV_EVENT_ERROR)
            log_warning("could not forward a cancel request to the upstream server");
        bufferevent_free(bev);
    }
}

void cancel_handle_request(struct event_base *base, const uint8_t *pkt, uint32_t len)
{
    uint32_t pid;
    const uint8_t *key;
    size_t keylen;
    session *s;
    struct bufferevent *bev;
    if (!proto_parse_cancel(pkt, len, &pid, &key, &keylen))
        return;
    s = session_find_by_key(pid, key, keylen);
    if (s == NULL) {
        log_info("cancel request for an unknown session ignored");
        return;
    }
    if (s->local)
        local_cancel(s);
    if (!s->have_up_key)
        return;
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    proto_put_cancel_request(bufferevent_get_output(bev), s->up_pid, s->up_key, s->up_keylen);
    bufferevent_setcb(bev, NULL, cancel_write_cb, cancel_event_cb, NULL);
    bufferevent_enable(bev, EV_WRITE);
    if (bufferevent_socket_connect(bev, (struct sockaddr *)&cancel_addr, cancel_addrlen) < 0) {
        log_warning("could not connect to forward a cancel request");
        bufferevent_free(bev);
    }
}
