/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * util - what every module would otherwise write again: ARRAY_SIZE, the
 * monotonic clock, and the error convention.
 *
 * Errors: a function that can fail returns 0 (or a count, an fd) or
 * -errno, and says what failed in one line of text in the caller's err
 * buffer (as redis's anet does): `return ml_err(err, errlen, -EINVAL,
 * "--cgroup '%s': ...", path)`. Only main maps them to exit codes.
 */
#ifndef MESHLENS_UTIL_H
#define MESHLENS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Elements of an array (not a pointer: sizeof would be the pointer's). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* CLOCK_MONOTONIC in ns. */
static inline int64_t ml_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* printf fmt into err (nothing when err is NULL or errlen 0); returns ret. */
int ml_err(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* MESHLENS_UTIL_H */
