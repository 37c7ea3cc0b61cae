/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loop - the daemon's one event loop: a table of {fd, handler, ctx} over
 * epoll, in the manner of redis's ae. Modules register their fds (the
 * ringbuf, timers, the signalfd, inotify, the metrics endpoint's notify
 * fd); a handler runs when its fd is readable, then the loop's idle hook
 * (the drain) once per wake-up. Level-triggered: a handler that leaves
 * something unread is called again.
 */
#ifndef MESHLENS_LOOP_H
#define MESHLENS_LOOP_H

#include <stdbool.h>

#define ML_LOOP_MAX 16

typedef void (*ml_loop_fn)(void *ctx);

struct ml_loop_entry {
	int fd;
	ml_loop_fn fn;
	void *ctx;
	bool owned; /* a timer the loop made: closed with it */
};

struct ml_loop {
	int epfd;
	struct ml_loop_entry ent[ML_LOOP_MAX];
	int n;
	ml_loop_fn idle; /* after each wake-up's handlers */
	void *idle_ctx;
	bool stop;
	int status;
};

/* 0 or -errno. */
int ml_loop_init(struct ml_loop *l);

/* Call fn(ctx) whenever fd is readable (NULL: only wake up, for the idle
 * hook). 0 or -errno (-ENOSPC: table full). */
int ml_loop_add(struct ml_loop *l, int fd, ml_loop_fn fn, void *ctx);

/*
 * A periodic timer of ms milliseconds (first tick ms from now) calling
 * fn(ctx); its expirations are read before fn runs. The timer's fd (for
 * ml_loop_timer_set) or -errno.
 */
int ml_loop_timer(struct ml_loop *l, unsigned int ms, ml_loop_fn fn, void *ctx);

/* A new period for a timer of ml_loop_timer (counted from now). 0 or -errno. */
int ml_loop_timer_set(int fd, unsigned int ms);

/* Run until a handler calls ml_loop_stop: its status, or 1 when epoll fails. */
int ml_loop_run(struct ml_loop *l);

/* End the loop after the current wake-up's handlers. */
void ml_loop_stop(struct ml_loop *l, int status);

/* Close epoll and the timers the loop made (registered fds stay their owners'). */
void ml_loop_close(struct ml_loop *l);

#endif /* MESHLENS_LOOP_H */
