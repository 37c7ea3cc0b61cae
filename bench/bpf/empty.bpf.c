// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* An empty sockops program: what attaching anything at all costs (bench). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sockops")
int empty_sockops(struct bpf_sock_ops *ops)
{
	return 1;
}
