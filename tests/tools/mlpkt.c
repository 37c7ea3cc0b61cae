// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * mlpkt - packet generator for the meshlens packet-drop end-to-end tests.
 *
 * Sends exactly the packets it is asked for and prints one JSON line of
 * ground truth describing them (addresses, ports, ICMP type/code/id,
 * lengths); the tests compare meshlens's drop counters and drop log with
 * those lines and with iptables' rule counters.  It also makes a listener
 * that never accepts and floods it with connects, for the accept-queue
 * diagnosis.
 *
 * It only sends to the addresses on its command line (numeric, never
 * resolved); the tests give it loopback addresses or addresses inside
 * network namespaces they created.  libc only.  See usage().
 *
 *   gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wmissing-field-initializers \
 *       -Werror=undef -o build/mlpkt tests/tools/mlpkt.c
 *
 * Modes and their one line of output (after the packets are sent):
 *
 *   udp SRC DST DPORT N [--size B] [--interval-ms MS]
 *     N datagrams of B (default 64) payload bytes from a socket bound to
 *     SRC port 0.
 *     {"event":"udp","family":"ipv4","src_addr":"10.213.0.1","src_port":56713,
 *      "dst_addr":"10.213.0.1","dst_port":9999,"packets":17,"bytes_payload":100,
 *      "udp_len":108,"ip_len":128,"sent":17,"eperm":0}
 *   icmp DST N / icmp6 DST N [--size B] [--interval-ms MS]
 *     N echo requests (ids: icmp_id, sequence 1..N, B payload bytes,
 *     default 56) from a raw socket; the source is the one the kernel
 *     picks.
 *     {"event":"icmp","family":"ipv4","src_addr":...,"dst_addr":...,"icmp_type":8,
 *      "icmp_code":0,"icmp_id":26164,"packets":9,"bytes_payload":56,"icmp_len":64,
 *      "ip_len":84,"sent":9,"eperm":0}            (icmp6: "icmp_type":128)
 *   sctp SRC DST SPORT DPORT N [--interval-ms MS]
 *     N SCTP packets (common header + INIT chunk, CRC32c checksum) in IP
 *     packets we build ourselves, through an IPPROTO_RAW socket.
 *     {"event":"sctp","family":"ipv4","src_addr":...,"src_port":40000,"dst_addr":...,
 *      "dst_port":5000,"chunk":"INIT","vtag":0,"crc32c":"0x7ba88155","packets":7,
 *      "sctp_len":32,"ip_len":52,"sent":7,"eperm":0}
 *   listen ADDR PORT BACKLOG
 *     a TCP listener that never accepts; prints, then sleeps until killed
 *     {"event":"listening","family":"ipv4","addr":"127.0.0.1","port":33129,"backlog":1}
 *   connect-flood ADDR PORT N [--hold-ms MS]
 *     N non-blocking connects, held MS (default 2000) ms, then closed.
 *     {"event":"flooding",...,"attempted":20,"hold_ms":2000}   once all are issued
 *     {"event":"connect-flood",...,"attempted":20,"established":2,"in_progress":18,
 *      "failed":0,"refused":0}                                 after the hold
 *
 * "packets" is how many packets the kernel built; "sent" of them left,
 * "eperm" were refused on the way out (iptables OUTPUT DROP makes sendmsg
 * fail with EPERM: the packet was built and dropped).  *_len are the
 * per-packet lengths at each layer.
 *
 * --max-seconds S (default 60) bounds any mode: on expiry it prints
 * "mlpkt: timed out" and exits 1.  Exit status: 0 success, 1 failure
 * ("mlpkt: call: strerror"), 2 usage error (one line on stderr).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOOL_NAME "mlpkt"
#include "toolargs.h"

#define DEFAULT_MAX_SECONDS	60
#define DEFAULT_HOLD_MS		2000
#define DEFAULT_UDP_SIZE	64
#define DEFAULT_ICMP_SIZE	56
#define MAX_PACKETS		1000000ULL
#define MAX_FLOOD		100000ULL
#define MAX_MS			86400000ULL
#define IPV4_HDR		20
#define IPV6_HDR		40
#define UDP_HDR			8
#define ICMP_HDR		8
#define SCTP_COMMON_HDR		12
#define SCTP_INIT_CHUNK		20
#define IPPROTO_SCTP_NUM	132
#define MAX_PAYLOAD		65000	/* fits one datagram of either family */

/* Mode options: bits in mode_desc.allowed. */
enum {
	OPT_SIZE = 256,
	OPT_INTERVAL_MS,
	OPT_HOLD_MS,
	/* global options */
	OPT_MAX_SECONDS,
	OPT_HELP,
};
#define MODE_OPT(o) (1u << ((o) - OPT_SIZE))

static struct {
	uint64_t size;
	bool size_set;
	uint64_t interval_ms;
	uint64_t hold_ms;
	uint64_t max_seconds;
} opt = {
	.hold_ms = DEFAULT_HOLD_MS,
	.max_seconds = DEFAULT_MAX_SECONDS,
};

static unsigned char buf[MAX_PAYLOAD + 128];

static void usage(FILE *out)
{
	fputs(
"usage: mlpkt [--max-seconds S] MODE ...\n"
"  udp SRC_ADDR DST_ADDR DPORT N [--size B] [--interval-ms MS]\n"
"  icmp DST N [--size B] [--interval-ms MS]\n"
"  icmp6 DST N [--size B] [--interval-ms MS]\n"
"  sctp SRC DST SPORT DPORT N [--interval-ms MS]\n"
"  listen ADDR PORT BACKLOG\n"
"  connect-flood ADDR PORT N [--hold-ms MS]\n"
"Addresses are numeric IPv4 or IPv6.  Prints one JSON line of ground truth.\n"
"Exit status: 0 success, 1 failure, 2 usage error.\n", out);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("mlpkt: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

static void on_alarm(int sig)
{
	static const char msg[] = "mlpkt: timed out\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to report it to */
	}
	_exit(1);
}




static int family(const struct addr *a)
{
	return a->ss.ss_family;
}

static const char *family_name(const struct addr *a)
{
	return family(a) == AF_INET ? "ipv4" : "ipv6";
}

/* Address as text (port, host order, to *port when not NULL). */
static const char *fmt_addr(const struct addr *a, char *out, unsigned int *port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;

	if (family(a) == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, out, INET6_ADDRSTRLEN);
		if (port)
			*port = ntohs(sin->sin_port);
	} else {
		inet_ntop(AF_INET6, &sin6->sin6_addr, out, INET6_ADDRSTRLEN);
		if (port)
			*port = ntohs(sin6->sin6_port);
	}
	return out;
}

static void local_addr(int fd, struct addr *a)
{
	a->len = sizeof(a->ss);
	if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len))
		die(errno, "getsockname");
}

static void flush_out(void)
{
	if (fflush(stdout))
		die(errno, "fflush(stdout)");
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void fill_payload(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)('a' + i % 26);
}

/*
 * Outcome of one send: a packet the kernel built and sent, or one it built
 * and a local filter dropped on the way out (iptables OUTPUT DROP makes
 * sendmsg fail with EPERM).  Anything else is a failure of the tool.
 */
struct send_count {
	uint64_t sent, eperm;
};

static void send_one(int fd, const void *p, size_t n, const struct addr *to,
		     struct send_count *c, const char *what)
{
	ssize_t r;

	for (;;) {
		r = to ? sendto(fd, p, n, 0, (const struct sockaddr *)&to->ss, to->len)
		       : send(fd, p, n, 0);
		if (r >= 0 || errno != EINTR)
			break;
	}
	if (r < 0 && errno == EPERM) {
		c->eperm++;
		return;
	}
	if (r < 0)
		die(errno, "%s", what);
	if ((size_t)r != n)
		die(0, "%s: short send %zd of %zu", what, r, n);
	c->sent++;
}

/* --- udp ----------------------------------------------------------------- */

static int mode_udp(int argc, char **argv)
{
	char s_str[INET6_ADDRSTRLEN], d_str[INET6_ADDRSTRLEN];
	unsigned int sport, dport;
	struct send_count c = { 0, 0 };
	struct addr src, dst;
	uint64_t n, size = opt.size_set ? opt.size : DEFAULT_UDP_SIZE;
	int fd;

	if (argc != 4)
		usage_error("udp needs SRC_ADDR DST_ADDR DPORT N");
	parse_addr(argv[0], 0, false, &src);
	parse_addr(argv[1], parse_u64(argv[2], 1, 65535, "port"), false, &dst);
	n = parse_u64(argv[3], 0, MAX_PACKETS, "packet count");
	if (family(&src) != family(&dst))
		usage_error("udp: source '%s' and destination '%s' differ in family",
			    argv[0], argv[1]);

	fd = socket(family(&src), SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		die(errno, "socket(udp)");
	if (bind(fd, (const struct sockaddr *)&src.ss, src.len))
		die(errno, "bind(%s)", argv[0]);
	local_addr(fd, &src);
	fill_payload(buf, size);
	for (uint64_t i = 0; i < n; i++) {
		if (i && opt.interval_ms)
			sleep_ms(opt.interval_ms);
		send_one(fd, buf, size, &dst, &c, "sendto(udp)");
	}
	close(fd);

	fmt_addr(&src, s_str, &sport);
	fmt_addr(&dst, d_str, &dport);
	printf("{\"event\":\"udp\",\"family\":\"%s\",\"src_addr\":\"%s\",\"src_port\":%u,"
	       "\"dst_addr\":\"%s\",\"dst_port\":%u,\"packets\":%" PRIu64 ","
	       "\"bytes_payload\":%" PRIu64 ",\"udp_len\":%" PRIu64 ",\"ip_len\":%" PRIu64 ","
	       "\"sent\":%" PRIu64 ",\"eperm\":%" PRIu64 "}\n",
	       family_name(&src), s_str, sport, d_str, dport, n, size, size + UDP_HDR,
	       size + UDP_HDR + (family(&src) == AF_INET ? IPV4_HDR : IPV6_HDR), c.sent,
	       c.eperm);
	flush_out();
	return 0;
}

/* --- icmp / icmp6 -------------------------------------------------------- */

static uint16_t inet_csum(const unsigned char *p, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int mode_icmp(int argc, char **argv, bool v6)
{
	char s_str[INET6_ADDRSTRLEN], d_str[INET6_ADDRSTRLEN];
	uint64_t n, size = opt.size_set ? opt.size : DEFAULT_ICMP_SIZE;
	struct send_count c = { 0, 0 };
	uint16_t id = (uint16_t)(getpid() & 0xffff);
	uint8_t type = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
	struct addr src, dst;
	int fd;

	if (argc != 2)
		usage_error("%s needs DST N", v6 ? "icmp6" : "icmp");
	parse_addr(argv[0], 0, false, &dst);
	n = parse_u64(argv[1], 0, MAX_PACKETS, "packet count");
	if (family(&dst) != (v6 ? AF_INET6 : AF_INET))
		usage_error("%s: '%s' is not an %s address", v6 ? "icmp6" : "icmp", argv[0],
			    v6 ? "IPv6" : "IPv4");

	/* A raw socket: ping sockets need net.ipv4.ping_group_range. */
	fd = socket(family(&dst), SOCK_RAW | SOCK_CLOEXEC, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
	if (fd < 0)
		die(errno, "socket(raw %s)", v6 ? "icmpv6" : "icmp");
	/* connect() picks and records the source address; it sends nothing */
	if (connect(fd, (const struct sockaddr *)&dst.ss, dst.len))
		die(errno, "connect(%s)", argv[0]);
	local_addr(fd, &src);

	fill_payload(buf + ICMP_HDR, size);
	for (uint64_t i = 0; i < n; i++) {
		uint16_t seq = (uint16_t)(i + 1), sum;

		if (i && opt.interval_ms)
			sleep_ms(opt.interval_ms);
		buf[0] = type;
		buf[1] = 0;	/* code */
		buf[2] = buf[3] = 0;
		buf[4] = (unsigned char)(id >> 8);
		buf[5] = (unsigned char)id;
		buf[6] = (unsigned char)(seq >> 8);
		buf[7] = (unsigned char)seq;
		/* ICMPv6 raw sockets: the kernel fills the checksum (pseudo-header) */
		if (!v6) {
			sum = inet_csum(buf, ICMP_HDR + size);
			buf[2] = (unsigned char)(sum >> 8);
			buf[3] = (unsigned char)sum;
		}
		send_one(fd, buf, ICMP_HDR + size, NULL, &c, "send(icmp)");
	}
	close(fd);

	fmt_addr(&src, s_str, NULL);
	fmt_addr(&dst, d_str, NULL);
	printf("{\"event\":\"%s\",\"family\":\"%s\",\"src_addr\":\"%s\",\"dst_addr\":\"%s\","
	       "\"icmp_type\":%u,\"icmp_code\":0,\"icmp_id\":%u,\"packets\":%" PRIu64 ","
	       "\"bytes_payload\":%" PRIu64 ",\"icmp_len\":%" PRIu64 ",\"ip_len\":%" PRIu64 ","
	       "\"sent\":%" PRIu64 ",\"eperm\":%" PRIu64 "}\n",
	       v6 ? "icmp6" : "icmp", family_name(&dst), s_str, d_str, type, id, n, size,
	       size + ICMP_HDR, size + ICMP_HDR + (v6 ? IPV6_HDR : IPV4_HDR), c.sent, c.eperm);
	flush_out();
	return 0;
}

/* --- sctp ---------------------------------------------------------------- */

/* CRC32c (Castagnoli, reflected polynomial 0x82F63B78) as SCTP uses it. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
	static uint32_t table[256];
	uint32_t crc = 0xffffffffu;

	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;

			for (int k = 0; k < 8; k++)
				v = v & 1 ? (v >> 1) ^ 0x82F63B78u : v >> 1;
			table[i] = v;
		}
	}
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/*
 * Build one SCTP packet (common header + INIT chunk, RFC 9260) at p; returns
 * its length and the checksum.  The CRC32c goes into the checksum field in
 * the byte order Linux's sctp_compute_cksum() writes (little-endian).
 */
static size_t sctp_init_packet(unsigned char *p, uint16_t sport, uint16_t dport,
			       uint32_t itag, uint32_t *sum)
{
	memset(p, 0, SCTP_COMMON_HDR + SCTP_INIT_CHUNK);
	put16(p, sport);
	put16(p + 2, dport);
	put32(p + 4, 0);		/* verification tag: 0 in an INIT */
	/* p + 8: checksum, zero while computing */
	p[12] = 1;			/* chunk type INIT */
	p[13] = 0;			/* flags */
	put16(p + 14, SCTP_INIT_CHUNK);	/* chunk length */
	put32(p + 16, itag);		/* initiate tag (nonzero) */
	put32(p + 20, 65535);		/* a_rwnd */
	put16(p + 24, 10);		/* outbound streams */
	put16(p + 26, 65535);		/* inbound streams */
	put32(p + 28, itag);		/* initial TSN */
	*sum = crc32c(p, SCTP_COMMON_HDR + SCTP_INIT_CHUNK);
	p[8] = (unsigned char)*sum;
	p[9] = (unsigned char)(*sum >> 8);
	p[10] = (unsigned char)(*sum >> 16);
	p[11] = (unsigned char)(*sum >> 24);
	return SCTP_COMMON_HDR + SCTP_INIT_CHUNK;
}

/*
 * The packets leave through an IPPROTO_RAW socket with our own IP header
 * (protocol 132): a raw IPPROTO_SCTP socket would receive every incoming
 * SCTP packet itself, so a kernel without SCTP would consume them instead
 * of dropping them (IP_NOPROTO happens only when no raw socket wants them).
 */
static int mode_sctp(int argc, char **argv)
{
	char s_str[INET6_ADDRSTRLEN], d_str[INET6_ADDRSTRLEN];
	struct send_count c = { 0, 0 };
	struct addr src, dst;
	unsigned int sport, dport;
	uint32_t itag, sum = 0;
	size_t hdr, len;
	uint64_t n;
	int fd;

	if (argc != 5)
		usage_error("sctp needs SRC DST SPORT DPORT N");
	sport = (unsigned int)parse_u64(argv[2], 1, 65535, "source port");
	dport = (unsigned int)parse_u64(argv[3], 1, 65535, "destination port");
	parse_addr(argv[0], sport, false, &src);
	parse_addr(argv[1], 0, false, &dst);	/* raw sockets: sin_port must be 0 */
	n = parse_u64(argv[4], 0, MAX_PACKETS, "packet count");
	if (family(&src) != family(&dst))
		usage_error("sctp: source '%s' and destination '%s' differ in family",
			    argv[0], argv[1]);

	fd = socket(family(&dst), SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd < 0)
		die(errno, "socket(raw)");
	itag = (uint32_t)getpid() | 1u;
	hdr = family(&dst) == AF_INET ? IPV4_HDR : IPV6_HDR;
	len = hdr + sctp_init_packet(buf + hdr, (uint16_t)sport, (uint16_t)dport, itag, &sum);
	if (family(&dst) == AF_INET) {
		struct iphdr *ip = (struct iphdr *)buf;

		memset(ip, 0, sizeof(*ip));
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons((uint16_t)len);
		ip->frag_off = htons(IP_DF);
		ip->ttl = 64;
		ip->protocol = IPPROTO_SCTP_NUM;
		ip->saddr = ((struct sockaddr_in *)&src.ss)->sin_addr.s_addr;
		ip->daddr = ((struct sockaddr_in *)&dst.ss)->sin_addr.s_addr;
		ip->check = htons(inet_csum(buf, IPV4_HDR)); /* the kernel refills it too */
	} else {
		struct ip6_hdr *ip6 = (struct ip6_hdr *)buf;

		memset(ip6, 0, sizeof(*ip6));
		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons((uint16_t)(len - IPV6_HDR));
		ip6->ip6_nxt = IPPROTO_SCTP_NUM;
		ip6->ip6_hlim = 64;
		ip6->ip6_src = ((struct sockaddr_in6 *)&src.ss)->sin6_addr;
		ip6->ip6_dst = ((struct sockaddr_in6 *)&dst.ss)->sin6_addr;
	}
	for (uint64_t i = 0; i < n; i++) {
		if (i && opt.interval_ms)
			sleep_ms(opt.interval_ms);
		send_one(fd, buf, len, &dst, &c, "sendto(raw sctp)");
	}
	close(fd);

	fmt_addr(&src, s_str, NULL);
	fmt_addr(&dst, d_str, NULL);
	printf("{\"event\":\"sctp\",\"family\":\"%s\",\"src_addr\":\"%s\",\"src_port\":%u,"
	       "\"dst_addr\":\"%s\",\"dst_port\":%u,\"chunk\":\"INIT\",\"vtag\":0,"
	       "\"crc32c\":\"0x%08x\",\"packets\":%" PRIu64 ",\"sctp_len\":%zu,\"ip_len\":%zu,"
	       "\"sent\":%" PRIu64 ",\"eperm\":%" PRIu64 "}\n",
	       family_name(&dst), s_str, sport, d_str, dport, sum, n, len - hdr, len, c.sent,
	       c.eperm);
	flush_out();
	return 0;
}

/* --- listen -------------------------------------------------------------- */

static int mode_listen(int argc, char **argv)
{
	char str[INET6_ADDRSTRLEN];
	unsigned int port, backlog;
	struct addr a;
	int fd, one = 1;

	if (argc != 3)
		usage_error("listen needs ADDR PORT BACKLOG");
	parse_addr(argv[0], (unsigned int)parse_u64(argv[1], 0, 65535, "port"), false, &a);
	backlog = (unsigned int)parse_u64(argv[2], 0, 65535, "backlog");

	fd = socket(family(&a), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		die(errno, "socket(tcp)");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		die(errno, "setsockopt(SO_REUSEADDR)");
	if (bind(fd, (const struct sockaddr *)&a.ss, a.len))
		die(errno, "bind(%s port %s)", argv[0], argv[1]);
	if (listen(fd, (int)backlog))
		die(errno, "listen");
	local_addr(fd, &a);
	fmt_addr(&a, str, &port);
	printf("{\"event\":\"listening\",\"family\":\"%s\",\"addr\":\"%s\",\"port\":%u,"
	       "\"backlog\":%u}\n", family_name(&a), str, port, backlog);
	flush_out();
	/* never accepts: until a signal (or --max-seconds) ends the process */
	for (;;)
		pause();
}

/* --- connect-flood ------------------------------------------------------- */

static void want_fds(uint64_t n)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)n + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die(errno, "getrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
			rl.rlim_max = want;	/* needs CAP_SYS_RESOURCE */
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			die(errno, "setrlimit(RLIMIT_NOFILE, %" PRIu64 ")", (uint64_t)want);
	}
}

static int mode_connect_flood(int argc, char **argv)
{
	uint64_t n, established = 0, in_progress = 0, failed = 0, refused = 0;
	char str[INET6_ADDRSTRLEN];
	unsigned int port;
	struct addr dst;
	int *fds;

	if (argc != 3)
		usage_error("connect-flood needs ADDR PORT N");
	parse_addr(argv[0], (unsigned int)parse_u64(argv[1], 1, 65535, "port"), false, &dst);
	n = parse_u64(argv[2], 1, MAX_FLOOD, "connection count");
	want_fds(n);
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		die(errno, "calloc");

	for (uint64_t i = 0; i < n; i++) {
		fds[i] = socket(family(&dst), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				IPPROTO_TCP);
		if (fds[i] < 0)
			die(errno, "socket(tcp)");
		if (connect(fds[i], (const struct sockaddr *)&dst.ss, dst.len) &&
		    errno != EINPROGRESS && errno != EINTR) {
			failed++;
			if (errno == ECONNREFUSED)
				refused++;
			close(fds[i]);
			fds[i] = -1;
		}
	}
	fmt_addr(&dst, str, &port);
	printf("{\"event\":\"flooding\",\"family\":\"%s\",\"dst_addr\":\"%s\",\"dst_port\":%u,"
	       "\"attempted\":%" PRIu64 ",\"hold_ms\":%" PRIu64 "}\n",
	       family_name(&dst), str, port, n, opt.hold_ms);
	flush_out();
	sleep_ms(opt.hold_ms);

	/* where each attempt stands after the hold, then close them all */
	for (uint64_t i = 0; i < n; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLOUT, .revents = 0 };
		socklen_t len = sizeof(int);
		int err = 0;

		if (fds[i] < 0)
			continue;
		if (poll(&p, 1, 0) < 0)
			die(errno, "poll");
		if (getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len))
			die(errno, "getsockopt(SO_ERROR)");
		if (err) {
			failed++;
			if (err == ECONNREFUSED)
				refused++;
		} else if (p.revents & POLLOUT) {
			established++;
		} else {
			in_progress++;
		}
		close(fds[i]);
	}
	free(fds);
	printf("{\"event\":\"connect-flood\",\"family\":\"%s\",\"dst_addr\":\"%s\","
	       "\"dst_port\":%u,\"attempted\":%" PRIu64 ",\"established\":%" PRIu64 ","
	       "\"in_progress\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"refused\":%" PRIu64 "}\n",
	       family_name(&dst), str, port, n, established, in_progress, failed, refused);
	flush_out();
	return 0;
}

/* --- main ---------------------------------------------------------------- */

struct mode_desc {
	const char *name;
	int (*run)(int argc, char **argv);
	unsigned int allowed; /* MODE_OPT() bits */
};

static int run_icmp4(int argc, char **argv) { return mode_icmp(argc, argv, false); }
static int run_icmp6(int argc, char **argv) { return mode_icmp(argc, argv, true); }

static const struct mode_desc modes[] = {
	{ "udp", mode_udp, MODE_OPT(OPT_SIZE) | MODE_OPT(OPT_INTERVAL_MS) },
	{ "icmp", run_icmp4, MODE_OPT(OPT_SIZE) | MODE_OPT(OPT_INTERVAL_MS) },
	{ "icmp6", run_icmp6, MODE_OPT(OPT_SIZE) | MODE_OPT(OPT_INTERVAL_MS) },
	{ "sctp", mode_sctp, MODE_OPT(OPT_INTERVAL_MS) },
	{ "listen", mode_listen, 0 },
	{ "connect-flood", mode_connect_flood, MODE_OPT(OPT_HOLD_MS) },
};

static const struct option long_opts[] = {
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "interval-ms", required_argument, NULL, OPT_INTERVAL_MS },
	{ "hold-ms", required_argument, NULL, OPT_HOLD_MS },
	{ "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static const char *opt_name(int o)
{
	for (const struct option *l = long_opts; l->name; l++)
		if (l->val == o)
			return l->name;
	return "?";
}

int main(int argc, char **argv)
{
	unsigned int seen = 0;
	const struct mode_desc *m = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_SIZE:
			opt.size = parse_u64(optarg, 0, MAX_PAYLOAD, "--size");
			opt.size_set = true;
			seen |= MODE_OPT(c);
			break;
		case OPT_INTERVAL_MS:
			opt.interval_ms = parse_u64(optarg, 0, MAX_MS, "--interval-ms");
			seen |= MODE_OPT(c);
			break;
		case OPT_HOLD_MS:
			opt.hold_ms = parse_u64(optarg, 0, MAX_MS, "--hold-ms");
			seen |= MODE_OPT(c);
			break;
		case OPT_MAX_SECONDS:
			opt.max_seconds = parse_u64(optarg, 1, 86400, "--max-seconds");
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case ':':
			usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		usage_error("no mode given");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[optind], modes[i].name))
			m = &modes[i];
	if (!m)
		usage_error("unknown mode '%s'", argv[optind]);
	for (int o = OPT_SIZE; o < OPT_MAX_SECONDS; o++)
		if ((seen & MODE_OPT(o)) && !(m->allowed & MODE_OPT(o)))
			usage_error("--%s does not apply to mode %s", opt_name(o), m->name);

	signal(SIGALRM, on_alarm);
	alarm((unsigned int)opt.max_seconds);
	return m->run(argc - optind - 1, argv + optind + 1);
}
