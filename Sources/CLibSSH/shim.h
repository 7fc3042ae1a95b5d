#ifndef SLIPWAY_CLIBSSH_SHIM_H
#define SLIPWAY_CLIBSSH_SHIM_H
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

/* glibc calls that Swift's Glibc module hides (they need _GNU_SOURCE), wrapped
   under names of our own so they can never clash with the Glibc module. */
#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* A pollable fd that becomes readable when the process exits (Linux 5.3+). */
static inline int slipway_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* accept(2) with the new fd close-on-exec, so no connection leaks into children. */
static inline int slipway_accept_cloexec(int fd) { return (int)syscall(SYS_accept4, fd, 0, 0, SOCK_CLOEXEC); }

/* A close-on-exec, non-blocking pipe. */
static inline int slipway_pipe_cloexec(int fds[2], int nonblocking) {
  return (int)syscall(SYS_pipe2, fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

/* Child inherits only fds 0-2. */
static inline int slipway_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) {
  return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
#endif
