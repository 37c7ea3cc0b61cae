/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * conn.h - one connection's record, shared by the programs that write one:
 * the core (open, close, failed handshake), the connect-failure programs
 * (failed before any SYN) and the live-counter iterators.
 *
 * API: ml_reserve()/ml_submit() (ringbuf, at most one wake-up per 10 ms),
 * ml_fill_head() (the ends, identity, times), ml_fill_conn() (that and
 * the TCP counters, read from the tcp_sock),
 * ml_emit_local_failure(), ml_failure_of().
 */
#ifndef MESHLENS_BPF_CONN_H
#define MESHLENS_BPF_CONN_H

#include "maps.h"

#define ECONNRESET 104
#define ENETUNREACH 101
#define EHOSTUNREACH 113
#define ETIMEDOUT 110
#define ECONNREFUSED 111

/* Unread bytes in the ringbuf past which a submit wakes the reader. */
const volatile __u64 wakeup_bytes = 1 << 20;
/* Set by user space once drop tracing is attached: records carry drops. */
__u8 ml_drops_on;
/* Set by user space when its live-counter passes see every open connection
 * (live.bpf.c): then no open record is written. */
__u8 ml_no_open_records;

/* lost: which counter says so when the ring is full (open records apart,
 * so that access-log lines + ML_CNT_RECORDS_LOST = connections, exactly) */
static __always_inline struct tcp_probe_info *ml_reserve(__u32 lost)
{
	struct tcp_probe_info *rec;

	/* bench/cost.sh's ablations (never in a real build): meshlens without
	 * its open records, and without any record at all */
#if defined(ML_BENCH_NO_OPEN) || defined(ML_BENCH_NO_RECORDS)
	if (lost == ML_CNT_OPEN_LOST)
		return NULL;
#endif
#ifdef ML_BENCH_NO_RECORDS
	return NULL;
#endif
	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);

	if (!rec) {
		ml_count(lost);
		return NULL;
	}
	__builtin_memset(rec, 0, sizeof(*rec));
	return rec;
}

/* When a submit last forced a wake-up (this object's programs, any CPU). */
__u64 ml_woken_ns;
/* At most one forced wake-up per this many ns, however full the ring. */
#define ML_WAKE_GAP_NS 10000000ULL

/*
 * Submit without a wake-up unless the reader is falling behind, and then
 * at most one wake-up per ML_WAKE_GAP_NS: a wake-up costs more than the
 * connection being logged, and the reader drains on a timer anyway. A
 * reader that is gone or stalled would otherwise be woken by every submit
 * once the ring is past the threshold — the observed sockets paying for
 * the observer's absence. Racing CPUs may both wake once: harmless, and
 * plain loads and stores work on every kernel (no cmpxchg before 5.12).
 * The clock is the record's own reading (close_ns).
 */
static __always_inline void ml_submit(struct tcp_probe_info *rec)
{
	__u64 now = rec->close_ns, flags = BPF_RB_NO_WAKEUP;

	if (now - ml_woken_ns >= ML_WAKE_GAP_NS &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes) {
		ml_woken_ns = now;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(rec, flags);
}

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
	/* no SYN, so the state never learnt the socket's cgroup: the caller
	 * runs in the task that called connect() or close() (the cgroup
	 * sock/sock_addr hooks have the helper since 5.7, tracing always) */
	rec->cgroup_id = bpf_get_current_cgroup_id();
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

/* Our FIN is in the sequence space once the socket is past these states. */
static __always_inline bool ml_fin_sent(__u32 state)
{
	return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING ||
	       state == TCP_TIME_WAIT || state == TCP_LAST_ACK;
}

/*
 * What every record of a connection says: its two ends (client first),
 * identity and times. state: the TCP state the record reports; now: the
 * time of the reading (bpf_ktime_get_ns()).
 */
static __always_inline void ml_fill_head(struct tcp_probe_info *rec, struct sock *sk,
					 struct ml_sock_state *st, __u32 state, __u64 now)
{
	__u8 local[ML_ADDR_LEN], remote[ML_ADDR_LEN];
	__u16 lport = sk->__sk_common.skc_num;
	__u16 rport = bpf_ntohs(sk->__sk_common.skc_dport);

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
	rec->state = state;
	rec->start_ns = st->connect_ns;
	rec->close_ns = now;
	rec->duration = now - st->connect_ns;
	rec->cgroup_id = st->cgroup_id;
	rec->sock_cookie = st->sock_cookie;
	rec->direction = st->direction;
	rec->protocol = IPPROTO_TCP;
	rec->conn_success = st->connect_success;
	rec->flags = st->flags & ML_F_HANDSHAKE;
	rec->handshake_us = st->handshake_us;
}

/*
 * TCP health: what the kernel keeps per socket beyond the classic fields,
 * as tcp_get_info() reports it (tcpi_* of the same names). The RTO
 * counters are 6.7's; where the running kernel lacks them, CO-RE turns
 * the branch into dead code and the record says so (no ML_F_RTO).
 */
static __always_inline void ml_fill_health(struct tcp_probe_info *rec, struct tcp_sock *tp)
{
	__u32 delivered = tp->rate_delivered, interval = tp->rate_interval_us;

	rec->flags |= ML_F_HEALTH;
	rec->bytes_retrans = tp->bytes_retrans;
	rec->dsack_dups = tp->dsack_dups;
	rec->reord_seen = tp->reord_seen;
	rec->rcv_ooopack = tp->rcv_ooopack;
	rec->delivered_ce = tp->delivered_ce;
	rec->snd_cwnd = tp->snd_cwnd;
	rec->snd_ssthresh = tp->snd_ssthresh;
	/* tcp_compute_delivery_rate(): segments per interval, in bytes/s */
	if (delivered && interval)
		rec->delivery_rate = (__u64)delivered * tp->mss_cache * 1000000 / interval;
	if (bpf_core_field_exists(tp->total_rto)) {
		rec->total_rto = tp->total_rto;
		rec->total_rto_recoveries = tp->total_rto_recoveries;
		rec->total_rto_time = tp->total_rto_time;
		/* a recovery still going counts up to now, as tcp_get_info() has it */
		if (tp->rto_stamp)
			rec->total_rto_time += (__u32)(bpf_ktime_get_ns() / 1000000) - tp->rto_stamp;
		rec->flags |= ML_F_RTO;
	}
}

/*
 * Everything a record says about a connection, read from the tcp_sock
 * itself, so the close record and the live-socket iterators agree to the
 * byte. state: the socket's TCP state the record reports (at close, the
 * one it closed from); it says whether our FIN was sent, so no run of the
 * state callback but the last needs the storage.
 *
 * Payload bytes from the kernel's sequence-space counters: bytes_acked and
 * bytes_received also count the SYN (removed through the base taken at
 * ESTABLISHED) and the FIN, removed here once it was acked (ours) or
 * consumed (the peer's: tcp_fin() sets SOCK_DONE).
 */
static __always_inline void ml_fill_conn(struct tcp_probe_info *rec, struct tcp_sock *tp,
					 struct ml_sock_state *st, __u32 state)
{
	struct sock *sk = &tp->inet_conn.icsk_inet.sk;
	__u64 sent = tp->bytes_acked - st->sent_base;
	__u64 received = tp->bytes_received - st->recv_base;
	__u32 rtt_min = tp->rtt_min.s[0].v;
	__u8 flags = ml_fin_sent(state) ? ML_F_FIN_OUT : 0;

	ml_fill_head(rec, sk, st, state, bpf_ktime_get_ns());
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
	rec->flags |= flags;
	rec->srtt_us = tp->srtt_us >> 3; /* the kernel keeps srtt << 3 */
	rec->rtt_min = rtt_min == ~0U ? 0 : rtt_min; /* ~0U: no RTT sample yet */
	rec->mss_cache = tp->mss_cache;
	rec->total_retrans = tp->total_retrans;
	rec->segs_in = tp->segs_in;
	rec->segs_out = tp->segs_out;
	rec->lost_out = tp->lost_out;
	rec->sk_err = sk->sk_err;
	ml_fill_health(rec, tp);
	if (ml_drops_on) {
		rec->flags |= ML_F_DROPS;
		rec->drops = st->drops;
		rec->last_drop_reason = st->last_drop_reason;
	}
}

#endif /* MESHLENS_BPF_CONN_H */
