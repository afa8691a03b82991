#define _GNU_SOURCE
#include "rapidflow_process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int rapidflow_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
                    int output_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }

    if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, output_fd, 2);
    if (rc == 0 && cwd != NULL) rc = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    /* No descriptor of the service (its sockets, its other pipes) reaches the child. */
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);

    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &none);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);

    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int rapidflow_spawn_command(const char *path, char *const argv[], char *const envp[], int input_fd, int output_fd,
                            int error_fd, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    if (input_fd >= 0) rc = posix_spawn_file_actions_adddup2(&actions, input_fd, 0);
    else rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, error_fd, 2);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    /* Signals as a shell would start it: default dispositions (this process ignores SIGPIPE), none blocked. */
    posix_spawnattr_t attributes;
    if (rc == 0) rc = posix_spawnattr_init(&attributes);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    rc = posix_spawnattr_setsigdefault(&attributes, &all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &none);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int rapidflow_pipe_cloexec(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    /* A larger pipe lets a fast step write ahead while the service stores a chunk, and
       lets each read take more at once. Best effort: the default size still works. */
    (void)fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    return 0;
}

int rapidflow_set_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : errno;
}

/* The child's side of rapidflow_spawn_contained: async-signal-safe calls only, none that
   touches memory the service uses (it runs after vfork, on the service's memory, until exec).
   Reports a failure's errno on report_fd and exits. */
static void child_exec(const char *path, char *const argv[], char *const envp[], const char *cwd, int output_fd,
                       int cgroup_fd, const struct rapidflow_identity *identity, int report_fd) {
    int error = 0;
    /* Join the cgroup before anything else runs: every process the step starts is inside. */
    if (cgroup_fd >= 0) {
        char digits[24];
        int length = 0;
        for (pid_t value = getpid(); value > 0; value /= 10) digits[length++] = (char)('0' + value % 10);
        char text[24];
        for (int i = 0; i < length; i++) text[i] = digits[length - 1 - i];
        if (write(cgroup_fd, text, (size_t)length) != length) goto fail;
    }
    /* Then become the step's user, groups first (setuid drops the right to change them).
       Raw system calls: glibc's wrappers would change every thread of the service, whose
       memory this vfork child shares until it execs. */
    if (identity != NULL) {
        if (syscall(SYS_setgroups, (size_t)identity->group_count, identity->groups) != 0) goto fail;
        if (syscall(SYS_setgid, identity->gid) != 0) goto fail;
        if (syscall(SYS_setuid, identity->uid) != 0) goto fail;
    }

    struct sigaction action = {0};
    action.sa_handler = SIG_DFL;
    for (int number = 1; number < NSIG; number++) (void)sigaction(number, &action, NULL);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) goto fail;
    if (setsid() < 0) goto fail;
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0) goto fail;
    if (cwd != NULL && chdir(cwd) != 0) goto fail;
    /* No descriptor of the service reaches the child; report_fd closes itself on exec. */
    if (report_fd > 3) (void)close_range(3, (unsigned)report_fd - 1, 0);
    (void)close_range((unsigned)report_fd + 1, ~0U, 0);
    execve(path, argv, envp);
fail:
    error = errno;
    (void)write(report_fd, &error, sizeof error);
    _exit(127);
}

int rapidflow_spawn_contained(const char *path, char *const argv[], char *const envp[], const char *cwd, int output_fd,
                              int cgroup_procs_fd, const struct rapidflow_identity *identity, pid_t *pid) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    /* No signal handler of the service may run in the child between vfork and exec. vfork,
       not fork: the child borrows the service's memory until it execs instead of copying its
       page tables (with their copy-on-write faults after), which cost more than the exec. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_t child = vfork();
    if (child == 0) child_exec(path, argv, envp, cwd, output_fd, cgroup_procs_fd, identity, report[1]);
    int fork_error = child < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(report[1]);
    if (fork_error != 0) {
        close(report[0]);
        return fork_error;
    }
    int child_error = 0;
    ssize_t got;
    do {
        got = read(report[0], &child_error, sizeof child_error);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof child_error) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return child_error != 0 ? child_error : EIO;
    }
    *pid = child;
    return 0;
}

int rapidflow_pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
    /* pidfds are close-on-exec from the start. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int rapidflow_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int rapidflow_epoll_add(int epoll_fd, int fd) {
    struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : errno;
}

int rapidflow_epoll_wait_ready(int epoll_fd, int *ready, int capacity) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count;
    do {
        count = epoll_wait(epoll_fd, events, capacity, -1);
    } while (count == -1 && errno == EINTR);
    for (int i = 0; i < count; i++) ready[i] = events[i].data.fd;
    return count;
}

/* Whether the environment in `text` (NUL-separated, `length` bytes) has a variable that
   starts with `needle`. */
static int environ_has(const char *text, size_t length, const char *needle, size_t needle_length) {
    size_t start = 0;
    while (start < length) {
        const char *end = memchr(text + start, 0, length - start);
        size_t variable_length = end ? (size_t)(end - (text + start)) : length - start;
        if (variable_length >= needle_length && memcmp(text + start, needle, needle_length) == 0) return 1;
        start += variable_length + 1;
    }
    return 0;
}

int rapidflow_marked_processes(const char *needle, pid_t skip, pid_t *pids, int capacity) {
    size_t needle_length = strlen(needle);
    DIR *proc = opendir("/proc");
    if (proc == NULL) return 0;
    size_t size = 1 << 16;
    char *buffer = malloc(size);
    if (buffer == NULL) {
        closedir(proc);
        return 0;
    }
    int found = 0;
    struct dirent *entry;
    char path[64];
    while (found < capacity && (entry = readdir(proc)) != NULL) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
        pid_t pid = (pid_t)atoi(entry->d_name);
        if (pid == skip) continue;
        snprintf(path, sizeof path, "/proc/%s/environ", entry->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        size_t length = 0;
        for (;;) {
            if (length == size) {
                char *bigger = realloc(buffer, size * 2);
                if (bigger == NULL) break;
                buffer = bigger;
                size *= 2;
            }
            ssize_t got = read(fd, buffer + length, size - length);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            length += (size_t)got;
        }
        close(fd);
        if (environ_has(buffer, length, needle, needle_length)) pids[found++] = pid;
    }
    free(buffer);
    closedir(proc);
    return found;
}

long rapidflow_splice(int in, int out, unsigned long length) {
    for (;;) {
        ssize_t moved = splice(in, NULL, out, NULL, length, SPLICE_F_MOVE);
        if (moved >= 0 || errno != EINTR) return (long)moved;
    }
}

int rapidflow_start_writeback(int fd) {
    return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
}
