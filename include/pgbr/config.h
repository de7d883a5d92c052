/*
 * config.h - pgbr's configuration: command-line flags and the INI file
 * (section [pgbr], keys = flag names with underscores). Flags override the
 * file; SIGHUP re-reads the file and keeps the flags' overrides.
 * Loop thread only (workers get copies of what they need).
 */
#ifndef PGBR_CONFIG_H
#define PGBR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "pgbr/error.h"

/* Default of --job-retention: 14 days, CockroachDB's jobs.retention_time. */
#define CONFIG_JOB_RETENTION_DEFAULT_S (14 * 24 * 3600LL)

typedef struct pgbr_config {
    char *config_file;
    char *listen;              /* HOST:PORT (IPv6 as [::1]:PORT) */
    char *unix_socket_dir;
    char *upstream_host;       /* host name/address, or a directory for a Unix socket */
    int upstream_port;
    char *job_dsn;
    char *catalog_db;
    char *admin_role;
    char *external_io_dir;
    int node_id;
    char *locality;
    int workers;
    int bundle_limit_kb;       /* tables up to this size are bundled in a backup; 0: never */
    int bundle_size_kb;        /* a bundle file's target size */
    char *metrics_listen;
    char *tls_cert;
    char *tls_key;
    char *log_level;
    char *pidfile;
    int max_client_conn;
    int job_lease_s;           /* --job-lease: seconds a job's lease lasts */
    /* --job-retention: terminal jobs are deleted this many seconds after
     * they finished (catalog_delete_expired_jobs); 0 keeps them forever.
     * Default CONFIG_JOB_RETENTION_DEFAULT_S. */
    int64_t job_retention_s;
} pgbr_config;

typedef enum config_parse_result {
    CONFIG_OK = 0,
    CONFIG_EXIT_OK,            /* --help / --version printed */
    CONFIG_ERROR
} config_parse_result;

/* Parse argv and the config file it names. On CONFIG_ERROR, err explains. */
config_parse_result config_load(int argc, char **argv, pgbr_config *cfg, pgbr_error *err);
/* Re-read the config file (if any), re-applying the command-line overrides. */
bool config_reload(const pgbr_config *old, pgbr_config *fresh, pgbr_error *err);
/* The libpq conninfo for catalog connections: upstream host/port, then
 * job_dsn, then dbname=catalog_db (later keywords win in libpq). malloc'd. */
char *config_catalog_conninfo(const pgbr_config *cfg);
void config_free(pgbr_config *cfg);

/*
 * A duration as the options take it: a whole number of seconds, or a whole
 * number followed by one unit, s, m, h or d ("45s", "30m", "12h", "14d").
 * Spaces around it are allowed. False for anything else, a negative number,
 * or more than 100 years.
 */
bool config_parse_duration(const char *text, int64_t *seconds);

#endif
