/*
 * config.h - pgbr's configuration: command-line flags and the INI file
 * (section [pgbr], keys = flag names with underscores). Flags override the
 * file; SIGHUP re-reads the file and keeps the flags' overrides.
 * Loop thread only (workers get copies of what they need).
 */
#ifndef PGBR_CONFIG_H
#define PGBR_CONFIG_H

#include <stdbool.h>

#include "pgbr/error.h"

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

#endif
