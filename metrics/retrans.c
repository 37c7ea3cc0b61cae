// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdio.h>
#include <bpf/bpf.h>

#include "retrans.h"
#include "../lib/names.h"
#include "../bpf/probe.h"

/*
 * The TCP states proper (ESTABLISHED 1 .. CLOSING 11) are always there,
 * from 0, so rate() has a start; other slots once they counted something.
 */
void retrans_render(int fd, int ncpus, struct expo *e)
{
	static const char name[] = "meshlens_node_tcp_retransmits_total";
	__u64 vals[ncpus > 0 ? ncpus : 1];
	char other[16];

	if (fd < 0 || ncpus <= 0) /* refused on this kernel: --probe says so */
		return;
	expo_family(e, name, "counter",
		    "TCP segments retransmitted by every socket of the node (all network "
		    "namespaces), sent without error (TcpRetransSegs - TCPRetransFail), by "
		    "family and socket state (SYN_SENT: SYN, SYN_RECV: SYN-ACK).");
	for (__u32 slot = 0; slot < ML_RTX_SLOTS; slot++) {
		unsigned int state = slot % ML_RTX_STATES;
		uint64_t sum = 0;

		if (bpf_map_lookup_elem(fd, &slot, vals))
			continue;
		for (int c = 0; c < ncpus; c++)
			sum += vals[c];
		if (!sum && (state < 1 || state > 11))
			continue;
		/* a state the kernel does not have (yet): by number, never twice "UNKNOWN" */
		snprintf(other, sizeof(other), "STATE_%u", state);
		expo_sample_u64(e, name,
				(const char *const[]){
					"family", slot < ML_RTX_STATES ? "ipv4" : "ipv6", "state",
					state >= 1 && state <= 12 ? ml_tcp_state_name(state) : other,
					NULL },
				sum);
	}
}
