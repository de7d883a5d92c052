/*
 * listener.c - TCP and Unix-socket listeners, the client connection limit,
 * the upstream's address and the TLS context for client connections.
 * Loop thread only.
 */
#include "session.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgbr/log.h"

proxy_stats proxy_stats_data;
int proxy_max_client_conn = 1000;

static struct event_base *loop_base;
static struct evconnlistener *tcp_listener;
static struct evconnlistener *unix_listener;
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static struct sockaddr_storage upstream_addr;
static int upstream_addrlen;
static SSL_CTX *tls_ctx;

struct event_base *proxy_base(void)
{
    return loop_base;
}

const struct sockaddr *proxy_upstream_addr(int *len)
{
    *len = upstream_addrlen;
    return (const struct sockaddr *)&upstream_addr;
}

SSL_CTX *proxy_tls_ctx(void)
{
    return tls_ctx;
}

const proxy_stats *proxy_get_stats(void)
{
    return &proxy_stats_data;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    int one = 1;
    (void)l;
    (void)salen;
    (void)arg;
    if (sa->sa_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    session_accept(loop_base, fd, proxy_stats_data.clients_current >= (uint64_t)proxy_max_client_conn);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and the like: log and keep going; the listener stays enabled. */
    log_warning("accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* Split "host:port" / "[v6]:port". */
static bool split_host_port(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':')
            return false;
        snprintf(host, hostlen, "%.*s", (int)(close - spec - 1), spec + 1);
        snprintf(port, portlen, "%s", close + 2);
        return true;
    }
    colon = strrchr(spec, ':');
    if (colon == NULL)
        return false;
    snprintf(host, hostlen, "%.*s", (int)(colon - spec), spec);
    snprintf(port, portlen, "%s", colon + 1);
    return port[0] != '\0';
}

/* Resolve HOST:PORT (numeric or name) to one socket address. */
bool proxy_resolve(const char *spec, struct sockaddr_storage *out, int *outlen, pgbr_error *err)
{
    char host[256], port[32];
    struct addrinfo hints, *res = NULL;
    int rc;
    if (!split_host_port(spec, host, sizeof host, port, sizeof port))
        return pgbr_error_set(err, "22023", "invalid address \"%s\": expected HOST:PORT", spec);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || res == NULL)
        return pgbr_error_set(err, "22023", "could not resolve \"%s\": %s", spec, gai_strerror(rc));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

static bool set_upstream(const pgbr_config *cfg, pgbr_error *err)
{
    if (cfg->upstream_host[0] == '/') {
        struct sockaddr_un *sun = (struct sockaddr_un *)&upstream_addr;
        memset(&upstream_addr, 0, sizeof upstream_addr);
        sun->sun_family = AF_UNIX;
        if ((size_t)snprintf(sun->sun_path, sizeof sun->sun_path, "%s/.s.PGSQL.%d", cfg->upstream_host,
                             cfg->upstream_port) >= sizeof sun->sun_path)
            return pgbr_error_set(err, "22023", "upstream socket path is too long");
        upstream_addrlen = (int)sizeof *sun;
    } else {
        char spec[300];
        if (strchr(cfg->upstream_host, ':'))
            snprintf(spec, sizeof spec, "[%s]:%d", cfg->upstream_host, cfg->upstream_port);
        else
            snprintf(spec, sizeof spec, "%s:%d", cfg->upstream_host, cfg->upstream_port);
        if (!proxy_resolve(spec, &upstream_addr, &upstream_addrlen, err))
            return false;
    }
    cancel_init((const struct sockaddr *)&upstream_addr, upstream_addrlen);
    return true;
}

static bool load_tls(const pgbr_config *cfg, pgbr_error *err)
{
    SSL_CTX *ctx;
    if (cfg->tls_cert == NULL) {
        if (tls_ctx)
            SSL_CTX_free(tls_ctx);
        tls_ctx = NULL;
        return true;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        SSL_CTX_free(ctx);
        return pgbr_error_set(err, "F0000", "could not load TLS certificate \"%s\" / key \"%s\": %s", cfg->tls_cert,
                              cfg->tls_key, buf);
    }
    if (tls_ctx)
        SSL_CTX_free(tls_ctx);
    tls_ctx = ctx;
    return true;
}

bool proxy_start(struct event_base *base, const pgbr_config *cfg, pgbr_error *err)
{
    struct sockaddr_storage ss;
    int sslen;
    char host[256], port[32];
    loop_base = base;
    proxy_max_client_conn = cfg->max_client_conn;
    if (!set_upstream(cfg, err) || !load_tls(cfg, err))
        return false;
    if (!proxy_resolve(cfg->listen, &ss, &sslen, err))
        return false;
    tcp_listener = evconnlistener_new_bind(base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                           (struct sockaddr *)&ss, sslen);
    if (tcp_listener == NULL)
        return pgbr_error_set(err, "58000", "could not listen on %s: %s", cfg->listen, strerror(errno));
    evconnlistener_set_error_cb(tcp_listener, accept_error_cb);
    log_info("listening on %s", cfg->listen);
    if (cfg->unix_socket_dir != NULL && cfg->unix_socket_dir[0] != '\0') {
        struct sockaddr_un sun;
        split_host_port(cfg->listen, host, sizeof host, port, sizeof port);
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if ((size_t)snprintf(unix_path, sizeof unix_path, "%s/.s.PGSQL.%s", cfg->unix_socket_dir, port) >=
            sizeof unix_path)
            return pgbr_error_set(err, "22023", "unix socket path is too long");
        memcpy(sun.sun_path, unix_path, strlen(unix_path) + 1);
        unlink(unix_path);
        unix_listener = evconnlistener_new_bind(base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE, 1024,
                                                (struct sockaddr *)&sun, (int)sizeof sun);
        if (unix_listener == NULL)
            return pgbr_error_set(err, "58000", "could not listen on %s: %s", unix_path, strerror(errno));
        chmod(unix_path, 0777);
        evconnlistener_set_error_cb(unix_listener, accept_error_cb);
        log_info("listening on %s", unix_path);
    }
    return true;
}

bool proxy_reconfigure(const pgbr_config *cfg, pgbr_error *err)
{
    proxy_max_client_conn = cfg->max_client_conn;
    if (!set_upstream(cfg, err))
        return false;
    return load_tls(cfg, err);
}

void proxy_stop(void)
{
    if (tcp_listener)
        evconnlistener_free(tcp_listener);
    tcp_listener = NULL;
    if (unix_listener) {
        evconnlistener_free(unix_listener);
        unlink(unix_path);
    }
    unix_listener = NULL;
    session_close_all();
    if (tls_ctx)
        SSL_CTX_free(tls_ctx);
    tls_ctx = NULL;
}
