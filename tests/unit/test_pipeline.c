// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/pipeline.c, the join of a record with the
 * metadata: the socket's cgroup names its own end and wins over the
 * address there, addresses name the other end, an unspecified address
 * (a connect that failed before any SYN) names nothing; the same names
 * reach the access-log line and the workload metric family; only closes
 * and failures are logged; malformed records are skipped and not counted.
 * A temporary directory tree stands in for the cgroup v2 root (cgroup
 * ids are its directories' inode numbers, as on cgroup2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/metadata.h"
#include "daemon/pipeline.h"
#include "drops/reasons.h"
#include "lib/names.h"
#include "metrics/expo.h"

struct fx {
	char dir[64];
	char root[96], log[96], md[96];
	uint64_t pod_a; /* cgroup id of root/kubepods/pod-a */
	struct ml_pipeline pl;
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct metrics_config cfg = {
		.max_series = 100,
		.ip_pairs = true,
		.identify = ml_pipeline_names,
	};
	char path[160], err[256];
	struct stat st;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_pipeline.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->root, sizeof(f->root), "%s/cg", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/access.log", f->dir);
	snprintf(f->md, sizeof(f->md), "%s/md.json", f->dir);
	assert_int_equal(mkdir(f->root, 0755), 0);
	snprintf(path, sizeof(path), "%s/kubepods", f->root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/kubepods/pod-a", f->root);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(stat(path, &st), 0);
	f->pod_a = st.st_ino;
	put(f->md, "{\"workloads\":["
		   "{\"cgroups\":[\"kubepods/pod-a\"],\"workload\":\"client\",\"namespace\":\"ns-a\"},"
		   "{\"ips\":[\"10.0.0.1\"],\"workload\":\"by-address\",\"namespace\":\"ns-x\"},"
		   "{\"ips\":[\"10.0.0.2\"],\"workload\":\"server\",\"namespace\":\"ns-b\","
		   "\"service\":\"svc-b\"}]}");
	f->pl.md = ml_metadata_open(f->md, f->root, err, sizeof(err));
	if (!f->pl.md)
		fail_msg("metadata: %s", err);
	cfg.identify_ctx = &f->pl;
	f->pl.metrics = metrics_new(&cfg);
	f->pl.sink = accesslog_open(f->log);
	assert_non_null(f->pl.metrics);
	assert_non_null(f->pl.sink);
	accesslog_clock_sync(&f->pl.clk);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	accesslog_close(f->pl.sink);
	metrics_free(f->pl.metrics);
	ml_metadata_free(f->pl.md);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void v4(uint8_t a[ML_ADDR_LEN], const char *ip)
{
	memset(a, 0, ML_ADDR_LEN);
	a[10] = a[11] = 0xff;
	assert_int_equal(inet_pton(AF_INET, ip, a + 12), 1);
}

/* A connection's record from 10.0.0.1:40000 to 10.0.0.2:80. */
static struct tcp_probe_info rec(unsigned int type, unsigned int direction, uint64_t cgroup_id,
				 uint64_t cookie)
{
	struct tcp_probe_info r = { 0 };

	r.type = type;
	r.direction = direction;
	r.cgroup_id = cgroup_id;
	r.sock_cookie = cookie;
	r.family = AF_INET;
	r.protocol = IPPROTO_TCP;
	r.conn_success = type != ML_REC_CONN_FAILED;
	v4(r.src_addr, "10.0.0.1");
	v4(r.dst_addr, "10.0.0.2");
	r.src_port = 40000;
	r.dst_port = 80;
	r.start_ns = 1000;
	r.close_ns = 2000;
	r.duration = 1000;
	r.sent_bytes = 100;
	r.received_bytes = 200;
	r.state = 7; /* TCP_CLOSE */
	return r;
}

/* The log so far, flushed; caller frees. */
static char *log_text(struct fx *f)
{
	static char buf[16384];
	FILE *fp;
	size_t n;

	assert_int_equal(accesslog_flush(f->pl.sink), 0);
	fp = fopen(f->log, "r");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return strdup(buf);
}

static void want_in(const char *text, const char *part)
{
	if (!strstr(text, part))
		fail_msg("'%s' not in:\n%s", part, text);
}

static void test_cgroup_names_own_end_address_the_other(void **state)
{
	struct fx *f = *state;
	struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, f->pod_a, 1);
	struct expo e = { 0 };
	char *text;

	ml_pipeline_record(&f->pl, &r, sizeof(r));
	text = log_text(f);
	/* 10.0.0.1 is "by-address", but the socket's cgroup names the client */
	want_in(text, "\"cgroup\":\"kubepods/pod-a\",\"src_workload\":\"client\","
		      "\"src_namespace\":\"ns-a\",\"dst_workload\":\"server\","
		      "\"dst_namespace\":\"ns-b\",\"dst_service\":\"svc-b\"}");
	free(text);
	/* the workload family has the same names */
	metrics_render(f->pl.metrics, &e);
	assert_false(e.oom);
	want_in(e.buf, "meshlens_workload_tcp_connections_closed_total{direction=\"outbound\","
		       "src_workload=\"client\",src_namespace=\"ns-a\",dst_workload=\"server\","
		       "dst_namespace=\"ns-b\"} 1");
	free(e.buf);
}

static void test_inbound_end_and_unknown_cgroup(void **state)
{
	struct fx *f = *state;
	struct tcp_probe_info in = rec(ML_REC_CONN_CLOSE, ML_DIR_INBOUND, f->pod_a, 2);
	struct tcp_probe_info nocg = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 0, 3);
	char *text;

	ml_pipeline_record(&f->pl, &in, sizeof(in));
	ml_pipeline_record(&f->pl, &nocg, sizeof(nocg));
	text = log_text(f);
	/* inbound: the cgroup names the server end, the address the client */
	want_in(text, "\"sock_cookie\":2,\"cgroup\":\"kubepods/pod-a\","
		      "\"src_workload\":\"by-address\",\"src_namespace\":\"ns-x\","
		      "\"dst_workload\":\"client\",\"dst_namespace\":\"ns-a\"}");
	/* no cgroup known: both ends by address, no cgroup key */
	want_in(text, "\"sock_cookie\":3,\"src_workload\":\"by-address\",\"src_namespace\":\"ns-x\","
		      "\"dst_workload\":\"server\"");
	free(text);
}

static void test_failed_before_syn_names_only_destination(void **state)
{
	struct fx *f = *state;
	struct tcp_probe_info r = rec(ML_REC_CONN_FAILED, ML_DIR_OUTBOUND, 0, 4);
	char *text;

	memset(r.src_addr, 0, sizeof(r.src_addr)); /* never got a source */
	r.src_port = 0;
	r.failure = ML_FAIL_UNREACHABLE;
	ml_pipeline_record(&f->pl, &r, sizeof(r));
	text = log_text(f);
	want_in(text, "\"failure\":\"unreachable\"");
	want_in(text, "\"sock_cookie\":4,\"dst_workload\":\"server\"");
	assert_null(strstr(text, "src_workload"));
	free(text);
}

static void test_only_closes_logged_bad_records_skipped(void **state)
{
	struct fx *f = *state;
	struct tcp_probe_info open = rec(ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, f->pod_a, 5);
	struct tcp_probe_info live = rec(ML_REC_CONN_LIVE, ML_DIR_OUTBOUND, f->pod_a, 5);
	struct tcp_probe_info bad = rec(0, ML_DIR_OUTBOUND, f->pod_a, 6);
	struct tcp_probe_info close = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, f->pod_a, 5);
	char *text;

	ml_pipeline_record(&f->pl, &open, sizeof(open));
	ml_pipeline_record(&f->pl, &live, sizeof(live));
	ml_pipeline_record(&f->pl, &bad, sizeof(bad));
	ml_pipeline_record(&f->pl, &close, sizeof(close) - 1); /* short */
	bad.type = ML_REC_CONN_LIVE + 1;
	ml_pipeline_record(&f->pl, &bad, sizeof(bad));
	assert_int_equal(f->pl.records, 2);
	assert_int_equal(f->pl.by_type[ML_REC_CONN_OPEN], 1);
	assert_int_equal(f->pl.by_type[ML_REC_CONN_LIVE], 1);
	text = log_text(f);
	assert_string_equal(text, "");
	free(text);
	ml_pipeline_record(&f->pl, &close, sizeof(close));
	text = log_text(f);
	assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text)); /* one line */
	want_in(text, "\"sock_cookie\":5,");
	free(text);
}

/*
 * With drop tracing, the pipeline names a close's last drop reason from
 * its reasons table (the kernel's BTF in the daemon); without one, or for
 * a value the table lacks, the name says so. Nothing for no drops.
 */
static void test_last_drop_reason_named_by_the_pipeline(void **state)
{
	struct fx *f = *state;
	struct drop_reason v[] = { { .value = 5, .name = "TCP_CSUM" } };
	struct drop_reasons reasons = { v, 1 };
	struct tcp_probe_info r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, f->pod_a, 7);
	char *text;

	r.flags = ML_F_DROPS;
	ml_pipeline_record(&f->pl, &r, sizeof(r)); /* none dropped */
	r.drops = 2;
	r.last_drop_reason = 5;
	r.sock_cookie = 8;
	ml_pipeline_record(&f->pl, &r, sizeof(r)); /* no table yet */
	f->pl.reasons = &reasons;
	r.sock_cookie = 9;
	ml_pipeline_record(&f->pl, &r, sizeof(r));
	r.last_drop_reason = 6;
	r.sock_cookie = 10;
	ml_pipeline_record(&f->pl, &r, sizeof(r));
	text = log_text(f);
	want_in(text, "\"sock_cookie\":7,\"drops\":0,\"cgroup\"");
	want_in(text, "\"sock_cookie\":8,\"drops\":2,\"last_drop_reason\":\"UNKNOWN\",\"cgroup\"");
	want_in(text, "\"sock_cookie\":9,\"drops\":2,\"last_drop_reason\":\"TCP_CSUM\",\"cgroup\"");
	want_in(text, "\"sock_cookie\":10,\"drops\":2,\"last_drop_reason\":\"UNKNOWN_6\",");
	free(text);
	/* without metadata: the reason alone, no names */
	ml_metadata_free(f->pl.md);
	f->pl.md = NULL;
	r.last_drop_reason = 5;
	r.sock_cookie = 11;
	ml_pipeline_record(&f->pl, &r, sizeof(r));
	text = log_text(f);
	want_in(text, "\"sock_cookie\":11,\"drops\":2,\"last_drop_reason\":\"TCP_CSUM\"}\n");
	free(text);
	f->pl.reasons = NULL;
}

/*
 * A record of a cgroup made after the last walk (a new pod) is not taken
 * and not counted: the pipeline asks for a rescan, which the caller runs
 * out of the record path, and the record handed over again is named. No
 * walk in the record path itself; within a second of the last walk the
 * record goes on unnamed rather than walking again.
 */
static void test_new_cgroup_stalls_for_one_rescan(void **state)
{
	struct fx *f = *state;
	struct tcp_probe_info r;
	char path[160], *text;
	struct stat st;

	snprintf(path, sizeof(path), "%s/kubepods/pod-a/late", f->root);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(stat(path, &st), 0);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, st.st_ino, 8);
	sleep(1); /* the walk at open is a second old: a rescan may run */
	assert_int_equal(ml_pipeline_record(&f->pl, &r, sizeof(r)), ML_PIPELINE_AGAIN);
	assert_int_equal(f->pl.records, 0);
	assert_true(f->pl.stalled);
	assert_true(ml_pipeline_unstall(&f->pl));
	assert_false(ml_pipeline_unstall(&f->pl)); /* once */
	assert_int_equal(ml_pipeline_record(&f->pl, &r, sizeof(r)), 0);
	assert_int_equal(f->pl.records, 1);
	text = log_text(f);
	/* named by its nearest named ancestor, pod-a */
	want_in(text, "\"sock_cookie\":8,\"cgroup\":\"kubepods/pod-a/late\","
		      "\"src_workload\":\"client\"");
	free(text);
	/* another new cgroup right after the walk: not waited for */
	snprintf(path, sizeof(path), "%s/kubepods/later", f->root);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(stat(path, &st), 0);
	r = rec(ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, st.st_ino, 9);
	assert_int_equal(ml_pipeline_record(&f->pl, &r, sizeof(r)), 0);
	assert_false(f->pl.stalled);
	text = log_text(f);
	want_in(text, "\"sock_cookie\":9,\"src_workload\":\"by-address\"");
	free(text);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_cgroup_names_own_end_address_the_other),
		T(test_inbound_end_and_unknown_cgroup),
		T(test_failed_before_syn_names_only_destination),
		T(test_only_closes_logged_bad_records_skipped),
		T(test_last_drop_reason_named_by_the_pipeline),
		T(test_new_cgroup_stalls_for_one_rescan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
