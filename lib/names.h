/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * names - the words meshlens prints for the kernel's numbers: addresses,
 * TCP states, IP protocols. One place, so that the access log, the drop
 * log and the metrics spell a connection the same way.
 *
 * Count in the kernel, name in user space: nothing here allocates or
 * takes a lock, and every function may be called per record.
 */
#ifndef MESHLENS_NAMES_H
#define MESHLENS_NAMES_H

#include <netinet/in.h> /* INET6_ADDRSTRLEN */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../bpf/probe.h"

/* ::ffff:0:0/96, an IPv4 address in an IPv6 socket's (and our records') form. */
static inline bool ml_addr_is_v4mapped(const uint8_t a[ML_ADDR_LEN])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

/*
 * Address text, v4-mapped -> dotted quad, else RFC 5952 IPv6, into out,
 * which has room for INET6_ADDRSTRLEN bytes: for callers that format in
 * place (the access log's line). NUL-terminated; returns the length.
 */
int ml_addr_text(const uint8_t addr[ML_ADDR_LEN], char *out);

/* The same into buf of len bytes; -1 when the text and its NUL do not fit. */
int ml_format_addr(const uint8_t addr[ML_ADDR_LEN], char *buf, size_t len);

/* TCP state number -> "ESTABLISHED", "SYN_SENT", ...; "UNKNOWN" otherwise. */
const char *ml_tcp_state_name(unsigned int state);

/* IP protocol number (an ml_*_key's l4proto) -> "tcp", "udp", ...; "other". */
const char *ml_proto_name(unsigned int l4proto);

#endif /* MESHLENS_NAMES_H */
