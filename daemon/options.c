// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * options - meshlens command line and JSON config.
 *
 * Every entry point that changes options works on a deep copy and only
 * replaces the caller's struct once everything parsed, so a bad config or
 * a bad option never leaves a half-applied state behind (this also makes
 * a SIGHUP reload of a broken file harmless).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>

#include "options.h"
#include "../lib/file.h"
#include "../lib/parse.h"
#include "../lib/util.h"

/* A config file is a few hundred bytes; the cap keeps `-c /dev/zero` from eating memory. */
#define CONFIG_MAX_BYTES (1 << 20)

/* Longest piece of user input quoted back in a message. */
#define QUOTE_MAX 80

#define METRICS_ADDR_EXPECTED \
	"expected HOST:PORT or 'off' (HOST an IPv4 address, 'localhost' or [IPv6]; PORT 1..65535)"

/*
 * Copy user input for quoting in a message: control characters would
 * break the one-line promise (a key or path may contain "\n"), and a
 * megabyte-long value would bury the point.
 */
static const char *quote(char *buf, size_t len, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	buf[i] = '\0';
	if (s[i] && len > 4)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

static void free_list(char **list, int *n)
{
	for (int i = 0; i < *n; i++) {
		free(list[i]);
		list[i] = NULL;
	}
	*n = 0;
}

void ml_options_free(struct ml_options *o)
{
	free(o->config_path);
	free_list(o->cgroups, &o->n_cgroups);
	free(o->access_log);
	free(o->metrics_addr);
	free_list(o->include, &o->n_include);
	free_list(o->exclude, &o->n_exclude);
	free(o->user);
	free(o->pin_path);
	free(o->metadata);
	memset(o, 0, sizeof(*o));
}

void ml_options_init(struct ml_options *o)
{
	memset(o, 0, sizeof(*o));
	/* init cannot report failure; a NULL left here is caught by opts_copy() */
	o->access_log = strdup("-");
	o->metrics_addr = strdup("127.0.0.1:2112");
	o->pin_path = strdup("/sys/fs/bpf/meshlens");
	o->ringbuf_bytes = 8u << 20;
	o->drain_interval_ms = 50;
	o->refresh_interval_ms = 5000;
	o->max_series = 10000;
	o->ip_pair_metrics = true;
	o->workload_metrics = true;
	o->istio_metrics = true;
	o->series_idle_seconds = 3600;
	o->log_max_size_kb = 0;
	o->log_max_files = 5;
	o->log_interval_s = 0;
}

static char *dup_or_null(const char *s, bool *ok)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*ok = false;
	return d;
}

/* Deep copy; replaces every pointer of dst so dst never aliases src. */
static int opts_copy(struct ml_options *dst, const struct ml_options *src)
{
	/* these are NULL only when ml_options_init() ran out of memory */
	bool ok = src->access_log && src->metrics_addr && src->pin_path;

	*dst = *src;
	dst->config_path = dup_or_null(src->config_path, &ok);
	for (int i = 0; i < src->n_cgroups; i++)
		dst->cgroups[i] = dup_or_null(src->cgroups[i], &ok);
	dst->access_log = dup_or_null(src->access_log, &ok);
	dst->metrics_addr = dup_or_null(src->metrics_addr, &ok);
	for (int i = 0; i < src->n_include; i++)
		dst->include[i] = dup_or_null(src->include[i], &ok);
	for (int i = 0; i < src->n_exclude; i++)
		dst->exclude[i] = dup_or_null(src->exclude[i], &ok);
	dst->user = dup_or_null(src->user, &ok);
	dst->pin_path = dup_or_null(src->pin_path, &ok);
	dst->metadata = dup_or_null(src->metadata, &ok);
	if (!ok) {
		ml_options_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* Replace o by the successfully parsed copy. */
static void opts_commit(struct ml_options *o, struct ml_options *tmp)
{
	ml_options_free(o);
	*o = *tmp;
}

static int set_str(char **slot, const char *val)
{
	char *d = strdup(val);

	if (!d)
		return -ENOMEM;
	free(*slot);
	*slot = d;
	return 0;
}

static int list_append(char **list, int *n, const char *val)
{
	char *d = strdup(val);

	if (!d)
		return -ENOMEM;
	list[(*n)++] = d;
	return 0;
}

/* "off", or HOST:PORT as the listener will bind it (lib/parse.h). */
static bool metrics_addr_valid(const char *s)
{
	union ml_sockaddr sa;
	socklen_t len;

	return !strcmp(s, "off") || !ml_parse_hostport(s, &sa, &len);
}

/* ---- JSON config ------------------------------------------------------ */

enum cfg_kind {
	CFG_LIST,		/* array of non-empty strings */
	CFG_STRING,		/* non-empty string */
	CFG_STRING_OR_NULL,	/* non-empty string, or null for "unset" */
	CFG_BOOL,
	CFG_UINT,		/* integer in [min, max] */
};

/* One config key; parse and dump both walk this table, so they cannot disagree. */
struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off;		/* the field in struct ml_options */
	size_t count_off;	/* CFG_LIST: its element count */
	int cap;		/* CFG_LIST: most elements allowed */
	unsigned int min, max;	/* CFG_UINT: inclusive range */
	bool pow2;		/* CFG_UINT: must be a power of two */
	bool (*valid)(const char *); /* CFG_STRING: extra check */
	const char *expected;	/* what the message asks for when valid() refuses */
};

#define OFF(f) offsetof(struct ml_options, f)

static const struct cfg_key cfg_keys[] = {
	{ .name = "cgroups", .kind = CFG_LIST, .off = OFF(cgroups), .count_off = OFF(n_cgroups),
	  .cap = ML_MAX_CGROUPS },
	{ .name = "access_log", .kind = CFG_STRING, .off = OFF(access_log) },
	{ .name = "metrics_addr", .kind = CFG_STRING, .off = OFF(metrics_addr),
	  .valid = metrics_addr_valid, .expected = METRICS_ADDR_EXPECTED },
	{ .name = "drops", .kind = CFG_BOOL, .off = OFF(drops) },
	{ .name = "include", .kind = CFG_LIST, .off = OFF(include), .count_off = OFF(n_include),
	  .cap = ML_MAX_POINTS },
	{ .name = "exclude", .kind = CFG_LIST, .off = OFF(exclude), .count_off = OFF(n_exclude),
	  .cap = ML_MAX_POINTS },
	{ .name = "user", .kind = CFG_STRING_OR_NULL, .off = OFF(user) },
	{ .name = "pin_path", .kind = CFG_STRING, .off = OFF(pin_path) },
	{ .name = "metadata", .kind = CFG_STRING_OR_NULL, .off = OFF(metadata) },
	{ .name = "ringbuf_bytes", .kind = CFG_UINT, .off = OFF(ringbuf_bytes),
	  .min = 1u << 16, .max = 1u << 30, .pow2 = true },
	{ .name = "drain_interval_ms", .kind = CFG_UINT, .off = OFF(drain_interval_ms),
	  .min = 1, .max = 1000 },
	{ .name = "refresh_interval_ms", .kind = CFG_UINT, .off = OFF(refresh_interval_ms),
	  .min = 100, .max = 600000 },
	{ .name = "max_series", .kind = CFG_UINT, .off = OFF(max_series), .min = 1,
	  .max = 10000000 },
	{ .name = "ip_pair_metrics", .kind = CFG_BOOL, .off = OFF(ip_pair_metrics) },
	{ .name = "workload_metrics", .kind = CFG_BOOL, .off = OFF(workload_metrics) },
	{ .name = "istio_metrics", .kind = CFG_BOOL, .off = OFF(istio_metrics) },
	{ .name = "series_idle_seconds", .kind = CFG_UINT, .off = OFF(series_idle_seconds),
	  .min = 0, .max = 31536000 },
	{ .name = "log_max_size_kb", .kind = CFG_UINT, .off = OFF(log_max_size_kb),
	  .min = 0, .max = 4194304 },
	{ .name = "log_interval_s", .kind = CFG_UINT, .off = OFF(log_interval_s), .min = 0,
	  .max = 86400 },
	{ .name = "log_max_files", .kind = CFG_UINT, .off = OFF(log_max_files),
	  .min = 1, .max = 1000 },
};

#define N_CFG_KEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

_Static_assert(N_CFG_KEYS <= 32, "cfg_apply() tracks seen keys in a 32-bit mask");

#define FIELD(o, k, type) ((type)((char *)(o) + (k)->off))

/* "got ..." part of a type error: the value for scalars, the type otherwise. */
static const char *describe(const cJSON *v, char *buf, size_t len)
{
	char *num;

	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble))
			return "a number out of range";
		num = cJSON_PrintUnformatted(v);
		if (!num)
			return "a number";
		snprintf(buf, len, "%s", num);
		free(num);
		return buf;
	}
	if (cJSON_IsString(v))
		return v->valuestring[0] ? "a string" : "an empty string";
	if (cJSON_IsTrue(v))
		return "true";
	if (cJSON_IsFalse(v))
		return "false";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	return "an object";
}

static bool nonempty_string(const cJSON *v)
{
	return cJSON_IsString(v) && v->valuestring[0];
}

/*
 * Apply one key onto o. On error writes "key '...': ..." (without the
 * file prefix) to msg and returns -1; -ENOMEM when out of memory.
 */
static int cfg_apply_key(struct ml_options *o, const struct cfg_key *k, const cJSON *v,
			 char *msg, size_t len)
{
	char got[64], q[QUOTE_MAX];
	const cJSON *e;
	double d;
	int i;

	switch (k->kind) {
	case CFG_LIST: {
		char **list = FIELD(o, k, char **);
		int *n = (int *)((char *)o + k->count_off);

		if (!cJSON_IsArray(v)) {
			snprintf(msg, len,
				 "key '%s': expected an array of non-empty strings, got %s",
				 k->name, describe(v, got, sizeof(got)));
			return -1;
		}
		if (cJSON_GetArraySize(v) > k->cap) {
			snprintf(msg, len, "key '%s': more than %d entries", k->name, k->cap);
			return -1;
		}
		/* the file's list replaces what was there, it does not extend it */
		free_list(list, n);
		i = 0;
		cJSON_ArrayForEach(e, v) {
			if (!nonempty_string(e)) {
				snprintf(msg, len,
					 "key '%s[%d]': expected a non-empty string, got %s",
					 k->name, i, describe(e, got, sizeof(got)));
				return -1;
			}
			if (list_append(list, n, e->valuestring))
				return -ENOMEM;
			i++;
		}
		return 0;
	}
	case CFG_STRING_OR_NULL:
		if (cJSON_IsNull(v)) {
			free(*FIELD(o, k, char **));
			*FIELD(o, k, char **) = NULL;
			return 0;
		}
		/* fall through */
	case CFG_STRING:
		if (!nonempty_string(v)) {
			snprintf(msg, len, "key '%s': expected a non-empty string%s, got %s",
				 k->name, k->kind == CFG_STRING_OR_NULL ? " or null" : "",
				 describe(v, got, sizeof(got)));
			return -1;
		}
		if (k->valid && !k->valid(v->valuestring)) {
			snprintf(msg, len, "key '%s': %s, got '%s'", k->name, k->expected,
				 quote(q, sizeof(q), v->valuestring));
			return -1;
		}
		return set_str(FIELD(o, k, char **), v->valuestring);
	case CFG_BOOL:
		if (!cJSON_IsBool(v)) {
			snprintf(msg, len, "key '%s': expected true or false, got %s", k->name,
				 describe(v, got, sizeof(got)));
			return -1;
		}
		*FIELD(o, k, bool *) = cJSON_IsTrue(v);
		return 0;
	case CFG_UINT:
		d = v->valuedouble;
		/* range first, so the cast that tests integrality cannot overflow */
		if (!cJSON_IsNumber(v) || !(d >= k->min && d <= k->max) ||
		    d != (double)(unsigned int)d ||
		    (k->pow2 && ((unsigned int)d & ((unsigned int)d - 1)))) {
			snprintf(msg, len, "key '%s': expected %s %u..%u, got %s", k->name,
				 k->pow2 ? "a power of two" : "an integer", k->min, k->max,
				 describe(v, got, sizeof(got)));
			return -1;
		}
		*FIELD(o, k, unsigned int *) = (unsigned int)d;
		return 0;
	}
	return -1;
}

/* 1-based line and column of pos in text. */
static void line_col(const char *text, const char *pos, int *line, int *col)
{
	const char *bol = text;

	*line = 1;
	for (const char *p = text; p < pos; p++) {
		if (*p == '\n') {
			(*line)++;
			bol = p + 1;
		}
	}
	*col = (int)(pos - bol) + 1;
}

/* Apply the config text onto o in place; o is always a scratch copy. */
static int cfg_apply(struct ml_options *o, const char *json, const char *origin, char *err,
		     size_t errlen)
{
	char qo[256], qk[QUOTE_MAX], msg[ML_ERR_LEN];
	const cJSON *item;
	uint32_t seen = 0;
	cJSON *root;
	size_t i;
	int ret = 0, r;

	quote(qo, sizeof(qo), origin ? origin : "(inline)");
	if (json[strspn(json, " \t\r\n")] == '\0')
		return ml_err(err, errlen, -EINVAL, "config %s: empty, expected a JSON object", qo);

	root = cJSON_ParseWithOpts(json, NULL, true);
	if (!root) {
		/* cJSON reports a pointer into json; people need line:column */
		const char *pos = cJSON_GetErrorPtr();
		int line, col;

		if (!pos || pos < json || pos > json + strlen(json))
			return ml_err(err, errlen, -EINVAL, "config %s: invalid JSON", qo);
		line_col(json, pos, &line, &col);
		return ml_err(err, errlen, -EINVAL, "config %s: invalid JSON at line %d, column %d", qo, line,
			    col);
	}
	if (!cJSON_IsObject(root)) {
		ret = ml_err(err, errlen, -EINVAL,
			   "config %s: expected a JSON object at the top level, got %s", qo,
			   describe(root, msg, sizeof(msg)));
		goto cleanup;
	}

	cJSON_ArrayForEach(item, root) {
		for (i = 0; i < N_CFG_KEYS; i++)
			if (!strcmp(item->string, cfg_keys[i].name))
				break;
		if (i == N_CFG_KEYS) {
			ret = ml_err(err, errlen, -EINVAL, "config %s: unknown key '%s'", qo,
				   quote(qk, sizeof(qk), item->string));
			goto cleanup;
		}
		/* cJSON keeps duplicates and lookups return the first: refuse the ambiguity */
		if (seen & (1u << i)) {
			ret = ml_err(err, errlen, -EINVAL, "config %s: key '%s' appears more than once", qo,
				   cfg_keys[i].name);
			goto cleanup;
		}
		seen |= 1u << i;
		r = cfg_apply_key(o, &cfg_keys[i], item, msg, sizeof(msg));
		if (r == -ENOMEM) {
			ret = ml_err(err, errlen, -ENOMEM, "config %s: out of memory", qo);
			goto cleanup;
		}
		if (r) {
			ret = ml_err(err, errlen, -EINVAL, "config %s: %s", qo, msg);
			goto cleanup;
		}
	}
cleanup:
	cJSON_Delete(root);
	return ret;
}

int ml_config_parse(struct ml_options *o, const char *json, const char *origin, char *err,
		    size_t errlen)
{
	struct ml_options tmp;
	int ret;

	if (opts_copy(&tmp, o))
		return ml_err(err, errlen, -ENOMEM, "config: out of memory");
	ret = cfg_apply(&tmp, json, origin, err, errlen);
	if (ret) {
		ml_options_free(&tmp);
		return ret;
	}
	opts_commit(o, &tmp);
	return 0;
}

/* The config file, NUL-terminated, or 2 with the reason in err. */
static int read_config(const char *path, char **out, char *err, size_t errlen)
{
	char q[256], why[160], *buf;
	size_t len;
	const char *nul;

	buf = ml_read_file(path, CONFIG_MAX_BYTES, &len, why, sizeof(why));
	if (!buf)
		return ml_err(err, errlen, -EINVAL, "config %s: %s", quote(q, sizeof(q), path), why);
	/* the parser would silently stop at an embedded NUL and ignore the rest */
	nul = memchr(buf, '\0', len);
	if (nul) {
		size_t off = (size_t)(nul - buf);

		free(buf);
		return ml_err(err, errlen, -EINVAL, "config %s: contains a NUL byte at offset %zu",
			    quote(q, sizeof(q), path), off);
	}
	*out = buf;
	return 0;
}

int ml_config_load(struct ml_options *o, const char *path, char *err, size_t errlen)
{
	struct ml_options tmp;
	char *text = NULL;
	const char *json;
	int ret;

	ret = read_config(path, &text, err, errlen);
	if (ret)
		return ret;
	/* editors on some systems write a UTF-8 BOM, which cJSON does not accept */
	json = strncmp(text, "\xef\xbb\xbf", 3) ? text : text + 3;

	if (opts_copy(&tmp, o)) {
		free(text);
		return ml_err(err, errlen, -ENOMEM, "config: out of memory");
	}
	ret = cfg_apply(&tmp, json, path, err, errlen);
	/* remember the file, so SIGHUP can reload it */
	if (!ret && set_str(&tmp.config_path, path))
		ret = ml_err(err, errlen, -ENOMEM, "config: out of memory");
	free(text);
	if (ret) {
		ml_options_free(&tmp);
		return ret;
	}
	opts_commit(o, &tmp);
	return 0;
}

char *ml_config_dump(const struct ml_options *o)
{
	cJSON *root, *arr;
	char *text = NULL;
	size_t i;
	bool ok = true;

	root = cJSON_CreateObject();
	if (!root)
		return NULL;
	for (i = 0; i < N_CFG_KEYS && ok; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		const char *s;

		switch (k->kind) {
		case CFG_LIST: {
			char *const *list = FIELD(o, k, char *const *);
			int n = *(const int *)((const char *)o + k->count_off);

			arr = cJSON_AddArrayToObject(root, k->name);
			ok = arr;
			for (int j = 0; ok && j < n; j++) {
				cJSON *e = cJSON_CreateString(list[j]);

				ok = e && cJSON_AddItemToArray(arr, e);
				if (!ok)
					cJSON_Delete(e);
			}
			break;
		}
		case CFG_STRING_OR_NULL:
		case CFG_STRING:
			s = *FIELD(o, k, char *const *);
			if (!s && k->kind == CFG_STRING_OR_NULL)
				ok = cJSON_AddNullToObject(root, k->name);
			else
				ok = s && cJSON_AddStringToObject(root, k->name, s);
			break;
		case CFG_BOOL:
			ok = cJSON_AddBoolToObject(root, k->name, *FIELD(o, k, const bool *));
			break;
		case CFG_UINT:
			ok = cJSON_AddNumberToObject(root, k->name,
						     *FIELD(o, k, const unsigned int *));
			break;
		}
	}
	if (ok)
		text = cJSON_Print(root);
	cJSON_Delete(root);
	return text;
}

/* ---- command line ----------------------------------------------------- */

/* Long-only options get values past the char range so they never clash with a short one. */
enum {
	OPT_GEN_CONFIG = 256,
	OPT_DROPS,
	OPT_PROBE,
	OPT_DIAGNOSE,
	OPT_DETACH,
	OPT_USER,
	OPT_PIN_PATH,
	OPT_METADATA,
};

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "gen-config", no_argument, NULL, OPT_GEN_CONFIG },
	{ "cgroup", required_argument, NULL, 'g' },
	{ "access-log", required_argument, NULL, 'o' },
	{ "metrics-addr", required_argument, NULL, 'm' },
	{ "drops", no_argument, NULL, OPT_DROPS },
	{ "include", required_argument, NULL, 'i' },
	{ "exclude", required_argument, NULL, 'e' },
	{ "list", no_argument, NULL, 'l' },
	{ "probe", no_argument, NULL, OPT_PROBE },
	{ "diagnose", no_argument, NULL, OPT_DIAGNOSE },
	{ "detach", no_argument, NULL, OPT_DETACH },
	{ "user", required_argument, NULL, OPT_USER },
	{ "pin-path", required_argument, NULL, OPT_PIN_PATH },
	{ "metadata", required_argument, NULL, OPT_METADATA },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/*
 * '+': stop at the first non-option, so argv is never permuted and a
 * stray word is reported rather than skipped. ':': a missing value
 * returns ':' instead of '?', so it gets its own message.
 */
static const char short_opts[] = "+:c:g:o:m:i:e:lVh";

static const char *long_name(int val)
{
	for (const struct option *p = long_opts; p->name; p++)
		if (p->val == val)
			return p->name;
	return NULL;
}

/* Message for getopt's '?': unknown, ambiguous, or a value given to a flag. */
static int bad_option(const char *arg, char *err, size_t errlen)
{
	char q[QUOTE_MAX], name[QUOTE_MAX];
	const char *flag = long_name(optopt);
	size_t len;
	int matches = 0;

	/* a known option can only land here as --flag=value */
	if (optopt && flag)
		return ml_err(err, errlen, -EINVAL, "option '--%s' takes no value", flag);
	if (optopt) {
		char s[3] = { '-', (char)optopt, '\0' };

		return ml_err(err, errlen, -EINVAL, "unknown option '%s'", quote(q, sizeof(q), s));
	}
	/* glibc has stepped past the unknown long option: it is argv[optind - 1] */
	quote(name, sizeof(name), arg);
	name[strcspn(name, "=")] = '\0';
	len = strlen(name);
	if (len > 2 && !strncmp(name, "--", 2))
		for (const struct option *p = long_opts; p->name; p++)
			matches += !strncmp(p->name, name + 2, len - 2);
	if (matches > 1)
		return ml_err(err, errlen, -EINVAL, "option '%s' is ambiguous", name);
	return ml_err(err, errlen, -EINVAL, "unknown option '%s'", name);
}

/* First occurrence on the command line replaces the config's list; later ones append. */
static int cli_list(char **list, int *n, bool *seen, int cap, int val, char *err, size_t errlen)
{
	if (!*seen) {
		free_list(list, n);
		*seen = true;
	}
	if (*n >= cap)
		return ml_err(err, errlen, -EINVAL, "option '--%s': more than %d given", long_name(val), cap);
	if (list_append(list, n, optarg))
		return ml_err(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

static int cli_str(char **slot, char *err, size_t errlen)
{
	if (set_str(slot, optarg))
		return ml_err(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

/* Find -c/--config (the last one wins) without acting on anything else. */
static const char *find_config(int argc, char **argv)
{
	const char *path = NULL;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1)
		if (c == 'c')
			path = optarg;
	return path;
}

static int apply_args(struct ml_options *o, int argc, char **argv, char *err, size_t errlen)
{
	bool seen_cgroup = false, seen_include = false, seen_exclude = false;
	char q[QUOTE_MAX];
	int c, ret;

	optind = 0;
	while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
		if (c == '?')
			return bad_option(argv[optind - 1], err, errlen);
		if (c == ':')
			return ml_err(err, errlen, -EINVAL, "option '--%s' needs a value", long_name(optopt));
		if (optarg && !optarg[0])
			return ml_err(err, errlen, -EINVAL, "option '--%s': empty value", long_name(c));

		ret = 0;
		switch (c) {
		case 'c':
			/* already loaded by ml_options_parse() before this pass */
			break;
		case OPT_GEN_CONFIG:
			o->gen_config = true;
			break;
		case 'g':
			ret = cli_list(o->cgroups, &o->n_cgroups, &seen_cgroup, ML_MAX_CGROUPS, c,
				       err, errlen);
			break;
		case 'o':
			ret = cli_str(&o->access_log, err, errlen);
			break;
		case 'm':
			if (!metrics_addr_valid(optarg))
				return ml_err(err, errlen, -EINVAL, "--metrics-addr '%s': %s",
					    quote(q, sizeof(q), optarg), METRICS_ADDR_EXPECTED);
			ret = cli_str(&o->metrics_addr, err, errlen);
			break;
		case OPT_DROPS:
			o->drops = true;
			break;
		case 'i':
			ret = cli_list(o->include, &o->n_include, &seen_include, ML_MAX_POINTS, c,
				       err, errlen);
			break;
		case 'e':
			ret = cli_list(o->exclude, &o->n_exclude, &seen_exclude, ML_MAX_POINTS, c,
				       err, errlen);
			break;
		case 'l':
			o->list = true;
			break;
		case OPT_PROBE:
			o->probe = true;
			break;
		case OPT_DIAGNOSE:
			o->diagnose = true;
			break;
		case OPT_DETACH:
			o->detach = true;
			break;
		case OPT_USER:
			ret = cli_str(&o->user, err, errlen);
			break;
		case OPT_PIN_PATH:
			ret = cli_str(&o->pin_path, err, errlen);
			break;
		case OPT_METADATA:
			ret = cli_str(&o->metadata, err, errlen);
			break;
		case 'V':
			o->version = true;
			break;
		case 'h':
			o->help = true;
			break;
		}
		if (ret)
			return ret;
	}
	if (optind < argc)
		return ml_err(err, errlen, -EINVAL, "unexpected argument '%s' (meshlens takes no arguments)",
			    quote(q, sizeof(q), argv[optind]));
	return 0;
}

int ml_options_parse(struct ml_options *o, int argc, char **argv, char *err, size_t errlen)
{
	struct ml_options tmp;
	const char *config;
	int ret;

	if (opts_copy(&tmp, o))
		return ml_err(err, errlen, -ENOMEM, "out of memory");
	/* our messages, not getopt's */
	opterr = 0;

	/* the file is the base layer: load it before any option is applied on top */
	config = find_config(argc, argv);
	if (config && !config[0])
		ret = ml_err(err, errlen, -EINVAL, "option '--config': empty value");
	else if (config)
		ret = ml_config_load(&tmp, config, err, errlen);
	else
		ret = 0;
	if (!ret)
		ret = apply_args(&tmp, argc, argv, err, errlen);
	if (ret) {
		ml_options_free(&tmp);
		return ret;
	}
	opts_commit(o, &tmp);
	return 0;
}

void ml_options_usage(FILE *out)
{
	fputs("Usage: meshlens [options]\n"
	      "  -c, --config FILE          JSON config (cJSON); command-line options override it\n"
	      "      --gen-config           print the default config to stdout and exit\n"
	      "  -g, --cgroup PATH          cgroup v2 directory to observe (repeatable; default: the cgroup v2 root)\n"
	      "  -o, --access-log DEST      '-' = stdout (default), a file path (appended), or 'off'\n"
	      "  -m, --metrics-addr H:P     metrics/health endpoint (default 127.0.0.1:2112); 'off' disables\n"
	      "      --drops                enable packet-drop tracing (off by default: it sees every packet)\n"
	      "  -i, --include POINT        drop points to diagnose (repeatable)\n"
	      "  -e, --exclude POINT        drop points not to diagnose (repeatable; wins over --include)\n"
	      "  -l, --list                 list drop points known on this kernel, with layer, and exit\n"
	      "      --probe                print each feature, the hook it will use on this kernel, and exit\n"
	      "      --diagnose             print a one-shot drop diagnosis report (findings, evidence, hints) and exit\n"
	      "      --detach               remove everything meshlens pinned under --pin-path, and exit\n"
	      "      --user USER            switch to this user after attaching\n"
	      "      --pin-path DIR         bpffs directory for pinned maps/links (default /sys/fs/bpf/meshlens)\n"
	      "      --metadata FILE        workload identity file; reloaded when it changes\n"
	      "  -V, --version              print the version and exit\n"
	      "  -h, --help                 print this help and exit\n"
	      "\n"
	      "Exit status: 0 success, 1 run-time failure, 2 bad usage or config.\n",
	      out);
}

static const char *const live_keys[] = {
	"drain_interval_ms", "refresh_interval_ms", "include", "exclude",
	"log_max_size_kb", "log_max_files", "series_idle_seconds",
};

bool ml_config_key_is_live(const char *key)
{
	for (size_t i = 0; i < sizeof(live_keys) / sizeof(live_keys[0]); i++)
		if (!strcmp(key, live_keys[i]))
			return true;
	return false;
}

#define SWAP(a, b)                        \
	do {                              \
		typeof(a) swap_tmp_ = (a); \
		(a) = (b);                \
		(b) = swap_tmp_;          \
	} while (0)

void ml_options_take_live(struct ml_options *o, struct ml_options *n)
{
	o->drain_interval_ms = n->drain_interval_ms;
	o->refresh_interval_ms = n->refresh_interval_ms;
	o->log_max_size_kb = n->log_max_size_kb;
	o->log_max_files = n->log_max_files;
	o->series_idle_seconds = n->series_idle_seconds;
	for (int i = 0; i < ML_MAX_POINTS; i++) {
		SWAP(o->include[i], n->include[i]);
		SWAP(o->exclude[i], n->exclude[i]);
	}
	SWAP(o->n_include, n->n_include);
	SWAP(o->n_exclude, n->n_exclude);
}
