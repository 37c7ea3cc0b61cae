// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/loop.c: handlers run for their own fd only, the
 * idle hook once per wake-up after them, a timer's handler once per tick
 * with its expirations read, a stop ends the run with its status, a full
 * table is refused, and the loop's own timers are closed with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/loop.h"

struct counts {
	struct ml_loop *l;
	int fd;         /* the pipe's read end */
	int reads, ticks, idles;
	int stop_after; /* ticks, then ml_loop_stop(l, 7) */
};

static void on_read(void *ctx)
{
	struct counts *c = ctx;
	char b;

	assert_int_equal(read(c->fd, &b, 1), 1);
	c->reads++;
}

static void on_tick(void *ctx)
{
	struct counts *c = ctx;

	if (++c->ticks == c->stop_after)
		ml_loop_stop(c->l, 7);
}

static void on_idle(void *ctx)
{
	((struct counts *)ctx)->idles++;
}

static void test_fd_and_idle(void **state)
{
	struct ml_loop l;
	struct counts c = { .l = &l, .stop_after = 1 };
	int p[2], t;

	(void)state;
	assert_int_equal(pipe(p), 0);
	c.fd = p[0];
	assert_int_equal(ml_loop_init(&l), 0);
	l.idle = on_idle;
	l.idle_ctx = &c;
	assert_int_equal(ml_loop_add(&l, p[0], on_read, &c), 0);
	assert_int_equal(write(p[1], "xyz", 3), 3);
	/* the timer stops the loop at its first tick, 50 ms on: by then the
	 * three bytes were read one per wake-up (level-triggered) */
	t = ml_loop_timer(&l, 50, on_tick, &c);
	assert_true(t >= 0);
	assert_int_equal(ml_loop_run(&l), 7);
	assert_int_equal(c.reads, 3);
	assert_int_equal(c.ticks, 1);
	assert_true(c.idles >= 4); /* three reads and the tick, each a wake-up or more */
	ml_loop_close(&l);
	/* the loop's timer is closed with it, the registered pipe is not */
	assert_int_equal(fcntl(t, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
	assert_true(fcntl(p[0], F_GETFD) >= 0);
	close(p[0]);
	close(p[1]);
}

static void test_timer_ticks_and_new_period(void **state)
{
	struct ml_loop l;
	struct counts c = { .l = &l, .stop_after = 3 };
	int t;

	(void)state;
	assert_int_equal(ml_loop_init(&l), 0);
	t = ml_loop_timer(&l, 600000, on_tick, &c); /* ten minutes: never, unless changed */
	assert_true(t >= 0);
	assert_int_equal(ml_loop_timer_set(t, 10), 0);
	assert_int_equal(ml_loop_run(&l), 7);
	assert_int_equal(c.ticks, 3);
	ml_loop_close(&l);
}

static void test_table_full(void **state)
{
	struct ml_loop l;
	struct counts c = { 0 };
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ml_loop_init(&l), 0);
	for (int i = 0; i < ML_LOOP_MAX; i++) {
		int fd = dup(p[0]);

		assert_true(fd >= 0);
		assert_int_equal(ml_loop_add(&l, fd, on_read, &c), 0);
	}
	assert_int_equal(ml_loop_add(&l, p[0], on_read, &c), -ENOSPC);
	assert_int_equal(ml_loop_timer(&l, 10, on_tick, &c), -ENOSPC);
	assert_int_equal(ml_loop_add(&l, -1, on_read, &c), -ENOSPC);
	for (int i = 0; i < l.n; i++)
		close(l.ent[i].fd);
	ml_loop_close(&l);
	close(p[0]);
	close(p[1]);
}

static void test_bad_fd(void **state)
{
	struct ml_loop l;
	struct counts c = { 0 };

	(void)state;
	assert_int_equal(ml_loop_init(&l), 0);
	assert_int_equal(ml_loop_add(&l, -1, on_read, &c), -EBADF);
	assert_int_equal(l.n, 0);
	ml_loop_close(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_and_idle),
		cmocka_unit_test(test_timer_ticks_and_new_period),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_bad_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
