// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/options.c: defaults, every option in short and
 * long form, config file + command-line precedence, --gen-config round
 * trip, and one error per class with the message checked for the key or
 * option at fault. Run under valgrind --leak-check=full as well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/options.h"

/* argc, argv for a literal command line: PARSE(o, "meshlens", "-l") */
#define ARGS(...) (int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)), \
	(char *[]){ __VA_ARGS__, NULL }
#define PARSE(o, ...) ml_options_parse(o, ARGS(__VA_ARGS__), err, sizeof(err))

#define MAX_TMP 4

struct fx {
	struct ml_options o;
	char paths[MAX_TMP][64];
	int n_paths;
};

static char err[ML_ERR_LEN];

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	ml_options_init(&fx->o);
	err[0] = '\0';
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	ml_options_free(&fx->o);
	for (int i = 0; i < fx->n_paths; i++)
		unlink(fx->paths[i]);
	free(fx);
	return 0;
}

/* Write len bytes to a fresh temp file, removed by teardown(); returns its path. */
static char *tmp_file_len(struct fx *fx, const char *text, size_t len)
{
	char *path;
	int fd;

	assert_true(fx->n_paths < MAX_TMP);
	path = fx->paths[fx->n_paths];
	strcpy(path, "/tmp/meshlens-test-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fx->n_paths++;
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static char *tmp_file(struct fx *fx, const char *text)
{
	return tmp_file_len(fx, text, strlen(text));
}

/* ret is -EINVAL and err is one line containing every given substring. */
static void check_err(int ret, ...)
{
	const char *s;
	va_list ap;

	if (ret != -EINVAL || !err[0] || strchr(err, '\n'))
		print_error("ret %d, message '%s'\n", ret, err);
	assert_int_equal(ret, -EINVAL);
	assert_true(err[0]);
	assert_null(strchr(err, '\n'));
	va_start(ap, ret);
	while ((s = va_arg(ap, const char *))) {
		if (!strstr(err, s))
			print_error("'%s' not in '%s'\n", s, err);
		assert_non_null(strstr(err, s));
	}
	va_end(ap);
}

#define CHECK_ERR(ret, ...) check_err(ret, __VA_ARGS__, (const char *)NULL)

static void assert_list_equal(char *const *a, int na, char *const *b, int nb)
{
	assert_int_equal(na, nb);
	for (int i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
}

static void assert_str_or_null_equal(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every value a config file can carry is the same in a and b. */
static void assert_config_equal(const struct ml_options *a, const struct ml_options *b)
{
	assert_list_equal(a->cgroups, a->n_cgroups, b->cgroups, b->n_cgroups);
	assert_string_equal(a->access_log, b->access_log);
	assert_string_equal(a->metrics_addr, b->metrics_addr);
	assert_int_equal(a->drops, b->drops);
	assert_list_equal(a->include, a->n_include, b->include, b->n_include);
	assert_list_equal(a->exclude, a->n_exclude, b->exclude, b->n_exclude);
	assert_str_or_null_equal(a->user, b->user);
	assert_string_equal(a->pin_path, b->pin_path);
	assert_str_or_null_equal(a->metadata, b->metadata);
	assert_int_equal(a->ringbuf_bytes, b->ringbuf_bytes);
	assert_int_equal(a->drain_interval_ms, b->drain_interval_ms);
	assert_int_equal(a->refresh_interval_ms, b->refresh_interval_ms);
	assert_int_equal(a->max_series, b->max_series);
	assert_int_equal(a->series_idle_seconds, b->series_idle_seconds);
	assert_int_equal(a->log_max_size_kb, b->log_max_size_kb);
	assert_int_equal(a->log_max_files, b->log_max_files);
}

static void assert_no_actions(const struct ml_options *o)
{
	assert_false(o->gen_config || o->list || o->probe || o->diagnose || o->detach ||
		     o->version || o->help);
}

static void assert_defaults(const struct ml_options *o)
{
	assert_null(o->config_path);
	assert_int_equal(o->n_cgroups, 0);
	assert_string_equal(o->access_log, "-");
	assert_string_equal(o->metrics_addr, "127.0.0.1:2112");
	assert_false(o->drops);
	assert_int_equal(o->n_include, 0);
	assert_int_equal(o->n_exclude, 0);
	assert_null(o->user);
	assert_string_equal(o->pin_path, "/sys/fs/bpf/meshlens");
	assert_null(o->metadata);
	assert_int_equal(o->ringbuf_bytes, 8u << 20);
	assert_int_equal(o->drain_interval_ms, 50);
	assert_int_equal(o->refresh_interval_ms, 5000);
	assert_int_equal(o->max_series, 10000);
	assert_int_equal(o->series_idle_seconds, 3600);
	assert_int_equal(o->log_max_size_kb, 0);
	assert_int_equal(o->log_max_files, 5);
	assert_no_actions(o);
}

static void test_defaults(void **state)
{
	struct fx *fx = *state;

	assert_defaults(&fx->o);
	assert_int_equal(PARSE(&fx->o, "meshlens"), 0);
	assert_defaults(&fx->o);
}

/* Parse short and long spellings into fresh options; both must agree. */
static void parse_both(int sargc, char **sargv, int largc, char **largv, struct ml_options *s,
		       struct ml_options *l)
{
	ml_options_init(s);
	ml_options_init(l);
	assert_int_equal(ml_options_parse(s, sargc, sargv, err, sizeof(err)), 0);
	assert_int_equal(ml_options_parse(l, largc, largv, err, sizeof(err)), 0);
	assert_config_equal(s, l);
}

static void test_each_option_short_and_long(void **state)
{
	struct ml_options s, l;

	(void)state;
	parse_both(ARGS("meshlens", "-g", "/sys/fs/cgroup/mesh"),
		   ARGS("meshlens", "--cgroup", "/sys/fs/cgroup/mesh"), &s, &l);
	assert_int_equal(s.n_cgroups, 1);
	assert_string_equal(s.cgroups[0], "/sys/fs/cgroup/mesh");
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-o", "/var/log/a.json"),
		   ARGS("meshlens", "--access-log=/var/log/a.json"), &s, &l);
	assert_string_equal(s.access_log, "/var/log/a.json");
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-m", "off"), ARGS("meshlens", "--metrics-addr", "off"), &s,
		   &l);
	assert_string_equal(s.metrics_addr, "off");
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-i", "tcp_drop"), ARGS("meshlens", "--include", "tcp_drop"),
		   &s, &l);
	assert_int_equal(s.n_include, 1);
	assert_string_equal(s.include[0], "tcp_drop");
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-eip_rcv"), ARGS("meshlens", "--exclude=ip_rcv"), &s, &l);
	assert_int_equal(s.n_exclude, 1);
	assert_string_equal(s.exclude[0], "ip_rcv");
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-l"), ARGS("meshlens", "--list"), &s, &l);
	assert_true(s.list && l.list);
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-V"), ARGS("meshlens", "--version"), &s, &l);
	assert_true(s.version && l.version);
	ml_options_free(&s);
	ml_options_free(&l);

	parse_both(ARGS("meshlens", "-h"), ARGS("meshlens", "--help"), &s, &l);
	assert_true(s.help && l.help);
	ml_options_free(&s);
	ml_options_free(&l);
}

static void test_long_only_options(void **state)
{
	struct fx *fx = *state;
	struct ml_options *o = &fx->o;

	assert_int_equal(PARSE(o, "meshlens", "--drops", "--user", "nobody", "--pin-path",
			       "/sys/fs/bpf/other", "--metadata=/etc/meshlens/workloads.json"), 0);
	assert_true(o->drops);
	assert_string_equal(o->user, "nobody");
	assert_string_equal(o->pin_path, "/sys/fs/bpf/other");
	assert_string_equal(o->metadata, "/etc/meshlens/workloads.json");
	assert_no_actions(o);

	assert_int_equal(PARSE(o, "meshlens", "--gen-config"), 0);
	assert_true(o->gen_config);
	assert_int_equal(PARSE(o, "meshlens", "--probe"), 0);
	assert_true(o->probe);
	assert_int_equal(PARSE(o, "meshlens", "--diagnose"), 0);
	assert_true(o->diagnose);
	assert_int_equal(PARSE(o, "meshlens", "--detach"), 0);
	assert_true(o->detach);
	/* earlier parses stick: the struct accumulates */
	assert_true(o->drops && o->gen_config && o->probe);
}

static void test_bundled_short_flags(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(PARSE(&fx->o, "meshlens", "-lVh", "-g/a"), 0);
	assert_true(fx->o.list && fx->o.version && fx->o.help);
	assert_int_equal(fx->o.n_cgroups, 1);
	assert_string_equal(fx->o.cgroups[0], "/a");
}

static void test_repeatable(void **state)
{
	struct fx *fx = *state;
	struct ml_options *o = &fx->o;

	assert_int_equal(PARSE(o, "meshlens", "-g", "/a", "--cgroup", "/b", "-g/c", "-i", "x",
			       "--include=y", "-e", "z", "--exclude", "w", "-e", "v"), 0);
	assert_int_equal(o->n_cgroups, 3);
	assert_string_equal(o->cgroups[0], "/a");
	assert_string_equal(o->cgroups[1], "/b");
	assert_string_equal(o->cgroups[2], "/c");
	assert_int_equal(o->n_include, 2);
	assert_string_equal(o->include[1], "y");
	assert_int_equal(o->n_exclude, 3);
	assert_string_equal(o->exclude[2], "v");
}

static void test_max_entries(void **state)
{
	struct fx *fx = *state;
	char *argv[2 * ML_MAX_CGROUPS + 4];
	char names[ML_MAX_CGROUPS + 1][16];
	int argc = 0;

	argv[argc++] = "meshlens";
	for (int i = 0; i < ML_MAX_CGROUPS; i++) {
		snprintf(names[i], sizeof(names[i]), "/cg%d", i);
		argv[argc++] = "-g";
		argv[argc++] = names[i];
	}
	argv[argc] = NULL;
	assert_int_equal(ml_options_parse(&fx->o, argc, argv, err, sizeof(err)), 0);
	assert_int_equal(fx->o.n_cgroups, ML_MAX_CGROUPS);

	/* the cap is checked against this command line alone, one more is too many */
	argv[argc++] = "-g";
	argv[argc++] = "/one-too-many";
	argv[argc] = NULL;
	CHECK_ERR(ml_options_parse(&fx->o, argc, argv, err, sizeof(err)), "--cgroup", "64");
	assert_int_equal(fx->o.n_cgroups, ML_MAX_CGROUPS);
}

static void test_config_full(void **state)
{
	struct fx *fx = *state;
	struct ml_options *o = &fx->o;
	char *path = tmp_file(fx, "{\n"
				       "  \"cgroups\": [\"/sys/fs/cgroup/a\",\n"
				       "              \"/sys/fs/cgroup/b\"],\n"
				       "  \"access_log\": \"/var/log/meshlens.json\",\n"
				       "  \"metrics_addr\": \"[::1]:9090\",\n"
				       "  \"drops\": true,\n"
				       "  \"include\": [\"tcp_drop\"],\n"
				       "  \"exclude\": [\"ip_rcv\", \"nf_hook\"],\n"
				       "  \"user\": \"nobody\",\n"
				       "  \"pin_path\": \"/sys/fs/bpf/x\",\n"
				       "  \"metadata\": \"/etc/w.json\",\n"
				       "  \"ringbuf_bytes\": 65536,\n"
				       "  \"drain_interval_ms\": 1000,\n"
				       "  \"refresh_interval_ms\": 250,\n"
				       "  \"max_series\": 3,\n"
				       "  \"series_idle_seconds\": 0,\n"
				       "  \"log_max_size_kb\": 4194304,\n"
				       "  \"log_max_files\": 1000\n"
				       "}\n");

	assert_int_equal(ml_config_load(o, path, err, sizeof(err)), 0);
	assert_string_equal(o->config_path, path);
	assert_int_equal(o->n_cgroups, 2);
	assert_string_equal(o->cgroups[1], "/sys/fs/cgroup/b");
	assert_string_equal(o->access_log, "/var/log/meshlens.json");
	assert_string_equal(o->metrics_addr, "[::1]:9090");
	assert_true(o->drops);
	assert_int_equal(o->n_include, 1);
	assert_int_equal(o->n_exclude, 2);
	assert_string_equal(o->exclude[1], "nf_hook");
	assert_string_equal(o->user, "nobody");
	assert_string_equal(o->pin_path, "/sys/fs/bpf/x");
	assert_string_equal(o->metadata, "/etc/w.json");
	assert_int_equal(o->ringbuf_bytes, 65536);
	assert_int_equal(o->drain_interval_ms, 1000);
	assert_int_equal(o->refresh_interval_ms, 250);
	assert_int_equal(o->max_series, 3);
	assert_int_equal(o->series_idle_seconds, 0);
	assert_int_equal(o->log_max_size_kb, 4194304);
	assert_int_equal(o->log_max_files, 1000);
	assert_no_actions(o);
}

static void test_config_partial_keeps_rest(void **state)
{
	struct fx *fx = *state;

	/* keys a file leaves out keep their current values; null unsets */
	assert_int_equal(PARSE(&fx->o, "meshlens", "--user", "nobody", "--metadata", "/m"), 0);
	assert_int_equal(ml_config_parse(&fx->o, "{\"drops\": true, \"user\": null}", "t", err,
					 sizeof(err)), 0);
	assert_true(fx->o.drops);
	assert_null(fx->o.user);
	assert_string_equal(fx->o.metadata, "/m");
	assert_string_equal(fx->o.metrics_addr, "127.0.0.1:2112");
	assert_int_equal(ml_config_parse(&fx->o, "{}", "t", err, sizeof(err)), 0);
	assert_true(fx->o.drops);
}

static void test_config_bom(void **state)
{
	struct fx *fx = *state;
	char *path = tmp_file(fx, "\xef\xbb\xbf{\"drain_interval_ms\": 7}");

	assert_int_equal(ml_config_load(&fx->o, path, err, sizeof(err)), 0);
	assert_int_equal(fx->o.drain_interval_ms, 7);
}

static void test_cli_overrides_config(void **state)
{
	struct fx *fx = *state;
	struct ml_options *o = &fx->o;
	char *path = tmp_file(fx, "{\"cgroups\": [\"/cfg/a\", \"/cfg/b\"],"
				       " \"include\": [\"cfg_inc\"], \"exclude\": [\"cfg_exc\"],"
				       " \"metrics_addr\": \"0.0.0.0:9000\","
				       " \"access_log\": \"off\","
				       " \"drain_interval_ms\": 10}");

	/* -c comes last, yet the file is the base layer and the options win */
	assert_int_equal(PARSE(o, "meshlens", "-m", "127.0.0.1:9100", "-g", "/cli/x",
			       "--exclude", "e1", "-e", "e2", "--config", path), 0);
	assert_string_equal(o->config_path, path);
	assert_string_equal(o->metrics_addr, "127.0.0.1:9100");
	assert_string_equal(o->access_log, "off");
	assert_int_equal(o->drain_interval_ms, 10);
	/* a list given on the command line replaces the file's list */
	assert_int_equal(o->n_cgroups, 1);
	assert_string_equal(o->cgroups[0], "/cli/x");
	assert_int_equal(o->n_exclude, 2);
	assert_string_equal(o->exclude[0], "e1");
	assert_string_equal(o->exclude[1], "e2");
	/* a list not given keeps the file's */
	assert_int_equal(o->n_include, 1);
	assert_string_equal(o->include[0], "cfg_inc");
}

static void test_gen_config_round_trip(void **state)
{
	struct fx *fx = *state;
	struct ml_options back, custom;
	char *text;

	/* defaults: every key present, unset ones as null / [] */
	text = ml_config_dump(&fx->o);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"user\":\tnull"));
	assert_non_null(strstr(text, "\"cgroups\":\t[]"));
	assert_non_null(strstr(text, "\"ringbuf_bytes\":\t8388608"));
	assert_non_null(strstr(text, "\"log_max_size_kb\":\t0"));
	assert_non_null(strstr(text, "\"log_max_files\":\t5"));
	ml_options_init(&back);
	back.drops = true;
	back.drain_interval_ms = 999;
	assert_int_equal(ml_config_parse(&back, text, "gen-config", err, sizeof(err)), 0);
	assert_config_equal(&back, &fx->o);
	ml_options_free(&back);
	free(text);

	/* every field away from its default, read back into a struct that differs in all */
	ml_options_init(&custom);
	assert_int_equal(PARSE(&custom, "meshlens", "-g", "/a", "-g", "/b \"quoted\"", "-o",
			       "/log", "-m", "localhost:1", "--drops", "-i", "p1", "-e", "p2", "-e",
			       "p3", "--user", "nobody", "--pin-path", "/pin", "--metadata",
			       "/meta"), 0);
	assert_int_equal(ml_config_parse(&custom, "{\"ringbuf_bytes\": 1073741824,"
					 " \"drain_interval_ms\": 1, \"log_max_size_kb\": 10240,"
					 " \"log_max_files\": 7}", "t", err, sizeof(err)), 0);
	text = ml_config_dump(&custom);
	assert_non_null(text);
	ml_options_init(&back);
	assert_int_equal(PARSE(&back, "meshlens", "-g", "/z", "-i", "q", "--user", "root"), 0);
	assert_int_equal(ml_config_parse(&back, text, "gen-config", err, sizeof(err)), 0);
	assert_config_equal(&back, &custom);
	ml_options_free(&back);
	ml_options_free(&custom);
	free(text);
}

struct cli_case {
	const char *argv[6];
	const char *want[2];
};

static void test_cli_errors(void **state)
{
	static const struct cli_case cases[] = {
		{ { "--frob" }, { "unknown option '--frob'" } },
		{ { "--frob=1" }, { "unknown option '--frob'" } },
		{ { "-x" }, { "unknown option '-x'" } },
		{ { "-lx" }, { "unknown option '-x'" } },
		{ { "--d" }, { "'--d'", "ambiguous" } },
		{ { "--cgroup" }, { "option '--cgroup' needs a value" } },
		{ { "-g" }, { "option '--cgroup' needs a value" } },
		{ { "-l", "-c" }, { "option '--config' needs a value" } },
		{ { "--user" }, { "option '--user' needs a value" } },
		{ { "--drops=yes" }, { "option '--drops' takes no value" } },
		{ { "--list=1" }, { "option '--list' takes no value" } },
		{ { "-g", "" }, { "--cgroup", "empty" } },
		{ { "--access-log=" }, { "--access-log", "empty" } },
		{ { "--pin-path", "" }, { "--pin-path", "empty" } },
		{ { "--metadata", "" }, { "--metadata", "empty" } },
		{ { "-i", "" }, { "--include", "empty" } },
		{ { "-c", "" }, { "--config", "empty" } },
		{ { "stray" }, { "unexpected argument 'stray'" } },
		{ { "-l", "--", "-g" }, { "unexpected argument '-g'" } },
		{ { "-m", "abc" }, { "--metrics-addr 'abc': expected HOST:PORT or 'off'" } },
		{ { "-m", "bad\nline" }, { "--metrics-addr 'bad?line'" } },
	};
	struct ml_options o;
	char *argv[8];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = 0;

		argv[argc++] = "meshlens";
		for (int j = 0; cases[i].argv[j]; j++)
			argv[argc++] = (char *)cases[i].argv[j];
		argv[argc] = NULL;
		ml_options_init(&o);
		err[0] = '\0';
		check_err(ml_options_parse(&o, argc, argv, err, sizeof(err)), cases[i].want[0],
			  cases[i].want[1], (const char *)NULL);
		/* nothing of a failed command line sticks */
		assert_defaults(&o);
		ml_options_free(&o);
	}
}

static void test_metrics_addr(void **state)
{
	static const char *const good[] = {
		"off", "127.0.0.1:2112", "0.0.0.0:1", "localhost:65535", "[::1]:2112",
		"[::]:80", "[fe80::1:2]:9090", "[::ffff:10.0.0.1]:8080",
	};
	static const char *const bad[] = {
		"abc", "OFF", "127.0.0.1", "127.0.0.1:", ":2112", "127.0.0.1:0",
		"127.0.0.1:65536", "127.0.0.1:99999999999", "127.0.0.1:-1", "127.0.0.1:+80",
		"127.0.0.1: 80", "127.0.0.1:80x", "256.0.0.1:80", "1.2.3:80", "example.com:80",
		"::1:2112", "[::1]", "[::1:2112", "[]:80", "[zz::1]:80", "[127.0.0.1]:80",
		"localhost:0",
	};
	struct fx *fx = *state;
	char json[128];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(PARSE(&fx->o, "meshlens", "-m", (char *)good[i]), 0);
		assert_string_equal(fx->o.metrics_addr, good[i]);
		snprintf(json, sizeof(json), "{\"metrics_addr\": \"%s\"}", good[i]);
		assert_int_equal(ml_config_parse(&fx->o, json, "t", err, sizeof(err)), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[64];

		snprintf(want, sizeof(want), "--metrics-addr '%s'", bad[i]);
		CHECK_ERR(PARSE(&fx->o, "meshlens", "-m", (char *)bad[i]), want,
			  "expected HOST:PORT or 'off'");
		snprintf(json, sizeof(json), "{\"metrics_addr\": \"%s\"}", bad[i]);
		CHECK_ERR(ml_config_parse(&fx->o, json, "t", err, sizeof(err)), "'metrics_addr'",
			  "expected HOST:PORT or 'off'");
	}
	/* the last good value survived every failure */
	assert_string_equal(fx->o.metrics_addr, good[sizeof(good) / sizeof(good[0]) - 1]);
}

struct cfg_case {
	const char *json;
	const char *want[3];
};

static void test_config_errors(void **state)
{
	static const struct cfg_case cases[] = {
		{ "{\"frob\": 1}", { "unknown key 'frob'" } },
		{ "{\"Drops\": true}", { "unknown key 'Drops'" } },
		{ "{\"a\\nb\": 1}", { "unknown key 'a?b'" } },
		{ "{\"drops\": true, \"drops\": false}", { "key 'drops'", "more than once" } },
		{ "[]", { "expected a JSON object", "an array" } },
		{ "\"x\"", { "expected a JSON object", "a string" } },
		{ "null", { "expected a JSON object", "null" } },
		{ "", { "empty" } },
		{ " \n ", { "empty" } },
		{ "{\"cgroups\": \"/a\"}", { "key 'cgroups'", "expected an array", "a string" } },
		{ "{\"cgroups\": [\"/a\", 5]}",
		  { "key 'cgroups[1]'", "non-empty string", "got 5" } },
		{ "{\"cgroups\": [\"\"]}", { "key 'cgroups[0]'", "an empty string" } },
		{ "{\"include\": [null]}", { "key 'include[0]'", "got null" } },
		{ "{\"exclude\": {}}", { "key 'exclude'", "an object" } },
		{ "{\"access_log\": 1}", { "key 'access_log'", "non-empty string", "got 1" } },
		{ "{\"access_log\": \"\"}", { "key 'access_log'", "an empty string" } },
		{ "{\"access_log\": null}", { "key 'access_log'", "got null" } },
		{ "{\"metrics_addr\": false}", { "key 'metrics_addr'", "got false" } },
		{ "{\"drops\": 1}", { "key 'drops'", "expected true or false", "got 1" } },
		{ "{\"drops\": \"true\"}", { "key 'drops'", "a string" } },
		{ "{\"user\": 0}", { "key 'user'", "non-empty string or null", "got 0" } },
		{ "{\"user\": \"\"}", { "key 'user'", "an empty string" } },
		{ "{\"pin_path\": null}", { "key 'pin_path'", "got null" } },
		{ "{\"metadata\": []}", { "key 'metadata'", "an array" } },
		{ "{\"ringbuf_bytes\": \"8M\"}",
		  { "key 'ringbuf_bytes'", "a power of two", "a string" } },
		{ "{\"ringbuf_bytes\": 100000}",
		  { "key 'ringbuf_bytes'", "65536..1073741824", "got 100000" } },
		{ "{\"ringbuf_bytes\": 32768}", { "key 'ringbuf_bytes'", "got 32768" } },
		{ "{\"ringbuf_bytes\": 2147483648}", { "key 'ringbuf_bytes'", "got 2147483648" } },
		{ "{\"ringbuf_bytes\": 4294967296}", { "key 'ringbuf_bytes'", "got 4294967296" } },
		{ "{\"ringbuf_bytes\": -65536}", { "key 'ringbuf_bytes'", "got -65536" } },
		{ "{\"ringbuf_bytes\": 65536.5}", { "key 'ringbuf_bytes'", "got 65536.5" } },
		{ "{\"ringbuf_bytes\": 1e400}", { "key 'ringbuf_bytes'", "out of range" } },
		{ "{\"drain_interval_ms\": 0}",
		  { "key 'drain_interval_ms': expected an integer 1..1000, got 0" } },
		{ "{\"drain_interval_ms\": 1001}", { "key 'drain_interval_ms'", "got 1001" } },
		{ "{\"refresh_interval_ms\": 99}",
		  { "key 'refresh_interval_ms': expected an integer 100..600000, got 99" } },
		{ "{\"max_series\": 0}", { "key 'max_series'", "got 0" } },
		{ "{\"series_idle_seconds\": -1}", { "key 'series_idle_seconds'", "got -1" } },
		{ "{\"log_max_size_kb\": 4194305}",
		  { "key 'log_max_size_kb': expected an integer 0..4194304, got 4194305" } },
		{ "{\"log_max_size_kb\": -1}", { "key 'log_max_size_kb'", "got -1" } },
		{ "{\"log_max_size_kb\": 1.5}", { "key 'log_max_size_kb'", "got 1.5" } },
		{ "{\"log_max_size_kb\": \"10M\"}", { "key 'log_max_size_kb'", "a string" } },
		{ "{\"log_max_files\": 0}",
		  { "key 'log_max_files': expected an integer 1..1000, got 0" } },
		{ "{\"log_max_files\": 1001}", { "key 'log_max_files'", "got 1001" } },
		{ "{\"log_max_files\": null}", { "key 'log_max_files'", "got null" } },
		{ "{\"drain_interval_ms\": 1.5}", { "key 'drain_interval_ms'", "got 1.5" } },
		{ "{\"drain_interval_ms\": true}", { "key 'drain_interval_ms'", "got true" } },
		{ "{\"drain_interval_ms\": null}", { "key 'drain_interval_ms'", "got null" } },
	};
	struct fx *fx = *state;
	struct ml_options before;
	char *want_text, *text;

	/* a customised struct, so "unchanged" means more than "still defaults" */
	assert_int_equal(PARSE(&fx->o, "meshlens", "-g", "/keep", "--user", "u", "-m", "off"), 0);
	want_text = ml_config_dump(&fx->o);
	assert_non_null(want_text);
	ml_options_init(&before);
	assert_int_equal(ml_config_parse(&before, want_text, "t", err, sizeof(err)), 0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		check_err(ml_config_parse(&fx->o, cases[i].json, "/etc/meshlens.json", err,
					  sizeof(err)),
			  "config /etc/meshlens.json: ", cases[i].want[0], cases[i].want[1],
			  cases[i].want[2], (const char *)NULL);
		assert_config_equal(&fx->o, &before);
	}
	text = ml_config_dump(&fx->o);
	assert_string_equal(text, want_text);
	free(text);
	free(want_text);
	ml_options_free(&before);
}

static void test_config_no_partial_apply(void **state)
{
	struct fx *fx = *state;
	char *path = tmp_file(fx, "{\"cgroups\": [\"/new\"], \"drops\": true,"
				       " \"user\": \"x\", \"drain_interval_ms\": 0}");

	CHECK_ERR(ml_config_load(&fx->o, path, err, sizeof(err)), path, "drain_interval_ms");
	assert_defaults(&fx->o);
	/* through the command line too: the options after -c are not applied either */
	CHECK_ERR(PARSE(&fx->o, "meshlens", "--drops", "-c", path, "-g", "/x"), path);
	assert_defaults(&fx->o);
}

static void test_invalid_json_position(void **state)
{
	struct fx *fx = *state;
	char *path = tmp_file(fx, "{\n"
				       "  \"drops\": true,\n"
				       "  \"access_log\" \"x\"\n"
				       "}\n");

	CHECK_ERR(ml_config_load(&fx->o, path, err, sizeof(err)), path, "invalid JSON",
		  "line 3, column 16");
	CHECK_ERR(ml_config_parse(&fx->o, "{\"drops\": tru}", "t", err, sizeof(err)),
		  "invalid JSON", "line 1, column");
	CHECK_ERR(ml_config_parse(&fx->o, "{}\n\n  x", "t", err, sizeof(err)), "invalid JSON",
		  "line 3, column 3");
	CHECK_ERR(ml_config_parse(&fx->o, "{\"a\": [1,\n", "t", err, sizeof(err)),
		  "invalid JSON", "line ");
	assert_defaults(&fx->o);
}

static void test_config_file_errors(void **state)
{
	struct fx *fx = *state;
	char *path;
	char *big;

	CHECK_ERR(ml_config_load(&fx->o, "/nonexistent/meshlens.json", err, sizeof(err)),
		  "config /nonexistent/meshlens.json", strerror(ENOENT));
	CHECK_ERR(ml_config_load(&fx->o, "/tmp", err, sizeof(err)), "config /tmp",
		  strerror(EISDIR));
	CHECK_ERR(PARSE(&fx->o, "meshlens", "-c", "/nonexistent/x.json"),
		  "config /nonexistent/x.json", strerror(ENOENT));

	path = tmp_file_len(fx, "{}\0{\"drops\": 1}", 15);
	CHECK_ERR(ml_config_load(&fx->o, path, err, sizeof(err)), path, "NUL byte");

	path = tmp_file(fx, "");
	CHECK_ERR(ml_config_load(&fx->o, path, err, sizeof(err)), path, "empty");

	big = malloc((2 << 20) + 1);
	assert_non_null(big);
	memset(big, ' ', 2 << 20);
	big[0] = '{';
	big[2 << 20] = '\0';
	path = tmp_file(fx, big);
	free(big);
	CHECK_ERR(ml_config_load(&fx->o, path, err, sizeof(err)), path, "larger than");
	assert_defaults(&fx->o);
}

static void test_config_too_many_entries(void **state)
{
	struct fx *fx = *state;
	char json[4096];
	size_t len;

	len = snprintf(json, sizeof(json), "{\"include\": [");
	for (int i = 0; i <= ML_MAX_POINTS; i++)
		len += snprintf(json + len, sizeof(json) - len, "%s\"p%d\"", i ? "," : "", i);
	snprintf(json + len, sizeof(json) - len, "]}");
	CHECK_ERR(ml_config_parse(&fx->o, json, "t", err, sizeof(err)), "key 'include'",
		  "more than 64");
	assert_int_equal(fx->o.n_include, 0);
}

static void test_parse_again(void **state)
{
	struct fx *fx = *state;

	/* getopt keeps state between calls; each parse must start afresh */
	CHECK_ERR(PARSE(&fx->o, "meshlens", "-lx"), "'-x'");
	assert_int_equal(PARSE(&fx->o, "meshlens", "-g", "/a"), 0);
	assert_int_equal(PARSE(&fx->o, "meshlens", "-g", "/b"), 0);
	/* a later command line replaces the list like it replaces a config's */
	assert_int_equal(fx->o.n_cgroups, 1);
	assert_string_equal(fx->o.cgroups[0], "/b");
	assert_false(fx->o.list);
}

static void test_usage(void **state)
{
	static const char *const names[] = {
		"-c, --config FILE", "--gen-config", "-g, --cgroup PATH", "-o, --access-log DEST",
		"-m, --metrics-addr H:P", "--drops", "-i, --include POINT", "-e, --exclude POINT",
		"-l, --list", "--probe", "--diagnose", "--detach", "--user USER",
		"--pin-path DIR", "--metadata FILE", "-V, --version", "-h, --help",
	};
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	ml_options_usage(f);
	fclose(f);
	assert_non_null(strstr(text, "Usage: meshlens [options]"));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strstr(text, names[i]))
			print_error("'%s' missing from usage\n", names[i]);
		assert_non_null(strstr(text, names[i]));
	}
	free(text);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_each_option_short_and_long),
		T(test_long_only_options),
		T(test_bundled_short_flags),
		T(test_repeatable),
		T(test_max_entries),
		T(test_config_full),
		T(test_config_partial_keeps_rest),
		T(test_config_bom),
		T(test_cli_overrides_config),
		T(test_gen_config_round_trip),
		T(test_cli_errors),
		T(test_metrics_addr),
		T(test_config_errors),
		T(test_config_no_partial_apply),
		T(test_invalid_json_position),
		T(test_config_file_errors),
		T(test_config_too_many_entries),
		T(test_parse_again),
		T(test_usage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
