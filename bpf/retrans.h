/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * retrans.h - node-wide TCP retransmissions from the tcp_retransmit_skb and
 * tcp_retransmit_synack tracepoints (included by meshlens.bpf.c): every
 * TCP socket of the node, in every network namespace, not only the
 * observed cgroup's (whose connections carry their own exact
 * total_retrans). Counted in the kernel, in a per-CPU array slot per
 * (family, state); user space names the slots. The tracepoints fire only
 * on retransmissions, so the cost is nothing per packet.
 *
 * What counts: segments handed to the IP layer without error, which is
 * TcpRetransSegs minus TcpExtTCPRetransFail. Since 6.13 tcp_retransmit_skb
 * also fires for attempts that failed (err != 0), some before the kernel
 * counted them (-EBUSY: the original still in a host queue), some after
 * (e.g. a netfilter OUTPUT drop); only err == 0 is a segment sent.
 */
#ifndef MESHLENS_BPF_RETRANS_H
#define MESHLENS_BPF_RETRANS_H

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

	if (n)
		*n += segs;
}

/* tcp_skb_pcount(): segments of a (TSO) skb, from TCP's control block */
static __always_inline __u32 ml_skb_pcount(const struct sk_buff *skb)
{
	const struct tcp_skb_cb *cb = (const void *)skb->cb;
	__u16 segs = BPF_CORE_READ(cb, tcp_gso_segs);

	return segs ? segs : 1;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ml_rtx_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (!err)
		ml_count_rtx(sk->__sk_common.skc_family, sk->__sk_common.skc_state,
			     ml_skb_pcount(skb));
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

/* Fallbacks where tp_btf is refused: the classic tracepoints. */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int ml_rtx_skb_tp(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	const struct sk_buff *skb = ctx->skbaddr;
	int err = 0;

	/* before 6.13 there is no err: the tracepoint fired only on success */
	if (bpf_core_field_exists(ctx->err))
		err = BPF_CORE_READ(ctx, err);
	if (!err)
		ml_count_rtx(ctx->family, (__u32)ctx->state, ml_skb_pcount(skb));
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_synack")
int ml_rtx_synack_tp(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
	ml_count_rtx(ctx->family, TCP_SYN_RECV, 1);
	return 0;
}

#endif /* MESHLENS_BPF_RETRANS_H */
