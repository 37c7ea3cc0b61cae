/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * metrics - per-connection TCP metrics aggregated in user space, in two
 * optional sets of families:
 *   - IP pair:  meshlens_tcp_*{direction,src_ip,dst_ip,dst_port}
 *   - workload: meshlens_workload_tcp_*{direction,src_workload,
 *               src_namespace,dst_workload,dst_namespace}
 *   - Istio:    istio_tcp_*{reporter,source_*,destination_*,...}, Istio's
 *               standard TCP metrics with Istio's labels and Istio's sent
 *               and received (the response's and the request's bytes,
 *               whichever end reports), for Kiali and Istio's dashboards
 * Every counter is monotonic and exact per connection:
 *   - a connection counts as opened once, on the first of its OPEN, LIVE
 *     or CLOSE records;
 *   - bytes and retransmits advance by the difference to what was already
 *     counted for that connection (LIVE records of the iterator while it
 *     is open, the CLOSE record at the end), so interim and final values
 *     never double count;
 *   - failed attempts count as failed, never as opened.
 * A connection is bound to its series when first seen: its workload names
 * are asked for then (once per connection, not per record), so a metadata
 * reload names new connections and never splits an open one.
 * Past max_series, new series of a set fold into one overflow series per
 * direction (every label but direction "other").
 */
#ifndef MESHLENS_METRICS_H
#define MESHLENS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../bpf/probe.h"
#include "expo.h"

struct metrics;

/*
 * FNV-1a of s and its terminating NUL onto h (start with ML_HASH_INIT):
 * a sequence of strings hashes without ambiguity ("ab","c" != "a","bc").
 * Shared with the drop counts by workload.
 */
#define ML_HASH_INIT 0xcbf29ce484222325ULL
static inline uint64_t ml_hash_str(uint64_t h, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	do {
		h ^= *p;
		h *= 0x100000001b3ULL;
	} while (*p++);
	return h;
}

enum metrics_set {
	METRICS_IP_PAIR,
	METRICS_WORKLOAD,
	METRICS_ISTIO,
	METRICS_SETS,
};

/* What Istio's labels say of an end beyond its workload and namespace
 * (the metadata file's keys of the same names); NULL = not said. */
struct metrics_end {
	const char *service, *canonical_service, *canonical_revision, *principal, *app,
		*version, *cluster;
};

/* Names of both ends; NULL = unknown (rendered "unknown"). */
struct metrics_names {
	const char *src_workload, *src_namespace, *dst_workload, *dst_namespace;
	struct metrics_end src, dst; /* the Istio set's */
	/*
	 * Optional: what named each end (identify()'s own handle, such as its
	 * metadata entry; NULL for an unnamed end) and the generation those
	 * handles belong to (0: no handles given). Within one generation,
	 * equal handles must mean equal names: a new connection then finds
	 * its named series by the handles alone, comparing no label text.
	 */
	const void *src_id, *dst_id;
	uint64_t id_gen;
};

/* What an interval of an open connection added, as counted here. */
struct metrics_interval {
	uint64_t sent, received, retrans;
};

struct metrics_config {
	unsigned int max_series;          /* cap on series, per set */
	unsigned int series_idle_seconds; /* drop series idle this long; 0 = never */
	bool ip_pairs;                    /* the IP-pair set */
	/* the workload set, when set: names of r's ends (r's first record) */
	void (*identify)(void *ctx, const struct tcp_probe_info *r, struct metrics_names *out);
	bool istio;        /* with identify: the Istio-standard set too (istio_tcp_*) */
	/*
	 * Interim reports (log_interval_s): every interim_ns of a tracked
	 * connection's life, at the first LIVE record past the boundary,
	 * interim(ctx, r with the cumulative counters, what the interval
	 * added). 0: off. Not from raw records (ML_F_RAW): they carry no
	 * addresses to report.
	 */
	uint64_t interim_ns;
	void (*interim)(void *ctx, const struct tcp_probe_info *r, const struct metrics_interval *iv);
	void *interim_ctx;
	bool workload_off; /* with identify: no meshlens_workload_tcp_* (Istio's alone) */
	void *identify_ctx;
};

/* NULL when out of memory. */
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

/*
 * Full passes a connection may go unseen before it is forgotten (default
 * 2). An iterator that cannot see every open connection (iter/task_file
 * misses sockets their application closed, still in FIN_WAIT or LAST_ACK)
 * needs more, or their close records would count them opened again.
 */
void metrics_live_set_expiry(struct metrics *m, uint32_t full_passes);

/*
 * The kernel counts RTOs (ML_F_RTO records will come): the RTO families
 * are rendered from now on, before the first record says so.
 */
void metrics_rto_counted(struct metrics *m);

/* series_idle_seconds, changed while running (a config reload) */
void metrics_set_series_idle(struct metrics *m, unsigned int seconds);

/* Append every family of the enabled sets, sorted, to e. */
void metrics_render(struct metrics *m, struct expo *e);

/* "ip_pair", "workload", "istio" */
const char *metrics_set_name(enum metrics_set set);

struct metrics_stats {
	bool enabled[METRICS_SETS];
	uint64_t series[METRICS_SETS];  /* series held (overflow series excluded) */
	uint64_t folded[METRICS_SETS];  /* records folded into an overflow series */
	uint64_t dropped[METRICS_SETS]; /* idle series dropped */
	uint64_t connections;           /* connections being tracked (open) */
	uint64_t expired;               /* connections forgotten without a close record */
};
void metrics_stats(const struct metrics *m, struct metrics_stats *s);

#endif /* MESHLENS_METRICS_H */
