/*
 * filter.c - the filter interface and filter chains (see
 * include/pgbr/filter.h).
 *
 * A chain links its filters by their output callbacks: filter i's output is
 * processed by filter i+1 as soon as it is produced, and the last filter's
 * output goes to the chain's sink. Nothing is queued between filters, so the
 * chain's memory is the sum of its filters' own bounded buffers, and a push
 * returns only when every byte it caused has reached the sink.
 */
#include "pgbr/filter.h"

#include <stdlib.h>
#include <string.h>

struct filter {
    const filter_ops *ops;
    void *state;
    char *name;             /* NULL: the type is the name */
    bool finished;
    /* set by filter_chain_add: where this filter's output goes in a chain */
    filter_sink_fn chain_out;
    void *chain_out_arg;
};

struct filter_chain {
    filter **filters;
    size_t nfilters;
    filter_sink_fn sink;
    void *sink_arg;
    bool started;
    bool finished;
    bool failed;
};

static bool filter_drop_sink(void *arg, const void *data, size_t len, pgbr_error *err)
{
    (void)arg;
    (void)data;
    (void)len;
    (void)err;
    return true;
}

filter *filter_new(const filter_ops *ops, void *state, pgbr_error *err)
{
    filter *f = calloc(1, sizeof *f);

    if (f == NULL) {
        if (ops->free != NULL)
            ops->free(state);
        pgbr_error_set(err, "53200", "out of memory creating a %s filter", ops->type);
        return NULL;
    }
    f->ops = ops;
    f->state = state;
    return f;
}

const char *filter_name(const filter *f)
{
    return f->name != NULL ? f->name : f->ops->type;
}

const char *filter_type(const filter *f)
{
    return f->ops->type;
}

void *filter_state(const filter *f)
{
    return f->state;
}

bool filter_process(filter *f, const void *in, size_t len, filter_sink_fn out, void *out_arg,
                    pgbr_error *err)
{
    if (f->finished)
        return pgbr_error_set(err, "XX000", "%s filter used after finish", filter_name(f));
    if (len == 0)
        return true;
    if (out == NULL)
        out = filter_drop_sink;
    return f->ops->process(f->state, in, len, out, out_arg, err);
}

bool filter_finish(filter *f, filter_sink_fn out, void *out_arg, pgbr_error *err)
{
    if (f->finished)
        return pgbr_error_set(err, "XX000", "%s filter finished twice", filter_name(f));
    f->finished = true;
    if (out == NULL)
        out = filter_drop_sink;
    return f->ops->finish == NULL || f->ops->finish(f->state, out, out_arg, err);
}

const char *filter_result(const filter *f)
{
    if (!f->finished || f->ops->result == NULL)
        return NULL;
    return f->ops->result(f->state);
}

void filter_free(filter *f)
{
    if (f == NULL)
        return;
    if (f->ops->free != NULL)
        f->ops->free(f->state);
    free(f->name);
    free(f);
}

/* ---- chains ---- */

/* The output callback of a filter followed by another: process it there. */
static bool chain_forward(void *next_filter, const void *data, size_t len, pgbr_error *err)
{
    filter *next = next_filter;

    return filter_process(next, data, len, next->chain_out, next->chain_out_arg, err);
}

/* The output callback of the last filter: the chain's sink. */
static bool chain_to_sink(void *chain_arg, const void *data, size_t len, pgbr_error *err)
{
    filter_chain *chain = chain_arg;

    if (len == 0)
        return true;
    return chain->sink(chain->sink_arg, data, len, err);
}

filter_chain *filter_chain_new(filter_sink_fn sink, void *sink_arg, pgbr_error *err)
{
    filter_chain *chain = calloc(1, sizeof *chain);

    if (chain == NULL) {
        pgbr_error_set(err, "53200", "out of memory creating a filter chain");
        return NULL;
    }
    chain->sink = sink != NULL ? sink : filter_drop_sink;
    chain->sink_arg = sink_arg;
    return chain;
}

bool filter_chain_add(filter_chain *chain, filter *f, const char *name, pgbr_error *err)
{
    filter **filters;

    if (f == NULL)
        return pgbr_error_set(err, "XX000", "no filter to add to the chain");
    if (chain->started) {
        filter_free(f);
        return pgbr_error_set(err, "XX000", "filter added to a chain already in use");
    }
    if (name != NULL && (f->name = strdup(name)) == NULL) {
        filter_free(f);
        return pgbr_error_set(err, "53200", "out of memory adding a filter");
    }
    filters = realloc(chain->filters, (chain->nfilters + 1) * sizeof *filters);
    if (filters == NULL) {
        filter_free(f);
        return pgbr_error_set(err, "53200", "out of memory adding a filter");
    }
    chain->filters = filters;
    if (chain->nfilters > 0) {
        filter *prev = chain->filters[chain->nfilters - 1];

        prev->chain_out = chain_forward;
        prev->chain_out_arg = f;
    }
    f->chain_out = chain_to_sink;
    f->chain_out_arg = chain;
    chain->filters[chain->nfilters++] = f;
    return true;
}

bool filter_chain_push(filter_chain *chain, const void *data, size_t len, pgbr_error *err)
{
    bool ok;

    if (chain->failed || chain->finished)
        return pgbr_error_set(err, "XX000", "filter chain used after %s",
                              chain->failed ? "a failure" : "finish");
    chain->started = true;
    if (len == 0)
        return true;
    if (chain->nfilters == 0)
        ok = chain->sink(chain->sink_arg, data, len, err);
    else
        ok = filter_process(chain->filters[0], data, len, chain->filters[0]->chain_out,
                            chain->filters[0]->chain_out_arg, err);
    if (!ok)
        chain->failed = true;
    return ok;
}

bool filter_chain_sink(void *chain, const void *data, size_t len, pgbr_error *err)
{
    return filter_chain_push(chain, data, len, err);
}

bool filter_chain_finish(filter_chain *chain, pgbr_error *err)
{
    if (chain->failed || chain->finished)
        return pgbr_error_set(err, "XX000", "filter chain used after %s",
                              chain->failed ? "a failure" : "finish");
    chain->started = true;
    chain->finished = true;
    /* In order: what filter i flushes is processed by i+1 before i+1 finishes. */
    for (size_t i = 0; i < chain->nfilters; i++) {
        filter *f = chain->filters[i];

        if (!filter_finish(f, f->chain_out, f->chain_out_arg, err)) {
            chain->failed = true;
            return false;
        }
    }
    return true;
}

filter *filter_chain_get(const filter_chain *chain, const char *name)
{
    for (size_t i = 0; i < chain->nfilters; i++)
        if (strcmp(filter_name(chain->filters[i]), name) == 0)
            return chain->filters[i];
    return NULL;
}

const char *filter_chain_result(const filter_chain *chain, const char *name)
{
    filter *f = filter_chain_get(chain, name);

    return f != NULL ? filter_result(f) : NULL;
}

void filter_chain_free(filter_chain *chain)
{
    if (chain == NULL)
        return;
    for (size_t i = 0; i < chain->nfilters; i++)
        filter_free(chain->filters[i]);
    free(chain->filters);
    free(chain);
}
