/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pipeline - what happens to one tcp_probe_info in user space: count it,
 * aggregate it into the metrics, and (closes and failures) format it as an
 * access-log line into the sink's batch. Allocation-free; shared by the
 * daemon's ringbuf/iterator callbacks and by `make bench`.
 */
#ifndef MESHLENS_PIPELINE_H
#define MESHLENS_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include "../accesslog/accesslog.h"
#include "../metrics/metrics.h"

struct ml_metadata;
struct drop_reasons;

struct ml_pipeline {
	struct accesslog_sink *sink; /* NULL when the access log is off */
	struct accesslog_clock clk;  /* synced by the caller once per batch */
	struct metrics *metrics;
	struct ml_metadata *md;      /* workload identity; NULL without --metadata */
	const struct drop_reasons *reasons; /* names last_drop_reason; NULL without --drops */
	bool stalled;                /* stopped before a record of an unknown cgroup */
	uint64_t records;                       /* records decoded */
	uint64_t by_type[ML_REC_CONN_LIVE + 1]; /* records decoded, by type */
};

/*
 * Workload names of r's ends from the pipeline's metadata (nothing
 * without one); the metrics' identify callback, ctx = the pipeline.
 */
void ml_pipeline_names(void *pipeline, const struct tcp_probe_info *r, struct metrics_names *out);

/*
 * One record (ring_buffer_sample_fn shape); malformed ones are skipped.
 * ML_PIPELINE_AGAIN, the record untouched and not counted, when it comes
 * from a cgroup the metadata's cache does not know and a rescan may name
 * (a pod made since the last one): the caller stops there, calls
 * ml_pipeline_unstall() (the tree walk, out of the record path) and hands
 * the record over again. 0 otherwise.
 */
#define ML_PIPELINE_AGAIN 1
int ml_pipeline_record(void *pipeline, void *data, size_t size);

/* The metrics' interim callback (log_interval_s), ctx = the pipeline:
 * an interim line into the sink. */
void ml_pipeline_interim(void *pipeline, const struct tcp_probe_info *r,
			 const struct metrics_interval *iv);

/* After ML_PIPELINE_AGAIN: rescan the cgroup tree. Whether there was one. */
bool ml_pipeline_unstall(struct ml_pipeline *p);

#endif /* MESHLENS_PIPELINE_H */
