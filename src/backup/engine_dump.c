/*
 * engine_dump.c - the schema of a database, taken by pg_dump run as a child
 * process (posix_spawn, no shell) under the backup's exported snapshot. Its
 * stdout streams through sha256 + count into a storage file, so the dump is
 * never held in memory; its stderr is kept (first 4 KiB) for the error.
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

#include "engine_int.h"
#include "pgbr/filter.h"

extern char **environ;

#define STDERR_KEEP 4096

/* Run argv (argv[0] a path, or a name looked up in PATH when search), with
 * extra_env appended to the environment; stdout goes to sink. The exit
 * status is in *status, stderr's first bytes in errbuf. */
static bool run_child(char *const argv[], bool search, const char *extra_env, filter_sink_fn sink,
                      void *sink_arg, int *status, char errbuf[STDERR_KEEP], pgbr_error *err)
{
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
    while (open_fds > 0) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
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
            if (i == 0 && sink_ok) {
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

char *engine_find_pg_dump(const char *override, int server_num)
{
    if (override && *override)
        return strdup(override);
    char path[1200];
    snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/pg_dump", server_num / 10000);
    if (access(path, X_OK) == 0)
        return strdup(path);
    small_buf b = { .len = 0 };
    char errbuf[STDERR_KEEP];
    int status;
    pgbr_error e = PGBR_ERROR_INIT;
    char *argv[] = { "pg_config", "--bindir", NULL };
    if (run_child(argv, true, NULL, small_sink, &b, &status, errbuf, &e) && status == 0) {
        b.data[strcspn(b.data, "\r\n")] = '\0';
        snprintf(path, sizeof(path), "%s/pg_dump", b.data);
        if (b.data[0] && access(path, X_OK) == 0)
            return strdup(path);
    }
    pgbr_error_clear(&e);
    return strdup("pg_dump");
}

static bool storage_sink(void *w, const void *data, size_t len, pgbr_error *err)
{
    return storage_write_data(w, data, len, err);
}

bool engine_dump_schema(const char *pg_dump, const char *conninfo, const char *dbname,
                        const char *snapshot, storage *st, const char *path,
                        uint64_t *stored_bytes, char sha256[65], pgbr_error *err)
{
    char *dsn = NULL, *password = NULL, *pwenv = NULL;
    storage_write *w = NULL;
    filter_chain *chain = NULL;
    bool ok = false;
    char snaparg[128], errbuf[STDERR_KEEP];
    int status;

    if (!engine_conninfo_for_dump(conninfo, dbname, &dsn, &password, err))
        return false;
    if (password && asprintf(&pwenv, "PGPASSWORD=%s", password) < 0) {
        pwenv = NULL;
        pgbr_error_set(err, "53200", "out of memory");
        goto done;
    }
    snprintf(snaparg, sizeof(snaparg), "--snapshot=%s", snapshot);
    w = storage_write_open(st, path, err);
    if (!w)
        goto done;
    chain = filter_chain_new(storage_sink, w, err);
    if (!chain || !filter_chain_add(chain, filter_sha256_new(err), "sha256", err) ||
        !filter_chain_add(chain, filter_count_new(err), "count", err))
        goto done;
    char *argv[] = { (char *)pg_dump, "--schema-only", "--format=custom", snaparg, "--no-sync",
                     "--exclude-schema=pgbr", "-d", dsn, NULL };
    bool search = strchr(pg_dump, '/') == NULL;
    if (!run_child(argv, search, pwenv, filter_chain_sink, chain, &status, errbuf, err))
        goto done;
    if (status != 0) {
        /* the first lines of pg_dump's complaint */
        size_t n = strlen(errbuf);
        while (n > 0 && (errbuf[n - 1] == '\n' || errbuf[n - 1] == ' '))
            errbuf[--n] = '\0';
        pgbr_error_set(err, "XX000", "pg_dump of database \"%s\" failed with exit status %d",
                       dbname, status);
        if (*errbuf)
            pgbr_error_detail(err, "%s", errbuf);
        goto done;
    }
    if (!filter_chain_finish(chain, err))
        goto done;
    *stored_bytes = filter_count_bytes(filter_chain_get(chain, "count"));
    snprintf(sha256, 65, "%s", filter_sha256_hex(filter_chain_get(chain, "sha256")));
    if (*stored_bytes == 0) {
        pgbr_error_set(err, "XX000", "pg_dump of database \"%s\" wrote nothing", dbname);
        goto done;
    }
    ok = storage_write_commit(w, err);
    w = NULL;
done:
    filter_chain_free(chain);
    storage_write_abort(w);
    if (pwenv)
        explicit_bzero(pwenv, strlen(pwenv));
    if (password)
        explicit_bzero(password, strlen(password));
    free(pwenv);
    free(password);
    free(dsn);
    return ok;
}
