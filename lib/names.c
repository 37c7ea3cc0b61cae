// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * names - addresses, TCP states and IP protocols as text (names.h).
 */
#include <string.h>

#include "names.h"
#include "util.h"

/*
 * RFC 5952 by hand: glibc's inet_ntop() prints ::/96 in mixed notation
 * (::1.2.3.4), which RFC 5952 section 5 keeps for well-known prefixes only.
 * Lowercase hex without leading zeros; the longest run (the first on a tie)
 * of two or more zero groups becomes "::". out needs INET6_ADDRSTRLEN.
 */
static int format_ipv6(const uint8_t a[ML_ADDR_LEN], char *out)
{
	static const char hex[] = "0123456789abcdef";
	int best = -1, best_len = 1, run, shift, i, n = 0;
	unsigned int g[8];

	for (i = 0; i < 8; i++)
		g[i] = a[2 * i] << 8 | a[2 * i + 1];
	for (i = 0; i < 8; i++) {
		for (run = 0; i + run < 8 && !g[i + run]; run++)
			;
		if (run > best_len) {
			best = i;
			best_len = run;
		}
	}
	for (i = 0; i < 8; i++) {
		if (i == best) {
			out[n++] = ':';
			out[n++] = ':';
			i += best_len - 1;
			continue;
		}
		/* no ':' right after "::" (with no run, best + best_len is 0) */
		if (i && i != best + best_len)
			out[n++] = ':';
		for (shift = 12; shift && !(g[i] >> shift); shift -= 4)
			;
		for (; shift >= 0; shift -= 4)
			out[n++] = hex[g[i] >> shift & 0xf];
	}
	out[n] = '\0';
	return n;
}

/*
 * Dotted quad by hand too: glibc's inet_ntop() formats IPv4 through
 * sprintf(), which was a quarter of the per-record cost (callgrind, `make
 * bench`). Each octet's digits come from a table made once at start: two
 * addresses a line, and their divisions were 7 % of a named line's cost.
 */
static char octet_text[256][4]; /* the digits, then their count in [3] */

__attribute__((constructor)) static void octet_text_init(void)
{
	for (unsigned int v = 0; v < 256; v++) {
		char *t = octet_text[v];
		int n = 0;

		if (v >= 100)
			t[n++] = (char)('0' + v / 100);
		if (v >= 10)
			t[n++] = (char)('0' + v / 10 % 10);
		t[n++] = (char)('0' + v % 10);
		t[3] = (char)n;
	}
}

static int format_ipv4(const uint8_t a[4], char *out)
{
	int n = 0;

	for (int i = 0; i < 4; i++) {
		const char *t = octet_text[a[i]];

		memcpy(out + n, t, 4); /* one move; what lies past the digits is overwritten next */
		n += t[3];
		out[n++] = '.';
	}
	out[n - 1] = '\0';
	return n - 1;
}

int ml_addr_text(const uint8_t addr[ML_ADDR_LEN], char *out)
{
	return ml_addr_is_v4mapped(addr) ? format_ipv4(addr + 12, out) : format_ipv6(addr, out);
}

int ml_format_addr(const uint8_t addr[ML_ADDR_LEN], char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n = ml_addr_text(addr, tmp);

	if (n >= len)
		return -1;
	memcpy(buf, tmp, n + 1);
	return n;
}

const char *ml_tcp_state_name(unsigned int state)
{
	/* the kernel's numbering, include/net/tcp_states.h */
	static const char *const names[] = {
		[1] = "ESTABLISHED", [2] = "SYN_SENT",   [3] = "SYN_RECV",
		[4] = "FIN_WAIT1",   [5] = "FIN_WAIT2",  [6] = "TIME_WAIT",
		[7] = "CLOSE",       [8] = "CLOSE_WAIT", [9] = "LAST_ACK",
		[10] = "LISTEN",     [11] = "CLOSING",   [12] = "NEW_SYN_RECV",
	};

	return state < ARRAY_SIZE(names) && names[state] ? names[state] : "UNKNOWN";
}

const char *ml_proto_name(unsigned int l4proto)
{
	switch (l4proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	case IPPROTO_SCTP:
		return "sctp";
	default:
		return "other";
	}
}
