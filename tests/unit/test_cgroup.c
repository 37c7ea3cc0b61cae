// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cgroup discovery and validation against this machine's real mounts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <cmocka.h>

#include "cgroup/cgroup.h"

/* The root found in mountinfo is a cgroup2 filesystem (statfs agrees). */
static void test_v2_root_is_cgroup2(void **state)
{
	char root[PATH_MAX];
	struct statfs sfs;

	(void)state;
	assert_int_equal(cgroup_v2_root(root, sizeof(root), "/nonexistent/private"), 0);
	assert_int_equal(statfs(root, &sfs), 0);
	assert_true(sfs.f_type == CGROUP2_SUPER_MAGIC);
}

static void test_v2_root_too_small_buffer(void **state)
{
	char root[2];

	(void)state;
	assert_int_equal(cgroup_v2_root(root, sizeof(root), "/nonexistent"), -ENAMETOOLONG);
}

static void test_open_root_and_relative(void **state)
{
	char root[PATH_MAX];
	int fd;

	(void)state;
	assert_int_equal(cgroup_v2_root(root, sizeof(root), "/nonexistent"), 0);
	fd = cgroup_open(root, root);
	assert_true(fd >= 0);
	close(fd);
	fd = cgroup_open(root, ".");
	assert_true(fd >= 0);
	close(fd);
}

static void test_open_errors(void **state)
{
	char root[PATH_MAX], file[] = "/tmp/ml-cg-XXXXXX";
	int fd;

	(void)state;
	assert_int_equal(cgroup_v2_root(root, sizeof(root), "/nonexistent"), 0);
	assert_int_equal(cgroup_open(root, "/nonexistent/meshlens-test"), -ENOENT);
	assert_int_equal(cgroup_open(root, "no-such-child-cgroup"), -ENOENT);
	/* /tmp exists but is not cgroup v2 */
	assert_int_equal(cgroup_open(root, "/tmp"), -EMEDIUMTYPE);
	fd = mkstemp(file);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cgroup_open(root, file), -ENOTDIR);
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v2_root_is_cgroup2),
		cmocka_unit_test(test_v2_root_too_small_buffer),
		cmocka_unit_test(test_open_root_and_relative),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
