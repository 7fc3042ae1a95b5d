#ifndef SLIPWAY_CLIBSSH_SHIM_H
#define SLIPWAY_CLIBSSH_SHIM_H
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>
#endif
