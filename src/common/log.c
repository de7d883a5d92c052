/*
 * log.c - line-oriented logging to stderr. Each line is formatted into one
 * buffer and written with a single write(2), so lines from different threads
 * never interleave.
 */
#include "pgbr/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LOG_LEVEL_INFO;

static const char *level_names[] = { "DEBUG", "INFO", "WARNING", "ERROR", "FATAL" };

bool log_level_parse(const char *name, log_level *out)
{
    for (int i = 0; i <= LOG_LEVEL_FATAL; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    if (strcasecmp(name, "warn") == 0) {
        *out = LOG_LEVEL_WARNING;
        return true;
    }
    return false;
}

void log_set_level(log_level level)
{
    atomic_store(&current_level, (int)level);
}

log_level log_get_level(void)
{
    return (log_level)atomic_load(&current_level);
}

void log_write(log_level level, const char *fmt, ...)
{
    char line[4096];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    if ((int)level < atomic_load(&current_level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
    r = snprintf(line + n, sizeof line - n, ".%03d UTC pgbr[%d] %s ", (int)(tv.tv_usec / 1000),
                 (int)getpid(), level_names[level]);
    if (r > 0)
        n += (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r < sizeof line - n - 1 ? (size_t)r : sizeof line - n - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report a failed log write */
    }
}
