// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_pipeline - user-space throughput of the per-record path.
 *
 * Feeds synthetic tcp_probe_info records through ml_pipeline_record(), the
 * function the daemon's ringbuf callback is, with the real sink (a file,
 * flushed every 1000 records like the daemon's drain batches, the clock
 * re-synced per batch like drain() does) and the real metrics aggregation
 * (metrics_new() with the default max_series); with
 * --metadata FILE, workload names in the lines and the workload families too.
 *
 * The mix: per connection one OPEN and one CLOSE record for each of its two
 * sockets (outbound and inbound), a window of connections open at a time,
 * a few hundred distinct IP pairs (10% IPv6), varying byte counts. The
 * records are generated once into a template of one "pass" and replayed
 * with new socket cookies and times per pass; only the pipeline calls and
 * the flushes are timed (CLOCK_MONOTONIC).
 *
 *   bench_pipeline [--records N] [--pairs K] [--window W] [--out FILE] [--keep]
 *
 * Prints one JSON line: records (rounded up to whole passes), lines,
 * seconds, records_per_sec (everything, write(2) included), write_seconds
 * (in accesslog_flush), records_per_sec_cpu (without the flushes),
 * bytes_per_line, series, tracked (connections open at the end: 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/metadata.h"
#include "daemon/pipeline.h"
#include "lib/names.h"

#define FLUSH_EVERY 1000   /* records per drain batch */
#define PASS_CONNS 16384   /* connections per template pass */
#define TCP_FIN_WAIT2 5
#define TCP_LAST_ACK 9

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct ip_pair {
	uint8_t src[ML_ADDR_LEN], dst[ML_ADDR_LEN];
	uint16_t dst_port;
	uint16_t family;
};

static void v4(uint8_t *a, uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	memset(a, 0, ML_ADDR_LEN);
	a[10] = a[11] = 0xff;
	a[12] = b0;
	a[13] = b1;
	a[14] = b2;
	a[15] = b3;
}

static void v6(uint8_t *a, uint16_t host)
{
	memset(a, 0, ML_ADDR_LEN);
	a[0] = 0xfd; /* fd00:0:0:f4::host, a pod-network-looking ULA */
	a[7] = 0xf4;
	a[14] = host >> 8;
	a[15] = host & 0xff;
}

static void make_pairs(struct ip_pair *p, unsigned int k)
{
	static const uint16_t ports[] = { 80, 443, 8080, 9080, 15006, 3306 };

	for (unsigned int i = 0; i < k; i++) {
		if (i % 10 == 9) {
			v6(p[i].src, 0x100 + i);
			v6(p[i].dst, 0x10 + i % 17);
			p[i].family = AF_INET6;
		} else {
			v4(p[i].src, 10, 244, 1 + i / 200, 2 + i % 200);
			v4(p[i].dst, 10, 244, 9, 2 + i % 23);
			p[i].family = AF_INET;
		}
		p[i].dst_port = ports[i % (sizeof(ports) / sizeof(ports[0]))];
	}
}

/* One socket's record. */
static void fill(struct tcp_probe_info *r, const struct ip_pair *p, uint8_t type, uint8_t dir,
		 uint64_t cookie, uint16_t sport, uint64_t start, uint64_t at, uint64_t sent,
		 uint64_t received)
{
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->direction = dir;
	r->start_ns = start;
	r->close_ns = at;
	r->duration = at - start;
	r->sock_cookie = cookie;
	r->cgroup_id = 4242;
	memcpy(r->src_addr, p->src, ML_ADDR_LEN);
	memcpy(r->dst_addr, p->dst, ML_ADDR_LEN);
	r->src_port = sport;
	r->dst_port = p->dst_port;
	r->family = p->family;
	r->protocol = 6;
	r->conn_success = 1;
	r->srtt_us = 20 + (uint32_t)(cookie % 400);
	r->rtt_min = 10 + (uint32_t)(cookie % 50);
	r->mss_cache = p->family == AF_INET ? 1448 : 1428;
	if (type == ML_REC_CONN_OPEN) {
		r->state = 1; /* ESTABLISHED */
		r->segs_in = r->segs_out = 2;
		return;
	}
	r->state = dir == ML_DIR_OUTBOUND ? TCP_FIN_WAIT2 : TCP_LAST_ACK;
	r->sent_bytes = sent;
	r->received_bytes = received;
	r->segs_out = 3 + (uint32_t)(sent / 1448);
	r->segs_in = 3 + (uint32_t)(received / 1448);
	r->total_retrans = cookie % 97 == 0;
	/* what a close record of 6.7+ carries: the handshake, TCP health, RTOs */
	r->flags = ML_F_FIN_IN | ML_F_FIN_OUT | ML_F_HANDSHAKE | ML_F_HEALTH | ML_F_RTO;
	r->handshake_us = dir == ML_DIR_OUTBOUND ? 60 + (uint32_t)(cookie % 100) : 20;
	r->bytes_retrans = r->total_retrans * r->mss_cache;
	r->snd_cwnd = 10 + (uint32_t)(cookie % 20);
	r->snd_ssthresh = cookie % 7 ? ML_INFINITE_SSTHRESH : 20;
	r->delivery_rate = 100000000 + cookie % 1000003;
	r->total_rto = r->total_retrans;
}

/*
 * One pass: PASS_CONNS connections, each opened (two OPEN records) and
 * closed W connections later (two CLOSE records), so about W connections
 * are open at any time; the last W close at the end of the pass.
 */
static struct tcp_probe_info *make_template(const struct ip_pair *pairs, unsigned int k,
					    unsigned int w, size_t *n_out)
{
	size_t n = 4 * (size_t)PASS_CONNS, at = 0;
	struct tcp_probe_info *t = calloc(n, sizeof(*t));
	struct conn {
		unsigned int pair;
		uint16_t sport;
		uint64_t start, end, c2s, s2c;
	} *c = calloc(PASS_CONNS, sizeof(*c));
	uint64_t base = 1000000000000ULL; /* monotonic ns, ~17 min after boot */

	if (!t || !c) {
		perror("calloc");
		exit(1);
	}
	for (unsigned int i = 0; i < PASS_CONNS; i++) {
		c[i].pair = (unsigned int)(rnd() % k);
		c[i].sport = (uint16_t)(32768 + rnd() % 28232);
		c[i].start = base + (uint64_t)i * 50000;          /* 20k conn/s */
		c[i].end = c[i].start + 200000 + rnd() % 50000000; /* 0.2-50 ms */
		/* request/response sizes: mostly small, some large */
		c[i].c2s = 50 + rnd() % (rnd() % 8 ? 2000 : 200000);
		c[i].s2c = rnd() % (rnd() % 8 ? 20000 : 5000000);
	}
	for (unsigned int step = 0; step < PASS_CONNS + w; step++) {
		if (step < PASS_CONNS) {
			struct conn *o = &c[step];
			const struct ip_pair *p = &pairs[o->pair];

			fill(&t[at++], p, ML_REC_CONN_OPEN, ML_DIR_OUTBOUND, 2 * step + 1, o->sport,
			     o->start, o->start + 30000, 0, 0);
			fill(&t[at++], p, ML_REC_CONN_OPEN, ML_DIR_INBOUND, 2 * step + 2, o->sport,
			     o->start + 20000, o->start + 31000, 0, 0);
		}
		if (step >= w) {
			unsigned int i = step - w;
			struct conn *o = &c[i];
			const struct ip_pair *p = &pairs[o->pair];

			fill(&t[at++], p, ML_REC_CONN_CLOSE, ML_DIR_OUTBOUND, 2 * i + 1, o->sport,
			     o->start, o->end, o->c2s, o->s2c);
			fill(&t[at++], p, ML_REC_CONN_CLOSE, ML_DIR_INBOUND, 2 * i + 2, o->sport,
			     o->start + 20000, o->end + 15000, o->s2c, o->c2s);
		}
	}
	free(c);
	*n_out = at;
	return t;
}

/* Next pass: new cookies and later times, as the kernel would give. */
static void advance_pass(struct tcp_probe_info *t, size_t n, uint64_t dt)
{
	for (size_t i = 0; i < n; i++) {
		t[i].sock_cookie += 2 * PASS_CONNS;
		t[i].start_ns += dt;
		t[i].close_ns += dt;
	}
}

static uint64_t count_lines(const char *path, uint64_t *bytes)
{
	char buf[1 << 16];
	uint64_t lines = 0;
	size_t got;
	FILE *f = fopen(path, "r");

	*bytes = 0;
	if (!f)
		return 0;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		*bytes += got;
		for (size_t i = 0; i < got; i++)
			lines += buf[i] == '\n';
	}
	fclose(f);
	return lines;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: bench_pipeline [--records N] [--pairs K] [--window W] "
		     "[--out FILE] [--keep] [--metadata FILE]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "records", required_argument, NULL, 'n' },
		{ "pairs", required_argument, NULL, 'k' },
		{ "window", required_argument, NULL, 'w' },
		{ "out", required_argument, NULL, 'o' },
		{ "metadata", required_argument, NULL, 'm' },
		{ "keep", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t want = 4000000, done = 0, lines, bytes, dt;
	unsigned int k = 300, w = 64;
	char tmpl[] = "/tmp/meshlens-bench-XXXXXX";
	const char *out = NULL, *md_path = NULL;
	char md_err[256];
	int keep = 0, c, fd;
	struct ip_pair *pairs;
	struct tcp_probe_info *t;
	struct ml_pipeline pl = { 0 };
	struct metrics_config cfg = {
		.max_series = 10000, /* the daemon's default */
		.series_idle_seconds = 3600,
		.ip_pairs = true,
	};
	struct metrics_stats st;
	int64_t spent = 0, flushing = 0, t0, f0;
	size_t n;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			want = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			k = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			w = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			out = optarg;
			break;
		case 'K':
			keep = 1;
			break;
		case 'm':
			md_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* whole passes: every connection opened is closed */
	want = (want + 4 * PASS_CONNS - 1) / (4 * PASS_CONNS) * (4 * PASS_CONNS);
	if (!want || !k || k > 100000 || w < 1 || w >= PASS_CONNS) {
		usage(stderr);
		return 2;
	}
	if (!out) {
		fd = mkstemp(tmpl);
		if (fd < 0) {
			perror("mkstemp");
			return 1;
		}
		close(fd);
		out = tmpl;
	} else {
		unlink(out);
	}

	pairs = calloc(k, sizeof(*pairs));
	if (!pairs) {
		perror("calloc");
		return 1;
	}
	make_pairs(pairs, k);
	t = make_template(pairs, k, w, &n);
	dt = (uint64_t)PASS_CONNS * 50000 + 100000000;

	if (md_path) { /* names in the records and the workload families, as the daemon */
		pl.md = ml_metadata_open(md_path, "/sys/fs/cgroup", md_err, sizeof(md_err));
		if (!pl.md) {
			fprintf(stderr, "bench_pipeline: %s\n", md_err);
			return 2;
		}
		cfg.identify = ml_pipeline_names;
		cfg.identify_ctx = &pl;
		cfg.istio = true; /* the daemon's default with --metadata */
	}
	pl.sink = accesslog_open(out);
	pl.metrics = metrics_new(&cfg);
	if (!pl.sink || !pl.metrics) {
		fprintf(stderr, "bench_pipeline: %s: %s\n", out, strerror(errno));
		return 1;
	}
	accesslog_clock_sync(&pl.clk);

	while (done < want) {
		size_t todo = n;

		if (want - done < todo)
			todo = (size_t)(want - done);
		t0 = now_ns();
		for (size_t i = 0; i < todo; i++) {
			/* as the daemon's drain does: a record of a cgroup the
			 * cache lacks waits for one walk, then goes on */
			if (ml_pipeline_record(&pl, &t[i], sizeof(t[i])) == ML_PIPELINE_AGAIN &&
			    ml_pipeline_unstall(&pl))
				ml_pipeline_record(&pl, &t[i], sizeof(t[i]));
			if (++done % FLUSH_EVERY == 0) {
				int64_t f0 = now_ns();

				accesslog_flush(pl.sink);
				flushing += now_ns() - f0;
				accesslog_clock_sync(&pl.clk);
			}
		}
		f0 = now_ns();
		accesslog_flush(pl.sink);
		flushing += now_ns() - f0;
		spent += now_ns() - t0;
		advance_pass(t, n, dt);
	}
	metrics_stats(pl.metrics, &st);
	accesslog_close(pl.sink);
	lines = count_lines(out, &bytes);
	printf("{\"records\":%" PRIu64 ",\"lines\":%" PRIu64 ",\"seconds\":%.6f,"
	       "\"records_per_sec\":%.0f,\"ns_per_record\":%.1f,"
	       "\"write_seconds\":%.6f,\"records_per_sec_cpu\":%.0f,\"bytes_per_line\":%.1f,"
	       "\"series\":%" PRIu64 ",\"workload_series\":%" PRIu64 ",\"tracked\":%" PRIu64
	       ",\"file\":\"%s\"}\n",
	       pl.records, lines, spent / 1e9, pl.records / (spent / 1e9),
	       (double)spent / (double)pl.records, flushing / 1e9,
	       pl.records / ((spent - flushing) / 1e9), lines ? (double)bytes / (double)lines : 0.0,
	       st.series[METRICS_IP_PAIR], st.series[METRICS_WORKLOAD], st.connections,
	       keep ? out : "");
	if (!keep)
		unlink(out);
	metrics_free(pl.metrics);
	ml_metadata_free(pl.md);
	free(t);
	free(pairs);
	return 0;
}
