// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshlens daemon: options -> probe/load -> attach -> ready -> event loop.
 *
 * One thread, one epoll loop over the ringbuf, a drain timer and a
 * signalfd. Records are not delivered per event: the kernel side submits
 * without waking us, the timer drains every drain_interval_ms, and the
 * kernel wakes us early only when the ring is filling up.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "meshlens.skel.h"
#include "options.h"
#include "loader.h"
#include "../accesslog/accesslog.h"
#include "../cgroup/cgroup.h"

#ifndef MESHLENS_VERSION
#define MESHLENS_VERSION "0.1.0-dev"
#endif

#define ML_RUN_DIR "/run/meshlens"
#define ML_PRIVATE_CGROUP2 ML_RUN_DIR "/cgroup2"

struct ml_daemon {
	struct ml_options opt;
	struct ml_bpf bpf;
	struct ring_buffer *rb;
	struct accesslog_sink *sink; /* NULL when the access log is off */
	struct accesslog_clock clk;
	int epfd, tfd, sfd;
	int cg_fds[ML_MAX_CGROUPS];
	int n_cg;
	char cg_root[PATH_MAX];
	uint64_t records;       /* records decoded */
	uint64_t lost_reported; /* kernel-side losses already reported */
	uint64_t unwritten_reported; /* access-log lines lost to write errors, reported */
	time_t lost_said_at;
	int ncpus;
};

static int usage_error(const char *msg)
{
	fprintf(stderr, "meshlens: %s (see --help)\n", msg);
	return 2;
}

/* ---- records ------------------------------------------------------------ */

static int handle_record(void *ctx, void *data, size_t size)
{
	struct ml_daemon *d = ctx;
	char line[ACCESSLOG_LINE_MAX];
	int len;

	if (size < sizeof(struct tcp_probe_info))
		return 0;
	d->records++;
	if (!d->sink)
		return 0;
	len = accesslog_format(data, &d->clk, line, sizeof(line));
	if (len > 0)
		accesslog_append(d->sink, line, (size_t)len);
	return 0;
}

static uint64_t kernel_counter(struct ml_daemon *d, __u32 idx)
{
	__u64 vals[d->ncpus];
	uint64_t sum = 0;
	int i;

	if (bpf_map__lookup_elem(d->bpf.skel->maps.counters, &idx, sizeof(idx), vals,
				 sizeof(vals), 0))
		return 0;
	for (i = 0; i < d->ncpus; i++)
		sum += vals[i];
	return sum;
}

/*
 * Records the kernel could not queue, and lines the sink could not write
 * (disk full): said once per second at most, never per record.
 */
static void report_losses(struct ml_daemon *d)
{
	uint64_t lost = kernel_counter(d, ML_CNT_RECORDS_LOST);
	uint64_t unwritten = d->sink ? accesslog_lost_lines(d->sink) : 0;
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
		fprintf(stderr, "meshlens: %llu access-log lines could not be written\n",
			(unsigned long long)(unwritten - d->unwritten_reported));
	d->lost_reported = lost;
	d->unwritten_reported = unwritten;
	d->lost_said_at = now;
}

static int drain(struct ml_daemon *d)
{
	int n;

	accesslog_clock_sync(&d->clk);
	n = ring_buffer__consume(d->rb);
	if (d->sink)
		accesslog_flush(d->sink);
	report_losses(d);
	return n;
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
	return 0;
}

/* mkdir -p of the directory holding path */
static void make_parent_dirs(const char *path)
{
	char dir[PATH_MAX];
	char *p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return;
	for (p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0750);
		*p = '/';
	}
}

static int open_sink(struct ml_daemon *d)
{
	const char *dest = d->opt.access_log;

	if (!strcmp(dest, "off"))
		return 0;
	if (strcmp(dest, "-"))
		make_parent_dirs(dest);
	d->sink = accesslog_open(dest);
	if (!d->sink) {
		fprintf(stderr, "meshlens: --access-log '%s': %s\n", dest, strerror(errno));
		return 2;
	}
	return 0;
}

static int add_fd(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static int setup_loop(struct ml_daemon *d)
{
	unsigned int ms = d->opt.drain_interval_ms;
	struct itimerspec its = {
		.it_interval = { ms / 1000, (long)(ms % 1000) * 1000000L },
		.it_value = { ms / 1000, (long)(ms % 1000) * 1000000L },
	};
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	d->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->sfd < 0 || d->tfd < 0 || d->epfd < 0)
		return -errno;
	if (timerfd_settime(d->tfd, 0, &its, NULL))
		return -errno;
	d->rb = ring_buffer__new(bpf_map__fd(d->bpf.skel->maps.events), handle_record, d, NULL);
	if (!d->rb)
		return -errno;
	if (add_fd(d->epfd, d->sfd) || add_fd(d->epfd, d->tfd) ||
	    add_fd(d->epfd, ring_buffer__epoll_fd(d->rb)))
		return -errno;
	return 0;
}

/* ---- run -------------------------------------------------------------------- */

/*
 * Stop the programs, then deliver everything they queued. A program that
 * was running while its link went away may still be between reserve and
 * submit; a busy record stops the reader, so give it a moment and drain
 * again.
 */
static void shutdown_and_drain(struct ml_daemon *d)
{
	ml_bpf_detach(&d->bpf);
	drain(d);
	usleep(20 * 1000);
	drain(d);
}

static int run_loop(struct ml_daemon *d)
{
	struct epoll_event evs[4];
	struct signalfd_siginfo si;
	uint64_t ticks;
	int i, n;

	for (;;) {
		n = epoll_wait(d->epfd, evs, 4, -1);
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
			} else if (evs[i].data.fd == d->sfd) {
				if (read(d->sfd, &si, sizeof(si)) != sizeof(si))
					continue;
				if (si.ssi_signo == SIGHUP) {
					if (d->sink && accesslog_reopen(d->sink))
						fprintf(stderr,
							"meshlens: reopening access log: %s\n",
							strerror(errno));
					continue;
				}
				shutdown_and_drain(d);
				fprintf(stderr, "meshlens: exiting on signal %u, %llu records\n",
					si.ssi_signo, (unsigned long long)d->records);
				return 0;
			}
		}
		drain(d);
	}
}

static int print_probe(struct ml_bpf *b)
{
	struct ml_feature f[8];
	int i, n = ml_bpf_features(b, f, 8);

	for (i = 0; i < n; i++) {
		printf("%-18s %s", f[i].name, f[i].hook);
		if (f[i].other)
			printf("  (%s)", f[i].other);
		printf("\n");
	}
	return 0;
}

static int not_yet(const char *what)
{
	fprintf(stderr, "meshlens: %s is not supported yet\n", what);
	return 2;
}

static int check_supported(const struct ml_options *o)
{
	if (o->drops)
		return not_yet("--drops");
	if (o->list)
		return not_yet("--list");
	if (o->diagnose)
		return not_yet("--diagnose");
	if (o->detach)
		return not_yet("--detach");
	if (o->metadata)
		return not_yet("--metadata");
	if (o->user)
		return not_yet("--user");
	if (o->n_include || o->n_exclude)
		return not_yet("--include/--exclude");
	return 0;
}

static void cleanup(struct ml_daemon *d)
{
	int i;

	ring_buffer__free(d->rb);
	ml_bpf_destroy(&d->bpf);
	if (d->sink)
		accesslog_close(d->sink);
	for (i = 0; i < d->n_cg; i++)
		close(d->cg_fds[i]);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->tfd >= 0)
		close(d->tfd);
	if (d->sfd >= 0)
		close(d->sfd);
	ml_options_free(&d->opt);
}

int main(int argc, char **argv)
{
	static struct ml_daemon d = { .epfd = -1, .tfd = -1, .sfd = -1 };
	char err[ML_ERR_LEN];
	int ret;

	ml_options_init(&d.opt);
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
	ret = check_supported(&d.opt);
	if (ret)
		goto out;
	if (geteuid() != 0) {
		fprintf(stderr, "meshlens: must run as root (loading and attaching BPF programs "
				"needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)\n");
		ret = 2;
		goto out;
	}
	d.ncpus = libbpf_num_possible_cpus();
	if (!d.opt.probe) {
		ret = open_cgroups(&d);
		if (!ret)
			ret = open_sink(&d);
		if (ret)
			goto out;
	}
	if (ml_bpf_load(&d.bpf, d.opt.ringbuf_bytes, err, sizeof(err))) {
		fprintf(stderr, "meshlens: %s\n", err);
		ret = 1;
		goto out;
	}
	if (d.opt.probe) {
		ret = print_probe(&d.bpf);
		goto out;
	}
	ret = setup_loop(&d);
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
	fprintf(stderr, "meshlens: ready: %d cgroup(s) under %s, access log %s, %s\n", d.n_cg,
		d.cg_root, d.opt.access_log,
		d.bpf.fexit ? "fexit hooks" : "no trampolines: fallback hooks");
	ret = run_loop(&d);
out:
	cleanup(&d);
	return ret;
}
