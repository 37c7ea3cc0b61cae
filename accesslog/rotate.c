// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * accesslog/rotate - size-based rotation of a file sink, with gzip
 * (accesslog_set_rotation() in sink.h; the sink calls in through
 * sink_internal.h, between batches).
 *
 * Rotated files are path.1 (newest) up to path.<max_files> (oldest); each
 * becomes path.N.gz once compressed. A file that could not be compressed
 * keeps its plain name and shifts like the others, so a failure never
 * costs a line.
 *
 * Compression is incremental rather than done in one go at rotation time:
 * the daemon commits ringbuf records only after their lines are written
 * (daemon/main.c, drain()), so compressing a whole file of hundreds of MiB
 * inside one flush would stall the loop for seconds and let the ringbuf
 * fill. Instead every flush deflates a slice of path.1: at least
 * GZ_MIN_STEP bytes, and twice what it just wrote, so compression keeps
 * ahead of the log and is done long before the next rotation (which
 * finishes whatever is left first, as path.1 is about to move).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/util.h"
#include "accesslog.h"
#include "sink_internal.h"

#define GZ_CHUNK (64 * 1024)		/* read/deflate buffer size */
#define GZ_MIN_STEP (128 * 1024)	/* input compressed per flush, at least */
#define GZ_CLOSE_MAX (64ULL << 20)	/* close finishes a compression this close to done */
#define GZ_TMP ".gz.tmp"
#define ROTATE_RETRY_NS NSEC_PER_SEC	/* after a failed rotation */

/* "path.N" + suffix; accesslog_set_rotation() checked that it fits. */
static void slot_name(const struct accesslog_sink *s, char *buf, unsigned int n, const char *suffix)
{
	snprintf(buf, PATH_MAX, "%s.%u%s", s->path, n, suffix);
}

static int write_all(int fd, const void *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p = (const char *)p + w;
		n -= w;
	}
	return 0;
}

/* So that a rename survives a crash before the file it replaces is removed. */
static void fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		memcpy(dir, path, slash - path);
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Stop compressing: path.1 stays as it is, the partial .gz goes. */
static void gz_abort(struct accesslog_sink *s)
{
	struct accesslog_gz *g = &s->gz;
	char tmp[PATH_MAX];

	if (g->zinit)
		deflateEnd(&g->zs);
	g->zinit = false;
	if (g->dst >= 0)
		close(g->dst);
	if (g->src >= 0) {
		slot_name(s, tmp, 1, GZ_TMP);
		unlink(tmp);
		close(g->src);
	}
	g->src = g->dst = -1;
}

/* Counted, and said once per streak of failures; the plain file is kept. */
static void gz_fail(struct accesslog_sink *s, const char *what, int err)
{
	char name[PATH_MAX];

	slot_name(s, name, 1, "");
	s->rotation_errors++;
	if (!s->gz_failing)
		fprintf(stderr, "meshlens: access log: compressing %s: %s: %s (kept uncompressed)\n",
			name, what, strerror(err));
	s->gz_failing = true;
	gz_abort(s);
}

/* Begin compressing path.1 into path.1.gz.tmp, if there is a path.1. */
static void gz_start(struct accesslog_sink *s)
{
	struct accesslog_gz *g = &s->gz;
	char name[PATH_MAX];
	struct stat st;

	slot_name(s, name, 1, "");
	g->src = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (g->src < 0) {
		if (errno != ENOENT)
			gz_fail(s, "open", errno);
		return;
	}
	if (fstat(g->src, &st) || !S_ISREG(st.st_mode)) {
		close(g->src);
		g->src = -1;
		return;
	}
	slot_name(s, name, 1, GZ_TMP);
	g->dst = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (g->dst < 0) {
		gz_fail(s, "create", errno);
		return;
	}
	/* the same permissions as the log it holds (0640 unless changed) */
	if (fchmod(g->dst, st.st_mode & 07777)) {
		gz_fail(s, "chmod", errno);
		return;
	}
	memset(&g->zs, 0, sizeof(g->zs));
	/* windowBits 15 + 16: a gzip header and trailer around the deflate data */
	if (deflateInit2(&g->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		gz_fail(s, "deflateInit2", ENOMEM);
		return;
	}
	g->zinit = true;
	g->left = st.st_size;
	g->eof = false;
}

/*
 * path.1.gz.tmp is complete: make it durable, name it path.1.gz, and only
 * then remove path.1 -- after checking path.1 is still the file compressed
 * (someone else may have moved it meanwhile; then the copy goes instead).
 */
static void gz_finish(struct accesslog_sink *s)
{
	struct accesslog_gz *g = &s->gz;
	char plain[PATH_MAX], tmp[PATH_MAX], gz[PATH_MAX];
	const char *what;
	struct stat a, b;
	int err;

	slot_name(s, plain, 1, "");
	slot_name(s, tmp, 1, GZ_TMP);
	slot_name(s, gz, 1, ".gz");
	deflateEnd(&g->zs);
	g->zinit = false;
	what = "fsync";
	if (fsync(g->dst))
		goto fail;
	what = "close";
	err = close(g->dst);
	g->dst = -1;
	if (err)
		goto fail;
	if (fstat(g->src, &a) || lstat(plain, &b) || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		gz_abort(s);
		return;
	}
	what = "rename";
	if (rename(tmp, gz))
		goto fail;
	fsync_dir(s->path);
	what = "unlink";
	if (unlink(plain))
		goto fail;
	close(g->src);
	g->src = -1;
	s->gz_failing = false;
	return;
fail:
	gz_fail(s, what, errno);
}

/* Compress about budget more input bytes of path.1 (UINT64_MAX: all). */
static void gz_step(struct accesslog_sink *s, uint64_t budget)
{
	struct accesslog_gz *g = &s->gz;
	size_t want;
	ssize_t n;
	int ret, err;

	while (g->src >= 0) {
		if (!g->zs.avail_in && !g->eof) {
			/* with nothing left the read that finds the end costs nothing */
			if (!budget && g->left)
				return;
			want = budget && budget < GZ_CHUNK ? budget : GZ_CHUNK;
			n = read(g->src, g->in, want);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				gz_fail(s, "read", errno);
				return;
			}
			g->eof = !n;
			budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
			g->left -= (uint64_t)n < g->left ? (uint64_t)n : g->left;
			g->zs.next_in = g->in;
			g->zs.avail_in = (uInt)n;
		}
		g->zs.next_out = g->out;
		g->zs.avail_out = GZ_CHUNK;
		ret = deflate(&g->zs, g->eof ? Z_FINISH : Z_NO_FLUSH);
		if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
			gz_fail(s, "deflate", EIO);
			return;
		}
		err = write_all(g->dst, g->out, GZ_CHUNK - g->zs.avail_out);
		if (err) {
			gz_fail(s, "write", -err);
			return;
		}
		if (ret == Z_STREAM_END) {
			gz_finish(s);
			return;
		}
	}
}

static bool slot_exists(const struct accesslog_sink *s, unsigned int n)
{
	char name[PATH_MAX];
	struct stat st;

	slot_name(s, name, n, "");
	if (!lstat(name, &st))
		return true;
	slot_name(s, name, n, ".gz");
	return !lstat(name, &st);
}

/* Both forms of slot n renamed to slot to, or removed when to is 0. */
static int slot_move(const struct accesslog_sink *s, unsigned int n, unsigned int to)
{
	static const char *const forms[] = { "", ".gz" };
	char from[PATH_MAX], dst[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		slot_name(s, from, n, forms[i]);
		if (to) {
			slot_name(s, dst, to, forms[i]);
			r = rename(from, dst);
		} else {
			r = unlink(from);
		}
		if (r && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/*
 * path -> path.1 and a fresh path. Older files shift up to the first free
 * slot (so a gap left by hand costs nothing); when every slot is taken the
 * oldest is deleted. On failure nothing has moved but the shifted files,
 * and the sink goes on writing to the file it has.
 */
static int rotate(struct accesslog_sink *s)
{
	unsigned int free_slot, n;
	char one[PATH_MAX];
	int fd, err;

	/* what is left of the previous file first: path.1 is about to move */
	gz_step(s, UINT64_MAX);
	for (free_slot = 1; free_slot <= s->max_files && slot_exists(s, free_slot); free_slot++)
		;
	if (free_slot > s->max_files) {
		free_slot = s->max_files;
		err = slot_move(s, free_slot, 0);
		if (err)
			return err;
	}
	for (n = free_slot; n > 1; n--) {
		err = slot_move(s, n - 1, n);
		if (err)
			return err;
	}
	slot_name(s, one, 1, "");
	if (rename(s->path, one))
		return -errno;
	fd = accesslog_open_file(s->path, s->follow);
	if (fd < 0) {
		err = -errno;
		/* keep the file we write to under the name it had */
		rename(one, s->path);
		return err;
	}
	close(s->fd);
	s->fd = fd;
	s->rotations++;
	gz_start(s);
	return 0;
}

/*
 * Rotate before a batch of len bytes would take a non-empty file past the
 * limit. Not when the file was moved away by someone else (an external
 * logrotate) and not reopened yet: it is theirs, SIGHUP will follow.
 */
void accesslog_rotate_before_batch(struct accesslog_sink *s, size_t len)
{
	struct stat st, at;
	int64_t now;
	int err;

	if (fstat(s->fd, &st) || !S_ISREG(st.st_mode) || !st.st_size ||
	    (uint64_t)st.st_size + len <= s->max_bytes)
		return;
	if (stat(s->path, &at) || at.st_dev != st.st_dev || at.st_ino != st.st_ino)
		return;
	now = ml_mono_ns();
	if (now < s->rotate_retry_ns)
		return;
	err = rotate(s);
	if (!err) {
		s->rotate_failing = false;
		return;
	}
	s->rotation_errors++;
	s->rotate_retry_ns = now + ROTATE_RETRY_NS;
	if (!s->rotate_failing)
		fprintf(stderr, "meshlens: access log: rotating %s: %s (still writing to it)\n",
			s->path, strerror(-err));
	s->rotate_failing = true;
}

int accesslog_set_rotation(struct accesslog_sink *s, uint64_t max_bytes, unsigned int max_files)
{
	if (!s->path)
		return 0;
	if (!max_bytes) {
		s->max_bytes = 0;
		return 0;
	}
	if (!max_files)
		return -EINVAL;
	if (strlen(s->path) + sizeof(".4294967295" GZ_TMP) > PATH_MAX)
		return -ENAMETOOLONG;
	if (!s->gz.in) {
		s->gz.in = malloc(2 * GZ_CHUNK);
		if (!s->gz.in)
			return -ENOMEM;
		s->gz.out = s->gz.in + GZ_CHUNK;
	}
	s->max_bytes = max_bytes;
	s->max_files = max_files;
	/* a path.1 an earlier run stopped compressing (or could not) */
	if (s->gz.src < 0)
		gz_start(s);
	return 0;
}

uint64_t accesslog_rotations(const struct accesslog_sink *s)
{
	return s->rotations;
}

uint64_t accesslog_rotation_errors(const struct accesslog_sink *s)
{
	return s->rotation_errors;
}

void accesslog_rotate_init(struct accesslog_sink *s)
{
	s->gz.src = s->gz.dst = -1;
}

void accesslog_rotate_after_batch(struct accesslog_sink *s, size_t written)
{
	if (s->gz.src >= 0)
		gz_step(s, GZ_MIN_STEP + 2 * (uint64_t)written);
}

void accesslog_rotate_close(struct accesslog_sink *s)
{
	/*
	 * Finish a compression that is nearly done; a big one is left for the
	 * next start (accesslog_set_rotation() resumes it) rather than holding
	 * up the exit. Either way path.1 keeps every line.
	 */
	if (s->gz.src >= 0 && s->gz.left <= GZ_CLOSE_MAX)
		gz_step(s, UINT64_MAX);
	gz_abort(s);
	free(s->gz.in);
}
