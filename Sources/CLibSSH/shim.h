#ifndef SLIPWAY_CLIBSSH_SHIM_H
#define SLIPWAY_CLIBSSH_SHIM_H
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

/* glibc calls that Swift's Glibc module hides (they need _GNU_SOURCE), wrapped
   under names of our own so they can never clash with the Glibc module. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* A pollable fd that becomes readable when the process exits (Linux 5.3+). */
static inline int slipway_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* accept(2) with the new fd close-on-exec, so no connection leaks into children. */
static inline int slipway_accept_cloexec(int fd) { return (int)syscall(SYS_accept4, fd, 0, 0, SOCK_CLOEXEC); }

/* A close-on-exec, non-blocking pipe. */
static inline int slipway_pipe_cloexec(int fds[2], int nonblocking) {
  return (int)syscall(SYS_pipe2, fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0));
}

/* What libssh 0.10 does not show its callbacks, counted from its own packet log.
   libssh drops a SSH_MSG_USERAUTH_REQUEST whose signature does not verify (or whose
   key or signature algorithm it refuses) without any reply and without calling the
   auth callback, and it hands an exec callback the command as a C string (the
   packet's length, and so any NUL in it, is lost). Its log lines "packet: read type
   T [...,payload=N]" and "packet: wrote [type=T, ...]" carry both. The log level,
   callback and userdata are thread-local in libssh, so a connection thread can
   install this for its own session alone. */
typedef struct {
  unsigned long auth_requests;   /* SSH_MSG_USERAUTH_REQUEST (50) received */
  unsigned long auth_replies;    /* USERAUTH_FAILURE (51), _SUCCESS (52) and _PK_OK (60) sent */
  unsigned long pk_ok_replies;
  unsigned long success_replies;
  int last_type;                 /* the packet libssh is handling now */
  unsigned long last_payload;    /* its length, message type byte included */
} slipway_packet_ledger;

static inline void slipway_packet_ledger_log(int priority, const char *function, const char *buffer, void *userdata) {
  (void)priority;
  slipway_packet_ledger *ledger = (slipway_packet_ledger *)userdata;
  if (ledger == NULL || function == NULL || buffer == NULL) return;
  /* Only libssh's own two functions: other lines carry client-chosen text (user names). */
  int reading = strcmp(function, "ssh_packet_socket_callback") == 0;
  if (!reading && strcmp(function, "packet_send2") != 0) return;
  size_t length = strlen(function);
  if (strncmp(buffer, function, length) != 0) return;
  const char *line = buffer + length;
  int type = 0;
  unsigned long payload = 0;
  if (reading) {
    if (sscanf(line, ": packet: read type %d [len=%*u,padding=%*d,comp=%*u,payload=%lu]", &type, &payload) != 2) return;
    ledger->last_type = type;
    ledger->last_payload = payload;
    if (type == 50) ledger->auth_requests++;
  } else {
    if (sscanf(line, ": packet: wrote [type=%d,", &type) != 1) return;
    if (type == 51 || type == 52 || type == 60) ledger->auth_replies++;
    if (type == 52) ledger->success_replies++;
    if (type == 60) ledger->pk_ok_replies++;
  }
}

/* Sends SSH_MSG_USERAUTH_FAILURE for a request libssh dropped. The only public way
   is ssh_message_reply_default, which for an auth message reads just the first two
   fields of libssh's struct ssh_message_struct (session, type; the same from 0.9 to
   0.12) and answers with the allowed methods. This stand-in has exactly those, and
   zeros after them. Callers check the libssh version first. */
static inline int slipway_reply_auth_failure(ssh_session session) {
  struct { ssh_session session; int type; char zeros[4096]; } stand_in;
  memset(&stand_in, 0, sizeof stand_in);
  stand_in.session = session;
  stand_in.type = SSH_REQUEST_AUTH;
  return ssh_message_reply_default((ssh_message)(void *)&stand_in);
}
#endif
