// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of metrics/http.c: a real server on loopback, a raw HTTP client
 * written here (no curl), and a small loop thread that answers snapshot
 * requests the way the daemon's event loop does. Bodies carry a render
 * counter, so each check knows which render it was served and that the
 * body arrived whole; gzip is checked by inflating with zlib.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "metrics/http.h"

#include "lib/util.h"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define FILLER_LINES 200	/* makes bodies worth compressing */
#define MAX_HEADERS 32
#define CONCURRENT 50
#define GZIP "Accept-Encoding: gzip\r\n"

/* ---- helpers ---- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Render n: "m n\n" then filler lines that repeat n. */
static char *make_body(int n, size_t *len)
{
	size_t cap = 64 + FILLER_LINES * 64, off;
	char *b = malloc(cap);

	assert_non_null(b);
	off = snprintf(b, cap, "m %d\n", n);
	for (int i = 0; i < FILLER_LINES; i++)
		off += snprintf(b + off, cap - off, "meshlens_test_filler{i=\"%d\"} %d\n", i, n);
	*len = off;
	return b;
}

/* The render counter of a complete, well-formed body; -1 for anything else. */
static int body_gen(const char *body, size_t len)
{
	char *want;
	size_t want_len;
	int n, ok;

	if (!body || sscanf(body, "m %d\n", &n) != 1)
		return -1;
	want = make_body(n, &want_len);
	ok = want_len == len && memcmp(want, body, len) == 0;
	free(want);
	return ok ? n : -1;
}

static char *gunzip(const char *in, size_t len, size_t *out_len)
{
	size_t cap = 4096;
	char *out = malloc(cap + 1);
	z_stream zs;
	int rc;

	assert_non_null(out);
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, 15 + 32), Z_OK);
	zs.next_in = (Bytef *)in;
	zs.avail_in = len;
	do {
		if (zs.total_out == cap) {
			cap *= 2;
			out = realloc(out, cap + 1);
			assert_non_null(out);
		}
		zs.next_out = (Bytef *)out + zs.total_out;
		zs.avail_out = cap - zs.total_out;
		rc = inflate(&zs, Z_NO_FLUSH);
	} while (rc == Z_OK);
	assert_int_equal(rc, Z_STREAM_END);
	assert_int_equal(zs.avail_in, 0);
	*out_len = zs.total_out;
	out[*out_len] = '\0';
	inflateEnd(&zs);
	return out;
}

/* ---- raw HTTP client ---- */

struct resp {
	int status;			/* 0: no response (connection closed) */
	int nhdr;
	char name[MAX_HEADERS][64];
	char value[MAX_HEADERS][256];
	char *body;			/* NUL-terminated */
	size_t body_len;
	bool whole;			/* body as long as Content-Length says */
};

static void resp_free(struct resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static const char *header(const struct resp *r, const char *name)
{
	for (int i = 0; i < r->nhdr; i++)
		if (strcasecmp(r->name[i], name) == 0)
			return r->value[i];
	return NULL;
}

static int connect_to(int family, int port)
{
	struct timeval tv = { .tv_sec = 15 };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	in6.sin6_addr = in6addr_loopback;
	if (family == AF_INET ? connect(fd, (struct sockaddr *)&in, sizeof(in))
			      : connect(fd, (struct sockaddr *)&in6, sizeof(in6))) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Send raw (a failed send is tolerated: the server may refuse mid-request)
 * and read until the server closes; returns the bytes read, NUL-terminated.
 */
static char *exchange(int family, int port, const char *raw, size_t rawlen, size_t *len)
{
	size_t cap = 65536, off = 0;
	char *buf = malloc(cap + 1);
	int fd = connect_to(family, port);
	ssize_t n;

	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (off < rawlen && (n = send(fd, raw + off, rawlen - off, MSG_NOSIGNAL)) > 0)
		off += n;
	off = 0;
	while ((n = recv(fd, buf + off, cap - off, 0)) > 0) {
		off += n;
		if (off == cap) {
			char *more = realloc(buf, 2 * cap + 1);

			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
	}
	close(fd);
	buf[off] = '\0';
	*len = off;
	return buf;
}

/*
 * Parse one response at buf; returns the bytes it spans, or 0 if there is
 * none. Runs on client threads too, so it reports failure instead of asserting.
 */
static size_t parse_resp(const char *buf, size_t len, bool head, struct resp *r)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *line, *cl;
	size_t hlen, want;

	memset(r, 0, sizeof(*r));
	if (!end || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
		r->status = 0;
		return 0;
	}
	for (line = strstr(buf, "\r\n") + 2; line < end && r->nhdr < MAX_HEADERS;
	     line = strstr(line, "\r\n") + 2) {
		const char *colon = memchr(line, ':', end - line), *eol = strstr(line, "\r\n");
		const char *v = colon + 1;

		if (!colon || colon > eol)
			continue;
		while (*v == ' ')
			v++;
		snprintf(r->name[r->nhdr], sizeof(r->name[0]), "%.*s", (int)(colon - line), line);
		snprintf(r->value[r->nhdr], sizeof(r->value[0]), "%.*s", (int)(eol - v), v);
		r->nhdr++;
	}
	hlen = end + 4 - buf;
	cl = header(r, "Content-Length");
	if (head)
		want = 0;
	else
		want = cl ? strtoul(cl, NULL, 10) : len - hlen;
	r->whole = hlen + want <= len;
	r->body_len = r->whole ? want : len - hlen;
	r->body = malloc(r->body_len + 1);
	if (!r->body) {
		r->status = 0;
		return 0;
	}
	memcpy(r->body, buf + hlen, r->body_len);
	r->body[r->body_len] = '\0';
	return hlen + r->body_len;
}

static void http_raw(int port, const char *raw, size_t rawlen, bool head, struct resp *r)
{
	size_t len;
	char *buf = exchange(AF_INET, port, raw, rawlen, &len);

	memset(r, 0, sizeof(*r));
	if (buf)
		parse_resp(buf, len, head, r);
	free(buf);
}

static void http_family(int family, int port, const char *method, const char *path,
			const char *headers, struct resp *r)
{
	char raw[1024];
	size_t len;
	char *buf;

	snprintf(raw, sizeof(raw),
		 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n", method, path,
		 headers ? headers : "");
	buf = exchange(family, port, raw, strlen(raw), &len);
	memset(r, 0, sizeof(*r));
	if (buf)
		parse_resp(buf, len, strcmp(method, "HEAD") == 0, r);
	free(buf);
}

static void http(int port, const char *method, const char *path, const char *headers,
		 struct resp *r)
{
	http_family(AF_INET, port, method, path, headers, r);
}

/* The render counter of a 200 /metrics response, inflating it if gzipped; -1 if not whole. */
static int served_gen(const struct resp *r)
{
	const char *enc = header(r, "Content-Encoding");
	size_t len;
	char *plain;
	int n;

	if (r->status != 200 || !r->whole)
		return -1;
	if (!enc)
		return body_gen(r->body, r->body_len);
	if (strcmp(enc, "gzip") != 0)
		return -1;
	plain = gunzip(r->body, r->body_len, &len);
	n = body_gen(plain, len);
	free(plain);
	return n;
}

/* A client on its own thread; it never asserts (cmocka asserts belong to the main thread). */
struct job {
	int port;
	const char *path, *headers;
	struct resp r;
	atomic_bool done;
	double took;			/* seconds from start to the server's close */
	pthread_t tid;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	double t0 = now();

	http(j->port, "GET", j->path, j->headers, &j->r);
	j->took = now() - t0;
	atomic_store(&j->done, true);
	return NULL;
}

static void job_start(struct job *j, int port, const char *path, const char *headers)
{
	memset(j, 0, sizeof(*j));
	j->port = port;
	j->path = path;
	j->headers = headers;
	assert_int_equal(pthread_create(&j->tid, NULL, job_main, j), 0);
}

static void job_join(struct job *j)
{
	assert_int_equal(pthread_join(j->tid, NULL), 0);
}

/* ---- server and loop ---- */

static int free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	port = ntohs(in.sin_port);
	close(fd);
	return port;
}

/* Another process may grab the free port before we bind it: retry a few times. */
static struct metrics_http *start_free(int *port)
{
	char addr[32], err[256] = "";
	struct metrics_http *h;

	for (int i = 0; i < 20; i++) {
		*port = free_port();
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", *port);
		h = metrics_http_start(addr, err, sizeof(err));
		if (h)
			return h;
	}
	fail_msg("%s", err);
	return NULL;
}

struct fixture {
	struct metrics_http *h;
	int port;
	pthread_t loop;
	bool looping;
	atomic_bool quit;
	atomic_int renders;
};

/* What the daemon's event loop does: render on request, counting renders. */
static void *loop_main(void *arg)
{
	struct fixture *f = arg;
	struct pollfd p = { .fd = metrics_http_notify_fd(f->h), .events = POLLIN };

	while (!atomic_load(&f->quit)) {
		size_t len;
		char *body;

		if (poll(&p, 1, 20) != 1 || !metrics_http_wanted(f->h))
			continue;
		body = make_body(atomic_fetch_add(&f->renders, 1) + 1, &len);
		metrics_http_publish(f->h, body, len);
	}
	return NULL;
}

static int setup_bare(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->h = start_free(&f->port);
	*state = f;
	return 0;
}

static int setup_loop(void **state)
{
	struct fixture *f;

	setup_bare(state);
	f = *state;
	assert_int_equal(pthread_create(&f->loop, NULL, loop_main, f), 0);
	f->looping = true;
	return 0;
}

/* Stopping an idle server is quick: a slow stop means a request was never accounted done. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	double t0;

	if (f->looping) {
		atomic_store(&f->quit, true);
		assert_int_equal(pthread_join(f->loop, NULL), 0);
	}
	t0 = now();
	metrics_http_stop(f->h);
	assert_true(now() - t0 < 0.9);
	free(f);
	return 0;
}

/* Collect n scrape notifications from notify_fd (the test plays the loop). */
static void await_scrapes(struct metrics_http *h, uint64_t n)
{
	struct pollfd p = { .fd = metrics_http_notify_fd(h), .events = POLLIN };
	double deadline = now() + 3;
	uint64_t seen = 0, v;

	while (seen < n && now() < deadline)
		if (poll(&p, 1, 50) == 1 && read(p.fd, &v, sizeof(v)) == sizeof(v))
			seen += v;
	assert_int_equal(seen, n);
}

static void publish_gen(struct metrics_http *h, int n)
{
	size_t len;
	char *body = make_body(n, &len);

	metrics_http_publish(h, body, len);
}

/* ---- start-up ---- */

static void test_bad_addresses(void **state)
{
	static const char *const bad[] = {
		"nonsense", "1.2.3.4:0", "[::1]", "127.0.0.1:99999", "", ":2112",
		"127.0.0.1:", "127.0.0.1:80x", "127.0.0.1:+80", "127.0.0.1:-1",
		"::1:2112", "[::1:2112", "[127.0.0.1]:2112", "256.0.0.1:2112", "1.2.3:2112",
		"example.com:2112", "localhost:65536",
	};
	int fds = open_fds();

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char err[256] = "", want[128];

		snprintf(want, sizeof(want), "metrics address %s: ", bad[i]);
		assert_null(metrics_http_start(bad[i], err, sizeof(err)));
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("%s: got \"%s\"", bad[i], err);
		assert_null(strchr(err, '\n'));
	}
	assert_int_equal(open_fds(), fds);
}

static void test_address_in_use(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	char addr[32], err[256] = "", want[128];
	int fd = socket(AF_INET, SOCK_STREAM, 0), fds;

	(void)state;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(in.sin_port));

	fds = open_fds();
	assert_null(metrics_http_start(addr, err, sizeof(err)));
	snprintf(want, sizeof(want), "metrics address %s: Address already in use", addr);
	assert_string_equal(err, want);
	assert_int_equal(open_fds(), fds);
	close(fd);
}

static void test_localhost(void **state)
{
	char addr[32], err[256] = "";
	struct metrics_http *h;
	struct resp r;
	int port = free_port(), fds = open_fds();

	(void)state;
	snprintf(addr, sizeof(addr), "localhost:%d", port);
	h = metrics_http_start(addr, err, sizeof(err));
	if (!h)
		fail_msg("%s", err);
	metrics_http_set_ready(h, true);
	http(port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	metrics_http_stop(h);
	assert_int_equal(open_fds(), fds);
}

static void test_ipv6(void **state)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof(in6);
	char addr[32], err[256] = "";
	struct metrics_http *h;
	struct resp r;
	int fd = socket(AF_INET6, SOCK_STREAM, 0), port;

	(void)state;
	if (fd < 0 || bind(fd, (struct sockaddr *)&in6, sizeof(in6))) {
		if (fd >= 0)
			close(fd);
		skip();
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in6, &len), 0);
	port = ntohs(in6.sin6_port);
	close(fd);

	snprintf(addr, sizeof(addr), "[::1]:%d", port);
	h = metrics_http_start(addr, err, sizeof(err));
	if (!h)
		fail_msg("%s", err);
	metrics_http_set_ready(h, true);
	http_family(AF_INET6, port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);
	metrics_http_stop(h);
}

/* ---- /metrics ---- */

static void test_metrics(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	http(f->port, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), METRICS_TYPE);
	assert_non_null(strstr(header(&r, "Vary"), "Accept-Encoding"));
	assert_null(header(&r, "Content-Encoding"));
	assert_int_equal(served_gen(&r), 1);
	assert_memory_equal(r.body, "m 1\n", 4);
	resp_free(&r);

	http(f->port, "HEAD", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), METRICS_TYPE);
	assert_int_equal(r.body_len, 0);
	resp_free(&r);

	/* the query string does not take part in routing */
	http(f->port, "GET", "/metrics?name[]=x", NULL, &r);
	assert_int_equal(served_gen(&r), 3);
	resp_free(&r);

	/* a body on GET is read and ignored */
	http(f->port, "GET", "/metrics", "Content-Length: 5\r\n\r\nhello", &r);
	assert_int_equal(served_gen(&r), 4);
	resp_free(&r);
}

static void test_each_scrape_fresh(void **state)
{
	struct fixture *f = *state;
	int last = 0;

	for (int i = 0; i < 5; i++) {
		struct resp r;
		int n;

		http(f->port, "GET", "/metrics", NULL, &r);
		n = served_gen(&r);
		assert_true(n > last);
		last = n;
		resp_free(&r);
	}
	assert_int_equal(atomic_load(&f->renders), 5);
}

static void test_gzip(void **state)
{
	static const struct {
		const char *accept;
		bool gzip;
	} cases[] = {
		{ "Accept-Encoding: gzip\r\n", true },
		{ "Accept-Encoding: GZip\r\n", true },
		{ "Accept-Encoding: deflate, gzip;q=0.5\r\n", true },
		{ "Accept-Encoding: br , gzip ; q=1.0 , deflate\r\n", true },
		{ "Accept-Encoding: gzip;q=0.001\r\n", true },
		{ "Accept-Encoding: x-gzip\r\n", true },
		{ "Accept-Encoding: *\r\n", true },
		{ "Accept-Encoding: identity\r\nAccept-Encoding: gzip\r\n", true },
		{ "Accept-Encoding: gzip;q=0\r\n", false },
		{ "Accept-Encoding: gzip; q=0.000\r\n", false },
		{ "Accept-Encoding: *, gzip;q=0\r\n", false },
		{ "Accept-Encoding: gzip;q=2\r\n", false },
		{ "Accept-Encoding: gzip;q=0.5.1\r\n", false },
		{ "Accept-Encoding: gzipx, xgzip\r\n", false },
		{ "Accept-Encoding: identity\r\n", false },
		{ "Accept-Encoding: \r\n", false },
		{ "X-Accept-Encoding: gzip\r\n", false },
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *enc;
		struct resp r;

		http(f->port, "GET", "/metrics", cases[i].accept, &r);
		assert_int_equal(r.status, 200);
		enc = header(&r, "Content-Encoding");
		if (cases[i].gzip != (enc != NULL))
			fail_msg("%s: Content-Encoding %s", cases[i].accept, enc ? enc : "none");
		assert_true(served_gen(&r) > 0);
		assert_string_equal(header(&r, "Content-Type"), METRICS_TYPE);
		assert_non_null(strstr(header(&r, "Vary"), "Accept-Encoding"));
		resp_free(&r);
	}
}

/* Compression does not change the body: both scrapes share one render, the test's. */
static void test_gzip_identical(void **state)
{
	struct fixture *f = *state;
	size_t plain_len, len;
	struct job gz, id;
	char *plain, *want;

	job_start(&gz, f->port, "/metrics", GZIP);
	job_start(&id, f->port, "/metrics", NULL);
	await_scrapes(f->h, 2);
	assert_true(metrics_http_wanted(f->h));
	want = make_body(42, &len);
	publish_gen(f->h, 42);
	job_join(&gz);
	job_join(&id);

	assert_int_equal(id.r.status, 200);
	assert_int_equal(id.r.body_len, len);
	assert_memory_equal(id.r.body, want, len);
	assert_int_equal(gz.r.status, 200);
	assert_string_equal(header(&gz.r, "Content-Encoding"), "gzip");
	assert_true(gz.r.whole);
	assert_true(gz.r.body_len < len / 4);
	plain = gunzip(gz.r.body, gz.r.body_len, &plain_len);
	assert_int_equal(plain_len, len);
	assert_memory_equal(plain, want, len);
	free(plain);
	free(want);
	resp_free(&gz.r);
	resp_free(&id.r);
}

/* Scrapes waiting together are answered by a single render. */
static void test_waiters_share_render(void **state)
{
	struct fixture *f = *state;
	struct job jobs[10];

	assert_false(metrics_http_wanted(f->h));
	for (size_t i = 0; i < ARRAY_SIZE(jobs); i++)
		job_start(&jobs[i], f->port, "/metrics", i % 2 ? GZIP : NULL);
	await_scrapes(f->h, ARRAY_SIZE(jobs));
	assert_true(metrics_http_wanted(f->h));
	publish_gen(f->h, 7);
	for (size_t i = 0; i < ARRAY_SIZE(jobs); i++) {
		job_join(&jobs[i]);
		assert_int_equal(served_gen(&jobs[i].r), 7);
		resp_free(&jobs[i].r);
	}
	assert_false(metrics_http_wanted(f->h));
}

/* A scrape that arrives while a render is under way gets the next render, not that one. */
static void test_late_scrape_waits_for_next_render(void **state)
{
	struct fixture *f = *state;
	struct job early, late;

	publish_gen(f->h, 1);		/* a body published unasked answers nobody */
	job_start(&early, f->port, "/metrics", NULL);
	await_scrapes(f->h, 1);
	assert_true(metrics_http_wanted(f->h));	/* the render for early begins */
	job_start(&late, f->port, "/metrics", NULL);
	await_scrapes(f->h, 1);
	publish_gen(f->h, 2);
	job_join(&early);
	assert_int_equal(served_gen(&early.r), 2);

	usleep(200 * 1000);
	assert_false(atomic_load(&late.done));
	assert_true(metrics_http_wanted(f->h));
	publish_gen(f->h, 3);
	job_join(&late);
	assert_int_equal(served_gen(&late.r), 3);
	assert_false(metrics_http_wanted(f->h));
	resp_free(&early.r);
	resp_free(&late.r);
}

static void test_snapshot_timeout(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	double t0 = now(), took;

	http(f->port, "GET", "/metrics", NULL, &r);
	took = now() - t0;
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "snapshot timeout\n");
	assert_true(took > 4.5 && took < 8);
	resp_free(&r);
}

static void test_concurrent_scrapes(void **state)
{
	struct fixture *f = *state;
	struct job *jobs = calloc(CONCURRENT, sizeof(*jobs));

	assert_non_null(jobs);
	for (int i = 0; i < CONCURRENT; i++)
		job_start(&jobs[i], f->port, "/metrics", i % 2 ? GZIP : NULL);
	for (int i = 0; i < CONCURRENT; i++) {
		job_join(&jobs[i]);
		if (served_gen(&jobs[i].r) <= 0)
			fail_msg("scrape %d: status %d, %zu bytes", i, jobs[i].r.status,
				 jobs[i].r.body_len);
		assert_int_equal(!!header(&jobs[i].r, "Content-Encoding"), i % 2);
		resp_free(&jobs[i].r);
	}
	free(jobs);
}

static void test_stop_while_waiting(void **state)
{
	struct fixture *f = *state;
	struct job j;
	double t0;

	job_start(&j, f->port, "/metrics", NULL);
	await_scrapes(f->h, 1);
	t0 = now();
	metrics_http_stop(f->h);
	assert_true(now() - t0 < 2);
	f->h = NULL;
	job_join(&j);
	assert_int_equal(j.r.status, 503);
	assert_string_equal(j.r.body, "stopping\n");
	resp_free(&j.r);
}

/* ---- one polling thread: nobody waits behind a scrape or a slow client ---- */

static void assert_still_serving(int port);

static void assert_healthz_quick(int port)
{
	struct resp r;
	double t0 = now();

	http(port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	assert_true(now() - t0 < 1);
	resp_free(&r);
}

/* Scrapes waiting for the render are suspended, not blocking: /healthz still answers at once. */
static void test_healthz_while_scrapes_wait(void **state)
{
	struct fixture *f = *state;
	struct job jobs[10];

	metrics_http_set_ready(f->h, true);
	for (size_t i = 0; i < ARRAY_SIZE(jobs); i++)
		job_start(&jobs[i], f->port, "/metrics", i % 2 ? GZIP : NULL);
	await_scrapes(f->h, ARRAY_SIZE(jobs));
	for (int i = 0; i < 5; i++)
		assert_healthz_quick(f->port);
	for (size_t i = 0; i < ARRAY_SIZE(jobs); i++)
		assert_false(atomic_load(&jobs[i].done));
	assert_true(metrics_http_wanted(f->h));
	publish_gen(f->h, 9);
	for (size_t i = 0; i < ARRAY_SIZE(jobs); i++) {
		job_join(&jobs[i]);
		assert_int_equal(served_gen(&jobs[i].r), 9);
		resp_free(&jobs[i].r);
	}
}

/*
 * The loop is stuck: each waiter gets its 503 SCRAPE_WAIT_SEC (5 s) after it
 * came, not when the loop wakes, and not all at once; /healthz answers all
 * along; a render that comes late answers nobody twice.
 */
static void test_waiters_expire_each_on_time(void **state)
{
	struct fixture *f = *state;
	struct job early, late, next;
	double t0 = now();

	metrics_http_set_ready(f->h, true);
	job_start(&early, f->port, "/metrics", NULL);
	await_scrapes(f->h, 1);
	usleep(2000 * 1000);
	job_start(&late, f->port, "/metrics", GZIP);
	await_scrapes(f->h, 1);
	while (!atomic_load(&early.done) && now() - t0 < 8) {
		assert_healthz_quick(f->port);
		usleep(200 * 1000);
	}
	job_join(&early);
	assert_int_equal(early.r.status, 503);
	assert_string_equal(early.r.body, "snapshot timeout\n");
	assert_true(early.took > 4.8 && early.took < 6);
	assert_false(atomic_load(&late.done));
	job_join(&late);
	assert_int_equal(late.r.status, 503);
	assert_string_equal(late.r.body, "snapshot timeout\n");
	assert_true(late.took > 4.8 && late.took < 6);
	resp_free(&early.r);
	resp_free(&late.r);

	/* the loop wakes: its render answers the expired tickets' successors only */
	assert_true(metrics_http_wanted(f->h));
	publish_gen(f->h, 1);
	job_start(&next, f->port, "/metrics", NULL);
	await_scrapes(f->h, 1);
	assert_true(metrics_http_wanted(f->h));
	publish_gen(f->h, 2);
	job_join(&next);
	assert_int_equal(served_gen(&next.r), 2);
	resp_free(&next.r);
}

/* Nonzero once the server has closed fd (EOF or reset); the bytes it sent are counted in *got. */
static bool closed_by_server(int fd, size_t *got)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		*got += n;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * Clients that keep trickling a request never trip MHD's inactivity
 * timeout; they are cut REQUEST_SEC (10 s) after they connected, or after
 * their previous response on a keep-alive connection.
 */
static void test_trickling_clients_cut(void **state)
{
	static const char keep[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char line1[] = "GET /metrics HTTP/1.1\r\n";
	struct fixture *f = *state;
	enum { BY_LINE, BY_BYTE, AFTER_REPLY, N };
	double since[N], cut[N] = { 0 };
	size_t got[N] = { 0 };
	int fd[N], ticks = 0;
	char buf[1024];
	ssize_t n;

	metrics_http_set_ready(f->h, true);
	for (int i = 0; i < N; i++) {
		fd[i] = connect_to(AF_INET, f->port);
		assert_true(fd[i] >= 0);
		since[i] = now();
	}
	/* a keep-alive client that was answered, then starts trickling */
	assert_int_equal(send(fd[AFTER_REPLY], keep, strlen(keep), MSG_NOSIGNAL), strlen(keep));
	n = recv(fd[AFTER_REPLY], buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	since[AFTER_REPLY] = now();
	usleep(1000 * 1000);
	assert_int_equal(send(fd[BY_LINE], line1, strlen(line1), MSG_NOSIGNAL), strlen(line1));
	assert_int_equal(send(fd[AFTER_REPLY], line1, strlen(line1), MSG_NOSIGNAL), strlen(line1));

	while ((!cut[BY_LINE] || !cut[BY_BYTE] || !cut[AFTER_REPLY]) && now() - since[0] < 15) {
		char line[32];
		int len = snprintf(line, sizeof(line), "X-Pad-%d: x\r\n", ticks);

		for (int i = 0; i < N; i++) {
			if (cut[i])
				continue;
			if (closed_by_server(fd[i], &got[i])) {
				cut[i] = now();
				continue;
			}
			if (i == BY_BYTE)
				send(fd[i], "GET /metrics HTTP/1.1\r\n" + ticks % 23, 1, MSG_NOSIGNAL);
			else
				send(fd[i], line, len, MSG_NOSIGNAL);
		}
		if (ticks % 4 == 0)
			assert_healthz_quick(f->port);
		ticks++;
		usleep(500 * 1000);
	}
	for (int i = 0; i < N; i++) {
		double lived = cut[i] - since[i];

		if (!cut[i])
			fail_msg("trickler %d: still open after %.1f s", i, now() - since[i]);
		if (lived < 9.5 || lived > 11.5)
			fail_msg("trickler %d: cut after %.1f s", i, lived);
		close(fd[i]);
	}
	assert_int_equal(got[BY_LINE], 0);	/* cut, not answered */
	assert_int_equal(got[BY_BYTE], 0);
	assert_int_equal(got[AFTER_REPLY], 0);
	assert_healthz_quick(f->port);
}

/*
 * Idle connections past the limit (4096, less 1/16 kept free) push out the
 * oldest of them instead of holding every slot: /healthz, connecting last,
 * is served at once.
 */
static void test_idle_flood_evicts_oldest(void **state)
{
	enum { FLOOD = 4300 };
	struct fixture *f = *state;
	struct rlimit rl;
	int *fds = calloc(FLOOD, sizeof(*fds)), closed = 0, first_closed = -1;
	size_t got = 0;

	assert_non_null(fds);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * FLOOD + 256) {
		free(fds);
		skip();
	}
	rl.rlim_cur = 2 * FLOOD + 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	metrics_http_set_ready(f->h, true);
	for (int i = 0; i < FLOOD; i++) {
		fds[i] = connect_to(AF_INET, f->port);
		if (fds[i] < 0)
			fail_msg("connect %d: %s", i, strerror(errno));
	}
	assert_healthz_quick(f->port);
	/* the oldest were pushed out, the newest are still open */
	for (int i = 0; i < FLOOD; i++) {
		if (closed_by_server(fds[i], &got)) {
			closed++;
			if (first_closed < 0)
				first_closed = i;
		}
	}
	assert_int_equal(got, 0);
	assert_true(closed >= FLOOD - 4096 + 4096 / 16);
	assert_int_equal(first_closed, 0);
	assert_false(closed_by_server(fds[FLOOD - 1], &got));
	for (int i = 0; i < FLOOD; i++)
		close(fds[i]);
	free(fds);
	assert_still_serving(f->port);
}

/* A body of size bytes for render n: "m n\n" then filler. */
static char *make_big_body(int n, size_t size)
{
	char *b = malloc(size);
	int head;

	assert_non_null(b);
	memset(b, 'x', size);
	head = snprintf(b, 16, "m %d\n", n);
	b[head] = '#';
	b[size - 1] = '\n';
	return b;
}

/*
 * Readers too slow to take their bodies cannot pin one full render each:
 * past 64 MiB of superseded bodies still being sent, the connections
 * sending the oldest are cut.
 */
static void test_slow_readers_capped(void **state)
{
	enum { READERS = 7 };
	const size_t size = 12 << 20;
	static const char raw[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct fixture *f = *state;
	int fd[READERS], small = 4096;
	size_t got[READERS] = { 0 };

	for (int i = 0; i < READERS; i++) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(f->port) };
		fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd[i] >= 0);
		/* before connect, so that the window stays small */
		setsockopt(fd[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(fd[i], (struct sockaddr *)&in, sizeof(in)), 0);
		assert_int_equal(send(fd[i], raw, strlen(raw), MSG_NOSIGNAL), strlen(raw));
		await_scrapes(f->h, 1);
		assert_true(metrics_http_wanted(f->h));
		metrics_http_publish(f->h, make_big_body(i + 1, size), size);
	}
	/* 6 x 12 MiB superseded: the first reader's body went, the others' stay */
	usleep(200 * 1000);
	for (int i = 0; i < READERS; i++) {
		double t0 = now();

		fcntl(fd[i], F_SETFL, O_NONBLOCK);
		while (!closed_by_server(fd[i], &got[i]) && now() - t0 < 5)
			usleep(1000);
		close(fd[i]);
	}
	if (got[0] >= size)
		fail_msg("oldest slow reader got %zu bytes, body is %zu", got[0], size);
	for (int i = 1; i < READERS; i++)
		if (got[i] <= size)
			fail_msg("slow reader %d got %zu bytes, body is %zu", i, got[i], size);
	metrics_http_set_ready(f->h, true);
	assert_healthz_quick(f->port);
}

/* ---- other routes ---- */

static void test_healthz(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	http(f->port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "starting\n");
	resp_free(&r);

	metrics_http_set_ready(f->h, true);
	http(f->port, "GET", "/healthz?verbose=1", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);

	metrics_http_set_ready(f->h, false);
	http(f->port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 503);
	resp_free(&r);
	assert_int_equal(atomic_load(&f->renders), 0);
}

static void test_landing_page(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	http(f->port, "GET", "/", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(header(&r, "Content-Type"), "text/html; charset=utf-8");
	assert_non_null(strstr(r.body, "<a href=\"/metrics\">"));
	assert_non_null(strstr(r.body, "<a href=\"/healthz\">"));
	resp_free(&r);
}

static void test_not_found(void **state)
{
	static const char *const paths[] = {
		"/nope", "/metrics/", "/metricsx", "/healthz/x", "//",
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		struct resp r;

		http(f->port, "GET", paths[i], NULL, &r);
		assert_int_equal(r.status, 404);
		assert_string_equal(r.body, "not found\n");
		resp_free(&r);
	}
	assert_int_equal(atomic_load(&f->renders), 0);
}

static void test_method_not_allowed(void **state)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS", "get" };
	static const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				   "Content-Length: 5\r\n\r\nhello";
	struct fixture *f = *state;
	struct resp r;

	for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
		http(f->port, methods[i], "/metrics", "Content-Length: 0\r\n", &r);
		assert_int_equal(r.status, 405);
		assert_string_equal(header(&r, "Allow"), "GET, HEAD");
		resp_free(&r);
	}
	http_raw(f->port, post, strlen(post), false, &r);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	assert_int_equal(atomic_load(&f->renders), 0);
}

static void assert_still_serving(int port)
{
	struct resp r;

	http(port, "GET", "/metrics", NULL, &r);
	assert_true(served_gen(&r) > 0);
	resp_free(&r);
}

static void test_malformed_requests(void **state)
{
	static const char *const bad[] = {
		"GARBAGE\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET\r\n\r\n",
		"GET /metrics\r\n\r\n",		/* HTTP/0.9 */
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct resp r;

		http_raw(f->port, bad[i], strlen(bad[i]), false, &r);
		if (r.status != 0 && (r.status < 400 || r.status > 499))
			fail_msg("%s: status %d", bad[i], r.status);
		resp_free(&r);
		assert_still_serving(f->port);
	}
}

static void test_oversized_request(void **state)
{
	struct fixture *f = *state;
	size_t big = 64 * 1024, len;
	char *raw = malloc(big + 256);
	struct resp r;

	assert_non_null(raw);
	len = snprintf(raw, 256, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(raw + len, 'a', big);
	len += big;
	len += sprintf(raw + len, "\r\n\r\n");
	http_raw(f->port, raw, len, false, &r);
	if (r.status != 0 && (r.status < 400 || r.status > 499))
		fail_msg("oversized request: status %d", r.status);
	resp_free(&r);
	free(raw);
	assert_still_serving(f->port);
}

/* Pipelined requests on one keep-alive connection are all answered, each freshly. */
static void test_keep_alive(void **state)
{
	static const char raw[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
				  "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
				  "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct fixture *f = *state;
	size_t len, off;
	struct resp r;
	char *buf = exchange(AF_INET, f->port, raw, strlen(raw), &len);

	assert_non_null(buf);
	off = parse_resp(buf, len, false, &r);
	assert_int_equal(served_gen(&r), 1);
	resp_free(&r);
	off += parse_resp(buf + off, len - off, false, &r);
	assert_int_equal(served_gen(&r), 2);
	resp_free(&r);
	off += parse_resp(buf + off, len - off, false, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(off, len);
	resp_free(&r);
	free(buf);
}

/* An idle keep-alive connection neither holds up stop nor outlives it. */
static void test_stop_with_idle_connection(void **state)
{
	static const char raw[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	struct fixture *f = *state;
	char buf[1024];
	ssize_t n;
	double t0;
	int fd = connect_to(AF_INET, f->port);

	assert_true(fd >= 0);
	assert_int_equal(send(fd, raw, strlen(raw), MSG_NOSIGNAL), strlen(raw));
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\r\n\r\nstarting\n"));

	t0 = now();
	metrics_http_stop(f->h);
	f->h = NULL;
	assert_true(now() - t0 < 0.9);
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_address_in_use),
		cmocka_unit_test(test_localhost),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test_setup_teardown(test_metrics, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_each_scrape_fresh, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_gzip, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_identical, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_waiters_share_render, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_late_scrape_waits_for_next_render, setup_bare,
						teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_timeout, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_scrapes, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_stop_while_waiting, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_healthz_while_scrapes_wait, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_waiters_expire_each_on_time, setup_bare,
						teardown),
		cmocka_unit_test_setup_teardown(test_trickling_clients_cut, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_idle_flood_evicts_oldest, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_slow_readers_capped, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_healthz, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_landing_page, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_not_found, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_method_not_allowed, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_requests, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_request, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup_loop, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_idle_connection, setup_bare,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
