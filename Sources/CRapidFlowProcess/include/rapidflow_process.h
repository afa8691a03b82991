#ifndef RAPIDFLOW_PROCESS_H
#define RAPIDFLOW_PROCESS_H

#include <sys/types.h>

/// Starts `path` in a new session (so it leads its own process group), with standard input
/// from /dev/null and standard output and error both on `output_fd`, in `cwd` when not NULL,
/// with every signal disposition and the signal mask reset to defaults.
/// Returns 0 and sets *pid, or an errno value.
int rapidflow_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                    int output_fd, pid_t *pid);

/// Starts `path` with standard input from `input_fd` (/dev/null when -1), standard output on
/// `output_fd` and standard error on `error_fd`, and no other descriptor of this process; the
/// child stays in this process's session. Returns 0 and sets *pid, or an errno value.
int rapidflow_spawn_command(const char *path, char *const argv[], char *const envp[], int input_fd, int output_fd,
                            int error_fd, pid_t *pid);

/// A user to run a child as: its uid, gid and supplementary groups.
struct rapidflow_identity {
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
};

/// As rapidflow_spawn, and before it runs anything the child joins the cgroup whose
/// `cgroup.procs` is open as `cgroup_procs_fd` (unless -1), so no process it starts is ever
/// outside it, and becomes `identity` (unless NULL). Forks (posix_spawn can do neither); the
/// child makes only async-signal-safe calls.
int rapidflow_spawn_contained(const char *path, char *const argv[], char *const envp[], const char *cwd, int output_fd,
                              int cgroup_procs_fd, const struct rapidflow_identity *identity, pid_t *pid);

/// pipe2 with O_CLOEXEC on both ends, so no other child inherits them.
int rapidflow_pipe_cloexec(int fds[2]);

/// Writes to `pids` (at most `capacity`) the processes other than `skip` whose environment
/// has a variable starting with `needle` (e.g. "MARKER=prefix"); returns how many. A process
/// whose environment cannot be read (gone, another user's) is not among them.
int rapidflow_marked_processes(const char *needle, pid_t skip, pid_t *pids, int capacity);

/// Marks this process not dumpable: processes of the same user (a step) can then no longer
/// read its memory or environment through /proc. Returns 0 or an errno value.
int rapidflow_set_undumpable(void);

/// A descriptor that refers to process `pid` (pidfd_open(2), close-on-exec): it becomes
/// readable when the process exits. Returns it, or -1 with errno set (ENOSYS before Linux 5.3).
int rapidflow_pidfd_open(pid_t pid);

/// A new epoll set, close-on-exec. Returns its descriptor, or -1 with errno set.
int rapidflow_epoll_create(void);

/// Adds `fd` to the epoll set `epoll_fd`, reporting readability, with `fd` itself as the
/// event's data. Returns 0 or an errno value.
int rapidflow_epoll_add(int epoll_fd, int fd);

/// Waits until descriptors of the epoll set are readable and writes up to `capacity` of them to
/// `ready`. Returns how many, or -1 with errno set (EINTR is retried here).
int rapidflow_epoll_wait_ready(int epoll_fd, int *ready, int capacity);

/// Moves up to `length` bytes from the pipe `in` to the pipe `out` inside the kernel
/// (splice(2)), without copying them through this process. Returns the bytes moved (0 at the
/// end of `in`), or -1 with errno set (EINTR is retried here).
long rapidflow_splice(int in, int out, unsigned long length);

/// Starts writing `fd`'s dirty pages to its disk without waiting (sync_file_range(2)), so a
/// later fsync has little left to do. Returns 0 or an errno value.
int rapidflow_start_writeback(int fd);

#endif
