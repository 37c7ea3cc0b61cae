// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "expo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(struct expo *e, size_t more)
{
	size_t cap = e->cap ? e->cap : 4096;
	char *nb;

	if (e->oom)
		return false;
	if (e->len + more <= e->cap)
		return true;
	while (cap < e->len + more)
		cap *= 2;
	nb = realloc(e->buf, cap);
	if (!nb) {
		e->oom = true;
		return false;
	}
	e->buf = nb;
	e->cap = cap;
	return true;
}

static void put(struct expo *e, const char *s, size_t n)
{
	if (!reserve(e, n))
		return;
	memcpy(e->buf + e->len, s, n);
	e->len += n;
}

static void puts_(struct expo *e, const char *s)
{
	put(e, s, strlen(s));
}

/* Escape \ and newline (and " inside label values). */
static void put_escaped(struct expo *e, const char *s, bool quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && quote)
			rep = "\\\"";
		if (!rep)
			continue;
		put(e, run, (size_t)(s - run));
		puts_(e, rep);
		run = s + 1;
	}
	put(e, run, (size_t)(s - run));
}

void expo_reset(struct expo *e)
{
	e->len = 0;
	e->oom = false;
}

void expo_free(struct expo *e)
{
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

void expo_family(struct expo *e, const char *name, const char *type, const char *help)
{
	puts_(e, "# HELP ");
	puts_(e, name);
	put(e, " ", 1);
	put_escaped(e, help, false);
	puts_(e, "\n# TYPE ");
	puts_(e, name);
	put(e, " ", 1);
	puts_(e, type);
	put(e, "\n", 1);
}

static void put_name_labels(struct expo *e, const char *name, const char *const *labels)
{
	puts_(e, name);
	if (!labels || !labels[0])
		return;
	put(e, "{", 1);
	for (int i = 0; labels[i]; i += 2) {
		if (i)
			put(e, ",", 1);
		puts_(e, labels[i]);
		put(e, "=\"", 2);
		put_escaped(e, labels[i + 1], true);
		put(e, "\"", 1);
	}
	put(e, "}", 1);
}

void expo_sample_u64(struct expo *e, const char *name, const char *const *labels, uint64_t v)
{
	char num[24], *p = num + sizeof(num);

	put_name_labels(e, name, labels);
	*--p = '\n';
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	*--p = ' ';
	put(e, p, (size_t)(num + sizeof(num) - p));
}

void expo_sample_f64(struct expo *e, const char *name, const char *const *labels, double v)
{
	char num[40];
	/* the text format spells these NaN, +Inf, -Inf (printf: "-nan", "inf") */
	int n = isnan(v) ? snprintf(num, sizeof(num), " NaN\n")
		: isinf(v) ? snprintf(num, sizeof(num), " %cInf\n", v > 0 ? '+' : '-')
			   : snprintf(num, sizeof(num), " %.9g\n", v);

	put_name_labels(e, name, labels);
	put(e, num, (size_t)n);
}
