// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshlens kernel side: connection tracking for the sockets of the
 * observed cgroups.
 *
 * Table of contents (hook -> what it does):
 *   cgroup/connect4, cgroup/connect6   outbound attempt: create socket state
 *   sockops                            SYN sent, established (open record),
 *                                      state changes, close -> close record
 *   iter/bpf_sk_storage_map            counters of connections still open
 *   fexit/tcp_v{4,6}_connect           connect() that failed before any SYN
 *                                      left, with its errno (preferred)
 *   cgroup/sock_release                the same failure, without trampolines
 *   tp_btf/kfree_skb (drop.h)          packet drops, with --drops only
 *
 * Records go to user space through one ringbuf, without waking the reader
 * per record: it drains on a timer, and is woken only once the buffer is
 * filling up (see ml_submit()).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "probe.h"

#define AF_INET 2
#define AF_INET6 10

#define ECONNRESET 104
#define ENETUNREACH 101
#define EHOSTUNREACH 113
#define ETIMEDOUT 110
#define ECONNREFUSED 111

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Unread bytes in the ringbuf past which a submit wakes the reader. */
const volatile __u64 wakeup_bytes = 1 << 20;
/* --drops: records carry the socket's drop count */
const volatile bool drops_enabled = false;

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

static __always_inline void ml_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

/* lost: which counter says so when the ring is full (open records apart,
 * so that access-log lines + ML_CNT_RECORDS_LOST = connections, exactly) */
static __always_inline struct tcp_probe_info *ml_reserve(__u32 lost)
{
	struct tcp_probe_info *rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);

	if (!rec) {
		ml_count(lost);
		return NULL;
	}
	__builtin_memset(rec, 0, sizeof(*rec));
	return rec;
}

/*
 * Submit without a wake-up unless the reader is falling behind: a wake-up
 * costs more than the connection being logged, and the reader drains on a
 * timer anyway.
 */
static __always_inline void ml_submit(struct tcp_probe_info *rec)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
	ml_count(ML_CNT_RECORDS);
}

static __always_inline void ml_addr_v4(__u8 *dst, __u32 ip4 /* network order */)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &ip4, 4);
}

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

static __always_inline __u8 ml_failure_of(__u32 err)
{
	switch (err) {
	case 0:
		return ML_FAIL_ABORTED;
	case ECONNREFUSED:
		return ML_FAIL_REFUSED;
	case ETIMEDOUT:
		return ML_FAIL_TIMEOUT;
	case ECONNRESET:
		return ML_FAIL_RESET;
	case ENETUNREACH:
	case EHOSTUNREACH:
		return ML_FAIL_UNREACHABLE;
	default:
		return ML_FAIL_OTHER;
	}
}

static __always_inline __u64 ml_sk_cgroup_id(struct bpf_sock *bsk)
{
	struct sock *sk = (struct sock *)bpf_skc_to_tcp_sock(bsk);

	return sk ? BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id) : 0;
}

/*
 * A connect() that failed before the kernel sent a SYN: the socket never
 * got an address pair, so the record carries the destination connect()
 * was given and an unspecified source.
 */
static __always_inline void ml_emit_local_failure(struct ml_sock_state *st, __u16 family,
						  __u32 err)
{
	struct tcp_probe_info *rec = ml_reserve(ML_CNT_RECORDS_LOST);

	if (!rec)
		return;
	rec->type = ML_REC_CONN_FAILED;
	rec->start_ns = st->connect_ns;
	rec->close_ns = bpf_ktime_get_ns();
	rec->duration = rec->close_ns - st->connect_ns;
	rec->cgroup_id = st->cgroup_id;
	rec->sock_cookie = st->sock_cookie;
	__builtin_memcpy(rec->dst_addr, st->dst_addr, ML_ADDR_LEN);
	rec->dst_port = st->dst_port;
	/* unspecified source, in the destination's address family */
	if (st->dst_addr[10] == 0xff && st->dst_addr[11] == 0xff)
		ml_addr_v4(rec->src_addr, 0);
	rec->family = family;
	rec->direction = ML_DIR_OUTBOUND;
	rec->state = TCP_CLOSE;
	rec->protocol = IPPROTO_TCP;
	rec->sk_err = err;
	rec->failure = err ? ml_failure_of(err) : ML_FAIL_UNREACHABLE;
	ml_submit(rec);
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

/*
 * Everything a record says about a connection, read from the tcp_sock
 * itself, so the close record, the open record and the live-socket
 * iterator agree to the byte.
 *
 * Payload bytes from the kernel's sequence-space counters: bytes_acked and
 * bytes_received also count the SYN (removed through the base taken at
 * ESTABLISHED) and the FIN, removed here once it was acked (ours) or
 * consumed (the peer's: tcp_fin() sets SOCK_DONE).
 */
static __always_inline void ml_fill_conn(struct tcp_probe_info *rec, struct tcp_sock *tp,
					 struct ml_sock_state *st)
{
	struct sock *sk = &tp->inet_conn.icsk_inet.sk;
	__u64 sent = tp->bytes_acked - st->sent_base;
	__u64 received = tp->bytes_received - st->recv_base;
	__u8 local[ML_ADDR_LEN], remote[ML_ADDR_LEN];
	__u16 lport = sk->__sk_common.skc_num;
	__u16 rport = bpf_ntohs(sk->__sk_common.skc_dport);
	__u32 rtt_min = tp->rtt_min.s[0].v;
	__u8 flags = st->flags;

	rec->family = sk->__sk_common.skc_family;
	if (rec->family == AF_INET) {
		ml_addr_v4(local, sk->__sk_common.skc_rcv_saddr);
		ml_addr_v4(remote, sk->__sk_common.skc_daddr);
	} else {
		__builtin_memcpy(local, &sk->__sk_common.skc_v6_rcv_saddr, ML_ADDR_LEN);
		__builtin_memcpy(remote, &sk->__sk_common.skc_v6_daddr, ML_ADDR_LEN);
	}
	if (st->direction == ML_DIR_INBOUND) {
		__builtin_memcpy(rec->src_addr, remote, ML_ADDR_LEN);
		__builtin_memcpy(rec->dst_addr, local, ML_ADDR_LEN);
		rec->src_port = rport;
		rec->dst_port = lport;
	} else {
		__builtin_memcpy(rec->src_addr, local, ML_ADDR_LEN);
		__builtin_memcpy(rec->dst_addr, remote, ML_ADDR_LEN);
		rec->src_port = lport;
		rec->dst_port = rport;
	}
	if (st->connect_success) {
		if (sk->__sk_common.skc_flags & (1UL << SOCK_DONE))
			flags |= ML_F_FIN_IN;
		if ((flags & ML_F_FIN_OUT) && tp->snd_una == tp->write_seq && sent)
			sent -= 1;
		if ((flags & ML_F_FIN_IN) && received)
			received -= 1;
		rec->sent_bytes = sent;
		rec->received_bytes = received;
	}
	rec->flags = flags;
	rec->start_ns = st->connect_ns;
	rec->close_ns = bpf_ktime_get_ns();
	rec->duration = rec->close_ns - st->connect_ns;
	rec->cgroup_id = st->cgroup_id;
	rec->sock_cookie = st->sock_cookie;
	rec->direction = st->direction;
	rec->protocol = IPPROTO_TCP;
	rec->conn_success = st->connect_success;
	rec->srtt_us = tp->srtt_us >> 3; /* the kernel keeps srtt << 3 */
	rec->rtt_min = rtt_min == ~0U ? 0 : rtt_min; /* ~0U: no RTT sample yet */
	rec->mss_cache = tp->mss_cache;
	rec->total_retrans = tp->total_retrans;
	rec->segs_in = tp->segs_in;
	rec->segs_out = tp->segs_out;
	rec->lost_out = tp->lost_out;
	rec->sk_err = sk->sk_err;
	if (drops_enabled) {
		rec->flags |= ML_F_DROPS;
		rec->drops = st->drops;
		rec->last_drop_reason = st->last_drop_reason;
	}
}

static __always_inline void ml_emit_close(struct tcp_sock *tp, struct ml_sock_state *st,
					  __u32 oldstate)
{
	struct tcp_probe_info *rec = ml_reserve(ML_CNT_RECORDS_LOST);

	if (!rec)
		return;
	ml_fill_conn(rec, tp, st);
	rec->state = oldstate;
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

/* Handshake done: take the SYN out of the counters, tell user space. */
static __always_inline void ml_established(struct bpf_sock *sk, struct ml_sock_state *st)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct tcp_probe_info *rec;

	if (!tp)
		return;
	st->phase = ML_PH_ESTABLISHED;
	st->connect_success = 1;
	st->sent_base = tp->bytes_acked;
	st->recv_base = tp->bytes_received;
	rec = ml_reserve(ML_CNT_OPEN_LOST);
	if (!rec)
		return;
	ml_fill_conn(rec, tp, st);
	rec->type = ML_REC_CONN_OPEN;
	rec->state = TCP_ESTABLISHED;
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
		st = ml_state(sk, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		if (!st->phase) { /* connect() ran before meshlens attached */
			st->connect_ns = bpf_ktime_get_ns();
			st->direction = ML_DIR_OUTBOUND;
			st->sock_cookie = bpf_get_socket_cookie(ops);
		}
		st->phase = ML_PH_CONNECTING;
		st->cgroup_id = ml_sk_cgroup_id(sk);
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
						       BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		st = ml_state(sk, 0);
		if (st)
			ml_established(sk, st);
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		st = ml_state(sk, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		st->connect_ns = bpf_ktime_get_ns();
		st->direction = ML_DIR_INBOUND;
		st->sock_cookie = bpf_get_socket_cookie(ops);
		st->cgroup_id = ml_sk_cgroup_id(sk);
		ml_established(sk, st);
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
						       BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		st = ml_state(sk, 0);
		if (!st)
			return 1;
		if (ops->args[1] == TCP_FIN_WAIT1 || ops->args[1] == TCP_LAST_ACK)
			st->flags |= ML_F_FIN_OUT;
		if (ops->args[1] != TCP_CLOSE)
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

/* ---- connect() failing before any SYN ---------------------------------- */

/*
 * Preferred: the return value of tcp_v{4,6}_connect() is the exact errno
 * (ENETUNREACH, EADDRNOTAVAIL, ...). tcp_v6_connect() calls tcp_v4_connect()
 * for v4-mapped peers; the first to report deletes the state, so a failure
 * is reported once.
 */
static __always_inline int ml_connect_returned(struct sock *sk, int ret)
{
	struct ml_sock_state *st;

	if (ret >= 0)
		return 0;
	st = bpf_sk_storage_get(&sk_states, sk, 0, 0);
	if (!st || st->phase != ML_PH_ATTEMPT)
		return 0;
	ml_emit_local_failure(st, sk->__sk_common.skc_family, -ret);
	bpf_sk_storage_delete(&sk_states, sk);
	return 0;
}

SEC("fexit/tcp_v4_connect")
int BPF_PROG(ml_fexit_tcp_v4_connect, struct sock *sk, struct sockaddr *uaddr, int addr_len,
	     int ret)
{
	return ml_connect_returned(sk, ret);
}

SEC("fexit/tcp_v6_connect")
int BPF_PROG(ml_fexit_tcp_v6_connect, struct sock *sk, struct sockaddr *uaddr, int addr_len,
	     int ret)
{
	return ml_connect_returned(sk, ret);
}

/*
 * Fallback where trampolines are refused: at close(), a socket whose
 * connect() never sent a SYN and that is in TCP_CLOSE failed locally. The
 * errno is gone by then; the one local failure a connect() normally meets
 * is the missing route, so it is reported as "unreachable".
 */
SEC("cgroup/sock_release")
int ml_sock_release(struct bpf_sock *ctx)
{
	struct ml_sock_state *st;

	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	st = bpf_sk_storage_get(&sk_states, ctx, 0, 0);
	if (!st || st->phase != ML_PH_ATTEMPT || ctx->state != TCP_CLOSE)
		return 1;
	ml_emit_local_failure(st, ctx->family, 0);
	/* cgroup/sock programs may not call bpf_sk_storage_delete(); the
	 * storage goes with the socket, so just mark it reported */
	st->phase = 0;
	return 1;
}

/* ---- connections still open ----------------------------------------------- */

/*
 * Walked by user space every refresh interval: a LIVE record per open
 * connection whose counters moved since the last pass (every one on a full
 * pass), so byte and retransmit counters advance while connections stay
 * open, without any per-packet hook. Skipping idle sockets matters: the
 * storage map has as many buckets as CPUs, and each read() of the iterator
 * walks its bucket from the start again, so a pass costs
 * elements x reads — few reads when idle sockets produce no output.
 */
__u32 iter_full_pass; /* set by user space before a pass */

SEC("iter/bpf_sk_storage_map")
int ml_iter_live(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct ml_sock_state *st = ctx->value;
	struct sock *sk = ctx->sk;
	struct tcp_probe_info rec;
	struct tcp_sock *tp;

	if (!st || !sk || st->phase != ML_PH_ESTABLISHED)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	__builtin_memset(&rec, 0, sizeof(rec));
	ml_fill_conn(&rec, tp, st);
	if (!iter_full_pass && rec.sent_bytes == st->live_sent &&
	    rec.received_bytes == st->live_received && rec.total_retrans == st->live_retrans)
		return 0;
	st->live_sent = rec.sent_bytes;
	st->live_received = rec.received_bytes;
	st->live_retrans = rec.total_retrans;
	rec.type = ML_REC_CONN_LIVE;
	rec.state = sk->__sk_common.skc_state;
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

#include "drop.h"
#include "retrans.h"
