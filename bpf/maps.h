/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * maps.h - the maps every meshlens BPF object shares.
 *
 * Each feature is its own object (core.bpf.c, failures.bpf.c, live.bpf.c,
 * drops.bpf.c, retrans.bpf.c), so a kernel that refuses one feature's
 * programs refuses nothing else. The core creates these maps; every other
 * object declares them identically and the loader hands it the core's fds
 * (bpf_map__reuse_fd()) before loading, so all programs see one socket
 * storage, one ringbuf and one set of counters.
 *
 * API: sk_states, events, counters; ml_count(idx); ml_addr_v4().
 */
#ifndef MESHLENS_BPF_MAPS_H
#define MESHLENS_BPF_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "probe.h"

/* macros of the uapi headers, absent from vmlinux.h */
#define AF_INET 2
#define AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_sock_state);
} sk_states SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* user space sets the configured size */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Atomic although per CPU: a softirq (an inbound SYN's sockops run, a
 * drop) can run a program on this CPU in the middle of a process-context
 * one's update, and a plain += would lose one of the two increments.
 */
static __always_inline void ml_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* IPv4 as v4-mapped IPv6, the ABI's one address form (probe.h) */
static __always_inline void ml_addr_v4(__u8 *dst, __u32 ip4 /* network order */)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &ip4, 4);
}

#endif /* MESHLENS_BPF_MAPS_H */
