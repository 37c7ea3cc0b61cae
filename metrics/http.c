// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * http - the metrics/health endpoint on libmicrohttpd (see http.h).
 *
 * One MHD thread polls every connection (epoll); no client holds a thread,
 * and nothing the handler does blocks, so /healthz answers whatever the
 * other clients do. One helper thread keeps time and compresses. Both
 * threads block every signal (the daemon takes its signals by signalfd).
 *
 * A scrape and the event loop meet under h->lock:
 *   - the scrape takes ticket = ++requested, bumps the eventfd, queues its
 *     connection on h->waiting and suspends it (MHD_suspend_connection);
 *   - metrics_http_wanted() notes render_gen = requested: every ticket up to
 *     render_gen was handed out before the render began;
 *   - metrics_http_publish() sets published_gen = render_gen, gives every
 *     waiter whose ticket is answered a reference to the new snapshot and
 *     resumes it; MHD calls the handler again, which serves that body. A
 *     scrape that arrived during the render keeps waiting for the next one
 *     (its eventfd bump makes the loop render again), so no scrape is ever
 *     answered with a body older than itself. A waiter that takes gzip goes
 *     to the helper instead, which compresses the snapshot once for all of
 *     them, off the MHD thread, and then resumes them.
 *
 * Time limits rely neither on the loop (it may be what is stuck) nor on
 * MHD's inactivity timeout (a client trickling a byte at a time never trips
 * it; it stays as the bound on silence). The helper enforces them. Every
 * connection is on at most one FIFO list whose entries all got the same
 * span when they joined, so a list's head is always the next to expire:
 *   h->reading  the request, headers and any body, is due REQUEST_SEC after
 *               the connection or its previous response;
 *   h->waiting  a scrape gets its snapshot within SCRAPE_WAIT_SEC, else the
 *               helper resumes it to answer 503;
 *   h->sending  a response is due to be read within SEND_SEC.
 * A connection that overstays is shut down (shutdown(2)); MHD sees the
 * client leave and closes it. MHD reports a connection closed (which frees
 * our record, under h->lock) before it closes the descriptor, and every
 * shutdown here is made under h->lock, so none hits a reused descriptor.
 *
 * Slots: up to MAX_CONNECTIONS (RLIMIT_NOFILE permitting). Past evict_at,
 * each new connection pushes out the oldest one still reading its request:
 * idle or trickling clients cannot hold the slots against clients that
 * send a request.
 *
 * Memory, worst case. Per connection MHD's pool of CONNECTION_MEMORY plus
 * about 1 KiB of MHD's record and ours: 4096 x 17 KiB = 68 MiB (measured:
 * 3800 connections holding 14 KB of headers each, +63 MiB resident; idle
 * ones cost ~5 KiB). Bodies: the current snapshot and its gzip form (at the
 * series cap 6.8 MB + ~1 MB), a snapshot that answered scrapes still
 * waiting for the helper, and superseded ones that responses still send;
 * these last are capped at OLD_BODIES_MAX (past it, the connections
 * sending the oldest are cut: readers that slow would otherwise pin one
 * full render per scrape). In all ~150 MiB; socket buffers are the kernel's.
 */
#define _GNU_SOURCE
#define ZLIB_CONST
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <zlib.h>

#include "http.h"
#include "../lib/parse.h"
#include "../lib/util.h"

#define SCRAPE_WAIT_SEC 5		/* how long a scrape gives the loop to render */
#define REQUEST_SEC 10			/* how long a client has to send its request */
#define SEND_SEC 30			/* ... and to read the response */
#define IDLE_TIMEOUT_SEC 10		/* MHD's: silence closes a connection */
#define STOP_DRAIN_SEC 1		/* how long stop lets waiters send their 503 */
#define MAX_CONNECTIONS 4096
#define FD_RESERVE 1024			/* descriptors the rest of the daemon may need */
#define CONNECTION_MEMORY (16 * 1024)	/* bounds request line + headers (and reply headers) */
#define OLD_BODIES_MAX (64u << 20)	/* superseded bodies kept alive by slow readers */
#define THREAD_STACK (256 * 1024)

#define NSEC 1000000000LL

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

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
static const char timeout_text[] = "snapshot timeout\n";
static const char stopping_text[] = "stopping\n";

/* Intrusive doubly-linked lists; a node on no list points to itself. */
struct link {
	struct link *prev, *next;
};

static void link_init(struct link *l)
{
	l->prev = l->next = l;
}

static bool link_empty(const struct link *l)
{
	return l->next == l;
}

static void link_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

static void link_add_tail(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

/*
 * One published body: immutable once gz_done, shared by every response
 * serving it. Everything but the text is under h->lock, where scrapes take
 * their references anyway; a mutex rather than atomics also lets helgrind
 * check the hand-over to the last owner.
 */
struct snapshot {
	struct metrics_http *h;
	unsigned int refs;		/* h->current, answered clients, responses, the helper */
	char *text;
	size_t len;
	bool gz_done;			/* the helper tried, and set gz and gz_len */
	unsigned char *gz;		/* NULL if compression failed: serve identity */
	size_t gz_len;
	struct link zippers;		/* clients waiting for gz */
	struct snapshot *zip_next;	/* on the helper's queue */
	struct link old;		/* on h->old: superseded, still referenced */
};

enum client_state {
	CL_READING,	/* on h->reading: its request is due */
	CL_WAITING,	/* suspended on h->waiting: a scrape waiting for the loop */
	CL_ZIPPING,	/* suspended on its snapshot's zippers: answered, waiting for gzip */
	CL_READY,	/* resumed, on no list: serve snap, or 503 with why */
	CL_SENDING,	/* on h->sending: its response is due to be read */
	CL_CUT,		/* shut down; MHD closes it */
};

/* One per connection (MHD's socket context). All but h, c and fd under h->lock. */
struct client {
	struct link link;
	struct metrics_http *h;
	struct MHD_Connection *c;
	int fd;
	enum client_state state;
	int64_t deadline;		/* CLOCK_MONOTONIC, ns */
	uint64_t ticket;
	bool gzip;			/* the scrape takes gzip */
	struct snapshot *snap;		/* the answer (a reference) until served */
	const char *why;		/* no answer: the 503's body */
	const struct snapshot *serving;	/* the body its response sends, if any */
};

struct metrics_http {
	struct MHD_Daemon *mhd;
	int efd;
	atomic_bool ready;
	pthread_mutex_t note_lock;
	char health_note[256];		/* said by /healthz after "ok"; "" = nothing */
	unsigned int evict_at;		/* connections past which the oldest reader goes */

	pthread_mutex_t lock;
	pthread_cond_t idle;		/* inflight reached 0 */
	uint64_t requested;		/* last ticket handed out */
	uint64_t render_gen;		/* tickets the render in progress answers */
	uint64_t published_gen;		/* tickets current answers */
	struct snapshot *current;
	unsigned int inflight;		/* /metrics requests not completed yet */
	bool stopping;

	unsigned int nclients;
	struct link reading, waiting, sending;	/* of struct client, by deadline */
	struct link old;			/* of struct snapshot, oldest first */
	size_t old_bytes;			/* text and gzip of those */

	pthread_t helper;
	bool helper_started;
	pthread_cond_t wake;		/* for the helper: sooner deadline, gzip job, quit */
	int64_t helper_at;		/* when it wakes anyway; INT64_MIN while awake */
	struct snapshot *zip_head, *zip_tail;
	bool quit;

	pthread_mutex_t log_lock;
	bool starting;
	char start_err[128];		/* MHD's last complaint while starting */
};

/* What a request's req_cls points to: its headers were seen; it is a scrape, counted in inflight. */
static char req_seen, req_scrape;

static struct client *first_client(struct link *list)
{
	return link_empty(list) ? NULL : container_of(list->next, struct client, link);
}

/* ---- snapshots ---- */

static void snapshot_free(struct snapshot *s)
{
	free(s->gz);
	free(s->text);
	free(s);
}

static size_t snapshot_bytes(const struct snapshot *s)
{
	return s->len + s->gz_len;
}

/* Under h->lock: drop a reference; true when the caller is to free s. */
static bool snapshot_unref(struct metrics_http *h, struct snapshot *s)
{
	if (--s->refs)
		return false;
	if (!link_empty(&s->old)) {
		h->old_bytes -= snapshot_bytes(s);
		link_del(&s->old);
	}
	return true;
}

/* MHD's free callback of a response serving s. */
static void snapshot_put(void *cls)
{
	struct snapshot *s = cls;
	struct metrics_http *h = s->h;
	bool last;

	pthread_mutex_lock(&h->lock);
	last = snapshot_unref(h, s);
	pthread_mutex_unlock(&h->lock);
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

/* ---- connections and their deadlines (all under h->lock) ---- */

/* cl joins the tail of list, due span seconds from now. */
static void client_arm(struct metrics_http *h, struct client *cl, enum client_state state,
		       struct link *list, int span)
{
	cl->state = state;
	cl->deadline = ml_mono_ns() + span * NSEC;
	link_del(&cl->link);
	link_add_tail(list, &cl->link);
	if (cl->deadline < h->helper_at)
		pthread_cond_signal(&h->wake);
}

static void client_cut(struct client *cl)
{
	link_del(&cl->link);
	cl->state = CL_CUT;
	shutdown(cl->fd, SHUT_RDWR);
}

/* A suspended scrape goes back to MHD, to serve cl->snap or a 503 saying why. */
static void client_resume(struct client *cl, const char *why)
{
	link_del(&cl->link);
	cl->state = CL_READY;
	cl->why = why;
	MHD_resume_connection(cl->c);
}

/*
 * Past OLD_BODIES_MAX of superseded bodies, cut the connections still
 * sending the oldest: a body is freed once its last response is gone.
 */
static void trim_old(struct metrics_http *h)
{
	while (h->old_bytes > OLD_BODIES_MAX) {
		struct snapshot *s = container_of(h->old.next, struct snapshot, old);
		struct link *l, *next;

		h->old_bytes -= snapshot_bytes(s);
		link_del(&s->old);
		for (l = h->sending.next; l != &h->sending; l = next) {
			struct client *cl = container_of(l, struct client, link);

			next = l->next;
			if (cl->serving == s)
				client_cut(cl);
		}
	}
}

/* The helper: resume the expired waiters, cut the overstayers; returns the next deadline. */
static int64_t expire(struct metrics_http *h, int64_t now)
{
	struct link *lists[] = { &h->waiting, &h->reading, &h->sending };
	int64_t next = INT64_MAX;
	struct client *cl;

	while ((cl = first_client(&h->waiting)) && cl->deadline <= now)
		client_resume(cl, timeout_text);
	while ((cl = first_client(&h->reading)) && cl->deadline <= now)
		client_cut(cl);
	while ((cl = first_client(&h->sending)) && cl->deadline <= now)
		client_cut(cl);
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if ((cl = first_client(lists[i])) && cl->deadline < next)
			next = cl->deadline;
	return next;
}

/* The helper is done with s's gzip (or gives up on it): serve its zippers. */
static void zipped(struct metrics_http *h, struct snapshot *s)
{
	struct client *cl;

	while ((cl = first_client(&s->zippers)))
		client_resume(cl, NULL);
	if (snapshot_unref(h, s))
		snapshot_free(s);
}

/*
 * The one thread besides MHD's: timekeeping that must not depend on the
 * loop, and gzip, which at the series cap takes ~200 ms that the MHD thread
 * would otherwise not poll for. Deadlines are checked between jobs.
 */
static void *helper_main(void *arg)
{
	struct metrics_http *h = arg;
	struct snapshot *s;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		int64_t next = expire(h, ml_mono_ns());
		struct timespec ts;

		if (h->quit)
			break;
		s = h->zip_head;
		if (s) {
			unsigned char *gz;
			size_t gz_len = 0;

			h->zip_head = s->zip_next;
			if (!h->zip_head)
				h->zip_tail = NULL;
			pthread_mutex_unlock(&h->lock);
			gz = gzip(s->text, s->len, &gz_len);
			pthread_mutex_lock(&h->lock);
			s->gz = gz;
			s->gz_len = gz ? gz_len : 0;
			s->gz_done = true;
			if (!link_empty(&s->old))
				h->old_bytes += s->gz_len;
			zipped(h, s);
			trim_old(h);
			continue;
		}
		h->helper_at = next;
		if (next == INT64_MAX) {
			pthread_cond_wait(&h->wake, &h->lock);
		} else {
			ts.tv_sec = next / NSEC;
			ts.tv_nsec = next % NSEC;
			pthread_cond_timedwait(&h->wake, &h->lock, &ts);
		}
		h->helper_at = INT64_MIN;
	}
	/* Stopping: what is still queued is served uncompressed. */
	while ((s = h->zip_head)) {
		h->zip_head = s->zip_next;
		zipped(h, s);
	}
	h->zip_tail = NULL;
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static struct client *client_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void client_started(struct metrics_http *h, struct MHD_Connection *c,
			   void **socket_context)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct client *cl = calloc(1, sizeof(*cl)), *oldest;

	if (!cl) {
		/* Untracked would mean unbounded: turn it away. */
		if (ci)
			shutdown(ci->connect_fd, SHUT_RDWR);
		return;
	}
	cl->h = h;
	cl->c = c;
	cl->fd = ci ? ci->connect_fd : -1;
	link_init(&cl->link);
	*socket_context = cl;

	pthread_mutex_lock(&h->lock);
	h->nclients++;
	client_arm(h, cl, CL_READING, &h->reading, REQUEST_SEC);
	oldest = first_client(&h->reading);
	if (h->nclients > h->evict_at && oldest != cl)
		client_cut(oldest);
	pthread_mutex_unlock(&h->lock);
}

static void connection_event(void *cls, struct MHD_Connection *c, void **socket_context,
			     enum MHD_ConnectionNotificationCode code)
{
	struct metrics_http *h = cls;
	struct client *cl = *socket_context;
	bool last = false;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		client_started(h, c, socket_context);
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_CLOSED || !cl)
		return;
	*socket_context = NULL;
	pthread_mutex_lock(&h->lock);
	link_del(&cl->link);
	h->nclients--;
	if (cl->snap)
		last = snapshot_unref(h, cl->snap);
	pthread_mutex_unlock(&h->lock);
	if (last)
		snapshot_free(cl->snap);
	free(cl);
}

/* ---- responses ---- */

/*
 * Queue r (NULL: out of memory, so MHD closes the connection) and drop our
 * reference; the response is then due to be read.
 */
static enum MHD_Result queue(struct MHD_Connection *c, unsigned int status, struct MHD_Response *r,
			     const struct snapshot *serving)
{
	struct client *cl = client_of(c);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	if (ret == MHD_YES && cl) {
		struct metrics_http *h = cl->h;

		pthread_mutex_lock(&h->lock);
		if (cl->state != CL_CUT) {
			cl->serving = serving;
			client_arm(h, cl, CL_SENDING, &h->sending, SEND_SEC);
		}
		pthread_mutex_unlock(&h->lock);
	}
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
	return queue(c, status, r, NULL);
}

/*
 * 200 "ok" once ready (with the daemon's note, if any: the daemon is well,
 * so a liveness probe must not restart it, but something it watches is
 * not), 503 "starting" before.
 */
static enum MHD_Result healthz(struct metrics_http *h, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	char body[300];

	if (!atomic_load(&h->ready))
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text_type, "starting\n");
	pthread_mutex_lock(&h->note_lock);
	snprintf(body, sizeof(body), h->health_note[0] ? "ok: %s\n" : "ok\n", h->health_note);
	pthread_mutex_unlock(&h->note_lock);
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (r && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, text_type) != MHD_YES) {
		MHD_destroy_response(r);
		r = NULL;
	}
	return queue(c, MHD_HTTP_OK, r, NULL);
}

/* Serve s, gzipped if gz; the response owns the caller's reference and drops it when MHD is done. */
static enum MHD_Result reply_snapshot(struct MHD_Connection *c, struct snapshot *s, bool gz)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer_with_free_callback_cls(gz ? s->gz_len : s->len,
								   gz ? (void *)s->gz : s->text,
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
	return queue(c, MHD_HTTP_OK, r, s);
}

static void notify_loop(int efd)
{
	const uint64_t one = 1;

	/* Cannot fill up: the counter would need 2^64 - 1 unread bumps. */
	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* A scrape takes its ticket and waits, suspended, for the loop's answer. */
static enum MHD_Result scrape_begin(struct metrics_http *h, struct MHD_Connection *c,
				    struct client *cl, void **req_cls)
{
	bool gzip = accepts_gzip(c);

	pthread_mutex_lock(&h->lock);
	if (cl->state == CL_CUT) {
		pthread_mutex_unlock(&h->lock);
		return MHD_NO;
	}
	if (h->stopping) {
		pthread_mutex_unlock(&h->lock);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text_type, stopping_text);
	}
	cl->ticket = ++h->requested;
	cl->gzip = gzip;
	/* Counted until MHD reports the request complete, so stop can drain it. */
	h->inflight++;
	*req_cls = &req_scrape;
	client_arm(h, cl, CL_WAITING, &h->waiting, SCRAPE_WAIT_SEC);
	notify_loop(h->efd);
	/* Still under the lock: publish may resume cl as soon as it can see it. */
	MHD_suspend_connection(c);
	pthread_mutex_unlock(&h->lock);
	return MHD_YES;
}

/* MHD calls the handler again once the scrape is resumed. */
static enum MHD_Result scrape_answer(struct metrics_http *h, struct MHD_Connection *c,
				     struct client *cl)
{
	struct snapshot *s;
	const char *why;
	bool gz;

	pthread_mutex_lock(&h->lock);
	s = cl->snap;
	cl->snap = NULL;
	why = cl->why;
	gz = s && cl->gzip && s->gz_done && s->gz;
	pthread_mutex_unlock(&h->lock);

	if (!s)
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, text_type, why);
	return reply_snapshot(c, s, gz);
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
	struct client *cl = client_of(c);

	(void)version;
	(void)upload_data;

	if (!cl)	/* not tracked (out of memory): already turned away */
		return MHD_NO;
	if (*req_cls == &req_scrape)
		return scrape_answer(h, c, cl);
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
		return scrape_begin(h, c, cl, req_cls);
	if (strcmp(url, "/healthz") == 0)
		return healthz(h, c);
	if (strcmp(url, "/") == 0)
		return reply(c, MHD_HTTP_OK, html_type, landing_page);
	return reply(c, MHD_HTTP_NOT_FOUND, text_type, "not found\n");
}

/* A request is over (sent, or the connection failed): the next one is due. */
static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct metrics_http *h = cls;
	struct client *cl = client_of(c);
	struct snapshot *dead = NULL;

	(void)toe;
	pthread_mutex_lock(&h->lock);
	if (*req_cls == &req_scrape && --h->inflight == 0 && h->stopping)
		pthread_cond_broadcast(&h->idle);
	*req_cls = NULL;
	if (cl) {
		/* answered but never served: the connection failed first */
		if (cl->snap && snapshot_unref(h, cl->snap))
			dead = cl->snap;
		cl->snap = NULL;
		cl->serving = NULL;
		if (cl->state != CL_CUT)
			client_arm(h, cl, CL_READING, &h->reading, REQUEST_SEC);
	}
	pthread_mutex_unlock(&h->lock);
	if (dead)
		snapshot_free(dead);
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

/* ---- life cycle ---- */

/*
 * Every connection is a descriptor: raise the soft RLIMIT_NOFILE (up to the
 * hard one) so that MAX_CONNECTIONS leave FD_RESERVE to the rest of the
 * daemon (about 50 with one cgroup; BPF links grow with --cgroup, at most
 * 64, and --drops), or take fewer connections where the hard limit is lower.
 * Nothing in the daemon uses select(), which would mind descriptors past
 * FD_SETSIZE; MHD polls with epoll.
 */
static unsigned int connection_limit(void)
{
	const rlim_t want = MAX_CONNECTIONS + FD_RESERVE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 64;
	if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {
			.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want,
			.rlim_max = rl.rlim_max,
		};

		if (!setrlimit(RLIMIT_NOFILE, &up))
			rl = up;
	}
	if (rl.rlim_cur >= want)
		return MAX_CONNECTIONS;
	return rl.rlim_cur >= 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
}

static void helper_stop(struct metrics_http *h)
{
	if (!h->helper_started)
		return;
	pthread_mutex_lock(&h->lock);
	h->quit = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->helper, NULL);
	h->helper_started = false;
}

/* MHD is stopped (or never ran) and so is the helper: no response holds a snapshot any more. */
static void free_all(struct metrics_http *h)
{
	if (h->current)
		snapshot_free(h->current);
	if (h->efd >= 0)
		close(h->efd);
	pthread_mutex_destroy(&h->log_lock);
	pthread_cond_destroy(&h->wake);
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->note_lock);
	free(h);
}

/* The helper blocks every signal, whatever the caller's mask (MHD's thread too: see start). */
static int helper_start(struct metrics_http *h)
{
	pthread_attr_t attr;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	ret = pthread_create(&h->helper, &attr, helper_main, h);
	pthread_attr_destroy(&attr);
	if (ret)
		return -ret;
	pthread_setname_np(h->helper, "http-helper");
	h->helper_started = true;
	return 0;
}

struct metrics_http *metrics_http_start(const char *addr, char *err, size_t errlen)
{
	struct metrics_http *h;
	union ml_sockaddr sa;
	pthread_condattr_t ca;
	sigset_t all, mask;
	socklen_t salen;
	const char *why;
	unsigned int flags, limit;
	int fd = -1, one = 1, ret;

	why = ml_parse_hostport(addr, &sa, &salen);
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
	link_init(&h->reading);
	link_init(&h->waiting);
	link_init(&h->sending);
	link_init(&h->old);
	h->helper_at = INT64_MIN;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->note_lock, NULL);
	pthread_mutex_init(&h->log_lock, NULL);
	/* Deadlines are monotonic: a clock step must not cut or stretch a wait. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->idle, &ca);
	pthread_cond_init(&h->wake, &ca);
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
	limit = connection_limit();
	h->evict_at = limit - limit / 16;

	/* Both threads start with every signal blocked; the caller's mask comes back after. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &mask);
	ret = helper_start(h);
	if (ret) {
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
		snprintf(err, errlen, "metrics address %s: pthread_create: %s", addr, strerror(-ret));
		goto cleanup;
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
		MHD_USE_ERROR_LOG;
	if (sa.sa.sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->starting = true;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, limit,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0U,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_SEC,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
				  MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
				  MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				  MHD_OPTION_NOTIFY_CONNECTION, connection_event, h,
				  MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
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
	helper_stop(h);
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
	struct snapshot *s, *old, *dead = NULL;
	struct client *cl;

	s = calloc(1, sizeof(*s));
	if (!s) {
		/* Waiting scrapes time out with 503 rather than get an older body. */
		free(body);
		return;
	}
	s->h = h;
	s->refs = 1;
	s->text = body;
	s->len = len;
	link_init(&s->zippers);
	link_init(&s->old);

	pthread_mutex_lock(&h->lock);
	old = h->current;
	h->current = s;
	h->published_gen = h->render_gen;
	/* h->waiting is in ticket order. */
	while ((cl = first_client(&h->waiting)) && cl->ticket <= h->published_gen) {
		cl->snap = s;
		s->refs++;
		if (cl->gzip) {
			link_del(&cl->link);
			cl->state = CL_ZIPPING;
			link_add_tail(&s->zippers, &cl->link);
		} else {
			client_resume(cl, NULL);
		}
	}
	if (!link_empty(&s->zippers)) {
		s->refs++;	/* the helper's */
		if (h->zip_tail)
			h->zip_tail->zip_next = s;
		else
			h->zip_head = s;
		h->zip_tail = s;
		pthread_cond_signal(&h->wake);
	}
	if (old) {
		if (snapshot_unref(h, old)) {
			dead = old;
		} else {
			/* responses still serve it; the last one frees it */
			link_add_tail(&h->old, &old->old);
			h->old_bytes += snapshot_bytes(old);
			trim_old(h);
		}
	}
	pthread_mutex_unlock(&h->lock);
	if (dead)
		snapshot_free(dead);
}

void metrics_http_set_health_note(struct metrics_http *h, const char *note)
{
	pthread_mutex_lock(&h->note_lock);
	snprintf(h->health_note, sizeof(h->health_note), "%s", note ? note : "");
	pthread_mutex_unlock(&h->note_lock);
}

void metrics_http_set_ready(struct metrics_http *h, bool ready)
{
	atomic_store(&h->ready, ready);
}

void metrics_http_stop(struct metrics_http *h)
{
	struct timespec deadline;
	struct client *cl;

	if (!h)
		return;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += STOP_DRAIN_SEC;

	/*
	 * Release the waiting scrapes and give them a moment to send their 503:
	 * MHD_stop_daemon() shuts every socket down at once, and must find no
	 * connection suspended. No scrape suspends once stopping is set; the
	 * helper resumes those waiting for gzip before it exits.
	 */
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	while ((cl = first_client(&h->waiting)))
		client_resume(cl, stopping_text);
	while (h->inflight && pthread_cond_timedwait(&h->idle, &h->lock, &deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&h->lock);

	helper_stop(h);
	MHD_stop_daemon(h->mhd);
	free_all(h);
}
