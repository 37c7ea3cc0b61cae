/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * table - one open-addressing index over the caller's own array of entries.
 *
 * The table holds (hash, slot) pairs: slot is an index into the caller's
 * array, the hash is the caller's hash of that entry's key. Lookups compare
 * the stored hash first and call eq(ctx, slot) only on a hash match, so a
 * probe past other keys costs no look at their entries; growth and deletion
 * use the stored hashes and never call back.
 *
 * Linear probing from hash & mask, deletion by backward shift (no
 * tombstones, so a long-lived table does not slow down), doubling once more
 * than half of the buckets would be used.
 *
 *   uint32_t pos, slot = ml_table_find(&t, h, eq, ctx, &pos);
 *   if (slot == ML_TABLE_NONE)
 *           ml_table_insert(&t, pos, h, new_slot);   (pos: where it goes)
 *   else
 *           ml_table_del(&t, pos);                  (pos: where it is)
 *
 * A pos is good until the next insert or delete.
 */
#ifndef MESHLENS_TABLE_H
#define MESHLENS_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#define ML_TABLE_NONE UINT32_MAX /* no such entry */

struct ml_bucket {
	uint32_t hash;
	uint32_t slot1; /* slot + 1; 0: empty */
};

struct ml_table {
	struct ml_bucket *b; /* mask + 1 buckets, a power of two */
	uint32_t mask;
	uint32_t n;          /* buckets used */
};

/* Sized so that `entries` fit without growing; -ENOMEM. */
int ml_table_init(struct ml_table *t, uint32_t entries);
void ml_table_free(struct ml_table *t);

/* Out of line: ml_table_insert() when the table must grow first. */
int ml_table_insert_grow(struct ml_table *t, uint32_t hash, uint32_t slot);

/* Remove the entry at pos (from ml_table_find()). */
void ml_table_del(struct ml_table *t, uint32_t pos);

/* Remove slot, stored under hash; false if it is not there. */
bool ml_table_remove(struct ml_table *t, uint32_t hash, uint32_t slot);

/*
 * The slot whose entry eq() says is the key, or ML_TABLE_NONE; *pos is its
 * bucket, or the empty bucket where the key would be inserted.
 *
 * Inline, with eq a function pointer: every caller passes a static
 * function, which the compiler then inlines into the probe loop, so the
 * metrics connection lookup (once per record) costs what its hand-written
 * loop did; out of line, every candidate would be an indirect call.
 */
static inline uint32_t ml_table_find(const struct ml_table *t, uint32_t hash,
				     bool (*eq)(const void *ctx, uint32_t slot), const void *ctx,
				     uint32_t *pos)
{
	uint32_t i;

	for (i = hash & t->mask; t->b[i].slot1; i = (i + 1) & t->mask) {
		if (t->b[i].hash == hash && eq(ctx, t->b[i].slot1 - 1)) {
			*pos = i;
			return t->b[i].slot1 - 1;
		}
	}
	*pos = i;
	return ML_TABLE_NONE;
}

/*
 * Add slot under hash at pos, the empty bucket ml_table_find() gave for
 * this key (the key must not be in the table); -ENOMEM if the table had to
 * grow and could not, the table then as it was.
 */
static inline int ml_table_insert(struct ml_table *t, uint32_t pos, uint32_t hash, uint32_t slot)
{
	if ((uint64_t)(t->n + 1) * 2 > (uint64_t)t->mask + 1)
		return ml_table_insert_grow(t, hash, slot);
	t->b[pos].hash = hash;
	t->b[pos].slot1 = slot + 1;
	t->n++;
	return 0;
}

#endif /* MESHLENS_TABLE_H */
