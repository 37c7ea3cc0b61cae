// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: the whole metrics endpoint (metrics/http.c on
 * libmicrohttpd), over real loopback TCP.
 *
 * The request parsing is MHD's; ours is the routing, the snapshot hand-over
 * and the Accept-Encoding parser (the latter also fuzzed in process by
 * fuzz_http_parse). Once per process: start metrics_http_start() on a free
 * 127.0.0.1 port and a thread that plays the event loop (publishes a small
 * body whenever metrics_http_wanted()). Per input: connect, send the bytes
 * raw, half-close, read the answer until EOF or a deadline. Checked:
 *   - an answer, if any, starts with an HTTP/1.x status line;
 *   - the server stays alive and correct: every CHECK_EVERY inputs, GET
 *     /healthz answers 200 "ok" and GET /metrics (plain and gzip) answers
 *     200 with the published body.
 *
 * Each input costs a TCP connection and an MHD thread, so this runs at
 * hundreds, not hundreds of thousands, of inputs per second: it is a smoke
 * test of the request path under ASan/UBSan more than a deep fuzzer.
 * Client sockets bind to rotating 127.x.y.z source addresses, so TIME_WAIT
 * never exhausts the ephemeral ports however long it runs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "metrics/http.h"

#define CHECK_EVERY 64
#define ANSWER_MAX (256 * 1024)
#define DEADLINE_MS 3000

static struct metrics_http *server;
static uint16_t port;
static uint64_t inputs, slow;
static char body[4096];
static size_t body_len;

static __attribute__((noreturn)) void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_http: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The event loop's part: answer every snapshot request with the same body. */
static void *loop_thread(void *arg)
{
	struct pollfd pfd = { .fd = metrics_http_notify_fd(server), .events = POLLIN };

	(void)arg;
	for (;;) {
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			die("poll", strerror(errno));
		if (metrics_http_wanted(server)) {
			char *b = malloc(body_len);

			if (!b)
				die("out of memory", NULL);
			memcpy(b, body, body_len);
			metrics_http_publish(server, b, body_len);
		}
	}
	return NULL;
}

/*
 * One connection: send req (and half-close after it if half), read until
 * EOF, reset or the deadline into ans (NUL-terminated). Returns the
 * answer's length. (A /metrics request waits suspended for the loop's
 * snapshot; MHD takes a half-close seen after the resume for an abort and
 * sends nothing, so the liveness checks, which must get their answer, do
 * not half-close.)
 */
static size_t exchange(const void *req, size_t len, char *ans, size_t cap, bool half)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	uint32_t n = (uint32_t)(inputs % (254u * 254u * 254u));
	int64_t deadline = now_ms() + DEADLINE_MS;
	size_t got = 0, sent = 0;
	int fd, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* 127.a.b.c, a, b, c in 1..254: a fresh source address per connection */
	src.sin_addr.s_addr = htonl(127u << 24 | (n / (254 * 254) + 1) << 16 |
				    (n / 254 % 254 + 1) << 8 | (n % 254 + 1));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)))
		die("bind to a 127/8 source address", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		/* a signal (libFuzzer's timers) lets the connect go on in the background */
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int err = errno, r;
		socklen_t el = sizeof(err);

		if (err != EINTR)
			die("connect to the metrics server (is it dead?)", strerror(err));
		do
			r = poll(&pfd, 1, DEADLINE_MS);
		while (r < 0 && errno == EINTR);
		if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
			die("connect to the metrics server (is it dead?)",
			    r <= 0 ? "timed out" : strerror(err));
	}

	while (sent < len) {
		ssize_t w = send(fd, (const char *)req + sent, len - sent, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;	/* the server closed on us: fine, read what it said */
		sent += w;
	}
	if (half)
		shutdown(fd, SHUT_WR);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t r;

		if (left <= 0) {
			slow++;
			break;
		}
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		r = recv(fd, ans + got, cap - 1 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
		if (got == cap - 1)
			break;
	}
	ans[got] = '\0';
	close(fd);
	return got;
}

static bool status_line_ok(const char *ans, size_t len)
{
	return len >= 12 && (!strncmp(ans, "HTTP/1.1 ", 9) || !strncmp(ans, "HTTP/1.0 ", 9)) &&
	       ans[9] >= '1' && ans[9] <= '5' && ans[10] >= '0' && ans[10] <= '9' &&
	       ans[11] >= '0' && ans[11] <= '9';
}

static bool gunzip_equals(const unsigned char *in, size_t len, const char *want, size_t want_len)
{
	unsigned char *out = malloc(want_len + 1);
	z_stream zs;
	bool ok;

	if (!out)
		return false;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK) {
		free(out);
		return false;
	}
	zs.next_in = (Bytef *)in;
	zs.avail_in = len;
	zs.next_out = out;
	zs.avail_out = want_len + 1;
	ok = inflate(&zs, Z_FINISH) == Z_STREAM_END && zs.total_out == want_len &&
	     !memcmp(out, want, want_len);
	inflateEnd(&zs);
	free(out);
	return ok;
}

/* GET path; the answer must be 200 with exactly this body (gunzipped if gz). */
static void expect(const char *path, bool gz, const char *want, size_t want_len)
{
	char req[256], *ans = malloc(ANSWER_MAX);
	const char *hdr_end;
	size_t len;

	if (!ans)
		die("out of memory", NULL);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", path,
		 gz ? "Accept-Encoding: gzip\r\n" : "");
	len = exchange(req, strlen(req), ans, ANSWER_MAX, false);
	if (!status_line_ok(ans, len) || strncmp(ans + 9, "200", 3)) {
		fprintf(stderr, "answer:\n%s\n", ans);
		die("liveness check failed for", path);
	}
	hdr_end = strstr(ans, "\r\n\r\n");
	if (!hdr_end)
		die("no end of headers in the answer for", path);
	hdr_end += 4;
	len -= hdr_end - ans;
	if (gz ? !gunzip_equals((const unsigned char *)hdr_end, len, want, want_len)
	       : len != want_len || memcmp(hdr_end, want, want_len)) {
		fprintf(stderr, "answer:\n%s\n", ans);
		die("wrong body for", path);
	}
	free(ans);
}

static void check_alive(void)
{
	expect("/healthz", false, "ok\n", 3);
	expect("/metrics", false, body, body_len);
	expect("/metrics", true, body, body_len);
}

static void report(void)
{
	fprintf(stderr, "fuzz_http: %llu inputs, %llu hit the %d ms deadline\n",
		(unsigned long long)inputs, (unsigned long long)slow, DEADLINE_MS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char addr[64], err[256];
	pthread_t t;
	size_t off = 0;

	(void)argc;
	(void)argv;
	off += snprintf(body + off, sizeof(body) - off,
			"# HELP meshlens_fuzz_total Fuzzing.\n# TYPE meshlens_fuzz_total counter\n");
	for (int i = 0; i < 40; i++)
		off += snprintf(body + off, sizeof(body) - off,
				"meshlens_fuzz_total{i=\"%d\"} %d\n", i, i * 7);
	body_len = off;

	/* a free port: bind :0, note it, release it; retry if someone takes it meanwhile */
	for (int tries = 0; !server && tries < 20; tries++) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		socklen_t sl = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    getsockname(fd, (struct sockaddr *)&sa, &sl))
			die("finding a free port", strerror(errno));
		close(fd);
		port = ntohs(sa.sin_port);
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
		server = metrics_http_start(addr, err, sizeof(err));
	}
	if (!server)
		die("metrics_http_start", err);
	metrics_http_set_ready(server, true);
	if (pthread_create(&t, NULL, loop_thread, NULL))
		die("pthread_create", NULL);
	pthread_detach(t);
	atexit(report);
	check_alive();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char ans[ANSWER_MAX];
	size_t len;

	inputs++;
	len = exchange(data, size, ans, sizeof(ans), true);
	if (len && !status_line_ok(ans, len)) {
		fprintf(stderr, "answer:\n%.*s\n", (int)(len > 300 ? 300 : len), ans);
		die("answer does not start with an HTTP status line", NULL);
	}
	if (inputs % CHECK_EVERY == 0)
		check_alive();
	return 0;
}
