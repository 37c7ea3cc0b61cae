// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * mltraffic - TCP traffic generator for the meshlens end-to-end tests.
 *
 * Every mode prints JSON lines describing what the read/write/connect calls
 * actually did; the tests compare meshlens's access log against them, so the
 * counts printed here are the ground truth and must be exact.
 *
 * The tool only ever connects to addresses given on its command line and
 * never resolves names.  See usage() for the interface.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
/* the kernel's own header: glibc's struct tcp_info stops at 2.6's fields */
#include <linux/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOOL_NAME "mltraffic"
#include "toolargs.h"

#define IO_BUF_SIZE		(256 * 1024)
#define MAX_BYTES		(1ULL << 40)	/* sanity limit for sizes */
#define MAX_CONNS		10000000ULL
#define MAX_MS			86400000ULL	/* one day */
#define DEFAULT_MAX_SECONDS	30

/* Failure code for "peer closed before the expected byte count arrived". */
#define ERR_EOF			(-1)

/* Payload source and sink; its contents are irrelevant. */
static char io_buf[IO_BUF_SIZE];

/*
 * Long options.  Those before OPT_CGROUP apply to some modes only and are
 * also bits in mode_desc.allowed.
 */
enum {
	OPT_CLOSE = 256,	/* past any short option character */
	OPT_HOLD_MS,
	OPT_INTERVAL_MS,
	OPT_BASE_BYTES,
	OPT_TIMEOUT_MS,
	OPT_COUNT,
	OPT_BYTES,
	OPT_CPU,
	OPT_PORTS,
	OPT_HOLD_UNTIL,
	OPT_FINAL_INFO,
	/* global options */
	OPT_CGROUP,
	OPT_SYNCNT,
	OPT_MAX_SECONDS,
	OPT_QUIET,
	OPT_HELP,
};

#define MODE_OPT(o)	(1u << ((o) - OPT_CLOSE))

static struct {
	const char *cgroup;
	unsigned int syncnt;		/* 0: leave the kernel default */
	unsigned int max_seconds;
	bool quiet;
	bool close_server;		/* pairs/many: server closes first */
	uint64_t hold_ms;
	const char *hold_until;	/* hold until this file exists (at most hold_ms) */
	bool final_info;		/* pairs/many: the client's TCP_INFO once closed */
	uint64_t interval_ms;
	uint64_t base_bytes;
	uint64_t timeout_ms;		/* connect: 0 means no extra bound */
	uint64_t count;
	uint64_t bytes;
	bool pin;
	int client_cpu, server_cpu;
	uint64_t ports;		/* hold: 0 means one per 2000 connections */
} opt = {
	.max_seconds = DEFAULT_MAX_SECONDS,
	.base_bytes = 100,
	.count = 1,
	.bytes = 100,
};

/* The forked server, killed by die() and on timeout. */
static volatile pid_t server_pid;
static bool in_server;

static char alarm_msg[64];
static size_t alarm_msg_len;


/* What one end of a pairs connection did. */
struct side_result {
	uint64_t sent;
	uint64_t received;
	int err;		/* 0, an errno value, or ERR_EOF */
	unsigned int peer_port;	/* server only: the client's port */
	unsigned int rtt_us;	/* client only: tcpi_rtt (smoothed RTT, us) before close */
	/* the handshake: the client's connect() call (ns, CLOCK_MONOTONIC); each
	 * end's tcpi_rtt and tcpi_total_retrans read right after connect() or
	 * accept(), before any byte was sent (the kernel's handshake sample) */
	uint64_t connect_ns;
	unsigned int hs_rtt_us;
	unsigned int hs_retrans;
	/* --final-info, client only: its TCP_INFO once the socket is closed
	 * (TCP_CLOSE, the fd still open), when nothing in it moves any more */
	struct final_info {
		uint64_t bytes_retrans, delivery_rate;
		uint32_t rtt, min_rtt, snd_mss, total_retrans, segs_in, segs_out, lost;
		uint32_t dsack_dups, reord_seen, rcv_ooopack, delivered_ce, snd_cwnd, snd_ssthresh;
		uint32_t total_rto_time;
		uint16_t total_rto, total_rto_recoveries;
		bool rto; /* the kernel has the total_rto fields (6.7+) */
	} fin;
};

struct conn_spec {
	uint64_t c;		/* bytes the client sends */
	uint64_t s;		/* bytes the server sends back */
};

static void usage(void)
{
	printf(
"usage: mltraffic [--cgroup DIR] [--syncnt N] [--max-seconds S] [--quiet] MODE ...\n"
"  pairs ADDR C:S [C:S ...] [--close client|server] [--hold-ms MS]\n"
"        [--hold-until FILE] [--interval-ms MS] [--final-info]\n"
"  many ADDR N [--base-bytes B] [--close ...] [--hold-ms MS] [--interval-ms MS]\n"
"  connect ADDR PORT [--timeout-ms MS]\n"
"  serve ADDR PORT [--count N]\n"
"  send ADDR PORT BYTES\n"
"  storm ADDR N [--bytes B] [--cpu CLIENT_CPU,SERVER_CPU]\n"
"  hold ADDR N [--ports P]\n"
"ADDR is a numeric IPv4 or IPv6 address (::ffff:a.b.c.d for v4-mapped).\n"
"Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static void kill_server(void)
{
	pid_t pid = server_pid;

	if (pid <= 0)
		return;
	server_pid = 0;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * Harness failure: print "mltraffic: what: strerror(err)" (no strerror when
 * err is 0), kill the server if this is the parent, exit 1.
 */
static void __attribute__((noreturn, format(printf, 2, 3)))
die(int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mltraffic: %s", in_server ? "server: " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	if (!in_server)
		kill_server();
	exit(1);
}

static void on_alarm(int sig)
{
	ssize_t r;

	(void)sig;
	r = write(STDERR_FILENO, alarm_msg, alarm_msg_len);
	(void)r;
	kill_server();		/* only async-signal-safe calls */
	_exit(1);
}


static bool is_v4mapped(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	return ss->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
}


/*
 * Format an address the way meshlens reports it: v4-mapped IPv6 addresses
 * are family "ipv4" and printed dotted.  Returns the family name.
 */
static const char *fmt_addr(const struct sockaddr_storage *ss, char *buf,
			    unsigned int *port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, buf, INET6_ADDRSTRLEN);
		*port = ntohs(sin->sin_port);
		return "ipv4";
	}
	*port = ntohs(sin6->sin6_port);
	if (is_v4mapped(ss)) {
		inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf,
			  INET6_ADDRSTRLEN);
		return "ipv4";
	}
	inet_ntop(AF_INET6, &sin6->sin6_addr, buf, INET6_ADDRSTRLEN);
	return "ipv6";
}

static unsigned int addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void local_addr(int fd, struct addr *a)
{
	a->len = sizeof(a->ss);
	if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len))
		die(errno, "getsockname");
}

static void set_int_opt(int fd, int level, int name, int val, const char *what)
{
	if (setsockopt(fd, level, name, &val, sizeof(val)))
		die(errno, "setsockopt(%s)", what);
}

/*
 * A TCP socket for talking to/at @a.  A v4-mapped address needs an AF_INET6
 * socket with IPV6_V6ONLY off, whatever net.ipv6.bindv6only says.
 */
static int new_socket(const struct addr *a, int flags)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);

	if (fd < 0)
		die(errno, "socket");
	if (is_v4mapped(&a->ss))
		set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
	return fd;
}

static int client_socket(const struct addr *dst, bool nodelay)
{
	int fd = new_socket(dst, 0);

	if (opt.syncnt)
		set_int_opt(fd, IPPROTO_TCP, TCP_SYNCNT, opt.syncnt,
			    "TCP_SYNCNT");
	if (nodelay)
		set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	return fd;
}

static int listen_socket(const struct addr *a, int flags)
{
	int fd = new_socket(a, flags);

	/* Lets serve rebind a fixed port with connections in TIME_WAIT. */
	set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len))
		die(errno, "bind");
	if (listen(fd, SOMAXCONN))
		die(errno, "listen");
	return fd;
}

static int accept_conn(int lfd, struct addr *peer)
{
	for (;;) {
		int fd;

		peer->len = sizeof(peer->ss);
		fd = accept4(lfd, (struct sockaddr *)&peer->ss, &peer->len,
			     SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		/* A connection reset while queued is not ours to report. */
		if (errno != EINTR && errno != ECONNABORTED)
			die(errno, "accept");
	}
}

static void close_fd(int fd)
{
	if (close(fd))
		die(errno, "close");
}

/* Write @len bytes; returns the bytes written, *err is 0 or an errno. */
static uint64_t write_n(int fd, uint64_t len, int *err)
{
	uint64_t done = 0;

	*err = 0;
	while (done < len) {
		size_t chunk = len - done < IO_BUF_SIZE ? len - done
							: IO_BUF_SIZE;
		ssize_t n = write(fd, io_buf, chunk);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			break;
		}
		done += n;
	}
	return done;
}

/* Read exactly @len bytes; *err is 0, an errno, or ERR_EOF if cut short. */
static uint64_t read_n(int fd, uint64_t len, int *err)
{
	uint64_t done = 0;

	*err = 0;
	while (done < len) {
		size_t chunk = len - done < IO_BUF_SIZE ? len - done
							: IO_BUF_SIZE;
		ssize_t n = read(fd, io_buf, chunk);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			break;
		}
		if (n == 0) {
			*err = ERR_EOF;
			break;
		}
		done += n;
	}
	return done;
}

/* Read until EOF; returns the bytes read, *err is 0 or an errno. */
static uint64_t read_eof(int fd, int *err)
{
	uint64_t done = 0;
	ssize_t n;

	*err = 0;
	for (;;) {
		n = read(fd, io_buf, IO_BUF_SIZE);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*err = errno;
			break;
		}
		done += n;
	}
	return done;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * A connection's hold before its close: --hold-ms, or with --hold-until
 * until that file exists (a test releases it once it has seen what it
 * waits for), at most --hold-ms.
 */
static void hold(void)
{
	uint64_t left = opt.hold_ms;

	if (!opt.hold_until) {
		sleep_ms(left);
		return;
	}
	while (left && access(opt.hold_until, F_OK)) {
		uint64_t step = left < 10 ? left : 10;

		sleep_ms(step);
		left -= step;
	}
}

/* The short word for a connection outcome, as in meshlens's "failure". */
static const char *outcome_word(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case ERR_EOF:
		return "eof";
	case ECONNREFUSED:
		return "refused";
	/* EINPROGRESS: blocking connect cut short by SO_SNDTIMEO */
	case ETIMEDOUT:
	case EINPROGRESS:
		return "timeout";
	case ENETUNREACH:
	case EHOSTUNREACH:
		return "unreachable";
	case ECONNRESET:
	case EPIPE:
		return "reset";
	default:
		return "error";
	}
}

static void join_cgroup(const char *dir)
{
	char path[PATH_MAX], buf[32];
	int fd, len;
	ssize_t n;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >=
	    (int)sizeof(path))
		die(ENAMETOOLONG, "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(errno, "open %s", path);
	len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	n = write(fd, buf, len);
	if (n < 0)
		die(errno, "write %s", path);
	if (n != len)
		die(0, "write %s: short write", path);
	close_fd(fd);
}

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die(errno, "sched_setaffinity(cpu %d)", cpu);
}

/*
 * Fork a process that dies with its parent (SIGKILL), so that a killed or
 * timed-out tool never leaves one behind. Returns 0 in the child.
 */
static pid_t fork_group(void)
{
	pid_t parent = getpid();
	pid_t pid;

	/* nothing buffered may be printed twice */
	if (fflush(stdout))
		die(errno, "fflush(stdout)");
	pid = fork();
	if (pid < 0)
		die(errno, "fork");
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL))
			die(errno, "prctl(PR_SET_PDEATHSIG)");
		if (getppid() != parent)
			_exit(1);
	}
	return pid;
}

/*
 * Fork the server.  Returns 0 in the child, which dies with the parent so
 * that a killed or timed-out tool never leaves a server behind.
 */
static pid_t fork_server(void)
{
	pid_t pid = fork_group();

	if (pid == 0)
		in_server = true;
	else
		server_pid = pid;
	return pid;
}

static void wait_server(void)
{
	pid_t pid = server_pid;
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die(errno, "waitpid");
	server_pid = 0;
	if (WIFSIGNALED(status))
		die(0, "server killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status))
		die(0, "server exited with status %d", WEXITSTATUS(status));
}

/* --- pairs / many -------------------------------------------------------- */

static uint64_t mono_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#define ML_TCP_STATE_CLOSE 7 /* TCP_CLOSE of the kernel's tcp_states.h (not uapi) */

/*
 * The client's TCP_INFO once its socket is closed: its FIN sent and acked,
 * the server's received (the caller read EOF), the socket in TCP_CLOSE.
 * Fields past this machine's <linux/tcp.h> (6.7's total_rto*) are read at
 * their ABI offsets when the kernel's answer is that long.
 */
static void record_final(int fd, struct final_info *f)
{
	/* after tcpi_snd_wnd: rcv_wnd, rehash (u32), total_rto, _recoveries (u16), _time (u32) */
	const size_t rto_off = offsetof(struct tcp_info, tcpi_snd_wnd) + 4 + 8;
	unsigned char buf[512] = { 0 };
	struct tcp_info ti;
	socklen_t len;

	for (int i = 0;; i++) {
		len = sizeof(buf);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf, &len))
			die(errno, "getsockopt(TCP_INFO)");
		memcpy(&ti, buf, sizeof(ti));
		if (ti.tcpi_state == ML_TCP_STATE_CLOSE)
			break;
		if (i == 10000)
			die(0, "the socket did not reach TCP_CLOSE in 10 s");
		sleep_ms(1);
	}
	f->rtt = ti.tcpi_rtt;
	f->min_rtt = ti.tcpi_min_rtt;
	f->snd_mss = ti.tcpi_snd_mss;
	f->total_retrans = ti.tcpi_total_retrans;
	f->segs_in = ti.tcpi_segs_in;
	f->segs_out = ti.tcpi_segs_out;
	f->lost = ti.tcpi_lost;
	f->bytes_retrans = ti.tcpi_bytes_retrans;
	f->delivery_rate = ti.tcpi_delivery_rate;
	f->dsack_dups = ti.tcpi_dsack_dups;
	f->reord_seen = ti.tcpi_reord_seen;
	f->rcv_ooopack = ti.tcpi_rcv_ooopack;
	f->delivered_ce = ti.tcpi_delivered_ce;
	f->snd_cwnd = ti.tcpi_snd_cwnd;
	f->snd_ssthresh = ti.tcpi_snd_ssthresh;
	f->rto = len >= rto_off + 8;
	if (f->rto) {
		memcpy(&f->total_rto, buf + rto_off, 2);
		memcpy(&f->total_rto_recoveries, buf + rto_off + 2, 2);
		memcpy(&f->total_rto_time, buf + rto_off + 4, 4);
	}
}

/* The final TCP_INFO as a JSON object, the access log's keys and rules. */
static void print_final(const struct final_info *f)
{
	printf(",\"client_info\":{\"srtt_us\":%u,\"min_rtt_us\":%u,\"mss\":%u,"
	       "\"retransmits\":%u,\"segs_in\":%u,\"segs_out\":%u,\"lost\":%u,"
	       "\"bytes_retrans\":%" PRIu64 ",\"dsack_dups\":%u,\"reord_seen\":%u,"
	       "\"rcv_ooopack\":%u,\"delivered_ce\":%u,\"snd_cwnd\":%u",
	       f->rtt, f->min_rtt, f->snd_mss, f->total_retrans, f->segs_in, f->segs_out,
	       f->lost, f->bytes_retrans, f->dsack_dups, f->reord_seen, f->rcv_ooopack,
	       f->delivered_ce, f->snd_cwnd);
	if (f->snd_ssthresh < 0x7fffffffu) /* TCP_INFINITE_SSTHRESH: never set */
		printf(",\"snd_ssthresh\":%u", f->snd_ssthresh);
	printf(",\"delivery_rate\":%" PRIu64, f->delivery_rate);
	if (f->rto)
		printf(",\"total_rto\":%u,\"total_rto_recoveries\":%u,\"total_rto_time_ms\":%u",
		       f->total_rto, f->total_rto_recoveries, f->total_rto_time);
	printf("}");
}

/* The kernel's RTT sample of the handshake, read before any byte is sent. */
static void record_handshake(int fd, struct side_result *r)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		die(errno, "getsockopt(TCP_INFO)");
	r->hs_rtt_us = ti.tcpi_rtt;
	r->hs_retrans = ti.tcpi_total_retrans;
}

static void pairs_server(int lfd, int report_fd, const struct conn_spec *specs,
			 uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct side_result r = { 0 };
		struct addr peer;
		int fd = accept_conn(lfd, &peer);

		r.peer_port = addr_port(&peer.ss);
		record_handshake(fd, &r);
		r.received = read_n(fd, specs[i].c, &r.err);
		if (!r.err)
			r.sent = write_n(fd, specs[i].s, &r.err);
		if (!r.err) {
			if (opt.close_server) {
				hold();
			} else {
				/* Wait for the client's close. */
				r.received += read_eof(fd, &r.err);
			}
		}
		close_fd(fd);
		/* Reports are far below PIPE_BUF, so writes are whole. */
		if (write(report_fd, &r, sizeof(r)) != sizeof(r))
			die(errno, "write(report pipe)");
	}
}

/* The kernel's own smoothed RTT, ground truth for meshlens's srtt_us. */
static void record_rtt(int fd, struct side_result *r)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (!getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		r->rtt_us = ti.tcpi_rtt;
}

static void pairs_client_conn(const struct addr *dst,
			      const struct conn_spec *sp,
			      struct side_result *r, struct addr *src)
{
	int fd = client_socket(dst, false);
	uint64_t t0;

	memset(r, 0, sizeof(*r));
	/* Our own loopback listener must accept; anything else is a bug. */
	t0 = mono_now_ns();
	if (connect(fd, (const struct sockaddr *)&dst->ss, dst->len))
		die(errno, "connect");
	r->connect_ns = mono_now_ns() - t0;
	record_handshake(fd, r);
	local_addr(fd, src);
	r->sent = write_n(fd, sp->c, &r->err);
	if (!r->err)
		r->received = read_n(fd, sp->s, &r->err);
	if (!r->err) {
		if (opt.close_server) {
			/* Wait for the server's close. */
			r->received += read_eof(fd, &r->err);
		} else {
			hold();
		}
	}
	record_rtt(fd, r);
	if (!r->err && opt.final_info) {
		/* close our half, wait for the server's close: TCP_CLOSE */
		if (shutdown(fd, SHUT_WR))
			die(errno, "shutdown");
		r->received += read_eof(fd, &r->err);
		if (!r->err)
			record_final(fd, &r->fin);
	}
	close_fd(fd);
}

static void read_report(int fd, struct side_result *r)
{
	ssize_t n;

	do
		n = read(fd, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die(errno, "read(report pipe)");
	if (n != sizeof(*r))
		die(0, "server exited before reporting");
}

/*
 * Run the connections of @specs one after another, each client and server
 * closed before the next starts.  Returns the exit status.
 */
static int run_pairs(const char *addr_arg, const struct conn_spec *specs,
		     uint64_t n)
{
	int report[2];
	struct addr listen_addr, dst;
	bool all_ok = true;
	int lfd;

	parse_addr(addr_arg, 0, true, &listen_addr);
	lfd = listen_socket(&listen_addr, 0);
	local_addr(lfd, &dst);
	if (pipe2(report, O_CLOEXEC))
		die(errno, "pipe2");

	if (fork_server() == 0) {
		close_fd(report[0]);
		pairs_server(lfd, report[1], specs, n);
		exit(0);
	}
	close_fd(report[1]);
	close_fd(lfd);

	for (uint64_t i = 0; i < n; i++) {
		char src_str[INET6_ADDRSTRLEN], dst_str[INET6_ADDRSTRLEN];
		unsigned int src_port, dst_port;
		struct side_result cl, sv;
		const char *family, *outcome;
		struct addr src;

		if (i && opt.interval_ms)
			sleep_ms(opt.interval_ms);
		pairs_client_conn(&dst, &specs[i], &cl, &src);
		read_report(report[0], &sv);

		family = fmt_addr(&src.ss, src_str, &src_port);
		fmt_addr(&dst.ss, dst_str, &dst_port);
		if (sv.peer_port != src_port)
			die(0, "server accepted port %u, client is port %u",
			    sv.peer_port, src_port);

		if (cl.err)
			outcome = outcome_word(cl.err);
		else if (sv.err)
			outcome = outcome_word(sv.err);
		else if (cl.sent != specs[i].c || sv.received != specs[i].c ||
			 sv.sent != specs[i].s || cl.received != specs[i].s)
			outcome = "mismatch";
		else
			outcome = "ok";
		if (strcmp(outcome, "ok"))
			all_ok = false;

		if (!opt.quiet)
			printf("{\"event\":\"conn\",\"family\":\"%s\","
			       "\"src_addr\":\"%s\",\"src_port\":%u,"
			       "\"dst_addr\":\"%s\",\"dst_port\":%u,"
			       "\"client_sent\":%" PRIu64 ","
			       "\"client_received\":%" PRIu64 ","
			       "\"server_sent\":%" PRIu64 ","
			       "\"server_received\":%" PRIu64 ","
			       "\"client_rtt_us\":%u,"
			       "\"client_connect_ns\":%" PRIu64 ","
			       "\"client_handshake_rtt_us\":%u,"
			       "\"client_handshake_retrans\":%u,"
			       "\"server_handshake_rtt_us\":%u,"
			       "\"server_handshake_retrans\":%u,"
			       "\"outcome\":\"%s\"",
			       family, src_str, src_port, dst_str, dst_port,
			       cl.sent, cl.received, sv.sent, sv.received,
			       cl.rtt_us, cl.connect_ns, cl.hs_rtt_us, cl.hs_retrans,
			       sv.hs_rtt_us, sv.hs_retrans, outcome);
		if (!opt.quiet && opt.final_info && !cl.err)
			print_final(&cl.fin);
		if (!opt.quiet)
			printf("}\n");
	}
	close_fd(report[0]);
	wait_server();
	return all_ok ? 0 : 1;
}

static void parse_spec(const char *arg, struct conn_spec *sp)
{
	char buf[64];
	char *colon;

	if (strlen(arg) >= sizeof(buf))
		usage_error("bad spec '%s' (want C:S)", arg);
	strcpy(buf, arg);
	colon = strchr(buf, ':');
	if (!colon)
		usage_error("bad spec '%s' (want C:S)", arg);
	*colon = '\0';
	sp->c = parse_u64(buf, 0, MAX_BYTES, "client byte count");
	sp->s = parse_u64(colon + 1, 0, MAX_BYTES, "server byte count");
}

static struct conn_spec *alloc_specs(uint64_t n)
{
	struct conn_spec *specs = calloc(n, sizeof(*specs));

	if (!specs)
		die(errno, "calloc");
	return specs;
}

static int mode_pairs(int argc, char **argv)
{
	struct conn_spec *specs;
	int ret;

	if (argc < 2)
		usage_error("pairs needs ADDR and at least one C:S");
	specs = alloc_specs(argc - 1);
	for (int i = 1; i < argc; i++)
		parse_spec(argv[i], &specs[i - 1]);
	ret = run_pairs(argv[0], specs, argc - 1);
	free(specs);
	return ret;
}

static int mode_many(int argc, char **argv)
{
	struct conn_spec *specs;
	uint64_t n, b = opt.base_bytes;
	int ret;

	if (argc != 2)
		usage_error("many needs ADDR N");
	n = parse_u64(argv[1], 1, MAX_CONNS, "connection count");
	specs = alloc_specs(n);
	for (uint64_t i = 0; i < n; i++) {
		specs[i].c = b + i;
		specs[i].s = 2 * b + 3 * i;
	}
	ret = run_pairs(argv[0], specs, n);
	free(specs);
	return ret;
}

/* --- connect ------------------------------------------------------------- */

static int mode_connect(int argc, char **argv)
{
	char dst_str[INET6_ADDRSTRLEN];
	unsigned int dst_port;
	const char *family;
	struct addr dst, src;
	int fd, err = 0;

	if (argc != 2)
		usage_error("connect needs ADDR PORT");
	parse_addr(argv[0], parse_u64(argv[1], 1, 65535, "port"), true, &dst);

	fd = client_socket(&dst, false);
	if (opt.timeout_ms) {
		struct timeval tv = {
			.tv_sec = opt.timeout_ms / 1000,
			.tv_usec = (opt.timeout_ms % 1000) * 1000,
		};

		/* Bounds a blocking connect; expiry gives EINPROGRESS. */
		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
			die(errno, "setsockopt(SO_SNDTIMEO)");
	}
	if (connect(fd, (const struct sockaddr *)&dst.ss, dst.len))
		err = errno;
	/* Port 0 when the attempt failed before or after binding one. */
	local_addr(fd, &src);
	close_fd(fd);

	family = fmt_addr(&dst.ss, dst_str, &dst_port);
	if (!opt.quiet)
		printf("{\"event\":\"connect\",\"family\":\"%s\","
		       "\"dst_addr\":\"%s\",\"dst_port\":%u,\"src_port\":%u,"
		       "\"outcome\":\"%s\",\"errno\":%d}\n",
		       family, dst_str, dst_port, addr_port(&src.ss),
		       outcome_word(err), err);
	return 0;
}

/* --- serve / send -------------------------------------------------------- */

static int mode_serve(int argc, char **argv)
{
	char str[INET6_ADDRSTRLEN];
	struct addr a;
	unsigned int port;
	const char *family;
	bool all_ok = true;
	int lfd;

	if (argc != 2)
		usage_error("serve needs ADDR PORT");
	parse_addr(argv[0], parse_u64(argv[1], 0, 65535, "port"), true, &a);
	lfd = listen_socket(&a, 0);

	/* Readiness signal (and the port, if 0 was asked for); never quiet. */
	local_addr(lfd, &a);
	family = fmt_addr(&a.ss, str, &port);
	printf("{\"event\":\"listening\",\"family\":\"%s\",\"addr\":\"%s\","
	       "\"port\":%u}\n", family, str, port);
	if (fflush(stdout))
		die(errno, "fflush(stdout)");

	for (uint64_t i = 0; i < opt.count; i++) {
		struct addr peer;
		uint64_t received;
		int fd, err;

		fd = accept_conn(lfd, &peer);
		received = read_eof(fd, &err);
		close_fd(fd);
		if (err)
			all_ok = false;
		fmt_addr(&peer.ss, str, &port);
		if (!opt.quiet)
			printf("{\"event\":\"served\",\"src_addr\":\"%s\","
			       "\"src_port\":%u,\"received\":%" PRIu64 ","
			       "\"outcome\":\"%s\",\"errno\":%d}\n",
			       str, port, received, outcome_word(err), err);
	}
	close_fd(lfd);
	return all_ok ? 0 : 1;
}

static int mode_send(int argc, char **argv)
{
	uint64_t bytes, sent = 0, received = 0;
	struct addr dst, src;
	int fd, err = 0;

	if (argc != 3)
		usage_error("send needs ADDR PORT BYTES");
	parse_addr(argv[0], parse_u64(argv[1], 1, 65535, "port"), true, &dst);
	bytes = parse_u64(argv[2], 0, MAX_BYTES, "byte count");

	fd = client_socket(&dst, false);
	if (connect(fd, (const struct sockaddr *)&dst.ss, dst.len))
		err = errno;
	local_addr(fd, &src);
	if (!err)
		sent = write_n(fd, bytes, &err);
	if (!err && shutdown(fd, SHUT_WR))
		err = errno;
	if (!err)
		received = read_eof(fd, &err);
	close_fd(fd);

	if (!opt.quiet)
		printf("{\"event\":\"sent\",\"src_port\":%u,"
		       "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ","
		       "\"outcome\":\"%s\",\"errno\":%d}\n",
		       addr_port(&src.ss), sent, received, outcome_word(err),
		       err);
	return err ? 1 : 0;
}

/* --- storm --------------------------------------------------------------- */

/*
 * Echo @bytes on every connection until the parent closes @ctl_fd.  The
 * listener is non-blocking so that poll() is only paid when idle.  Failures
 * on a connection are seen by the client (it gets fewer bytes back), so they
 * are not counted here.
 */
static void storm_server(int lfd, int ctl_fd, uint64_t bytes)
{
	struct pollfd pfd[2] = {
		{ .fd = lfd, .events = POLLIN },
		{ .fd = ctl_fd, .events = POLLIN },
	};

	for (;;) {
		/* accept4() does not inherit O_NONBLOCK: fd is blocking. */
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		int err;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				die(errno, "accept");
			if (poll(pfd, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				die(errno, "poll");
			}
			/* Parent done (pipe hung up) and nothing queued. */
			if (!(pfd[0].revents & POLLIN) && pfd[1].revents)
				return;
			continue;
		}
		/* TCP_NODELAY is inherited from the listener. */
		if (read_n(fd, bytes, &err) == bytes && !err &&
		    write_n(fd, bytes, &err) == bytes && !err)
			read_eof(fd, &err);
		close_fd(fd);
	}
}

static void parse_cpus(const char *arg)
{
	char buf[32];
	char *comma;

	if (strlen(arg) >= sizeof(buf))
		usage_error("bad --cpu '%s' (want CLIENT_CPU,SERVER_CPU)", arg);
	strcpy(buf, arg);
	comma = strchr(buf, ',');
	if (!comma)
		usage_error("bad --cpu '%s' (want CLIENT_CPU,SERVER_CPU)", arg);
	*comma = '\0';
	opt.client_cpu = parse_u64(buf, 0, CPU_SETSIZE - 1, "client cpu");
	opt.server_cpu = parse_u64(comma + 1, 0, CPU_SETSIZE - 1, "server cpu");
	opt.pin = true;
}

static int mode_storm(int argc, char **argv)
{
	struct timespec t0, t1;
	struct addr listen_addr, dst;
	uint64_t n, errors = 0;
	double secs;
	int ctl[2];
	int lfd;

	if (argc != 2)
		usage_error("storm needs ADDR N");
	parse_addr(argv[0], 0, true, &listen_addr);
	n = parse_u64(argv[1], 1, MAX_CONNS, "connection count");

	lfd = listen_socket(&listen_addr, SOCK_NONBLOCK);
	set_int_opt(lfd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	local_addr(lfd, &dst);
	if (pipe2(ctl, O_CLOEXEC))
		die(errno, "pipe2");

	if (fork_server() == 0) {
		close_fd(ctl[1]);
		if (opt.pin)
			pin_cpu(opt.server_cpu);
		storm_server(lfd, ctl[0], opt.bytes);
		exit(0);
	}
	close_fd(ctl[0]);
	close_fd(lfd);
	if (opt.pin)
		pin_cpu(opt.client_cpu);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < n; i++) {
		int fd = client_socket(&dst, true);
		int err;

		if (connect(fd, (const struct sockaddr *)&dst.ss, dst.len) ||
		    write_n(fd, opt.bytes, &err) != opt.bytes || err ||
		    read_n(fd, opt.bytes, &err) != opt.bytes || err)
			errors++;
		close_fd(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	close_fd(ctl[1]);
	wait_server();

	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"event\":\"storm\",\"conns\":%" PRIu64 ",\"seconds\":%.6f,"
	       "\"conns_per_sec\":%.1f,\"errors\":%" PRIu64 "}\n",
	       n, secs, (n - errors) / secs, errors);
	return errors ? 1 : 0;
}

/* --- hold ---------------------------------------------------------------- */

/*
 * hold ADDR N [--ports P]: N connections established and held open, for
 * memory measurements.  The listeners (P, default one per 2000 connections:
 * picking a free local port for connect() slows down sharply as one
 * destination's share of the ephemeral range fills) are split into groups,
 * each a client and its forked server, small enough for RLIMIT_NOFILE.
 * Prints {"event":"holding",...} once every connection is established and
 * accepted, holds them until SIGTERM/SIGINT or EOF on stdin, closes them
 * all (clients first) and prints {"event":"released",...}.  --max-seconds
 * still bounds the whole run, holding included.
 *
 * Connections per listener port when --ports is not given; one port's
 * connections must fit the ephemeral port range (32768-60999 by default). */
#define HOLD_CONNS_PER_PORT	2000
#define HOLD_MAX_PER_PORT	28000
/* Descriptors a process needs besides its sockets. */
#define HOLD_SPARE_FDS		64

static volatile sig_atomic_t hold_stop;

static void on_hold_stop(int sig)
{
	(void)sig;
	hold_stop = 1;
}

/*
 * Raise the soft RLIMIT_NOFILE towards @want (and the hard one, which only
 * CAP_SYS_RESOURCE may do); returns the soft limit in force.
 */
static uint64_t raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die(errno, "getrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return want;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit hi = { .rlim_cur = want, .rlim_max = want };

		if (!setrlimit(RLIMIT_NOFILE, &hi))
			return want;
	}
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ?
		      want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die(errno, "setrlimit(RLIMIT_NOFILE, %" PRIu64 ")",
		    (uint64_t)rl.rlim_cur);
	return rl.rlim_cur;
}

/*
 * Accept on every listener until the parent closes @ctl_fd, keeping each
 * accepted socket open (nothing is read or written).  Reports the count on
 * @report_fd once @n were accepted.
 */
static void hold_server(const int *lfds, uint64_t ports, uint64_t n,
			int ctl_fd, int report_fd)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	uint64_t accepted = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		die(errno, "epoll_create1");
	for (uint64_t i = 0; i < ports; i++) {
		ev.data.fd = lfds[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, lfds[i], &ev))
			die(errno, "epoll_ctl");
	}
	ev.data.fd = ctl_fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ctl_fd, &ev))
		die(errno, "epoll_ctl");
	for (;;) {
		int k = epoll_wait(ep, evs, 64, -1);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			die(errno, "epoll_wait");
		}
		for (int i = 0; i < k; i++) {
			if (evs[i].data.fd == ctl_fd)
				return;	/* parent done: exit closes them all */
			for (;;) {
				int fd = accept4(evs[i].data.fd, NULL, NULL,
						 SOCK_CLOEXEC);

				if (fd < 0) {
					if (errno == EINTR ||
					    errno == ECONNABORTED)
						continue;
					if (errno == EAGAIN)
						break;
					die(errno, "accept");
				}
				if (++accepted == n &&
				    write(report_fd, &accepted,
					  sizeof(accepted)) != sizeof(accepted))
					die(errno, "write(report pipe)");
			}
		}
	}
}

/* Wait until @fd reads EOF (or hangs up), or the stop signal came.  An
 * invalid @fd (no stdin) leaves the signals only. */
static void wait_eof(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[256];

	while (!hold_stop) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die(errno, "poll");
		}
		if (pfd.revents & POLLNVAL) {
			pfd.fd = -1;
			continue;
		}
		if (pfd.revents) {
			ssize_t n = read(fd, buf, sizeof(buf));

			if (n == 0 || (n < 0 && errno != EINTR &&
				       errno != EAGAIN))
				return;
		}
	}
}


/*
 * One group: @ports listeners served by a forked server, @n client
 * connections spread over them.  Writes one byte to @ready_fd once every
 * connection is established and accepted, holds them until @ctl_fd reads
 * EOF, then closes everything.
 */
static void hold_group(const struct addr *listen_addr, uint64_t ports,
		       uint64_t n, int ctl_fd, int ready_fd)
{
	int sctl[2], report[2];
	struct addr *dst = calloc(ports, sizeof(*dst));
	int *lfds = calloc(ports, sizeof(*lfds));
	int *fds = calloc(n, sizeof(*fds));
	uint64_t accepted = 0, made = 0;

	if (!lfds || !dst || !fds)
		die(errno, "calloc");
	for (uint64_t i = 0; i < ports; i++) {
		/* not listen_socket(): SO_REUSEADDR makes binding port 0
		 * scan for conflicts, quadratic over thousands of ports */
		lfds[i] = new_socket(listen_addr, SOCK_NONBLOCK);
		if (bind(lfds[i], (const struct sockaddr *)&listen_addr->ss,
			 listen_addr->len))
			die(errno, "bind");
		if (listen(lfds[i], SOMAXCONN))
			die(errno, "listen");
		local_addr(lfds[i], &dst[i]);
	}
	if (pipe2(sctl, O_CLOEXEC) || pipe2(report, O_CLOEXEC))
		die(errno, "pipe2");
	if (fork_server() == 0) {
		close_fd(sctl[1]);
		close_fd(report[0]);
		hold_server(lfds, ports, n, sctl[0], report[1]);
		exit(0);
	}
	close_fd(sctl[0]);
	close_fd(report[1]);
	for (uint64_t i = 0; i < ports; i++)
		close_fd(lfds[i]);

	for (; made < n && !hold_stop; made++) {
		const struct addr *d = &dst[made % ports];

		fds[made] = client_socket(d, false);
		/* Interrupted by the stop signal: closed below. */
		if (connect(fds[made], (const struct sockaddr *)&d->ss,
			    d->len) && !(errno == EINTR && hold_stop))
			die(errno, "connect (connection %" PRIu64 ")",
			    made + 1);
	}
	if (!hold_stop) {
		ssize_t r;

		do
			r = read(report[0], &accepted, sizeof(accepted));
		while (r < 0 && errno == EINTR && !hold_stop);
		if (r != sizeof(accepted) && !hold_stop)
			die(r < 0 ? errno : 0,
			    "server exited before accepting all");
	}
	if (!hold_stop) {
		/* EPIPE: the parent stopped waiting, release at once */
		if (write(ready_fd, "r", 1) == 1)
			wait_eof(ctl_fd);
		else if (errno != EPIPE)
			die(errno, "write(ready pipe)");
	}
	for (uint64_t i = 0; i < made; i++)
		close_fd(fds[i]);
	close_fd(sctl[1]);
	close_fd(report[0]);
	wait_server();
	free(fds);
	free(lfds);
	free(dst);
}

static int mode_hold(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_hold_stop };
	uint64_t n, ports, groups, per_proc, limit;
	struct timespec t0, t1;
	struct addr listen_addr;
	int ctl[2], ready[2];
	bool all_ok = true;
	pid_t *pids;
	double secs;

	if (argc != 2)
		usage_error("hold needs ADDR N");
	parse_addr(argv[0], 0, true, &listen_addr);
	n = parse_u64(argv[1], 1, MAX_CONNS, "connection count");
	ports = opt.ports ? opt.ports
			  : (n + HOLD_CONNS_PER_PORT - 1) / HOLD_CONNS_PER_PORT;
	if (ports > n)
		usage_error("--ports %" PRIu64 " is more than the %" PRIu64
			    " connections", ports, n);
	if ((n + ports - 1) / ports > HOLD_MAX_PER_PORT)
		usage_error("%" PRIu64 " connections per port exceed the "
			    "ephemeral port range (raise --ports)",
			    (n + ports - 1) / ports);

	/*
	 * A server holds its listeners and accepted sockets, a client its
	 * connections: split the work into groups (a client and its server
	 * each) that fit the descriptor limit.
	 */
	limit = raise_nofile(n + ports + HOLD_SPARE_FDS);
	if (limit <= 2 * HOLD_SPARE_FDS)
		die(0, "RLIMIT_NOFILE %" PRIu64 " is too low", limit);
	per_proc = limit - HOLD_SPARE_FDS;
	groups = (n + ports + per_proc - 1) / per_proc;
	while ((n + groups - 1) / groups + (ports + groups - 1) / groups >
	       per_proc)
		groups++;
	/* every group listens on ports of its own */
	if (ports < groups)
		ports = groups;
	if (groups > n)
		usage_error("%" PRIu64 " connections over %" PRIu64
			    " ports do not fit RLIMIT_NOFILE %" PRIu64,
			    n, ports, limit);

	/* Stop cleanly: closing the sockets is part of what is measured. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		die(errno, "sigaction");
	if (pipe2(ctl, O_CLOEXEC) || pipe2(ready, O_CLOEXEC))
		die(errno, "pipe2");
	pids = calloc(groups, sizeof(*pids));
	if (!pids)
		die(errno, "calloc");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t g = 0; g < groups; g++) {
		/* even shares: the first (x % groups) groups get one more */
		uint64_t gp = ports / groups + (g < ports % groups);
		uint64_t gn = n / groups + (g < n % groups);

		pids[g] = fork_group();
		if (pids[g] == 0) {
			close_fd(ctl[1]);
			close_fd(ready[0]);
			hold_group(&listen_addr, gp, gn, ctl[0], ready[1]);
			exit(0);
		}
	}
	close_fd(ctl[0]);
	close_fd(ready[1]);

	for (uint64_t g = 0; g < groups && !hold_stop; g++) {
		char c;
		ssize_t r = read(ready[0], &c, 1);

		if (r < 0 && errno == EINTR) {
			g--;
			continue;
		}
		if (r != 1) {
			all_ok = false;	/* a group died; it said why */
			break;
		}
	}
	if (all_ok && !hold_stop) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (t1.tv_sec - t0.tv_sec) +
		       (t1.tv_nsec - t0.tv_nsec) / 1e9;
		/* Readiness signal; never quiet. */
		printf("{\"event\":\"holding\",\"conns\":%" PRIu64
		       ",\"ports\":%" PRIu64 ",\"groups\":%" PRIu64
		       ",\"seconds\":%.6f}\n", n, ports, groups, secs);
		if (fflush(stdout))
			die(errno, "fflush(stdout)");
		wait_eof(STDIN_FILENO);
	}

	/* Release: every group closes its connections, then its server. */
	close_fd(ctl[1]);
	close_fd(ready[0]);
	for (uint64_t g = 0; g < groups; g++) {
		int status;

		while (waitpid(pids[g], &status, 0) < 0)
			if (errno != EINTR)
				die(errno, "waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			all_ok = false;
	}
	free(pids);
	if (!all_ok)
		return 1;
	printf("{\"event\":\"released\",\"conns\":%" PRIu64 "}\n", n);
	return 0;
}

/* --- main ---------------------------------------------------------------- */

static const struct mode_desc {
	const char *name;
	int (*run)(int argc, char **argv);
	unsigned int allowed;	/* MODE_OPT() bits of accepted options */
} modes[] = {
	{ "pairs", mode_pairs,
	  MODE_OPT(OPT_CLOSE) | MODE_OPT(OPT_HOLD_MS) |
	  MODE_OPT(OPT_HOLD_UNTIL) | MODE_OPT(OPT_INTERVAL_MS) | MODE_OPT(OPT_FINAL_INFO) },
	{ "many", mode_many,
	  MODE_OPT(OPT_CLOSE) | MODE_OPT(OPT_HOLD_MS) |
	  MODE_OPT(OPT_INTERVAL_MS) | MODE_OPT(OPT_BASE_BYTES) | MODE_OPT(OPT_FINAL_INFO) },
	{ "connect", mode_connect, MODE_OPT(OPT_TIMEOUT_MS) },
	{ "serve", mode_serve, MODE_OPT(OPT_COUNT) },
	{ "send", mode_send, 0 },
	{ "storm", mode_storm, MODE_OPT(OPT_BYTES) | MODE_OPT(OPT_CPU) },
	{ "hold", mode_hold, MODE_OPT(OPT_PORTS) },
};

static const struct option long_opts[] = {
	{ "cgroup",	 required_argument, NULL, OPT_CGROUP },
	{ "syncnt",	 required_argument, NULL, OPT_SYNCNT },
	{ "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
	{ "quiet",	 no_argument,	    NULL, OPT_QUIET },
	{ "help",	 no_argument,	    NULL, OPT_HELP },
	{ "close",	 required_argument, NULL, OPT_CLOSE },
	{ "hold-ms",	 required_argument, NULL, OPT_HOLD_MS },
	{ "hold-until",	 required_argument, NULL, OPT_HOLD_UNTIL },
	{ "final-info",	 no_argument,	    NULL, OPT_FINAL_INFO },
	{ "interval-ms", required_argument, NULL, OPT_INTERVAL_MS },
	{ "base-bytes",	 required_argument, NULL, OPT_BASE_BYTES },
	{ "timeout-ms",	 required_argument, NULL, OPT_TIMEOUT_MS },
	{ "count",	 required_argument, NULL, OPT_COUNT },
	{ "bytes",	 required_argument, NULL, OPT_BYTES },
	{ "cpu",	 required_argument, NULL, OPT_CPU },
	{ "ports",	 required_argument, NULL, OPT_PORTS },
	{ 0 }
};

/*
 * Options may appear anywhere (GNU permutation), so "pairs ADDR 1:2
 * --close server" works; returns the MODE_OPT() bits of mode options seen.
 */
static unsigned int parse_options(int argc, char **argv)
{
	unsigned int seen = 0;
	int c;

	opterr = 0;	/* we print our own single-line errors */
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		if (c >= OPT_CLOSE && c < OPT_CGROUP)
			seen |= MODE_OPT(c);
		switch (c) {
		case OPT_CGROUP:
			opt.cgroup = optarg;
			break;
		case OPT_SYNCNT:
			/* the kernel caps TCP_SYNCNT at 127 */
			opt.syncnt = parse_u64(optarg, 1, 127, "--syncnt");
			break;
		case OPT_MAX_SECONDS:
			opt.max_seconds = parse_u64(optarg, 1, 86400,
						    "--max-seconds");
			break;
		case OPT_QUIET:
			opt.quiet = true;
			break;
		case OPT_HELP:
			usage();
			exit(0);
		case OPT_CLOSE:
			if (!strcmp(optarg, "server"))
				opt.close_server = true;
			else if (!strcmp(optarg, "client"))
				opt.close_server = false;
			else
				usage_error("bad --close '%s' (want client or server)",
					    optarg);
			break;
		case OPT_HOLD_MS:
			opt.hold_ms = parse_u64(optarg, 0, MAX_MS, "--hold-ms");
			break;
		case OPT_HOLD_UNTIL:
			opt.hold_until = optarg;
			break;
		case OPT_FINAL_INFO:
			opt.final_info = true;
			break;
		case OPT_INTERVAL_MS:
			opt.interval_ms = parse_u64(optarg, 0, MAX_MS,
						    "--interval-ms");
			break;
		case OPT_BASE_BYTES:
			opt.base_bytes = parse_u64(optarg, 0, MAX_BYTES,
						   "--base-bytes");
			break;
		case OPT_TIMEOUT_MS:
			opt.timeout_ms = parse_u64(optarg, 1, MAX_MS,
						   "--timeout-ms");
			break;
		case OPT_COUNT:
			opt.count = parse_u64(optarg, 1, MAX_CONNS, "--count");
			break;
		case OPT_BYTES:
			opt.bytes = parse_u64(optarg, 0, MAX_BYTES, "--bytes");
			break;
		case OPT_CPU:
			parse_cpus(optarg);
			break;
		case OPT_PORTS:
			opt.ports = parse_u64(optarg, 1, 28000, "--ports");
			break;
		case ':':
			usage_error("option '%s' needs an argument",
				    argv[optind - 1]);
		default:
			if (optopt)	/* a short option, maybe in a bundle */
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	return seen;
}

int main(int argc, char **argv)
{
	const struct mode_desc *mode = NULL;
	struct sigaction sa = { .sa_handler = on_alarm };
	unsigned int seen;
	int ret;

	seen = parse_options(argc, argv);
	if (optind >= argc)
		usage_error("missing MODE");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(argv[optind], modes[i].name))
			mode = &modes[i];
	if (!mode)
		usage_error("unknown mode '%s'", argv[optind]);
	if (seen & ~mode->allowed) {
		for (const struct option *o = long_opts; o->name; o++)
			if (o->val < OPT_CGROUP &&
			    (seen & ~mode->allowed & MODE_OPT(o->val)))
				usage_error("--%s does not apply to %s",
					    o->name, mode->name);
	}
	if (opt.final_info && opt.close_server)
		usage_error("--final-info needs the client to close first (--close client)");

	/* Lines go out whole as soon as they are known (tests tail them). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A dead peer must show up as EPIPE, not kill the tool. */
	signal(SIGPIPE, SIG_IGN);
	alarm_msg_len = snprintf(alarm_msg, sizeof(alarm_msg),
				 "mltraffic: timed out after %u s\n",
				 opt.max_seconds);
	if (sigaction(SIGALRM, &sa, NULL))
		die(errno, "sigaction");
	alarm(opt.max_seconds);

	if (opt.cgroup)
		join_cgroup(opt.cgroup);

	ret = mode->run(argc - optind - 1, argv + optind + 1);
	if (fflush(stdout) || ferror(stdout))
		die(errno, "write(stdout)");
	return ret;
}
