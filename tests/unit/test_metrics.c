// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Exposition encoding and IP-pair aggregation arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/names.h"
#include "metrics/expo.h"
#include "metrics/metrics.h"

/* ---- expo ------------------------------------------------------------------ */

static char *text(struct expo *e)
{
	char *s = malloc(e->len + 1);

	assert_non_null(s);
	memcpy(s, e->buf, e->len);
	s[e->len] = '\0';
	return s;
}

static void test_expo_family_and_samples(void **state)
{
	struct expo e = { 0 };
	char *s;

	(void)state;
	expo_family(&e, "x_total", "counter", "Help with \\ and\nnewline.");
	expo_sample_u64(&e, "x_total", NULL, 0);
	expo_sample_u64(&e, "x_total", (const char *const[]){ "a", "1", "b", "two", NULL },
			UINT64_MAX);
	expo_sample_f64(&e, "g", NULL, 0.25);
	s = text(&e);
	assert_string_equal(s, "# HELP x_total Help with \\\\ and\\nnewline.\n"
			       "# TYPE x_total counter\n"
			       "x_total 0\n"
			       "x_total{a=\"1\",b=\"two\"} 18446744073709551615\n"
			       "g 0.25\n");
	free(s);
	expo_free(&e);
}

static void test_expo_label_escaping(void **state)
{
	struct expo e = { 0 };
	char *s;

	(void)state;
	expo_sample_u64(&e, "m", (const char *const[]){ "v", "a\\b\"c\nd", NULL }, 7);
	s = text(&e);
	assert_string_equal(s, "m{v=\"a\\\\b\\\"c\\nd\"} 7\n");
	free(s);
	/* reset keeps the memory and starts over */
	expo_reset(&e);
	expo_sample_u64(&e, "m", NULL, 1);
	s = text(&e);
	assert_string_equal(s, "m 1\n");
	free(s);
	expo_free(&e);
}

static void test_expo_grows(void **state)
{
	struct expo e = { 0 };

	(void)state;
	for (int i = 0; i < 10000; i++)
		expo_sample_u64(&e, "metric_with_a_long_name", NULL, (uint64_t)i);
	assert_false(e.oom);
	assert_int_equal(e.len, 10000 * strlen("metric_with_a_long_name \n") + 38890);
	expo_free(&e);
}

/* ---- aggregation ---------------------------------------------------------- */

static struct tcp_probe_info rec(uint8_t type, uint8_t dir, uint8_t client, uint16_t port,
				 uint64_t cookie, uint64_t sent, uint64_t received)
{
	struct tcp_probe_info r = { 0 };

	r.type = type;
	r.direction = dir;
	r.src_addr[10] = r.src_addr[11] = 0xff;
	r.src_addr[12] = 10;
	r.src_addr[15] = client;
	r.dst_addr[10] = r.dst_addr[11] = 0xff;
	r.dst_addr[12] = 10;
	r.dst_addr[15] = 1;
	r.dst_port = port;
	r.sock_cookie = cookie;
	r.sent_bytes = sent;
	r.received_bytes = received;
	r.family = 2;
	r.close_ns = 1000;
	return r;
}

static struct metrics *new_metrics(unsigned int max_series, unsigned int idle)
{
	struct metrics_config cfg = { .max_series = max_series,
				      .series_idle_seconds = idle,
				      .ip_pairs = true };
	struct metrics *m = metrics_new(&cfg);

	assert_non_null(m);
	return m;
}

/* Value of one sample in the rendered text, -1 when absent. */
static long long sample(struct metrics *m, const char *name, const char *labels)
{
	struct expo e = { 0 };
	char key[1024], *s, *p;
	long long v = -1;

	metrics_render(m, &e);
	s = text(&e);
	snprintf(key, sizeof(key), "\n%s{%s} ", name, labels);
	p = strstr(s, key);
	if (p)
		v = atoll(p + strlen(key));
	free(s);
	expo_free(&e);
	return v;
}

#define OUT "direction=\"outbound\",src_ip=\"10.0.0.2\",dst_ip=\"10.0.0.1\",dst_port=\"80\""
#define IN "direction=\"inbound\",src_ip=\"10.0.0.2\",dst_ip=\"10.0.0.1\",dst_port=\"80\""

/*
 * iter/task_file's raw records (ML_F_RAW): the kernel's counters less the
 * open record's bases; a raw record of a connection no open record told
 * of counts nothing, not even an opening.
 */
static void test_raw_live_bases(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r;

	(void)state;
	r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 7, 1, 0); /* bases: SYN acked */
	metrics_record(m, &r);
	r = (struct tcp_probe_info){ .type = ML_REC_CONN_LIVE, .flags = ML_F_RAW,
				     .sock_cookie = 7, .sent_bytes = 1001, .received_bytes = 50,
				     .total_retrans = 1, .close_ns = 2000 };
	metrics_live_begin(m, true);
	metrics_record(m, &r);
	r.sock_cookie = 8; /* never opened here: ignored */
	r.sent_bytes = 99999;
	metrics_record(m, &r);
	metrics_live_end(m, 3000, true);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", OUT), 1000);
	assert_int_equal(sample(m, "meshlens_tcp_received_bytes_total", OUT), 50);
	assert_int_equal(sample(m, "meshlens_tcp_retransmits_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 1);
	/* the close record's payload bytes, as before: no double count */
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 7, 1200, 50);
	r.total_retrans = 1;
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", OUT), 1200);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 1);
	metrics_free(m);
}

static void test_open_live_close_exact(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r;

	(void)state;
	r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 7, 0, 0);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 0);

	metrics_live_begin(m, true);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 7, 1000, 50);
	r.total_retrans = 2;
	metrics_record(m, &r);
	metrics_live_end(m, 2000, true);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", OUT), 1000);
	assert_int_equal(sample(m, "meshlens_tcp_received_bytes_total", OUT), 50);
	assert_int_equal(sample(m, "meshlens_tcp_retransmits_total", OUT), 2);

	metrics_live_begin(m, true);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 7, 1500, 50);
	r.total_retrans = 3;
	metrics_record(m, &r);
	metrics_live_end(m, 3000, true);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", OUT), 1500);

	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 7, 4000, 77);
	r.total_retrans = 3;
	metrics_record(m, &r);
	/* ends exactly at the final values: no double counting */
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", OUT), 4000);
	assert_int_equal(sample(m, "meshlens_tcp_received_bytes_total", OUT), 77);
	assert_int_equal(sample(m, "meshlens_tcp_retransmits_total", OUT), 3);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 1);
	metrics_free(m);
}

static void test_opened_once_whatever_record_comes_first(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r;
	struct metrics_stats st;

	(void)state;
	/* iterator saw it before its open record was drained */
	metrics_live_begin(m, true);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_INBOUND, 2, 80, 1, 10, 20);
	metrics_record(m, &r);
	metrics_live_end(m, 1, true);
	r = rec(ML_REC_CONN_OPEN, ML_DIR_INBOUND, 2, 80, 1, 0, 0);
	metrics_record(m, &r);
	/* a short connection: only its close record */
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_INBOUND, 2, 80, 2, 5, 6);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", IN), 2);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", IN), 1);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", IN), 15);
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 1);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_INBOUND, 2, 80, 1, 10, 20);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", IN), 15);
	assert_int_equal(sample(m, "meshlens_tcp_received_bytes_total", IN), 26);
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 0);
	metrics_free(m);
}

/* A connection that cannot be tracked (cookie 0 here; no memory in the
 * daemon) counts as opened once, at its close, however many records. */
static void test_untracked_connection_opened_once_at_close(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r;
	struct metrics_stats st;

	(void)state;
	r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 0, 0, 0);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 0, 5, 5);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 0);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 0, 10, 20);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", OUT), 10);
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 0);
	metrics_free(m);
}

static void test_failed_counts_failed_and_syn_retransmits(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r = rec(ML_REC_CONN_FAILED, ML_DIR_OUTBOUND, 2, 80, 3, 0, 0);

	(void)state;
	r.total_retrans = 2;
	metrics_record(m, &r);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_connections_failed_total", OUT), 2);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", OUT), 0);
	assert_int_equal(sample(m, "meshlens_tcp_retransmits_total", OUT), 4);
	metrics_free(m);
}

static void test_lost_close_is_forgotten_after_two_passes(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 9, 0, 0);
	struct metrics_stats st;

	(void)state;
	metrics_record(m, &r);
	/* passes that report only sockets whose counters moved prove nothing */
	for (int i = 0; i < 5; i++) {
		metrics_live_begin(m, false);
		metrics_live_end(m, 1, false);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 1);
	metrics_live_begin(m, true);
	metrics_live_end(m, 1, true);
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 1); /* one pass unseen: could be closing */
	metrics_live_begin(m, true);
	metrics_live_end(m, 2, true);
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.expired, 1);
	metrics_free(m);
}

static void test_cap_folds_into_overflow(void **state)
{
	struct metrics *m = new_metrics(2, 0);
	struct metrics_stats st;

	(void)state;
	for (uint8_t c = 2; c < 7; c++) {
		struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, c, 80, c, 100, 1);

		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_IP_PAIR], 2);
	assert_int_equal(st.folded[METRICS_IP_PAIR], 3);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total",
				"direction=\"outbound\",src_ip=\"other\",dst_ip=\"other\","
				"dst_port=\"other\""),
			 3);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total",
				"direction=\"outbound\",src_ip=\"other\",dst_ip=\"other\","
				"dst_port=\"other\""),
			 300);
	metrics_free(m);
}

static void test_idle_series_dropped_unless_live(void **state)
{
	struct metrics *m = new_metrics(10, 1);
	struct tcp_probe_info a = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 1, 1, 1);
	struct tcp_probe_info b = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 3, 80, 2, 0, 0);
	struct metrics_stats st;

	(void)state;
	metrics_record(m, &a);
	metrics_record(m, &b);
	metrics_live_begin(m, true);
	b.type = ML_REC_CONN_LIVE;
	metrics_record(m, &b);
	metrics_live_end(m, 1000 + 2000000000ULL, true);
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_IP_PAIR], 1); /* the open connection's series stays */
	assert_int_equal(st.dropped[METRICS_IP_PAIR], 1);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), -1);
	/* the pair comes back as a new series, from zero */
	metrics_record(m, &a);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 1);
	metrics_free(m);
}

static void test_render_sorted_grouped_stable(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct expo e1 = { 0 }, e2 = { 0 };
	char *s, *line, *save;
	int help = 0, type = 0;
	const char *last_family = "";

	(void)state;
	for (uint8_t c = 9; c > 1; c--) {
		struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, c % 2 ? ML_DIR_INBOUND
							      : ML_DIR_OUTBOUND,
					      c, (uint16_t)(1000 - c), c, c, c);

		metrics_record(m, &r);
	}
	metrics_render(m, &e1);
	metrics_render(m, &e2);
	assert_int_equal(e1.len, e2.len);
	assert_memory_equal(e1.buf, e2.buf, e1.len);
	s = text(&e1);
	char prev[256] = "";
	bool histogram = false;
	int histogram_samples = 0;

	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# HELP ", 7)) {
			help++;
			last_family = line + 7;
			prev[0] = '\0';
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			type++;
			histogram = strstr(line, " histogram") != NULL;
			continue;
		}
		/* every sample belongs to the family announced last */
		assert_int_equal(strncmp(line, last_family, strcspn(last_family, " ")), 0);
		if (histogram) { /* buckets by le, then _sum, _count: checked elsewhere */
			histogram_samples++;
			continue;
		}
		/* inbound series before outbound, addresses ascending */
		assert_true(strcmp(prev, line) < 0);
		snprintf(prev, sizeof(prev), "%s", line);
	}
	/* six counters, three histograms */
	assert_int_equal(help, 9);
	assert_int_equal(type, 9);
	assert_true(histogram_samples > 0);
	free(s);
	expo_free(&e1);
	expo_free(&e2);
	metrics_free(m);
}

/* ---- workload set ------------------------------------------------------------ */

/* Names by the address's last byte: 1 = "server"/"web", 2..9 = "client<n>"
 * (namespace "app", or none for 9); others unknown. gen 1 renames
 * clients (a metadata reload). */
static struct {
	int calls, gen;
	char buf[2][32];
	const char *long_a, *long_b; /* when set: names for both ends */
	bool ids;                    /* give handles: an end's is handle[last byte] */
	char handle[256];
} who;

static const char *name_of(uint8_t last, int side, const char **ns)
{
	*ns = NULL;
	if (last == 1) {
		*ns = "web";
		return "server";
	}
	if (last < 2 || last > 9)
		return NULL;
	if (last != 9)
		*ns = "app";
	snprintf(who.buf[side], sizeof(who.buf[side]), "%s%u", who.gen ? "renamed" : "client",
		 last);
	return who.buf[side];
}

static void identify(void *ctx, const struct tcp_probe_info *r, struct metrics_names *out)
{
	assert_ptr_equal(ctx, &who);
	who.calls++;
	if (who.long_a) {
		out->src_workload = who.long_a;
		out->dst_workload = who.long_b;
		return;
	}
	out->src_workload = name_of(r->src_addr[15], 0, &out->src_namespace);
	out->dst_workload = name_of(r->dst_addr[15], 1, &out->dst_namespace);
	if (who.ids) { /* as the pipeline gives them: NULL for an unnamed end */
		out->src_id = out->src_workload ? &who.handle[r->src_addr[15]] : NULL;
		out->dst_id = out->dst_workload ? &who.handle[r->dst_addr[15]] : NULL;
		out->id_gen = (uint64_t)who.gen + 1;
	}
}

static struct metrics *new_workload_metrics(unsigned int max_series, unsigned int idle,
					    bool ip_pairs)
{
	struct metrics_config cfg = { .max_series = max_series,
				      .series_idle_seconds = idle,
				      .ip_pairs = ip_pairs,
				      .identify = identify,
				      .identify_ctx = &who };
	struct metrics *m = metrics_new(&cfg);

	assert_non_null(m);
	memset(&who, 0, sizeof(who));
	return m;
}

#define WL(dir, src, srcns, dst, dstns)                                                  \
	"direction=\"" dir "\",src_workload=\"" src "\",src_namespace=\"" srcns            \
	"\",dst_workload=\"" dst "\",dst_namespace=\"" dstns "\""

static void test_workload_series_named_once_per_connection(void **state)
{
	struct metrics *m = new_workload_metrics(100, 0, true);
	struct tcp_probe_info r;

	(void)state;
	/* two clients of one workload pair: one series; the IP-pair set still has two */
	r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 1, 0, 0);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 1, 100, 10);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 1, 300, 30);
	metrics_record(m, &r);
	assert_int_equal(who.calls, 1); /* asked once, at the connection's first record */
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_INBOUND, 2, 80, 2, 5, 7);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_FAILED, ML_DIR_OUTBOUND, 10, 80, 3, 0, 0);
	r.total_retrans = 2;
	metrics_record(m, &r);
	assert_int_equal(who.calls, 3);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_opened_total",
				WL("outbound", "client2", "app", "server", "web")),
			 1);
	assert_int_equal(sample(m, "meshlens_workload_tcp_sent_bytes_total",
				WL("outbound", "client2", "app", "server", "web")),
			 300);
	assert_int_equal(sample(m, "meshlens_workload_tcp_received_bytes_total",
				WL("outbound", "client2", "app", "server", "web")),
			 30);
	assert_int_equal(sample(m, "meshlens_workload_tcp_received_bytes_total",
				WL("inbound", "client2", "app", "server", "web")),
			 7);
	/* unknown ends are "unknown", never an empty label */
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_failed_total",
				WL("outbound", "unknown", "unknown", "server", "web")),
			 1);
	assert_int_equal(sample(m, "meshlens_workload_tcp_retransmits_total",
				WL("outbound", "unknown", "unknown", "server", "web")),
			 2);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), 1);
	metrics_free(m);
}

static void test_workload_rename_never_splits_an_open_connection(void **state)
{
	struct metrics *m = new_workload_metrics(100, 0, false);
	struct tcp_probe_info r;
	struct metrics_stats st;

	(void)state;
	r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 9, 80, 1, 0, 0);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 9, 80, 1, 40, 0);
	metrics_record(m, &r);
	who.gen = 1; /* the metadata file changed */
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 9, 80, 1, 100, 0);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 9, 80, 2, 1, 0);
	metrics_record(m, &r);
	/* the open connection stayed whole under its first names */
	assert_int_equal(sample(m, "meshlens_workload_tcp_sent_bytes_total",
				WL("outbound", "client9", "unknown", "server", "web")),
			 100);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("outbound", "client9", "unknown", "server", "web")),
			 1);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_opened_total",
				WL("outbound", "renamed9", "unknown", "server", "web")),
			 1);
	/* the IP-pair set is off: none of its families */
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", OUT), -1);
	metrics_stats(m, &st);
	assert_false(st.enabled[METRICS_IP_PAIR]);
	assert_true(st.enabled[METRICS_WORKLOAD]);
	assert_int_equal(st.series[METRICS_WORKLOAD], 2);
	assert_int_equal(st.series[METRICS_IP_PAIR], 0);
	metrics_free(m);
}

static void test_workload_names_are_not_concatenated(void **state)
{
	struct metrics *m = new_workload_metrics(100, 0, false);
	struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 1, 1, 0);
	struct metrics_stats st;

	(void)state;
	who.long_a = "ab";
	who.long_b = "c";
	metrics_record(m, &r);
	who.long_a = "a";
	who.long_b = "bc";
	r.sock_cookie = 2;
	metrics_record(m, &r);
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_WORKLOAD], 2);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("outbound", "a", "unknown", "bc", "unknown")),
			 1);
	metrics_free(m);
}

static void test_workload_cap_overflow_and_idle_drop(void **state)
{
	struct metrics *m = new_workload_metrics(2, 1, false);
	struct metrics_stats st;

	(void)state;
	for (uint8_t c = 2; c < 7; c++) {
		struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, c, 80, c, 10, 1);

		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_WORKLOAD], 2);
	assert_int_equal(st.folded[METRICS_WORKLOAD], 3);
	assert_int_equal(sample(m, "meshlens_workload_tcp_sent_bytes_total",
				WL("outbound", "other", "other", "other", "other")),
			 30);
	/* idle series go (their label text freed: ASan would see a leak) */
	metrics_live_begin(m, true);
	metrics_live_end(m, 1000 + 2000000000ULL, true);
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_WORKLOAD], 0);
	assert_int_equal(st.dropped[METRICS_WORKLOAD], 2);
	{
		struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, ML_DIR_INBOUND, 3, 80, 9, 1, 1);

		metrics_record(m, &r);
	}
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("inbound", "client3", "app", "server", "web")),
			 1);
	metrics_free(m);
}

/* Dropping idle series out of the middle of probe chains (backward-shift
 * deletion) leaves every other series findable: the next records of the
 * kept ones land in their series, not in new ones. */
static void test_idle_drops_keep_the_rest_findable(void **state)
{
	struct metrics *m = new_metrics(64, 1);
	struct metrics_stats st;
	struct tcp_probe_info r;

	(void)state;
	for (uint8_t c = 2; c < 66; c++) {
		r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, c, 80, 1000u + c, 1, 1);
		metrics_record(m, &r);
		if (c % 2 == 0) { /* an open connection keeps the even ones */
			r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, c, 80, 2000u + c, 0, 0);
			metrics_record(m, &r);
		}
	}
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_IP_PAIR], 64);
	metrics_live_end(m, 1000 + 2000000000ULL, false);
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_IP_PAIR], 32);
	assert_int_equal(st.dropped[METRICS_IP_PAIR], 32);
	for (uint8_t c = 2; c < 66; c += 2) {
		r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, c, 80, 2000u + c, 3, 0);
		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_IP_PAIR], 32); /* found, none created */
	assert_int_equal(st.folded[METRICS_IP_PAIR], 0);
	for (uint8_t c = 2; c < 66; c += 16) {
		char labels[160];

		snprintf(labels, sizeof(labels),
			 "direction=\"outbound\",src_ip=\"10.0.0.%u\",dst_ip=\"10.0.0.1\","
			 "dst_port=\"80\"", c);
		assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", labels), 2);
		assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", labels), 4);
	}
	metrics_free(m);
}

/* A connection whose close record was lost stops holding its series in
 * both sets once the full passes forget it. */
static void test_expired_connection_frees_both_sets(void **state)
{
	struct metrics *m = new_workload_metrics(10, 1, true);
	struct tcp_probe_info r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 7, 0, 0);
	struct metrics_stats st;

	(void)state;
	metrics_record(m, &r);
	for (int pass = 0; pass < 2; pass++) {
		metrics_live_begin(m, true);
		metrics_live_end(m, 1000 + 2000000000ULL, true);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.connections, 0);
	/* the second pass forgot it, then the idle series went, in both sets */
	assert_int_equal(st.series[METRICS_IP_PAIR], 0);
	assert_int_equal(st.series[METRICS_WORKLOAD], 0);
	metrics_free(m);
}

/* Both sets off: records are still tracked, nothing is rendered. */
/*
 * Thousands of tracked connections: the connection array and its index
 * grow past their first size, expiry removes half of them out of the
 * middle of probe chains, and every survivor is still found by its close
 * (closed counted once each, opened never again).
 */
static void test_many_connections_grow_and_expire(void **state)
{
	const uint64_t n = 5000;
	struct metrics *m = new_metrics(100, 0);
	struct metrics_stats st;
	struct tcp_probe_info r;
	const char *lbl = "direction=\"outbound\",src_ip=\"10.0.0.7\",dst_ip=\"10.0.0.1\","
			  "dst_port=\"80\"";

	(void)state;
	for (uint64_t c = 1; c <= n; c++) {
		r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 7, 80, c, 0, 0);
		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.connections, n);
	/* two full passes that see only the even cookies */
	for (int pass = 0; pass < 2; pass++) {
		metrics_live_begin(m, true);
		for (uint64_t c = 2; c <= n; c += 2) {
			r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 7, 80, c, 10, 0);
			metrics_record(m, &r);
		}
		metrics_live_end(m, 1000, true);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.connections, n / 2);
	assert_int_equal(st.expired, n / 2);
	for (uint64_t c = 2; c <= n; c += 2) {
		r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 7, 80, c, 15, 0);
		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 0);
	assert_int_equal(sample(m, "meshlens_tcp_connections_opened_total", lbl), n);
	assert_int_equal(sample(m, "meshlens_tcp_connections_closed_total", lbl), n / 2);
	assert_int_equal(sample(m, "meshlens_tcp_sent_bytes_total", lbl), 15 * n / 2);
	/* the freed slots are taken again */
	for (uint64_t c = n + 1; c <= 2 * n; c++) {
		r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 7, 80, c, 0, 0);
		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.connections, n);
	metrics_free(m);
}

static void test_both_sets_off(void **state)
{
	struct metrics_config cfg = { .max_series = 10 };
	struct metrics *m = metrics_new(&cfg);
	struct tcp_probe_info r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 7, 0, 0);
	struct metrics_stats st;
	struct expo e = { 0 };

	(void)state;
	assert_non_null(m);
	metrics_record(m, &r);
	metrics_render(m, &e);
	assert_int_equal(e.len, 0);
	metrics_stats(m, &st);
	assert_false(st.enabled[METRICS_IP_PAIR] || st.enabled[METRICS_WORKLOAD]);
	assert_int_equal(st.connections, 1);
	r.type = ML_REC_CONN_CLOSE;
	metrics_record(m, &r);
	metrics_stats(m, &st);
	assert_int_equal(st.connections, 0);
	expo_free(&e);
	metrics_free(m);
}

/* ---- Istio set ------------------------------------------------------------- */

/* The server (10.0.0.1) fully described; clients have only workload and
 * namespace, so Istio's defaults show. */
static void istio_identify(void *ctx, const struct tcp_probe_info *r, struct metrics_names *out)
{
	identify(ctx, r, out);
	if (r->dst_addr[15] == 1)
		out->dst = (struct metrics_end){ .service = "web-svc",
						 .canonical_service = "web-canon",
						 .canonical_revision = "v2",
						 .principal = "spiffe://cluster.local/ns/web/sa/server",
						 .app = "web-app",
						 .version = "v2",
						 .cluster = "east" };
}

#define ISTIO(rep, src, srcns, canon, rev)                                                  \
	"reporter=\"" rep "\",source_workload=\"" src "\",source_canonical_service=\"" canon \
	"\",source_canonical_revision=\"" rev "\",source_workload_namespace=\"" srcns        \
	"\",source_principal=\"unknown\",source_app=\"unknown\",source_version=\"unknown\","  \
	"source_cluster=\"unknown\",destination_service=\"web-svc.web.svc.cluster.local\","   \
	"destination_service_namespace=\"web\",destination_service_name=\"web-svc\","         \
	"destination_workload=\"server\",destination_canonical_service=\"web-canon\","        \
	"destination_canonical_revision=\"v2\",destination_workload_namespace=\"web\","       \
	"destination_principal=\"spiffe://cluster.local/ns/web/sa/server\","                  \
	"destination_app=\"web-app\",destination_version=\"v2\",destination_cluster=\"east\"," \
	"request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"unknown\""

/*
 * A new connection between ends already seen takes its series by the ends'
 * handles, for as long as they name the same: never a series freed since
 * and taken by other names, never the overflow series once there is room,
 * never the old names after a reload (a new generation).
 */
static void test_series_by_handles(void **state)
{
	struct metrics_config cfg = { .max_series = 2, .series_idle_seconds = 1,
				      .identify = istio_identify, .identify_ctx = &who,
				      .istio = true };
	struct metrics *m = metrics_new(&cfg);
	struct metrics_stats st;
	struct tcp_probe_info r;
	uint64_t cookie = 1, idle = 1000 + 2000000000ULL;

	(void)state;
	assert_non_null(m);
	memset(&who, 0, sizeof(who));
	who.ids = true;
	for (int i = 0; i < 3; i++) {
		r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, cookie++, 10, 1);
		metrics_record(m, &r);
	}
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_WORKLOAD], 1);
	assert_int_equal(st.series[METRICS_ISTIO], 1);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("outbound", "client2", "app", "server", "web")),
			 3);
	assert_int_equal(sample(m, "istio_tcp_connections_closed_total",
				ISTIO("source", "client2", "app", "client2", "latest")),
			 3);
	/* idle: dropped; client3 takes the freed slots, then client2 again */
	metrics_live_end(m, idle, false);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 3, 80, cookie++, 10, 1);
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, cookie++, 10, 1);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("outbound", "client3", "app", "server", "web")),
			 1);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("outbound", "client2", "app", "server", "web")),
			 1);
	assert_int_equal(sample(m, "istio_tcp_connections_closed_total",
				ISTIO("source", "client3", "app", "client3", "latest")),
			 1);
	/* a reload renames client2 behind the same handle: the new name, into
	 * the overflow series while the cap is reached */
	who.gen = 1;
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, cookie++, 10, 1);
	metrics_record(m, &r);
	metrics_stats(m, &st);
	assert_int_equal(st.folded[METRICS_WORKLOAD], 1);
	assert_int_equal(st.folded[METRICS_ISTIO], 1);
	/* room again: the renamed pair gets its own series */
	metrics_live_end(m, 2 * idle, false);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, cookie++, 10, 1);
	metrics_record(m, &r);
	metrics_stats(m, &st);
	assert_int_equal(st.series[METRICS_WORKLOAD], 1);
	assert_int_equal(st.folded[METRICS_WORKLOAD], 1);
	assert_int_equal(sample(m, "meshlens_workload_tcp_connections_closed_total",
				WL("outbound", "renamed2", "app", "server", "web")),
			 1);
	assert_int_equal(sample(m, "istio_tcp_connections_closed_total",
				ISTIO("source", "renamed2", "app", "renamed2", "latest")),
			 1);
	assert_int_equal(who.calls, 7); /* asked for every connection all the same */
	metrics_free(m);
}

/*
 * Istio's families: reporter by the socket's side, every label Istio has,
 * Istio's defaults where nothing is said, and Istio's sent/received — the
 * response's and the request's bytes whichever end reports.
 */
static void test_istio_set_labels_and_bytes(void **state)
{
	struct metrics_config cfg = { .max_series = 100, .identify = istio_identify,
				      .identify_ctx = &who, .istio = true };
	struct metrics *m = metrics_new(&cfg);
	struct metrics_stats st;
	struct tcp_probe_info r;

	(void)state;
	assert_non_null(m);
	memset(&who, 0, sizeof(who));
	/* client2 -> server: the client sends 300 (the request), receives 30 */
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 1, 300, 30);
	metrics_record(m, &r);
	/* the server's socket of the same connection: receives 300, sends 30 */
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_INBOUND, 2, 80, 2, 30, 300);
	metrics_record(m, &r);
	for (int i = 0; i < 2; i++) {
		const char *l = i ? ISTIO("destination", "client2", "app", "client2", "latest")
				  : ISTIO("source", "client2", "app", "client2", "latest");

		assert_int_equal(sample(m, "istio_tcp_connections_opened_total", l), 1);
		assert_int_equal(sample(m, "istio_tcp_connections_closed_total", l), 1);
		assert_int_equal(sample(m, "istio_tcp_received_bytes_total", l), 300);
		assert_int_equal(sample(m, "istio_tcp_sent_bytes_total", l), 30);
	}
	/* a failed attempt from an unknown client: ztunnel's failed family */
	r = rec(ML_REC_CONN_FAILED, ML_DIR_OUTBOUND, 10, 80, 3, 0, 0);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "istio_tcp_connections_failed_total",
				ISTIO("source", "unknown", "unknown", "unknown", "unknown")),
			 1);
	/* the workload set is there too, and the Istio set counts in the stats */
	assert_int_equal(sample(m, "meshlens_workload_tcp_sent_bytes_total",
				WL("outbound", "client2", "app", "server", "web")),
			 300);
	metrics_stats(m, &st);
	assert_true(st.enabled[METRICS_ISTIO]);
	assert_int_equal(st.series[METRICS_ISTIO], 3);
	assert_string_equal(metrics_set_name(METRICS_ISTIO), "istio");
	metrics_free(m);
	/* workload_off: Istio's set alone */
	cfg.workload_off = true;
	m = metrics_new(&cfg);
	assert_non_null(m);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 1, 300, 30);
	metrics_record(m, &r);
	metrics_stats(m, &st);
	assert_false(st.enabled[METRICS_WORKLOAD]);
	assert_int_equal(sample(m, "istio_tcp_received_bytes_total",
				ISTIO("source", "client2", "app", "client2", "latest")),
			 300);
	metrics_free(m);
}

/*
 * Duration and smoothed-RTT histograms of closed connections: a value on a
 * bound counts in that bound's bucket (le is <=), buckets cumulative, sum
 * in seconds, count = closes; open, live and failed records add nothing.
 */
static void test_histograms_of_closed_connections(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r;
	static const struct {
		uint64_t duration_ns;
		uint32_t srtt_us, handshake_us; /* handshake 0: not measured */
	} c[] = { { 1000000, 100, 50 }, { 1000001, 101, 51 }, { 750000000, 20000, 0 },
		  { 7200000000000ULL, 2000000, 7000001 } };

	(void)state;
	for (unsigned int i = 0; i < 4; i++) {
		r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 10 + i, 1, 1);
		r.duration = c[i].duration_ns;
		r.srtt_us = c[i].srtt_us;
		if (c[i].handshake_us) {
			r.flags |= ML_F_HANDSHAKE;
			r.handshake_us = c[i].handshake_us;
		}
		metrics_record(m, &r);
	}
	r = rec(ML_REC_CONN_FAILED, ML_DIR_OUTBOUND, 2, 80, 20, 0, 0);
	r.duration = 5;
	metrics_record(m, &r);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 21, 0, 0);
	r.duration = 5;
	metrics_record(m, &r);
#define B(le) OUT ",le=\"" le "\""
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_bucket", B("0.001")), 1);
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_bucket", B("0.005")), 2);
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_bucket", B("0.5")), 2);
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_bucket", B("1")), 3);
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_bucket", B("3600")), 3);
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_bucket", B("+Inf")), 4);
	assert_int_equal(sample(m, "meshlens_tcp_connection_duration_seconds_count", OUT), 4);
	assert_int_equal(sample(m, "meshlens_tcp_srtt_seconds_bucket", B("0.0001")), 1);
	assert_int_equal(sample(m, "meshlens_tcp_srtt_seconds_bucket", B("0.00025")), 2);
	assert_int_equal(sample(m, "meshlens_tcp_srtt_seconds_bucket", B("0.025")), 3);
	assert_int_equal(sample(m, "meshlens_tcp_srtt_seconds_bucket", B("1")), 3);
	assert_int_equal(sample(m, "meshlens_tcp_srtt_seconds_bucket", B("+Inf")), 4);
	assert_int_equal(sample(m, "meshlens_tcp_srtt_seconds_count", OUT), 4);
	assert_int_equal(sample(m, "meshlens_tcp_handshake_seconds_bucket", B("5e-05")), 1);
	assert_int_equal(sample(m, "meshlens_tcp_handshake_seconds_bucket", B("0.0001")), 2);
	assert_int_equal(sample(m, "meshlens_tcp_handshake_seconds_bucket", B("7")), 2);
	assert_int_equal(sample(m, "meshlens_tcp_handshake_seconds_bucket", B("+Inf")), 3);
	assert_int_equal(sample(m, "meshlens_tcp_handshake_seconds_count", OUT), 3);
#undef B
	{
		struct expo e = { 0 };
		char *t;

		metrics_render(m, &e);
		t = text(&e);
		assert_non_null(strstr(t, "# TYPE meshlens_tcp_srtt_seconds histogram\n"));
		/* 0.001 + 0.001000001 + 0.75 + 7200 s */
		assert_non_null(strstr(t, "\nmeshlens_tcp_connection_duration_seconds_sum{" OUT "} 7200.752\n"));
		assert_non_null(strstr(t, "\nmeshlens_tcp_srtt_seconds_sum{" OUT "} 2.020201\n"));
		assert_non_null(strstr(t, "\nmeshlens_tcp_handshake_seconds_sum{" OUT "} 7.000102\n"));
		free(t);
		expo_free(&e);
	}
	metrics_free(m);
}

/*
 * RTO expiries per pair: counted as the connection's total_rto grows (live
 * passes, then the close), a failed attempt's SYN timeouts too; the family
 * exists only once a record said the kernel counts them (6.7+).
 */
static void test_rto_timeouts(void **state)
{
	struct metrics *m = new_metrics(100, 0);
	struct tcp_probe_info r;

	(void)state;
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2, 80, 10, 1, 1);
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_rto_timeouts_total", OUT), -1);
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 11, 1, 1);
	r.flags = ML_F_RTO | ML_F_HEALTH;
	r.total_rto = 2;
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_rto_timeouts_total", OUT), 2);
	r.type = ML_REC_CONN_CLOSE;
	r.total_rto = 3;
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_rto_timeouts_total", OUT), 3);
	r = rec(ML_REC_CONN_FAILED, ML_DIR_OUTBOUND, 2, 80, 12, 0, 0);
	r.flags = ML_F_RTO | ML_F_HEALTH;
	r.total_rto = 4; /* SYNs unanswered */
	metrics_record(m, &r);
	assert_int_equal(sample(m, "meshlens_tcp_rto_timeouts_total", OUT), 7);
	metrics_free(m);
}

static struct {
	int n;
	struct metrics_interval iv[8];
	struct tcp_probe_info r[8];
} reports;

static void on_interim(void *ctx, const struct tcp_probe_info *r, const struct metrics_interval *iv)
{
	(void)ctx;
	assert_true(reports.n < 8);
	reports.iv[reports.n] = *iv;
	reports.r[reports.n++] = *r;
}

/*
 * Interim reports: at the first LIVE record past start + k * interval,
 * one per pass at most, however late; cumulative counters in the record,
 * the interval's additions beside; nothing from raw records.
 */
static void test_interim_reports_on_boundaries(void **state)
{
	struct metrics_config cfg = { .max_series = 10, .ip_pairs = true,
				      .interim_ns = 1000000000, .interim = on_interim };
	struct metrics *m = metrics_new(&cfg);
	struct tcp_probe_info r;
	static const struct {
		uint64_t at_ns, sent, received;
	} live[] = { { 500000000, 10, 1 },  { 1200000000, 30, 2 }, { 1300000000, 40, 3 },
		     { 3500000000, 70, 4 }, { 3900000000, 70, 4 }, { 4000000000, 75, 5 } };

	(void)state;
	assert_non_null(m);
	memset(&reports, 0, sizeof(reports));
	r = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2, 80, 1, 0, 0);
	r.start_ns = 0;
	metrics_record(m, &r);
	for (unsigned int i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 1, live[i].sent, live[i].received);
		r.close_ns = live[i].at_ns;
		metrics_record(m, &r);
	}
	/* at 1.2 s (boundary 1 s), at 3.5 s (boundaries 2 and 3 s: one report), at 4 s */
	assert_int_equal(reports.n, 3);
	assert_int_equal(reports.r[0].sent_bytes, 30);
	assert_int_equal(reports.iv[0].sent, 30);
	assert_int_equal(reports.iv[0].received, 2);
	assert_int_equal(reports.r[1].sent_bytes, 70);
	assert_int_equal(reports.iv[1].sent, 40);
	assert_int_equal(reports.r[2].close_ns, 4000000000ULL);
	assert_int_equal(reports.iv[2].sent, 5);
	assert_int_equal(reports.iv[2].received, 1);
	/* a raw record past the next boundary reports nothing */
	r = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, 2, 80, 1, 80, 6);
	r.flags = ML_F_RAW;
	r.close_ns = 6000000000ULL;
	metrics_record(m, &r);
	assert_int_equal(reports.n, 3);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_raw_live_bases),
		cmocka_unit_test(test_expo_family_and_samples),
		cmocka_unit_test(test_expo_label_escaping),
		cmocka_unit_test(test_expo_grows),
		cmocka_unit_test(test_open_live_close_exact),
		cmocka_unit_test(test_opened_once_whatever_record_comes_first),
		cmocka_unit_test(test_untracked_connection_opened_once_at_close),
		cmocka_unit_test(test_failed_counts_failed_and_syn_retransmits),
		cmocka_unit_test(test_lost_close_is_forgotten_after_two_passes),
		cmocka_unit_test(test_cap_folds_into_overflow),
		cmocka_unit_test(test_idle_series_dropped_unless_live),
		cmocka_unit_test(test_render_sorted_grouped_stable),
		cmocka_unit_test(test_workload_series_named_once_per_connection),
		cmocka_unit_test(test_istio_set_labels_and_bytes),
		cmocka_unit_test(test_histograms_of_closed_connections),
		cmocka_unit_test(test_rto_timeouts),
		cmocka_unit_test(test_interim_reports_on_boundaries),
		cmocka_unit_test(test_workload_rename_never_splits_an_open_connection),
		cmocka_unit_test(test_workload_names_are_not_concatenated),
		cmocka_unit_test(test_workload_cap_overflow_and_idle_drop),
		cmocka_unit_test(test_series_by_handles),
		cmocka_unit_test(test_idle_drops_keep_the_rest_findable),
		cmocka_unit_test(test_expired_connection_frees_both_sets),
		cmocka_unit_test(test_many_connections_grow_and_expire),
		cmocka_unit_test(test_both_sets_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
