/*
 * log.h - structured logging to stderr, safe from any thread.
 *
 * One line per event: "<time> pgbr[<pid>] <LEVEL> <message>". Callers must
 * never pass secrets (passwords, passphrases, URL keys) to these functions.
 */
#ifndef PGBR_LOG_H
#define PGBR_LOG_H

#include <stdbool.h>

typedef enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_FATAL
} log_level;

/* Parse "debug", "info", "warning", "error", "fatal" (case-insensitive). */
bool log_level_parse(const char *name, log_level *out);
void log_set_level(log_level level);
log_level log_get_level(void);
void log_write(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
