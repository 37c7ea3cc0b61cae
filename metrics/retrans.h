/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * retrans - meshlens_node_tcp_retransmits_total{family,state}: every
 * socket of the node, from the per-CPU slots the tracepoint programs count
 * into (bpf/probe.h, ml_rtx_slot).
 */
#ifndef MESHLENS_RETRANS_H
#define MESHLENS_RETRANS_H

#include "expo.h"

/* The family from the per-CPU slot map (fd < 0: the feature is off, nothing). */
void retrans_render(int fd, int ncpus, struct expo *e);

#endif /* MESHLENS_RETRANS_H */
