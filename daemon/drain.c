// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>

#include "drain.h"
#include "loader.h"
#include "pipeline.h"
#include "../bpf/probe.h"

/*
 * Records per read: their lines fit the sink's batch, so nothing is written
 * before the read ends and the records are released only once their lines
 * are in the file (see ring.h).
 */
#define ML_DRAIN_BATCH 256

int ml_drain_open(struct ml_drain *dr, const struct ml_bpf *bpf, struct ml_pipeline *pl)
{
	dr->pl = pl;
	dr->bpf = bpf;
	return ml_ring_open(&dr->ring, ml_bpf_map_fd(bpf, ML_MAP_EVENTS),
			    ml_bpf_ringbuf_bytes(bpf));
}

/*
 * Records the kernel could not queue, and lines the sink could not write
 * (disk full): said once per second at most, never per record.
 */
static void report_losses(struct ml_drain *dr)
{
	struct accesslog_sink *sink = dr->pl->sink;
	uint64_t lost = ml_bpf_counter(dr->bpf, ML_CNT_RECORDS_LOST);
	uint64_t unwritten = sink ? accesslog_lost_lines(sink) : 0;
	time_t now = time(NULL);

	if ((lost == dr->lost_reported && unwritten == dr->unwritten_reported) ||
	    now == dr->said_at)
		return;
	if (lost != dr->lost_reported)
		fprintf(stderr,
			"meshlens: %llu records lost in the kernel (ringbuf full); "
			"raise ringbuf_bytes or lower drain_interval_ms\n",
			(unsigned long long)(lost - dr->lost_reported));
	if (unwritten != dr->unwritten_reported)
		fprintf(stderr, "meshlens: %llu access-log lines could not be written (%s)\n",
			(unsigned long long)(unwritten - dr->unwritten_reported),
			accesslog_strerror(accesslog_last_error(sink)));
	dr->lost_reported = lost;
	dr->unwritten_reported = unwritten;
	dr->said_at = now;
}

int ml_drain_run(struct ml_drain *dr)
{
	int n, total = 0;

	if (!dr->ring.data) /* not open (yet) */
		return 0;
	accesslog_clock_sync(&dr->pl->clk);
	do {
		n = ml_ring_read(&dr->ring, ML_DRAIN_BATCH, ml_pipeline_record, dr->pl);
		if (dr->pl->sink)
			accesslog_flush(dr->pl->sink);
		ml_ring_commit(&dr->ring);
		total += n;
		/* stopped before a record of a cgroup made since the last walk:
		 * walk now, between batches, and go on with it named */
	} while (n == ML_DRAIN_BATCH || ml_pipeline_unstall(dr->pl));
	report_losses(dr);
	return total;
}

void ml_drain_close(struct ml_drain *dr)
{
	ml_ring_close(&dr->ring);
}
