// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE /* qsort_r */
#include "drops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "../lib/names.h"

void drops_name(const struct drop_reasons *r, uint32_t value, struct drop_names *n)
{
	const struct drop_reason *dr = drop_reasons_find(r, value);

	if (dr) {
		snprintf(n->reason, sizeof(n->reason), "%s", dr->name);
		n->layer = dr->layer;
		n->module = dr->module;
		return;
	}
	const char *name = drop_reason_name(r, value, n->reason, sizeof(n->reason));

	if (name != n->reason)
		snprintf(n->reason, sizeof(n->reason), "%s", name);
	n->layer = "other";
	n->module = "other";
}

int drops_apply_filter(int filter_fd, const struct drop_reasons *r)
{
	__u8 on = 1;

	for (size_t i = 0; i < r->n; i++) {
		if (r->v[i].enabled) {
			if (bpf_map_update_elem(filter_fd, &r->v[i].value, &on, BPF_ANY))
				return -errno;
		} else if (bpf_map_delete_elem(filter_fd, &r->v[i].value) && errno != ENOENT) {
			return -errno;
		}
	}
	return 0;
}

int drops_collect(int flows_fd, int epoch, const struct drop_reasons *r, drops_flow_fn fn,
		  void *ctx)
{
	static struct ml_flow_key *keys; /* grows to the map's size, reused */
	static size_t cap;
	struct ml_flow_key key, next;
	struct ml_flow_val val;
	struct drop_names names;
	size_t n_keys = 0;
	int n = 0;
	void *prev = NULL;

	/* first the keys, then the deletes: a walk cannot go on from a key
	 * that was deleted (it restarts), and entries of the other epoch stay */
	while (!bpf_map_get_next_key(flows_fd, prev, &next)) {
		key = next;
		prev = &key;
		if (epoch >= 0 && key.epoch != epoch)
			continue;
		if (n_keys == cap) {
			size_t ncap = cap ? 2 * cap : 1024;
			struct ml_flow_key *nk = realloc(keys, ncap * sizeof(*nk));

			if (!nk)
				break;
			keys = nk;
			cap = ncap;
		}
		keys[n_keys++] = key;
	}
	/* lookup, then delete: lookup-and-delete on a hash map came in 5.14,
	 * and an epoch nobody writes any more needs no atomicity */
	for (size_t i = 0; i < n_keys; i++) {
		if (bpf_map_lookup_elem(flows_fd, &keys[i], &val) ||
		    bpf_map_delete_elem(flows_fd, &keys[i])) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		drops_name(r, keys[i].reason, &names);
		fn(ctx, &keys[i], &val, &names);
		n++;
	}
	return n;
}

struct count_row {
	struct ml_drop_key key;
	struct ml_drop_val val;
	struct drop_names names;
	const char *protocol;
};

static int cmp_rows(const void *a, const void *b, void *arg)
{
	const struct count_row *x = a, *y = b;
	int c;

	(void)arg;
	c = strcmp(x->names.reason, y->names.reason);
	if (!c)
		c = strcmp(x->protocol, y->protocol);
	if (!c)
		c = (int)x->key.direction - (int)y->key.direction;
	return c;
}

/* Rows with the same labels (e.g. TCP over IPv4 and IPv6) are summed. */
static size_t merge_rows(struct count_row *rows, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		if (out && !cmp_rows(&rows[out - 1], &rows[i], NULL)) {
			rows[out - 1].val.packets += rows[i].val.packets;
			rows[out - 1].val.bytes += rows[i].val.bytes;
		} else {
			rows[out++] = rows[i];
		}
	}
	return out;
}

void drops_render(int counts_fd, int ncpus, const struct drop_reasons *r, struct expo *e)
{
	struct ml_drop_val *percpu = calloc((size_t)ncpus, sizeof(*percpu));
	struct count_row *rows = NULL, *nr;
	struct ml_drop_key key, *prev = NULL;
	size_t n = 0, cap = 0;
	const char *fam[2] = { "meshlens_drops_total", "meshlens_drop_bytes_total" };

	while (percpu && !bpf_map_get_next_key(counts_fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(counts_fd, &key, percpu))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nr = realloc(rows, cap * sizeof(*rows));
			if (!nr)
				break;
			rows = nr;
		}
		memset(&rows[n], 0, sizeof(rows[n]));
		rows[n].key = key;
		for (int c = 0; c < ncpus; c++) {
			rows[n].val.packets += percpu[c].packets;
			rows[n].val.bytes += percpu[c].bytes;
		}
		drops_name(r, key.reason, &rows[n].names);
		rows[n].protocol = key.family ? ml_proto_name(key.l4proto) : "other";
		n++;
	}
	if (n > 1) /* qsort_r(NULL, 0, ...) is undefined (glibc declares it nonnull) */
		qsort_r(rows, n, sizeof(*rows), cmp_rows, NULL);
	n = merge_rows(rows, n);
	for (int f = 0; f < 2; f++) {
		expo_family(e, fam[f], "counter",
			    f ? "Bytes of dropped packets (skb->len), by kernel drop reason."
			      : "Packets dropped, by kernel drop reason (kfree_skb).");
		for (size_t i = 0; i < n; i++) {
			const char *labels[] = {
				"reason", rows[i].names.reason, "layer", rows[i].names.layer,
				"protocol", rows[i].protocol, "direction",
				rows[i].key.direction == ML_DROP_EGRESS ? "egress" : "ingress", NULL
			};

			expo_sample_u64(e, fam[f], labels,
					f ? rows[i].val.bytes : rows[i].val.packets);
		}
	}
	free(rows);
	free(percpu);
}
