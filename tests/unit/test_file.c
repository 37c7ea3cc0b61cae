// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lib/file: whole files of every awkward size (empty, around the first
 * buffer's 4096 bytes, at the cap), missing files, directories, pipes and
 * endless devices.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "lib/file.h"

static char dir[] = "/tmp/meshlens-test-file-XXXXXX";
static char err[256];

/* A file of n bytes, byte i = 'a' + i % 26; its path in a static buffer. */
static const char *make_file(size_t n)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/f%zu", dir, n);
	f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void check_content(const char *buf, size_t len, size_t n)
{
	assert_int_equal(len, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(buf[i], 'a' + (int)(i % 26));
	assert_int_equal(buf[n], '\0');
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void test_empty_file(void **state)
{
	size_t len = 99;
	char *buf = ml_read_file(make_file(0), 100, &len, err, sizeof(err));

	(void)state;
	assert_non_null(buf);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
}

static void test_no_file(void **state)
{
	size_t len = 99;

	(void)state;
	err[0] = '\0';
	assert_null(ml_read_file("/nonexistent/meshlens.json", 100, &len, err, sizeof(err)));
	assert_string_equal(err, strerror(ENOENT));
	assert_int_equal(len, 99);
	/* no room for the reason is fine too */
	assert_null(ml_read_file("/nonexistent/meshlens.json", 100, &len, NULL, 0));
}

static void test_sizes_around_the_buffer(void **state)
{
	static const size_t sizes[] = { 1, 4094, 4095, 4096, 4097, 8191, 8192, 8193, 100000 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = 0;
		char *buf = ml_read_file(make_file(sizes[i]), 1 << 20, &len, err, sizeof(err));

		assert_non_null(buf);
		check_content(buf, len, sizes[i]);
		free(buf);
	}
}

/* The cap: exactly max bytes is whole, one more is refused. */
static void test_cap(void **state)
{
	size_t len = 0;
	char *buf;

	(void)state;
	buf = ml_read_file(make_file(4096), 4096, &len, err, sizeof(err));
	assert_non_null(buf);
	check_content(buf, len, 4096);
	free(buf);
	assert_null(ml_read_file(make_file(4097), 4096, &len, err, sizeof(err)));
	assert_string_equal(err, "larger than 4096 bytes");
	assert_null(ml_read_file(make_file(3 << 20), 2 << 20, &len, err, sizeof(err)));
	assert_string_equal(err, "larger than 2 MiB");
	/* endless: stops at the cap */
	assert_null(ml_read_file("/dev/zero", 1 << 20, &len, err, sizeof(err)));
	assert_string_equal(err, "larger than 1 MiB");
}

static void test_directory(void **state)
{
	size_t len = 0;

	(void)state;
	assert_null(ml_read_file(dir, 100, &len, err, sizeof(err)));
	assert_string_equal(err, "cannot read: Is a directory");
}

/* A pipe has no size: the buffer grows as it is read (4095, 4096 at the first size). */
static void test_pipe(void **state)
{
	static const size_t sizes[] = { 0, 4095, 4096, 20000 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char path[64], *buf;
		size_t len = 0;
		int fd[2], status;
		pid_t pid;

		assert_int_equal(pipe(fd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(fd[0]);
			for (size_t j = 0; j < sizes[i]; j++) {
				char c = (char)('a' + j % 26);

				if (write(fd[1], &c, 1) != 1)
					_exit(1);
			}
			_exit(0);
		}
		close(fd[1]);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd[0]);
		buf = ml_read_file(path, 1 << 20, &len, err, sizeof(err));
		assert_non_null(buf);
		check_content(buf, len, sizes[i]);
		free(buf);
		close(fd[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_int_equal(status, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_no_file),
		cmocka_unit_test(test_sizes_around_the_buffer),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_pipe),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
