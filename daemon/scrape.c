// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drain.h"
#include "dropfeed.h"
#include "loader.h"
#include "pipeline.h"
#include "scrape.h"
#include "../drops/byworkload.h"
#include "../metrics/http.h"
#include "../metrics/retrans.h"
#include "../lib/util.h"

#ifndef MESHLENS_VERSION
#define MESHLENS_VERSION "0.1.0-dev"
#endif

/* The aggregations' own gauges and counters, by set of families. */
static void render_series_stats(struct ml_scrape *s, struct expo *e)
{
	static const char *const names[] = { "meshlens_series", "meshlens_series_limit",
					     "meshlens_series_folded_total",
					     "meshlens_series_dropped_total" };
	static const char *const helps[] = {
		"Series held (overflow excluded), by set of families.",
		"Cap on series per set (max_series); new series beyond it fold into the "
		"overflow series.",
		"Records (workload_drop: drop flows) counted into an overflow series because the "
		"cap was reached.",
		"Series dropped after series_idle_seconds without activity.",
	};
	struct {
		const char *set;
		uint64_t v[4]; /* series, limit, folded, dropped */
	} rows[METRICS_SETS + 1];
	struct metrics_stats st;
	struct drop_wl_stats ds;
	int n = 0;

	metrics_stats(s->drain->pl->metrics, &st);
	for (int k = 0; k < METRICS_SETS; k++)
		if (st.enabled[k])
			rows[n++] = (typeof(rows[0])){ metrics_set_name(k),
						       { st.series[k], s->max_series,
							 st.folded[k], st.dropped[k] } };
	if (s->drops && s->drops->wl) {
		drop_wl_stats(s->drops->wl, &ds);
		rows[n++] = (typeof(rows[0])){ "workload_drop",
					       { ds.series, s->max_series, ds.folded, 0 } };
	}
	for (int i = 0; i < 4; i++) {
		expo_family(e, names[i], i < 2 ? "gauge" : "counter", helps[i]);
		for (int r = 0; r < n; r++)
			expo_sample_u64(e, names[i],
					(const char *const[]){ "set", rows[r].set, NULL },
					rows[r].v[i]);
	}
	expo_family(e, "meshlens_tracked_connections", "gauge",
		    "Open connections being tracked.");
	expo_sample_u64(e, "meshlens_tracked_connections", NULL, st.connections);
}

static void lost(struct expo *e, const char *source, uint64_t v)
{
	expo_sample_u64(e, "meshlens_events_lost_total",
			(const char *const[]){ "source", source, NULL }, v);
}

static void render_records(struct ml_scrape *s, struct expo *e)
{
	static const char *const sources[] = { [ML_REC_CONN_OPEN] = "conn_open",
					       [ML_REC_CONN_CLOSE] = "conn_close",
					       [ML_REC_CONN_FAILED] = "conn_failed",
					       [ML_REC_CONN_LIVE] = "live_socket" };
	const struct ml_pipeline *pl = s->drain->pl;

	expo_family(e, "meshlens_events_total", "counter",
		    "Records received from the kernel, by source.");
	for (int i = ML_REC_CONN_CLOSE; i <= ML_REC_CONN_LIVE; i++)
		expo_sample_u64(e, "meshlens_events_total",
				(const char *const[]){ "source", sources[i], NULL }, pl->by_type[i]);
	expo_family(e, "meshlens_events_lost_total", "counter",
		    "Records lost, by where: ringbuf full (counted in the kernel), socket "
		    "storage exhausted, access-log lines not written.");
	lost(e, "access_log", pl->sink ? accesslog_lost_lines(pl->sink) : 0);
	lost(e, "ringbuf", ml_bpf_counter(s->bpf, ML_CNT_RECORDS_LOST));
	lost(e, "ringbuf_open", ml_bpf_counter(s->bpf, ML_CNT_OPEN_LOST));
	lost(e, "recursion", ml_bpf_recursion_misses(s->bpf));
	lost(e, "socket_storage", ml_bpf_counter(s->bpf, ML_CNT_STORAGE_FAIL));
	if (s->drops)
		lost(e, "drop_flows", ml_bpf_counter(s->bpf, ML_CNT_FLOWS_FULL));
}

void ml_scrape(struct ml_scrape *s)
{
	int64_t t0 = ml_mono_ns();
	struct expo *e = &s->expo;
	char *body;

	ml_drain_run(s->drain);
	expo_reset(e);
	expo_family(e, "meshlens_build_info", "gauge", "meshlens version, always 1.");
	expo_sample_u64(e, "meshlens_build_info",
			(const char *const[]){ "version", MESHLENS_VERSION, NULL }, 1);
	ml_bpf_render_info(s->bpf, e);
	render_records(s, e);
	metrics_render(s->drain->pl->metrics, e);
	retrans_render(ml_bpf_map_fd(s->bpf, ML_MAP_RETRANS), s->ncpus, e);
	if (s->drops)
		ml_dropfeed_render(s->drops, e);
	render_series_stats(s, e);
	expo_family(e, "meshlens_scrape_duration_seconds", "gauge",
		    "Time spent rendering this scrape.");
	expo_sample_f64(e, "meshlens_scrape_duration_seconds", NULL,
			(double)(ml_mono_ns() - t0) / 1e9);
	if (e->oom || !(body = malloc(e->len ? e->len : 1))) {
		fprintf(stderr, "meshlens: out of memory rendering metrics\n");
		return;
	}
	memcpy(body, e->buf, e->len);
	metrics_http_publish(s->http, body, e->len);
}

void ml_scrape_free(struct ml_scrape *s)
{
	expo_free(&s->expo);
}
