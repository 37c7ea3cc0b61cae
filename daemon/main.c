// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshlens daemon: options -> probe/load -> attach -> ready -> event loop.
 *
 * Wiring only: the parts are modules (daemon.h). One thread, one loop
 * (loop.h) over the ringbuf, a drain timer, a refresh timer for the
 * counters of open connections, the metrics endpoint's snapshot requests,
 * the metadata file's directory and a signalfd. Records are not delivered
 * per event: the kernel side submits without waking us, the drain runs
 * after every wake-up and every drain_interval_ms, and the kernel wakes us
 * early only when the ring is filling up. The HTTP thread never touches
 * metric state: it asks the loop for a snapshot (metrics/http.h).
 *
 * Errors: every step returns 0 or -errno with one line in err; main alone
 * turns them into exit codes: 2 for what the user gave (options, paths,
 * the metadata file, a taken port), 1 for what failed at run time.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "metadata.h"
#include "privs.h"
#include "../lib/names.h"
#include "../metrics/http.h"

#ifndef MESHLENS_VERSION
#define MESHLENS_VERSION "0.1.0-dev"
#endif

#define ML_PRIVATE_CGROUP2 "/run/meshlens/cgroup2"

/* ---- the loop's handlers ------------------------------------------------ */

static void on_idle(void *ctx)
{
	struct ml_daemon *d = ctx;

	ml_drain_run(&d->drain);
	ml_reload_say_held(d);
}

static void on_drain_tick(void *ctx)
{
	struct ml_daemon *d = ctx;

	if (d->drops_on)
		ml_dropfeed_tick(&d->drops);
}

/*
 * An observed cgroup removed (its pod gone, say): said once on stderr, and
 * by /healthz while it lasts (still 200: the daemon is well, and a restart
 * would not bring the cgroup back). A cgroup made again at that path is
 * another one, without the programs: the daemon must be restarted on it.
 */
static void check_cgroups(struct ml_daemon *d)
{
	uint64_t newly = cgroup_set_check(&d->cg);
	char note[256] = "";

	for (int i = 0; i < d->cg.n; i++) {
		if (newly & (1ULL << i))
			fprintf(stderr,
				"meshlens: --cgroup '%s' is gone: nothing below it is observed any more\n",
				d->cg.path[i]);
		if (d->cg.gone[i] && !note[0])
			snprintf(note, sizeof(note), "cgroup '%s' is gone: nothing below it is observed",
				 d->cg.path[i]);
	}
	if (d->http)
		metrics_http_set_health_note(d->http, note);
}

static void on_refresh(void *ctx)
{
	struct ml_daemon *d = ctx;
	bool full = ml_live_refresh(&d->live);

	if (d->drops_on)
		ml_dropfeed_refresh(&d->drops, full);
	check_cgroups(d);
}

static void on_scrape(void *ctx)
{
	struct ml_daemon *d = ctx;

	if (metrics_http_wanted(d->http))
		ml_scrape(&d->scrape);
}

static void on_signal(void *ctx)
{
	struct ml_daemon *d = ctx;
	struct signalfd_siginfo si;
	int err;

	if (read(d->sfd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		err = d->pl.sink ? accesslog_reopen(d->pl.sink) : 0;
		if (err)
			fprintf(stderr,
				"meshlens: reopening access log %s: %s "
				"(lines are counted lost until it can be)\n",
				d->opt.access_log, accesslog_strerror(err));
		ml_reload_config(d);
		ml_reload_metadata(d);
		return;
	}
	/* Deliver everything queued so far. The programs stay attached through
	 * their pinned links: what closes while no daemon runs waits in the
	 * pinned ringbuf for the next one (`meshlens --detach` removes it all). */
	ml_drain_run(&d->drain);
	fprintf(stderr, "meshlens: exiting on signal %u, %llu records\n", si.ssi_signo,
		(unsigned long long)d->pl.records);
	ml_loop_stop(&d->loop, 0);
}

/* ---- set-up (each step: 0 or -errno with err) --------------------------- */

/* Aggregation always runs (it is cheap); names come from the metadata file. */
static int new_metrics(struct ml_daemon *d, char *err, size_t errlen)
{
	struct metrics_config cfg = {
		.max_series = d->opt.max_series,
		.series_idle_seconds = d->opt.series_idle_seconds,
		.ip_pairs = d->opt.ip_pair_metrics,
	};

	if ((d->opt.workload_metrics || d->opt.istio_metrics) && d->opt.metadata) {
		cfg.identify = ml_pipeline_names;
		cfg.istio = d->opt.istio_metrics;
		cfg.workload_off = !d->opt.workload_metrics;
		cfg.identify_ctx = &d->pl;
	}
	if (d->opt.log_interval_s && d->pl.sink) {
		cfg.interim_ns = (uint64_t)d->opt.log_interval_s * 1000000000ULL;
		cfg.interim = ml_pipeline_interim;
		cfg.interim_ctx = &d->pl;
	}
	d->pl.metrics = metrics_new(&cfg);
	if (d->pl.metrics)
		return 0;
	snprintf(err, errlen, "metrics: %s", strerror(ENOMEM));
	return -ENOMEM;
}

/* The signals the loop reads, blocked before any thread starts (the HTTP
 * threads inherit the mask: a SIGTERM delivered to a thread that does not
 * block it would kill the process undrained). */
static sigset_t loop_signals(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGHUP);
	return s;
}

static int setup_loop(struct ml_daemon *d)
{
	sigset_t sigs = loop_signals();
	int ret = ml_loop_init(&d->loop);

	d->loop.idle = on_idle;
	d->loop.idle_ctx = d;
	d->sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ret || d->sfd < 0)
		return ret ? ret : -errno;
	d->drain_tfd = ml_loop_timer(&d->loop, d->opt.drain_interval_ms, on_drain_tick, d);
	d->refresh_tfd = ml_loop_timer(&d->loop, d->opt.refresh_interval_ms, on_refresh, d);
	if (d->drain_tfd < 0 || d->refresh_tfd < 0)
		return d->drain_tfd < 0 ? d->drain_tfd : d->refresh_tfd;
	ret = ml_drain_open(&d->drain, &d->bpf, &d->pl);
	if (!ret)
		ret = ml_loop_add(&d->loop, d->sfd, on_signal, d);
	if (!ret)
		ret = ml_loop_add(&d->loop, d->drain.ring.map_fd, NULL, NULL); /* on_idle reads it */
	if (!ret && d->http)
		ret = ml_loop_add(&d->loop, metrics_http_notify_fd(d->http), on_scrape, d);
	return ret ? ret : ml_watch_metadata(d);
}

/* ---- start ------------------------------------------------------------------ */

/* Everything up to the ready line; 0 or the exit code. */
static int start(struct ml_daemon *d, char *err, size_t errlen)
{
	struct ml_options *o = &d->opt;
	bool by_workload = o->metadata && o->workload_metrics, keep_bpf;
	int ret;

	if (!o->probe) {
		/* what the user named, checked before anything is attached */
		if ((ret = cgroup_v2_root(d->cg_root, sizeof(d->cg_root), ML_PRIVATE_CGROUP2)))
			return ml_fail(ML_EXIT_RUNTIME, "finding cgroup v2", strerror(-ret));
		if (cgroup_set_open(&d->cg, d->cg_root,
				    o->n_cgroups ? (const char *const *)o->cgroups
						 : (const char *const[]){ "." },
				    o->n_cgroups ? o->n_cgroups : 1, err, errlen))
			return ml_fail(ML_EXIT_USAGE, "", err);
		if (o->metadata &&
		    !(d->pl.md = ml_metadata_open(o->metadata, d->cg_root, err, errlen)))
			return ml_fail(ML_EXIT_USAGE, "--metadata", err);
		if (d->pl.md && ml_metadata_warning(d->pl.md)[0])
			fprintf(stderr, "meshlens: --metadata: %s: %s\n", o->metadata,
				ml_metadata_warning(d->pl.md));
		if (strcmp(o->access_log, "off") &&
		    !(d->pl.sink = accesslog_open_rotating(o->access_log,
							   (uint64_t)o->log_max_size_kb * 1024,
							   o->log_max_files, &ret, err, errlen)))
			return ml_fail(ML_EXIT_USAGE, "", err);
		if ((ret = new_metrics(d, err, errlen)))
			return ml_fail(ML_EXIT_RUNTIME, "", err);
		/* bound before any program loads: a taken port is a usage error
		 * with nothing attached, and /healthz answers 503 while loading */
		if (strcmp(o->metrics_addr, "off") &&
		    !(d->http = metrics_http_start(o->metrics_addr, err, errlen)))
			return ml_fail(ML_EXIT_USAGE, "", err);
	}
	ret = ml_bpf_load(&d->bpf,
			  &(struct ml_load_opts){ .ringbuf_bytes = o->ringbuf_bytes,
						  .drops = o->drops,
						  /* the drop log, drops by workload */
						  .drop_flows = d->pl.sink || by_workload,
						  .pin_dir = o->probe ? NULL : o->pin_path },
			  err, errlen);
	/* a --pin-path that cannot be one is bad usage */
	if (ret)
		return ml_fail(ret == -EMEDIUMTYPE || ret == -ENOENT || ret == -ENOTDIR ||
					    ret == -EINVAL || ret == -EBUSY
				    ? ML_EXIT_USAGE
				    : ML_EXIT_RUNTIME,
			    "", err);
	if (o->probe)
		return ml_bpf_print_probe(&d->bpf, stdout), -1;
	if (ml_bpf_live_by_task(&d->bpf)) /* see metrics.h */
		metrics_live_set_expiry(d->pl.metrics, 10);
	if (d->bpf.rto_counted) /* the RTO families from the start, not the first close */
		metrics_rto_counted(d->pl.metrics);
	if (o->log_interval_s && d->pl.sink && !ml_bpf_live_full_records(&d->bpf))
		fprintf(stderr, "meshlens: log_interval_s: no interim lines on this kernel (live "
				"passes read no socket storage: --probe says why)\n");
	d->drops_on = ml_bpf_on(&d->bpf, ML_FEAT_DROPS);
	if (d->drops_on && ml_dropfeed_init(&d->drops, &d->bpf, &d->reasons, &d->pl, by_workload,
					    o->max_series, err, errlen))
		return ml_fail(ML_EXIT_RUNTIME, "", err);
	d->pl.reasons = d->drops_on ? &d->reasons : NULL;
	d->live = (struct ml_live){ .bpf = &d->bpf, .drain = &d->drain,
				    .every_pass_full = o->log_interval_s && d->pl.sink };
	d->scrape = (struct ml_scrape){ .bpf = &d->bpf, .drain = &d->drain,
					.drops = d->drops_on ? &d->drops : NULL, .http = d->http,
					.max_series = o->max_series,
					.ncpus = libbpf_num_possible_cpus() };
	if ((ret = setup_loop(d)))
		return ml_fail(ML_EXIT_RUNTIME, "setting up the event loop", strerror(-ret));
	if (ml_bpf_attach(&d->bpf, d->cg.fd, d->cg.n, err, errlen))
		return ml_fail(ML_EXIT_RUNTIME, "", err);
	keep_bpf = ml_bpf_needs_cap_bpf(&d->bpf);
	if ((ret = ml_drop_privileges(o->user, keep_bpf, err, errlen)))
		return ml_fail(ret == -ENOENT ? ML_EXIT_USAGE : ML_EXIT_RUNTIME, "", err);
	if (d->http)
		metrics_http_set_ready(d->http, true);
	ml_bpf_summary(&d->bpf, err, errlen);
	fprintf(stderr,
		"meshlens: ready: %d cgroup(s) under %s, access log %s, metrics %s, %s, "
		"capabilities %s\n",
		d->cg.n, d->cg_root, o->access_log, o->metrics_addr, err,
		keep_bpf ? "CAP_BPF" : "none");
	return 0;
}

static void cleanup(struct ml_daemon *d)
{
	if (d->http)
		metrics_http_stop(d->http);
	ml_drain_close(&d->drain);
	ml_bpf_destroy(&d->bpf);
	metrics_free(d->pl.metrics);
	drop_reasons_free(&d->reasons);
	ml_dropfeed_free(&d->drops);
	ml_scrape_free(&d->scrape);
	ml_live_free(&d->live);
	if (d->pl.sink)
		accesslog_close(d->pl.sink);
	cgroup_set_close(&d->cg);
	ml_loop_close(&d->loop);
	if (d->sfd >= 0)
		close(d->sfd);
	if (d->ifd >= 0)
		close(d->ifd);
	ml_metadata_free(d->pl.md);
	ml_options_free(&d->opt);
}

int main(int argc, char **argv)
{
	static struct ml_daemon d = { .sfd = -1, .ifd = -1, .loop.epfd = -1 };
	char err[ML_ERR_LEN];
	sigset_t sigs = loop_signals();
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
	if (ml_options_parse(&d.opt, argc, argv, err, sizeof(err))) {
		fprintf(stderr, "meshlens: %s (see --help)\n", err);
		ret = ML_EXIT_USAGE;
	} else if ((ret = ml_one_shot(&d, err, sizeof(err))) < 0) {
		sigprocmask(SIG_BLOCK, &sigs, NULL);
		signal(SIGPIPE, SIG_IGN);
		ret = start(&d, err, sizeof(err));
		ret = ret < 0 ? 0 : ret ? ret : ml_loop_run(&d.loop);
	}
	cleanup(&d);
	return ret;
}
