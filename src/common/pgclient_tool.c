/*
 * pgclient_tool.c - PostgreSQL's client programs (pg_dump, pg_restore,
 * pg_dumpall) run as child processes (posix_spawn, no shell): where to find
 * the one matching the server, how to pass a password (PGPASSWORD, never the
 * command line), and how their output is streamed to a sink while stderr is
 * kept for the error message.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgbr/pgclient.h"

extern char **environ;

#define STDERR_KEEP PGCLIENT_STDERR_KEEP
#define INTERRUPT_CHECK_MS 250

static _Thread_local bool (*interrupt_fn)(void *arg);
static _Thread_local void *interrupt_arg;

void pgclient_set_interrupt(bool (*stop)(void *arg), void *arg)
{
    interrupt_fn = stop;
    interrupt_arg = arg;
}

bool pgclient_run(char *const argv[], const char *extra_env, filter_sink_fn sink, void *sink_arg,
                  int *status, char errbuf[STDERR_KEEP], pgbr_error *err)
{
    bool search = strchr(argv[0], '/') == NULL;
    int out[2] = { -1, -1 }, errp[2] = { -1, -1 };
    char **envp = NULL;
    bool ok = false;
    size_t errlen = 0;
    errbuf[0] = '\0';
    *status = -1;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        pgbr_error_set(err, "58030", "could not create a pipe: %s", strerror(errno));
        goto done;
    }
    size_t nenv = 0;
    while (environ && environ[nenv])
        nenv++;
    envp = calloc(nenv + 2, sizeof(char *));
    if (!envp) {
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++) {
        /* PGPASSWORD given explicitly wins over the inherited one */
        if (extra_env && strncmp(environ[i], "PGPASSWORD=", 11) == 0)
            continue;
        envp[k++] = environ[i];
    }
    if (extra_env)
        envp[k++] = (char *)extra_env;
    envp[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = search ? posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp)
                    : posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        pgbr_error_set(err, "58030", "could not run \"%s\": %s", argv[0], strerror(rc));
        goto done;
    }
    close(out[1]);
    close(errp[1]);
    out[1] = errp[1] = -1;

    bool sink_ok = true;
    char buf[65536];
    struct pollfd pfd[2] = { { out[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };
    int open_fds = 2;
    bool interrupted = false;
    while (open_fds > 0) {
        int pr = poll(pfd, 2, interrupt_fn ? INTERRUPT_CHECK_MS : -1);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (!interrupted && interrupt_fn && interrupt_fn(interrupt_arg)) {
            /* the job stops (pause, cancel): so does its child */
            interrupted = true;
            kill(pid, SIGTERM);
        }
        if (pr == 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                pfd[i].fd = -1;
                open_fds--;
                continue;
            }
            if (i == 0 && sink_ok && sink) {
                sink_ok = sink(sink_arg, buf, (size_t)n, err);
                if (!sink_ok)
                    kill(pid, SIGTERM); /* stop it; keep draining until it exits */
            } else if (i == 1 && errlen < STDERR_KEEP - 1) {
                size_t take = (size_t)n;
                if (take > STDERR_KEEP - 1 - errlen)
                    take = STDERR_KEEP - 1 - errlen;
                memcpy(errbuf + errlen, buf, take);
                errlen += take;
                errbuf[errlen] = '\0';
            }
        }
    }
    int wst;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    *status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + (WIFSIGNALED(wst) ? WTERMSIG(wst) : 0);
    ok = sink_ok;
    if (interrupted && ok) {
        pgbr_error_set(err, "57014", "\"%s\" was stopped: the job is canceled or paused", argv[0]);
        ok = false;
    }
done:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    free(envp);
    return ok;
}

/* A sink collecting at most 4 KiB (pg_config's output). */
typedef struct small_buf {
    char data[1024];
    size_t len;
} small_buf;

static bool small_sink(void *arg, const void *data, size_t len, pgbr_error *err)
{
    (void)err;
    small_buf *b = arg;
    size_t take = len < sizeof(b->data) - 1 - b->len ? len : sizeof(b->data) - 1 - b->len;
    memcpy(b->data + b->len, data, take);
    b->len += take;
    b->data[b->len] = '\0';
    return true;
}

char *pgclient_find_tool(const char *name, const char *override, int server_num)
{
    if (override && *override)
        return strdup(override);
    char path[1200];
    snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/%s", server_num / 10000, name);
    if (access(path, X_OK) == 0)
        return strdup(path);
    small_buf b = { .len = 0 };
    char errbuf[STDERR_KEEP];
    int status;
    pgbr_error e = PGBR_ERROR_INIT;
    char *argv[] = { "pg_config", "--bindir", NULL };
    if (pgclient_run(argv, NULL, small_sink, &b, &status, errbuf, &e) && status == 0) {
        b.data[strcspn(b.data, "\r\n")] = '\0';
        snprintf(path, sizeof(path), "%s/%s", b.data, name);
        if (b.data[0] && access(path, X_OK) == 0)
            return strdup(path);
    }
    pgbr_error_clear(&e);
    return strdup(name);
}


bool pgclient_run_tool(const char *program, const char *const *args, const char *conninfo,
                       const char *dbname, const char *what, filter_sink_fn sink, void *sink_arg,
                       pgbr_error *err)
{
    char *dsn = NULL, *password = NULL, *pwenv = NULL;
    char **argv = NULL;
    char errbuf[STDERR_KEEP];
    int status = -1;
    bool ok = false;
    size_t nargs = 0;

    if (!pgclient_conninfo_for_tool(conninfo, dbname, &dsn, &password, err))
        return false;
    while (args && args[nargs])
        nargs++;
    argv = calloc(nargs + 4, sizeof(char *));
    if (!argv || (password && asprintf(&pwenv, "PGPASSWORD=%s", password) < 0)) {
        pwenv = NULL;
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    argv[0] = (char *)program;
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = (char *)args[i];
    argv[nargs + 1] = "-d";
    argv[nargs + 2] = dsn;
    argv[nargs + 3] = NULL;
    if (!pgclient_run(argv, pwenv, sink, sink_arg, &status, errbuf, err))
        goto done;
    if (status != 0) {
        size_t n = strlen(errbuf);
        while (n > 0 && (errbuf[n - 1] == '\n' || errbuf[n - 1] == ' '))
            errbuf[--n] = '\0';
        pgbr_error_set(err, "XX000", "%s failed with exit status %d", what, status);
        if (*errbuf)
            pgbr_error_detail(err, "%s", errbuf);
        goto done;
    }
    ok = true;
done:
    if (pwenv)
        explicit_bzero(pwenv, strlen(pwenv));
    if (password)
        explicit_bzero(password, strlen(password));
    free(pwenv);
    free(password);
    free(dsn);
    free(argv);
    return ok;
}
