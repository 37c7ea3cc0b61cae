// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Drop counts by workload: keys, "unknown", the cap's "other", rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drops/byworkload.h"

/* two named reasons; anything else is UNKNOWN_<value>, layer "other" */
static struct drop_reason table[] = {
	{ .value = 2, .name = "NO_SOCKET", .module = "l4.socket", .layer = "l4" },
	{ .value = 6, .name = "NETFILTER_DROP", .module = "l3.netfilter", .layer = "l3" },
};
static const struct drop_reasons reasons = { table, 2 };

static char *render(struct drop_wl *a)
{
	struct expo e = { 0 };
	char *s;

	drop_wl_render(a, &reasons, &e);
	assert_false(e.oom);
	s = strndup(e.buf ? e.buf : "", e.len);
	assert_non_null(s);
	expo_free(&e);
	return s;
}

/* Value of one sample, -1 when absent. */
static long long sample(struct drop_wl *a, const char *name, const char *labels)
{
	char key[512], *s = render(a), *p;
	long long v = -1;

	snprintf(key, sizeof(key), "\n%s{%s} ", name, labels);
	p = strstr(s, key);
	if (p)
		v = atoll(p + strlen(key));
	free(s);
	return v;
}

#define L(wl, ns, reason, layer, dir)                                                     \
	"workload=\"" wl "\",namespace=\"" ns "\",reason=\"" reason "\",layer=\"" layer   \
	"\",direction=\"" dir "\""

static void test_counts_by_workload_reason_direction(void **state)
{
	struct drop_wl *a = drop_wl_new(100);
	struct drop_wl_stats st;
	char name[] = "web";

	(void)state;
	assert_non_null(a);
	drop_wl_add(a, name, "shop", 6, ML_DROP_INGRESS, 3, 300);
	/* the names are copied: the metadata table may be swapped later */
	strcpy(name, "xyz");
	drop_wl_add(a, "web", "shop", 6, ML_DROP_INGRESS, 2, 200);
	drop_wl_add(a, "web", "shop", 6, ML_DROP_EGRESS, 1, 60);
	drop_wl_add(a, "web", "shop", 2, ML_DROP_INGRESS, 4, 160);
	drop_wl_add(a, NULL, NULL, 99, ML_DROP_INGRESS, 7, 700);
	drop_wl_add(a, "db", NULL, 6, ML_DROP_INGRESS, 1, 10);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("web", "shop", "NETFILTER_DROP", "l3", "ingress")),
			 5);
	assert_int_equal(sample(a, "meshlens_workload_drop_bytes_total",
				L("web", "shop", "NETFILTER_DROP", "l3", "ingress")),
			 500);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("web", "shop", "NETFILTER_DROP", "l3", "egress")),
			 1);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("web", "shop", "NO_SOCKET", "l4", "ingress")),
			 4);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("unknown", "unknown", "UNKNOWN_99", "other", "ingress")),
			 7);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("db", "unknown", "NETFILTER_DROP", "l3", "ingress")),
			 1);
	drop_wl_stats(a, &st);
	assert_int_equal(st.series, 5);
	assert_int_equal(st.folded, 0);
	drop_wl_free(a);
}

static void test_cap_folds_into_other_per_reason(void **state)
{
	struct drop_wl *a = drop_wl_new(2);
	struct drop_wl_stats st;

	(void)state;
	drop_wl_add(a, "a", "n", 6, ML_DROP_INGRESS, 1, 1);
	drop_wl_add(a, "b", "n", 6, ML_DROP_INGRESS, 1, 1);
	drop_wl_add(a, "c", "n", 6, ML_DROP_INGRESS, 2, 2);
	drop_wl_add(a, "d", "n", 6, ML_DROP_INGRESS, 3, 3);
	drop_wl_add(a, "d", "n", 2, ML_DROP_EGRESS, 4, 4);
	drop_wl_add(a, "a", "n", 6, ML_DROP_INGRESS, 5, 5); /* still its own series */
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("a", "n", "NETFILTER_DROP", "l3", "ingress")),
			 6);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("other", "other", "NETFILTER_DROP", "l3", "ingress")),
			 5);
	assert_int_equal(sample(a, "meshlens_workload_drops_total",
				L("other", "other", "NO_SOCKET", "l4", "egress")),
			 4);
	drop_wl_stats(a, &st);
	assert_int_equal(st.series, 2);
	assert_int_equal(st.folded, 3);
	drop_wl_free(a);
}

static void test_render_sorted_other_last_and_stable(void **state)
{
	struct drop_wl *a = drop_wl_new(3);
	char *s1, *s2, *line, *save, prev[256] = "";
	int samples = 0;

	(void)state;
	drop_wl_add(a, "zeta", "n", 6, ML_DROP_INGRESS, 1, 1);
	drop_wl_add(a, "alpha", "n", 6, ML_DROP_EGRESS, 1, 1);
	drop_wl_add(a, "alpha", "n", 2, ML_DROP_INGRESS, 1, 1);
	drop_wl_add(a, "beta", "n", 2, ML_DROP_INGRESS, 1, 1); /* folded */
	s1 = render(a);
	s2 = render(a);
	assert_string_equal(s1, s2);
	assert_non_null(strstr(s1, "# TYPE meshlens_workload_drops_total counter\n"));
	assert_non_null(strstr(s1, "# TYPE meshlens_workload_drop_bytes_total counter\n"));
	for (line = strtok_r(s1, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || strncmp(line, "meshlens_workload_drops_total{", 30))
			continue;
		samples++;
		/* workloads ascending (then reasons by value), "other" after every named one */
		if (prev[0] && !strstr(line, "workload=\"other\""))
			assert_true(strcmp(prev, line + 30) <= 0);
		snprintf(prev, sizeof(prev), "%.*s", (int)strcspn(line + 30, ","), line + 30);
	}
	assert_int_equal(samples, 4);
	assert_string_equal(prev, "workload=\"other\"");
	free(s1);
	free(s2);
	drop_wl_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_by_workload_reason_direction),
		cmocka_unit_test(test_cap_folds_into_other_per_reason),
		cmocka_unit_test(test_render_sorted_other_last_and_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
