/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * privs - after attaching: no capability left (CAP_BPF alone where the
 * kernel needs it for map reads, ml_bpf_needs_cap_bpf), no new privileges,
 * and --user's uid and gid if given. Nothing else the loop does (map and
 * iterator fds, the bound metrics socket, netlink dumps, /proc, the open
 * log file) needs a capability; loading and attaching again is for the
 * next daemon, started as root.
 */
#ifndef MESHLENS_PRIVS_H
#define MESHLENS_PRIVS_H

#include <stdbool.h>
#include <stddef.h>

/* 0, or -errno with err (-ENOENT: no such user). */
int ml_drop_privileges(const char *user, bool keep_bpf, char *err, size_t errlen);

#endif /* MESHLENS_PRIVS_H */
