// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * connect-failures: a connect() that failed before any SYN left (no
 * route, no source address, ...). Optional feature, two variants the
 * loader tries in order:
 *   fexit/tcp_v{4,6}_connect   the exact errno (trampolines needed, and
 *                              bpf_sk_storage_get() from tracing: 5.11+)
 *   cgroup/sock_release        at close(), without the errno
 * Without either, such an attempt is not logged (--probe says so).
 */
#include "conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

	/* the state first: a socket closed by its application (the common
	 * case) is not in TCP_CLOSE yet, and costs no storage lookup */
	if (ctx->state != TCP_CLOSE || ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	st = bpf_sk_storage_get(&sk_states, ctx, 0, 0);
	if (!st || st->phase != ML_PH_ATTEMPT)
		return 1;
	ml_emit_local_failure(st, ctx->family, 0);
	/* cgroup/sock programs may not call bpf_sk_storage_delete(); the
	 * storage goes with the socket, so just mark it reported */
	st->phase = 0;
	return 1;
}
