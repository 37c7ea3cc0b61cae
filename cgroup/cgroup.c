// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/libbpf.h>

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Mount point of the first filesystem of type fstype, from mountinfo. */
static int find_mount(const char *fstype, char *buf, size_t len)
{
	char line[4096], mnt[4096], type[64];
	int err = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SRC SUPEROPTS" */
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s", type) != 1 || strcmp(type, fstype))
			continue;
		unescape_octal(mnt);
		if (strlen(mnt) >= len) {
			err = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, mnt);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

int cgroup_v2_root(char *buf, size_t len, const char *private_dir)
{
	int err = find_mount("cgroup2", buf, len);

	if (err != -ENOENT)
		return err;
	if (mkdir(private_dir, 0700) && errno != EEXIST)
		return -errno;
	if (mount("none", private_dir, "cgroup2", 0, NULL))
		return -errno;
	if (strlen(private_dir) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, private_dir);
	return 0;
}

int cgroup_open(const char *root, const char *path)
{
	char full[4096];
	struct statfs sfs;
	int fd;

	if (path[0] != '/') {
		if (snprintf(full, sizeof(full), "%s/%s", root, path) >= (int)sizeof(full))
			return -ENAMETOOLONG;
		path = full;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatfs(fd, &sfs)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (sfs.f_type != CGROUP2_SUPER_MAGIC) {
		close(fd);
		return -EMEDIUMTYPE;
	}
	return fd;
}

int cgroup_within(int outer_fd, int inner_fd)
{
	struct stat outer, cur, up;
	int fd = inner_fd, next, ret;

	if (fstat(outer_fd, &outer) || fstat(inner_fd, &cur))
		return -errno;
	/* up through ".." until the mount's root, whose ".." is another
	 * filesystem's directory (or itself at "/") */
	for (;;) {
		if (cur.st_dev == outer.st_dev && cur.st_ino == outer.st_ino) {
			ret = 1;
			break;
		}
		next = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ret = next < 0 || fstat(next, &up) ? -errno : 0;
		if (fd != inner_fd)
			close(fd);
		fd = next;
		if (ret || up.st_dev != cur.st_dev || up.st_ino == cur.st_ino)
			break;
		cur = up;
	}
	if (fd >= 0 && fd != inner_fd)
		close(fd);
	return ret;
}

int cgroup_ensure_bpffs(const char *dir)
{
	struct statfs sfs;

	if (!statfs(dir, &sfs) && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	if (mount("bpffs", dir, "bpf", 0, "mode=0700"))
		return -errno;
	return 0;
}

int cgroup_ensure_tracefs(void)
{
	struct statfs sfs;

	if (!access("/sys/kernel/debug/tracing/events", F_OK) ||
	    (!statfs("/sys/kernel/tracing", &sfs) && sfs.f_type == TRACEFS_MAGIC))
		return 0;
	if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "mode=0700"))
		return -errno;
	return 0;
}

int cgroup_attach(struct bpf_program *const *progs, int n, int cgroup_fd,
		  struct bpf_link **links)
{
	int i, err;

	for (i = 0; i < n; i++) {
		links[i] = bpf_program__attach_cgroup(progs[i], cgroup_fd);
		if (!links[i]) {
			err = -errno;
			while (i--) {
				bpf_link__destroy(links[i]);
				links[i] = NULL;
			}
			return err;
		}
	}
	return 0;
}

int cgroup_link_path(char *buf, size_t len, const char *pin_dir, int cgroup_fd, const char *name)
{
	struct stat st;

	if (fstat(cgroup_fd, &st)) /* a cgroup's id is its directory's inode */
		return -errno;
	if (snprintf(buf, len, "%s/link-%llu-%s", pin_dir, (unsigned long long)st.st_ino, name) >=
	    (int)len)
		return -ENAMETOOLONG;
	return 0;
}

int cgroup_attach_pinned(struct bpf_program *const *progs, const char *const *names, int n,
			 int cgroup_fd, const char *pin_dir, struct bpf_link **links)
{
	bool made[n];
	char path[4096];
	int i, err;

	for (i = 0; i < n; i++) {
		made[i] = false;
		err = cgroup_link_path(path, sizeof(path), pin_dir, cgroup_fd, names[i]);
		if (err)
			goto fail;
		/* a link the previous daemon left, if any */
		links[i] = access(path, F_OK) ? NULL : bpf_link__open(path);
		if (links[i] && !bpf_link__update_program(links[i], progs[i]))
			continue;
		if (links[i]) { /* not a link we can update: replace it */
			bpf_link__unpin(links[i]);
			bpf_link__destroy(links[i]);
		}
		links[i] = bpf_program__attach_cgroup(progs[i], cgroup_fd);
		if (!links[i]) {
			err = -errno;
			goto fail;
		}
		err = bpf_link__pin(links[i], path);
		if (err) {
			bpf_link__destroy(links[i]);
			goto fail;
		}
		made[i] = true;
	}
	return 0;
fail:
	while (i--) {
		if (made[i])
			bpf_link__unpin(links[i]);
		bpf_link__destroy(links[i]);
		links[i] = NULL;
	}
	return err;
}

int cgroup_unpin_stale(const char *pin_dir, char *const *keep, int n)
{
	DIR *dir = opendir(pin_dir);
	struct dirent *de;
	char path[4096];
	int removed = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		bool wanted = false;

		if (strncmp(de->d_name, "link-", 5))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		for (int i = 0; i < n && !wanted; i++)
			wanted = !strcmp(keep[i], path);
		if (!wanted && !unlink(path))
			removed++;
	}
	closedir(dir);
	return removed;
}

/* ---- the observed cgroups --------------------------------------------- */

int cgroup_set_open(struct cgroup_set *s, const char *root, const char *const *paths, int n,
		    char *err, size_t errlen)
{
	int i, j, fd;

	s->n = 0;
	if (n > CGROUP_SET_MAX) {
		snprintf(err, errlen, "more than %d cgroups", CGROUP_SET_MAX);
		return -E2BIG;
	}
	for (i = 0; i < n; i++) {
		fd = cgroup_open(root, paths[i]);
		if (fd == -EMEDIUMTYPE)
			snprintf(err, errlen,
				 "--cgroup '%s': not a cgroup v2 directory (cgroup v2 is mounted at %s)",
				 paths[i], root);
		else if (fd < 0)
			snprintf(err, errlen, "--cgroup '%s': %s", paths[i], strerror(-fd));
		if (fd < 0) {
			cgroup_set_close(s);
			return fd;
		}
		s->fd[s->n] = fd;
		s->gone[s->n] = false;
		s->path[s->n++] = paths[i];
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			if (i == j || cgroup_within(s->fd[i], s->fd[j]) != 1)
				continue;
			if (cgroup_within(s->fd[j], s->fd[i]) == 1)
				snprintf(err, errlen, "--cgroup '%s' and --cgroup '%s' are the same cgroup",
					 paths[i], paths[j]);
			else
				snprintf(err, errlen,
					 "--cgroup '%s' is inside --cgroup '%s', which already sees its "
					 "sockets: give only '%s'",
					 paths[j], paths[i], paths[i]);
			cgroup_set_close(s);
			return -EINVAL;
		}
	return 0;
}

uint64_t cgroup_set_check(struct cgroup_set *s)
{
	uint64_t newly = 0;

	for (int i = 0; i < s->n; i++) {
		bool gone = faccessat(s->fd[i], "cgroup.procs", F_OK, 0) && errno == ENOENT;

		if (gone && !s->gone[i])
			newly |= 1ULL << i;
		s->gone[i] = gone;
	}
	return newly;
}

void cgroup_set_close(struct cgroup_set *s)
{
	for (int i = 0; i < s->n; i++)
		close(s->fd[i]);
	s->n = 0;
}
