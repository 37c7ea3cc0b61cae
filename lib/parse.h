/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * parse - the HOST:PORT of --metrics-addr, one grammar for the option's
 * check and the listener's bind.
 */
#ifndef MESHLENS_PARSE_H
#define MESHLENS_PARSE_H

#include <netinet/in.h>
#include <sys/socket.h>

union ml_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/*
 * "HOST:PORT" with HOST an IPv4 literal, "localhost" (127.0.0.1) or a
 * bracketed IPv6 literal, PORT 1..65535 in at most five digits. NULL with
 * *sa and *len filled, or what is wrong ("port must be 1-65535", ...), a
 * phrase for after the caller's "<what> <addr>: ".
 */
const char *ml_parse_hostport(const char *s, union ml_sockaddr *sa, socklen_t *len);

#endif /* MESHLENS_PARSE_H */
