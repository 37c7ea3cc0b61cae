// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Aggregation. Each set of families is a table: a fixed array of
 * max_series + 2 series (the last two are the overflow series, outbound
 * and inbound) indexed by an ml_table (lib/table.h). Connections are an
 * array too, indexed by socket cookie: each holds its series in each set
 * and what was already counted for it. Everything is sized up front or
 * grown by doubling, so the per-record path does not allocate in steady
 * state (a new workload series allocates its label text once).
 */
#define _GNU_SOURCE /* qsort_r */
#include "metrics.h"
#include "../lib/names.h"
#include "../lib/table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_TEXT 48
#define WL_LABELS 4    /* src_workload, src_namespace, dst_workload, dst_namespace */
#define ISTIO_LABELS 19 /* istio_label[] */
#define MAX_LABELS ISTIO_LABELS
#define SVC_HOST_MAX 300 /* NAME.NAMESPACE.svc.cluster.local */
#define NO_SLOT UINT32_MAX /* the set is off */
#define CONNS_INIT 512     /* tracked connections before the first growth */

/*
 * A histogram of closed connections: bucket i counts values <= bound[i]
 * (not cumulative here; rendered cumulative), the last one the rest.
 * Bounds are integers in the value's own unit (ns, us), so a value on a
 * bound lands in that bound's bucket exactly.
 */
#define HIST_BOUNDS 12
struct hist {
	uint64_t b[HIST_BOUNDS + 1];
	uint64_t sum; /* in the value's unit */
};

/* Connection duration (ns): 1 ms .. 1 h. */
static const uint64_t dur_bound[HIST_BOUNDS] = {
	1000000ULL,	5000000ULL,	 10000000ULL,	  50000000ULL,
	100000000ULL,	500000000ULL,	 1000000000ULL,	  5000000000ULL,
	10000000000ULL, 60000000000ULL, 300000000000ULL, 3600000000000ULL,
};
/* Smoothed RTT at close (us): 100 us .. 1 s. */
static const uint64_t srtt_bound[HIST_BOUNDS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

/*
 * Handshake latency (us): 50 us .. 7 s; a lost SYN costs the initial RTO
 * (1 s, then 3 s and 7 s in all from connect()).
 */
static const uint64_t handshake_bound[HIST_BOUNDS] = {
	50, 100, 250, 500, 1000, 2500, 10000, 50000, 250000, 1000000, 3000000, 7000000,
};

struct series {
	uint64_t opened, closed, failed, sent, received, retrans;
	uint64_t rto; /* RTO expiries, where the kernel counts them (ML_F_RTO) */
	/* closed connections (not in the Istio set); handshake: those with a measurement */
	struct hist duration, srtt, handshake;
	uint64_t last_active_ns;
	uint64_t hash;
	uint32_t live;     /* tracked connections counting into this series */
	uint32_t epoch;    /* bumped when the slot is freed: a cached slot is stale */
	uint8_t direction; /* ML_DIR_*; 0: slot unused */
	union {
		struct { /* METRICS_IP_PAIR */
			uint8_t src[ML_ADDR_LEN], dst[ML_ADDR_LEN];
			uint16_t port;
			/* label text, formatted once when the series is created */
			char src_text[ADDR_TEXT], dst_text[ADDR_TEXT], port_text[8];
		} ip;
		struct { /* METRICS_WORKLOAD, METRICS_ISTIO */
			const char *v[MAX_LABELS]; /* into text; static for overflow */
			char *text;                /* one allocation, NULL for overflow */
		} wl;
	};
};

/* What a record's series is looked up by. */
struct probe {
	uint64_t hash;
	uint8_t direction;
	const struct tcp_probe_info *r; /* IP pair */
	const char *v[MAX_LABELS];      /* workload, Istio */
	char svc_host[SVC_HOST_MAX];    /* Istio's destination_service */
};

struct table {
	enum metrics_set set;
	bool on;
	uint32_t cap;
	struct series *s;       /* cap + 2 */
	uint32_t *free_slots;   /* stack of unused slots */
	uint32_t n_free;
	struct ml_table index;  /* the slots of the used series */
	uint32_t *order;        /* render scratch: sorted slots */
	uint64_t folded, dropped;
};

/*
 * The named sets' series of a pair of ends, by identify()'s handles
 * (metrics_names.src_id, dst_id): a new connection between ends already
 * seen takes its series from here, where a lookup would hash and compare
 * the Istio set's 19 labels and the workload set's 4 (with --metadata,
 * most of the per-record cost of the metrics: callgrind, bench_pipeline).
 * Direct-mapped; an entry holds while its generation and every slot's
 * epoch do. Overflow slots are never held: a slot may free up meanwhile.
 */
#define PAIRS 1024 /* a power of two */
struct pair {
	const void *src, *dst;
	uint64_t gen; /* metrics_names.id_gen; 0: empty */
	uint8_t direction;
	uint32_t slot[METRICS_SETS], epoch[METRICS_SETS]; /* the named sets' */
};

struct conn {
	uint64_t cookie; /* 0: unused slot (the kernel's cookies start at 1) */
	uint64_t sent, received;
	uint32_t slot[METRICS_SETS];
	uint32_t retrans;
	uint32_t rto;
	uint32_t seen_gen;
	/* the open record's bases (probe.h), for ML_F_RAW records; a SYN's
	 * sequence space plus Fast Open data, far below 2^32 */
	uint32_t sent_base, recv_base;
	/* interim reports: the next boundary, what was reported up to it */
	uint64_t next_interim_ns;
	uint64_t logged_sent, logged_received;
	uint32_t logged_retrans;
};

struct metrics {
	struct metrics_config cfg;
	struct table t[METRICS_SETS];
	struct conn *conns;     /* conns_cap */
	uint32_t *conns_free;   /* stack of unused slots */
	uint32_t conns_cap, n_free_conns;
	struct ml_table conn_index;
	uint32_t n_conns;
	uint32_t gen; /* live-iterator pass */
	uint32_t expiry; /* full passes unseen before a connection is forgotten */
	uint64_t expired;
	bool rto_known; /* this kernel counts RTOs: a record said so (ML_F_RTO), or the loader */
	struct pair *pairs; /* PAIRS, with identify() */
};

static const char *const dir_name[] = { "unknown", "outbound", "inbound" };
static const char *const set_name[METRICS_SETS] = { "ip_pair", "workload", "istio" };

/*
 * The Istio set's labels, in the order Istio's proxies print them, after
 * reporter; request_protocol, response_flags and
 * connection_security_policy follow with fixed values: "tcp", "-" (no
 * flags), "unknown" (meshlens cannot see whether a connection carries
 * mTLS; Istio says "unknown" where its reporter cannot either).
 */
static const char *const istio_label[ISTIO_LABELS] = {
	"source_workload",		  "source_canonical_service",
	"source_canonical_revision",	  "source_workload_namespace",
	"source_principal",		  "source_app",
	"source_version",		  "source_cluster",
	"destination_service",		  "destination_service_namespace",
	"destination_service_name",	  "destination_workload",
	"destination_canonical_service",  "destination_canonical_revision",
	"destination_workload_namespace", "destination_principal",
	"destination_app",		  "destination_version",
	"destination_cluster",
};

static unsigned int n_labels(enum metrics_set set)
{
	return set == METRICS_ISTIO ? ISTIO_LABELS : WL_LABELS;
}

const char *metrics_set_name(enum metrics_set set)
{
	return set < METRICS_SETS ? set_name[set] : "unknown";
}

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* ---- tables ---------------------------------------------------------------- */

static int table_init(struct table *t, enum metrics_set set, uint32_t cap)
{
	t->set = set;
	t->on = true;
	t->cap = cap;
	t->s = calloc((size_t)cap + 2, sizeof(*t->s));
	t->free_slots = calloc(cap, sizeof(*t->free_slots));
	t->order = calloc((size_t)cap + 2, sizeof(*t->order));
	if (!t->s || !t->free_slots || !t->order || ml_table_init(&t->index, cap))
		return -ENOMEM;
	/* pop order: slot 0 first */
	for (uint32_t i = 0; i < cap; i++)
		t->free_slots[i] = cap - 1 - i;
	t->n_free = cap;
	for (int d = 0; d < 2; d++) {
		struct series *o = &t->s[cap + d];

		o->direction = (uint8_t)(d + 1);
		if (set == METRICS_IP_PAIR) {
			strcpy(o->ip.src_text, "other");
			strcpy(o->ip.dst_text, "other");
			strcpy(o->ip.port_text, "other");
		} else {
			for (unsigned int i = 0; i < n_labels(set); i++)
				o->wl.v[i] = "other";
		}
	}
	return 0;
}

static void table_free(struct table *t)
{
	if (t->s && t->set != METRICS_IP_PAIR)
		for (uint32_t i = 0; i < t->cap; i++)
			free(t->s[i].wl.text);
	free(t->s);
	free(t->free_slots);
	free(t->order);
	ml_table_free(&t->index);
}

/* Room for cap connections: the new slots go on the free stack. */
static int conns_grow(struct metrics *m, uint32_t cap)
{
	struct conn *nc;
	uint32_t *nf;

	if (!cap || cap < m->conns_cap)
		return -ENOMEM; /* 2^32 connections: cannot happen */
	nc = realloc(m->conns, (size_t)cap * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	m->conns = nc;
	nf = realloc(m->conns_free, (size_t)cap * sizeof(*nf));
	if (!nf)
		return -ENOMEM; /* the larger conns array is kept, unused past conns_cap */
	m->conns_free = nf;
	/* pop order: the lowest new slot first */
	for (uint32_t i = cap; i > m->conns_cap; i--) {
		m->conns[i - 1].cookie = 0;
		m->conns_free[m->n_free_conns++] = i - 1;
	}
	m->conns_cap = cap;
	return 0;
}

struct metrics *metrics_new(const struct metrics_config *cfg)
{
	struct metrics *m = calloc(1, sizeof(*m));
	bool on[METRICS_SETS] = { cfg->ip_pairs, cfg->identify && !cfg->workload_off,
				  cfg->identify && cfg->istio };

	if (!m)
		return NULL;
	m->cfg = *cfg;
	m->expiry = 2;
	for (int k = 0; k < METRICS_SETS; k++) {
		if (on[k] && table_init(&m->t[k], (enum metrics_set)k, cfg->max_series)) {
			metrics_free(m);
			return NULL;
		}
	}
	if (cfg->identify && !(m->pairs = calloc(PAIRS, sizeof(*m->pairs)))) {
		metrics_free(m);
		return NULL;
	}
	if (ml_table_init(&m->conn_index, CONNS_INIT) || conns_grow(m, CONNS_INIT)) {
		metrics_free(m);
		return NULL;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (int k = 0; k < METRICS_SETS; k++)
		table_free(&m->t[k]);
	free(m->conns);
	free(m->conns_free);
	ml_table_free(&m->conn_index);
	free(m->pairs);
	free(m);
}

/* ---- series ------------------------------------------------------------- */

static uint8_t direction_of(const struct tcp_probe_info *r)
{
	return r->direction == ML_DIR_INBOUND ? ML_DIR_INBOUND : ML_DIR_OUTBOUND;
}

static uint64_t names_hash(const char *const *v, unsigned int n, uint8_t direction)
{
	uint64_t h = ML_HASH_INIT;

	for (unsigned int i = 0; i < n; i++)
		h = ml_hash_str(h, v[i]);
	return mix64(h ^ direction);
}

static const char *or_unknown(const char *v)
{
	return v ? v : "unknown";
}

/*
 * Istio's values where the metadata is silent, as Istio's own proxies
 * fill them: "unknown", but a canonical service defaults to the workload's
 * name and a canonical revision to "latest" (for a workload that is
 * known); the destination service is the Kubernetes service's host name
 * (cluster domain cluster.local), its name and its workload's namespace.
 */
/* An end's eight labels, in Istio's order: workload, canonical service,
 * canonical revision, namespace, principal, app, version, cluster. */
static void istio_end(const char *workload, const char *ns, const struct metrics_end *e,
		      const char **v)
{
	v[0] = or_unknown(workload);
	v[1] = e->canonical_service ? e->canonical_service : v[0];
	v[2] = e->canonical_revision ? e->canonical_revision : workload ? "latest" : "unknown";
	v[3] = or_unknown(ns);
	v[4] = or_unknown(e->principal);
	v[5] = or_unknown(e->app);
	v[6] = or_unknown(e->version);
	v[7] = or_unknown(e->cluster);
}

/*
 * SERVICE.NAMESPACE.svc.cluster.local into buf, if it fits. By hand: this
 * runs once per connection, and snprintf()'s format parsing was a quarter
 * of the per-record cost with the Istio set on (~1000 instructions).
 */
static bool svc_host(char *buf, size_t len, const char *svc, const char *ns)
{
	static const char suffix[] = ".svc.cluster.local";
	size_t a = strlen(svc), b = strlen(ns);

	if (a + 1 + b + sizeof(suffix) > len)
		return false;
	memcpy(buf, svc, a);
	buf[a] = '.';
	memcpy(buf + a + 1, ns, b);
	memcpy(buf + a + 1 + b, suffix, sizeof(suffix));
	return true;
}

static void istio_values(const struct metrics_names *n, struct probe *p)
{
	const struct metrics_end *d = &n->dst;
	const char **v = p->v;

	istio_end(n->src_workload, n->src_namespace, &n->src, v);
	if (d->service && n->dst_namespace &&
	    svc_host(p->svc_host, sizeof(p->svc_host), d->service, n->dst_namespace))
		v[8] = p->svc_host;
	else
		v[8] = or_unknown(d->service);
	v[9] = d->service ? or_unknown(n->dst_namespace) : "unknown";
	v[10] = or_unknown(d->service);
	istio_end(n->dst_workload, n->dst_namespace, d, v + 11);
}

static void probe_of(enum metrics_set set, const struct tcp_probe_info *r,
		     const struct metrics_names *names, struct probe *p)
{
	p->direction = direction_of(r);
	if (set == METRICS_IP_PAIR) {
		uint64_t w[4], h = 0;

		p->r = r;
		memcpy(w, r->src_addr, 16);
		memcpy(w + 2, r->dst_addr, 16);
		for (int i = 0; i < 4; i++)
			h = mix64(h ^ w[i]);
		p->hash = mix64(h ^ ((uint64_t)r->dst_port << 8 | p->direction));
	} else {
		const struct metrics_names *n = names;

		if (set == METRICS_ISTIO) {
			istio_values(n, p);
		} else {
			p->v[0] = or_unknown(n->src_workload);
			p->v[1] = or_unknown(n->src_namespace);
			p->v[2] = or_unknown(n->dst_workload);
			p->v[3] = or_unknown(n->dst_namespace);
		}
		if (set == METRICS_ISTIO) {
			/* hashed by what names the ends (workloads, namespaces,
			 * the service): the other labels follow from them in all
			 * but a reload's renames, which the full compare tells
			 * apart; a third of the hashing per new connection */
			const char *key[] = { p->v[0], p->v[3], p->v[10], p->v[11], p->v[14] };

			p->hash = names_hash(key, 5, p->direction);
		} else {
			p->hash = names_hash(p->v, WL_LABELS, p->direction);
		}
	}
}

static bool series_is(const struct table *t, const struct series *s, const struct probe *p)
{
	if (s->hash != p->hash || s->direction != p->direction)
		return false;
	if (t->set == METRICS_IP_PAIR)
		return s->ip.port == p->r->dst_port &&
		       !memcmp(s->ip.src, p->r->src_addr, ML_ADDR_LEN) &&
		       !memcmp(s->ip.dst, p->r->dst_addr, ML_ADDR_LEN);
	for (unsigned int i = 0; i < n_labels(t->set); i++)
		if (strcmp(s->wl.v[i], p->v[i]))
			return false;
	return true;
}

static void format_port(char *buf, uint16_t port)
{
	char tmp[8], *p = tmp + sizeof(tmp);

	*--p = '\0';
	do
		*--p = (char)('0' + port % 10);
	while (port /= 10);
	memcpy(buf, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Fill a new series' key and label text; -ENOMEM leaves it unused. */
static int series_init(const struct table *t, struct series *s,
		       const struct probe *p)
{
	uint32_t epoch = s->epoch;

	memset(s, 0, sizeof(*s));
	s->epoch = epoch;
	if (t->set == METRICS_IP_PAIR) {
		memcpy(s->ip.src, p->r->src_addr, ML_ADDR_LEN);
		memcpy(s->ip.dst, p->r->dst_addr, ML_ADDR_LEN);
		s->ip.port = p->r->dst_port;
		if (ml_format_addr(s->ip.src, s->ip.src_text, ADDR_TEXT) < 0)
			strcpy(s->ip.src_text, "invalid");
		if (ml_format_addr(s->ip.dst, s->ip.dst_text, ADDR_TEXT) < 0)
			strcpy(s->ip.dst_text, "invalid");
		format_port(s->ip.port_text, s->ip.port);
	} else {
		size_t len[MAX_LABELS], total = 0;
		unsigned int n = n_labels(t->set);
		char *q;

		for (unsigned int i = 0; i < n; i++)
			total += len[i] = strlen(p->v[i]) + 1;
		q = s->wl.text = malloc(total);
		if (!q)
			return -ENOMEM;
		for (unsigned int i = 0; i < n; i++) {
			memcpy(q, p->v[i], len[i]);
			s->wl.v[i] = q;
			q += len[i];
		}
	}
	s->hash = p->hash;
	s->direction = p->direction;
	return 0;
}

struct series_key {
	const struct table *t;
	const struct probe *p;
};

static bool series_eq(const void *ctx, uint32_t slot)
{
	const struct series_key *k = ctx;

	return series_is(k->t, &k->t->s[slot], k->p);
}

/* The series of r (names: its ends') in t, created if new, or the overflow series. */
static uint32_t table_slot(struct table *t, const struct tcp_probe_info *r,
			   const struct metrics_names *names)
{
	struct probe p;
	struct series_key k = { t, &p };
	uint32_t pos, slot;

	probe_of(t->set, r, names, &p);
	slot = ml_table_find(&t->index, (uint32_t)p.hash, series_eq, &k, &pos);
	if (slot != ML_TABLE_NONE)
		return slot;
	/* the index is sized for every series (table_init()): inserting cannot fail */
	if (!t->n_free || series_init(t, &t->s[t->free_slots[t->n_free - 1]], &p)) {
		t->folded++;
		return t->cap + (p.direction == ML_DIR_INBOUND);
	}
	slot = t->free_slots[--t->n_free];
	ml_table_insert(&t->index, pos, (uint32_t)p.hash, slot);
	return slot;
}

static void table_drop(struct table *t, uint32_t slot)
{
	ml_table_remove(&t->index, (uint32_t)t->s[slot].hash, slot);
	t->free_slots[t->n_free++] = slot;
	if (t->set != METRICS_IP_PAIR) {
		free(t->s[slot].wl.text);
		t->s[slot].wl.text = NULL;
	}
	t->s[slot].direction = 0;
	t->s[slot].epoch++;
	t->dropped++;
}

/* ---- connections -------------------------------------------------------- */

static uint32_t cookie_hash(uint64_t cookie)
{
	return (uint32_t)mix64(cookie);
}

struct conn_key {
	const struct conn *conns;
	uint64_t cookie;
};

static bool conn_eq(const void *ctx, uint32_t slot)
{
	const struct conn_key *k = ctx;

	return k->conns[slot].cookie == k->cookie;
}

/* The connection of cookie, or NULL; *pos is for conn_add() or conn_del(). */
static struct conn *conn_find(struct metrics *m, uint64_t cookie, uint32_t *pos)
{
	struct conn_key k = { m->conns, cookie };
	uint32_t slot;

	slot = ml_table_find(&m->conn_index, cookie_hash(cookie), conn_eq, &k, pos);
	return slot == ML_TABLE_NONE ? NULL : &m->conns[slot];
}

/* Start tracking a connection at pos, where conn_find() did not find it;
 * NULL when memory ran out (it is then counted at its close only, as a
 * connection never seen open). */
static struct conn *conn_add(struct metrics *m, uint64_t cookie, uint32_t pos,
			     const uint32_t slot[METRICS_SETS])
{
	struct conn *c;
	uint32_t cs;

	if (!m->n_free_conns && conns_grow(m, m->conns_cap * 2))
		return NULL;
	cs = m->conns_free[m->n_free_conns - 1];
	if (ml_table_insert(&m->conn_index, pos, cookie_hash(cookie), cs))
		return NULL;
	m->n_free_conns--;
	c = &m->conns[cs];
	memset(c, 0, sizeof(*c));
	c->cookie = cookie;
	memcpy(c->slot, slot, sizeof(c->slot));
	c->seen_gen = m->gen;
	m->n_conns++;
	for (int k = 0; k < METRICS_SETS; k++)
		if (slot[k] != NO_SLOT)
			m->t[k].s[slot[k]].live++;
	return c;
}

/* pos: c's bucket from conn_find(), or NO_SLOT to look it up */
static void conn_del(struct metrics *m, struct conn *c, uint32_t pos)
{
	uint32_t cs = (uint32_t)(c - m->conns);

	for (int k = 0; k < METRICS_SETS; k++)
		if (c->slot[k] != NO_SLOT)
			m->t[k].s[c->slot[k]].live--;
	m->n_conns--;
	if (pos == NO_SLOT)
		ml_table_remove(&m->conn_index, cookie_hash(c->cookie), cs);
	else
		ml_table_del(&m->conn_index, pos);
	c->cookie = 0;
	m->conns_free[m->n_free_conns++] = cs;
}

/* What one record adds to its series. */
struct delta {
	uint64_t opened, closed, failed, sent, received, retrans, rto;
};

/* Count what this record adds beyond what the connection already counted. */
static void advance(struct conn *c, const struct tcp_probe_info *r, struct delta *d)
{
	if (r->sent_bytes > c->sent) {
		d->sent = r->sent_bytes - c->sent;
		c->sent = r->sent_bytes;
	}
	if (r->received_bytes > c->received) {
		d->received = r->received_bytes - c->received;
		c->received = r->received_bytes;
	}
	if (r->total_retrans > c->retrans) {
		d->retrans = r->total_retrans - c->retrans;
		c->retrans = r->total_retrans;
	}
	if ((r->flags & ML_F_RTO) && r->total_rto > c->rto) {
		d->rto = r->total_rto - c->rto;
		c->rto = r->total_rto;
	}
}

static void add_delta(struct metrics *m, const uint32_t slot[METRICS_SETS], uint64_t now_ns,
		      const struct delta *d);

static void hist_add(struct hist *h, const uint64_t bound[HIST_BOUNDS], uint64_t v)
{
	int i = 0;

	while (i < HIST_BOUNDS && v > bound[i])
		i++;
	h->b[i]++;
	h->sum += v;
}

/* A closed connection's duration and smoothed RTT into its series. */
static void observe(struct metrics *m, const uint32_t slot[METRICS_SETS],
		    const struct tcp_probe_info *r)
{
	for (int k = 0; k < METRICS_SETS; k++) {
		struct series *s;

		if (slot[k] == NO_SLOT || k == METRICS_ISTIO)
			continue;
		s = &m->t[k].s[slot[k]];
		hist_add(&s->duration, dur_bound, r->duration);
		hist_add(&s->srtt, srtt_bound, r->srtt_us);
		if (r->flags & ML_F_HANDSHAKE)
			hist_add(&s->handshake, handshake_bound, r->handshake_us);
	}
}

/*
 * An interim report when r (a LIVE record: close_ns is the pass's time)
 * is past the connection's next boundary; the boundaries stay start +
 * k * interval however late a pass comes, one report per pass at most.
 */
static void interim_due(struct metrics *m, struct conn *c, const struct tcp_probe_info *r)
{
	uint64_t iv_ns = m->cfg.interim_ns;
	struct tcp_probe_info cum;
	struct metrics_interval iv;

	if (!iv_ns || r->close_ns < c->next_interim_ns)
		return;
	iv = (struct metrics_interval){ c->sent - c->logged_sent, c->received - c->logged_received,
					c->retrans - c->logged_retrans };
	cum = *r;
	cum.sent_bytes = c->sent;
	cum.received_bytes = c->received;
	cum.total_retrans = c->retrans;
	m->cfg.interim(m->cfg.interim_ctx, &cum, &iv);
	c->logged_sent = c->sent;
	c->logged_received = c->received;
	c->logged_retrans = c->retrans;
	c->next_interim_ns += iv_ns * ((r->close_ns - c->next_interim_ns) / iv_ns + 1);
}

/*
 * A raw LIVE record (ML_F_RAW, iter/task_file): the kernel's counters less
 * the bases of the connection's open record give its payload so far.
 */
static void live_raw(struct metrics *m, struct conn *c, const struct tcp_probe_info *r)
{
	struct tcp_probe_info abs = *r;
	struct delta d = { 0 };

	abs.sent_bytes = r->sent_bytes > c->sent_base ? r->sent_bytes - c->sent_base : 0;
	abs.received_bytes = r->received_bytes > c->recv_base ? r->received_bytes - c->recv_base : 0;
	c->seen_gen = m->gen;
	advance(c, &abs, &d);
	add_delta(m, c->slot, r->close_ns, &d);
	/* no interim report: a raw record has no addresses, ports or start
	 * to put in a line (only the storage-reading passes give them) */
}

static struct pair *pair_of(struct metrics *m, const struct metrics_names *n, uint8_t direction)
{
	uint64_t h = mix64((uint64_t)(uintptr_t)n->src_id ^ direction);

	return &m->pairs[mix64(h ^ (uint64_t)(uintptr_t)n->dst_id) & (PAIRS - 1)];
}

static bool pair_is(const struct metrics *m, const struct pair *pc, const struct metrics_names *n,
		    uint8_t direction)
{
	if (pc->gen != n->id_gen || pc->src != n->src_id || pc->dst != n->dst_id ||
	    pc->direction != direction)
		return false;
	for (int k = METRICS_WORKLOAD; k < METRICS_SETS; k++)
		if (m->t[k].on && m->t[k].s[pc->slot[k]].epoch != pc->epoch[k])
			return false;
	return true;
}

/* The named sets' series of a new connection (slot[] of the rest untouched). */
static void named_slots(struct metrics *m, const struct tcp_probe_info *r,
			uint32_t slot[METRICS_SETS])
{
	struct metrics_names names = { 0 };
	uint8_t direction = direction_of(r);
	struct pair *pc = NULL;
	bool hold;

	m->cfg.identify(m->cfg.identify_ctx, r, &names);
	if (names.id_gen) {
		pc = pair_of(m, &names, direction);
		if (pair_is(m, pc, &names, direction)) {
			for (int k = METRICS_WORKLOAD; k < METRICS_SETS; k++)
				slot[k] = m->t[k].on ? pc->slot[k] : NO_SLOT;
			return;
		}
	}
	hold = pc != NULL; /* handles given */
	for (int k = METRICS_WORKLOAD; k < METRICS_SETS; k++) {
		slot[k] = m->t[k].on ? table_slot(&m->t[k], r, &names) : NO_SLOT;
		hold = hold && (slot[k] == NO_SLOT || slot[k] < m->t[k].cap);
	}
	if (!hold)
		return;
	*pc = (struct pair){ .src = names.src_id, .dst = names.dst_id, .gen = names.id_gen,
			     .direction = direction };
	for (int k = METRICS_WORKLOAD; k < METRICS_SETS; k++) {
		if (slot[k] != NO_SLOT) {
			pc->slot[k] = slot[k];
			pc->epoch[k] = m->t[k].s[slot[k]].epoch;
		}
	}
}

void metrics_record(struct metrics *m, const struct tcp_probe_info *r)
{
	struct conn *c = NULL, none = { 0 };
	uint32_t pos = NO_SLOT, slot[METRICS_SETS];
	struct delta d = { 0 };

	/* failed attempts were never tracked; cookie 0 cannot be (empty slot) */
	bool trackable = r->type != ML_REC_CONN_FAILED && r->sock_cookie;

	if (r->flags & ML_F_RTO)
		m->rto_known = true;

	if (trackable)
		c = conn_find(m, r->sock_cookie, &pos);
	if (r->flags & ML_F_RAW) { /* iter/task_file: only what an open record told us of */
		if (c)
			live_raw(m, c, r);
		return;
	}
	if (c) {
		memcpy(slot, c->slot, sizeof(slot));
	} else {
		slot[METRICS_IP_PAIR] = m->t[METRICS_IP_PAIR].on ?
			table_slot(&m->t[METRICS_IP_PAIR], r, NULL) : NO_SLOT;
		/* the ends named once for every set that shows names */
		if (m->t[METRICS_WORKLOAD].on || m->t[METRICS_ISTIO].on)
			named_slots(m, r, slot);
		else
			slot[METRICS_WORKLOAD] = slot[METRICS_ISTIO] = NO_SLOT;
		if (trackable && r->type != ML_REC_CONN_CLOSE) {
			c = conn_add(m, r->sock_cookie, pos, slot);
			if (c)
				c->next_interim_ns = r->start_ns + m->cfg.interim_ns;
		}
		/* opened once: now if tracked from here on, else at its close */
		d.opened = r->type == ML_REC_CONN_CLOSE ||
			   (c && (r->type == ML_REC_CONN_OPEN || r->type == ML_REC_CONN_LIVE));
	}
	switch (r->type) {
	case ML_REC_CONN_FAILED:
		d.failed = 1;
		d.retrans = r->total_retrans; /* SYNs sent again */
		d.rto = r->flags & ML_F_RTO ? r->total_rto : 0; /* the SYNs' timeouts */
		break;
	case ML_REC_CONN_LIVE:
		if (c) {
			c->seen_gen = m->gen;
			advance(c, r, &d);
			interim_due(m, c, r);
		}
		break;
	case ML_REC_CONN_OPEN:
		if (c) {
			c->sent_base = (uint32_t)r->sent_bytes;
			c->recv_base = (uint32_t)r->received_bytes;
		}
		break;
	case ML_REC_CONN_CLOSE:
		advance(c ? c : &none, r, &d);
		d.closed = 1;
		break;
	}
	add_delta(m, slot, r->close_ns, &d);
	if (r->type == ML_REC_CONN_CLOSE) {
		observe(m, slot, r);
		if (c)
			conn_del(m, c, pos);
	}
}

static void add_delta(struct metrics *m, const uint32_t slot[METRICS_SETS], uint64_t now_ns,
		      const struct delta *d)
{
	for (int k = 0; k < METRICS_SETS; k++) {
		struct series *s;

		if (slot[k] == NO_SLOT)
			continue;
		s = &m->t[k].s[slot[k]];
		s->last_active_ns = now_ns;
		s->opened += d->opened;
		s->closed += d->closed;
		s->failed += d->failed;
		s->retrans += d->retrans;
		s->rto += d->rto;
		/* Istio's sent is the response's bytes, its received the
		 * request's, whichever end reports (istio/istio#32399): the
		 * client's socket's own view is the other way round */
		if (k == METRICS_ISTIO && s->direction == ML_DIR_OUTBOUND) {
			s->sent += d->received;
			s->received += d->sent;
		} else {
			s->sent += d->sent;
			s->received += d->received;
		}
	}
}

/* ---- live-iterator passes ------------------------------------------------- */

void metrics_rto_counted(struct metrics *m)
{
	m->rto_known = true;
}

void metrics_set_series_idle(struct metrics *m, unsigned int seconds)
{
	m->cfg.series_idle_seconds = seconds;
}

void metrics_live_set_expiry(struct metrics *m, uint32_t full_passes)
{
	m->expiry = full_passes ? full_passes : 2;
}

void metrics_live_begin(struct metrics *m, bool full)
{
	if (full)
		m->gen++;
}

void metrics_live_end(struct metrics *m, uint64_t now_ns, bool full)
{
	uint64_t idle_ns = (uint64_t)m->cfg.series_idle_seconds * 1000000000ULL;

	/* A connection unseen by `expiry` full passes lost its close record
	 * (ringbuf full): forget it, so its series can go idle. */
	for (uint32_t i = 0; full && i < m->conns_cap; i++) {
		if (m->conns[i].cookie && m->conns[i].seen_gen + m->expiry <= m->gen) {
			conn_del(m, &m->conns[i], NO_SLOT);
			m->expired++;
		}
	}
	if (!idle_ns)
		return;
	for (int k = 0; k < METRICS_SETS; k++) {
		struct table *t = &m->t[k];

		for (uint32_t i = 0; t->on && i < t->cap; i++) {
			const struct series *s = &t->s[i];

			if (s->direction && !s->live && now_ns - s->last_active_ns > idle_ns)
				table_drop(t, i);
		}
	}
}

/* ---- exposition ---------------------------------------------------------- */

/* Label order: direction ("inbound" first), then the other labels; the
 * overflow series last within its direction. */
static int cmp_series(const void *a, const void *b, void *arg)
{
	const struct table *t = arg;
	uint32_t sa = *(const uint32_t *)a, sb = *(const uint32_t *)b;
	const struct series *x = &t->s[sa], *y = &t->s[sb];
	int c = 0;

	if (x->direction != y->direction)
		return x->direction == ML_DIR_INBOUND ? -1 : 1;
	if ((sa >= t->cap) != (sb >= t->cap))
		return sa >= t->cap ? 1 : -1;
	if (t->set == METRICS_IP_PAIR) {
		c = memcmp(x->ip.src, y->ip.src, ML_ADDR_LEN);
		if (!c)
			c = memcmp(x->ip.dst, y->ip.dst, ML_ADDR_LEN);
		if (!c)
			c = (int)x->ip.port - (int)y->ip.port;
		return c;
	}
	for (unsigned int i = 0; !c && i < n_labels(t->set); i++)
		c = strcmp(x->wl.v[i], y->wl.v[i]);
	return c;
}

static const struct {
	const char *name, *help; /* name after the set's prefix; help before ", by" */
	size_t off;
} families[] = {
	{ "connections_opened_total", "TCP connections that reached ESTABLISHED",
	  offsetof(struct series, opened) },
	{ "connections_closed_total", "Established TCP connections that closed",
	  offsetof(struct series, closed) },
	{ "connections_failed_total", "TCP connection attempts that never reached ESTABLISHED",
	  offsetof(struct series, failed) },
	{ "sent_bytes_total", "Payload bytes sent and acknowledged by the sockets",
	  offsetof(struct series, sent) },
	{ "received_bytes_total", "Payload bytes received by the sockets",
	  offsetof(struct series, received) },
	{ "retransmits_total", "Retransmitted TCP segments", offsetof(struct series, retrans) },
	/* last: only where the kernel counts RTOs (m->rto_known) */
	{ "rto_timeouts_total",
	  "TCP retransmission timeouts (RTO expiries, a SYN's included; kernel 6.7 and later)",
	  offsetof(struct series, rto) },
};
#define FAMILY_RTO (sizeof(families) / sizeof(families[0]) - 1)

/* The sorted slots of the series to show; how many. */
static uint32_t sorted_series(struct table *t)
{
	uint32_t n = 0, total = t->cap + 2;

	for (uint32_t i = 0; i < total; i++) {
		const struct series *s = &t->s[i];

		/* overflow series appear once something folded into them */
		if (i >= t->cap ? s->opened || s->failed : s->direction != 0)
			t->order[n++] = i;
	}
	if (n > 1)
		qsort_r(t->order, n, sizeof(*t->order), cmp_series, t);
	return n;
}

static uint64_t family_value(const struct series *s, size_t f)
{
	return *(const uint64_t *)((const char *)s + families[f].off);
}

/*
 * Istio's five TCP families (connections_failed_total as ztunnel has
 * it), named and labelled as Istio's proxies export them, so Kiali's graph
 * and Istio's dashboards read them unchanged.
 */
static void render_istio(struct table *t, struct expo *e)
{
	static const char *const help[] = {
		"The total number of TCP connections opened.",
		"The total number of TCP connections closed.",
		"The total number of failed TCP connections.",
		"The size of total bytes sent during response in case of a TCP connection.",
		"The size of total bytes received during request in case of a TCP connection.",
	};
	const char *labels[2 * (ISTIO_LABELS + 4) + 1];
	uint32_t n = sorted_series(t);
	char name[96];

	for (size_t f = 0; f < 5; f++) {
		snprintf(name, sizeof(name), "istio_tcp_%s", families[f].name);
		expo_family(e, name, "counter", help[f]);
		for (uint32_t i = 0; i < n; i++) {
			const struct series *s = &t->s[t->order[i]];
			int k = 0;

			labels[k++] = "reporter";
			labels[k++] = s->direction == ML_DIR_INBOUND ? "destination" : "source";
			for (int l = 0; l < ISTIO_LABELS; l++) {
				labels[k++] = istio_label[l];
				labels[k++] = s->wl.v[l];
			}
			labels[k++] = "request_protocol";
			labels[k++] = "tcp";
			labels[k++] = "response_flags";
			labels[k++] = "-";
			labels[k++] = "connection_security_policy";
			labels[k++] = "unknown";
			labels[k] = NULL;
			expo_sample_u64(e, name, labels, family_value(s, f));
		}
	}
}

/* One series' labels: k, v, ..., NULL (room for an le pair after). */
static void series_labels(const struct table *t, const struct series *s, const char **l)
{
	int k = 0;

	l[k++] = "direction";
	l[k++] = dir_name[s->direction];
	if (t->set == METRICS_IP_PAIR) {
		l[k++] = "src_ip";
		l[k++] = s->ip.src_text;
		l[k++] = "dst_ip";
		l[k++] = s->ip.dst_text;
		l[k++] = "dst_port";
		l[k++] = s->ip.port_text;
	} else {
		static const char *const key[WL_LABELS] = { "src_workload", "src_namespace",
							    "dst_workload", "dst_namespace" };

		for (int i = 0; i < WL_LABELS; i++) {
			l[k++] = key[i];
			l[k++] = s->wl.v[i];
		}
	}
	l[k] = NULL;
}

/* NAME_bucket{..., le} (cumulative), NAME_sum (in unit * scale), NAME_count. */
static void render_hist(struct expo *e, const char *name, const char **labels,
			const struct hist *h, const uint64_t bound[HIST_BOUNDS], double scale)
{
	char bname[128], le[32];
	uint64_t cum = 0;
	int k = 0;

	while (labels[k])
		k++;
	snprintf(bname, sizeof(bname), "%s_bucket", name);
	for (int i = 0; i <= HIST_BOUNDS; i++) {
		cum += h->b[i];
		if (i < HIST_BOUNDS)
			snprintf(le, sizeof(le), "%.9g", (double)bound[i] * scale);
		else
			snprintf(le, sizeof(le), "+Inf");
		labels[k] = "le";
		labels[k + 1] = le;
		labels[k + 2] = NULL;
		expo_sample_u64(e, bname, labels, cum);
	}
	labels[k] = NULL;
	snprintf(bname, sizeof(bname), "%s_sum", name);
	expo_sample_f64(e, bname, labels, (double)h->sum * scale);
	snprintf(bname, sizeof(bname), "%s_count", name);
	expo_sample_u64(e, bname, labels, cum);
}

/*
 * meshlens_*tcp_connection_duration_seconds and meshlens_*tcp_srtt_seconds:
 * closed connections by how long they lasted (connect() or accept() to
 * close) and by their smoothed RTT at close.
 */
static void render_hists(struct table *t, uint32_t n, struct expo *e, const char *prefix,
			 const char *by)
{
	static const struct {
		const char *name, *help;
		size_t off;
		const uint64_t *bound;
		double scale;
	} h[] = {
		{ "connection_duration_seconds",
		  "Closed TCP connections by duration, connect() or accept() to close",
		  offsetof(struct series, duration), dur_bound, 1e-9 },
		{ "srtt_seconds", "Closed TCP connections by smoothed RTT at close",
		  offsetof(struct series, srtt), srtt_bound, 1e-6 },
		{ "handshake_seconds",
		  "Closed TCP connections by handshake latency (outbound: connect() to "
		  "ESTABLISHED; inbound: the kernel's SYN-ACK round trip)",
		  offsetof(struct series, handshake), handshake_bound, 1e-6 },
	};
	const char *labels[2 * (WL_LABELS + 1) + 3];
	char name[96], help[192];

	for (size_t f = 0; f < sizeof(h) / sizeof(h[0]); f++) {
		snprintf(name, sizeof(name), "%s%s", prefix, h[f].name);
		snprintf(help, sizeof(help), "%s, by direction and %s.", h[f].help, by);
		expo_family(e, name, "histogram", help);
		for (uint32_t i = 0; i < n; i++) {
			const struct series *s = &t->s[t->order[i]];

			series_labels(t, s, labels);
			render_hist(e, name, labels,
				    (const struct hist *)((const char *)s + h[f].off), h[f].bound,
				    h[f].scale);
		}
	}
}

static void render_table(struct table *t, struct expo *e, bool rto_known)
{
	static const char *const prefix[] = { "meshlens_tcp_", "meshlens_workload_tcp_" };
	static const char *const by[] = { "IP pair", "workload pair (names from --metadata)" };
	uint32_t n;
	char name[96], help[160];

	if (t->set == METRICS_ISTIO) {
		render_istio(t, e);
		return;
	}
	n = sorted_series(t);
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		if (f == FAMILY_RTO && !rto_known)
			continue;
		snprintf(name, sizeof(name), "%s%s", prefix[t->set], families[f].name);
		snprintf(help, sizeof(help), "%s, by direction and %s.", families[f].help,
			 by[t->set]);
		expo_family(e, name, "counter", help);
		for (uint32_t i = 0; i < n; i++) {
			const struct series *s = &t->s[t->order[i]];
			uint64_t v = family_value(s, f);

			if (t->set == METRICS_IP_PAIR)
				expo_sample_u64(e, name,
						(const char *const[]){
							"direction", dir_name[s->direction],
							"src_ip", s->ip.src_text,
							"dst_ip", s->ip.dst_text,
							"dst_port", s->ip.port_text, NULL },
						v);
			else
				expo_sample_u64(e, name,
						(const char *const[]){
							"direction", dir_name[s->direction],
							"src_workload", s->wl.v[0],
							"src_namespace", s->wl.v[1],
							"dst_workload", s->wl.v[2],
							"dst_namespace", s->wl.v[3], NULL },
						v);
		}
	}
	render_hists(t, n, e, prefix[t->set], by[t->set]);
}

void metrics_render(struct metrics *m, struct expo *e)
{
	for (int k = 0; k < METRICS_SETS; k++)
		if (m->t[k].on)
			render_table(&m->t[k], e, m->rto_known);
}

void metrics_stats(const struct metrics *m, struct metrics_stats *s)
{
	memset(s, 0, sizeof(*s));
	for (int k = 0; k < METRICS_SETS; k++) {
		const struct table *t = &m->t[k];

		s->enabled[k] = t->on;
		s->series[k] = t->cap - t->n_free;
		s->folded[k] = t->folded;
		s->dropped[k] = t->dropped;
	}
	s->connections = m->n_conns;
	s->expired = m->expired;
}
