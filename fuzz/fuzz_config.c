// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: daemon/options.c, the JSON config and the command line.
 *
 * Two modes, chosen by the first byte of the input:
 *
 *   anything else  the whole input, NUL-terminated, is config text for
 *                  ml_config_parse();
 *   0x01           argv mode: the rest, split on NUL bytes, is argv[1..]
 *                  for ml_options_parse().
 *
 * Properties checked, beyond "no crash, no sanitizer report":
 *   - the return value is 0 or 2; on 2 the message is one non-empty line
 *     and the options are exactly what they were before (nothing
 *     half-applied);
 *   - on success, ml_config_dump() parses back through ml_config_parse()
 *     into the very same options (every field compared), and dumping that
 *     again gives the same text (which also covers config keys added after
 *     this file was written).
 *
 * In argv mode a -c/--config value is rewritten to a name inside a private
 * directory holding a few prepared files (good.json, bad.json, ...), so the
 * fuzzer can never make the parser open /dev/stdin, a FIFO or /proc/kmsg and
 * block. The rewrite runs getopt_long() over the same option table as
 * options.c; keep the two tables in step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "daemon/options.h"

#define MAX_WORDS 512

static __attribute__((noreturn)) void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_config: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool list_eq(char *const *a, int na, char *const *b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++)
		if (!str_eq(a[i], b[i]))
			return false;
	return true;
}

/*
 * Every field; config_only skips the ones the config file cannot carry.
 * A field added to struct ml_options later and not listed here is still
 * covered through the config table: check_round_trip() also compares the
 * dump of the original with the dump of what parsed back.
 */
static const char *opts_diff(const struct ml_options *a, const struct ml_options *b,
			     bool config_only)
{
	if (!list_eq(a->cgroups, a->n_cgroups, b->cgroups, b->n_cgroups))
		return "cgroups";
	if (!str_eq(a->access_log, b->access_log))
		return "access_log";
	if (!str_eq(a->metrics_addr, b->metrics_addr))
		return "metrics_addr";
	if (a->drops != b->drops)
		return "drops";
	if (!list_eq(a->include, a->n_include, b->include, b->n_include))
		return "include";
	if (!list_eq(a->exclude, a->n_exclude, b->exclude, b->n_exclude))
		return "exclude";
	if (!str_eq(a->user, b->user))
		return "user";
	if (!str_eq(a->pin_path, b->pin_path))
		return "pin_path";
	if (!str_eq(a->metadata, b->metadata))
		return "metadata";
	if (a->ringbuf_bytes != b->ringbuf_bytes)
		return "ringbuf_bytes";
	if (a->drain_interval_ms != b->drain_interval_ms)
		return "drain_interval_ms";
	if (a->refresh_interval_ms != b->refresh_interval_ms)
		return "refresh_interval_ms";
	if (a->max_series != b->max_series)
		return "max_series";
	if (a->series_idle_seconds != b->series_idle_seconds)
		return "series_idle_seconds";
	if (a->log_max_size_kb != b->log_max_size_kb)
		return "log_max_size_kb";
	if (a->log_max_files != b->log_max_files)
		return "log_max_files";
	if (config_only)
		return NULL;
	if (!str_eq(a->config_path, b->config_path))
		return "config_path";
	if (a->gen_config != b->gen_config || a->list != b->list || a->probe != b->probe ||
	    a->diagnose != b->diagnose || a->detach != b->detach || a->version != b->version ||
	    a->help != b->help)
		return "one-shot flags";
	return NULL;
}

static void check_error(int ret, const char *err, const struct ml_options *o)
{
	struct ml_options fresh;
	const char *d;

	if (ret != -EINVAL && ret != -ENOMEM)
		die("return value is neither 0 nor -EINVAL (-ENOMEM)", NULL);
	if (!err[0])
		die("error without a message", NULL);
	if (strlen(err) >= ML_ERR_LEN - 1)
		die("message fills the whole buffer (truncated?)", err);
	if (strchr(err, '\n') || strchr(err, '\r'))
		die("message is not one line", err);
	/* nothing half-applied: o still holds the defaults it started with */
	ml_options_init(&fresh);
	d = opts_diff(o, &fresh, false);
	ml_options_free(&fresh);
	if (d)
		die("a failed parse changed the options", d);
}

/* Dump o, parse the dump onto fresh defaults, compare; and the dump must be stable. */
static void check_round_trip(const struct ml_options *o)
{
	char err[ML_ERR_LEN] = "";
	struct ml_options back;
	char *text, *again;
	const char *d;

	text = ml_config_dump(o);
	if (!text)
		die("ml_config_dump() returned NULL", NULL);
	ml_options_init(&back);
	if (ml_config_parse(&back, text, "dump", err, sizeof(err))) {
		fprintf(stderr, "dump:\n%s\n", text);
		die("the dump does not parse back", err);
	}
	d = opts_diff(o, &back, true);
	if (d) {
		fprintf(stderr, "dump:\n%s\n", text);
		die("the dump parses back to different options", d);
	}
	again = ml_config_dump(&back);
	if (!again || strcmp(text, again))
		die("dumping the parsed dump gives a different text", NULL);
	free(again);
	free(text);
	ml_options_free(&back);
}

static void fuzz_json(const uint8_t *data, size_t size)
{
	char err[ML_ERR_LEN] = "";
	struct ml_options o;
	char *text;
	int ret;

	text = malloc(size + 1);
	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';

	ml_options_init(&o);
	ret = ml_config_parse(&o, text, "fuzz.json", err, sizeof(err));
	if (ret)
		check_error(ret, err, &o);
	else
		check_round_trip(&o);
	ml_options_free(&o);
	free(text);
}

/* ---- argv mode ---------------------------------------------------------- */

/* Same table as daemon/options.c; only which words are -c values matters here. */
static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "gen-config", no_argument, NULL, 256 },
	{ "cgroup", required_argument, NULL, 'g' },
	{ "access-log", required_argument, NULL, 'o' },
	{ "metrics-addr", required_argument, NULL, 'm' },
	{ "drops", no_argument, NULL, 257 },
	{ "include", required_argument, NULL, 'i' },
	{ "exclude", required_argument, NULL, 'e' },
	{ "list", no_argument, NULL, 'l' },
	{ "probe", no_argument, NULL, 258 },
	{ "diagnose", no_argument, NULL, 259 },
	{ "detach", no_argument, NULL, 260 },
	{ "user", required_argument, NULL, 261 },
	{ "pin-path", required_argument, NULL, 262 },
	{ "metadata", required_argument, NULL, 263 },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
static const char short_opts[] = "+:c:g:o:m:i:e:lVh";

static char cfg_dir[] = "/tmp/meshlens-fuzz-config.XXXXXX";

static void put_file(const char *name, const char *text, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cfg_dir, name);
	f = fopen(path, "w");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f))
		die("cannot write a config file", path);
}

static void rm_cfg_dir(void)
{
	static const char *const names[] = { "good.json", "bad.json", "nul.json",
					     "bom.json",  "empty.json", "type.json", NULL };
	char path[256];

	for (int i = 0; names[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", cfg_dir, names[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/dir", cfg_dir);
	rmdir(path);
	rmdir(cfg_dir);
}

static void make_cfg_dir(void)
{
	static const char bad[] = "{\"drops\": true,\n \"ringbuf_bytes\": 1000\n}\n";
	static const char nul[] = "{\"drops\": true}\n\0{\"x\":1}";
	static const char bom[] = "\xef\xbb\xbf{\"access_log\": \"off\", \"metadata\": null}";
	static const char type[] = "[1, 2, 3]";
	struct ml_options o;
	char path[256], *good;

	if (!mkdtemp(cfg_dir))
		die("mkdtemp", cfg_dir);
	atexit(rm_cfg_dir);
	ml_options_init(&o);
	o.drops = true;
	o.max_series = 77;
	good = ml_config_dump(&o);
	ml_options_free(&o);
	if (!good)
		die("ml_config_dump", NULL);
	put_file("good.json", good, strlen(good));
	free(good);
	put_file("bad.json", bad, sizeof(bad) - 1);
	put_file("nul.json", nul, sizeof(nul) - 1);
	put_file("bom.json", bom, sizeof(bom) - 1);
	put_file("empty.json", "", 0);
	put_file("type.json", type, sizeof(type) - 1);
	snprintf(path, sizeof(path), "%s/dir", cfg_dir);
	mkdir(path, 0700);
}

/*
 * Rewrite every -c value in argv (it may sit in its own word, after "-c" in a
 * cluster like "-lcX", or after "--config=" / "--conf=") to cfg_dir/NAME,
 * with '/' in NAME turned into '_'. Returns false when out of memory.
 */
static bool confine_config(int argc, char **argv, char **owned)
{
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		size_t off, vlen;
		char *word, *nw;
		int w;

		if (c != 'c' || !optarg || !optarg[0])
			continue;
		/* the word optarg points into */
		for (w = 1; w < argc; w++)
			if (optarg >= argv[w] && optarg <= argv[w] + strlen(argv[w]))
				break;
		if (w == argc)
			die("getopt returned an optarg outside argv", NULL);
		word = argv[w];
		off = optarg - word;
		vlen = strlen(optarg);
		nw = malloc(off + strlen(cfg_dir) + 1 + vlen + 1);
		if (!nw)
			return false;
		memcpy(nw, word, off);
		sprintf(nw + off, "%s/", cfg_dir);
		for (size_t i = 0, j = off + strlen(cfg_dir) + 1; i <= vlen; i++, j++)
			nw[j] = optarg[i] == '/' ? '_' : optarg[i];
		free(owned[w]);
		owned[w] = nw;
		argv[w] = nw;
	}
	return true;
}

static void fuzz_argv(const uint8_t *data, size_t size)
{
	char *argv[MAX_WORDS + 2], *owned[MAX_WORDS + 2] = { NULL };
	char err[ML_ERR_LEN] = "";
	struct ml_options o;
	char *text;
	int argc = 1, ret;
	size_t i, start;

	text = malloc(size + 1);
	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	argv[0] = (char *)"meshlens";
	/* NUL-terminated words; the last one may lack its NUL */
	for (start = 0, i = 0; i < size && argc <= MAX_WORDS; i++) {
		if (text[i])
			continue;
		argv[argc++] = text + start;
		start = i + 1;
	}
	if (start < size && argc <= MAX_WORDS)
		argv[argc++] = text + start;
	argv[argc] = NULL;

	if (!confine_config(argc, argv, owned))
		goto out;

	ml_options_init(&o);
	ret = ml_options_parse(&o, argc, argv, err, sizeof(err));
	if (ret) {
		check_error(ret, err, &o);
	} else {
		if (o.config_path && strncmp(o.config_path, cfg_dir, strlen(cfg_dir)))
			die("config_path outside the private directory", o.config_path);
		check_round_trip(&o);
	}
	ml_options_free(&o);
out:
	for (i = 0; i < (size_t)argc; i++)
		free(owned[i]);
	free(text);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	make_cfg_dir();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size && data[0] == 0x01)
		fuzz_argv(data + 1, size - 1);
	else
		fuzz_json(data, size);
	return 0;
}
