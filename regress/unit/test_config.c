/*
 * test_config.c - unit tests for the configuration (src/common/config.c):
 * durations (--job-retention), and that the option is read from the command
 * line and from the INI file, with the command line winning, also after a
 * reload. Needs no database.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgbr/config.h"
#include "tap.h"

static void test_durations(void)
{
    static const struct {
        const char *text;
        int64_t seconds;
    } good[] = {
        { "0", 0 },           { "45", 45 },         { "45s", 45 },          { "30m", 1800 },
        { "12h", 43200 },     { "14d", 1209600 },   { " 7d ", 604800 },     { "0d", 0 },
        { "36500d", 36500LL * 86400 },
    };
    static const char *const bad[] = { "", " ", "d", "-1", "-1d", "1.5h", "1w", "1 d x", "14dd", "1h30m",
                                       "99999999999999999999", "40000d", "abc" };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t v = -1;
        tap_ok(config_parse_duration(good[i].text, &v) && v == good[i].seconds, "duration \"%s\" = %lld s",
               good[i].text, (long long)good[i].seconds);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 12345;
        tap_ok(!config_parse_duration(bad[i], &v) && v == 12345, "duration \"%s\" is refused, value untouched",
               bad[i]);
    }
}

static config_parse_result load(pgbr_config *cfg, pgbr_error *err, int argc, ...)
{
    char *argv[16];
    va_list ap;

    argv[0] = "pgbr";
    va_start(ap, argc);
    for (int i = 1; i < argc && i < 15; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    pgbr_error_clear(err);
    return config_load(argc, argv, cfg, err);
}

static void test_job_retention_option(void)
{
    pgbr_config cfg, fresh;
    pgbr_error err = PGBR_ERROR_INIT;
    char path[] = "/tmp/pgbr_test_config_XXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    tap_ok(load(&cfg, &err, 1) == CONFIG_OK && cfg.job_retention_s == CONFIG_JOB_RETENTION_DEFAULT_S &&
               cfg.job_retention_s == 14 * 86400,
           "default job retention: 14 days");
    config_free(&cfg);
    tap_ok(load(&cfg, &err, 3, "--job-retention", "12h") == CONFIG_OK && cfg.job_retention_s == 43200,
           "--job-retention 12h");
    config_free(&cfg);
    tap_ok(load(&cfg, &err, 3, "--job-retention", "0") == CONFIG_OK && cfg.job_retention_s == 0,
           "--job-retention 0: keep forever");
    config_free(&cfg);
    tap_ok(load(&cfg, &err, 3, "--job-retention", "2 weeks") == CONFIG_ERROR && strcmp(err.sqlstate, "22023") == 0 &&
               strcmp(err.message, "invalid value for \"job-retention\": \"2 weeks\"") == 0 && err.hint != NULL,
           "--job-retention \"2 weeks\": 22023 with a hint");
    config_free(&cfg);

    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        tap_ok(0, "temporary config file");
        return;
    }
    fputs("[pgbr]\njob_retention = '30m'\n", f);
    fclose(f);
    tap_ok(load(&cfg, &err, 3, "--config", path) == CONFIG_OK && cfg.job_retention_s == 1800,
           "job_retention = '30m' in the config file");
    config_free(&cfg);
    tap_ok(load(&cfg, &err, 5, "--config", path, "--job-retention", "45s") == CONFIG_OK &&
               cfg.job_retention_s == 45,
           "the command line wins over the file");
    tap_ok(config_reload(&cfg, &fresh, &err) && fresh.job_retention_s == 45, "and still after a reload");
    config_free(&fresh);
    config_free(&cfg);

    f = fopen(path, "w");
    fputs("[pgbr]\njob_retention = soon\n", f);
    fclose(f);
    tap_ok(load(&cfg, &err, 3, "--config", path) == CONFIG_ERROR &&
               strcmp(err.message, "invalid value for \"job-retention\": \"soon\"") == 0,
           "a bad job_retention in the file is an error");
    config_free(&cfg);
    unlink(path);
    pgbr_error_clear(&err);
}

int main(void)
{
    test_durations();
    test_job_retention_option();
    return tap_done();
}
