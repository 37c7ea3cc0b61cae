// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * IP-pair aggregation. Two open-addressing hash tables, both sized up
 * front or grown by doubling, so the per-record path does not allocate in
 * steady state:
 *   - series: pair key -> slot in a fixed array of max_series + 2 series
 *     (the last two are the overflow series, outbound and inbound);
 *   - connections: socket cookie -> what was already counted for it.
 */
#define _GNU_SOURCE /* qsort_r */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_TEXT 48

struct pair_key {
	uint8_t src[ML_ADDR_LEN];
	uint8_t dst[ML_ADDR_LEN];
	uint16_t dst_port;
	uint8_t direction;
	uint8_t pad;
};

struct pair {
	struct pair_key key;
	uint64_t opened, closed, failed, sent, received, retrans;
	uint64_t last_active_ns;
	uint32_t live; /* tracked connections counting into this series */
	/* label text, formatted once when the series is created */
	char src[ADDR_TEXT], dst[ADDR_TEXT], port[8];
};

struct conn {
	uint64_t cookie; /* 0: empty slot (the kernel's cookies start at 1) */
	uint64_t sent, received;
	uint32_t pair;
	uint32_t retrans;
	uint32_t seen_gen;
};

struct metrics {
	struct metrics_config cfg;
	struct pair *pairs;     /* max_series + 2 */
	uint32_t *free_slots;   /* stack of unused pair slots */
	uint32_t n_free;
	uint32_t *index;        /* pair hash table: slot + 1, 0 = empty */
	uint32_t index_mask;
	struct conn *conns;
	uint32_t conns_mask;
	uint32_t n_conns;
	uint32_t gen;           /* live-iterator pass */
	uint32_t *order;        /* render scratch: sorted pair slots */
	uint64_t folded, expired, dropped;
};

static const char *const dir_name[] = { "unknown", "outbound", "inbound" };

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

static uint64_t key_hash(const struct pair_key *k)
{
	uint64_t w[4], h = 0;

	memcpy(w, k, sizeof(w)); /* src and dst */
	for (int i = 0; i < 4; i++)
		h = mix64(h ^ w[i]);
	return mix64(h ^ ((uint64_t)k->dst_port << 8 | k->direction));
}

static uint32_t next_pow2(uint64_t n)
{
	uint32_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

struct metrics *metrics_new(const struct metrics_config *cfg)
{
	struct metrics *m = calloc(1, sizeof(*m));
	uint32_t n = cfg->max_series, idx_size = next_pow2((uint64_t)n * 2);

	if (!m)
		return NULL;
	m->cfg = *cfg;
	m->pairs = calloc((size_t)n + 2, sizeof(*m->pairs));
	m->free_slots = calloc(n, sizeof(*m->free_slots));
	m->order = calloc((size_t)n + 2, sizeof(*m->order));
	m->index = calloc(idx_size, sizeof(*m->index));
	m->index_mask = idx_size - 1;
	m->conns = calloc(1024, sizeof(*m->conns));
	m->conns_mask = 1023;
	if (!m->pairs || !m->free_slots || !m->order || !m->index || !m->conns) {
		metrics_free(m);
		return NULL;
	}
	/* pop order: slot 0 first */
	for (uint32_t i = 0; i < n; i++)
		m->free_slots[i] = n - 1 - i;
	m->n_free = n;
	for (int d = 0; d < 2; d++) {
		struct pair *o = &m->pairs[n + d];

		o->key.direction = (uint8_t)(d + 1);
		strcpy(o->src, "other");
		strcpy(o->dst, "other");
		strcpy(o->port, "other");
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->pairs);
	free(m->free_slots);
	free(m->order);
	free(m->index);
	free(m->conns);
	free(m);
}

/* ---- series ------------------------------------------------------------- */

static void key_of(const struct tcp_probe_info *r, struct pair_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->src, r->src_addr, ML_ADDR_LEN);
	memcpy(k->dst, r->dst_addr, ML_ADDR_LEN);
	k->dst_port = r->dst_port;
	k->direction = r->direction == ML_DIR_INBOUND ? ML_DIR_INBOUND : ML_DIR_OUTBOUND;
}

static uint32_t overflow_slot(const struct metrics *m, uint8_t direction)
{
	return m->cfg.max_series + (direction == ML_DIR_INBOUND);
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

/* The series of r's IP pair, created if new, or the overflow series. */
static uint32_t pair_slot(struct metrics *m, const struct tcp_probe_info *r)
{
	struct pair_key k;
	uint32_t i, slot;
	struct pair *p;

	key_of(r, &k);
	for (i = (uint32_t)key_hash(&k) & m->index_mask; m->index[i];
	     i = (i + 1) & m->index_mask) {
		slot = m->index[i] - 1;
		if (!memcmp(&m->pairs[slot].key, &k, sizeof(k)))
			return slot;
	}
	if (!m->n_free) {
		m->folded++;
		return overflow_slot(m, k.direction);
	}
	slot = m->free_slots[--m->n_free];
	m->index[i] = slot + 1;
	p = &m->pairs[slot];
	memset(p, 0, sizeof(*p));
	p->key = k;
	if (m->cfg.format_addr(k.src, p->src, sizeof(p->src)) < 0)
		strcpy(p->src, "invalid");
	if (m->cfg.format_addr(k.dst, p->dst, sizeof(p->dst)) < 0)
		strcpy(p->dst, "invalid");
	format_port(p->port, k.dst_port);
	return slot;
}

/* Backward-shift deletion keeps linear probing correct without tombstones. */
static void pair_unindex(struct metrics *m, uint32_t slot)
{
	uint32_t i = (uint32_t)key_hash(&m->pairs[slot].key) & m->index_mask, j, home;

	while (m->index[i] != slot + 1)
		i = (i + 1) & m->index_mask;
	for (j = (i + 1) & m->index_mask; m->index[j]; j = (j + 1) & m->index_mask) {
		home = (uint32_t)key_hash(&m->pairs[m->index[j] - 1].key) & m->index_mask;
		/* move j into the hole at i unless its home lies in (i, j] */
		if (((j - home) & m->index_mask) >= ((j - i) & m->index_mask)) {
			m->index[i] = m->index[j];
			i = j;
		}
	}
	m->index[i] = 0;
	m->free_slots[m->n_free++] = slot;
}

/* ---- connections -------------------------------------------------------- */

static struct conn *conn_find(struct metrics *m, uint64_t cookie, uint32_t *pos)
{
	uint32_t i;

	for (i = (uint32_t)mix64(cookie) & m->conns_mask; m->conns[i].cookie;
	     i = (i + 1) & m->conns_mask)
		if (m->conns[i].cookie == cookie)
			return &m->conns[i];
	*pos = i;
	return NULL;
}

static int conns_resize(struct metrics *m, uint32_t size)
{
	struct conn *old = m->conns, *nc = calloc(size, sizeof(*nc));
	uint32_t old_size = m->conns_mask + 1, pos;

	if (!nc)
		return -ENOMEM;
	m->conns = nc;
	m->conns_mask = size - 1;
	for (uint32_t i = 0; i < old_size; i++) {
		if (!old[i].cookie)
			continue;
		conn_find(m, old[i].cookie, &pos);
		m->conns[pos] = old[i];
	}
	free(old);
	return 0;
}

/* Start tracking a connection; NULL when memory ran out (it is then
 * counted at its close only, as a connection never seen open). */
static struct conn *conn_add(struct metrics *m, uint64_t cookie, uint32_t slot)
{
	struct conn *c;
	uint32_t pos;

	if ((m->n_conns + 1) * 2 > m->conns_mask + 1 && conns_resize(m, (m->conns_mask + 1) * 2))
		return NULL;
	conn_find(m, cookie, &pos);
	c = &m->conns[pos];
	memset(c, 0, sizeof(*c));
	c->cookie = cookie;
	c->pair = slot;
	c->seen_gen = m->gen;
	m->n_conns++;
	m->pairs[slot].live++;
	return c;
}

static void conn_del(struct metrics *m, struct conn *c)
{
	uint32_t i = (uint32_t)(c - m->conns), j, home;

	m->pairs[c->pair].live--;
	m->n_conns--;
	for (j = (i + 1) & m->conns_mask; m->conns[j].cookie; j = (j + 1) & m->conns_mask) {
		home = (uint32_t)mix64(m->conns[j].cookie) & m->conns_mask;
		if (((j - home) & m->conns_mask) >= ((j - i) & m->conns_mask)) {
			m->conns[i] = m->conns[j];
			i = j;
		}
	}
	m->conns[i].cookie = 0;
}

/* Count what this record adds beyond what the connection already counted. */
static void advance(struct pair *p, struct conn *c, const struct tcp_probe_info *r)
{
	if (r->sent_bytes > c->sent) {
		p->sent += r->sent_bytes - c->sent;
		c->sent = r->sent_bytes;
	}
	if (r->received_bytes > c->received) {
		p->received += r->received_bytes - c->received;
		c->received = r->received_bytes;
	}
	if (r->total_retrans > c->retrans) {
		p->retrans += r->total_retrans - c->retrans;
		c->retrans = r->total_retrans;
	}
}

void metrics_record(struct metrics *m, const struct tcp_probe_info *r)
{
	struct conn *c = NULL, none = { 0 };
	uint32_t pos, slot;
	struct pair *p;

	/* failed attempts were never tracked; cookie 0 cannot be (empty slot) */
	bool trackable = r->type != ML_REC_CONN_FAILED && r->sock_cookie;

	if (trackable)
		c = conn_find(m, r->sock_cookie, &pos);
	if (c) {
		slot = c->pair;
	} else {
		slot = pair_slot(m, r);
		if (r->type == ML_REC_CONN_OPEN || r->type == ML_REC_CONN_LIVE ||
		    r->type == ML_REC_CONN_CLOSE)
			m->pairs[slot].opened++;
		if (trackable && r->type != ML_REC_CONN_CLOSE)
			c = conn_add(m, r->sock_cookie, slot);
	}
	p = &m->pairs[slot];
	p->last_active_ns = r->close_ns;
	switch (r->type) {
	case ML_REC_CONN_FAILED:
		p->failed++;
		p->retrans += r->total_retrans; /* SYNs sent again */
		break;
	case ML_REC_CONN_LIVE:
		if (c) {
			c->seen_gen = m->gen;
			advance(p, c, r);
		}
		break;
	case ML_REC_CONN_CLOSE:
		advance(p, c ? c : &none, r);
		p->closed++;
		if (c)
			conn_del(m, c);
		break;
	}
}

/* ---- live-iterator passes ------------------------------------------------- */

void metrics_live_begin(struct metrics *m, bool full)
{
	if (full)
		m->gen++;
}

void metrics_live_end(struct metrics *m, uint64_t now_ns, bool full)
{
	uint64_t idle_ns = (uint64_t)m->cfg.series_idle_seconds * 1000000000ULL;

	/* A connection unseen by two full passes lost its close record
	 * (ringbuf full): forget it, so its series can go idle. conn_del()
	 * shifts a later entry into the hole, so look at the same slot again. */
	for (uint32_t i = 0; full && i <= m->conns_mask; i++) {
		while (m->conns[i].cookie && m->conns[i].seen_gen + 2 <= m->gen) {
			conn_del(m, &m->conns[i]);
			m->expired++;
		}
	}
	if (!idle_ns)
		return;
	for (uint32_t s = 0; s < m->cfg.max_series; s++) {
		struct pair *p = &m->pairs[s];

		if (p->key.direction && !p->live && now_ns - p->last_active_ns > idle_ns) {
			pair_unindex(m, s);
			p->key.direction = 0;
			m->dropped++;
		}
	}
}

/* ---- exposition ---------------------------------------------------------- */

/* Label order: direction ("inbound" first), then addresses and port; the
 * overflow series last within its direction. */
static int cmp_pairs(const void *a, const void *b, void *arg)
{
	const struct metrics *m = arg;
	uint32_t sa = *(const uint32_t *)a, sb = *(const uint32_t *)b;
	const struct pair_key *x = &m->pairs[sa].key, *y = &m->pairs[sb].key;
	int c;

	if (x->direction != y->direction)
		return x->direction == ML_DIR_INBOUND ? -1 : 1;
	if ((sa >= m->cfg.max_series) != (sb >= m->cfg.max_series))
		return sa >= m->cfg.max_series ? 1 : -1;
	c = memcmp(x->src, y->src, ML_ADDR_LEN);
	if (!c)
		c = memcmp(x->dst, y->dst, ML_ADDR_LEN);
	if (!c)
		c = (int)x->dst_port - (int)y->dst_port;
	return c;
}

static const struct {
	const char *name, *help;
	size_t off;
} families[] = {
	{ "meshlens_tcp_connections_opened_total",
	  "TCP connections that reached ESTABLISHED, by IP pair.", offsetof(struct pair, opened) },
	{ "meshlens_tcp_connections_closed_total",
	  "Established TCP connections that closed, by IP pair.", offsetof(struct pair, closed) },
	{ "meshlens_tcp_connections_failed_total",
	  "TCP connection attempts that never reached ESTABLISHED, by IP pair.",
	  offsetof(struct pair, failed) },
	{ "meshlens_tcp_sent_bytes_total",
	  "Payload bytes sent and acknowledged, by the sockets of this direction and IP pair.",
	  offsetof(struct pair, sent) },
	{ "meshlens_tcp_received_bytes_total",
	  "Payload bytes received, by the sockets of this direction and IP pair.",
	  offsetof(struct pair, received) },
	{ "meshlens_tcp_retransmits_total",
	  "Retransmitted TCP segments, by the sockets of this direction and IP pair.",
	  offsetof(struct pair, retrans) },
};

void metrics_render(struct metrics *m, struct expo *e)
{
	uint32_t n = 0, total = m->cfg.max_series + 2;

	for (uint32_t s = 0; s < total; s++) {
		const struct pair *p = &m->pairs[s];

		/* overflow series appear once something folded into them */
		if (s >= m->cfg.max_series ? p->opened || p->failed : p->key.direction != 0)
			m->order[n++] = s;
	}
	if (n > 1)
		qsort_r(m->order, n, sizeof(*m->order), cmp_pairs, m);
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		expo_family(e, families[f].name, "counter", families[f].help);
		for (uint32_t i = 0; i < n; i++) {
			const struct pair *p = &m->pairs[m->order[i]];
			const char *labels[] = { "direction", dir_name[p->key.direction],
						 "src_ip", p->src, "dst_ip", p->dst,
						 "dst_port", p->port, NULL };

			expo_sample_u64(e, families[f].name, labels,
					*(const uint64_t *)((const char *)p + families[f].off));
		}
	}
}

void metrics_stats(const struct metrics *m, struct metrics_stats *s)
{
	s->series = m->cfg.max_series - m->n_free;
	s->folded = m->folded;
	s->connections = m->n_conns;
	s->expired = m->expired;
	s->dropped = m->dropped;
}
