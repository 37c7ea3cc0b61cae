// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* parse - HOST:PORT. */
#include "parse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

/*
 * Digits only (strtoul would take " 80", "+80" and "-1"), and at most five:
 * "000080" is refused rather than read as 80, as the option always did.
 */
static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;
	size_t n;

	for (n = 0; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n == 5)
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (!n || !v || v > 65535)
		return -EINVAL;
	*port = htons((uint16_t)v);
	return 0;
}

/*
 * Host names other than localhost are refused: resolving them would make
 * start-up depend on DNS, and the endpoint must bind to an address the
 * operator chose deliberately.
 */
const char *ml_parse_hostport(const char *s, union ml_sockaddr *sa, socklen_t *len)
{
	bool v6 = s[0] == '[';
	char host[INET6_ADDRSTRLEN];
	const char *hb, *he, *colon;
	in_port_t port;

	if (v6) {
		hb = s + 1;
		he = strchr(hb, ']');
		if (!he || he[1] != ':')
			return "expected [IPv6]:PORT";
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return "expected HOST:PORT";
		hb = s;
		he = colon;
	}
	if (parse_port(colon + 1, &port))
		return "port must be 1-65535";
	if ((size_t)(he - hb) >= sizeof(host))
		return "host too long";
	memcpy(host, hb, (size_t)(he - hb));
	host[he - hb] = '\0';

	memset(sa, 0, sizeof(*sa));
	if (v6) {
		if (inet_pton(AF_INET6, host, &sa->in6.sin6_addr) != 1)
			return "not an IPv6 address";
		sa->in6.sin6_family = AF_INET6;
		sa->in6.sin6_port = port;
		*len = sizeof(sa->in6);
		return NULL;
	}
	if (strcmp(host, "localhost") == 0)
		sa->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sa->in.sin_addr) != 1)
		return "host must be an IPv4 address, localhost or [IPv6 address]";
	sa->in.sin_family = AF_INET;
	sa->in.sin_port = port;
	*len = sizeof(sa->in);
	return NULL;
}
