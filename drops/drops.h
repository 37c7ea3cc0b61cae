/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * drops - the user-space half of drop tracing: tell the kernel which
 * reasons to count, take per-flow drops out of the kernel for the drop
 * log, and turn the kernel's per-CPU counts into metrics. Works on map
 * fds; knows nothing of the skeleton or of the access log.
 */
#ifndef MESHLENS_DROPS_H
#define MESHLENS_DROPS_H

#include "../bpf/probe.h"
#include "../metrics/expo.h"
#include "reasons.h"

/* Names of a value: the reason's, or a fallback name with layer "other".
 * The reason is copied in, so rows holding names can be sorted and copied. */
struct drop_names {
	char reason[64];
	const char *layer, *module;
};
void drops_name(const struct drop_reasons *r, uint32_t value, struct drop_names *n);

/* Make the kernel's filter map hold exactly the enabled reasons. 0 or -errno. */
int drops_apply_filter(int filter_fd, const struct drop_reasons *r);

/*
 * Take every flow of one epoch (-1: all) out of the kernel's flow map
 * (looked up and deleted, so the kernel starts a new entry with the next drop)
 * and call fn for each. Returns the number of flows, or -errno.
 */
typedef void (*drops_flow_fn)(void *ctx, const struct ml_flow_key *k,
			      const struct ml_flow_val *v, const struct drop_names *n);
int drops_collect(int flows_fd, int epoch, const struct drop_reasons *r, drops_flow_fn fn,
		  void *ctx);

/*
 * meshlens_drops_total and meshlens_drop_bytes_total
 * {reason,layer,protocol,direction} from the per-CPU count map, sorted.
 */
void drops_render(int counts_fd, int ncpus, const struct drop_reasons *r, struct expo *e);

#endif /* MESHLENS_DROPS_H */
