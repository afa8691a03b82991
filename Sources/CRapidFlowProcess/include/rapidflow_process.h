#ifndef RAPIDFLOW_PROCESS_H
#define RAPIDFLOW_PROCESS_H

#include <sys/types.h>

/// Starts `path` in a new session (so it leads its own process group), with standard input
/// from /dev/null and standard output and error both on `output_fd`, in `cwd` when not NULL,
/// with every signal disposition and the signal mask reset to defaults.
/// Returns 0 and sets *pid, or an errno value.
int rapidflow_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                    int output_fd, pid_t *pid);

/// pipe2 with O_CLOEXEC on both ends, so no other child inherits them.
int rapidflow_pipe_cloexec(int fds[2]);

#endif
