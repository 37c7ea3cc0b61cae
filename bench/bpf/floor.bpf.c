// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of meshlens's design, for `make bench` to measure meshlens
 * against in the same run: the least any per-socket SK_STORAGE tracker
 * pays. Storage (meshlens's own size) created at connect/accept, the state
 * callback set, the storage deleted at close; nothing recorded, nothing
 * sent to user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "probe.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_sock_state);
} floor_states SEC(".maps");

SEC("sockops")
int floor_sockops(struct bpf_sock_ops *ops)
{
	struct bpf_sock *sk = ops->sk;

	if (!sk)
		return 1;
	switch (ops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (bpf_sk_storage_get(&floor_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE))
			bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
							       BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (ops->args[1] == BPF_TCP_CLOSE)
			bpf_sk_storage_delete(&floor_states, sk);
		break;
	}
	return 1;
}
