// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * live-counters: the counters of connections still open, read by user
 * space every refresh interval without any per-packet hook. Optional
 * feature; the loader tries the variants in order:
 *   iter/bpf_sk_storage_map   walks the socket storage itself (5.9+; a
 *                             map-element iterator, refused on some hosts)
 *   iter/task_file            walks every open file of every task, all
 *                             network namespaces (bpf_sock_from_file,
 *                             5.11+), and reads each TCP socket's storage
 *                             through the socket itself (bpf_rdonly_cast, 6.2+)
 *   iter/task_file, raw       the same walk, raw counters only: user space
 *                             subtracts the bases the open records carried
 * Without any, open connections' bytes are counted when they close. The
 * first two see every open connection, so the core writes no open record
 * with them (the loader says so: ml_no_open_records): a connection is
 * counted opened by the first pass that sees it, or at its close.
 *
 * The map iterator writes one LIVE record per open connection whose
 * counters moved since the last pass (every one on a full pass). Skipping idle sockets
 * matters: the storage map has as many buckets as CPUs, and each read()
 * of the iterator walks its bucket from the start again, so a pass costs
 * elements x reads — few reads when idle sockets produce no output.
 */
#include "conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u32 iter_full_pass; /* set by user space before a pass */

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/*
 * The record ml_iter_task_file_st() writes: with the storage copy beside
 * it, it does not fit the 512-byte stack. An iterator runs with migration
 * disabled and only iterators use this, so one slot per CPU is never
 * shared.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_probe_info);
} live_rec SEC(".maps");

static __always_inline void ml_live(struct seq_file *seq, struct sock *sk,
				    struct ml_sock_state *st)
{
	struct tcp_probe_info rec;
	struct tcp_sock *tp;

	if (st->phase != ML_PH_ESTABLISHED)
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	__builtin_memset(&rec, 0, sizeof(rec));
	ml_fill_conn(&rec, tp, st, sk->__sk_common.skc_state);
	if (!iter_full_pass && st->live_seen && rec.sent_bytes == st->live_sent &&
	    rec.received_bytes == st->live_received && rec.total_retrans == st->live_retrans)
		return;
	st->live_sent = rec.sent_bytes;
	st->live_received = rec.received_bytes;
	st->live_retrans = rec.total_retrans;
	st->live_seen = 1;
	rec.type = ML_REC_CONN_LIVE;
	bpf_seq_write(seq, &rec, sizeof(rec));
}

SEC("iter/bpf_sk_storage_map")
int ml_iter_live(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct ml_sock_state *st = ctx->value;
	struct sock *sk = ctx->sk;

	if (st && sk)
		ml_live(ctx->meta->seq, sk, st);
	return 0;
}

/*
 * The socket of an open file, if it is a TCP socket past the handshake
 * and not closed (only those have counters worth reading); its state too.
 */
static __always_inline struct sock *ml_file_tcp_sock(struct file *file, __u8 *state)
{
	struct socket *sock;
	struct sock *sk;

	if (!file)
		return NULL;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return NULL;
	sk = sock->sk;
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return NULL;
	*state = sk->__sk_common.skc_state;
	if (*state == TCP_LISTEN || *state == TCP_CLOSE || *state == TCP_SYN_SENT ||
	    *state == TCP_SYN_RECV)
		return NULL;
	return sk;
}

/*
 * Our storage value of a socket, copied out through the socket's own list
 * of storages (sk->sk_bpf_storage) with probe reads: the socket of a file
 * is an untrusted pointer, which bpf_sk_storage_get() refuses. The fields
 * read (phase, bases, identity) are written once, at establishment.
 */
static __always_inline bool ml_read_state(struct sock *sk, struct ml_sock_state *st)
{
	struct bpf_local_storage *ls = BPF_CORE_READ(sk, sk_bpf_storage);
	__u64 snode = bpf_core_field_offset(struct bpf_local_storage_elem, snode);
	__u64 data = bpf_core_field_offset(struct bpf_local_storage_elem, sdata.data);
	struct hlist_node *n;

	if (!ls)
		return false;
	n = BPF_CORE_READ(ls, list.first);
	for (int i = 0; i < 8 && n; i++) { /* one element per storage map */
		void *elem = (void *)n - snode;
		void *smap = BPF_CORE_READ((struct bpf_local_storage_elem *)elem, sdata.smap);

		if (smap == (void *)&sk_states)
			return !bpf_probe_read_kernel(st, sizeof(*st), elem + data);
		n = BPF_CORE_READ(n, next);
	}
	return false;
}

/*
 * iter/task_file, preferred where map-element iterators are refused: every
 * open file of every task (so every network namespace), and for each TCP
 * socket that carries our storage, the record the map iterator would
 * write (the tcp_sock read through bpf_rdonly_cast(), so ml_fill_conn()
 * serves both). Not skipping idle sockets: the storage is only read here.
 * A socket several processes hold is written once per holder; user space
 * takes LIVE values as absolute.
 */
SEC("iter/task_file")
int ml_iter_task_file_st(struct bpf_iter__task_file *ctx)
{
	struct ml_sock_state st;
	struct tcp_probe_info *rec;
	struct tcp_sock *tp;
	struct sock *sk;
	__u32 zero = 0;
	__u8 state;

	sk = ml_file_tcp_sock(ctx->file, &state);
	if (!sk || !ml_read_state(sk, &st) || st.phase != ML_PH_ESTABLISHED)
		return 0;
	tp = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
	rec = bpf_map_lookup_elem(&live_rec, &zero);
	if (!tp || !rec)
		return 0;
	__builtin_memset(rec, 0, sizeof(*rec));
	ml_fill_conn(rec, tp, &st, state);
	rec->type = ML_REC_CONN_LIVE;
	bpf_seq_write(ctx->meta->seq, rec, sizeof(*rec));
	return 0;
}

/*
 * iter/task_file, raw (kernels without bpf_rdonly_cast): every open file
 * of every task, so every network namespace. The socket behind a file (bpf_sock_from_file(), 5.11+) is an
 * untrusted pointer to the helpers on recent kernels — "R2
 * type=untrusted_ptr_ expected=ptr_, trusted_ptr_, rcu_ptr_" for
 * bpf_sk_storage_get(), the same for bpf_skc_to_tcp_sock() — so this
 * variant cannot reach the socket storage. It writes the kernel's raw
 * counters instead (ML_F_RAW: sequence-space FINs removed, SYN not), keyed
 * by the socket cookie, and user space subtracts the bases the open record
 * carried. Sockets without a cookie were never observed (sockops takes
 * one for every socket it tracks). A socket several processes hold (fork,
 * SCM_RIGHTS) is written once per holder; user space takes LIVE values as
 * absolute. Threads sharing their leader's file table are walked once.
 */
SEC("iter/task_file")
int ml_iter_task_file(struct bpf_iter__task_file *ctx)
{
	struct tcp_probe_info rec;
	struct tcp_sock *tp;
	struct sock *sk;
	__u64 cookie;
	__u8 state;

	sk = ml_file_tcp_sock(ctx->file, &state);
	if (!sk)
		return 0;
	cookie = sk->__sk_common.skc_cookie.counter;
	if (!cookie)
		return 0;
	/* tcp_sock lies beyond the struct sock the verifier knows this as */
	tp = (struct tcp_sock *)sk;
	__builtin_memset(&rec, 0, sizeof(rec));
	rec.type = ML_REC_CONN_LIVE;
	rec.flags = ML_F_RAW;
	rec.sock_cookie = cookie;
	rec.state = state;
	rec.sent_bytes = BPF_CORE_READ(tp, bytes_acked);
	rec.received_bytes = BPF_CORE_READ(tp, bytes_received);
	/* our FIN, once acked, and the peer's, once consumed, are sequence space */
	if (state != TCP_ESTABLISHED && state != TCP_CLOSE_WAIT &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq) && rec.sent_bytes)
		rec.sent_bytes -= 1;
	if ((BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)) && rec.received_bytes)
		rec.received_bytes -= 1;
	rec.total_retrans = BPF_CORE_READ(tp, total_retrans);
	rec.close_ns = bpf_ktime_get_ns();
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}
