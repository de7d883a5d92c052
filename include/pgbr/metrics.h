/*
 * metrics.h - the Prometheus /metrics endpoint (evhttp on the loop thread).
 */
#ifndef PGBR_METRICS_H
#define PGBR_METRICS_H

#include <stdbool.h>

#include "pgbr/error.h"

struct event_base;

bool metrics_start(struct event_base *base, const char *addr, pgbr_error *err);
void metrics_stop(void);

#endif
