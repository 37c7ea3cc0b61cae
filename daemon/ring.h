/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ring - a BPF ringbuf reader that advances the consumer position only
 * when told to.
 *
 * libbpf's ring_buffer__consume() releases each record as soon as its
 * callback returns; our callback only queues the access-log line, which
 * reaches the file at the next flush. A daemon killed in between (kill -9,
 * OOM) would lose those records, although the ringbuf is pinned and the
 * next daemon would otherwise read them. So: read, write, then commit the
 * new consumer position. What was read but not committed is read again by
 * whoever opens the ring next.
 */
#ifndef MESHLENS_RING_H
#define MESHLENS_RING_H

#include <stddef.h>
#include <stdint.h>

struct ml_ring {
	int map_fd;
	size_t size;                    /* data area, a power of two */
	unsigned long *consumer;        /* shared consumer position (read-write page) */
	const unsigned long *producer;  /* shared producer position */
	const uint8_t *data;            /* data area, mapped twice back to back */
	unsigned long pos;              /* read up to here, not yet committed */
};

/* Map the ringbuf behind map_fd (max_entries = size). 0 or -errno. */
int ml_ring_open(struct ml_ring *r, int map_fd, size_t size);

/*
 * Hand at most max committed records after the last read position to fn
 * (records still being written stop the read). A record fn returns
 * nonzero for stops the read before it: it is handed over again by the
 * next read. Returns how many were taken.
 */
int ml_ring_read(struct ml_ring *r, int max, int (*fn)(void *ctx, void *data, size_t len),
		 void *ctx);

/* Release everything read so far to the kernel. */
void ml_ring_commit(struct ml_ring *r);

void ml_ring_close(struct ml_ring *r);

#endif /* MESHLENS_RING_H */
