// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lib/table: insert, lookup, backward-shift deletion (inside a cluster and
 * across the end of the array), growth, and random work against a plain
 * array. The tests choose the hashes, so clusters are where they want them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/table.h"

#define KEYS 512

/* The caller's entries: slot i holds key[i]; the key is looked up by value. */
struct fx {
	struct ml_table t;
	uint64_t key[KEYS];
	uint32_t hash[KEYS];
};

struct probe {
	const struct fx *fx;
	uint64_t key;
};

static bool key_eq(const void *ctx, uint32_t slot)
{
	const struct probe *p = ctx;

	return p->fx->key[slot] == p->key;
}

static uint32_t find(const struct fx *fx, uint32_t slot, uint32_t *pos)
{
	struct probe p = { fx, fx->key[slot] };

	return ml_table_find(&fx->t, fx->hash[slot], key_eq, &p, pos);
}

/* Slot `slot` with key 1000 + slot under hash h; asserts it was absent. */
static void add(struct fx *fx, uint32_t slot, uint32_t h)
{
	uint32_t pos;

	fx->key[slot] = 1000 + slot;
	fx->hash[slot] = h;
	assert_int_equal(find(fx, slot, &pos), ML_TABLE_NONE);
	assert_int_equal(ml_table_insert(&fx->t, pos, h, slot), 0);
}

static void assert_found(const struct fx *fx, uint32_t slot)
{
	uint32_t pos;

	assert_int_equal(find(fx, slot, &pos), slot);
	assert_int_equal(fx->t.b[pos].slot1, slot + 1);
}

static void assert_absent(const struct fx *fx, uint32_t slot)
{
	uint32_t pos;

	assert_int_equal(find(fx, slot, &pos), ML_TABLE_NONE);
	assert_int_equal(fx->t.b[pos].slot1, 0);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx || ml_table_init(&fx->t, 8))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	ml_table_free(&fx->t);
	free(fx);
	return 0;
}

static void test_insert_lookup(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(fx->t.mask, 15);
	for (uint32_t i = 0; i < 8; i++)
		add(fx, i, i * 0x9e3779b9u);
	for (uint32_t i = 0; i < 8; i++)
		assert_found(fx, i);
	assert_int_equal(fx->t.n, 8);
	fx->key[9] = 5555;
	fx->hash[9] = 3;
	assert_absent(fx, 9);
	/* same hash, other key: eq() decides */
	fx->key[10] = 6666;
	fx->hash[10] = fx->hash[3];
	assert_absent(fx, 10);
	assert_false(ml_table_remove(&fx->t, fx->hash[3], 10));
	assert_int_equal(fx->t.n, 8);
}

/*
 * A cluster over buckets 3..9 of homes 3 3 4 3 5 4 8: deleting any one of
 * them must leave every other one findable and the bucket after the
 * cluster empty (no tombstones).
 */
static void test_delete_in_cluster(void **state)
{
	static const uint32_t homes[] = { 3, 3, 4, 3, 5, 4, 8 };
	const uint32_t n = sizeof(homes) / sizeof(homes[0]);
	struct fx *fx = *state;

	for (uint32_t victim = 0; victim < n; victim++) {
		uint32_t pos;

		ml_table_free(&fx->t);
		assert_int_equal(ml_table_init(&fx->t, 8), 0);
		for (uint32_t i = 0; i < n; i++)
			add(fx, i, homes[i] + 16 * i); /* other high bits, same home */
		for (uint32_t b = 3; b < 3 + n; b++)
			assert_int_not_equal(fx->t.b[b].slot1, 0);
		assert_int_equal(find(fx, victim, &pos), victim);
		ml_table_del(&fx->t, pos);
		assert_int_equal(fx->t.n, n - 1);
		for (uint32_t i = 0; i < n; i++) {
			if (i == victim)
				assert_absent(fx, i);
			else
				assert_found(fx, i);
		}
		/* the cluster got one shorter: its last bucket is free again */
		assert_int_equal(fx->t.b[3 + n - 1].slot1, 0);
		/* every entry is at or after its home, with no gap between */
		for (uint32_t b = 3; b < 3 + n - 1; b++) {
			uint32_t s = fx->t.b[b].slot1 - 1;

			assert_int_not_equal(fx->t.b[b].slot1, 0);
			assert_true((fx->hash[s] & fx->t.mask) <= b);
		}
	}
}

/* Homes 14 and 15 of 16 buckets spill into 0, 1, 2: probing and shifting wrap. */
static void test_wrap_around(void **state)
{
	static const uint32_t homes[] = { 14, 15, 14, 15, 14, 0 };
	struct fx *fx = *state;
	uint32_t pos;

	for (uint32_t i = 0; i < 6; i++)
		add(fx, i, homes[i]);
	for (uint32_t b = 0; b < 4; b++)
		assert_int_not_equal(fx->t.b[b].slot1, 0);
	assert_int_equal(fx->t.b[4].slot1, 0);
	for (uint32_t i = 0; i < 6; i++)
		assert_found(fx, i);
	/* the first of the cluster, at 14: everything after it moves back across the end */
	assert_int_equal(find(fx, 0, &pos), 0);
	assert_int_equal(pos, 14);
	ml_table_del(&fx->t, pos);
	assert_absent(fx, 0);
	for (uint32_t i = 1; i < 6; i++)
		assert_found(fx, i);
	assert_int_equal(fx->t.b[3].slot1, 0);
	/* the home-0 entry went back to bucket 2, not before its home... */
	assert_int_equal(find(fx, 5, &pos), 5);
	assert_int_equal(pos, 2);
	/* ...and, by hash and slot, removing across the end works too */
	assert_true(ml_table_remove(&fx->t, homes[1], 1));
	assert_absent(fx, 1);
	for (uint32_t i = 2; i < 6; i++)
		assert_found(fx, i);
	assert_int_equal(fx->t.n, 4);
}

static void test_growth(void **state)
{
	struct fx *fx = *state;

	for (uint32_t i = 0; i < 300; i++) {
		/* collisions on purpose: the low bits repeat every 8 keys */
		add(fx, i, (i % 8) | i << 20);
		assert_true((uint64_t)fx->t.n * 2 <= (uint64_t)fx->t.mask + 1);
	}
	assert_int_equal(fx->t.n, 300);
	assert_int_equal(fx->t.mask, 1023); /* 16 -> 1024, doubling at half full */
	for (uint32_t i = 0; i < 300; i++)
		assert_found(fx, i);
	fx->key[400] = 1;
	fx->hash[400] = 5;
	assert_absent(fx, 400);
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* 200 000 random inserts and deletes of KEYS keys with crowded hashes,
 * against a plain array of what is in. */
static void test_random_against_reference(void **state)
{
	struct fx *fx = *state;
	bool in[KEYS] = { false };
	uint32_t n = 0;

	for (uint32_t i = 0; i < KEYS; i++) {
		fx->key[i] = 1000 + i;
		/* 64 distinct homes at most while the table is small: long clusters */
		fx->hash[i] = (rnd() & ~63u) | (i % 64);
	}
	for (uint32_t op = 0; op < 200000; op++) {
		uint32_t k = rnd() % KEYS, pos, got = find(fx, k, &pos);

		assert_int_equal(got, in[k] ? k : ML_TABLE_NONE);
		if (!in[k]) {
			assert_int_equal(ml_table_insert(&fx->t, pos, fx->hash[k], k), 0);
			n++;
		} else if (op & 1) {
			ml_table_del(&fx->t, pos);
			n--;
		} else {
			assert_true(ml_table_remove(&fx->t, fx->hash[k], k));
			n--;
		}
		in[k] = !in[k];
		assert_int_equal(fx->t.n, n);
		if (op % 997 == 0)
			for (uint32_t i = 0; i < KEYS; i++)
				in[i] ? assert_found(fx, i) : assert_absent(fx, i);
	}
	for (uint32_t i = 0; i < KEYS; i++)
		in[i] ? assert_found(fx, i) : assert_absent(fx, i);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_insert_lookup),
		T(test_delete_in_cluster),
		T(test_wrap_around),
		T(test_growth),
		T(test_random_against_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
