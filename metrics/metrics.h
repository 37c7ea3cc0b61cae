/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * metrics - per-IP-pair connection metrics aggregated in user space.
 *
 * Series are keyed by (direction, client IP, server IP, server port).
 * Every counter is monotonic and exact per connection:
 *   - a connection counts as opened once, on the first of its OPEN, LIVE
 *     or CLOSE records;
 *   - bytes and retransmits advance by the difference to what was already
 *     counted for that connection (LIVE records of the iterator while it
 *     is open, the CLOSE record at the end), so interim and final values
 *     never double count;
 *   - failed attempts count as failed, never as opened.
 * Past max_series, new pairs fold into one overflow series per direction
 * (src_ip="other", dst_ip="other", dst_port="other").
 */
#ifndef MESHLENS_METRICS_H
#define MESHLENS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "../bpf/probe.h"
#include "expo.h"

struct metrics;

struct metrics_config {
	unsigned int max_series;          /* cap on IP-pair series */
	unsigned int series_idle_seconds; /* drop series idle this long; 0 = never */
	/* address -> label text; the daemon passes the access log's formatter
	 * so labels and log lines spell addresses alike */
	int (*format_addr)(const uint8_t addr[ML_ADDR_LEN], char *buf, size_t len);
};

struct metrics *metrics_new(const struct metrics_config *cfg);
void metrics_free(struct metrics *m);

/* Account one record of any type (open, close, failed, live). */
void metrics_record(struct metrics *m, const struct tcp_probe_info *r);

/*
 * Around one pass of the live-socket iterator. A full pass reports every
 * open connection; others only those whose counters moved. At the end of
 * a full pass, connections the last two full passes did not see (their
 * close record was lost) are forgotten; series idle past the limit are
 * dropped after any pass. now_ns is CLOCK_MONOTONIC.
 */
void metrics_live_begin(struct metrics *m, bool full);
void metrics_live_end(struct metrics *m, uint64_t now_ns, bool full);

/* Append every family of IP-pair metrics, sorted, to e. */
void metrics_render(struct metrics *m, struct expo *e);

struct metrics_stats {
	uint64_t series;       /* IP-pair series (overflow series excluded) */
	uint64_t folded;       /* records folded into an overflow series */
	uint64_t connections;  /* connections being tracked (open) */
	uint64_t expired;      /* connections forgotten without a close record */
	uint64_t dropped;      /* idle series dropped */
};
void metrics_stats(const struct metrics *m, struct metrics_stats *s);

#endif /* MESHLENS_METRICS_H */
