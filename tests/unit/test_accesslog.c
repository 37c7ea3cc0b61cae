// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of accesslog/: record -> JSON line, and the batching sinks.
 * Expected values come from independent references where one exists
 * (gmtime_r, inet_ntop, cJSON), never from the code under test.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <zlib.h>

#include "accesslog/accesslog.h"
#include "lib/names.h"


#define NS 1000000000ULL
#define BIG 4096
#define CANARY 0xa5

static const char *const state_names[] = {
	"UNKNOWN",    "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
	"FIN_WAIT2",  "TIME_WAIT",   "CLOSE",    "CLOSE_WAIT", "LAST_ACK",
	"LISTEN",     "CLOSING",     "NEW_SYN_RECV", "UNKNOWN",
};

static const char *const failure_names[] = {
	"unknown", "refused", "timeout", "reset", "unreachable", "aborted", "error", "unknown",
};

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void set_v4(uint8_t a[ML_ADDR_LEN], const char *text)
{
	memset(a, 0, ML_ADDR_LEN);
	a[10] = a[11] = 0xff;
	assert_int_equal(inet_pton(AF_INET, text, a + 12), 1);
}

static void set_v6(uint8_t a[ML_ADDR_LEN], const char *text)
{
	assert_int_equal(inet_pton(AF_INET6, text, a), 1);
}

/* Reference formatters: glibc, independent of the code under test. */
static void ref_time(uint64_t ns, char *out, size_t len)
{
	time_t secs = ns / NS;
	struct tm tm;

	assert_non_null(gmtime_r(&secs, &tm));
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned int)(ns % NS / 1000));
}

static void ref_addr(const uint8_t a[ML_ADDR_LEN], char *out, size_t len)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (!memcmp(a, mapped, 12))
		assert_non_null(inet_ntop(AF_INET, a + 12, out, len));
	else
		assert_non_null(inet_ntop(AF_INET6, a, out, len));
}

static const struct accesslog_clock clk2026 = {
	/* mono 1000 s is 2026-11-21T22:15:01Z */
	.mono_to_real_ns = (1795299301LL - 1000) * (int64_t)NS,
};

static struct tcp_probe_info outbound_v4(void)
{
	struct tcp_probe_info r = {
		.start_ns = 1000 * NS + 123456789,
		.close_ns = 1002 * NS + 623457789,
		.duration = 2500001000ULL,
		.sent_bytes = 1234,
		.received_bytes = 5678,
		.sock_cookie = 4242,
		.cgroup_id = 77,
		.srtt_us = 150,
		.rtt_min = 90,
		.mss_cache = 1448,
		.total_retrans = 3,
		.segs_in = 10,
		.segs_out = 12,
		.lost_out = 1,
		.src_port = 40000,
		.dst_port = 8080,
		.family = AF_INET,
		.type = ML_REC_CONN_CLOSE,
		.direction = ML_DIR_OUTBOUND,
		.state = 6,
		.protocol = 6,
		.conn_success = 1,
	};

	set_v4(r.src_addr, "10.0.0.1");
	set_v4(r.dst_addr, "10.0.0.2");
	return r;
}

struct want {
	const char *time, *start_time, *direction, *src_addr, *dst_addr, *family;
	const char *failure; /* NULL: the key must be absent */
	const char *state;
	const char *error;   /* NULL: the key must be absent */
};

static void want_str(const cJSON *o, const char *key, const char *val)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	assert_true(cJSON_IsString(item));
	assert_string_equal(item->valuestring, val);
}

static void want_num(const cJSON *o, const char *key, uint64_t val)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	/* values here stay below 2^53, where a double is exact */
	assert_true(val < (1ULL << 53));
	assert_true(cJSON_IsNumber(item));
	assert_true(item->valuedouble == (double)val);
}

/* Parse one line with cJSON and check every key, in order, and its value. */
static void check_line(const char *line, int n, const struct tcp_probe_info *r,
		       const struct want *w)
{
	const char *keys[] = {
		"time", "start_time", "duration_ns", "direction", "src_addr", "src_port",
		"dst_addr", "dst_port", "family", "success", "failure", "error", "sent_bytes",
		"received_bytes", "srtt_us", "min_rtt_us", "mss", "retransmits", "segs_in",
		"segs_out", "lost", "state", "sock_cookie", NULL,
	};
	const char *end = NULL;
	const cJSON *item;
	cJSON *o;
	int i = 0;

	assert_true(n > 2);
	assert_int_equal(strlen(line), n);
	assert_int_equal(line[n - 1], '\n');
	assert_null(memchr(line, '\n', n - 1));
	o = cJSON_ParseWithOpts(line, &end, 1);
	assert_non_null(o);
	assert_true(cJSON_IsObject(o));

	cJSON_ArrayForEach(item, o) {
		if (!w->failure && !strcmp(keys[i], "failure"))
			i++;
		if (!w->error && !strcmp(keys[i], "error"))
			i++;
		assert_non_null(keys[i]);
		assert_string_equal(item->string, keys[i]);
		i++;
	}
	assert_null(keys[i]);

	want_str(o, "time", w->time);
	want_str(o, "start_time", w->start_time);
	want_num(o, "duration_ns", r->duration);
	want_str(o, "direction", w->direction);
	want_str(o, "src_addr", w->src_addr);
	want_num(o, "src_port", r->src_port);
	want_str(o, "dst_addr", w->dst_addr);
	want_num(o, "dst_port", r->dst_port);
	want_str(o, "family", w->family);
	item = cJSON_GetObjectItemCaseSensitive(o, "success");
	assert_true(r->conn_success ? cJSON_IsTrue(item) : cJSON_IsFalse(item));
	if (w->failure)
		want_str(o, "failure", w->failure);
	if (w->error)
		want_str(o, "error", w->error);
	want_num(o, "sent_bytes", r->sent_bytes);
	want_num(o, "received_bytes", r->received_bytes);
	want_num(o, "srtt_us", r->srtt_us);
	want_num(o, "min_rtt_us", r->rtt_min);
	want_num(o, "mss", r->mss_cache);
	want_num(o, "retransmits", r->total_retrans);
	want_num(o, "segs_in", r->segs_in);
	want_num(o, "segs_out", r->segs_out);
	want_num(o, "lost", r->lost_out);
	want_str(o, "state", w->state);
	want_num(o, "sock_cookie", r->sock_cookie);
	cJSON_Delete(o);
}

/* ---- record -> line ---- */

static void test_outbound_v4(void **state)
{
	static const char expect[] =
		"{\"time\":\"2026-11-21T22:15:03.623457Z\","
		"\"start_time\":\"2026-11-21T22:15:01.123456Z\",\"duration_ns\":2500001000,"
		"\"direction\":\"outbound\",\"src_addr\":\"10.0.0.1\",\"src_port\":40000,"
		"\"dst_addr\":\"10.0.0.2\",\"dst_port\":8080,\"family\":\"ipv4\",\"success\":true,"
		"\"sent_bytes\":1234,\"received_bytes\":5678,\"srtt_us\":150,\"min_rtt_us\":90,"
		"\"mss\":1448,\"retransmits\":3,\"segs_in\":10,\"segs_out\":12,\"lost\":1,"
		"\"state\":\"TIME_WAIT\",\"sock_cookie\":4242}\n";
	struct tcp_probe_info r = outbound_v4();
	struct want w = {
		.time = "2026-11-21T22:15:03.623457Z",
		.start_time = "2026-11-21T22:15:01.123456Z",
		.direction = "outbound",
		.src_addr = "10.0.0.1",
		.dst_addr = "10.0.0.2",
		.family = "ipv4",
		.state = "TIME_WAIT",
	};
	char buf[BIG];
	int n;

	(void)state;
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	assert_int_equal(n, sizeof(expect) - 1);
	assert_string_equal(buf, expect);
	check_line(buf, n, &r, &w);
}

/* handshake_us: right after success, only where the kernel side measured it */
static void test_handshake_key(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	char buf[BIG];

	(void)state;
	assert_true(accesslog_format(&r, &clk2026, buf, sizeof(buf)) > 0);
	assert_null(strstr(buf, "handshake_us"));
	r.flags |= ML_F_HANDSHAKE;
	r.handshake_us = 4294967295u;
	assert_true(accesslog_format(&r, &clk2026, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"success\":true,\"handshake_us\":4294967295,\"sent_bytes\":1234,"));
	r.handshake_us = 0; /* a measurement of 0 us is still one */
	assert_true(accesslog_format(&r, &clk2026, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"success\":true,\"handshake_us\":0,\"sent_bytes\""));
}

/*
 * TCP health: after lost, only where the kernel side read a tcp_sock; the
 * RTO trio only where the kernel keeps it; ssthresh only once set.
 */
static void test_health_keys(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	char buf[BIG];

	(void)state;
	r.bytes_retrans = 2896;
	r.dsack_dups = 1;
	r.reord_seen = 2;
	r.rcv_ooopack = 3;
	r.delivered_ce = 4;
	r.snd_cwnd = 10;
	r.snd_ssthresh = ML_INFINITE_SSTHRESH;
	r.delivery_rate = 181000000;
	r.total_rto = 5;
	r.total_rto_recoveries = 6;
	r.total_rto_time = 1024;
	assert_true(accesslog_format(&r, &clk2026, buf, sizeof(buf)) > 0);
	assert_null(strstr(buf, "bytes_retrans"));
	r.flags = ML_F_HEALTH;
	assert_true(accesslog_format(&r, &clk2026, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"lost\":1,\"bytes_retrans\":2896,\"dsack_dups\":1,"
				    "\"reord_seen\":2,\"rcv_ooopack\":3,\"delivered_ce\":4,"
				    "\"snd_cwnd\":10,\"delivery_rate\":181000000,\"state\""));
	r.flags = ML_F_HEALTH | ML_F_RTO;
	r.snd_ssthresh = ML_INFINITE_SSTHRESH - 1;
	assert_true(accesslog_format(&r, &clk2026, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"snd_cwnd\":10,\"snd_ssthresh\":2147483646,"
				    "\"delivery_rate\":181000000,\"total_rto\":5,"
				    "\"total_rto_recoveries\":6,\"total_rto_time_ms\":1024,\"state\""));
}

/* An end's keys, rendered as the metadata load renders them. */
static struct accesslog_keys end_keys(char *buf, size_t len, bool dst, const char *workload,
				      const char *ns, const char *service)
{
	int n = accesslog_end_keys(dst, workload, ns, service, buf, len);

	assert_true(n >= 0);
	assert_int_equal(strlen(buf), n);
	return (struct accesslog_keys){ buf, (size_t)n };
}

/* the keys of an end and of a cgroup: exact text, escaped, NULL names left out */
static void test_end_keys(void **state)
{
	char buf[BIG];
	int n;

	(void)state;
	end_keys(buf, sizeof(buf), false, "web", "shop", "ignored");
	assert_string_equal(buf, ",\"src_workload\":\"web\",\"src_namespace\":\"shop\"");
	end_keys(buf, sizeof(buf), true, "db-0", NULL, "db");
	assert_string_equal(buf, ",\"dst_workload\":\"db-0\",\"dst_service\":\"db\"");
	end_keys(buf, sizeof(buf), true, "q\"\x01\xff", "n", NULL);
	assert_string_equal(buf, ",\"dst_workload\":\"q\\\"\\u0001\\ufffd\",\"dst_namespace\":\"n\"");
	end_keys(buf, sizeof(buf), false, NULL, NULL, NULL);
	assert_string_equal(buf, "");
	n = accesslog_cgroup_key("a/b\\c", buf, sizeof(buf));
	assert_string_equal(buf, ",\"cgroup\":\"a/b\\\\c\"");
	assert_int_equal(n, strlen(buf));
	/* too small: -1, never a cut key */
	assert_int_equal(accesslog_cgroup_key("a/b\\c", buf, (size_t)n), -1);
	assert_int_equal(accesslog_end_keys(false, "web", "shop", NULL, buf, 20), -1);
}

/* identity keys: appended after the fixed ones, escaped, absent when NULL */
static void test_identity_keys(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	char cg[BIG], src[BIG], dst[BIG];
	struct accesslog_identity id = {
		.src = end_keys(src, sizeof(src), false, "a\\b\n", NULL, NULL),
		.dst = end_keys(dst, sizeof(dst), true, "productpage-v1", "bookinfo", "productpage"),
	};
	char plain[BIG], buf[BIG];
	int n, m;
	cJSON *o;

	(void)state;
	n = accesslog_cgroup_key("kubepods.slice/pod\"1\"", cg, sizeof(cg));
	assert_true(n > 0);
	id.cgroup = (struct accesslog_keys){ cg, (size_t)n };
	n = accesslog_format(&r, &clk2026, plain, sizeof(plain));
	assert_int_equal(accesslog_format_id(&r, &clk2026, NULL, buf, sizeof(buf)), n);
	assert_string_equal(buf, plain);
	m = accesslog_format_id(&r, &clk2026, &id, buf, sizeof(buf));
	assert_true(m > n);
	assert_memory_equal(buf, plain, (size_t)n - 2); /* all but "}\n" */
	assert_string_equal(buf + n - 2,
			    ",\"cgroup\":\"kubepods.slice/pod\\\"1\\\"\","
			    "\"src_workload\":\"a\\\\b\\u000a\","
			    "\"dst_workload\":\"productpage-v1\",\"dst_namespace\":\"bookinfo\","
			    "\"dst_service\":\"productpage\"}\n");
	o = cJSON_ParseWithLength(buf, (size_t)m);
	assert_non_null(o);
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "src_namespace"));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "src_workload")->valuestring,
			    "a\\b\n");
	cJSON_Delete(o);
	/* too small: -1, never a cut line */
	assert_int_equal(accesslog_format_id(&r, &clk2026, &id, buf, (size_t)m), -1);
}

static void test_inbound_v6(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	struct want w = {
		.time = "2026-11-21T22:15:03.623457Z",
		.start_time = "2026-11-21T22:15:01.123456Z",
		.direction = "inbound",
		.src_addr = "fd00::7",
		.dst_addr = "2001:db8::1:0:0:1",
		.family = "ipv6",
		.state = "CLOSE_WAIT",
	};
	char buf[BIG];
	int n;

	(void)state;
	r.family = AF_INET6;
	r.direction = ML_DIR_INBOUND;
	r.state = 8;
	set_v6(r.src_addr, "fd00:0:0:0:0:0:0:7");
	set_v6(r.dst_addr, "2001:DB8:0:0:1:0:0:1");
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	check_line(buf, n, &r, &w);
}

static void test_v4mapped_on_inet6_socket(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	struct want w = {
		.time = "2026-11-21T22:15:03.623457Z",
		.start_time = "2026-11-21T22:15:01.123456Z",
		.direction = "outbound",
		.src_addr = "192.0.2.10",
		.dst_addr = "198.51.100.255",
		.family = "ipv4",
		.state = "TIME_WAIT",
	};
	char buf[BIG];
	int n;

	(void)state;
	r.family = AF_INET6;
	set_v6(r.src_addr, "::ffff:192.0.2.10");
	set_v6(r.dst_addr, "::ffff:198.51.100.255");
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	check_line(buf, n, &r, &w);
	assert_string_equal(accesslog_family_name(&r), "ipv4");

	/* a failed connect may not have a client address yet */
	memset(r.src_addr, 0, ML_ADDR_LEN);
	assert_string_equal(accesslog_family_name(&r), "ipv4");
	set_v6(r.dst_addr, "::1");
	assert_string_equal(accesslog_family_name(&r), "ipv6");
	r.family = AF_INET;
	assert_string_equal(accesslog_family_name(&r), "ipv4");
}

static void test_failed_record(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	struct want w = {
		.time = "2026-11-21T22:15:03.623457Z",
		.start_time = "2026-11-21T22:15:01.123456Z",
		.direction = "outbound",
		.src_addr = "10.0.0.1",
		.dst_addr = "10.0.0.2",
		.family = "ipv4",
		.state = "SYN_SENT",
	};
	char buf[BIG];
	unsigned int f;
	int n;

	(void)state;
	r.type = ML_REC_CONN_FAILED;
	r.conn_success = 0;
	r.state = 2;
	r.sent_bytes = r.received_bytes = 0;
	for (f = 0; f < 8; f++) {
		r.failure = f;
		w.failure = failure_names[f];
		n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
		check_line(buf, n, &r, &w);
	}
	r.failure = ML_FAIL_REFUSED;
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	assert_non_null(strstr(buf,
			       ",\"success\":false,\"failure\":\"refused\",\"sent_bytes\":0,"));
	/* the errno, by its name, where the kernel gave one */
	r.sk_err = 111;
	w.failure = "refused";
	w.error = "ECONNREFUSED";
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	check_line(buf, n, &r, &w);
	assert_non_null(strstr(buf, ",\"failure\":\"refused\",\"error\":\"ECONNREFUSED\","));
	r.sk_err = 101;
	r.failure = ML_FAIL_UNREACHABLE;
	w.failure = "unreachable";
	w.error = "ENETUNREACH";
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	check_line(buf, n, &r, &w);
	/* success: no error key either, whatever sk_err holds */
	w.error = NULL;
	r.failure = ML_FAIL_REFUSED;

	/* success: no failure key, whatever the field holds */
	r.conn_success = 1;
	w.failure = NULL;
	w.state = "SYN_SENT";
	n = accesslog_format(&r, &clk2026, buf, sizeof(buf));
	check_line(buf, n, &r, &w);
	assert_null(strstr(buf, "failure"));
}

static void test_names(void **state)
{
	struct tcp_probe_info r = outbound_v4();
	char buf[BIG];
	unsigned int i;

	(void)state;
	for (i = 0; i < 14; i++)
		assert_string_equal(ml_tcp_state_name(i), state_names[i]);
	assert_string_equal(ml_tcp_state_name(255), "UNKNOWN");
	assert_string_equal(ml_tcp_state_name(~0u), "UNKNOWN");
	for (i = 0; i < 8; i++)
		assert_string_equal(accesslog_failure_name(i), failure_names[i]);
	assert_string_equal(accesslog_failure_name(~0u), "unknown");

	r.state = 12;
	accesslog_format(&r, &clk2026, buf, sizeof(buf));
	assert_non_null(strstr(buf, ",\"state\":\"NEW_SYN_RECV\","));
	r.state = 0;
	r.direction = 0;
	accesslog_format(&r, &clk2026, buf, sizeof(buf));
	assert_non_null(strstr(buf, ",\"state\":\"UNKNOWN\","));
	assert_non_null(strstr(buf, ",\"direction\":\"unknown\","));
}

/* The longest record there is: every number at its maximum. */
static struct tcp_probe_info widest(void)
{
	struct tcp_probe_info r;

	memset(&r, 0xff, sizeof(r));
	r.family = AF_INET6;
	r.direction = ML_DIR_OUTBOUND;
	r.state = 12;
	r.conn_success = 0;
	r.failure = ML_FAIL_UNREACHABLE;
	return r;
}

static void test_number_limits(void **state)
{
	static const struct accesslog_clock zero = { 0 };
	static const struct accesslog_clock neg = { -10 }, pos = { 10 };
	struct tcp_probe_info r = widest();
	char buf[BIG];
	int n;

	(void)state;
	n = accesslog_format(&r, &zero, buf, sizeof(buf));
	assert_true(n > 0 && n < ACCESSLOG_LINE_MAX);
	assert_string_equal(buf,
		"{\"time\":\"2554-07-21T23:34:33.709551Z\","
		"\"start_time\":\"2554-07-21T23:34:33.709551Z\","
		"\"duration_ns\":18446744073709551615,\"direction\":\"outbound\","
		"\"src_addr\":\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\",\"src_port\":65535,"
		"\"dst_addr\":\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\",\"dst_port\":65535,"
		"\"family\":\"ipv6\",\"success\":false,\"failure\":\"unreachable\","
		"\"handshake_us\":4294967295,\"sent_bytes\":18446744073709551615,\"received_bytes\":18446744073709551615,"
		"\"srtt_us\":4294967295,\"min_rtt_us\":4294967295,\"mss\":4294967295,"
		"\"retransmits\":4294967295,\"segs_in\":4294967295,\"segs_out\":4294967295,"
		"\"lost\":4294967295,\"bytes_retrans\":18446744073709551615,"
		"\"dsack_dups\":4294967295,\"reord_seen\":4294967295,\"rcv_ooopack\":4294967295,"
		"\"delivered_ce\":4294967295,\"snd_cwnd\":4294967295,"
		"\"delivery_rate\":18446744073709551615,\"total_rto\":65535,"
		"\"total_rto_recoveries\":65535,\"total_rto_time_ms\":4294967295,"
		"\"state\":\"NEW_SYN_RECV\","
		"\"sock_cookie\":18446744073709551615,\"drops\":4294967295,"
		"\"last_drop_reason\":\"UNKNOWN\"}\n");
	cJSON_Delete(cJSON_Parse(buf)); /* parses at all */

	memset(&r, 0, sizeof(r));
	n = accesslog_format(&r, &zero, buf, sizeof(buf));
	assert_true(n > 0);
	assert_string_equal(buf,
		"{\"time\":\"1970-01-01T00:00:00.000000Z\","
		"\"start_time\":\"1970-01-01T00:00:00.000000Z\",\"duration_ns\":0,"
		"\"direction\":\"unknown\",\"src_addr\":\"::\",\"src_port\":0,"
		"\"dst_addr\":\"::\",\"dst_port\":0,\"family\":\"ipv6\",\"success\":false,"
		"\"failure\":\"unknown\",\"sent_bytes\":0,\"received_bytes\":0,\"srtt_us\":0,"
		"\"min_rtt_us\":0,\"mss\":0,\"retransmits\":0,\"segs_in\":0,\"segs_out\":0,"
		"\"lost\":0,\"state\":\"UNKNOWN\",\"sock_cookie\":0}\n");

	/* the clock offset clamps instead of wrapping around */
	r.close_ns = 5;
	r.start_ns = UINT64_MAX - 5;
	accesslog_format(&r, &neg, buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"time\":\"1970-01-01T00:00:00.000000Z\","));
	accesslog_format(&r, &pos, buf, sizeof(buf));
	assert_non_null(strstr(buf, ",\"start_time\":\"2554-07-21T23:34:33.709551Z\","));
}

/* ---- time ---- */

static void test_time_vectors(void **state)
{
	static const struct {
		uint64_t ns;
		const char *text;
	} v[] = {
		{ 0, "1970-01-01T00:00:00.000000Z" },
		{ 999, "1970-01-01T00:00:00.000000Z" },
		{ 1999, "1970-01-01T00:00:00.000001Z" },
		{ 999999999, "1970-01-01T00:00:00.999999Z" },
		{ 86399 * NS + 999999999, "1970-01-01T23:59:59.999999Z" },
		{ 94694399 * NS, "1972-12-31T23:59:59.000000Z" },
		{ 951782400 * NS, "2000-02-29T00:00:00.000000Z" },
		{ 1709210096 * NS + 789012999, "2024-02-29T12:34:56.789012Z" },
		{ 1709251200 * NS, "2024-03-01T00:00:00.000000Z" },
		{ 1735689599 * NS + 500000, "2024-12-31T23:59:59.000500Z" },
		{ 1795299301 * NS + 123456000, "2026-11-21T22:15:01.123456Z" },
		{ (4107542400 - 86400) * NS, "2100-02-28T00:00:00.000000Z" },
		{ 4107542400 * NS, "2100-03-01T00:00:00.000000Z" },
		{ UINT64_MAX, "2554-07-21T23:34:33.709551Z" },
	};
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(accesslog_format_time(v[i].ns, buf, sizeof(buf)), 27);
		assert_string_equal(buf, v[i].text);
	}
}

static void test_time_matches_gmtime(void **state)
{
	char buf[64], ref[64];
	uint64_t ns, day;
	int i;

	(void)state;
	/* every day up to the end of u64, at a time of day that moves */
	for (day = 0; day * 86400 * NS < UINT64_MAX - 86400 * NS; day++) {
		ns = (day * 86400 + day % 86400) * NS + day * 7919 % NS;
		ref_time(ns, ref, sizeof(ref));
		assert_int_equal(accesslog_format_time(ns, buf, sizeof(buf)), 27);
		assert_string_equal(buf, ref);
	}
	for (i = 0; i < 100000; i++) {
		ns = rnd();
		ref_time(ns, ref, sizeof(ref));
		accesslog_format_time(ns, buf, sizeof(buf));
		assert_string_equal(buf, ref);
	}
}

static void test_clock_sync(void **state)
{
	struct accesslog_clock clk = { .mono_to_real_ns = 0x5a5a5a5a5a5a5a5a };
	struct timespec m0, real, m1;
	int64_t mono, diff;

	(void)state;
	accesslog_clock_sync(&clk);
	clock_gettime(CLOCK_MONOTONIC, &m0);
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &m1);
	mono = (m0.tv_sec + m1.tv_sec) * (int64_t)NS / 2 + (m0.tv_nsec + m1.tv_nsec) / 2;
	diff = real.tv_sec * (int64_t)NS + real.tv_nsec - (mono + clk.mono_to_real_ns);
	assert_true(diff > -1000000 && diff < 1000000);
}

/* ---- addresses ---- */

static void test_addr_vectors(void **state)
{
	static const struct {
		const char *in, *out;
	} v6[] = {
		{ "::", "::" },
		{ "::1", "::1" },
		{ "1::", "1::" },
		{ "2001:db8:0:0:0:0:0:1", "2001:db8::1" },
		{ "2001:0db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
		{ "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },
		{ "2001:0:0:1:0:0:0:1", "2001:0:0:1::1" },
		{ "1:0:0:2:0:0:3:4", "1::2:0:0:3:4" },
		{ "0:0:1:0:0:0:0:0", "0:0:1::" },
		{ "2001:DB8::ABCD:12", "2001:db8::abcd:12" },
		{ "fe80::1:2", "fe80::1:2" },
		{ "::1.2.3.4", "::102:304" },
		{ "::ffff:0:1.2.3.4", "::ffff:0:102:304" },
		{ "FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	};
	static const char *const v4[] = { "0.0.0.0", "127.0.0.1", "192.0.2.1", "255.255.255.255" };
	uint8_t a[ML_ADDR_LEN];
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		set_v6(a, v6[i].in);
		assert_int_equal(ml_format_addr(a, buf, sizeof(buf)), strlen(v6[i].out));
		assert_string_equal(buf, v6[i].out);
	}
	for (i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		set_v4(a, v4[i]);
		assert_int_equal(ml_format_addr(a, buf, sizeof(buf)), strlen(v4[i]));
		assert_string_equal(buf, v4[i]);
	}
}

static void test_addr_matches_inet_ntop(void **state)
{
	uint8_t a[ML_ADDR_LEN];
	char buf[64], ref[64];
	uint64_t bits;
	int i, g;

	(void)state;
	for (i = 0; i < 200000; i++) {
		/* groups zero half of the time, to exercise every "::" choice */
		bits = rnd();
		for (g = 0; g < 8; g++) {
			a[2 * g] = bits & (1 << g) ? rnd() : 0;
			a[2 * g + 1] = bits & (1 << g) ? rnd() : 0;
		}
		/* glibc prints ::/96 as ::a.b.c.d, RFC 5952 only ::ffff:a.b.c.d */
		if (!memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0", 12))
			continue;
		ref_addr(a, ref, sizeof(ref));
		ml_format_addr(a, buf, sizeof(buf));
		assert_string_equal(buf, ref);
	}
}

/* The hand-written dotted quad: every octet value in every position. */
static void test_ipv4_every_octet(void **state)
{
	uint8_t a[ML_ADDR_LEN] = { [10] = 0xff, [11] = 0xff, 10, 20, 30, 40 };
	char buf[64], ref[INET_ADDRSTRLEN];

	(void)state;
	for (int pos = 12; pos < 16; pos++) {
		for (int v = 0; v < 256; v++) {
			a[pos] = (uint8_t)v;
			assert_non_null(inet_ntop(AF_INET, a + 12, ref, sizeof(ref)));
			assert_int_equal(ml_format_addr(a, buf, sizeof(buf)), strlen(ref));
			assert_string_equal(buf, ref);
		}
	}
	/* too small a buffer for "255.255.255.255": -1 */
	memset(a + 12, 255, 4);
	assert_int_equal(ml_format_addr(a, buf, 15), -1);
	assert_int_equal(ml_format_addr(a, buf, 16), 15);
}

/* ---- escaper ---- */

static void want_escaped(const char *in, size_t n, const char *out)
{
	char buf[256];

	assert_int_equal(accesslog_json_string(in, n, buf, sizeof(buf)), strlen(out));
	assert_string_equal(buf, out);
}

static void test_escape(void **state)
{
	static const char *const utf8[] = {
		"caf\xc3\xa9",			/* é */
		"\xe6\x97\xa5\xe6\x9c\xac",	/* 日本 */
		"\xf0\x9f\x98\x80",		/* U+1F600 */
		/* U+0800 U+D7FF U+E000 U+FFFF */
		"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf",
		"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", /* U+10000 U+10FFFF */
		"productpage-v1 \x7f~",
	};
	static const char nasty[] = "x\"y\\z\n\x01\x1f caf\xc3\xa9 \xf0\x9f\x98\x80";
	char buf[256];
	size_t i;
	cJSON *o;

	(void)state;
	want_escaped("", 0, "\"\"");
	want_escaped("a\"b", 3, "\"a\\\"b\"");
	want_escaped("a\\b", 3, "\"a\\\\b\"");
	want_escaped("a\nb\r\t", 5, "\"a\\u000ab\\u000d\\u0009\"");
	want_escaped("\x01\x1f", 2, "\"\\u0001\\u001f\"");
	want_escaped("a\0b", 3, "\"a\\u0000b\"");
	for (i = 0; i < sizeof(utf8) / sizeof(utf8[0]); i++) {
		snprintf(buf, sizeof(buf), "\"%s\"", utf8[i]);
		want_escaped(utf8[i], strlen(utf8[i]), buf);
	}
	/* not UTF-8: each offending byte becomes U+FFFD */
	want_escaped("\xff", 1, "\"\\ufffd\"");
	want_escaped("\xc0\x80", 2, "\"\\ufffd\\ufffd\"");		/* overlong NUL */
	want_escaped("\xe0\x9f\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");	/* overlong */
	want_escaped("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");	/* surrogate */
	want_escaped("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	want_escaped("\xf0\x8f\xbf\xbf", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong */
	want_escaped("\xf5\x80\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	want_escaped("a\xe6\x97", 3, "\"a\\ufffd\\ufffd\"");	/* cut short at the end */
	want_escaped("\xc3\xa9", 1, "\"\\ufffd\"");		/* n ends inside a sequence */
	want_escaped("\xe6\x97z\xc3\xa9", 5, "\"\\ufffd\\ufffdz\xc3\xa9\"");

	/* cJSON reads back exactly what went in */
	assert_true(accesslog_json_string(nasty, strlen(nasty), buf, sizeof(buf)) > 0);
	o = cJSON_Parse(buf);
	assert_true(cJSON_IsString(o));
	assert_string_equal(o->valuestring, nasty);
	cJSON_Delete(o);
}

/* ---- buffers too small ---- */

typedef int (*fmt_fn)(const void *arg, char *buf, size_t len);

static int fmt_record(const void *arg, char *buf, size_t len)
{
	return accesslog_format(arg, &clk2026, buf, len);
}

static int fmt_time(const void *arg, char *buf, size_t len)
{
	return accesslog_format_time(*(const uint64_t *)arg, buf, len);
}

static int fmt_addr(const void *arg, char *buf, size_t len)
{
	return ml_format_addr(arg, buf, len);
}

static int fmt_escape(const void *arg, char *buf, size_t len)
{
	return accesslog_json_string(arg, strlen(arg), buf, len);
}

/*
 * At every length short of the text plus its NUL: -1 and nothing written at
 * or past len. With room: the same text as with a big buffer.
 */
static void check_every_length(fmt_fn fn, const void *arg)
{
	char full[BIG], buf[BIG + 64];
	size_t len, i;
	int n, ret;

	n = fn(arg, full, sizeof(full));
	assert_true(n > 0);
	for (len = 0; len <= (size_t)n + 1; len++) {
		memset(buf, CANARY, sizeof(buf));
		ret = fn(arg, buf, len);
		if (len <= (size_t)n) {
			assert_int_equal(ret, -1);
		} else {
			assert_int_equal(ret, n);
			assert_memory_equal(buf, full, n + 1);
		}
		for (i = len; i < sizeof(buf); i++)
			assert_int_equal((unsigned char)buf[i], CANARY);
	}
}

static void test_too_small_every_length(void **state)
{
	struct tcp_probe_info v4 = outbound_v4(), wide = widest();
	uint64_t t = 1709210096 * NS;
	uint8_t a[ML_ADDR_LEN];

	(void)state;
	check_every_length(fmt_record, &v4);
	check_every_length(fmt_record, &wide);
	check_every_length(fmt_time, &t);
	set_v6(a, "2001:db8::abcd:12");
	check_every_length(fmt_addr, a);
	set_v4(a, "192.0.2.1");
	check_every_length(fmt_addr, a);
	check_every_length(fmt_escape, "a\"\\\n\x01 caf\xc3\xa9 \xff!");
}

/* ---- random records read back ---- */

static void test_roundtrip_random(void **state)
{
	static const struct accesslog_clock clk = { .mono_to_real_ns = 1763000000123456789LL };
	char buf[BIG], t[64], st[64], src[64], dst[64];
	const char *family;
	struct tcp_probe_info r;
	struct want w;
	int i, kind, n;

	(void)state;
	for (i = 0; i < 20000; i++) {
		memset(&r, 0, sizeof(r));
		r.start_ns = rnd() >> 20;
		r.close_ns = r.start_ns + (rnd() >> 24);
		r.duration = r.close_ns - r.start_ns;
		r.sent_bytes = rnd() >> 11;
		r.received_bytes = rnd() >> 11;
		r.sock_cookie = rnd() >> 11;
		r.srtt_us = rnd();
		r.rtt_min = rnd();
		r.mss_cache = rnd();
		r.total_retrans = rnd();
		r.segs_in = rnd();
		r.segs_out = rnd();
		r.lost_out = rnd();
		r.src_port = rnd();
		r.dst_port = rnd();
		r.direction = 1 + rnd() % 2;
		r.state = rnd() % 14;
		r.conn_success = rnd() % 2;
		r.failure = rnd() % 8;
		kind = rnd() % 3;
		for (n = 0; n < ML_ADDR_LEN; n++) {
			r.src_addr[n] = rnd();
			r.dst_addr[n] = rnd();
		}
		if (kind == 2) {
			r.family = AF_INET6;
			r.src_addr[0] = r.dst_addr[0] = 0x20; /* never ::/96 */
			family = "ipv6";
		} else {
			r.family = kind ? AF_INET6 : AF_INET;
			memset(r.src_addr, 0, 10);
			memset(r.dst_addr, 0, 10);
			r.src_addr[10] = r.src_addr[11] = r.dst_addr[10] = r.dst_addr[11] = 0xff;
			family = "ipv4";
		}
		ref_time(r.close_ns + clk.mono_to_real_ns, t, sizeof(t));
		ref_time(r.start_ns + clk.mono_to_real_ns, st, sizeof(st));
		ref_addr(r.src_addr, src, sizeof(src));
		ref_addr(r.dst_addr, dst, sizeof(dst));
		w = (struct want){
			.time = t,
			.start_time = st,
			.direction = r.direction == ML_DIR_OUTBOUND ? "outbound" : "inbound",
			.src_addr = src,
			.dst_addr = dst,
			.family = family,
			.failure = r.conn_success ? NULL : failure_names[r.failure],
			.state = state_names[r.state],
		};
		n = accesslog_format(&r, &clk, buf, sizeof(buf));
		check_line(buf, n, &r, &w);
	}
}

/* ---- sinks ---- */

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
	(void)state;
	umask(022);
	strcpy(tmpdir, "/tmp/test_accesslog.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown_tmpdir(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmp_path(const char *name)
{
	static char paths[4][128];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
	return p;
}

/* Whole file, NUL-terminated; "" when it does not exist. */
static char *slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t got;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	do {
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		got = fd < 0 ? 0 : read(fd, buf + n, cap - n - 1);
		assert_true(got >= 0);
		n += got;
	} while (got > 0);
	if (fd >= 0)
		close(fd);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static void want_file(const char *path, const char *content)
{
	char *got = slurp(path, NULL);

	assert_string_equal(got, content);
	free(got);
}

/* Line number i: exactly 100 bytes, '\n' included, no NUL. */
static void numbered_line(char line[100], int i)
{
	char tmp[128];

	snprintf(tmp, sizeof(tmp), "{\"n\":%06d,\"pad\":\"%0*d\"}\n", i, 100 - 22, 0);
	assert_int_equal(strlen(tmp), 100);
	memcpy(line, tmp, 100);
}

static void test_sink_file_append(void **state)
{
	const char *path = tmp_path("access.log");
	struct tcp_probe_info r = outbound_v4();
	char lines[4][BIG], all[4 * BIG] = "";
	struct accesslog_sink *s;
	struct stat st;
	int i, n;

	(void)state;
	for (i = 0; i < 4; i++) {
		r.sock_cookie = i;
		n = accesslog_format(&r, &clk2026, lines[i], sizeof(lines[i]));
		assert_true(n > 0);
	}

	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	for (i = 0; i < 3; i++) {
		assert_int_equal(accesslog_append(s, lines[i], strlen(lines[i])), 0);
		strcat(all, lines[i]);
	}
	want_file(path, ""); /* batched until flushed */
	assert_int_equal(accesslog_flush(s), 0);
	want_file(path, all);
	assert_int_equal(accesslog_flush(s), 0); /* nothing twice */
	want_file(path, all);
	assert_int_equal(accesslog_lost_lines(s), 0);
	accesslog_close(s);

	/* appended to what is there; close flushes */
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_append(s, lines[3], strlen(lines[3])), 0);
	accesslog_close(s);
	strcat(all, lines[3]);
	want_file(path, all);
}

static void test_sink_flushes_when_batch_full(void **state)
{
	const char *path = tmp_path("big.log");
	struct accesslog_sink *s;
	char line[100], *got;
	size_t len;
	int i;

	(void)state;
	s = accesslog_open(path);
	assert_non_null(s);
	for (i = 0; i < 3000; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
	}
	/* some batches went out on their own, in whole lines */
	got = slurp(path, &len);
	assert_true(len > 0 && len < 300000);
	assert_int_equal(len % 100, 0);
	free(got);

	assert_int_equal(accesslog_flush(s), 0);
	got = slurp(path, &len);
	assert_int_equal(len, 300000);
	for (i = 0; i < 3000; i++) {
		numbered_line(line, i);
		assert_memory_equal(got + i * 100, line, 100);
	}
	free(got);
	assert_int_equal(accesslog_lost_lines(s), 0);
	accesslog_close(s);
}

static void test_sink_rejects_bad_lines(void **state)
{
	const char *path = tmp_path("bad.log");
	char huge[ACCESSLOG_LINE_MAX + 2];
	struct accesslog_sink *s;

	(void)state;
	s = accesslog_open(path);
	assert_non_null(s);
	/* ACCESSLOG_LINE_MAX + 1 bytes of line, then a NUL */
	memset(huge, 'x', sizeof(huge));
	huge[ACCESSLOG_LINE_MAX] = '\n';
	huge[ACCESSLOG_LINE_MAX + 1] = '\0';
	assert_int_equal(accesslog_append(s, "", 0), -EINVAL);
	assert_int_equal(accesslog_append(s, "no newline", 10), -EINVAL);
	assert_int_equal(accesslog_append(s, huge, ACCESSLOG_LINE_MAX + 1), -EINVAL);
	want_file(path, "");
	assert_int_equal(accesslog_append(s, huge + 1, ACCESSLOG_LINE_MAX), 0);
	assert_int_equal(accesslog_flush(s), 0);
	want_file(path, huge + 1);
	assert_int_equal(accesslog_lost_lines(s), 0);
	accesslog_close(s);

	/* missing parents are made; a file where a directory must be is not one */
	s = accesslog_open(tmp_path("new/dir/log"));
	assert_non_null(s);
	accesslog_close(s);
	want_file(tmp_path("new/dir/log"), "");
	errno = 0;
	assert_null(accesslog_open(tmp_path("new/dir/log/x")));
	assert_int_equal(errno, ENOTDIR);
}

static void test_sink_reopen_after_rename(void **state)
{
	const char *path = tmp_path("r.log"), *rotated = tmp_path("r.log.1");
	struct accesslog_sink *s, *out;

	(void)state;
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_append(s, "a\n", 2), 0);
	assert_int_equal(accesslog_flush(s), 0);
	assert_int_equal(rename(path, rotated), 0);
	/* logged before the rotation: goes to the old file */
	assert_int_equal(accesslog_append(s, "b\n", 2), 0);
	assert_int_equal(accesslog_reopen(s), 0);
	assert_int_equal(accesslog_append(s, "c\n", 2), 0);
	assert_int_equal(accesslog_flush(s), 0);
	want_file(rotated, "a\nb\n");
	want_file(path, "c\n");
	assert_int_equal(accesslog_lost_lines(s), 0);
	accesslog_close(s);

	out = accesslog_open("-");
	assert_non_null(out);
	assert_int_equal(accesslog_reopen(out), 0);
	accesslog_close(out);
}

/*
 * A reopen that fails sends nothing more to the old file (no longer the
 * log): lines are counted lost until a reopen works; missing parent
 * directories are made again.
 */
static void test_sink_reopen_fails_counts_lost(void **state)
{
	char dir[128], moved[128], path[160], old[160];
	struct accesslog_sink *s;
	int fd;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/sub", tmpdir);
	snprintf(moved, sizeof(moved), "%s/sub.old", tmpdir);
	snprintf(path, sizeof(path), "%s/log", dir);
	snprintf(old, sizeof(old), "%s/log", moved);
	assert_int_equal(mkdir(dir, 0755), 0);
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_append(s, "a\n", 2), 0);
	assert_int_equal(rename(dir, moved), 0);
	/* a file where the directory was: not even mkdir helps */
	fd = open(dir, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(accesslog_reopen(s), -ENOTDIR);
	assert_int_equal(accesslog_append(s, "b\n", 2), 0);
	assert_int_equal(accesslog_append(s, "c\n", 2), 0);
	assert_int_equal(accesslog_flush(s), -ENOTDIR);
	assert_int_equal(accesslog_lost_lines(s), 2);
	want_file(old, "a\n");
	/* the way is clear again: the directory is made, the file opened */
	assert_int_equal(unlink(dir), 0);
	assert_int_equal(accesslog_reopen(s), 0);
	assert_int_equal(accesslog_append(s, "d\n", 2), 0);
	assert_int_equal(accesslog_flush(s), 0);
	want_file(path, "d\n");
	want_file(old, "a\n");
	assert_int_equal(accesslog_lost_lines(s), 2);
	accesslog_close(s);
}

/*
 * A file size limit cuts a write in the middle of a line, as a full disk
 * does. The rest of that line is kept for the same file; after a rotation
 * it is dropped and counted rather than starting the new file.
 */
static void test_sink_torn_line_not_carried_to_new_file(void **state)
{
	const char *path = tmp_path("t.log"), *rotated = tmp_path("t.log.1");
	int flush1, reopen, flush2, i;
	struct rlimit old, lim;
	uint64_t lost1, lost2;
	struct accesslog_sink *s;
	char line[100], want[300];
	sighandler_t sig;

	(void)state;
	s = accesslog_open(path);
	assert_non_null(s);
	for (i = 0; i < 3; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
		memcpy(want + i * 100, line, 100);
	}
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 250;
	sig = signal(SIGXFSZ, SIG_IGN);
	/* no assertion while the limit holds: cmocka's output may be a file */
	setrlimit(RLIMIT_FSIZE, &lim);
	flush1 = accesslog_flush(s);
	lost1 = accesslog_lost_lines(s);
	rename(path, rotated);
	reopen = accesslog_reopen(s);
	numbered_line(line, 3);
	accesslog_append(s, line, 100);
	flush2 = accesslog_flush(s);
	lost2 = accesslog_lost_lines(s);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, sig);

	assert_int_equal(flush1, -EFBIG);
	assert_int_equal(lost1, 0);
	assert_int_equal(reopen, 0);
	assert_int_equal(flush2, 0);
	assert_int_equal(lost2, 1);
	want[250] = '\0';
	want_file(rotated, want);
	memcpy(want, line, 100);
	want[100] = '\0';
	want_file(path, want);
	accesslog_close(s);
}

struct fifo_reader {
	int fd;
	size_t want, got;
	char buf[200000];
};

static volatile sig_atomic_t alarmed;

static void on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

/* Drains the FIFO only after the signal hit the blocked write(2). */
static void *drain_after_alarm(void *arg)
{
	struct fifo_reader *rd = arg;
	struct pollfd pfd = { .fd = rd->fd, .events = POLLIN };
	ssize_t n;
	int i;

	for (i = 0; !alarmed && i < 2000; i++)
		usleep(1000);
	while (rd->got < rd->want && poll(&pfd, 1, 2000) > 0) {
		n = read(rd->fd, rd->buf + rd->got, rd->want - rd->got);
		if (n <= 0)
			break;
		rd->got += n;
	}
	return NULL;
}

/* A signal that interrupts a blocked write(2) neither loses nor repeats lines. */
static void test_sink_write_retried_after_eintr(void **state)
{
	const char *path = tmp_path("fifo");
	struct sigaction sa = { .sa_handler = on_alarm }, old_sa;
	struct itimerval it = { .it_value.tv_usec = 20000 };
	struct fifo_reader *rd;
	struct accesslog_sink *s;
	sigset_t alrm;
	pthread_t tid;
	char line[100];
	size_t prefill = 0;
	int wfd, i;

	(void)state;
	rd = calloc(1, sizeof(*rd));
	assert_non_null(rd);
	assert_int_equal(mkfifo(path, 0600), 0);
	rd->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(rd->fd >= 0);
	s = accesslog_open(path);
	assert_non_null(s);
	/* fill the pipe so that the sink's blocking write(2) has to wait */
	wfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(wfd >= 0);
	memset(line, '.', sizeof(line));
	while (write(wfd, line, sizeof(line)) == sizeof(line)) /* atomic: < PIPE_BUF */
		prefill += sizeof(line);
	close(wfd);
	for (i = 0; i < 10; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
	}
	rd->want = prefill + 1000;

	alarmed = 0;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0); /* no SA_RESTART */
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	assert_int_equal(pthread_create(&tid, NULL, drain_after_alarm, rd), 0);
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_int_equal(accesslog_flush(s), 0);
	pthread_join(tid, NULL);
	sigaction(SIGALRM, &old_sa, NULL);

	assert_true(alarmed);
	assert_int_equal(accesslog_lost_lines(s), 0);
	assert_int_equal(rd->got, rd->want);
	for (i = 0; i < 10; i++) {
		numbered_line(line, i);
		assert_memory_equal(rd->buf + rd->want - 1000 + i * 100, line, 100);
	}
	accesslog_close(s);
	close(rd->fd);
	free(rd);
}

static void test_sink_lost_lines_dev_full(void **state)
{
	struct accesslog_sink *s;
	char line[100];
	int i;

	(void)state;
	s = accesslog_open("/dev/full");
	assert_non_null(s);
	for (i = 0; i < 3; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
	}
	assert_int_equal(accesslog_lost_lines(s), 0);
	assert_int_equal(accesslog_flush(s), -ENOSPC);
	assert_int_equal(accesslog_lost_lines(s), 3);
	assert_int_equal(accesslog_flush(s), 0); /* dropped, not retried */
	assert_int_equal(accesslog_lost_lines(s), 3);

	/* implicit flushes count too, and the appends still succeed */
	for (i = 0; i < 3000; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
	}
	assert_true(accesslog_lost_lines(s) > 3);
	assert_int_equal(accesslog_flush(s), -ENOSPC);
	assert_int_equal(accesslog_lost_lines(s), 3003);
	accesslog_close(s);
}

/*
 * stdout as a non-blocking pipe smaller than the batch: the write stops in
 * the middle of a line. The lines after it are lost and counted; the rest
 * of the torn one is written first next time, so the reader sees only
 * whole lines. Also: closing a "-" sink leaves fd 1 open.
 */
static void test_sink_stdout_partial_write(void **state)
{
	int p[2], saved, pipe_sz, flush1, flush1b, flush2, fd1_ok, i;
	uint64_t lost1, lost1b;
	struct accesslog_sink *s;
	char line[100], *got, *want;
	size_t n1, n2, n3, whole;

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pipe_sz = fcntl(p[1], F_SETPIPE_SZ, 65536);
	assert_true(pipe_sz > 0 && pipe_sz % 100);
	assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO);

	/* cmocka prints on stdout: no assertion until it is restored */
	s = accesslog_open("-");
	for (i = 0; s && i < 1000; i++) {
		numbered_line(line, i);
		accesslog_append(s, line, 100);
	}
	got = malloc(200000);
	flush1 = s ? accesslog_flush(s) : 0;
	lost1 = s ? accesslog_lost_lines(s) : 0;
	/* still full: the rest of the torn line must survive this one too */
	flush1b = s ? accesslog_flush(s) : 0;
	lost1b = s ? accesslog_lost_lines(s) : 0;
	n1 = read(p[0], got, 200000);
	flush2 = s ? accesslog_flush(s) : 0;
	n2 = read(p[0], got + n1, 200000 - n1);
	numbered_line(line, 1000);
	if (s)
		accesslog_append(s, line, 100);
	accesslog_close(s);
	n3 = read(p[0], got + n1 + n2, 200000 - n1 - n2);
	fd1_ok = fcntl(STDOUT_FILENO, F_GETFD) != -1;
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);

	assert_non_null(s);
	assert_true(fd1_ok);
	assert_int_equal(flush1, -EAGAIN);
	assert_int_equal(n1, pipe_sz);
	whole = pipe_sz / 100 + 1; /* the torn line is completed */
	assert_int_equal(lost1, 1000 - whole);
	assert_int_equal(flush1b, -EAGAIN);
	assert_int_equal(lost1b, lost1);
	assert_int_equal(flush2, 0);
	assert_int_equal(n1 + n2, whole * 100);
	assert_int_equal(n3, 100);
	want = malloc(200000);
	for (i = 0; (size_t)i < whole; i++)
		numbered_line(want + i * 100, i);
	numbered_line(want + whole * 100, 1000);
	assert_memory_equal(got, want, (whole + 1) * 100);
	free(got);
	free(want);
}

/* ---- rotation ---- */

#define ROT_MAX 4096

static char *slot_path(char *buf, size_t len, const char *base, unsigned int n, const char *suffix)
{
	snprintf(buf, len, "%s.%u%s", base, n, suffix);
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;

	return !lstat(path, &st);
}

static unsigned int mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static bool is_gzip(const char *path)
{
	unsigned char magic[2] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, magic, 2), 2);
	close(fd);
	return magic[0] == 0x1f && magic[1] == 0x8b;
}

/* Whole file through zlib's gzread (plain files read as they are), appended to buf at *len. */
static char *gz_slurp_into(const char *path, char *buf, size_t *len, size_t *cap)
{
	gzFile f = gzopen(path, "rb");
	int n;

	assert_non_null(f);
	do {
		if (*cap - *len < 65536) {
			*cap = *cap * 2 + 65536;
			buf = realloc(buf, *cap);
			assert_non_null(buf);
		}
		n = gzread(f, buf + *len, 65536);
		assert_true(n >= 0);
		*len += n;
	} while (n > 0);
	assert_int_equal(gzclose(f), Z_OK);
	return buf;
}

/*
 * Slots 1..max of base: how many exist; asserts none is above max, none is
 * both compressed and not, and no compression is half done.
 */
static unsigned int count_slots(const char *base, unsigned int max)
{
	char plain[256], gz[256], tmp[256];
	unsigned int n, found = 0;

	for (n = 1; n <= max + 1; n++) {
		slot_path(plain, sizeof(plain), base, n, "");
		slot_path(gz, sizeof(gz), base, n, ".gz");
		slot_path(tmp, sizeof(tmp), base, n, ".gz.tmp");
		assert_false(exists(tmp));
		assert_false(exists(plain) && exists(gz));
		if (exists(plain) || exists(gz)) {
			assert_true(n <= max);
			found++;
		}
	}
	return found;
}

/* Slots found .. 1 (oldest first), then the live file: one buffer. */
static char *read_rotated(const char *base, unsigned int slots, size_t *len)
{
	char name[256];
	size_t cap = 0;
	char *buf = NULL;

	*len = 0;
	for (unsigned int n = slots; n >= 1; n--) {
		slot_path(name, sizeof(name), base, n, ".gz");
		if (!exists(name))
			slot_path(name, sizeof(name), base, n, "");
		buf = gz_slurp_into(name, buf, len, &cap);
	}
	return gz_slurp_into(base, buf, len, &cap);
}

/*
 * 100-byte lines flushed one by one, 4096 bytes a file, 3 files kept:
 * 40 lines a file, never more than 3 rotated files, each compressed, and
 * what survives is exactly the newest lines, whole and in order.
 */
static void test_rotation_keeps_newest_lines(void **state)
{
	const unsigned int files = 3, n_lines = 1000, per_file = ROT_MAX / 100;
	const char *path = tmp_path("rot.log");
	char line[100], name[256], *got;
	unsigned int i, kept, first, in_live;
	struct accesslog_sink *s;
	size_t len, one_len = 0, cap = 0;

	(void)state;
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, ROT_MAX, files), 0);
	for (i = 0; i < n_lines; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
		assert_int_equal(accesslog_flush(s), 0);
		assert_true(count_slots(path, files) <= files);
		/* a 4 KiB file is compressed within the flush that rotated it */
		for (unsigned int n = 1; n <= files; n++)
			assert_false(exists(slot_path(name, sizeof(name), path, n, "")));
	}
	/* a rotation before line 40, 80, ... */
	assert_int_equal(accesslog_rotations(s), (n_lines - 1) / per_file);
	assert_int_equal(accesslog_rotation_errors(s), 0);
	assert_int_equal(accesslog_lost_lines(s), 0);
	accesslog_close(s);

	assert_int_equal(count_slots(path, files), files);
	assert_int_equal(mode_of(path), 0640);
	for (unsigned int n = 1; n <= files; n++) {
		slot_path(name, sizeof(name), path, n, ".gz");
		assert_true(is_gzip(name));
		assert_int_equal(mode_of(name), 0640);
		got = gz_slurp_into(name, NULL, &one_len, &cap);
		assert_int_equal(one_len, per_file * 100);
		free(got);
		one_len = cap = 0;
	}
	in_live = (n_lines - 1) % per_file + 1;
	kept = files * per_file + in_live;
	first = n_lines - kept; /* the dropped ones are exactly the oldest */
	got = read_rotated(path, files, &len);
	assert_int_equal(len, (size_t)kept * 100);
	for (i = 0; i < kept; i++) {
		numbered_line(line, first + i);
		assert_memory_equal(got + i * 100, line, 100);
	}
	free(got);
}

/*
 * Lines of random length in batches of random size, all files kept: the
 * rotated files and the live one hold every line once, in order; each file
 * starts and ends on a batch boundary and exceeds the limit only when it
 * is one batch bigger than the limit.
 */
static void test_rotation_batches_whole(void **state)
{
	const char *path = tmp_path("batch.log");
	const unsigned int n_lines = 1500;
	char line[ACCESSLOG_LINE_MAX], name[256], *want, *got;
	size_t want_len = 0, *bounds, n_bounds = 0, len, off, cap, b;
	unsigned int i, slots, n;
	struct accesslog_sink *s;
	bool *is_bound;

	(void)state;
	want = malloc(n_lines * ACCESSLOG_LINE_MAX);
	bounds = malloc((n_lines + 1) * sizeof(*bounds));
	assert_non_null(want);
	assert_non_null(bounds);
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, ROT_MAX, 1000), 0);
	bounds[n_bounds++] = 0;
	for (i = 0; i < n_lines;) {
		unsigned int batch = 1 + rnd() % 20;

		for (; batch && i < n_lines; batch--, i++) {
			int l = 40 + rnd() % 860, h;

			h = snprintf(line, sizeof(line), "{\"seq\":%u,\"pad\":\"", i);
			memset(line + h, 'a' + i % 26, l - h - 3);
			memcpy(line + l - 3, "\"}\n", 3);
			assert_int_equal(accesslog_append(s, line, l), 0);
			memcpy(want + want_len, line, l);
			want_len += l;
		}
		assert_int_equal(accesslog_flush(s), 0);
		bounds[n_bounds++] = want_len;
	}
	slots = accesslog_rotations(s);
	assert_true(slots > 50);
	assert_int_equal(accesslog_rotation_errors(s), 0);
	accesslog_close(s);

	assert_int_equal(count_slots(path, 1000), slots);
	got = read_rotated(path, slots, &len);
	assert_int_equal(len, want_len);
	assert_memory_equal(got, want, want_len);
	free(got);

	is_bound = calloc(want_len + 1, sizeof(*is_bound));
	assert_non_null(is_bound);
	for (b = 0; b < n_bounds; b++)
		is_bound[bounds[b]] = true;
	off = 0;
	for (n = slots; n >= 1; n--) {
		slot_path(name, sizeof(name), path, n, ".gz");
		assert_true(is_gzip(name));
		got = NULL;
		len = cap = 0;
		got = gz_slurp_into(name, got, &len, &cap);
		assert_true(len > 0);
		assert_true(is_bound[off] && is_bound[off + len]);
		if (len > ROT_MAX) /* then it is one batch */
			for (b = off + 1; b < off + len; b++)
				assert_false(is_bound[b]);
		off += len;
		free(got);
	}
	assert_true(is_bound[off]);
	free(is_bound);
	free(bounds);
	free(want);
}

/* stdout cannot rotate: set_rotation is a no-op and every line gets there. */
static void test_rotation_stdout_noop(void **state)
{
	const char *out = tmp_path("stdout.txt");
	int fd, saved, set, flushes = 0, i;
	char line[100], name[256], *got;
	struct accesslog_sink *s, *f;
	uint64_t rotations = 1;
	size_t len;

	(void)state;
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);

	/* cmocka prints on stdout: no assertion until it is restored */
	s = accesslog_open("-");
	set = s ? accesslog_set_rotation(s, ROT_MAX, 3) : -1;
	for (i = 0; s && i < 200; i++) {
		numbered_line(line, i);
		accesslog_append(s, line, 100);
		flushes += accesslog_flush(s) == 0;
	}
	if (s)
		rotations = accesslog_rotations(s);
	accesslog_close(s);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(fd);

	assert_non_null(s);
	assert_int_equal(set, 0);
	assert_int_equal(flushes, 200);
	assert_int_equal(rotations, 0);
	got = slurp(out, &len);
	assert_int_equal(len, 200 * 100);
	for (i = 0; i < 200; i++) {
		numbered_line(line, i);
		assert_memory_equal(got + i * 100, line, 100);
	}
	free(got);
	assert_false(exists(slot_path(name, sizeof(name), out, 1, "")));
	assert_false(exists(slot_path(name, sizeof(name), out, 1, ".gz")));

	/* arguments: max_files 0 is refused, max_bytes 0 turns rotation off */
	f = accesslog_open(tmp_path("args.log"));
	assert_non_null(f);
	assert_int_equal(accesslog_set_rotation(f, ROT_MAX, 0), -EINVAL);
	assert_int_equal(accesslog_set_rotation(f, 100, 1), 0);
	assert_int_equal(accesslog_set_rotation(f, 0, 0), 0);
	for (i = 0; i < 10; i++) {
		numbered_line(line, i);
		assert_int_equal(accesslog_append(f, line, 100), 0);
		assert_int_equal(accesslog_flush(f), 0);
	}
	assert_int_equal(accesslog_rotations(f), 0);
	accesslog_close(f);
	assert_int_equal(count_slots(tmp_path("args.log"), 1), 0);
}

/*
 * An external logrotate moves the live file and sends SIGHUP (reopen) while
 * built-in rotation is on: until the reopen, the moved file is left alone
 * (no built-in rotation of it, however big) and gets every line; then
 * rotation goes on in the new file. Nothing lost or repeated.
 */
static void test_rotation_with_reopen(void **state)
{
	const char *path = tmp_path("hup.log"), *moved = tmp_path("hup.log.moved");
	char line[100], name[256], *got = NULL;
	size_t len = 0, cap = 0;
	struct accesslog_sink *s;
	int i;

	(void)state;
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, ROT_MAX, 5), 0);
	for (i = 0; i < 50; i++) { /* 40 lines, rotation, 10 lines */
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
		assert_int_equal(accesslog_flush(s), 0);
	}
	assert_int_equal(accesslog_rotations(s), 1);
	assert_int_equal(rename(path, moved), 0);
	for (; i < 95; i++) { /* past the limit, but the file is not at path any more */
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
		assert_int_equal(accesslog_flush(s), 0);
	}
	assert_int_equal(accesslog_rotations(s), 1);
	assert_false(exists(path));
	numbered_line(line, i++); /* queued before the reopen: the moved file */
	assert_int_equal(accesslog_append(s, line, 100), 0);
	assert_int_equal(accesslog_reopen(s), 0);
	assert_int_equal(mode_of(path), 0640);
	for (; i < 196; i++) { /* 40, rotation, 40, rotation, 20 */
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
		assert_int_equal(accesslog_flush(s), 0);
	}
	assert_int_equal(accesslog_rotations(s), 3);
	assert_int_equal(accesslog_rotation_errors(s), 0);
	assert_int_equal(accesslog_lost_lines(s), 0);
	accesslog_close(s);

	/* oldest first: the pre-reopen rotation (now slot 3), the moved file, slots 2, 1, live */
	assert_int_equal(count_slots(path, 5), 3);
	got = gz_slurp_into(slot_path(name, sizeof(name), path, 3, ".gz"), got, &len, &cap);
	assert_int_equal(len, 4000);
	got = gz_slurp_into(moved, got, &len, &cap);
	assert_int_equal(len, 9600);
	got = gz_slurp_into(slot_path(name, sizeof(name), path, 2, ".gz"), got, &len, &cap);
	got = gz_slurp_into(slot_path(name, sizeof(name), path, 1, ".gz"), got, &len, &cap);
	got = gz_slurp_into(path, got, &len, &cap);
	assert_int_equal(len, 196 * 100);
	for (i = 0; i < 196; i++) {
		numbered_line(line, i);
		assert_memory_equal(got + i * 100, line, 100);
	}
	free(got);
}

/*
 * Compression that cannot happen (its temporary name is taken by a
 * directory) leaves the rotated file uncompressed, counted and said once;
 * rotation goes on, and compression works again once it can.
 */
static void test_rotation_compress_failure_keeps_lines(void **state)
{
	const char *path = tmp_path("nogz.log"), *errs = tmp_path("stderr.txt");
	char line[100], name[256], tmp[256], *got;
	int fd, saved, i, ok = 1;
	struct accesslog_sink *s;
	uint64_t errors;
	size_t len;

	(void)state;
	slot_path(tmp, sizeof(tmp), path, 1, ".gz.tmp");
	assert_int_equal(mkdir(tmp, 0755), 0);
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, ROT_MAX, 5), 0);

	fd = open(errs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	/* cmocka reports failures on stderr: no assertion until it is restored */
	for (i = 0; i < 100; i++) { /* rotations before 40 and 80 */
		numbered_line(line, i);
		ok &= accesslog_append(s, line, 100) == 0;
		ok &= accesslog_flush(s) == 0;
	}
	errors = accesslog_rotation_errors(s);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);

	assert_true(ok);
	assert_int_equal(errors, 2);
	got = slurp(errs, &len);
	assert_non_null(strstr(got, "compressing"));
	assert_null(strstr(strstr(got, "compressing") + 1, "compressing")); /* once */
	free(got);
	assert_int_equal(accesslog_rotations(s), 2);
	for (i = 1; i <= 2; i++) {
		slot_path(name, sizeof(name), path, i, "");
		assert_true(exists(name));
		assert_false(is_gzip(name));
	}

	assert_int_equal(rmdir(tmp), 0);
	for (i = 100; i < 140; i++) { /* a rotation before 120 */
		numbered_line(line, i);
		assert_int_equal(accesslog_append(s, line, 100), 0);
		assert_int_equal(accesslog_flush(s), 0);
	}
	assert_int_equal(accesslog_rotations(s), 3);
	assert_int_equal(accesslog_rotation_errors(s), 2);
	accesslog_close(s);

	assert_int_equal(count_slots(path, 5), 3);
	assert_true(is_gzip(slot_path(name, sizeof(name), path, 1, ".gz")));
	assert_false(is_gzip(slot_path(name, sizeof(name), path, 2, "")));
	assert_false(is_gzip(slot_path(name, sizeof(name), path, 3, "")));
	got = read_rotated(path, 3, &len);
	assert_int_equal(len, 140 * 100);
	for (i = 0; i < 140; i++) {
		numbered_line(line, i);
		assert_memory_equal(got + i * 100, line, 100);
	}
	free(got);
}

/*
 * A big rotated file is compressed a slice per flush, not in the flush that
 * rotated it; the next flushes (even with nothing to write) finish it.
 */
static void test_rotation_compresses_incrementally(void **state)
{
	const char *path = tmp_path("big-rot.log");
	char line[100], plain[256], gz[256], tmp[256], *got;
	struct accesslog_sink *s;
	int i, j, flushes;
	size_t len;

	(void)state;
	slot_path(plain, sizeof(plain), path, 1, "");
	slot_path(gz, sizeof(gz), path, 1, ".gz");
	slot_path(tmp, sizeof(tmp), path, 1, ".gz.tmp");
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, 1 << 20, 2), 0);
	/* 10 batches of 100 kB fit in 1 MiB, the 11th does not */
	for (i = 0; i < 11; i++) {
		for (j = 0; j < 1000; j++) {
			numbered_line(line, i * 1000 + j);
			assert_int_equal(accesslog_append(s, line, 100), 0);
		}
		assert_int_equal(accesslog_flush(s), 0);
	}
	assert_int_equal(accesslog_rotations(s), 1);
	assert_true(exists(plain) && exists(tmp) && !exists(gz));
	for (flushes = 0; !exists(gz); flushes++) {
		assert_true(flushes < 100);
		assert_int_equal(accesslog_flush(s), 0);
	}
	assert_true(flushes > 1);
	assert_false(exists(plain) || exists(tmp));
	accesslog_close(s);

	got = read_rotated(path, 1, &len);
	assert_int_equal(len, 11 * 1000 * 100);
	for (i = 0; i < 11 * 1000; i++) {
		numbered_line(line, i);
		assert_memory_equal(got + (size_t)i * 100, line, 100);
	}
	free(got);
}

/*
 * A path.1 an earlier run left uncompressed is compressed once rotation is
 * set (close finishes it when small); a big one is left whole rather than
 * holding up close.
 */
static void test_rotation_resumes_leftover(void **state)
{
	const char *path = tmp_path("left.log");
	char plain[256], gz[256], tmp[256], line[100], *got;
	struct accesslog_sink *s;
	size_t len, cap = 0;
	struct stat st;
	int fd, i;

	(void)state;
	slot_path(plain, sizeof(plain), path, 1, "");
	slot_path(gz, sizeof(gz), path, 1, ".gz");
	slot_path(tmp, sizeof(tmp), path, 1, ".gz.tmp");
	fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	for (i = 0; i < 100; i++) {
		numbered_line(line, i);
		assert_int_equal(write(fd, line, 100), 100);
	}
	close(fd);
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, 1 << 20, 3), 0);
	accesslog_close(s);
	assert_false(exists(plain) || exists(tmp));
	assert_true(is_gzip(gz));
	len = 0;
	got = gz_slurp_into(gz, NULL, &len, &cap);
	assert_int_equal(len, 100 * 100);
	for (i = 0; i < 100; i++) {
		numbered_line(line, i);
		assert_memory_equal(got + i * 100, line, 100);
	}
	free(got);
	assert_int_equal(unlink(gz), 0);

	/* 65 MiB (sparse): close does not wait for it, the file stays as it is */
	fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65 << 20), 0);
	close(fd);
	s = accesslog_open(path);
	assert_non_null(s);
	assert_int_equal(accesslog_set_rotation(s, 1 << 20, 3), 0);
	accesslog_close(s);
	assert_int_equal(stat(plain, &st), 0);
	assert_int_equal(st.st_size, 65 << 20);
	assert_false(exists(gz) || exists(tmp));
	assert_int_equal(unlink(plain), 0);
}

/* ---- drops ---- */

static void test_drop_keys_on_connection_records(void **state)
{
	struct accesslog_clock zero = { 0 };
	struct accesslog_identity id = { .drop_reason = "REASON_12" };
	struct tcp_probe_info r = { 0 };
	char buf[ACCESSLOG_LINE_MAX];
	cJSON *j;

	(void)state;
	r.type = ML_REC_CONN_CLOSE;
	r.conn_success = 1;
	/* drop tracing off: no key at all */
	assert_true(accesslog_format(&r, &zero, buf, sizeof(buf)) > 0);
	assert_null(strstr(buf, "drops"));
	/* on, none dropped: "drops":0 and no reason */
	r.flags = ML_F_DROPS;
	assert_true(accesslog_format_id(&r, &zero, &id, buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	assert_non_null(j);
	assert_int_equal(cJSON_GetObjectItem(j, "drops")->valuedouble, 0);
	assert_null(cJSON_GetObjectItem(j, "last_drop_reason"));
	cJSON_Delete(j);
	r.drops = 3;
	r.last_drop_reason = 12;
	assert_true(accesslog_format_id(&r, &zero, &id, buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	assert_int_equal(cJSON_GetObjectItem(j, "drops")->valuedouble, 3);
	assert_string_equal(cJSON_GetObjectItem(j, "last_drop_reason")->valuestring, "REASON_12");
	cJSON_Delete(j);
	/* the caller named nothing: the key still says a reason was there */
	assert_true(accesslog_format(&r, &zero, buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	assert_string_equal(cJSON_GetObjectItem(j, "last_drop_reason")->valuestring, "UNKNOWN");
	cJSON_Delete(j);
}

static void test_drop_line(void **state)
{
	struct accesslog_clock clk = { .mono_to_real_ns = 1700000000000000000LL };
	struct accesslog_drop_names names = { "NETFILTER_DROP", "l3", "l3.netfilter" };
	struct ml_flow_key k = { 0 };
	struct ml_flow_val v = { 0 };
	char buf[ACCESSLOG_LINE_MAX];
	cJSON *j;

	(void)state;
	k.family = AF_INET;
	k.l4proto = 6;
	k.direction = ML_DROP_EGRESS;
	k.src_addr[10] = k.src_addr[11] = k.dst_addr[10] = k.dst_addr[11] = 0xff;
	k.src_addr[12] = 10, k.src_addr[15] = 1;
	k.dst_addr[12] = 10, k.dst_addr[15] = 2;
	k.src_port = 40000;
	k.dst_port = 443;
	k.ifindex = 3;
	k.netns = 4026531840u;
	v.packets = 7;
	v.bytes = 9000;
	v.first_ns = 1000;
	v.last_ns = 2000;
	v.tcp_flags = 0x12; /* SYN|ACK */
	v.tcp_state = 2;
	v.sock_cookie = 99;
	assert_true(accesslog_format_drop(&k, &v, &names, NULL, &clk, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "{\"type\":\"drop\",\"time\":\"2023-11-14T22:13:20.000002Z\","));
	j = cJSON_Parse(buf);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "reason")->valuestring, "NETFILTER_DROP");
	assert_string_equal(cJSON_GetObjectItem(j, "module")->valuestring, "l3.netfilter");
	assert_string_equal(cJSON_GetObjectItem(j, "direction")->valuestring, "egress");
	assert_string_equal(cJSON_GetObjectItem(j, "protocol")->valuestring, "tcp");
	assert_string_equal(cJSON_GetObjectItem(j, "src_addr")->valuestring, "10.0.0.1");
	assert_string_equal(cJSON_GetObjectItem(j, "dst_addr")->valuestring, "10.0.0.2");
	assert_int_equal(cJSON_GetObjectItem(j, "dst_port")->valuedouble, 443);
	assert_string_equal(cJSON_GetObjectItem(j, "tcp_flags")->valuestring, "SYN|ACK");
	assert_string_equal(cJSON_GetObjectItem(j, "tcp_state")->valuestring, "SYN_SENT");
	assert_int_equal(cJSON_GetObjectItem(j, "packets")->valuedouble, 7);
	assert_int_equal(cJSON_GetObjectItem(j, "bytes")->valuedouble, 9000);
	assert_int_equal(cJSON_GetObjectItem(j, "sock_cookie")->valuedouble, 99);
	cJSON_Delete(j);
	/* ICMPv6: type and code instead of ports, no TCP keys */
	k.family = AF_INET6;
	k.l4proto = 58;
	k.src_port = 128;
	k.dst_port = 0;
	v.tcp_state = 0;
	v.sock_cookie = 0;
	memset(k.src_addr, 0, sizeof(k.src_addr));
	k.src_addr[15] = 1;
	assert_true(accesslog_format_drop(&k, &v, &names, NULL, &clk, buf, sizeof(buf)) > 0);
	j = cJSON_Parse(buf);
	assert_non_null(j);
	assert_string_equal(cJSON_GetObjectItem(j, "family")->valuestring, "ipv6");
	assert_string_equal(cJSON_GetObjectItem(j, "protocol")->valuestring, "icmpv6");
	assert_string_equal(cJSON_GetObjectItem(j, "src_addr")->valuestring, "::1");
	assert_int_equal(cJSON_GetObjectItem(j, "icmp_type")->valuedouble, 128);
	assert_null(cJSON_GetObjectItem(j, "src_port"));
	assert_null(cJSON_GetObjectItem(j, "tcp_flags"));
	assert_null(cJSON_GetObjectItem(j, "sock_cookie"));
	assert_null(cJSON_GetObjectItem(j, "src_workload"));
	cJSON_Delete(j);
	/* workload keys of the ends that are known, escaped; no cgroup key */
	{
		char cg[64], src[64], dst[64];
		struct accesslog_identity id = {
			.cgroup = { cg, (size_t)accesslog_cgroup_key("not/used", cg, sizeof(cg)) },
			.src = end_keys(src, sizeof(src), false, "we\"b", "shop", NULL),
			.dst = end_keys(dst, sizeof(dst), true, NULL, NULL, "db"),
		};

		assert_true(accesslog_format_drop(&k, &v, &names, &id, &clk, buf, sizeof(buf)) > 0);
		j = cJSON_Parse(buf);
		assert_non_null(j);
		assert_string_equal(cJSON_GetObjectItem(j, "src_workload")->valuestring, "we\"b");
		assert_string_equal(cJSON_GetObjectItem(j, "src_namespace")->valuestring, "shop");
		assert_string_equal(cJSON_GetObjectItem(j, "dst_service")->valuestring, "db");
		assert_null(cJSON_GetObjectItem(j, "dst_workload"));
		assert_null(cJSON_GetObjectItem(j, "cgroup"));
		assert_int_equal(cJSON_GetObjectItem(j, "packets")->valuedouble, 7);
		cJSON_Delete(j);
	}
	/* too small a buffer: -1 */
	assert_int_equal(accesslog_format_drop(&k, &v, &names, NULL, &clk, buf, 40), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outbound_v4),
		cmocka_unit_test(test_handshake_key),
		cmocka_unit_test(test_health_keys),
		cmocka_unit_test(test_end_keys),
		cmocka_unit_test(test_identity_keys),
		cmocka_unit_test(test_inbound_v6),
		cmocka_unit_test(test_v4mapped_on_inet6_socket),
		cmocka_unit_test(test_failed_record),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_ipv4_every_octet),
		cmocka_unit_test(test_number_limits),
		cmocka_unit_test(test_drop_keys_on_connection_records),
		cmocka_unit_test(test_drop_line),
		cmocka_unit_test(test_time_vectors),
		cmocka_unit_test(test_time_matches_gmtime),
		cmocka_unit_test(test_clock_sync),
		cmocka_unit_test(test_addr_vectors),
		cmocka_unit_test(test_addr_matches_inet_ntop),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_too_small_every_length),
		cmocka_unit_test(test_roundtrip_random),
		cmocka_unit_test(test_sink_file_append),
		cmocka_unit_test(test_sink_flushes_when_batch_full),
		cmocka_unit_test(test_sink_rejects_bad_lines),
		cmocka_unit_test(test_sink_reopen_after_rename),
		cmocka_unit_test(test_sink_reopen_fails_counts_lost),
		cmocka_unit_test(test_sink_torn_line_not_carried_to_new_file),
		cmocka_unit_test(test_sink_write_retried_after_eintr),
		cmocka_unit_test(test_sink_lost_lines_dev_full),
		cmocka_unit_test(test_sink_stdout_partial_write),
		cmocka_unit_test(test_rotation_keeps_newest_lines),
		cmocka_unit_test(test_rotation_batches_whole),
		cmocka_unit_test(test_rotation_stdout_noop),
		cmocka_unit_test(test_rotation_with_reopen),
		cmocka_unit_test(test_rotation_compress_failure_keeps_lines),
		cmocka_unit_test(test_rotation_compresses_incrementally),
		cmocka_unit_test(test_rotation_resumes_leftover),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
