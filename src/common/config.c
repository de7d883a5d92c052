/*
 * config.c - command-line flags and the INI configuration file.
 *
 * The file format is pgbouncer.ini's: `[pgbr]` then `key = value` lines,
 * `;` or `#` comments, values optionally single- or double-quoted. Keys are
 * the long flag names with '-' replaced by '_'. Flags given on the command
 * line win over the file, also after a SIGHUP reload.
 */
#include "pgbr/config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgbr/log.h"

#ifndef PGBR_VERSION
#define PGBR_VERSION "0.1.0"
#endif

enum opt_type { OPT_STR, OPT_INT, OPT_DURATION };

typedef struct opt_def {
    const char *name;           /* long flag name */
    enum opt_type type;
    size_t offset;
    const char *help_arg;
    const char *help;
} opt_def;

#define OFF(f) offsetof(pgbr_config, f)

static const opt_def opt_defs[] = {
    { "config", OPT_STR, OFF(config_file), "FILE", "read settings from this INI file ([pgbr] section)" },
    { "listen", OPT_STR, OFF(listen), "HOST:PORT", "TCP address to accept clients on (default 127.0.0.1:6543)" },
    { "unix-socket-dir", OPT_STR, OFF(unix_socket_dir), "DIR", "also listen on DIR/.s.PGSQL.<port>" },
    { "upstream-host", OPT_STR, OFF(upstream_host), "HOST", "PostgreSQL host or socket directory (default 127.0.0.1)" },
    { "upstream-port", OPT_INT, OFF(upstream_port), "PORT", "PostgreSQL port (default 5432)" },
    { "job-dsn", OPT_STR, OFF(job_dsn), "CONNINFO", "libpq conninfo of pgbr's own job connections" },
    { "catalog-db", OPT_STR, OFF(catalog_db), "NAME", "database holding the pgbr schema (default postgres)" },
    { "admin-role", OPT_STR, OFF(admin_role), "NAME", "role whose members administer pgbr (default pgbr_admin)" },
    { "external-io-dir", OPT_STR, OFF(external_io_dir), "DIR", "root of nodelocal:// and file:// URLs" },
    { "node-id", OPT_INT, OFF(node_id), "N", "this node's id (default 1)" },
    { "locality", OPT_STR, OFF(locality), "K=V[,K=V...]", "this node's locality tiers" },
    { "workers", OPT_INT, OFF(workers), "N", "worker threads (default: number of CPUs)" },
    { "bundle-limit", OPT_INT, OFF(bundle_limit_kb), "KB",
      "tables up to this size share bundle files in a backup (default 1024; 0: a file per table)" },
    { "bundle-size", OPT_INT, OFF(bundle_size_kb), "KB", "size a bundle file grows to (default 32768)" },
    { "job-lease", OPT_INT, OFF(job_lease_s), "SECONDS",
      "a job whose node has not renewed its lease for this long is adopted by another node (default 30)" },
    { "metrics-listen", OPT_STR, OFF(metrics_listen), "HOST:PORT", "serve Prometheus /metrics here" },
    { "tls-cert", OPT_STR, OFF(tls_cert), "FILE", "certificate for TLS to clients (PEM)" },
    { "tls-key", OPT_STR, OFF(tls_key), "FILE", "private key for TLS to clients (PEM)" },
    { "log-level", OPT_STR, OFF(log_level), "LEVEL", "debug, info, warning, error (default info)" },
    { "pidfile", OPT_STR, OFF(pidfile), "FILE", "write the process id here" },
    { "job-retention", OPT_DURATION, OFF(job_retention_s), "DURATION",
      "delete finished jobs this long after they end (e.g. 14d, 12h, 30m, 45s; 0: keep; default 14d)" },
    /* file-only settings */
    { "max-client-conn", OPT_INT, OFF(max_client_conn), NULL, NULL },
};
#define NOPTS (sizeof opt_defs / sizeof opt_defs[0])

static char **str_field(pgbr_config *cfg, const opt_def *d)
{
    return (char **)((char *)cfg + d->offset);
}

static int *int_field(pgbr_config *cfg, const opt_def *d)
{
    return (int *)((char *)cfg + d->offset);
}

bool config_parse_duration(const char *text, int64_t *seconds)
{
    const int64_t max = 100LL * 366 * 24 * 3600;
    const char *p = text;
    int64_t n = 0, unit = 1;

    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        n = n * 10 + (*p - '0');
        if (n > max)
            return false;
    }
    switch (*p) {
    case 's': unit = 1; p++; break;
    case 'm': unit = 60; p++; break;
    case 'h': unit = 3600; p++; break;
    case 'd': unit = 24 * 3600; p++; break;
    default: break;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0' || n > max / unit)
        return false;
    *seconds = n * unit;
    return true;
}

static bool set_value(pgbr_config *cfg, const opt_def *d, const char *value, pgbr_error *err)
{
    if (d->type == OPT_STR) {
        char **f = str_field(cfg, d);
        free(*f);
        *f = strdup(value);
        return true;
    } else if (d->type == OPT_DURATION) {
        int64_t *f = (int64_t *)((char *)cfg + d->offset);
        if (!config_parse_duration(value, f)) {
            pgbr_error_set(err, "22023", "invalid value for \"%s\": \"%s\"", d->name, value);
            pgbr_error_hint(err, "Give a number of seconds, or a number followed by s, m, h or d, such as 14d.");
            return false;
        }
        return true;
    } else {
        char *end;
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < 0 || v > INT_MAX)
            return pgbr_error_set(err, "22023", "invalid value for \"%s\": \"%s\"", d->name, value);
        *int_field(cfg, d) = (int)v;
        return true;
    }
}

static void set_defaults(pgbr_config *cfg)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = strdup("127.0.0.1:6543");
    cfg->upstream_host = strdup("127.0.0.1");
    cfg->upstream_port = 5432;
    cfg->job_dsn = strdup("");
    cfg->catalog_db = strdup("postgres");
    cfg->admin_role = strdup("pgbr_admin");
    cfg->node_id = 1;
    cfg->workers = ncpu > 0 ? (int)ncpu : 2;
    cfg->bundle_limit_kb = 1024;
    cfg->bundle_size_kb = 32768;
    cfg->log_level = strdup("info");
    cfg->max_client_conn = 1000;
    cfg->job_lease_s = 30;
    cfg->job_retention_s = CONFIG_JOB_RETENTION_DEFAULT_S;
}

static const opt_def *find_def(const char *key)
{
    char norm[64];
    size_t i;
    for (i = 0; key[i] != '\0' && i + 1 < sizeof norm; i++)
        norm[i] = key[i] == '_' ? '-' : (char)tolower((unsigned char)key[i]);
    norm[i] = '\0';
    for (size_t k = 0; k < NOPTS; k++)
        if (strcmp(opt_defs[k].name, norm) == 0)
            return &opt_defs[k];
    return NULL;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static bool read_file(const char *path, pgbr_config *cfg, pgbr_error *err)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int lineno = 0;
    bool in_section = false;
    if (f == NULL)
        return pgbr_error_set(err, "58030", "could not open configuration file \"%s\": %s", path, strerror(errno));
    while (fgets(line, sizeof line, f) != NULL) {
        char *s = trim(line), *eq, *key, *val;
        const opt_def *d;
        lineno++;
        if (*s == '\0' || *s == ';' || *s == '#')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (close == NULL) {
                fclose(f);
                return pgbr_error_set(err, "22023", "syntax error in \"%s\" line %d", path, lineno);
            }
            *close = '\0';
            in_section = strcmp(trim(s + 1), "pgbr") == 0;
            continue;
        }
        if (!in_section)
            continue;
        eq = strchr(s, '=');
        if (eq == NULL) {
            fclose(f);
            return pgbr_error_set(err, "22023", "syntax error in \"%s\" line %d: expected key = value", path,
                                  lineno);
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        if ((val[0] == '\'' || val[0] == '"') && strlen(val) >= 2 && val[strlen(val) - 1] == val[0]) {
            val[strlen(val) - 1] = '\0';
            val++;
        }
        d = find_def(key);
        if (d == NULL || strcmp(d->name, "config") == 0) {
            fclose(f);
            return pgbr_error_set(err, "22023", "unknown setting \"%s\" in \"%s\" line %d", key, path, lineno);
        }
        if (!set_value(cfg, d, val, err)) {
            fclose(f);
            return false;
        }
    }
    fclose(f);
    return true;
}

static void usage(void)
{
    printf("pgbr - backup and restore for PostgreSQL, spoken as SQL through a wire-protocol proxy\n\n");
    printf("Usage: pgbr [OPTION]...\n\nOptions:\n");
    for (size_t k = 0; k < NOPTS; k++) {
        char left[64];
        if (opt_defs[k].help == NULL)
            continue;
        snprintf(left, sizeof left, "--%s %s", opt_defs[k].name, opt_defs[k].help_arg);
        printf("  %-34s %s\n", left, opt_defs[k].help);
    }
    printf("  %-34s %s\n", "--version", "print the version and exit");
    printf("  %-34s %s\n", "--help", "print this help and exit");
    printf("\nConfiguration file keys are the option names with underscores (e.g. upstream_port),\n"
           "plus max_client_conn (default 1000).\n");
}

/* Command-line values, kept so a reload can re-apply them over the file. */
typedef struct cli_override {
    const opt_def *def;
    char *value;
} cli_override;

static cli_override cli_overrides[NOPTS];
static int ncli_overrides;

static bool validate(pgbr_config *cfg, pgbr_error *err)
{
    log_level lvl;
    if (!log_level_parse(cfg->log_level, &lvl))
        return pgbr_error_set(err, "22023", "invalid log level \"%s\"", cfg->log_level);
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
        return pgbr_error_set(err, "22023", "--tls-cert and --tls-key must be given together");
    if (cfg->workers < 1)
        return pgbr_error_set(err, "22023", "--workers must be at least 1");
    if (cfg->job_lease_s < 2)
        return pgbr_error_set(err, "22023", "--job-lease must be at least 2 seconds");
    if (cfg->bundle_limit_kb < 0 || cfg->bundle_size_kb < 1)
        return pgbr_error_set(err, "22023", "--bundle-limit must be at least 0 and --bundle-size at least 1");
    if (cfg->upstream_port < 1 || cfg->upstream_port > 65535)
        return pgbr_error_set(err, "22023", "invalid upstream port %d", cfg->upstream_port);
    if (cfg->max_client_conn < 1)
        return pgbr_error_set(err, "22023", "max_client_conn must be at least 1");
    return true;
}

static bool apply_overrides(pgbr_config *cfg, pgbr_error *err)
{
    for (int i = 0; i < ncli_overrides; i++)
        if (!set_value(cfg, cli_overrides[i].def, cli_overrides[i].value, err))
            return false;
    return true;
}

config_parse_result config_load(int argc, char **argv, pgbr_config *cfg, pgbr_error *err)
{
    struct option longopts[NOPTS + 3];
    int n = 0, c;
    set_defaults(cfg);
    for (size_t k = 0; k < NOPTS; k++) {
        if (opt_defs[k].help == NULL)
            continue;
        longopts[n].name = opt_defs[k].name;
        longopts[n].has_arg = required_argument;
        longopts[n].flag = NULL;
        longopts[n].val = 1000 + (int)k;
        n++;
    }
    longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    longopts[n++] = (struct option){ "version", no_argument, NULL, 'V' };
    longopts[n] = (struct option){ NULL, 0, NULL, 0 };
    optind = 1;
    opterr = 0;
    for (int i = 0; i < ncli_overrides; i++)
        free(cli_overrides[i].value);
    ncli_overrides = 0;
    while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage();
            return CONFIG_EXIT_OK;
        }
        if (c == 'V') {
            printf("pgbr %s\n", PGBR_VERSION);
            return CONFIG_EXIT_OK;
        }
        if (c == ':') {
            pgbr_error_set(err, "22023", "option \"%s\" requires a value", argv[optind - 1]);
            return CONFIG_ERROR;
        }
        if (c < 1000) {
            pgbr_error_set(err, "22023", "unknown option \"%s\"", argv[optind - 1]);
            pgbr_error_hint(err, "Try \"pgbr --help\" for the list of options.");
            return CONFIG_ERROR;
        }
        {
            const opt_def *d = &opt_defs[c - 1000];
            if (!set_value(cfg, d, optarg, err))
                return CONFIG_ERROR;
            if (strcmp(d->name, "config") != 0 && ncli_overrides < (int)NOPTS) {
                cli_overrides[ncli_overrides].def = d;
                cli_overrides[ncli_overrides].value = strdup(optarg);
                ncli_overrides++;
            }
        }
    }
    if (optind < argc) {
        pgbr_error_set(err, "22023", "unexpected argument \"%s\"", argv[optind]);
        return CONFIG_ERROR;
    }
    if (cfg->config_file != NULL) {
        if (!read_file(cfg->config_file, cfg, err) || !apply_overrides(cfg, err))
            return CONFIG_ERROR;
    }
    return validate(cfg, err) ? CONFIG_OK : CONFIG_ERROR;
}

bool config_reload(const pgbr_config *old, pgbr_config *fresh, pgbr_error *err)
{
    set_defaults(fresh);
    if (old->config_file != NULL) {
        fresh->config_file = strdup(old->config_file);
        if (!read_file(fresh->config_file, fresh, err))
            return false;
    }
    if (!apply_overrides(fresh, err))
        return false;
    return validate(fresh, err);
}

/* Append "key='value'" with libpq conninfo quoting. */
static void append_kv(char **buf, size_t *len, size_t *cap, const char *key, const char *value)
{
    size_t need = strlen(key) + 2 * strlen(value) + 8;
    char *p;
    if (*len + need > *cap) {
        *cap = (*len + need) * 2;
        *buf = realloc(*buf, *cap);
    }
    p = *buf + *len;
    p += snprintf(p, *cap - *len, "%s%s='", *len ? " " : "", key);
    for (const char *v = value; *v; v++) {
        if (*v == '\'' || *v == '\\')
            *p++ = '\\';
        *p++ = *v;
    }
    *p++ = '\'';
    *p = '\0';
    *len = (size_t)(p - *buf);
}

char *config_catalog_conninfo(const pgbr_config *cfg)
{
    char port[16];
    size_t len = 0, cap = 256;
    char *buf = malloc(cap);
    buf[0] = '\0';
    snprintf(port, sizeof port, "%d", cfg->upstream_port);
    append_kv(&buf, &len, &cap, "host", cfg->upstream_host);
    append_kv(&buf, &len, &cap, "port", port);
    append_kv(&buf, &len, &cap, "application_name", "pgbr");
    append_kv(&buf, &len, &cap, "connect_timeout", "10");
    if (cfg->job_dsn != NULL && cfg->job_dsn[0] != '\0') {
        size_t need = strlen(cfg->job_dsn) + 2;
        if (len + need + 1 > cap) {
            cap = len + need + 64;
            buf = realloc(buf, cap);
        }
        len += (size_t)snprintf(buf + len, cap - len, " %s", cfg->job_dsn);
    }
    append_kv(&buf, &len, &cap, "dbname", cfg->catalog_db);
    return buf;
}

void config_free(pgbr_config *cfg)
{
    for (size_t k = 0; k < NOPTS; k++) {
        if (opt_defs[k].type == OPT_STR) {
            char **f = str_field(cfg, &opt_defs[k]);
            free(*f);
            *f = NULL;
        }
    }
}
