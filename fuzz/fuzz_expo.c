// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: metrics/expo.c, the Prometheus text format writer.
 *
 * Input layout (zero-padded when short):
 *
 *   [0, 8)   u64 sample value
 *   [8, 16)  double (raw bits) for a gauge sample
 *   [16, ..) NUL-separated: HELP text, then up to 6 label values
 *
 * One counter family (HELP, TYPE, a labelled sample and an unlabelled one)
 * and one gauge (f64, labelled) are rendered into a buffer reused across
 * inputs (expo_reset), then read back by a strict parser written here:
 *   - HELP unescapes (\\ and \n only) to the input text exactly;
 *   - every sample line is name{k="v",...} value, where each v unescapes
 *     (\\ \" \n, nothing else) to the input bytes exactly, with no raw
 *     newline or unescaped quote inside a value;
 *   - the u64 value reads back exactly; a finite gauge value to 9
 *     significant digits.
 * Non-finite gauge values are only checked (against what Prometheus'
 * parser, Go's strconv.ParseFloat, accepts) with FUZZ_EXPO_NONFINITE=1 in
 * the environment: expo.c prints glibc's "-nan" (the NaN of 0.0/0.0 has its
 * sign bit set on x86), which Prometheus refuses, failing the whole scrape.
 * Reproducer: FUZZ_EXPO_NONFINITE=1 build/fuzz/fuzz_expo fuzz/crashes/expo-negative-nan
 * Once expo_sample_f64() prints NaN/+Inf/-Inf, make the check unconditional.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics/expo.h"

#define MAX_LABELS 6
#define FAMILY "meshlens_fuzz_total"
#define GAUGE "meshlens_fuzz_seconds"

static const char *const label_keys[MAX_LABELS] = {
	"direction", "src_ip", "dst_ip", "dst_port", "reason", "layer",
};

static const char *text;	/* the whole output, for die() */
static bool check_nonfinite;

static __attribute__((noreturn)) void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_expo: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	if (text)
		fprintf(stderr, "output:\n%s\n", text);
	abort();
}

/* Expect the literal s at *p and step over it. */
static void lit(const char **p, const char *s, const char *what)
{
	size_t n = strlen(s);

	if (strncmp(*p, s, n))
		die("unexpected text, expected", what);
	*p += n;
}

/*
 * Unescape from *p up to the terminator (newline for HELP, '"' for label
 * values) into out, and step past the terminator. quote: \" is an escape
 * and a raw '"' ends the value. Returns the unescaped length.
 */
static size_t unescape(const char **p, char *out, bool quote)
{
	const char *s = *p;
	size_t n = 0;

	for (;; s++) {
		if (!*s)
			die("text ends inside an escaped string", NULL);
		if (quote && *s == '"')
			break;
		if (*s == '\n') {
			if (quote)
				die("raw newline inside a label value", NULL);
			break;
		}
		if (*s == '\\') {
			s++;
			if (*s == '\\')
				out[n++] = '\\';
			else if (*s == 'n')
				out[n++] = '\n';
			else if (*s == '"' && quote)
				out[n++] = '"';
			else
				die("unknown escape sequence", NULL);
			continue;
		}
		out[n++] = *s;
	}
	out[n] = '\0';
	*p = s + 1;
	return n;
}

/* name{k="v",...} (or name alone when n == 0), then ' '. scratch holds a value. */
static void name_labels(const char **p, const char *name, const char *const *vals, int n,
			char *scratch)
{
	lit(p, name, name);
	if (n) {
		lit(p, "{", "{");
		for (int i = 0; i < n; i++) {
			if (i)
				lit(p, ",", ",");
			lit(p, label_keys[i], label_keys[i]);
			lit(p, "=\"", "=\"");
			unescape(p, scratch, true);
			if (strcmp(scratch, vals[i]))
				die("label value does not unescape to the input", label_keys[i]);
		}
		lit(p, "}", "}");
	}
	lit(p, " ", "space before the value");
}

static void sample_u64(const char **p, uint64_t v)
{
	char *end;

	if (**p < '0' || **p > '9')
		die("u64 value is not a number", NULL);
	if (strtoull(*p, &end, 10) != v || *end != '\n')
		die("u64 value differs", NULL);
	*p = end + 1;
}

/* What Go's strconv.ParseFloat (Prometheus' parser) takes for a non-finite value. */
static bool go_special(const char *s, size_t n, double *v)
{
	bool neg = false;

	if (n == 3 && !strncasecmp(s, "nan", 3)) {
		*v = NAN;
		return true;
	}
	if (n && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		s++;
		n--;
	}
	if ((n == 3 && !strncasecmp(s, "inf", 3)) || (n == 8 && !strncasecmp(s, "infinity", 8))) {
		*v = neg ? -INFINITY : INFINITY;
		return true;
	}
	return false;
}

static void sample_f64(const char **p, double v)
{
	const char *nl = strchr(*p, '\n');
	char tok[64], *end;
	double got;
	size_t n;

	if (!nl || (n = (size_t)(nl - *p)) == 0 || n >= sizeof(tok))
		die("f64 value missing or too long", NULL);
	memcpy(tok, *p, n);
	tok[n] = '\0';
	*p = nl + 1;
	if (!isfinite(v)) {
		if (!check_nonfinite)
			return;
		if (!go_special(tok, n, &got) || (isnan(v) ? !isnan(got) : got != v))
			die("non-finite value Prometheus would not read back", tok);
		return;
	}
	/* a plain decimal: Go accepts no hex, no "p" exponents, no "_" */
	if (strspn(tok, "0123456789+-.eE") != n)
		die("f64 value is not a plain decimal", tok);
	got = strtod(tok, &end);
	if (*end)
		die("f64 value does not parse", tok);
	if (v == 0 ? got != 0 : fabs(got - v) > fabs(v) * 1e-8)
		die("f64 value differs beyond 9 significant digits", tok);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *s = getenv("FUZZ_EXPO_NONFINITE");

	(void)argc;
	(void)argv;
	check_nonfinite = s && *s && strcmp(s, "0");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct expo e;
	const char *vals[MAX_LABELS];
	const char *labels[2 * MAX_LABELS + 1];
	char *strs, *help, *scratch, *s, *end;
	uint8_t head[16] = { 0 };
	const char *p;
	uint64_t u;
	double f;
	int n = 0;

	memcpy(head, data, size < 16 ? size : 16);
	memcpy(&u, head, 8);
	memcpy(&f, head + 8, 8);

	/* the strings: a NUL-terminated copy of the tail, split on NUL */
	size = size > 16 ? size - 16 : 0;
	strs = malloc(size + 1);
	scratch = malloc(size + 1);
	if (!strs || !scratch)
		goto out;
	memcpy(strs, size ? data + 16 : (const uint8_t *)"", size);
	strs[size] = '\0';
	end = strs + size;
	help = strs;
	for (s = help + strlen(help) + 1; s <= end && n < MAX_LABELS; s += strlen(s) + 1)
		vals[n++] = s;
	for (int i = 0; i < n; i++) {
		labels[2 * i] = label_keys[i];
		labels[2 * i + 1] = vals[i];
	}
	labels[2 * n] = NULL;

	expo_reset(&e);
	expo_family(&e, FAMILY, "counter", help);
	expo_sample_u64(&e, FAMILY, labels, u);
	expo_sample_u64(&e, FAMILY, NULL, u);
	expo_family(&e, GAUGE, "gauge", help);
	expo_sample_f64(&e, GAUGE, labels, f);
	if (e.oom)
		goto out;

	/* NUL-terminated copy: expo's buffer is not a C string */
	text = s = malloc(e.len + 1);
	if (!s)
		goto out;
	memcpy(s, e.buf, e.len);
	s[e.len] = '\0';
	if (strlen(s) != e.len)
		die("NUL byte in the output", NULL);
	if (e.len && s[e.len - 1] != '\n')
		die("output does not end with a newline", NULL);

	p = s;
	lit(&p, "# HELP " FAMILY " ", "HELP");
	unescape(&p, scratch, false);
	if (strcmp(scratch, help))
		die("HELP text does not unescape to the input", NULL);
	lit(&p, "# TYPE " FAMILY " counter\n", "TYPE");
	name_labels(&p, FAMILY, vals, n, scratch);
	sample_u64(&p, u);
	name_labels(&p, FAMILY, vals, 0, scratch);
	sample_u64(&p, u);
	lit(&p, "# HELP " GAUGE " ", "HELP");
	unescape(&p, scratch, false);
	lit(&p, "# TYPE " GAUGE " gauge\n", "TYPE");
	name_labels(&p, GAUGE, vals, n, scratch);
	sample_f64(&p, f);
	if (*p)
		die("unexpected text after the last sample", p);
	free(s);
	text = NULL;
out:
	free(scratch);
	free(strs);
	return 0;
}
