/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * drain - the pinned ringbuf into the pipeline: read a batch, flush its
 * access-log lines, then release the records to the kernel (ring.h), and
 * say what was lost (ringbuf full, lines not written) at most once a
 * second, never per record.
 */
#ifndef MESHLENS_DRAIN_H
#define MESHLENS_DRAIN_H

#include <stdint.h>
#include <time.h>
#include "ring.h"

struct ml_bpf;
struct ml_pipeline;

struct ml_drain {
	struct ml_ring ring;
	struct ml_pipeline *pl;
	const struct ml_bpf *bpf;
	uint64_t lost_reported;      /* kernel-side losses already said */
	uint64_t unwritten_reported; /* access-log lines lost to write errors, said */
	time_t said_at;
};

/* Map bpf's ringbuf for pl. 0 or -errno. */
int ml_drain_open(struct ml_drain *dr, const struct ml_bpf *bpf, struct ml_pipeline *pl);

/* Everything queued so far through the pipeline; how many records. */
int ml_drain_run(struct ml_drain *dr);

void ml_drain_close(struct ml_drain *dr);

#endif /* MESHLENS_DRAIN_H */
