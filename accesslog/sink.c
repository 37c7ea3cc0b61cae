// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * accesslog/sink - the batching sink (sink.h): whole lines queued in one
 * buffer, written with one write(2) per flush; a batch that cannot be
 * written is dropped and its lines counted, never retried, so the daemon
 * neither blocks nor grows. Reopen after an external logrotate; size
 * rotation is rotate.c's, called between batches.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accesslog.h"
#include "sink_internal.h"

#define BATCH_SIZE (256 * 1024)		/* one write(2) per flush */
#define REOPEN_RETRY_NS NSEC_PER_SEC	/* after a failed reopen */
#define REOPEN_SAY_NS (60 * NSEC_PER_SEC)	/* between messages while it fails */

/* mkdir -p of the directory holding path (its parents may be gone by a reopen) */
static void make_parent_dirs(const char *path)
{
	char dir[PATH_MAX];
	char *p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return;
	for (p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0750);
		*p = '/';
	}
}

/*
 * Opened non-blocking, so that a FIFO nobody reads fails at once (ENXIO)
 * rather than hanging start-up; writes block again after (a slow reader
 * holds the loop back, and the ringbuf absorbs that, as with a pipe on
 * stdout). No symlink is followed unless the path was one at start: one
 * planted at the path later must not redirect the log.
 */
int accesslog_open_file(const char *path, bool follow)
{
	int fd, fl;

	make_parent_dirs(path);
	fd = open(path,
		  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW),
		  0640);
	if (fd >= 0 && ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

struct accesslog_sink *accesslog_open(const char *dest)
{
	struct accesslog_sink *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = STDOUT_FILENO;
	accesslog_rotate_init(s);
	s->buf = malloc(BATCH_SIZE);
	if (!s->buf)
		goto cleanup;
	if (strcmp(dest, "-")) {
		s->path = strdup(dest);
		if (!s->path)
			goto cleanup;
		struct stat st;

		s->follow = !lstat(dest, &st) && S_ISLNK(st.st_mode);
		s->fd = accesslog_open_file(dest, s->follow);
		if (s->fd < 0)
			goto cleanup;
	}
	return s;

cleanup:
	err = errno;
	free(s->path);
	free(s->buf);
	free(s);
	errno = err;
	return NULL;
}

/* Lines (each ends in '\n') in buf[from, to). */
static uint64_t count_lines(const char *buf, size_t from, size_t to)
{
	const char *p = buf + from, *end = buf + to;
	uint64_t n = 0;

	while ((p = memchr(p, '\n', end - p))) {
		n++;
		p++;
	}
	return n;
}

/* Write buf[*done, to), advancing *done. 0 or -errno. */
static int write_batch(struct accesslog_sink *s, size_t *done, size_t to)
{
	ssize_t n;

	while (*done < to) {
		n = write(s->fd, s->buf + *done, to - *done);
		if (n >= 0)
			*done += n;
		else if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int reopen_now(struct accesslog_sink *s);

/* While the file cannot be reopened: a new attempt a second, a word a minute. */
static int retry_reopen(struct accesslog_sink *s)
{
	int64_t now = ml_mono_ns();

	if (now >= s->reopen_retry_ns) {
		s->reopen_retry_ns = now + REOPEN_RETRY_NS;
		if (!reopen_now(s))
			return 0;
	}
	if (now >= s->reopen_said_ns) {
		s->reopen_said_ns = now + REOPEN_SAY_NS;
		fprintf(stderr,
			"meshlens: access log: cannot reopen %s: %s (%" PRIu64
			" lines lost so far; retrying every second)\n",
			s->path, accesslog_strerror(s->reopen_err), s->lost - s->lost_at_fail);
	}
	return s->reopen_err;
}

int accesslog_flush(struct accesslog_sink *s)
{
	size_t done = 0, keep = 0;
	int err = 0;

	if (s->reopen_err && s->used && retry_reopen(s)) {
		/* nowhere to write: the lines are lost, counted (no torn line
		 * is left: the failed reopen dropped its rest) */
		s->last_err = s->reopen_err;
		s->lost += count_lines(s->buf, 0, s->used);
		s->used = 0;
		s->torn = false;
		return s->reopen_err;
	}
	if (s->max_bytes && s->used) {
		/* the rest of a torn line belongs to the file holding its start */
		if (s->torn)
			err = write_batch(s, &done,
					  (const char *)memchr(s->buf, '\n', s->used) + 1 - s->buf);
		/* between batches only: a batch goes whole to one file */
		if (!err && done < s->used)
			accesslog_rotate_before_batch(s, s->used - done);
	}
	if (!err)
		err = write_batch(s, &done, s->used);
	accesslog_rotate_after_batch(s, done);
	if (!err) {
		s->used = 0;
		s->torn = false;
		return 0;
	}
	/*
	 * Disk full, EIO, a closed pipe...: drop the batch and count it, so the
	 * daemon neither blocks nor grows. A line cut short keeps its rest, to
	 * be written first next time: a torn line left in the file would run
	 * into the next one and spoil it too.
	 */
	if (done ? s->buf[done - 1] != '\n' : s->torn) {
		const char *nl = memchr(s->buf + done, '\n', s->used - done);

		keep = nl + 1 - (s->buf + done);
	}
	s->torn = keep != 0;
	s->last_err = err;
	s->lost += count_lines(s->buf, done + keep, s->used);
	memmove(s->buf, s->buf + done, keep);
	s->used = keep;
	return err;
}

/*
 * 0 once the line is queued. A failed flush on the way has counted the
 * lines it dropped in accesslog_lost_lines(); retrying would duplicate.
 */
int accesslog_append(struct accesslog_sink *s, const char *line, size_t len)
{
	if (!len || len > ACCESSLOG_LINE_MAX || line[len - 1] != '\n')
		return -EINVAL;
	/* even after a failed flush at most a torn line's rest (< a line) is left */
	if (len > BATCH_SIZE - s->used)
		accesslog_flush(s);
	memcpy(s->buf + s->used, line, len);
	s->used += len;
	return 0;
}

/*
 * 0 once the new file is open. Lines queued so far were logged before the
 * rotation and go to the old file; what cannot be written there is counted
 * lost. If the path cannot be opened, keep logging to the old file.
 */
static int reopen_now(struct accesslog_sink *s)
{
	int fd = accesslog_open_file(s->path, s->follow);

	if (fd < 0) {
		s->reopen_err = -errno;
		return s->reopen_err;
	}
	if (s->fd >= 0)
		close(s->fd);
	else
		fprintf(stderr, "meshlens: access log: reopened %s (%" PRIu64
				" lines lost while it could not be)\n",
			s->path, s->lost - s->lost_at_fail);
	s->fd = fd;
	s->reopen_err = 0;
	return 0;
}

const char *accesslog_strerror(int err)
{
	if (err == -ELOOP)
		return "a symbolic link is there (not followed)";
	if (err == -ENXIO)
		return "a FIFO no process reads";
	return strerror(-err);
}

/*
 * Lines queued so far were logged before the rotation and go to the old
 * file. If the path cannot be opened, nothing more goes to the old file
 * either (it is no longer the log: a deleted or moved file): lines are
 * counted lost while the reopen is retried at each flush, once a second.
 */
int accesslog_reopen(struct accesslog_sink *s)
{
	if (!s->path)
		return 0;
	accesslog_flush(s);
	/* the rest of a line torn in the old file must not start the new one */
	if (s->torn) {
		s->lost++;
		s->used = 0;
		s->torn = false;
	}
	if (!reopen_now(s))
		return 0;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
		s->lost_at_fail = s->lost;
	}
	s->reopen_retry_ns = ml_mono_ns() + REOPEN_RETRY_NS;
	s->reopen_said_ns = s->reopen_retry_ns + REOPEN_SAY_NS; /* the caller says it now */
	return s->reopen_err;
}

uint64_t accesslog_lost_lines(const struct accesslog_sink *s)
{
	return s->lost;
}

int accesslog_last_error(const struct accesslog_sink *s)
{
	return s->last_err;
}

void accesslog_close(struct accesslog_sink *s)
{
	if (!s)
		return;
	accesslog_flush(s);
	accesslog_rotate_close(s);
	if (s->path && s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->buf);
	free(s);
}

struct accesslog_sink *accesslog_open_rotating(const char *dest, uint64_t max_bytes,
					       unsigned int max_files, int *ret, char *err,
					       size_t errlen)
{
	struct accesslog_sink *s = accesslog_open(dest);

	if (!s) {
		*ret = -errno;
		ml_err(err, errlen, *ret, "--access-log '%s': %s", dest, accesslog_strerror(*ret));
		return NULL;
	}
	*ret = max_bytes ? accesslog_set_rotation(s, max_bytes, max_files) : 0;
	if (!*ret)
		return s;
	ml_err(err, errlen, *ret, "--access-log '%s': rotation: %s", dest, strerror(-*ret));
	accesslog_close(s);
	return NULL;
}
