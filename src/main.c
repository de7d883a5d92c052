/*
 * main.c - pgbr's process: configuration, the event loop, signals (SIGTERM
 * and SIGINT shut down cleanly, SIGHUP reloads the configuration file), the
 * worker pool, the proxy listeners and the metrics endpoint.
 */
#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgbr/catalog.h"
#include "pgbr/config.h"
#include "pgbr/exec.h"
#include "pgbr/log.h"
#include "pgbr/metrics.h"
#include "pgbr/pool.h"
#include "pgbr/restore.h"
#include "pgbr/proxy.h"

static pgbr_config config;
static struct event_base *base;

static void apply_runtime_settings(const pgbr_config *cfg)
{
    log_level lvl;
    exec_config ec;
    char *conninfo = config_catalog_conninfo(cfg);
    if (log_level_parse(cfg->log_level, &lvl))
        log_set_level(lvl);
    memset(&ec, 0, sizeof ec);
    ec.admin_role = cfg->admin_role;
    ec.node_id = cfg->node_id;
    ec.external_io_dir = cfg->external_io_dir;
    ec.job_conninfo = conninfo;
    ec.workers = cfg->workers;
    ec.bundle_limit = (uint64_t)cfg->bundle_limit_kb * 1024;
    ec.bundle_size = (uint64_t)cfg->bundle_size_kb * 1024;
    exec_configure(&ec);
    free(conninfo);
}

/*
 * Create or migrate the catalog before accepting clients, so pgbr.jobs exists
 * as soon as pgbr is reachable. Blocking is fine here: the loop is not running
 * yet. If the upstream is not up, workers migrate on their first connection.
 */
static void migrate_catalog_at_start(const char *conninfo)
{
    pgbr_error err = PGBR_ERROR_INIT;
    PGconn *conn = catalog_connect(conninfo, &err);
    if (conn != NULL && catalog_migrate(conn, &err)) {
        log_info("catalog schema \"pgbr\" is current");
        pgbr_error_clear(&err);
        /* the jobs this node ran before it restarted are adopted by the
         * node loop (job_node.c); staging databases of jobs that are over */
        if (restore_drop_orphans(conninfo, &err) < 0)
            log_warning("could not drop the staging databases of interrupted restores: %s", err.message);
    } else
        log_warning("catalog not ready yet, workers will retry: %s", err.message ? err.message : "unknown error");
    pgbr_error_clear(&err);
    if (conn != NULL)
        PQfinish(conn);
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    log_info("received signal %d, shutting down", (int)sig);
    event_base_loopbreak(base);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    pgbr_config fresh;
    pgbr_error err = PGBR_ERROR_INIT;
    char *conninfo;
    (void)sig;
    (void)what;
    (void)arg;
    if (!config_reload(&config, &fresh, &err)) {
        log_error("configuration reload failed, keeping the old settings: %s", err.message);
        pgbr_error_clear(&err);
        config_free(&fresh);
        return;
    }
    if (!proxy_reconfigure(&fresh, &err)) {
        log_error("configuration reload failed: %s", err.message);
        pgbr_error_clear(&err);
        config_free(&fresh);
        return;
    }
    if (strcmp(fresh.listen, config.listen) != 0)
        log_warning("listen address changes take effect at restart");
    apply_runtime_settings(&fresh);
    conninfo = config_catalog_conninfo(&fresh);
    pool_set_catalog_conninfo(conninfo);
    free(conninfo);
    config_free(&config);
    config = fresh;
    log_info("configuration reloaded (log_level=%s, max_client_conn=%d)", config.log_level, config.max_client_conn);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static bool write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        log_error("could not write pidfile \"%s\": %s", path, strerror(errno));
        return false;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return true;
}

int main(int argc, char **argv)
{
    pgbr_error err = PGBR_ERROR_INIT;
    struct event *sig_term, *sig_int, *sig_hup;
    pool_config pc;
    char *conninfo;
    int rc = 0;

    switch (config_load(argc, argv, &config, &err)) {
    case CONFIG_EXIT_OK:
        config_free(&config);
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "pgbr: %s\n", err.message);
        if (err.hint)
            fprintf(stderr, "%s\n", err.hint);
        pgbr_error_clear(&err);
        config_free(&config);
        return 2;
    case CONFIG_OK:
        break;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    /* The relay allocates and frees 64 KiB buffer chains constantly; without
     * this glibc returns the heap top to the kernel (brk) after every message. */
    mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    evthread_use_pthreads();
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "pgbr: could not create the event loop\n");
        return 1;
    }
    apply_runtime_settings(&config);

    conninfo = config_catalog_conninfo(&config);
    migrate_catalog_at_start(conninfo);
    pc.workers = config.workers;
    pc.catalog_conninfo = conninfo;
    if (!pool_start(base, &pc)) {
        free(conninfo);
        return 1;
    }
    {
        exec_node_config nc;
        memset(&nc, 0, sizeof nc);
        nc.catalog_conninfo = conninfo;
        nc.job_conninfo = conninfo;
        nc.external_io_dir = config.external_io_dir;
        nc.node_id = config.node_id;
        nc.workers = config.workers;
        nc.bundle_limit = (uint64_t)config.bundle_limit_kb * 1024;
        nc.bundle_size = (uint64_t)config.bundle_size_kb * 1024;
        nc.lease_seconds = config.job_lease_s;
        nc.retention_seconds = config.job_retention_s;
        exec_node_start(&nc);
    }
    free(conninfo);

    if (!proxy_start(base, &config, &err) || !metrics_start(base, config.metrics_listen, &err)) {
        log_error("%s", err.message);
        pgbr_error_clear(&err);
        proxy_stop();
        pool_stop();
        return 1;
    }
    if (config.pidfile && !write_pidfile(config.pidfile)) {
        proxy_stop();
        pool_stop();
        return 1;
    }
    sig_term = evsignal_new(base, SIGTERM, on_terminate, NULL);
    sig_int = evsignal_new(base, SIGINT, on_terminate, NULL);
    sig_hup = evsignal_new(base, SIGHUP, on_reload, NULL);
    evsignal_add(sig_term, NULL);
    evsignal_add(sig_int, NULL);
    evsignal_add(sig_hup, NULL);
    log_info("pgbr started (upstream %s:%d, node %d, %d workers)", config.upstream_host, config.upstream_port,
             config.node_id, config.workers);

    if (event_base_dispatch(base) < 0)
        rc = 1;

    metrics_stop();
    proxy_stop();
    exec_node_stop();
    pool_stop();
    event_free(sig_term);
    event_free(sig_int);
    event_free(sig_hup);
    if (config.pidfile)
        unlink(config.pidfile);
    exec_configure(NULL);
    event_base_free(base);
    log_info("pgbr stopped");
    config_free(&config);
    return rc;
}
