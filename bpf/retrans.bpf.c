// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * node-retransmits: node-wide TCP retransmissions from the
 * tcp_retransmit_skb and tcp_retransmit_synack tracepoints: every TCP
 * socket of the node, in every network namespace, not only the observed
 * cgroup's (whose connections carry their own exact total_retrans).
 * Counted in the kernel, in a per-CPU array slot per (family, state); user
 * space names the slots. The tracepoints fire only on retransmissions, so
 * the cost is nothing per packet. Optional feature; variants in order:
 *   tp_btf (sk, skb, err)   recent kernels (6.18 here)
 *   tp_btf (sk, skb)        before the err argument
 *   tracepoint/tcp/...      classic, through tracefs
 *
 * What counts: segments handed to the IP layer without error, which is
 * TcpRetransSegs minus TcpExtTCPRetransFail. Where tcp_retransmit_skb has
 * an err argument it also fires for attempts that failed, some before the
 * kernel counted them (-EBUSY: the original still in a host queue), some
 * after (e.g. a netfilter OUTPUT drop); only err == 0 is a segment sent.
 */
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_RTX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} retrans_counts SEC(".maps");

static __always_inline void ml_count_rtx(__u16 family, __u32 state, __u32 segs)
{
	__u32 slot = ml_rtx_slot(family, state);
	__u64 *n = bpf_map_lookup_elem(&retrans_counts, &slot);

	/* atomic although per CPU: a softirq can run the other program
	 * (synack) on this CPU in the middle of this one's update */
	if (n)
		__sync_fetch_and_add(n, segs);
}

/* tcp_skb_pcount(): segments of a (TSO) skb, from TCP's control block */
static __always_inline __u32 ml_skb_pcount(const struct sk_buff *skb)
{
	const struct tcp_skb_cb *cb = (const void *)skb->cb;
	__u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);

	return segs ? segs : 1;
}

/* Recent kernels (6.18 here) give the tracepoint an err argument and fire
 * it for failed attempts too: only err == 0 is a segment sent. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ml_rtx_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (!err)
		ml_count_rtx(sk->__sk_common.skc_family, sk->__sk_common.skc_state,
			     ml_skb_pcount(skb));
	return 0;
}

/* Before: (sk, skb), fired only for segments sent. A tp_btf program may not
 * read an argument the tracepoint lacks: the loader picks one by BTF. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ml_rtx_skb_old, const struct sock *sk, const struct sk_buff *skb)
{
	ml_count_rtx(sk->__sk_common.skc_family, sk->__sk_common.skc_state, ml_skb_pcount(skb));
	return 0;
}

/* One SYN-ACK, sent: the kernel traces only successful ones. The socket is
 * the listener; the connection it answers is SYN_RECV. */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(ml_rtx_synack, const struct sock *sk, const struct request_sock *req)
{
	ml_count_rtx(sk->__sk_common.skc_family, TCP_SYN_RECV, 1);
	return 0;
}

/*
 * Fallbacks where tp_btf is refused: the classic tracepoints. Their record
 * layout changed (tcp_event_sk_skb, then its own event with err; family
 * only since 5.16), but it has always begun with the common header, then
 * skbaddr and skaddr: read those at fixed offsets, the rest from the
 * socket, and err through CO-RE where the layout has it.
 */
struct ml_tp_sk_skb {
	__u64 common;
	const struct sk_buff *skbaddr;
	const struct sock *skaddr;
};

struct ml_tp_synack {
	__u64 common;
	const struct sock *skaddr;
	const void *req;
};

SEC("tracepoint/tcp/tcp_retransmit_skb")
int ml_rtx_skb_tp(void *ctx)
{
	const struct ml_tp_sk_skb *tp = ctx;
	struct trace_event_raw_tcp_retransmit_skb *with_err = ctx;
	const struct sock *sk = tp->skaddr;
	int err = 0;

	if (bpf_core_field_exists(with_err->err))
		err = with_err->err;
	if (!err)
		ml_count_rtx(BPF_CORE_READ(sk, __sk_common.skc_family),
			     BPF_CORE_READ(sk, __sk_common.skc_state), ml_skb_pcount(tp->skbaddr));
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_synack")
int ml_rtx_synack_tp(void *ctx)
{
	const struct ml_tp_synack *tp = ctx;
	const struct sock *sk = tp->skaddr; /* a plain load: no CO-RE on our own struct */

	ml_count_rtx(BPF_CORE_READ(sk, __sk_common.skc_family), TCP_SYN_RECV, 1);
	return 0;
}
