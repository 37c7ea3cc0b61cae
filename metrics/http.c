// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * http - the metrics/health endpoint on libmicrohttpd (see http.h).
 *
 * A scrape and the event loop meet under h->lock:
 *   - the scrape takes ticket = ++requested, bumps the eventfd and waits
 *     until published_gen >= ticket;
 *   - metrics_http_wanted() notes render_gen = requested: every ticket up to
 *     render_gen was handed out before the render began;
 *   - metrics_http_publish() sets published_gen = render_gen and wakes the
 *     waiters. A scrape that arrived during the render keeps waiting for the
 *     next one (its eventfd bump makes the loop render again), so no scrape
 *     is ever answered with a body older than itself.
 *
 * MHD runs one thread per connection: a scrape blocks its thread while it
 * waits, and with a single polling thread every other client (and every
 * other scrape, which could otherwise share the render) would queue behind
 * it. Connections are capped, so the thread count is bounded.
 */
#define _GNU_SOURCE
#define ZLIB_CONST
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <zlib.h>

#include "http.h"

#define SCRAPE_WAIT_SEC 5		/* how long a scrape gives the loop to render */
#define STOP_DRAIN_SEC 1		/* how long stop lets waiters send their 503 */
#define MAX_CONNECTIONS 128		/* also the bound on MHD's threads */
#define IDLE_TIMEOUT_SEC 10
#define CONNECTION_MEMORY (32 * 1024)	/* bounds request line + headers */
#define THREAD_STACK (256 * 1024)	/* 128 threads at glibc's 8 MiB would reserve 1 GiB */

static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";
static const char text_type[] = "text/plain; charset=utf-8";
static const char html_type[] = "text/html; charset=utf-8";
static const char landing_page[] =
	"<!DOCTYPE html>\n"
	"<html><head><meta charset=\"utf-8\"><title>meshlens</title></head>\n"
	"<body><h1>meshlens</h1><ul>\n"
	"<li><a href=\"/metrics\">/metrics</a> (Prometheus text format)</li>\n"
	"<li><a href=\"/healthz\">/healthz</a></li>\n"
	"</ul></body></html>\n";

/*
 * One published body: immutable, shared by every response serving it. The
 * count lives under h->lock, where scrapes take their reference anyway; a
 * mutex rather than an atomic also lets helgrind check the hand-over to the
 * last owner.
 */
struct snapshot {
	struct metrics_http *h;
	unsigned int refs;
	char *text;
	size_t len;
	pthread_mutex_t gz_lock;	/* the first gzip scrape compresses, the others wait */
	bool gz_done;
	unsigned char *gz;		/* NULL if compression failed: serve identity */
	size_t gz_len;
};

struct metrics_http {
	struct MHD_Daemon *mhd;
	int efd;
	atomic_bool ready;

	pthread_mutex_t lock;
	pthread_cond_t published;	/* published_gen advanced, or stopping set */
	pthread_cond_t idle;		/* inflight reached 0 */
	uint64_t requested;		/* last ticket handed out */
	uint64_t render_gen;		/* tickets the render in progress answers */
	uint64_t published_gen;		/* tickets current answers */
	struct snapshot *current;
	unsigned int inflight;		/* /metrics requests not completed yet */
	bool stopping;

	pthread_mutex_t log_lock;
	bool starting;
	char start_err[128];		/* MHD's last complaint while starting */
};

/* What a request's req_cls points to: its headers were seen; it is counted in inflight. */
static char req_seen, req_waiting;

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

static void snapshot_free(struct snapshot *s)
{
	pthread_mutex_destroy(&s->gz_lock);
	free(s->gz);
	free(s->text);
	free(s);
}

/* MHD's free callback of a response serving s. */
static void snapshot_put(void *cls)
{
	struct snapshot *s = cls;
	bool last;

	pthread_mutex_lock(&s->h->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&s->h->lock);
	if (last)
		snapshot_free(s);
}

static unsigned char *gzip(const char *in, size_t len, size_t *out_len)
{
	unsigned char *out = NULL;
	z_stream zs;
	uLong cap;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	/* One deflate() call into a buffer of the worst-case size; zlib counts in uInt. */
	cap = deflateBound(&zs, len);
	if (len > UINT_MAX || cap > UINT_MAX)
		goto cleanup;
	out = malloc(cap);
	if (!out)
		goto cleanup;
	zs.next_in = (const Bytef *)in;
	zs.avail_in = len;
	zs.next_out = out;
	zs.avail_out = cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
		free(out);
		out = NULL;
		goto cleanup;
	}
	*out_len = zs.total_out;
cleanup:
	deflateEnd(&zs);
	return out;
}

/* The gzip form of s, made once by the first scrape that wants it. */
static const unsigned char *snapshot_gzip(struct snapshot *s, size_t *len)
{
	pthread_mutex_lock(&s->gz_lock);
	if (!s->gz_done) {
		s->gz = gzip(s->text, s->len, &s->gz_len);
		s->gz_done = true;
	}
	pthread_mutex_unlock(&s->gz_lock);
	*len = s->gz_len;
	return s->gz;
}

/* ---- Accept-Encoding (RFC 9110 12.5.3) ---- */

struct accept_gzip {
	int gzip_q;	/* weight of "gzip" in thousandths, -1 when not listed */
	int any_q;	/* weight of "*" */
};

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **b, const char **e)
{
	while (*b < *e && is_ows(**b))
		(*b)++;
	while (*e > *b && is_ows((*e)[-1]))
		(*e)--;
}

static bool token_is(const char *b, const char *e, const char *token)
{
	size_t n = strlen(token);

	return (size_t)(e - b) == n && strncasecmp(b, token, n) == 0;
}

/* qvalue = "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ], in thousandths; -1 if malformed. */
static int parse_qvalue(const char *p, const char *e)
{
	int q, scale = 100;

	if (p == e || (*p != '0' && *p != '1'))
		return -1;
	q = (*p++ - '0') * 1000;
	if (p < e && *p == '.')
		for (p++; p < e && *p >= '0' && *p <= '9' && scale; p++, scale /= 10)
			q += (*p - '0') * scale;
	return p == e && q <= 1000 ? q : -1;
}

/* One element: coding *( OWS ";" OWS parameter ). */
static void parse_coding(const char *b, const char *e, struct accept_gzip *ag)
{
	const char *semi = memchr(b, ';', e - b);
	const char *name_end = semi ? semi : e;
	int q = 1000;

	trim(&b, &name_end);
	while (semi) {
		const char *pb = semi + 1, *pe;

		semi = memchr(pb, ';', e - pb);
		pe = semi ? semi : e;
		trim(&pb, &pe);
		if (pe - pb >= 2 && (*pb == 'q' || *pb == 'Q') && pb[1] == '=')
			q = parse_qvalue(pb + 2, pe);
	}
	if (q < 0)	/* a weight we cannot read: safest to ignore the element */
		return;
	if (token_is(b, name_end, "gzip") || token_is(b, name_end, "x-gzip"))
		ag->gzip_q = q > ag->gzip_q ? q : ag->gzip_q;
	else if (token_is(b, name_end, "*"))
		ag->any_q = q > ag->any_q ? q : ag->any_q;
}

static enum MHD_Result scan_accept_encoding(void *cls, enum MHD_ValueKind kind, const char *key,
					   const char *value)
{
	const char *b, *e;

	(void)kind;
	if (!value || strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING) != 0)
		return MHD_YES;
	for (b = value;; b = e + 1) {
		e = strchrnul(b, ',');
		parse_coding(b, e, cls);
		if (!*e)
			break;
	}
	return MHD_YES;
}

/* Every Accept-Encoding header counts; an explicit "gzip" weight beats "*". */
static bool accepts_gzip(struct MHD_Connection *c)
{
	struct accept_gzip ag = { .gzip_q = -1, .any_q = -1 };

	MHD_get_connection_values(c, MHD_HEADER_KIND, scan_accept_encoding, &ag);
	return ag.gzip_q >= 0 ? ag.gzip_q > 0 : ag.any_q > 0;
}

/* ---- responses ---- */

/* Queue r (NULL: out of memory, so MHD closes the connection) and drop our reference. */
static enum MHD_Result queue(struct MHD_Connection *c, unsigned int status, struct MHD_Response *r)
{
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type,
			     const char *text)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (r && (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
		  (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
		   MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES))) {
		MHD_destroy_response(r);
		r = NULL;
	}
	return queue(c, status, r);
}

/* Serve s; the response owns the caller's reference and drops it when MHD is done. */
static enum MHD_Result reply_snapshot(struct MHD_Connection *c, struct snapshot *s)
{
	const void *body = s->text;
	size_t len = s->len;
	bool gz = false;
	struct MHD_Response *r;

	if (accepts_gzip(c)) {
		size_t gz_len;
		const unsigned char *z = snapshot_gzip(s, &gz_len);

		if (z) {
			body = z;
			len = gz_len;
			gz = true;
		}
	}
	r = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)body,
								   snapshot_put, s);
	if (!r) {
		snapshot_put(s);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, metrics_type) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING) !=
		    MHD_YES ||
	    (gz && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip") !=
			   MHD_YES)) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	return queue(c, MHD_HTTP_OK, r);
}

static void notify_loop(int efd)
{
	const uint64_t one = 1;

	/* Cannot fill up: the counter would need 2^64 - 1 unread bumps. */
	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static enum MHD_Result serve_metrics(struct metrics_http *h, struct MHD_Connection *c,
				     void **req_cls)
{
	const char *why = "stopping\n";
	struct snapshot *s = NULL;
	struct timespec deadline;
	uint64_t ticket;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SCRAPE_WAIT_SEC;

	pthread_mutex_lock(&h->lock);
	if (!h->stopping) {
		ticket = ++h->requested;
		/* Counted until MHD reports the request complete, so stop can drain it. */
		h->inflight++;
		*req_cls = &req_waiting;
		notify_loop(h->efd);
		while (h->published_gen < ticket && !h->stopping) {
			if (pthread_cond_timedwait(&h->published, &h->lock, &deadline) ==
			    ETIMEDOUT) {
				why = "snapshot timeout\n";
				break;
			}
		}
		if (h->published_gen >= ticket) {
			s = h->current;
			s->refs++;
		}
	}
	pthread_mutex_unlock(&h->lock);

	if (!s)
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text_type, why);
	return reply_snapshot(c, s);
}

/*
 * MHD calls this once with the headers, then per chunk of body, then once
 * more with none left. GET and HEAD are answered on that last call: a
 * response queued earlier makes MHD drop the keep-alive. Other methods are
 * refused at once; MHD then closes rather than read an upload nobody wants.
 */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	struct metrics_http *h = cls;

	(void)version;
	(void)upload_data;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text_type, "method not allowed\n");
	if (!*req_cls) {
		*req_cls = &req_seen;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;	/* a body on GET means nothing here */
		return MHD_YES;
	}
	/* MHD has already split off the query string. */
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, c, req_cls);
	if (strcmp(url, "/healthz") == 0)
		return atomic_load(&h->ready) ? reply(c, MHD_HTTP_OK, text_type, "ok\n")
			: reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text_type, "starting\n");
	if (strcmp(url, "/") == 0)
		return reply(c, MHD_HTTP_OK, html_type, landing_page);
	return reply(c, MHD_HTTP_NOT_FOUND, text_type, "not found\n");
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct metrics_http *h = cls;

	(void)c;
	(void)toe;
	if (*req_cls != &req_waiting)
		return;
	*req_cls = NULL;
	pthread_mutex_lock(&h->lock);
	if (--h->inflight == 0 && h->stopping)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->lock);
}

/*
 * MHD explains start-up failures only through its logger, and logs the reason
 * last, so keep the latest message while starting. Afterwards stay quiet:
 * what a client sends must never reach the daemon's stderr.
 */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct metrics_http *h = cls;

	pthread_mutex_lock(&h->log_lock);
	if (h->starting) {
		vsnprintf(h->start_err, sizeof(h->start_err), fmt, ap);
		h->start_err[strcspn(h->start_err, "\n")] = '\0';
	}
	pthread_mutex_unlock(&h->log_lock);
}

/* ---- address ---- */

static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (*s - '0');
		if (v > 65535)
			return -EINVAL;
	}
	if (!v)
		return -EINVAL;
	*port = htons(v);
	return 0;
}

/* "H:P" with H an IPv4 literal, "localhost" or "[IPv6 literal]"; NULL or what is wrong. */
static const char *parse_addr(const char *addr, union sockaddr_any *sa, socklen_t *len)
{
	bool v6 = addr[0] == '[';
	char host[INET6_ADDRSTRLEN];
	const char *hb, *he, *colon;
	in_port_t port;

	if (v6) {
		hb = addr + 1;
		he = strchr(hb, ']');
		if (!he || he[1] != ':')
			return "expected [IPv6]:PORT";
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return "expected HOST:PORT";
		hb = addr;
		he = colon;
	}
	if (parse_port(colon + 1, &port))
		return "port must be 1-65535";
	if ((size_t)(he - hb) >= sizeof(host))
		return "host too long";
	memcpy(host, hb, he - hb);
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

/* ---- life cycle ---- */

/* MHD is stopped (or never ran): no response holds a snapshot any more. */
static void free_all(struct metrics_http *h)
{
	if (h->current)
		snapshot_free(h->current);
	if (h->efd >= 0)
		close(h->efd);
	pthread_mutex_destroy(&h->log_lock);
	pthread_cond_destroy(&h->idle);
	pthread_cond_destroy(&h->published);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

struct metrics_http *metrics_http_start(const char *addr, char *err, size_t errlen)
{
	struct metrics_http *h;
	union sockaddr_any sa;
	pthread_condattr_t ca;
	socklen_t salen;
	const char *why;
	unsigned int flags;
	int fd = -1, one = 1;

	why = parse_addr(addr, &sa, &salen);
	if (why) {
		snprintf(err, errlen, "metrics address %s: %s", addr, why);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "metrics address %s: %s", addr, strerror(errno));
		return NULL;
	}
	h->efd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->log_lock, NULL);
	/* Deadlines are monotonic: a clock step must not cut or stretch a scrape's wait. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->published, &ca);
	pthread_cond_init(&h->idle, &ca);
	pthread_condattr_destroy(&ca);

	h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->efd < 0) {
		snprintf(err, errlen, "metrics address %s: eventfd: %s", addr, strerror(errno));
		goto cleanup;
	}

	/* Bind here rather than in MHD, which does not report bind's errno. */
	fd = socket(sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "metrics address %s: socket: %s", addr, strerror(errno));
		goto cleanup;
	}
	/* A restart must not fail on the last run's TIME_WAIT sockets; a live listener does. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, &sa.sa, salen) || listen(fd, SOMAXCONN)) {
		snprintf(err, errlen, "metrics address %s: %s", addr, strerror(errno));
		goto cleanup;
	}

	flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	if (sa.sa.sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->starting = true;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0U,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_SEC,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
				  MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
				  MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				  MHD_OPTION_END);
	pthread_mutex_lock(&h->log_lock);
	h->starting = false;
	pthread_mutex_unlock(&h->log_lock);
	if (h->mhd)
		return h;
	/* MHD closes the listen socket on its failure paths. */
	fd = -1;
	snprintf(err, errlen, "metrics address %s: cannot start HTTP server: %s", addr,
		 h->start_err[0] ? h->start_err : "libmicrohttpd gave no reason");
cleanup:
	if (fd >= 0)
		close(fd);
	free_all(h);
	return NULL;
}

int metrics_http_notify_fd(const struct metrics_http *h)
{
	return h->efd;
}

bool metrics_http_wanted(struct metrics_http *h)
{
	uint64_t n;
	bool want;

	/*
	 * Drain before looking: a scrape that bumps the eventfd after this read
	 * is either counted below or makes the eventfd readable again.
	 */
	while (read(h->efd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&h->lock);
	want = h->requested > h->published_gen;
	if (want)
		h->render_gen = h->requested;
	pthread_mutex_unlock(&h->lock);
	return want;
}

void metrics_http_publish(struct metrics_http *h, char *body, size_t len)
{
	struct snapshot *s, *old;

	s = calloc(1, sizeof(*s));
	if (!s) {
		/* Waiting scrapes time out with 503 rather than get an older body. */
		free(body);
		return;
	}
	pthread_mutex_init(&s->gz_lock, NULL);
	s->h = h;
	s->refs = 1;
	s->text = body;
	s->len = len;

	pthread_mutex_lock(&h->lock);
	old = h->current;
	if (old && --old->refs)
		old = NULL;	/* responses still serve it; the last one frees it */
	h->current = s;
	h->published_gen = h->render_gen;
	pthread_cond_broadcast(&h->published);
	pthread_mutex_unlock(&h->lock);
	if (old)
		snapshot_free(old);
}

void metrics_http_set_ready(struct metrics_http *h, bool ready)
{
	atomic_store(&h->ready, ready);
}

void metrics_http_stop(struct metrics_http *h)
{
	struct timespec deadline;

	if (!h)
		return;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += STOP_DRAIN_SEC;

	/*
	 * Release the waiting scrapes and give them a moment to send their 503:
	 * MHD_stop_daemon() shuts every socket down at once.
	 */
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_broadcast(&h->published);
	while (h->inflight && pthread_cond_timedwait(&h->idle, &h->lock, &deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&h->lock);

	MHD_stop_daemon(h->mhd);
	free_all(h);
}
