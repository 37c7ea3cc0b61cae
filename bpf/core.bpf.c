// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshlens core: connection tracking for the sockets of the observed
 * cgroups. Mandatory: if this object does not load, meshlens does not run.
 * Every optional feature is an object of its own (see maps.h).
 *
 * Table of contents (hook -> what it does):
 *   cgroup/connect4, cgroup/connect6   outbound attempt: create socket state
 *   sockops                            SYN sent, established (open record),
 *                                      state changes, close -> close record
 *
 * Records go to user space through one ringbuf, without waking the reader
 * per record: it drains on a timer, and is woken only once the buffer is
 * filling up (see ml_submit()).
 */
#include "conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Context fields must be loaded at a constant offset from the context
 * pointer itself; clang likes to compute ctx+8 first and load from that,
 * which the verifier refuses ("dereference of modified ctx ptr R2 off=8
 * disallowed"). One asm load per word keeps the shape the verifier wants.
 */
#define ml_ctx_u32(ctx, off)                                                   \
	({                                                                     \
		__u32 v_;                                                      \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                         \
			     : "=r"(v_)                                        \
			     : "r"(ctx), "i"(off));                            \
		v_;                                                            \
	})

#define ml_addr_v6(dst, ctx, type, field)                                      \
	do {                                                                   \
		__u32 w_[4] = {                                                \
			ml_ctx_u32(ctx, offsetof(type, field[0])),            \
			ml_ctx_u32(ctx, offsetof(type, field[1])),            \
			ml_ctx_u32(ctx, offsetof(type, field[2])),            \
			ml_ctx_u32(ctx, offsetof(type, field[3])),            \
		};                                                             \
		__builtin_memcpy((dst), w_, 16);                               \
	} while (0)

/* 5.10 .. 5.14: sock_cgroup_data was a u64 holding the cgroup pointer */
struct sock_cgroup_data___old {
	__u64 val;
};

struct sock___old {
	struct sock_cgroup_data___old sk_cgrp_data;
};

/*
 * cgroup v2 id of a socket's cgroup, by direct loads through the BTF
 * pointer (no probe-read helper calls). Before 5.15 the pointer shared a
 * word with classid/prioidx bits (a set low bit meant "no pointer": the
 * root); a CO-RE guard, not a version check, picks the layout.
 */
static __always_inline __u64 ml_sk_cgroup_id(struct tcp_sock *tp)
{
	struct sock *sk = &tp->inet_conn.icsk_inet.sk;
	struct cgroup *cgrp;
	__u64 val;

	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return sk->sk_cgrp_data.cgroup->kn->id;
	val = ((struct sock___old *)sk)->sk_cgrp_data.val;
	if (!val || (val & 1))
		return 1; /* the root cgroup's id */
	cgrp = (struct cgroup *)(unsigned long)val;
	return BPF_CORE_READ(cgrp, kn, id);
}

/* ---- outbound attempts ------------------------------------------------- */

static __always_inline struct ml_sock_state *ml_start_connect(struct bpf_sock_addr *ctx)
{
	struct ml_sock_state *st;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return NULL;
	st = bpf_sk_storage_get(&sk_states, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		ml_count(ML_CNT_STORAGE_FAIL);
		return NULL;
	}
	/* connect() again after a local failure: report the earlier attempt */
	if (st->phase == ML_PH_ATTEMPT)
		ml_emit_local_failure(st, ctx->family, 0);
	if (st->phase) /* new storage is zeroed; this is connect() again */
		__builtin_memset(st, 0, sizeof(*st));
	st->connect_ns = bpf_ktime_get_ns();
	st->sock_cookie = bpf_get_socket_cookie(ctx);
	st->direction = ML_DIR_OUTBOUND;
	st->phase = ML_PH_ATTEMPT;
	st->dst_port = bpf_ntohs((__u16)ctx->user_port);
	return st;
}

SEC("cgroup/connect4")
int ml_connect4(struct bpf_sock_addr *ctx)
{
	struct ml_sock_state *st = ml_start_connect(ctx);

	if (st)
		ml_addr_v4(st->dst_addr, ctx->user_ip4);
	return 1;
}

SEC("cgroup/connect6")
int ml_connect6(struct bpf_sock_addr *ctx)
{
	struct ml_sock_state *st = ml_start_connect(ctx);

	if (st)
		ml_addr_v6(st->dst_addr, ctx, struct bpf_sock_addr, user_ip6);
	return 1;
}

/* ---- sockops: the connection's life --------------------------------------- */

static __always_inline void ml_emit_close(struct tcp_sock *tp, struct ml_sock_state *st,
					  __u32 oldstate)
{
	struct tcp_probe_info *rec = ml_reserve(ML_CNT_RECORDS_LOST);

	if (!rec)
		return;
	ml_fill_conn(rec, tp, st, oldstate);
	if (st->connect_success) {
		rec->type = ML_REC_CONN_CLOSE;
		if (rec->sk_err == ECONNRESET)
			rec->flags |= ML_F_RESET_IN;
	} else {
		rec->type = ML_REC_CONN_FAILED;
		rec->failure = ml_failure_of(rec->sk_err);
	}
	ml_submit(rec);
}

static __always_inline struct ml_sock_state *ml_state(struct bpf_sock *sk, __u64 flags)
{
	struct ml_sock_state *st = bpf_sk_storage_get(&sk_states, sk, 0, flags);

	if (!st && flags)
		ml_count(ML_CNT_STORAGE_FAIL);
	return st;
}

/*
 * The handshake's latency, as exactly as each end can know it, at no cost
 * per packet:
 *  - outbound: connect() (cgroup/connect4/6, or the SYN's TCP_CONNECT_CB
 *    where connect() ran before attach) to ESTABLISHED, our own clock;
 *  - inbound: the kernel's own sample of the SYN-ACK's round trip, taken
 *    by tcp_check_req() (tcp_synack_rtt_meas(), us) on the child just
 *    before this callback — the first sample, so srtt is that sample. A
 *    retransmitted SYN-ACK gives the kernel no exact sample (Karn; it
 *    falls back on the timestamp echo, ms): none is reported then, nor
 *    when the kernel has none at all (srtt 0).
 */
static __always_inline void ml_handshake(struct tcp_sock *tp, struct ml_sock_state *st, __u64 now)
{
	if (st->direction == ML_DIR_OUTBOUND) {
		st->handshake_us = (now - st->connect_ns) / 1000;
	} else {
		if (tp->total_retrans || !tp->srtt_us) /* = the SYN-ACK's retransmissions */
			return;
		st->handshake_us = tp->srtt_us >> 3;
	}
	st->flags |= ML_F_HANDSHAKE;
}

/* Handshake done: take the SYN out of the counters, tell user space. */
static __always_inline void ml_established(struct tcp_sock *tp, struct ml_sock_state *st,
					   __u64 now)
{
	struct tcp_probe_info *rec;

	ml_handshake(tp, st, now);
	st->phase = ML_PH_ESTABLISHED;
	st->connect_success = 1;
	st->sent_base = tp->bytes_acked;
	st->recv_base = tp->bytes_received;
	if (ml_no_open_records)
		return;
	rec = ml_reserve(ML_CNT_OPEN_LOST);
	if (!rec)
		return;
	/* the ends and the bases are all an open record needs (probe.h):
	 * user space names the connection by them, counts it opened, and
	 * subtracts the bases from raw live counters */
	ml_fill_head(rec, &tp->inet_conn.icsk_inet.sk, st, TCP_ESTABLISHED, now);
	rec->type = ML_REC_CONN_OPEN;
	rec->sent_bytes = st->sent_base; /* the bases (probe.h) */
	rec->received_bytes = st->recv_base;
	ml_submit(rec);
}

SEC("sockops")
int ml_sockops(struct bpf_sock_ops *ops)
{
	struct bpf_sock *sk = ops->sk;
	struct ml_sock_state *st;
	struct tcp_sock *tp;
	__u8 phase;

	if (!sk)
		return 1;
	switch (ops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		tp = bpf_skc_to_tcp_sock(sk);
		st = ml_state(sk, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st || !tp)
			return 1;
		if (!st->phase) { /* connect() ran before meshlens attached */
			st->connect_ns = bpf_ktime_get_ns();
			st->direction = ML_DIR_OUTBOUND;
			st->sock_cookie = bpf_get_socket_cookie(ops);
		}
		st->phase = ML_PH_CONNECTING;
		st->cgroup_id = ml_sk_cgroup_id(tp);
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
						       BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		tp = bpf_skc_to_tcp_sock(sk);
		st = ml_state(sk, 0);
		if (st && tp)
			ml_established(tp, st, bpf_ktime_get_ns());
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp)
			return 1;
		st = ml_state(sk, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		st->connect_ns = bpf_ktime_get_ns();
		st->direction = ML_DIR_INBOUND;
		st->sock_cookie = bpf_get_socket_cookie(ops);
		st->cgroup_id = ml_sk_cgroup_id(tp);
		ml_established(tp, st, st->connect_ns); /* accepted: now */
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
						       BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		/* only the close needs the storage (the FIN is read from the
		 * state closed from: ml_fill_conn()) */
		if (ops->args[1] != TCP_CLOSE)
			return 1;
		st = ml_state(sk, 0);
		if (!st)
			return 1;
		/* before the record is visible: the iterator must no longer
		 * report this socket as live once its close was consumed */
		phase = st->phase;
		st->phase = ML_PH_CLOSED;
		tp = bpf_skc_to_tcp_sock(sk);
		if (tp && phase != ML_PH_CLOSED)
			ml_emit_close(tp, st, ops->args[0]);
		bpf_sk_storage_delete(&sk_states, sk);
		return 1;
	}
	return 1;
}
