// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Drop diagnosis on the real kernel, inside a private network namespace so
 * that its MIB counters, sysctls and lo belong to this test alone: a listener
 * with backlog 1 that never accepts, flooded with connects to 127.0.0.1, must
 * be reported with the accept queue length and limit the kernel gives for it
 * through TCP_INFO (for a listener tcpi_unacked is the accept queue length,
 * tcpi_sacked its limit), and ListenOverflows read from /proc by this test.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "drops/diagnose.h"

#define MAX_FINDINGS 256
#define MAX_CLIENTS 32

static struct {
	const char *unavailable; /* why the namespace could not be set up */
	int listener;
	unsigned int port;
	int clients[MAX_CLIENTS];
	int n_clients;
	char subject[64]; /* "listener 127.0.0.1:PORT" */
} fx = { .listener = -1 };

static struct diag_finding findings[MAX_FINDINGS];

/* Root-only: skip elsewhere, but a CI run must not pass by skipping. */
static void need_netns(void)
{
	if (!fx.unavailable)
		return;
	fprintf(stderr, "test_diagnose: SKIPPED: %s\n", fx.unavailable);
	if (getenv("CI") && !strcmp(getenv("CI"), "true"))
		fail_msg("%s (CI=true: not skipping)", fx.unavailable);
	skip();
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Ground truth read independently of the module: TcpExt counters, by name. */
static uint64_t tcpext(const char *name)
{
	FILE *f = fopen("/proc/net/netstat", "r");
	char names[8192], values[8192];
	uint64_t v = UINT64_MAX;

	assert_non_null(f);
	while (fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
		char *ns, *vs, *n = strtok_r(names, " \n", &ns);
		char *val = strtok_r(values, " \n", &vs);

		if (strcmp(n, "TcpExt:"))
			continue;
		while ((n = strtok_r(NULL, " \n", &ns)) && (val = strtok_r(NULL, " \n", &vs)))
			if (!strcmp(n, name))
				v = strtoull(val, NULL, 10);
	}
	fclose(f);
	assert_true(v != UINT64_MAX);
	return v;
}

static void accept_queue(unsigned int *len, unsigned int *limit)
{
	struct tcp_info ti;
	socklen_t sl = sizeof(ti);

	assert_int_equal(getsockopt(fx.listener, IPPROTO_TCP, TCP_INFO, &ti, &sl), 0);
	*len = ti.tcpi_unacked;
	*limit = ti.tcpi_sacked;
}

static void connect_to(unsigned int port, int n)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

		assert_true(fd >= 0 && fx.n_clients < MAX_CLIENTS);
		assert_true(!connect(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
			    errno == EINPROGRESS);
		fx.clients[fx.n_clients++] = fd;
	}
}

/* A listener on 127.0.0.1, port chosen by the kernel; -1 on failure. */
static int listen_lo(int backlog, unsigned int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, backlog) ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Wait (up to 5 s) until ListenOverflows exceeds old. */
static uint64_t wait_overflows_above(uint64_t old)
{
	uint64_t v = tcpext("ListenOverflows");

	for (int i = 0; i < 500 && v <= old; i++) {
		sleep_ms(10);
		v = tcpext("ListenOverflows");
	}
	assert_true(v > old);
	return v;
}

static const char *set_up_netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd;

	if (geteuid())
		return "not root: a private network namespace needs CAP_SYS_ADMIN";
	if (unshare(CLONE_NEWNET))
		return "unshare(CLONE_NEWNET) failed";
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr))
		return "cannot read lo's flags";
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		return "cannot bring lo up";
	close(fd);
	fx.listener = listen_lo(1, &fx.port);
	if (fx.listener < 0)
		return "cannot listen on 127.0.0.1";
	snprintf(fx.subject, sizeof(fx.subject), "listener 127.0.0.1:%u", fx.port);
	return NULL;
}

static int group_setup(void **state)
{
	unsigned int len = 0, limit = 0;

	(void)state;
	fx.unavailable = set_up_netns();
	if (fx.unavailable)
		return 0;
	/*
	 * The first two connections fill the queue (the kernel takes backlog + 1);
	 * the SYNs of the others are dropped, each a ListenOverflows.
	 */
	connect_to(fx.port, 5);
	for (int i = 0; i < 500 && len <= limit; i++) {
		sleep_ms(10);
		accept_queue(&len, &limit);
	}
	wait_overflows_above(0);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < fx.n_clients; i++)
		close(fx.clients[i]);
	if (fx.listener >= 0)
		close(fx.listener);
	return 0;
}

static const struct diag_finding *find(int n, const char *point, const char *subject)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(findings[i].point, point) && !strcmp(findings[i].subject, subject))
			return &findings[i];
	return NULL;
}

/* The number after "key " in s. */
static uint64_t number_after(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	assert_non_null(p);
	return strtoull(p + strlen(key), NULL, 10);
}

static void test_accept_queue_overflow(void **state)
{
	struct diag_state *s;
	unsigned int len, limit, len2, limit2;
	const struct diag_finding *f;
	uint64_t before, after, reported;
	char expect[64];
	int n;

	(void)state;
	need_netns();
	s = diag_new();
	assert_non_null(s);
	accept_queue(&len, &limit);
	before = tcpext("ListenOverflows");
	n = diag_run(s, findings, MAX_FINDINGS);
	after = tcpext("ListenOverflows");
	accept_queue(&len2, &limit2);
	assert_true(n > 0);
	/* Nobody accepts, so the kernel's figures hold still: a full queue, limit 1. */
	assert_int_equal(len, len2);
	assert_int_equal(limit, limit2);
	assert_int_equal(limit, 1);
	assert_true(len > limit);

	f = find(n, "l4.tcp.accept_queue", fx.subject);
	assert_non_null(f);
	assert_int_equal(f->severity, DIAG_PROBLEM);
	assert_string_equal(f->layer, "l4");
	snprintf(expect, sizeof(expect), "accept queue %u of %u (len/limit), ", len, limit);
	assert_memory_equal(f->evidence, expect, strlen(expect));
	reported = number_after(f->evidence, "ListenOverflows ");
	assert_true(reported >= before && reported <= after);
	assert_non_null(strstr(f->evidence, ", ListenDrops "));
	assert_non_null(strstr(f->hint, "accept()"));
	assert_non_null(strstr(f->hint, "net.core.somaxconn"));
	diag_free(s);
}

static void test_listen_overflows_delta(void **state)
{
	uint64_t a0, a1, a2, a3, first, delta;
	const struct diag_finding *f;
	struct diag_state *s;
	int n;

	(void)state;
	need_netns();
	s = diag_new();
	assert_non_null(s);

	/* First run: no baseline, the total so far is history, a warning. */
	a0 = tcpext("ListenOverflows");
	n = diag_run(s, findings, MAX_FINDINGS);
	a1 = tcpext("ListenOverflows");
	f = find(n, "l4.tcp.accept_queue", "TcpExt ListenOverflows");
	assert_non_null(f);
	assert_int_equal(f->severity, DIAG_WARNING);
	assert_non_null(strstr(f->evidence, "since boot"));
	first = strtoull(f->evidence, NULL, 10);
	assert_true(first >= a0 && first <= a1 && first > 0);

	/* The queue is full: every new connect's SYN is an overflow. */
	connect_to(fx.port, 2);
	a2 = wait_overflows_above(a1);
	n = diag_run(s, findings, MAX_FINDINGS);
	a3 = tcpext("ListenOverflows");
	f = find(n, "l4.tcp.accept_queue", "TcpExt ListenOverflows");
	assert_non_null(f);
	assert_int_equal(f->severity, DIAG_PROBLEM);
	assert_int_equal(f->evidence[0], '+');
	delta = strtoull(f->evidence + 1, NULL, 10);
	assert_true(delta >= 1);
	assert_true(delta >= a2 - a1 && delta <= a3 - a0);
	assert_non_null(strstr(f->evidence, "since last check"));
	/* the listener is still full */
	assert_non_null(find(n, "l4.tcp.accept_queue", fx.subject));
	diag_free(s);
}

static void test_sorted_and_bounded(void **state)
{
	struct diag_state *s;
	int n;

	(void)state;
	need_netns();
	s = diag_new();
	assert_non_null(s);
	n = diag_run(s, findings, MAX_FINDINGS);
	assert_true(n > 1);
	for (int i = 1; i < n; i++) {
		const struct diag_finding *a = &findings[i - 1], *b = &findings[i];
		int c = strcmp(a->layer, b->layer);

		assert_true(a->severity >= b->severity);
		if (a->severity == b->severity) {
			assert_true(c >= 0); /* l4 before l1 */
			if (!c)
				assert_true(strcmp(a->point, b->point) <= 0);
		}
	}
	/* max keeps the most severe */
	assert_int_equal(diag_run(s, findings, 1), 1);
	assert_int_equal(findings[0].severity, DIAG_PROBLEM);
	assert_int_equal(diag_run(s, findings, 0), 0);
	diag_free(s);
}

static char *print_to_string(const struct diag_finding *f, int n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	assert_non_null(m);
	diag_print(m, f, n);
	fclose(m);
	return buf;
}

static void test_print_report(void **state)
{
	char line[1024], somaxconn[32] = "";
	const struct diag_finding *f;
	struct diag_state *s;
	struct stat st;
	FILE *sc;
	char *out;
	int n;

	(void)state;
	need_netns();
	s = diag_new();
	assert_non_null(s);
	n = diag_run(s, findings, MAX_FINDINGS);
	f = find(n, "l4.tcp.accept_queue", fx.subject);
	assert_non_null(f);
	out = print_to_string(findings, n);

	assert_int_equal(stat("/proc/self/ns/net", &st), 0);
	snprintf(line, sizeof(line), "meshlens drop diagnosis (netns inode %" PRIu64 ", ",
		 (uint64_t)st.st_ino);
	assert_memory_equal(out, line, strlen(line));
	snprintf(line, sizeof(line),
		 "[PROBLEM] l4 l4.tcp.accept_queue  %s\n    evidence: %s\n    hint: %s\n",
		 fx.subject, f->evidence, f->hint);
	assert_non_null(strstr(out, line));
	/* the hint carries the current somaxconn */
	sc = fopen("/proc/sys/net/core/somaxconn", "r");
	assert_non_null(sc);
	assert_non_null(fgets(somaxconn, sizeof(somaxconn), sc));
	fclose(sc);
	somaxconn[strcspn(somaxconn, "\n")] = '\0';
	snprintf(line, sizeof(line), "net.core.somaxconn (%s)", somaxconn);
	assert_non_null(strstr(f->hint, line));
	free(out);

	out = print_to_string(findings, 0);
	assert_non_null(strstr(out, "\nno drop points with evidence found\n"));
	free(out);
	diag_free(s);
}

/* Every sample belongs to the family of the # TYPE line before it, each family declared once. */
static void check_exposition(const char *text)
{
	char family[128] = "", declared[4096] = " ";
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len, name_len;

		assert_non_null(end);
		len = (size_t)(end - line);
		if (!strncmp(line, "# TYPE ", 7)) {
			char key[sizeof(family) + 2];

			name_len = strcspn(line + 7, " ");
			assert_true(name_len < sizeof(family));
			memcpy(family, line + 7, name_len);
			family[name_len] = '\0';
			snprintf(key, sizeof(key), " %s ", family);
			assert_null(strstr(declared, key));
			assert_true(strlen(declared) + name_len + 1 < sizeof(declared));
			strcat(declared, key + 1);
		} else if (strncmp(line, "# HELP ", 7)) {
			name_len = strcspn(line, "{ ");
			assert_true(family[0]);
			assert_int_equal(name_len, strlen(family));
			assert_memory_equal(line, family, name_len);
			assert_true(len > name_len);
		}
		line = end + 1;
	}
}

static void test_render_metrics(void **state)
{
	char path[] = "/tmp/ml-diag-XXXXXX", cmd[128], want[128], *text, *p, out[4096];
	struct expo e = { 0 };
	struct diag_state *s;
	uint64_t before, after, v;
	size_t got;
	FILE *f;
	int fd;

	(void)state;
	need_netns();
	s = diag_new();
	assert_non_null(s);
	/* findings appear once a period passed: a baseline, then a pass */
	diag_render(s, &e);
	text = strndup(e.buf, e.len);
	assert_non_null(text);
	assert_non_null(strstr(text, "\nmeshlens_diag_findings{severity=\"problem\"} 0\n"));
	/* a render reads no source itself: nothing before the first refresh */
	assert_null(strstr(text, "meshlens_diag_netstat_total"));
	free(text);
	expo_reset(&e);
	assert_true(diag_run(s, NULL, 0) >= 0);
	assert_true(diag_run(s, NULL, 0) >= 0);
	/* the figures are those diag_refresh() read (the daemon: each refresh) */
	before = tcpext("ListenOverflows");
	assert_int_equal(diag_refresh(s), 0);
	after = tcpext("ListenOverflows");
	diag_render(s, &e);
	assert_false(e.oom);
	text = strndup(e.buf, e.len);
	assert_non_null(text);
	check_exposition(text);

	p = strstr(text,
		   "\nmeshlens_diag_netstat_total{mib=\"TcpExt\",counter=\"ListenOverflows\"} ");
	assert_non_null(p);
	v = strtoull(strchr(p + 1, ' ') + 1, NULL, 10);
	assert_true(v > 0 && v >= before && v <= after);
	assert_non_null(strstr(text, "\nmeshlens_nic_rx_dropped_total{interface=\"lo\"} "));
	assert_non_null(strstr(text, "\nmeshlens_nic_rx_missed_errors_total{interface=\"lo\"} "));
	snprintf(want, sizeof(want),
		 "\nmeshlens_diag_listen_queue_full{listener=\"127.0.0.1:%u\"} 1\n", fx.port);
	assert_non_null(strstr(text, want));
	p = strstr(text, "\nmeshlens_diag_findings{severity=\"problem\"} ");
	assert_non_null(p);
	assert_true(strtoull(strchr(p + 1, ' ') + 1, NULL, 10) >= 1);

	if (!access("/usr/bin/promtool", X_OK)) {
		fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, e.buf, e.len), (ssize_t)e.len);
		close(fd);
		snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s 2>&1", path);
		f = popen(cmd, "r");
		assert_non_null(f);
		got = fread(out, 1, sizeof(out) - 1, f);
		out[got] = '\0';
		assert_int_equal(pclose(f), 0);
		unlink(path);
		assert_string_equal(out, "");
	}
	free(text);
	expo_free(&e);
	diag_free(s);
}

static void write_sysctl(const char *path, const char *v)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(v, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void read_sysctl(const char *path, char *v, size_t len)
{
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_non_null(fgets(v, (int)len, f));
	fclose(f);
}

/* Settings of the private namespace, changed and put back. */
static void test_sysctl_checks(void **state)
{
	static const char *const paths[] = {
		"/proc/sys/net/ipv4/conf/all/rp_filter",
		"/proc/sys/net/ipv4/conf/lo/rp_filter",
		"/proc/sys/net/core/somaxconn",
		"/proc/sys/net/ipv4/tcp_syncookies",
	};
	const struct diag_finding *f;
	char saved[4][32];
	struct diag_state *s;
	int n;

	(void)state;
	need_netns();
	for (int i = 0; i < 4; i++)
		read_sysctl(paths[i], saved[i], sizeof(saved[i]));
	s = diag_new();
	assert_non_null(s);

	write_sysctl(paths[0], "1");
	write_sysctl(paths[2], "128");
	write_sysctl(paths[3], "0");
	n = diag_run(s, findings, MAX_FINDINGS);
	f = find(n, "l3.ip.rp_filter", "net.ipv4.conf.all.rp_filter");
	assert_non_null(f);
	assert_int_equal(f->severity, DIAG_WARNING);
	assert_non_null(strstr(f->hint, "asymmetric"));
	f = find(n, "l4.tcp.accept_queue", "net.core.somaxconn");
	assert_non_null(f);
	assert_int_equal(f->severity, DIAG_INFO);
	assert_non_null(strstr(f->evidence, "somaxconn 128"));
	f = find(n, "l4.tcp.syn_queue", "net.ipv4.tcp_syncookies");
	assert_non_null(f);
	assert_int_equal(f->severity, DIAG_WARNING);
	assert_non_null(strstr(f->evidence, "tcp_syncookies 0, tcp_max_syn_backlog "));

	/* all = 0: an interface's own strict setting counts */
	write_sysctl(paths[0], "0");
	write_sysctl(paths[1], "1");
	n = diag_run(s, findings, MAX_FINDINGS);
	assert_null(find(n, "l3.ip.rp_filter", "net.ipv4.conf.all.rp_filter"));
	f = find(n, "l3.ip.rp_filter", "net.ipv4.conf.lo.rp_filter");
	assert_non_null(f);
	assert_non_null(strstr(f->evidence, "on 1 interface(s): lo;"));

	for (int i = 0; i < 4; i++)
		write_sysctl(paths[i], saved[i]);
	n = diag_run(s, findings, MAX_FINDINGS);
	assert_null(find(n, "l3.ip.rp_filter", "net.ipv4.conf.lo.rp_filter"));
	assert_null(find(n, "l4.tcp.syn_queue", "net.ipv4.tcp_syncookies"));
	diag_free(s);
}

/* How many lines a shell command prints. */
static int count_lines(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	char line[512];
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n++;
	assert_int_equal(pclose(f), 0);
	return n;
}

/* iptables -A (add) or -D (delete) a rule dropping the ACKs to port; the netns is private. */
static void drop_pure_acks(char op, unsigned int port)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd),
		 "/usr/sbin/iptables -w -%c INPUT -p tcp --dport %u "
		 "--tcp-flags SYN,ACK,FIN,RST ACK -j DROP",
		 op, port);
	assert_int_equal(system(cmd), 0);
}

/*
 * Handshakes that never complete: with the clients' ACKs dropped (iptables,
 * in this namespace only) the request sockets pile up in SYN_RECV until the
 * SYN queue is full, and syncookies take over.
 */
static void test_syn_queue_full(void **state)
{
	char cmd[256], expect[64], subject[64];
	const struct diag_finding *f;
	struct diag_state *s;
	unsigned int port;
	int fd, n, syn_recv;

	(void)state;
	need_netns();
	if (access("/usr/sbin/iptables", X_OK)) {
		if (getenv("CI") && !strcmp(getenv("CI"), "true"))
			fail_msg("iptables missing (CI=true: not skipping)");
		skip();
	}
	fd = listen_lo(2, &port);
	assert_true(fd >= 0);
	drop_pure_acks('A', port);
	connect_to(port, 4);

	snprintf(cmd, sizeof(cmd), "ss -Htn state syn-recv 'sport = :%u'", port);
	syn_recv = count_lines(cmd);
	for (int i = 0; i < 500 && syn_recv <= 2; i++) {
		sleep_ms(10);
		syn_recv = count_lines(cmd);
	}
	s = diag_new();
	assert_non_null(s);
	n = diag_run(s, findings, MAX_FINDINGS);
	assert_int_equal(count_lines(cmd), syn_recv);
	snprintf(subject, sizeof(subject), "listener 127.0.0.1:%u", port);
	f = find(n, "l4.tcp.syn_queue", subject);
	assert_non_null(f);
	/* syncookies (the namespace's default 1) answer instead of dropping */
	assert_int_equal(f->severity, DIAG_WARNING);
	snprintf(expect, sizeof(expect), "SYN queue %d of 2 (len/limit), ", syn_recv);
	assert_memory_equal(f->evidence, expect, strlen(expect));
	/* an accept queue with nothing in it is not reported */
	assert_null(find(n, "l4.tcp.accept_queue", subject));

	drop_pure_acks('D', port);
	close(fd);
	diag_free(s);
}

static void test_print_empty(void **state)
{
	char *out;

	(void)state;
	out = print_to_string(NULL, 0);
	assert_memory_equal(out, "meshlens drop diagnosis (netns inode ", 37);
	assert_non_null(strstr(out, ")\nno drop points with evidence found\n"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_queue_overflow),
		cmocka_unit_test(test_listen_overflows_delta),
		cmocka_unit_test(test_sorted_and_bounded),
		cmocka_unit_test(test_print_report),
		cmocka_unit_test(test_render_metrics),
		cmocka_unit_test(test_sysctl_checks),
		cmocka_unit_test(test_syn_queue_full),
		cmocka_unit_test(test_print_empty),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
