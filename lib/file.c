// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* file - read a whole file. */
#define _GNU_SOURCE
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define FILE_BUF_MIN 4096 /* the first buffer where st_size says nothing (pipes) */

static void say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

char *ml_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	char *buf = NULL, *nb;
	size_t n = 0, cap = FILE_BUF_MIN, want;
	struct stat st;
	ssize_t got;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	/* a regular file in one read: room for its bytes, the NUL and the EOF read */
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && (size_t)st.st_size < max &&
	    (size_t)st.st_size + 2 > cap)
		cap = (size_t)st.st_size + 2;
	for (;;) {
		if (n + 1 >= cap || !buf) {
			if (buf)
				cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				say(err, errlen, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		/* one byte past max is enough to know it is too large */
		want = cap - n - 1;
		if (want - 1 > max - n)
			want = max - n + 1;
		got = read(fd, buf + n, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			say(err, errlen, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > max) {
			if (max && !(max & ((1u << 20) - 1)))
				say(err, errlen, "larger than %zu MiB", max >> 20);
			else
				say(err, errlen, "larger than %zu bytes", max);
			goto fail;
		}
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}
