// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Per-workload drop counts: a fixed array of series indexed by an
 * ml_table (lib/table.h; no deletion: series live as long as the daemon;
 * the cap bounds them). The "other" series of a full table have
 * room of their own: one per (reason, direction) at most.
 */
#define _GNU_SOURCE /* qsort_r */
#include "byworkload.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "drops.h"
#include "../lib/table.h"
#include "../metrics/metrics.h"

/* "other" series beyond the cap: reasons x directions, generously */
#define OTHER_ROOM 1024

struct dseries {
	uint64_t packets, bytes;
	uint64_t hash;
	uint32_t reason;
	uint8_t direction;
	bool other;
	const char *workload, *namespace; /* into text; static for "other" */
	char *text;
};

struct drop_wl {
	uint32_t cap, n, n_other;
	struct dseries *s;   /* cap + OTHER_ROOM */
	struct ml_table index;
	uint64_t folded;
};

struct drop_wl *drop_wl_new(unsigned int max_series)
{
	struct drop_wl *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->cap = max_series;
	a->s = calloc((size_t)max_series + OTHER_ROOM, sizeof(*a->s));
	/* sized for every series: inserting never grows, so never fails */
	if (!a->s || ml_table_init(&a->index, max_series + OTHER_ROOM)) {
		drop_wl_free(a);
		return NULL;
	}
	return a;
}

void drop_wl_free(struct drop_wl *a)
{
	if (!a)
		return;
	for (uint32_t i = 0; a->s && i < a->n; i++) /* "other" series own no text */
		free(a->s[i].text);
	free(a->s);
	ml_table_free(&a->index);
	free(a);
}

static uint64_t key_hash(const char *wl, const char *ns, uint32_t reason, uint8_t dir)
{
	uint64_t h = ml_hash_str(ml_hash_str(ML_HASH_INIT, wl), ns);

	h ^= (uint64_t)reason << 8 | dir;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

struct dkey {
	const struct dseries *s;
	uint64_t hash;
	const char *wl, *ns;
	uint32_t reason;
	uint8_t dir;
	bool other;
};

static bool dseries_eq(const void *ctx, uint32_t slot)
{
	const struct dkey *k = ctx;
	const struct dseries *s = &k->s[slot];

	return s->hash == k->hash && s->reason == k->reason && s->direction == k->dir &&
	       s->other == k->other && !strcmp(s->workload, k->wl) && !strcmp(s->namespace, k->ns);
}

/* The series of a key, or a new one in slot `slot` (NULL: out of memory). */
static struct dseries *find_or_add(struct drop_wl *a, const char *wl, const char *ns,
				   uint32_t reason, uint8_t dir, bool other, uint32_t slot)
{
	uint64_t h = key_hash(wl, ns, reason, dir);
	struct dkey k = { a->s, h, wl, ns, reason, dir, other };
	uint32_t pos, found;
	struct dseries *s;

	found = ml_table_find(&a->index, (uint32_t)h, dseries_eq, &k, &pos);
	if (found != ML_TABLE_NONE)
		return &a->s[found];
	if (slot == UINT32_MAX)
		return NULL; /* lookup only */
	s = &a->s[slot];
	memset(s, 0, sizeof(*s));
	if (other) {
		s->workload = s->namespace = "other";
	} else {
		size_t lw = strlen(wl) + 1, ln = strlen(ns) + 1;

		s->text = malloc(lw + ln);
		if (!s->text)
			return NULL;
		memcpy(s->text, wl, lw);
		memcpy(s->text + lw, ns, ln);
		s->workload = s->text;
		s->namespace = s->text + lw;
	}
	s->hash = h;
	s->reason = reason;
	s->direction = dir;
	s->other = other;
	ml_table_insert(&a->index, pos, (uint32_t)h, slot);
	return s;
}

void drop_wl_add(struct drop_wl *a, const char *workload, const char *namespace,
		 uint32_t reason, uint8_t direction, uint64_t packets, uint64_t bytes)
{
	const char *wl = workload ? workload : "unknown", *ns = namespace ? namespace : "unknown";
	struct dseries *s = find_or_add(a, wl, ns, reason, direction, false,
					a->n < a->cap ? a->n : UINT32_MAX);

	if (s && s == &a->s[a->n] && a->n < a->cap)
		a->n++; /* a new series took the next slot */
	if (!s) {
		/* the cap, or no memory for the names: count as "other" */
		a->folded++;
		s = find_or_add(a, "other", "other", reason, direction, true,
				a->n_other < OTHER_ROOM ? a->cap + a->n_other : UINT32_MAX);
		if (!s)
			return; /* more than OTHER_ROOM reasons x directions: not on any kernel */
		if (s == &a->s[a->cap + a->n_other])
			a->n_other++;
	}
	s->packets += packets;
	s->bytes += bytes;
}

static int cmp_series(const void *x, const void *y, void *arg)
{
	const struct drop_wl *a = arg;
	const struct dseries *p = &a->s[*(const uint32_t *)x], *q = &a->s[*(const uint32_t *)y];
	int c;

	if (p->other != q->other)
		return p->other ? 1 : -1;
	c = strcmp(p->workload, q->workload);
	if (!c)
		c = strcmp(p->namespace, q->namespace);
	if (!c)
		c = p->reason < q->reason ? -1 : p->reason > q->reason;
	if (!c)
		c = (int)p->direction - (int)q->direction;
	return c;
}

void drop_wl_render(struct drop_wl *a, const struct drop_reasons *r, struct expo *e)
{
	static const char *const fam[2] = { "meshlens_workload_drops_total",
					    "meshlens_workload_drop_bytes_total" };
	uint32_t total = a->n + a->n_other, *order = calloc(total ? total : 1, sizeof(*order));
	struct drop_names names;

	if (!order) {
		e->oom = true;
		return;
	}
	for (uint32_t i = 0; i < a->n; i++)
		order[i] = i;
	for (uint32_t i = 0; i < a->n_other; i++)
		order[a->n + i] = a->cap + i;
	if (total > 1)
		qsort_r(order, total, sizeof(*order), cmp_series, a);
	for (int f = 0; f < 2; f++) {
		expo_family(e, fam[f], "counter",
			    f ? "Bytes of dropped packets (skb->len), by the local end's workload "
				"and kernel drop reason."
			      : "Packets dropped, by the local end's workload (ingress: destination, "
				"egress: source) and kernel drop reason.");
		for (uint32_t i = 0; i < total; i++) {
			const struct dseries *s = &a->s[order[i]];

			drops_name(r, s->reason, &names);
			expo_sample_u64(e, fam[f],
					(const char *const[]){
						"workload", s->workload, "namespace", s->namespace,
						"reason", names.reason, "layer", names.layer,
						"direction",
						s->direction == ML_DROP_EGRESS ? "egress" : "ingress",
						NULL },
					f ? s->bytes : s->packets);
		}
	}
	free(order);
}

void drop_wl_stats(const struct drop_wl *a, struct drop_wl_stats *s)
{
	s->series = a->n;
	s->folded = a->folded;
}
