/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cgroup - find (or mount) cgroup v2 and bpffs, open cgroup directories,
 * attach cgroup programs all-or-nothing. Knows nothing of what the
 * programs do.
 */
#ifndef MESHLENS_CGROUP_H
#define MESHLENS_CGROUP_H

#include <stddef.h>

struct bpf_program;
struct bpf_link;

/*
 * The cgroup v2 mount point from /proc/self/mountinfo into buf; when none
 * is mounted, mount a private one at private_dir (as Kmesh does).
 * Returns 0 or -errno.
 */
int cgroup_v2_root(char *buf, size_t len, const char *private_dir);

/*
 * Open a cgroup v2 directory (O_DIRECTORY). A relative path is taken
 * relative to root. Returns an fd, or -ENOENT, -ENOTDIR, -EMEDIUMTYPE
 * (exists but is not on cgroup v2), or another -errno.
 */
int cgroup_open(const char *root, const char *path);

/* Mount bpffs at dir (e.g. /sys/fs/bpf) unless one is there. 0 or -errno. */
int cgroup_ensure_bpffs(const char *dir);

/*
 * Attach each of progs[0..n) to the cgroup fd with a bpf_link, storing the
 * links in links[0..n). All or nothing: on failure every link made here is
 * destroyed and -errno returned.
 */
int cgroup_attach(struct bpf_program *const *progs, int n, int cgroup_fd,
		  struct bpf_link **links);

#endif /* MESHLENS_CGROUP_H */
