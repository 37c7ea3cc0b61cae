/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * byworkload - dropped packets and bytes by the workload whose traffic it
 * was (Retina's per-pod drop metrics): the flows drops_collect() takes out
 * of the kernel, counted under the local end's workload from --metadata
 * (ingress: the destination, egress: the source), "unknown" where the
 * file names none, so the series add up to the node-level families as
 * long as no flow was lost (meshlens_events_lost_total{source="drop_flows"}).
 *
 *   meshlens_workload_drops_total{workload,namespace,reason,layer,direction}
 *   meshlens_workload_drop_bytes_total{...}
 *
 * At most max_series series of (workload, namespace, reason, direction);
 * past it, new ones count as workload="other", namespace="other", still
 * by reason and direction.
 */
#ifndef MESHLENS_BYWORKLOAD_H
#define MESHLENS_BYWORKLOAD_H

#include <stdint.h>
#include "../bpf/probe.h"
#include "../metrics/expo.h"
#include "reasons.h"

struct drop_wl;

/* NULL when out of memory. */
struct drop_wl *drop_wl_new(unsigned int max_series);
void drop_wl_free(struct drop_wl *a);

/* Count drops of one flow; workload/namespace NULL = unknown; direction
 * an enum ml_drop_dir. */
void drop_wl_add(struct drop_wl *a, const char *workload, const char *namespace,
		 uint32_t reason, uint8_t direction, uint64_t packets, uint64_t bytes);

/* Both families, sorted by workload, namespace, reason, direction. */
void drop_wl_render(struct drop_wl *a, const struct drop_reasons *r, struct expo *e);

struct drop_wl_stats {
	uint64_t series; /* held, "other" series excluded */
	uint64_t folded; /* flows counted as "other" because the cap was reached */
};
void drop_wl_stats(const struct drop_wl *a, struct drop_wl_stats *s);

#endif /* MESHLENS_BYWORKLOAD_H */
