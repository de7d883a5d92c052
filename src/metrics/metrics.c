/*
 * metrics.c - serves Prometheus text exposition at /metrics: proxy
 * connections and bytes relayed. Later parts (jobs, schedules, slots) add
 * their families here. Loop thread only.
 */
#include "pgbr/metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>

#include "pgbr/proxy.h"

static struct evhttp *http;

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help, uint64_t value)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, value);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
    const proxy_stats *st = proxy_get_stats();
    struct evbuffer *b = evbuffer_new();
    (void)arg;
    metric(b, "pgbr_client_connections", "gauge", "Client connections currently open.", st->clients_current);
    metric(b, "pgbr_client_connections_total", "counter", "Client connections accepted.", st->clients_total);
    metric(b, "pgbr_client_connections_refused_total", "counter",
           "Client connections refused because max_client_conn was reached.", st->clients_refused);
    evbuffer_add_printf(b, "# HELP pgbr_proxy_bytes_total Bytes relayed between clients and the upstream.\n"
                           "# TYPE pgbr_proxy_bytes_total counter\n"
                           "pgbr_proxy_bytes_total{direction=\"client_to_upstream\"} %" PRIu64 "\n"
                           "pgbr_proxy_bytes_total{direction=\"upstream_to_client\"} %" PRIu64 "\n",
                        st->bytes_client_to_upstream, st->bytes_upstream_to_client);
    metric(b, "pgbr_local_statements_total", "counter", "Statements executed by pgbr itself.",
           st->local_statements);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

bool metrics_start(struct event_base *base, const char *addr, pgbr_error *err)
{
    struct sockaddr_storage ss;
    int len;
    evutil_socket_t fd;
    if (addr == NULL || addr[0] == '\0')
        return true;
    if (!proxy_resolve(addr, &ss, &len, err))
        return false;
    http = evhttp_new(base);
    evhttp_set_cb(http, "/metrics", metrics_cb, NULL);
    fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || evutil_make_listen_socket_reuseable(fd) < 0 || bind(fd, (struct sockaddr *)&ss, (socklen_t)len) < 0 ||
        listen(fd, 128) < 0) {
        if (fd >= 0)
            evutil_closesocket(fd);
        evhttp_free(http);
        http = NULL;
        return pgbr_error_set(err, "58000", "could not listen for metrics on %s", addr);
    }
    evutil_make_socket_nonblocking(fd);
    evhttp_accept_socket(http, fd);
    return true;
}

void metrics_stop(void)
{
    if (http)
        evhttp_free(http);
    http = NULL;
}
