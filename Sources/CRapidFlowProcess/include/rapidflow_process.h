#ifndef RAPIDFLOW_PROCESS_H
#define RAPIDFLOW_PROCESS_H

#include <sys/types.h>

/// Starts `path` in a new session (so it leads its own process group), with standard input
/// from /dev/null and standard output and error both on `output_fd`, in `cwd` when not NULL,
/// with every signal disposition and the signal mask reset to defaults.
/// Returns 0 and sets *pid, or an errno value.
int rapidflow_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                    int output_fd, pid_t *pid);

/// As rapidflow_spawn, and the child joins the cgroup whose `cgroup.procs` is open as
/// `cgroup_procs_fd` before it runs anything, so no process it starts is ever outside it.
/// Forks (posix_spawn cannot join a cgroup); the child makes only async-signal-safe calls.
int rapidflow_spawn_in_cgroup(const char *path, char *const argv[], char *const envp[], const char *cwd, int output_fd,
                              int cgroup_procs_fd, pid_t *pid);

/// pipe2 with O_CLOEXEC on both ends, so no other child inherits them.
int rapidflow_pipe_cloexec(int fds[2]);

/// Marks this process not dumpable: processes of the same user (a step) can then no longer
/// read its memory or environment through /proc. Returns 0 or an errno value.
int rapidflow_set_undumpable(void);

#endif
