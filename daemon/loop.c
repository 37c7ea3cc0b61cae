// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "loop.h"

int ml_loop_init(struct ml_loop *l)
{
	memset(l, 0, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

static int add_entry(struct ml_loop *l, int fd, ml_loop_fn fn, void *ctx, bool owned)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)l->n };

	if (l->n == ML_LOOP_MAX)
		return -ENOSPC;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	l->ent[l->n++] = (struct ml_loop_entry){ fd, fn, ctx, owned };
	return 0;
}

int ml_loop_add(struct ml_loop *l, int fd, ml_loop_fn fn, void *ctx)
{
	return add_entry(l, fd, fn, ctx, false);
}

int ml_loop_timer_set(int fd, unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	struct itimerspec its = { .it_interval = ts, .it_value = ts };

	return timerfd_settime(fd, 0, &its, NULL) ? -errno : 0;
}

int ml_loop_timer(struct ml_loop *l, unsigned int ms, ml_loop_fn fn, void *ctx)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	int ret;

	if (fd < 0)
		return -errno;
	ret = ml_loop_timer_set(fd, ms);
	if (!ret)
		ret = add_entry(l, fd, fn, ctx, true);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

void ml_loop_stop(struct ml_loop *l, int status)
{
	l->stop = true;
	l->status = status;
}

int ml_loop_run(struct ml_loop *l)
{
	struct epoll_event evs[ML_LOOP_MAX];
	uint64_t ticks;

	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, ML_LOOP_MAX, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "meshlens: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			const struct ml_loop_entry *e = &l->ent[evs[i].data.u32];

			/* a timer's tick is taken here; a spurious wake-up (none
			 * to read) is no tick */
			if (e->owned && read(e->fd, &ticks, sizeof(ticks)) != sizeof(ticks))
				continue;
			if (e->fn)
				e->fn(e->ctx);
		}
		if (l->idle)
			l->idle(l->idle_ctx);
	}
	return l->status;
}

void ml_loop_close(struct ml_loop *l)
{
	for (int i = 0; i < l->n; i++)
		if (l->ent[i].owned)
			close(l->ent[i].fd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
	l->n = 0;
}
