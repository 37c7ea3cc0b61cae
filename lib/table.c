// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * table - the parts of the open-addressing index that run once per insert
 * or delete rather than per probe (the probe loop is inline in table.h).
 */
#include "table.h"

#include <errno.h>
#include <stdlib.h>

int ml_table_init(struct ml_table *t, uint32_t entries)
{
	uint64_t size = 16;

	/* at most half full (ml_table_insert()) */
	while (size < (uint64_t)entries * 2)
		size <<= 1;
	if (size > (uint64_t)UINT32_MAX + 1)
		return -ENOMEM;
	t->b = calloc(size, sizeof(*t->b));
	t->mask = (uint32_t)(size - 1);
	t->n = 0;
	return t->b ? 0 : -ENOMEM;
}

void ml_table_free(struct ml_table *t)
{
	free(t->b);
	t->b = NULL;
	t->mask = t->n = 0;
}

/* The first empty bucket from hash's home; the table is never full. */
static uint32_t empty_from(const struct ml_table *t, uint32_t hash)
{
	uint32_t i;

	for (i = hash & t->mask; t->b[i].slot1; i = (i + 1) & t->mask)
		;
	return i;
}

int ml_table_insert_grow(struct ml_table *t, uint32_t hash, uint32_t slot)
{
	uint64_t size = (uint64_t)t->mask + 1;
	struct ml_table nt = { .mask = (uint32_t)(size * 2 - 1), .n = t->n };

	if (size * 2 > (uint64_t)UINT32_MAX + 1)
		return -ENOMEM;
	nt.b = calloc(size * 2, sizeof(*nt.b));
	if (!nt.b)
		return -ENOMEM;
	for (uint64_t i = 0; i < size; i++)
		if (t->b[i].slot1)
			nt.b[empty_from(&nt, t->b[i].hash)] = t->b[i];
	free(t->b);
	*t = nt;
	return ml_table_insert(t, empty_from(t, hash), hash, slot);
}

/* Backward-shift deletion keeps linear probing correct without tombstones. */
void ml_table_del(struct ml_table *t, uint32_t pos)
{
	uint32_t i = pos, j, home;

	for (j = (i + 1) & t->mask; t->b[j].slot1; j = (j + 1) & t->mask) {
		home = t->b[j].hash & t->mask;
		/* move j into the hole at i unless its home lies in (i, j] */
		if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
			t->b[i] = t->b[j];
			i = j;
		}
	}
	t->b[i].slot1 = 0;
	t->n--;
}

bool ml_table_remove(struct ml_table *t, uint32_t hash, uint32_t slot)
{
	uint32_t i;

	for (i = hash & t->mask; t->b[i].slot1; i = (i + 1) & t->mask) {
		if (t->b[i].slot1 == slot + 1) {
			ml_table_del(t, i);
			return true;
		}
	}
	return false;
}
