/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * toolargs.h - argument parsing shared by the test tools (mltraffic,
 * mlpkt): numeric addresses and bounded integers, bad ones a usage error
 * ("TOOL: ... (see --help)", exit 2). Each tool defines TOOL_NAME before
 * including this.
 */
#ifndef MESHLENS_TOOLARGS_H
#define MESHLENS_TOOLARGS_H

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(TOOL_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(2);
}

/* A numeric address and port as a sockaddr. */
struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Decimal unsigned integer in [min, max] (no sign, no blanks). */
static uint64_t parse_u64(const char *s, uint64_t min, uint64_t max, const char *what)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		usage_error("bad %s '%s'", what, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		usage_error("bad %s '%s' (want %" PRIu64 "..%" PRIu64 ")", what, s, min, max);
	return v;
}

/* Numeric address only: no name resolution, no default address. */
static void parse_addr(const char *s, unsigned int port, bool v4mapped_ok, struct addr *a)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		a->len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		if (!v4mapped_ok && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			usage_error("bad address '%s' (give IPv4 addresses dotted)", s);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		a->len = sizeof(*sin6);
	} else {
		usage_error("bad address '%s' (numeric IPv4/IPv6 only)", s);
	}
}

#endif /* MESHLENS_TOOLARGS_H */
