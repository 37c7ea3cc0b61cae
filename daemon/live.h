/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * live - one pass of the live-counter iterator over the open connections:
 * a LIVE record per connection into the pipeline, so byte counters advance
 * while connections stay open. Every ML_LIVE_FULL_EVERY passes is a full
 * one that reports idle connections too (metrics.h: what a full pass
 * proves about a connection it does not see).
 */
#ifndef MESHLENS_LIVE_H
#define MESHLENS_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ML_LIVE_FULL_EVERY 12

struct ml_bpf;
struct ml_drain;

struct ml_live {
	const struct ml_bpf *bpf;
	struct ml_drain *drain; /* emptied before and during a pass */
	char *buf;              /* the iterator's read buffer, grown as needed */
	size_t cap;
	uint64_t passes;
	bool every_pass_full; /* interim lines: every open connection, every pass */
};

/*
 * One pass (the ringbuf drained first: a connection's close record is
 * never accounted before a LIVE record read earlier). Returns whether it
 * was a full pass; without the feature only the drain happens.
 */
bool ml_live_refresh(struct ml_live *lv);

void ml_live_free(struct ml_live *lv);

#endif /* MESHLENS_LIVE_H */
