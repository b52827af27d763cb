/* spawn.c: running a tool (nix-instantiate, nix eval) with its output captured, for
 * the subcommands; never through a shell. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"

extern char **environ;

/*
 * Run argv (argv[0] looked up in PATH) with stdout captured into out (capped by
 * out->max) and stderr passed through.  A non-zero exit is ERR_PEER.
 */
int cli_run_capture(char *const *argv, Buf *out, Err *e)
{
    posix_spawn_file_actions_t fa;
    int fds[2] = {-1, -1}, rc = 0, status, fa_ok = 0;
    pid_t pid = -1;
    uint8_t chunk[65536];

    if (pipe2(fds, O_CLOEXEC) < 0) {
        rc = err_sys(e, ERR_IO, "pipe");
        goto out;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        rc = err_set(e, ERR_NOMEM, "posix_spawn_file_actions_init failed");
        goto out;
    }
    fa_ok = 1;
    /* dup2 clears FD_CLOEXEC on the copy; both pipe ends close at exec */
    if (posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO) != 0) {
        rc = err_set(e, ERR_NOMEM, "posix_spawn_file_actions_adddup2 failed");
        goto out;
    }
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (rc != 0) {
        errno = rc;
        pid = -1;
        rc = err_sys(e, ERR_IO, "cannot run %s", argv[0]);
        goto out;
    }
    close(fds[1]);
    fds[1] = -1;
    for (;;) {
        ssize_t n = read(fds[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_sys(e, ERR_IO, "reading the output of %s", argv[0]);
            goto out;
        }
        if (n == 0)
            break;
        if (buf_append(out, chunk, (size_t)n) < 0) {
            rc = err_set(e, buf_status(out), "the output of %s is over %zu bytes", argv[0],
                         out->max);
            goto out;
        }
    }
out:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (pid > 0) {
        pid_t w;
        if (rc < 0)
            kill(pid, SIGTERM);
        do
            w = waitpid(pid, &status, 0);
        while (w < 0 && errno == EINTR);
        if (rc == 0 && w < 0)
            rc = err_sys(e, ERR_IO, "waitpid");
        else if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0)
            rc =
                err_set(e, ERR_PEER, "%s failed with exit status %d", argv[0], WEXITSTATUS(status));
        else if (rc == 0 && WIFSIGNALED(status))
            rc = err_set(e, ERR_PEER, "%s was killed by signal %d", argv[0], WTERMSIG(status));
    }
    return rc;
}
