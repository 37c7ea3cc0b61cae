// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for the loader's choice of variants by the kernel's BTF
 * (daemon/loader.c, included for its static tables): synthetic vmlinux
 * BTFs with the kfree_skb and tcp_retransmit_skb tracepoint prototypes of
 * 5.10 (no reason), 5.17-6.10 (reason) and 6.11 on (rx_sk), and without
 * them; the first variant whose prototype fits is the one tried first,
 * and a classic-tracepoint variant always fits. Loading itself is
 * exercised by the end-to-end tests on the kernel matrix.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/loader.c"

/*
 * A BTF holding "typedef void (*btf_trace_<tp>)(void *, ...)" with
 * params parameters in all (the kernel's own shape: the first is the
 * tracepoint's data pointer).
 */
static struct btf *btf_with(const char *tp, int params, const char *tp2, int params2)
{
	struct btf *btf = btf__new_empty();
	int vp, fp, ptr, i;
	char name[64];

	assert_non_null(btf);
	vp = btf__add_ptr(btf, 0); /* void * */
	assert_true(vp > 0);
	for (int k = 0; k < 2; k++) {
		const char *t = k ? tp2 : tp;
		int n = k ? params2 : params;

		if (!t)
			continue;
		fp = btf__add_func_proto(btf, 0);
		assert_true(fp > 0);
		for (i = 0; i < n; i++)
			assert_int_equal(btf__add_func_param(btf, "", vp), 0);
		ptr = btf__add_ptr(btf, fp);
		snprintf(name, sizeof(name), "btf_trace_%s", t);
		assert_true(btf__add_typedef(btf, name, ptr) > 0);
	}
	return btf;
}

/* Index of the first variant of v[0..n) whose prototype fits, or -1. */
static int first_fit(const struct ml_variant *v, int n, const struct btf *btf)
{
	for (int i = 0; i < n; i++)
		if (variant_fits(&v[i], btf))
			return i;
	return -1;
}

static void test_params_counted(void **state)
{
	struct btf *btf = btf_with("kfree_skb", 5, "tcp_retransmit_skb", 3);

	(void)state;
	assert_int_equal(tp_btf_params(btf, "kfree_skb"), 5);
	assert_int_equal(tp_btf_params(btf, "tcp_retransmit_skb"), 3);
	assert_int_equal(tp_btf_params(btf, "no_such_tp"), -1);
	assert_int_equal(tp_btf_params(NULL, "kfree_skb"), -1);
	btf__free(btf);
}

static void test_kfree_skb_variant_by_kernel(void **state)
{
	static const struct {
		int params;
		const char *prog;
	} kernels[] = {
		{ 5, "ml_kfree_skb" },          /* 6.11+: skb, location, reason, rx_sk */
		{ 4, "ml_kfree_skb_old" },      /* 5.17-6.10: skb, location, reason */
		{ 3, "ml_kfree_skb_noreason" }, /* 5.10: skb, location */
	};
	int n = (int)ARRAY_SIZE(drop_variants), i;

	(void)state;
	for (size_t k = 0; k < ARRAY_SIZE(kernels); k++) {
		struct btf *btf = btf_with("kfree_skb", kernels[k].params, NULL, 0);

		i = first_fit(drop_variants, n, btf);
		assert_true(i >= 0);
		assert_string_equal(drop_variants[i].progs[0], kernels[k].prog);
		/* a refusal of it moves on to variants that fit too, the classic
		 * tracepoint last, which needs no BTF prototype */
		assert_int_equal(first_fit(drop_variants + n - 1, 1, btf), 0);
		assert_true(drop_variants[n - 1].tracefs);
		btf__free(btf);
	}
}

static void test_no_prototype_leaves_the_classic_tracepoint(void **state)
{
	struct btf *btf = btf_with("something_else", 3, NULL, 0);
	int i;

	(void)state;
	i = first_fit(drop_variants, (int)ARRAY_SIZE(drop_variants), btf);
	assert_int_equal(i, (int)ARRAY_SIZE(drop_variants) - 1);
	assert_string_equal(drop_variants[i].hook, "tracepoint/skb/kfree_skb");
	i = first_fit(rtx_variants, (int)ARRAY_SIZE(rtx_variants), btf);
	assert_true(i >= 0);
	assert_null(rtx_variants[i].tp);
	/* variants without a tracepoint prototype fit any kernel */
	assert_int_equal(first_fit(live_variants, (int)ARRAY_SIZE(live_variants), btf), 0);
	assert_int_equal(first_fit(failure_variants, (int)ARRAY_SIZE(failure_variants), btf), 0);
	btf__free(btf);
}

static void test_retransmit_variant_by_kernel(void **state)
{
	struct btf *with_err = btf_with("tcp_retransmit_skb", 4, NULL, 0);
	struct btf *without = btf_with("tcp_retransmit_skb", 3, NULL, 0);
	int a, b;

	(void)state;
	a = first_fit(rtx_variants, (int)ARRAY_SIZE(rtx_variants), with_err);
	b = first_fit(rtx_variants, (int)ARRAY_SIZE(rtx_variants), without);
	assert_true(a >= 0 && b >= 0);
	/* the newer prototype's program first where the kernel has it */
	assert_true(a < b);
	assert_true(rtx_variants[a].min_params > rtx_variants[b].min_params);
	btf__free(with_err);
	btf__free(without);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_counted),
		cmocka_unit_test(test_kfree_skb_variant_by_kernel),
		cmocka_unit_test(test_no_prototype_leaves_the_classic_tracepoint),
		cmocka_unit_test(test_retransmit_variant_by_kernel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
