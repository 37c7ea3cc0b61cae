// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshlens daemon: options -> probe/load -> attach -> ready -> event loop.
 *
 * One thread, one epoll loop over the ringbuf, a drain timer, a refresh
 * timer for the counters of open connections, the metrics endpoint's
 * snapshot requests and a signalfd. Records are not delivered per event:
 * the kernel side submits without waking us, the timer drains every
 * drain_interval_ms, and the kernel wakes us early only when the ring is
 * filling up. The HTTP thread never touches metric state: it asks the
 * loop for a snapshot (metrics/http.h).
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cjson/cJSON.h>

#include "options.h"
#include "loader.h"
#include "metadata.h"
#include "pipeline.h"
#include "ring.h"
#include "../accesslog/accesslog.h"
#include "../cgroup/cgroup.h"
#include "../drops/diagnose.h"
#include "../drops/drops.h"
#include "../drops/reasons.h"
#include "../drops/byworkload.h"
#include "../lib/names.h"
#include "../metrics/expo.h"
#include "../metrics/http.h"
#include "../metrics/metrics.h"

#ifndef MESHLENS_VERSION
#define MESHLENS_VERSION "0.1.0-dev"
#endif

#define ML_RUN_DIR "/run/meshlens"
#define ML_PRIVATE_CGROUP2 ML_RUN_DIR "/cgroup2"

struct ml_daemon {
	struct ml_options opt;
	struct ml_bpf bpf;
	struct ml_ring ring;         /* the pinned ringbuf, read then committed */
	struct ml_pipeline pl;        /* record -> metrics + access log */
	struct metrics_http *http;   /* NULL when the endpoint is off */
	struct expo expo;            /* render buffer, reused */
	struct drop_reasons reasons; /* --drops: names, layers, selection */
	struct diag_state *diag;     /* --drops: diagnosis figures as metrics */
	struct drop_wl *drop_wl;     /* --drops with --metadata: drops by workload */
	char *iter_buf;              /* live-iterator read buffer */
	size_t iter_cap;
	int epfd, tfd, sfd, rfd;     /* epoll, drain timer, signals, refresh timer */
	int ifd;                     /* inotify on the --metadata file's directory */
	const char *md_name;         /* the --metadata file's name in that directory */
	int cg_fds[ML_MAX_CGROUPS];
	bool cg_gone[ML_MAX_CGROUPS]; /* removed since (said once) */
	int n_cg;
	char cg_root[PATH_MAX];
	uint64_t lost_reported; /* kernel-side losses already reported */
	uint64_t unwritten_reported; /* access-log lines lost to write errors, reported */
	time_t lost_said_at;
	char reload_text[ML_ERR_LEN + 64]; /* the last metadata reload's word */
	unsigned int reload_held;          /* reloads since it was last said */
	int64_t reload_said_ns;
	int ncpus;
	int argc;               /* the command line, read again by a config reload */
	char **argv;
	uint64_t refreshes;     /* live-iterator passes so far */
	bool flows_due;         /* an epoch of drop flows waits to be taken out */
};

static int usage_error(const char *msg)
{
	fprintf(stderr, "meshlens: %s (see --help)\n", msg);
	return 2;
}

static int64_t ns_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- records ------------------------------------------------------------ */

static uint64_t kernel_counter(struct ml_daemon *d, __u32 idx)
{
	return ml_bpf_counter(&d->bpf, idx);
}

/*
 * Records the kernel could not queue, and lines the sink could not write
 * (disk full): said once per second at most, never per record.
 */
static void report_losses(struct ml_daemon *d)
{
	uint64_t lost = kernel_counter(d, ML_CNT_RECORDS_LOST);
	uint64_t unwritten = d->pl.sink ? accesslog_lost_lines(d->pl.sink) : 0;
	time_t now = time(NULL);

	if ((lost == d->lost_reported && unwritten == d->unwritten_reported) ||
	    now == d->lost_said_at)
		return;
	if (lost != d->lost_reported)
		fprintf(stderr,
			"meshlens: %llu records lost in the kernel (ringbuf full); "
			"raise ringbuf_bytes or lower drain_interval_ms\n",
			(unsigned long long)(lost - d->lost_reported));
	if (unwritten != d->unwritten_reported)
		fprintf(stderr, "meshlens: %llu access-log lines could not be written (%s)\n",
			(unsigned long long)(unwritten - d->unwritten_reported),
			accesslog_strerror(accesslog_last_error(d->pl.sink)));
	d->lost_reported = lost;
	d->unwritten_reported = unwritten;
	d->lost_said_at = now;
}

/*
 * Records per read: their lines fit the sink's batch, so nothing is written
 * before the read ends and the records are released only once their lines
 * are in the file (see ring.h).
 */
#define ML_DRAIN_BATCH 256

static void say_reload_held(struct ml_daemon *d);

static int drain(struct ml_daemon *d)
{
	int n, total = 0;

	accesslog_clock_sync(&d->pl.clk);
	do {
		n = ml_ring_read(&d->ring, ML_DRAIN_BATCH, ml_pipeline_record, &d->pl);
		if (d->pl.sink)
			accesslog_flush(d->pl.sink);
		ml_ring_commit(&d->ring);
		total += n;
	} while (n == ML_DRAIN_BATCH);
	report_losses(d);
	say_reload_held(d);
	return total;
}

/*
 * A flow's drops since the last pass: a drop-log line, and with
 * --metadata, the workloads of its ends in the line and the local end's
 * (ingress: the destination, egress: the source) drop counts.
 */
static void on_drop_flow(void *ctx, const struct ml_flow_key *k, const struct ml_flow_val *v,
			 const struct drop_names *n)
{
	struct ml_daemon *d = ctx;
	struct accesslog_drop_names names = { n->reason, n->layer, n->module };
	struct accesslog_identity id = { 0 };
	const struct ml_workload *src = NULL, *dst = NULL, *local;
	char line[ACCESSLOG_LINE_MAX];
	int len = -1;

	if (!d->pl.sink && !d->drop_wl)
		return;
	if (d->pl.md && k->family) {
		src = ml_metadata_by_addr(d->pl.md, k->src_addr);
		dst = ml_metadata_by_addr(d->pl.md, k->dst_addr);
	}
	if (src) {
		id.src_workload = src->workload;
		id.src_namespace = src->namespace;
	}
	if (dst) {
		id.dst_workload = dst->workload;
		id.dst_namespace = dst->namespace;
		id.dst_service = dst->service;
	}
	if (d->drop_wl) {
		local = k->direction == ML_DROP_EGRESS ? src : dst;
		drop_wl_add(d->drop_wl, local ? local->workload : NULL,
			    local ? local->namespace : NULL, k->reason, k->direction, v->packets,
			    v->bytes);
	}
	if (!d->pl.sink)
		return;
	if (d->pl.md)
		len = accesslog_format_drop(k, v, &names, &id, &d->pl.clk, line, sizeof(line));
	if (len < 0) /* names too long for a line: the flow still goes out */
		len = accesslog_format_drop(k, v, &names, NULL, &d->pl.clk, line, sizeof(line));
	if (len > 0)
		accesslog_append(d->pl.sink, line, (size_t)len);
}

/* The drop flows of the epoch the kernel stopped writing: drop-log lines. */
static void collect_flows(struct ml_daemon *d)
{
	if (!d->flows_due)
		return;
	d->flows_due = false;
	drops_collect(ml_bpf_map_fd(&d->bpf, ML_MAP_DROP_FLOWS), ml_bpf_flow_epoch(&d->bpf) ^ 1,
		      &d->reasons, on_drop_flow, d);
	if (d->pl.sink)
		accesslog_flush(d->pl.sink);
}

/*
 * One pass of the iterator over the socket storage: a LIVE record per open
 * connection, so byte counters advance while connections stay open. The
 * ringbuf is drained first, so a connection's close record is never
 * accounted before a LIVE record read earlier (see metrics.h).
 */
/* Every this many refreshes the iterator reports idle connections too. */
#define ML_FULL_PASS_EVERY 12

static void refresh_live(struct ml_daemon *d)
{
	const size_t rec = sizeof(struct tcp_probe_info);
	bool full = d->refreshes++ % ML_FULL_PASS_EVERY == 0;
	size_t have = 0;
	ssize_t n;
	int fd;

	drain(d);
	if (!ml_bpf_on(&d->bpf, ML_FEAT_LIVE)) /* bytes counted at close */
		goto drops;
	fd = ml_bpf_iter_open(&d->bpf, full);
	if (fd < 0) {
		fprintf(stderr, "meshlens: live-socket iterator: %s\n", strerror(-fd));
		goto drops;
	}
	metrics_live_begin(d->pl.metrics, full);
	for (;;) {
		if (d->iter_cap - have < 64 * rec) {
			size_t cap = d->iter_cap ? d->iter_cap * 2 : 256 * rec;
			char *nb = realloc(d->iter_buf, cap);

			if (!nb)
				break;
			d->iter_buf = nb;
			d->iter_cap = cap;
		}
		n = read(fd, d->iter_buf + have, d->iter_cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		/* hand over whole records, keep a partial one for the next read */
		size_t whole = have - have % rec;

		for (size_t off = 0; off < whole; off += rec)
			ml_pipeline_record(&d->pl, d->iter_buf + off, rec);
		memmove(d->iter_buf, d->iter_buf + whole, have - whole);
		have -= whole;
		/* a long pass must not let the ringbuf fill up behind it; closes
		 * read now are safe: a closed socket is no longer reported live */
		drain(d);
	}
	close(fd);
	metrics_live_end(d->pl.metrics, (uint64_t)ns_now(CLOCK_MONOTONIC), full);
drops:
	if (ml_bpf_on(&d->bpf, ML_FEAT_DROPS)) {
		/* new drops go to the other epoch; this one is taken out at the
		 * next drain tick, once no program can be adding to it (probe.h) */
		collect_flows(d);
		ml_bpf_flip_flow_epoch(&d->bpf);
		d->flows_due = true;
		/* one diagnosis per full-pass period: meshlens_diag_findings covers
		 * the last whole period, not the time since boot */
		if (full)
			diag_run(d->diag, NULL, 0);
		diag_refresh(d->diag); /* what scrapes show until the next refresh */
	}
}

/*
 * meshlens_node_tcp_retransmits_total{family,state}: every socket of the
 * node, from the per-CPU slots the tracepoint programs count into. The
 * TCP states proper (ESTABLISHED 1 .. CLOSING 11) are always there, from
 * 0, so rate() has a start; other slots once they counted something.
 */
static void render_node_retrans(struct ml_daemon *d, struct expo *e)
{
	static const char name[] = "meshlens_node_tcp_retransmits_total";
	int fd = ml_bpf_map_fd(&d->bpf, ML_MAP_RETRANS);
	__u64 vals[d->ncpus];
	char other[16];

	if (fd < 0) /* refused on this kernel: --probe says so */
		return;
	expo_family(e, name, "counter",
		    "TCP segments retransmitted by every socket of the node (all network "
		    "namespaces), sent without error (TcpRetransSegs - TCPRetransFail), by "
		    "family and socket state (SYN_SENT: SYN, SYN_RECV: SYN-ACK).");
	for (__u32 slot = 0; slot < ML_RTX_SLOTS; slot++) {
		unsigned int state = slot % ML_RTX_STATES;
		uint64_t sum = 0;

		if (bpf_map_lookup_elem(fd, &slot, vals))
			continue;
		for (int c = 0; c < d->ncpus; c++)
			sum += vals[c];
		if (!sum && (state < 1 || state > 11))
			continue;
		/* a state the kernel does not have (yet): by number, never twice "UNKNOWN" */
		snprintf(other, sizeof(other), "STATE_%u", state);
		expo_sample_u64(e, name,
				(const char *const[]){
					"family", slot < ML_RTX_STATES ? "ipv4" : "ipv6", "state",
					state >= 1 && state <= 12 ? ml_tcp_state_name(state) : other,
					NULL },
				sum);
	}
}

/* The aggregations' own gauges and counters, by set of families. */
static void render_series_stats(struct ml_daemon *d, struct expo *e)
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

	metrics_stats(d->pl.metrics, &st);
	for (int k = 0; k < METRICS_SETS; k++)
		if (st.enabled[k])
			rows[n++] = (typeof(rows[0])){ metrics_set_name(k),
						       { st.series[k], d->opt.max_series,
							 st.folded[k], st.dropped[k] } };
	if (d->drop_wl) {
		drop_wl_stats(d->drop_wl, &ds);
		rows[n++] = (typeof(rows[0])){ "workload_drop",
					       { ds.series, d->opt.max_series, ds.folded, 0 } };
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

/* Prometheus text for a scrape: everything, rendered on the loop thread. */
static void render_metrics(struct ml_daemon *d)
{
	static const char *const sources[] = { [ML_REC_CONN_OPEN] = "conn_open",
					       [ML_REC_CONN_CLOSE] = "conn_close",
					       [ML_REC_CONN_FAILED] = "conn_failed",
					       [ML_REC_CONN_LIVE] = "live_socket" };
	int64_t t0 = ns_now(CLOCK_MONOTONIC);
	struct expo *e = &d->expo;
	struct ml_feature f[8];
	char *body;
	int i, n;

	drain(d);
	expo_reset(e);
	expo_family(e, "meshlens_build_info", "gauge", "meshlens version, always 1.");
	expo_sample_u64(e, "meshlens_build_info",
			(const char *const[]){ "version", MESHLENS_VERSION, NULL }, 1);
	expo_family(e, "meshlens_hook_info", "gauge",
		    "The kernel hook serving each feature on this kernel, always 1.");
	n = ml_bpf_features(&d->bpf, f, 8);
	for (i = 0; i < n; i++)
		if (f[i].state != ML_FS_OFF)
			expo_sample_u64(e, "meshlens_hook_info",
					(const char *const[]){ "feature", f[i].name, "hook",
							       f[i].hook, NULL },
					1);
	expo_family(e, "meshlens_feature_info", "gauge",
		    "Every feature, always 1: state on (preferred hook), fallback (a later "
		    "variant: --probe says why) or off, and the hook serving it (none when off).");
	for (i = 0; i < n; i++)
		expo_sample_u64(e, "meshlens_feature_info",
				(const char *const[]){ "feature", f[i].name, "state",
						       ml_feature_state_name(f[i].state), "hook",
						       f[i].hook ? f[i].hook : "none", NULL },
				1);
	expo_family(e, "meshlens_events_total", "counter",
		    "Records received from the kernel, by source.");
	for (i = ML_REC_CONN_CLOSE; i <= ML_REC_CONN_LIVE; i++)
		expo_sample_u64(e, "meshlens_events_total",
				(const char *const[]){ "source", sources[i], NULL }, d->pl.by_type[i]);
	expo_family(e, "meshlens_events_lost_total", "counter",
		    "Records lost, by where: ringbuf full (counted in the kernel), socket "
		    "storage exhausted, access-log lines not written.");
	expo_sample_u64(e, "meshlens_events_lost_total",
			(const char *const[]){ "source", "access_log", NULL },
			d->pl.sink ? accesslog_lost_lines(d->pl.sink) : 0);
	expo_sample_u64(e, "meshlens_events_lost_total",
			(const char *const[]){ "source", "ringbuf", NULL },
			kernel_counter(d, ML_CNT_RECORDS_LOST));
	expo_sample_u64(e, "meshlens_events_lost_total",
			(const char *const[]){ "source", "ringbuf_open", NULL },
			kernel_counter(d, ML_CNT_OPEN_LOST));
	expo_sample_u64(e, "meshlens_events_lost_total",
			(const char *const[]){ "source", "recursion", NULL },
			ml_bpf_recursion_misses(&d->bpf));
	expo_sample_u64(e, "meshlens_events_lost_total",
			(const char *const[]){ "source", "socket_storage", NULL },
			kernel_counter(d, ML_CNT_STORAGE_FAIL));
	if (ml_bpf_on(&d->bpf, ML_FEAT_DROPS))
		expo_sample_u64(e, "meshlens_events_lost_total",
				(const char *const[]){ "source", "drop_flows", NULL },
				kernel_counter(d, ML_CNT_FLOWS_FULL));
	metrics_render(d->pl.metrics, e);
	render_node_retrans(d, e);
	if (ml_bpf_on(&d->bpf, ML_FEAT_DROPS)) {
		drops_render(ml_bpf_map_fd(&d->bpf, ML_MAP_DROP_COUNTS), d->ncpus, &d->reasons, e);
		if (d->drop_wl)
			drop_wl_render(d->drop_wl, &d->reasons, e);
		diag_render(d->diag, e);
	}
	render_series_stats(d, e);
	expo_family(e, "meshlens_scrape_duration_seconds", "gauge",
		    "Time spent rendering this scrape.");
	expo_sample_f64(e, "meshlens_scrape_duration_seconds", NULL,
			(double)(ns_now(CLOCK_MONOTONIC) - t0) / 1e9);
	if (e->oom || !(body = malloc(e->len ? e->len : 1))) {
		fprintf(stderr, "meshlens: out of memory rendering metrics\n");
		return;
	}
	memcpy(body, e->buf, e->len);
	metrics_http_publish(d->http, body, e->len);
}

/* ---- set-up ---------------------------------------------------------------- */

static int open_cgroups(struct ml_daemon *d)
{
	static char *root_only[1] = { "." };
	char **paths = d->opt.n_cgroups ? d->opt.cgroups : root_only;
	int n = d->opt.n_cgroups ? d->opt.n_cgroups : 1;
	int i, fd, err;

	err = cgroup_v2_root(d->cg_root, sizeof(d->cg_root), ML_PRIVATE_CGROUP2);
	if (err) {
		fprintf(stderr, "meshlens: finding cgroup v2: %s\n", strerror(-err));
		return 1;
	}
	for (i = 0; i < n; i++) {
		fd = cgroup_open(d->cg_root, paths[i]);
		if (fd == -EMEDIUMTYPE) {
			fprintf(stderr,
				"meshlens: --cgroup '%s': not a cgroup v2 directory "
				"(cgroup v2 is mounted at %s)\n",
				paths[i], d->cg_root);
			return 2;
		}
		if (fd < 0) {
			fprintf(stderr, "meshlens: --cgroup '%s': %s\n", paths[i], strerror(-fd));
			return 2;
		}
		d->cg_fds[d->n_cg++] = fd;
	}
	/* programs on a cgroup run for the sockets of all below it too: a
	 * second attachment below would record each socket twice */
	for (i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			if (i == j || cgroup_within(d->cg_fds[i], d->cg_fds[j]) != 1)
				continue;
			if (cgroup_within(d->cg_fds[j], d->cg_fds[i]) == 1)
				fprintf(stderr,
					"meshlens: --cgroup '%s' and --cgroup '%s' are the same cgroup\n",
					paths[i], paths[j]);
			else
				fprintf(stderr,
					"meshlens: --cgroup '%s' is inside --cgroup '%s', which already "
					"sees its sockets: give only '%s'\n",
					paths[j], paths[i], paths[i]);
			return 2;
		}
	return 0;
}

static int open_sink(struct ml_daemon *d)
{
	const char *dest = d->opt.access_log;

	if (!strcmp(dest, "off"))
		return 0;
	d->pl.sink = accesslog_open(dest);
	if (!d->pl.sink) {
		fprintf(stderr, "meshlens: --access-log '%s': %s\n", dest, accesslog_strerror(-errno));
		return 2;
	}
	if (d->opt.log_max_size_kb > 0) {
		int err = accesslog_set_rotation(d->pl.sink, (uint64_t)d->opt.log_max_size_kb * 1024,
						 d->opt.log_max_files);

		if (err) {
			fprintf(stderr, "meshlens: --access-log '%s': rotation: %s\n", dest,
				strerror(-err));
			return 2;
		}
	}
	return 0;
}

/*
 * Aggregation always runs (it is cheap); the endpoint binds before any
 * program loads, so a taken port is a usage error with nothing attached,
 * and /healthz can answer 503 while loading.
 */
static int start_metrics(struct ml_daemon *d)
{
	struct metrics_config cfg = {
		.max_series = d->opt.max_series,
		.series_idle_seconds = d->opt.series_idle_seconds,
		.ip_pairs = d->opt.ip_pair_metrics,
		.format_addr = ml_format_addr,
	};
	char err[ML_ERR_LEN];

	/* names come from the metadata file: without one every end is unknown */
	if (d->opt.workload_metrics && d->opt.metadata) {
		cfg.identify = ml_pipeline_names;
		cfg.identify_ctx = &d->pl;
	}
	d->pl.metrics = metrics_new(&cfg);
	if (!d->pl.metrics) {
		fprintf(stderr, "meshlens: metrics: %s\n", strerror(ENOMEM));
		return 1;
	}
	if (!strcmp(d->opt.metrics_addr, "off"))
		return 0;
	d->http = metrics_http_start(d->opt.metrics_addr, err, sizeof(err));
	if (!d->http) {
		fprintf(stderr, "meshlens: %s\n", err);
		return 2;
	}
	return 0;
}

static int add_fd(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* a periodic timer of ms milliseconds, the first tick ms from now */
static int set_timer(int fd, unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	struct itimerspec its = { .it_interval = ts, .it_value = ts };

	return timerfd_settime(fd, 0, &its, NULL) ? -errno : 0;
}

static int setup_loop(struct ml_daemon *d)
{
	sigset_t mask;
	int ret;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	d->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	d->rfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->sfd < 0 || d->tfd < 0 || d->rfd < 0 || d->epfd < 0)
		return -errno;
	ret = set_timer(d->tfd, d->opt.drain_interval_ms);
	if (!ret)
		ret = set_timer(d->rfd, d->opt.refresh_interval_ms);
	if (ret)
		return ret;
	ret = ml_ring_open(&d->ring, ml_bpf_map_fd(&d->bpf, ML_MAP_EVENTS),
			   ml_bpf_ringbuf_bytes(&d->bpf));
	if (ret)
		return ret;
	if (add_fd(d->epfd, d->sfd) || add_fd(d->epfd, d->tfd) || add_fd(d->epfd, d->rfd) ||
	    add_fd(d->epfd, d->ring.map_fd) ||
	    (d->http && add_fd(d->epfd, metrics_http_notify_fd(d->http))))
		return -errno;
	return 0;
}

/* --metadata: load before anything is attached; a bad file is bad usage */
static int open_metadata(struct ml_daemon *d)
{
	char err[ML_ERR_LEN];

	if (!d->opt.metadata)
		return 0;
	d->pl.md = ml_metadata_open(d->opt.metadata, d->cg_root, err, sizeof(err));
	if (!d->pl.md) {
		fprintf(stderr, "meshlens: --metadata: %s\n", err);
		return 2;
	}
	if (ml_metadata_warning(d->pl.md)[0])
		fprintf(stderr, "meshlens: --metadata: %s: %s\n", d->opt.metadata,
			ml_metadata_warning(d->pl.md));
	return 0;
}

/*
 * What a reload says: at most one line a second (a writer replacing the
 * file in a loop, or a SIGHUP storm, must not flood stderr); one held back
 * is said by the drain timer once the second is over, so the last word
 * is always said.
 */
#define ML_RELOAD_SAY_NS 1000000000LL

static void say_reload_held(struct ml_daemon *d)
{
	if (!d->reload_held || ns_now(CLOCK_MONOTONIC) - d->reload_said_ns < ML_RELOAD_SAY_NS)
		return;
	if (d->reload_held > 1)
		fprintf(stderr, "meshlens: %s (the last of %u reloads in a second)\n",
			d->reload_text, d->reload_held);
	else
		fprintf(stderr, "meshlens: %s\n", d->reload_text);
	d->reload_held = 0;
	d->reload_said_ns = ns_now(CLOCK_MONOTONIC);
}

/* Parse the file again; the old table stays when the new one is bad. */
static void reload_metadata(struct ml_daemon *d)
{
	char err[ML_ERR_LEN];
	const char *warn;

	if (!d->pl.md)
		return;
	drain(d); /* records closed before the change get the old names */
	if (ml_metadata_reload(d->pl.md, err, sizeof(err))) {
		snprintf(d->reload_text, sizeof(d->reload_text),
			 "reloading metadata: %s (keeping the previous one)", err);
	} else {
		warn = ml_metadata_warning(d->pl.md);
		snprintf(d->reload_text, sizeof(d->reload_text), "metadata reloaded from %s%s%s",
			 ml_metadata_path(d->pl.md), warn[0] ? ": " : "", warn);
	}
	d->reload_held++;
	say_reload_held(d);
}

/*
 * Watch the directory, not the file: editors and config writers replace
 * the file by renaming a new one over it, which a watch on the old inode
 * never sees.
 */
static int watch_metadata(struct ml_daemon *d)
{
	char dir[PATH_MAX];
	const char *path = d->opt.metadata, *slash;

	if (!d->pl.md)
		return 0;
	slash = strrchr(path, '/');
	d->md_name = slash ? slash + 1 : path;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	d->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (d->ifd < 0 || inotify_add_watch(d->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
		return -errno;
	return add_fd(d->epfd, d->ifd);
}

/* inotify events of the directory: reload once if any is about the file */
static void metadata_changed(struct ml_daemon *d)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	bool hit = false;
	ssize_t n;

	while ((n = read(d->ifd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->len && !strcmp(ev->name, d->md_name))
				hit = true;
		}
	if (hit)
		reload_metadata(d);
}

/*
 * An observed cgroup removed (its pod gone, say): said once on stderr, and
 * by /healthz while it lasts (still 200: the daemon is well, and a restart
 * would not bring the cgroup back). A cgroup made again at that path is
 * another one, without the programs: the daemon must be restarted on it.
 */
static void check_cgroups(struct ml_daemon *d)
{
	char note[256] = "";

	for (int i = 0; i < d->n_cg; i++) {
		const char *path = d->opt.n_cgroups ? d->opt.cgroups[i] : ".";
		bool gone = faccessat(d->cg_fds[i], "cgroup.procs", F_OK, 0) && errno == ENOENT;

		if (gone && !d->cg_gone[i])
			fprintf(stderr,
				"meshlens: --cgroup '%s' is gone: nothing below it is observed any more\n",
				path);
		d->cg_gone[i] = gone;
		if (gone && !note[0])
			snprintf(note, sizeof(note), "cgroup '%s' is gone: nothing below it is observed",
				 path);
	}
	if (d->http)
		metrics_http_set_health_note(d->http, note);
}

/* ---- config reload ----------------------------------------------------------- */

/* The keys a running daemon takes from a reloaded config; the others decide
 * programs, maps, sockets and files set up once, and need a restart. */
static const char *const ml_live_keys[] = {
	"drain_interval_ms", "refresh_interval_ms", "include", "exclude",
	"log_max_size_kb", "log_max_files", "series_idle_seconds",
};

static bool is_live_key(const char *key)
{
	for (size_t i = 0; i < sizeof(ml_live_keys) / sizeof(ml_live_keys[0]); i++)
		if (!strcmp(key, ml_live_keys[i]))
			return true;
	return false;
}

static void add_word(char *list, size_t len, const char *word)
{
	size_t n = strlen(list);

	snprintf(list + n, len - n, "%s%s", n ? ", " : "", word);
}

/* Take what is live from n into d (n then owns what d had); 0 or -errno. */
static int apply_live(struct ml_daemon *d, struct ml_options *n, char *err, size_t errlen)
{
	struct ml_options *o = &d->opt;
	int ret = 0;

	if (ml_bpf_on(&d->bpf, ML_FEAT_DROPS)) {
		/* validated before anything changes: a bad name keeps the old selection */
		ret = drop_reasons_select(&d->reasons, n->include, n->n_include, n->exclude,
					  n->n_exclude, err, errlen);
		if (ret)
			return ret;
		ret = drops_apply_filter(ml_bpf_map_fd(&d->bpf, ML_MAP_DROP_FILTER), &d->reasons);
		if (ret) {
			snprintf(err, errlen, "drop selection: %s", strerror(-ret));
			return ret;
		}
	}
	if ((n->drain_interval_ms != o->drain_interval_ms &&
	     (ret = set_timer(d->tfd, n->drain_interval_ms))) ||
	    (n->refresh_interval_ms != o->refresh_interval_ms &&
	     (ret = set_timer(d->rfd, n->refresh_interval_ms)))) {
		snprintf(err, errlen, "timers: %s", strerror(-ret));
		return ret;
	}
	if (d->pl.sink && (n->log_max_size_kb != o->log_max_size_kb ||
			   n->log_max_files != o->log_max_files)) {
		ret = accesslog_set_rotation(d->pl.sink, (uint64_t)n->log_max_size_kb * 1024,
					     n->log_max_files);
		if (ret) {
			snprintf(err, errlen, "rotation: %s", strerror(-ret));
			return ret;
		}
	}
	if (d->pl.metrics)
		metrics_set_series_idle(d->pl.metrics, n->series_idle_seconds);
	o->drain_interval_ms = n->drain_interval_ms;
	o->refresh_interval_ms = n->refresh_interval_ms;
	o->log_max_size_kb = n->log_max_size_kb;
	o->log_max_files = n->log_max_files;
	o->series_idle_seconds = n->series_idle_seconds;
	for (int i = 0; i < ML_MAX_POINTS; i++) {
		char *t = o->include[i];

		o->include[i] = n->include[i];
		n->include[i] = t;
		t = o->exclude[i];
		o->exclude[i] = n->exclude[i];
		n->exclude[i] = t;
	}
	ret = o->n_include;
	o->n_include = n->n_include;
	n->n_include = ret;
	ret = o->n_exclude;
	o->n_exclude = n->n_exclude;
	n->n_exclude = ret;
	return 0;
}

/*
 * SIGHUP with -c: the config file read again, the command line still on
 * top. The live keys are applied; a changed key of the others is named as
 * needing a restart. A bad file, or a bad value, changes nothing.
 */
static void reload_config(struct ml_daemon *d)
{
	char err[ML_ERR_LEN] = "", applied[256] = "", restart[256] = "";
	char *old_text = NULL, *new_text = NULL;
	cJSON *old = NULL, *cur = NULL, *k, *v;
	struct ml_options n;

	if (!d->opt.config_path)
		return;
	ml_options_init(&n);
	if (ml_options_parse(&n, d->argc, d->argv, err, sizeof(err)))
		goto said;
	old_text = ml_config_dump(&d->opt);
	new_text = ml_config_dump(&n);
	old = old_text ? cJSON_Parse(old_text) : NULL;
	cur = new_text ? cJSON_Parse(new_text) : NULL;
	if (!old || !cur) {
		snprintf(err, sizeof(err), "%s", strerror(ENOMEM));
		goto said;
	}
	cJSON_ArrayForEach(k, old) {
		v = cJSON_GetObjectItemCaseSensitive(cur, k->string);
		if (!v || !cJSON_Compare(k, v, true))
			add_word(is_live_key(k->string) ? applied : restart,
				 is_live_key(k->string) ? sizeof(applied) : sizeof(restart), k->string);
	}
	if (applied[0] && apply_live(d, &n, err, sizeof(err)))
		goto said;
	if (applied[0] || restart[0])
		fprintf(stderr, "meshlens: config reloaded from %s: applied %s; needs a restart: %s\n",
			d->opt.config_path, applied[0] ? applied : "nothing",
			restart[0] ? restart : "nothing");
	goto out;
said:
	fprintf(stderr, "meshlens: reloading config: %s (nothing changed)\n", err);
out:
	cJSON_Delete(old);
	cJSON_Delete(cur);
	free(old_text);
	free(new_text);
	ml_options_free(&n);
}

/* ---- run -------------------------------------------------------------------- */

/*
 * Deliver everything queued so far. The programs stay attached through
 * their pinned links: what closes while no daemon runs waits in the pinned
 * ringbuf for the next one (`meshlens --detach` removes it all).
 */
static void shutdown_and_drain(struct ml_daemon *d)
{
	drain(d);
}

static int run_loop(struct ml_daemon *d)
{
	struct epoll_event evs[8];
	struct signalfd_siginfo si;
	uint64_t ticks;
	int i, n;

	for (;;) {
		n = epoll_wait(d->epfd, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "meshlens: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == d->tfd) {
				if (read(d->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					return 1;
				collect_flows(d);
			} else if (evs[i].data.fd == d->rfd) {
				if (read(d->rfd, &ticks, sizeof(ticks)) > 0) {
					refresh_live(d);
					check_cgroups(d);
				}
			} else if (d->http && evs[i].data.fd == metrics_http_notify_fd(d->http)) {
				if (metrics_http_wanted(d->http))
					render_metrics(d);
			} else if (d->ifd >= 0 && evs[i].data.fd == d->ifd) {
				metadata_changed(d);
			} else if (evs[i].data.fd == d->sfd) {
				if (read(d->sfd, &si, sizeof(si)) != sizeof(si))
					continue;
				if (si.ssi_signo == SIGHUP) {
					int err = d->pl.sink ? accesslog_reopen(d->pl.sink) : 0;

					if (err)
						fprintf(stderr,
							"meshlens: reopening access log %s: %s "
							"(lines are counted lost until it can be)\n",
							d->opt.access_log, accesslog_strerror(err));
					reload_config(d);
					reload_metadata(d);
					continue;
				}
				shutdown_and_drain(d);
				fprintf(stderr, "meshlens: exiting on signal %u, %llu records\n",
					si.ssi_signo, (unsigned long long)d->pl.records);
				return 0;
			}
		}
		drain(d);
	}
}

/* --probe: one line per feature: name, state, hook (or "-"), and why */
static int print_probe(struct ml_bpf *b)
{
	struct ml_feature f[8];
	int i, n = ml_bpf_features(b, f, 8);

	for (i = 0; i < n; i++) {
		printf("%-18s %-9s %s", f[i].name, ml_feature_state_name(f[i].state),
		       f[i].hook ? f[i].hook : "-");
		if (f[i].reason[0])
			printf("  (%s)", f[i].reason);
		printf("\n");
	}
	return 0;
}

/* "live-counters=iter/task_file packet-drops=off ...": the ready line's */
static void features_summary(struct ml_bpf *b, char *out, size_t len)
{
	struct ml_feature f[8];
	int n = ml_bpf_features(b, f, 8);
	size_t used = 0;

	out[0] = '\0';
	for (int i = 2; i < n && used < len; i++) /* the core's two always serve */
		used += (size_t)snprintf(out + used, len - used, "%s%s=%s", used ? " " : "",
					 f[i].name, f[i].hook ? f[i].hook : "off");
}

/*
 * After attaching, keep only CAP_BPF, and become --user if given. Map reads
 * on kernels before 6.5 with unprivileged BPF disabled need CAP_BPF;
 * nothing else the loop does (map and iterator fds, the bound metrics
 * socket, netlink dumps, /proc, the open log file) needs a capability.
 * Loading and attaching again is for the next daemon, started as root.
 */
/* keep_bpf: CAP_BPF is still needed after attach (ml_bpf_needs_cap_bpf) */
static int drop_privileges(const char *user, bool keep_bpf)
{
	const cap_value_t keep[] = { CAP_BPF };
	struct passwd *pw = NULL;
	cap_t caps;
	int ret = 0;

	if (user) {
		pw = getpwnam(user);
		if (!pw) {
			fprintf(stderr, "meshlens: --user '%s': no such user\n", user);
			return 2;
		}
	}
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
		if ((c != CAP_BPF || !keep_bpf) && CAP_IS_SUPPORTED(c))
			cap_drop_bound(c);
	if (pw && (prctl(PR_SET_KEEPCAPS, 1) || setgroups(0, NULL) || setgid(pw->pw_gid) ||
		   setuid(pw->pw_uid))) {
		fprintf(stderr, "meshlens: --user '%s': %s\n", user, strerror(errno));
		return 1;
	}
	caps = cap_init();
	if (!caps || (keep_bpf && (cap_set_flag(caps, CAP_EFFECTIVE, 1, keep, CAP_SET) ||
				   cap_set_flag(caps, CAP_PERMITTED, 1, keep, CAP_SET))) ||
	    cap_set_proc(caps) ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		fprintf(stderr, "meshlens: dropping capabilities: %s\n", strerror(errno));
		ret = 1;
	}
	cap_free(caps);
	return ret;
}

/*
 * Drop points: named from this kernel's BTF, selected by --include and
 * --exclude; needed for --list, --drops and to validate the selection.
 */
static int load_reasons(struct ml_daemon *d)
{
	struct ml_options *o = &d->opt;
	char err[ML_ERR_LEN];

	if (drop_reasons_load(&d->reasons, NULL, err, sizeof(err))) {
		fprintf(stderr, "meshlens: drop reasons: %s\n", err);
		return 1;
	}
	if (drop_reasons_select(&d->reasons, o->include, o->n_include, o->exclude, o->n_exclude,
				err, sizeof(err))) {
		fprintf(stderr, "meshlens: %s\n", err);
		return 2;
	}
	return 0;
}

/* --diagnose: one pass over every source, printed. */
static int diagnose_once(void)
{
	struct diag_finding f[64];
	struct diag_state *s = diag_new();
	int n = s ? diag_run(s, f, 64) : -ENOMEM;

	if (n < 0) {
		fprintf(stderr, "meshlens: diagnosis: %s\n", strerror(-n));
		diag_free(s);
		return 1;
	}
	diag_print(stdout, f, n);
	diag_free(s);
	return 0;
}

static void cleanup(struct ml_daemon *d)
{
	int i;

	if (d->http)
		metrics_http_stop(d->http);
	ml_ring_close(&d->ring);
	ml_bpf_destroy(&d->bpf);
	metrics_free(d->pl.metrics);
	drop_reasons_free(&d->reasons);
	diag_free(d->diag);
	drop_wl_free(d->drop_wl);
	expo_free(&d->expo);
	free(d->iter_buf);
	if (d->pl.sink)
		accesslog_close(d->pl.sink);
	for (i = 0; i < d->n_cg; i++)
		close(d->cg_fds[i]);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->tfd >= 0)
		close(d->tfd);
	if (d->rfd >= 0)
		close(d->rfd);
	if (d->sfd >= 0)
		close(d->sfd);
	if (d->ifd >= 0)
		close(d->ifd);
	ml_metadata_free(d->pl.md);
	ml_options_free(&d->opt);
}

int main(int argc, char **argv)
{
	static struct ml_daemon d = { .epfd = -1, .tfd = -1, .sfd = -1, .rfd = -1, .ifd = -1 };
	char err[ML_ERR_LEN];
	sigset_t sigs;
	bool keep_bpf;
	int ret;

	/*
	 * Big blocks (the connection table as it doubles, libbpf's 16 MiB
	 * verifier-log buffer for a refused variant) mmap'd and given back
	 * when freed. glibc's default raises its mmap threshold to the size of
	 * the last big block freed: after that log buffer, every older
	 * connection table stayed in the heap, freed but resident (25 MiB of
	 * 74 at 100 000 live connections, measured with massif and smaps).
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	ml_options_init(&d.opt);
	d.argc = argc;
	d.argv = argv;
	ret = ml_options_parse(&d.opt, argc, argv, err, sizeof(err));
	if (ret) {
		ret = usage_error(err);
		goto out;
	}
	if (d.opt.help) {
		ml_options_usage(stdout);
		goto out;
	}
	if (d.opt.version) {
		printf("meshlens %s\n", MESHLENS_VERSION);
		goto out;
	}
	if (d.opt.gen_config) {
		char *text = ml_config_dump(&d.opt);

		ret = text ? (printf("%s\n", text) < 0) : 1;
		free(text);
		goto out;
	}
	if (d.opt.user && !getpwnam(d.opt.user)) { /* before anything is attached */
		fprintf(stderr, "meshlens: --user '%s': no such user\n", d.opt.user);
		ret = 2;
		goto out;
	}
	if (d.opt.list || d.opt.drops || d.opt.n_include || d.opt.n_exclude) {
		ret = load_reasons(&d);
		if (ret)
			goto out;
	}
	if (d.opt.list) {
		drop_reasons_list(&d.reasons, stdout);
		goto out;
	}
	if (d.opt.diagnose) {
		ret = diagnose_once();
		goto out;
	}
	if (d.opt.detach && geteuid() == 0) {
		ret = ml_bpf_unpin_all(d.opt.pin_path, err, sizeof(err));
		/* a path that is no pin directory of ours is bad usage */
		ret = !ret ? 0 : ret == -EINVAL || ret == -EMEDIUMTYPE || ret == -EBUSY ? 2 : 1;
		if (ret)
			fprintf(stderr, "meshlens: --detach: %s\n", err);
		goto out;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "meshlens: must run as root (loading and attaching BPF programs "
				"needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)\n");
		ret = 2;
		goto out;
	}
	d.ncpus = libbpf_num_possible_cpus();
	/* Block the signals the loop reads from its signalfd before any thread
	 * starts (the HTTP threads inherit the mask): a SIGTERM delivered to a
	 * thread that does not block it would kill the process undrained. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!d.opt.probe) {
		ret = open_cgroups(&d);
		if (!ret)
			ret = open_metadata(&d);
		if (!ret)
			ret = open_sink(&d);
		if (!ret)
			ret = start_metrics(&d);
		if (ret)
			goto out;
	}
	ret = ml_bpf_load(&d.bpf,
			  &(struct ml_load_opts){ .ringbuf_bytes = d.opt.ringbuf_bytes,
						  .drops = d.opt.drops,
						  /* the drop log, drops by workload */
						  .drop_flows = d.pl.sink || (d.opt.metadata &&
									      d.opt.workload_metrics),
						  .pin_dir = d.opt.probe ? NULL : d.opt.pin_path },
			  err, sizeof(err));
	if (ret) {
		fprintf(stderr, "meshlens: %s\n", err);
		/* a --pin-path that cannot be one is bad usage */
		ret = ret == -EMEDIUMTYPE || ret == -ENOENT || ret == -ENOTDIR || ret == -EINVAL ||
				      ret == -EBUSY
			      ? 2
			      : 1;
		goto out;
	}
	if (d.pl.metrics && d.bpf.variant[ML_FEAT_LIVE] > 0) /* iter/task_file: see metrics.h */
		metrics_live_set_expiry(d.pl.metrics, 10);
	if (ml_bpf_on(&d.bpf, ML_FEAT_DROPS) && !d.opt.probe) {
		ret = drops_apply_filter(ml_bpf_map_fd(&d.bpf, ML_MAP_DROP_FILTER), &d.reasons);
		d.diag = diag_new();
		if (d.diag)
			diag_refresh(d.diag); /* the first scrape's figures */
		if (d.opt.metadata && d.opt.workload_metrics)
			d.drop_wl = drop_wl_new(d.opt.max_series);
		if (!ret && (!d.diag || (d.opt.metadata && d.opt.workload_metrics && !d.drop_wl)))
			ret = -ENOMEM;
		if (ret) {
			fprintf(stderr, "meshlens: setting up drop tracing: %s\n",
				strerror(-ret));
			ret = 1;
			goto out;
		}
		d.pl.reasons = &d.reasons;
	}
	if (d.opt.probe) {
		ret = print_probe(&d.bpf);
		goto out;
	}
	ret = setup_loop(&d);
	if (!ret)
		ret = watch_metadata(&d);
	if (ret) {
		fprintf(stderr, "meshlens: setting up the event loop: %s\n", strerror(-ret));
		ret = 1;
		goto out;
	}
	if (ml_bpf_attach(&d.bpf, d.cg_fds, d.n_cg, err, sizeof(err))) {
		fprintf(stderr, "meshlens: %s\n", err);
		ret = 1;
		goto out;
	}
	keep_bpf = ml_bpf_needs_cap_bpf(&d.bpf);
	ret = drop_privileges(d.opt.user, keep_bpf);
	if (ret)
		goto out;
	if (d.http)
		metrics_http_set_ready(d.http, true);
	features_summary(&d.bpf, err, sizeof(err));
	fprintf(stderr,
		"meshlens: ready: %d cgroup(s) under %s, access log %s, metrics %s, %s, "
		"capabilities %s\n",
		d.n_cg, d.cg_root, d.opt.access_log, d.opt.metrics_addr, err,
		keep_bpf ? "CAP_BPF" : "none");
	ret = run_loop(&d);
out:
	cleanup(&d);
	return ret;
}
