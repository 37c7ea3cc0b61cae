// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "ring.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/bpf.h>

int ml_ring_open(struct ml_ring *r, int map_fd, size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	void *cons, *prod;

	cons = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (cons == MAP_FAILED)
		return -errno;
	/* the producer page, then the data area mapped twice, so a record
	 * that wraps around the end reads as one contiguous piece */
	prod = mmap(NULL, (size_t)page + 2 * size, PROT_READ, MAP_SHARED, map_fd, (off_t)page);
	if (prod == MAP_FAILED) {
		int err = -errno;

		munmap(cons, (size_t)page);
		return err;
	}
	r->map_fd = map_fd;
	r->size = size;
	r->consumer = cons;
	r->producer = prod;
	r->data = (const uint8_t *)prod + page;
	r->pos = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
	return 0;
}

int ml_ring_read(struct ml_ring *r, int max, int (*fn)(void *ctx, void *data, size_t len),
		 void *ctx)
{
	unsigned long prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);
	int n = 0;

	while (r->pos < prod && n < max) {
		const uint32_t *hdr = (const uint32_t *)(r->data + (r->pos & (r->size - 1)));
		uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);

		unsigned long next;

		if (len & BPF_RINGBUF_BUSY_BIT)
			break; /* reserved, not yet submitted: stop in order */
		next = r->pos + (((len & ~BPF_RINGBUF_DISCARD_BIT) + BPF_RINGBUF_HDR_SZ + 7) & ~7UL);
		if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
			if (fn(ctx, (void *)(hdr + 2), len))
				break; /* not taken: read again next time */
			n++;
		}
		r->pos = next;
	}
	return n;
}

void ml_ring_commit(struct ml_ring *r)
{
	__atomic_store_n(r->consumer, r->pos, __ATOMIC_RELEASE);
}

void ml_ring_close(struct ml_ring *r)
{
	long page = sysconf(_SC_PAGESIZE);

	if (r->consumer)
		munmap(r->consumer, (size_t)page);
	if (r->producer)
		munmap((void *)r->producer, (size_t)page + 2 * r->size);
	r->consumer = NULL;
	r->producer = NULL;
}
