/*
 * proxy.h - the wire-protocol proxy: listeners, client and upstream
 * sessions, cancel-key mapping, TLS termination. Loop thread only.
 */
#ifndef PGBR_PROXY_H
#define PGBR_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "pgbr/config.h"
#include "pgbr/error.h"

struct event_base;

typedef struct proxy_stats {
    uint64_t clients_current;
    uint64_t clients_total;
    uint64_t clients_refused;
    uint64_t bytes_client_to_upstream;
    uint64_t bytes_upstream_to_client;
    uint64_t local_statements;
} proxy_stats;

/* Open the listeners of cfg and start accepting clients. */
bool proxy_start(struct event_base *base, const pgbr_config *cfg, pgbr_error *err);
/* Apply reloadable settings (max_client_conn, upstream address, TLS files). */
bool proxy_reconfigure(const pgbr_config *cfg, pgbr_error *err);
/* Close the listeners and every session; remove the Unix socket. */
void proxy_stop(void);
const proxy_stats *proxy_get_stats(void);

struct sockaddr_storage;
/* Resolve "HOST:PORT" or "[v6]:PORT" (blocking getaddrinfo: call only at
 * start-up and reload). */
bool proxy_resolve(const char *spec, struct sockaddr_storage *out, int *outlen, pgbr_error *err);

#endif
