/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * cgroup - find (or mount) cgroup v2, bpffs and tracefs, open cgroup directories,
 * attach cgroup programs all-or-nothing. Knows nothing of what the
 * programs do.
 */
#ifndef MESHLENS_CGROUP_H
#define MESHLENS_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * Whether the cgroup directory inner_fd is outer_fd's or one below it,
 * compared by inode (a symlink or a second mount of the hierarchy cannot
 * hide it). 1, 0, or -errno.
 */
int cgroup_within(int outer_fd, int inner_fd);

/* Mount bpffs at dir (e.g. /sys/fs/bpf) unless one is there. 0 or -errno. */
int cgroup_ensure_bpffs(const char *dir);

/*
 * Classic tracepoints attach through tracefs: mount it at
 * /sys/kernel/tracing unless it is there or under debugfs (where libbpf
 * looks first). What the host had mounted is never touched; a mount made
 * here stays, as bpffs does, for the next daemon. 0 or -errno.
 */
int cgroup_ensure_tracefs(void);

/*
 * Attach each of progs[0..n) to the cgroup fd with a bpf_link, storing the
 * links in links[0..n). All or nothing: on failure every link made here is
 * destroyed and -errno returned.
 */
int cgroup_attach(struct bpf_program *const *progs, int n, int cgroup_fd,
		  struct bpf_link **links);

/*
 * The same, with each link pinned at pin_dir/link-<cgroup id>-<name>, so
 * programs stay attached while no daemon runs. A link already pinned there
 * (left by the previous daemon) gets the new program swapped in
 * atomically (BPF_LINK_UPDATE): no moment without a program. All or
 * nothing: on failure, links pinned here are unpinned again.
 */
int cgroup_attach_pinned(struct bpf_program *const *progs, const char *const *names, int n,
			 int cgroup_fd, const char *pin_dir, struct bpf_link **links);

/* Where cgroup_attach_pinned() pins the link of program `name`. 0 or -errno. */
int cgroup_link_path(char *buf, size_t len, const char *pin_dir, int cgroup_fd, const char *name);

/*
 * Unpin (and so detach) every link pinned under pin_dir that is not one
 * of keep[0..n) (paths). Returns how many were removed.
 */
int cgroup_unpin_stale(const char *pin_dir, char *const *keep, int n);

/* ---- the observed cgroups --------------------------------------------- */

#define CGROUP_SET_MAX 64

struct cgroup_set {
	int fd[CGROUP_SET_MAX];
	const char *path[CGROUP_SET_MAX]; /* as given (not copied) */
	bool gone[CGROUP_SET_MAX];        /* removed since (cgroup_set_check) */
	int n;
};

/*
 * Open paths[0..n) under root. Programs on a cgroup run for the sockets
 * of every cgroup below it too, so one inside (or equal to) another is
 * refused: each socket would be recorded twice. 0, or -errno with err
 * naming the path (-EINVAL: nested or equal; what was opened is closed).
 */
int cgroup_set_open(struct cgroup_set *s, const char *root, const char *const *paths, int n,
		    char *err, size_t errlen);

/*
 * Look whether each cgroup is still there (one faccessat each). Returns
 * the cgroups found gone since the last check (bit i: path[i]), to be said
 * once; s->gone[] tells which are gone now.
 */
uint64_t cgroup_set_check(struct cgroup_set *s);

void cgroup_set_close(struct cgroup_set *s);

#endif /* MESHLENS_CGROUP_H */
