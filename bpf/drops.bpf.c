// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * packet-drops: drops from the kfree_skb tracepoint (--drops only).
 * Optional feature; the loader tries the variants in order, choosing the
 * tp_btf prototype from this kernel's BTF:
 *   tp_btf/kfree_skb (skb, location, reason, rx_sk)   6.11+
 *   tp_btf/kfree_skb (skb, location, reason)          5.17 .. 6.10
 *   tp_btf/kfree_skb (skb, location)                  before 5.17: no reason
 *   tracepoint/skb/kfree_skb                          classic, through tracefs
 *
 * Per drop: skip non-drops and reasons user space did not enable, rebuild
 * the flow from the packet's own headers (TCP, UDP, SCTP, ICMP, ICMPv6 over
 * IPv4/IPv6; no MAC header needed), then count it three ways, all in the
 * kernel: per (reason, protocol, direction) in a per-CPU hash for metrics,
 * per flow in a hash user space takes out every refresh, and in the
 * socket's storage when the packet belonged to an observed socket.
 * Nothing wakes user space.
 *
 * Before 5.17 kfree_skb had no reason: every drop is NOT_SPECIFIED.
 */
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * NOT_SPECIFIED, for a kernel that gives no reason: the enumerator's value
 * where the enum exists (1 until SKB_CONSUMED came before it, 2 since),
 * else 2, as user space names it there (drops/reasons.c).
 */
static __always_inline __u32 ml_reason_not_specified(void)
{
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED);
	return 2;
}

/*
 * Tracing programs may look up socket storage from 5.11 on: the loader
 * clears this for a variant that must load without (the verifier then
 * never sees the call, the branch being dead).
 */
const volatile bool sk_storage = true;
/* something reads drop_flows (the drop log, drops by workload): else
 * only drop_counts is kept up (the loader clears it) */
const volatile bool flows = true;
/* the drop_flows epoch new counts go to; user space flips it (probe.h) */
__u8 flow_epoch;

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
/* macros in the uapi headers, absent from vmlinux.h */
#define IPPROTO_ICMPV6 58
#define IPPROTO_SCTP_ 132

/* reasons to count: user space fills it from --include/--exclude */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} drop_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory only for what was dropped */
	__uint(max_entries, 4096);
	__type(key, struct ml_drop_key);
	__type(value, struct ml_drop_val);
} drop_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct ml_flow_key);
	__type(value, struct ml_flow_val);
} drop_flows SEC(".maps");

/* Addresses, protocol and ports (ICMP: type/code) from the IP header on. */
static __always_inline void ml_parse_packet(struct sk_buff *skb, struct ml_flow_key *fk,
					    __u8 *tcp_flags)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	unsigned char *l4 = NULL;
	__u8 first;

	if (nh == (__u16)~0U || bpf_probe_read_kernel(&first, 1, head + nh))
		return;
	if (first >> 4 == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return;
		fk->family = AF_INET;
		fk->l4proto = ip.protocol;
		ml_addr_v4(fk->src_addr, ip.saddr);
		ml_addr_v4(fk->dst_addr, ip.daddr);
		/* later fragments carry no ports */
		if (!(ip.frag_off & bpf_htons(0x1fff)))
			l4 = head + nh + ip.ihl * 4;
	} else if (first >> 4 == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return;
		fk->family = AF_INET6;
		fk->l4proto = ip6.nexthdr; /* extension headers: no ports */
		__builtin_memcpy(fk->src_addr, &ip6.saddr, ML_ADDR_LEN);
		__builtin_memcpy(fk->dst_addr, &ip6.daddr, ML_ADDR_LEN);
		l4 = head + nh + sizeof(ip6);
	}
	if (!l4)
		return;
	switch (fk->l4proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP_: {
		__u16 ports[2];

		if (bpf_probe_read_kernel(ports, sizeof(ports), l4))
			return;
		fk->src_port = bpf_ntohs(ports[0]);
		fk->dst_port = bpf_ntohs(ports[1]);
		if (fk->l4proto == IPPROTO_TCP)
			bpf_probe_read_kernel(tcp_flags, 1, l4 + 13);
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 tc[2];

		if (bpf_probe_read_kernel(tc, sizeof(tc), l4))
			return;
		fk->src_port = tc[0];
		fk->dst_port = tc[1];
		break;
	}
	}
}

/*
 * Egress when the packet's owner sent it: its source is the socket's
 * local end. An arriving packet can carry a socket too (early demux), so
 * owning one is not enough.
 */
static __always_inline bool ml_sent_by(struct sock *sk, const struct ml_flow_key *fk)
{
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);

	if (fk->family == AF_INET) {
		__u32 saddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		if (__builtin_memcmp(fk->src_addr + 12, &saddr, 4))
			return false;
	}
	return !lport || fk->src_port == lport || fk->l4proto == IPPROTO_ICMP ||
	       fk->l4proto == IPPROTO_ICMPV6;
}

static __always_inline void ml_count_drop(const struct ml_flow_key *fk, __u32 len)
{
	struct ml_drop_key dk = { .reason = fk->reason, .l4proto = fk->l4proto,
				  .family = fk->family, .direction = fk->direction };
	struct ml_drop_val *v = bpf_map_lookup_elem(&drop_counts, &dk);

	if (!v) {
		struct ml_drop_val zero = {};

		bpf_map_update_elem(&drop_counts, &dk, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&drop_counts, &dk);
		if (!v)
			return;
	}
	/* atomic although per CPU: a drop in softirq can interrupt one in
	 * process context on the same CPU, mid-update */
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
}

static __always_inline void ml_count_flow(const struct ml_flow_key *fk, __u32 len, __u8 flags,
					  __u8 state, __u64 cookie)
{
	struct ml_flow_val *v = bpf_map_lookup_elem(&drop_flows, fk);
	__u64 now = bpf_ktime_get_ns();

	if (!v) {
		struct ml_flow_val init = { .packets = 1, .bytes = len, .first_ns = now,
					    .last_ns = now, .sock_cookie = cookie,
					    .tcp_flags = flags, .tcp_state = state };

		if (!bpf_map_update_elem(&drop_flows, fk, &init, BPF_NOEXIST))
			return;
		v = bpf_map_lookup_elem(&drop_flows, fk); /* another CPU made it */
		if (!v) {
			ml_count(ML_CNT_FLOWS_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_ns = now;
	v->tcp_flags |= flags;
	if (state)
		v->tcp_state = state;
	if (cookie)
		v->sock_cookie = cookie;
}

/* rx_sk: the receiving socket (kernels >= 6.11 pass it), or NULL. */
static __always_inline int ml_on_drop(struct sk_buff *skb, __u32 reason, struct sock *rx_sk,
				      bool btf_sock)
{
	struct ml_flow_key fk = {};
	struct ml_sock_state *st = NULL;
	struct sock *sk, *owner;
	__u8 flags = 0, state = 0;
	struct net_device *dev;

	/* the non-drops are enumerators only where reasons exist (CO-RE guard) */
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET) ||
	     reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED)))
		return 0;
	if (!bpf_map_lookup_elem(&drop_filter, &reason))
		return 0;
	fk.reason = reason;
	ml_parse_packet(skb, &fk, &flags);
	/* tp_btf: a direct read keeps the BTF type bpf_sk_storage_get() wants
	 * (BPF_CORE_READ gives a plain number: "R2 type=scalar expected=ptr_") */
	owner = btf_sock ? skb->sk : BPF_CORE_READ(skb, sk);
	fk.direction = owner && ml_sent_by(owner, &fk) ? ML_DROP_EGRESS : ML_DROP_INGRESS;
	sk = fk.direction == ML_DROP_EGRESS ? owner : (rx_sk ? rx_sk : owner);
	dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		fk.ifindex = BPF_CORE_READ(dev, ifindex);
		fk.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	} else if (sk) {
		fk.ifindex = BPF_CORE_READ(skb, skb_iif);
		fk.netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	}
	if (sk && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP)
		state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* per-connection attribution needs a BTF socket (not the classic tracepoint) */
	if (sk && btf_sock && sk_storage)
		st = bpf_sk_storage_get(&sk_states, sk, 0, 0);
	if (st) {
		__sync_fetch_and_add(&st->drops, 1);
		st->last_drop_reason = reason;
	}
	ml_count_drop(&fk, BPF_CORE_READ(skb, len));
	if (flows) {
		fk.epoch = flow_epoch;
		ml_count_flow(&fk, BPF_CORE_READ(skb, len), flags, state,
			      st ? st->sock_cookie : 0);
	}
	return 0;
}

/* kernels >= 6.11: kfree_skb(skb, location, reason, rx_sk) */
SEC("tp_btf/kfree_skb")
int BPF_PROG(ml_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	return ml_on_drop(skb, reason, rx_sk, true);
}

/* kernels 5.17 .. 6.10: kfree_skb(skb, location, reason) */
SEC("tp_btf/kfree_skb")
int BPF_PROG(ml_kfree_skb_old, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return ml_on_drop(skb, reason, NULL, true);
}

/* kernels before 5.17: kfree_skb(skb, location), no reason */
SEC("tp_btf/kfree_skb")
int BPF_PROG(ml_kfree_skb_noreason, struct sk_buff *skb, void *location)
{
	return ml_on_drop(skb, ml_reason_not_specified(), NULL, true);
}

/* without tp_btf: the classic tracepoint, whose pointers are plain numbers */
SEC("tracepoint/skb/kfree_skb")
int ml_kfree_skb_tp(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = ml_reason_not_specified();
	struct sock *rx_sk = NULL;

	if (bpf_core_field_exists(ctx->rx_sk))
		rx_sk = BPF_CORE_READ(ctx, rx_sk);
	if (bpf_core_field_exists(ctx->reason))
		reason = BPF_CORE_READ(ctx, reason);
	return ml_on_drop((struct sk_buff *)BPF_CORE_READ(ctx, skbaddr), reason, rx_sk, false);
}
