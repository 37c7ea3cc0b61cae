/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * diagnose - rtrace-drop style diagnosis beyond the drop reason: where
 * packets are lost that kfree_skb does not explain, with evidence and a
 * hint. Sources: listeners' accept queues (inet_diag over netlink,
 * libnl-3), TcpExt counters (/proc/net/netstat: ListenOverflows,
 * ListenDrops, TCPBacklogDrop, ...), checksum errors (/proc/net/snmp),
 * NIC counters per interface (rtnetlink link stats, libnl-3: rx_over,
 * rx_missed, rx_fifo errors, rx/tx dropped), and /proc/sys settings known
 * to drop packets (rp_filter, somaxconn, tcp_max_syn_backlog,
 * netdev_max_backlog, conntrack count vs max, tcp_tw_recycle where
 * present).
 *
 * Runs in the caller's network namespace. Counters are reported as they
 * are and, from the second run of the same state on, as deltas.
 */
#ifndef MESHLENS_DIAGNOSE_H
#define MESHLENS_DIAGNOSE_H

#include <stdio.h>
#include "../metrics/expo.h"

enum diag_severity {
	DIAG_INFO = 0,    /* worth knowing */
	DIAG_WARNING = 1, /* a setting or counter that can drop packets */
	DIAG_PROBLEM = 2, /* packets are being dropped here now */
};

struct diag_finding {
	char layer[4];       /* "l4", "l3", "l2", "l1" */
	char point[48];      /* drop point, e.g. "l4.tcp.accept_queue", "l1.nic.rx_missed" */
	char subject[96];    /* "listener 127.0.0.1:8080", "eth0", "net.ipv4.conf.all.rp_filter" */
	char evidence[256];  /* "accept queue 2 of 1 (len/limit), ListenOverflows 37" */
	char hint[256];      /* "raise the listen() backlog and net.core.somaxconn, or accept faster" */
	enum diag_severity severity;
};

struct diag_state;

struct diag_state *diag_new(void);
void diag_free(struct diag_state *s);

/*
 * One pass over every source; fills up to max findings, most severe first,
 * and makes this pass the baseline of the next. A pass that had a baseline
 * also sets the findings diag_render() publishes (out may be NULL, max 0:
 * the daemon runs a pass per period that way). Returns how many, or
 * -errno when no source could be read at all.
 */
int diag_run(struct diag_state *s, struct diag_finding *out, int max);

/* The --diagnose report: a header, then one block per finding. */
void diag_print(FILE *out, const struct diag_finding *f, int n);

/*
 * Read every source now for diag_render() (the daemon does it at each
 * refresh, never per scrape: netlink dumps and /proc reads stay off the
 * scrape path). 0, or -errno when no source could be read.
 */
int diag_refresh(struct diag_state *s);

/*
 * The same figures as metrics, as the last diag_refresh() read them:
 * node-level counters and per-interface NIC counters; listeners only
 * while their accept queue is full (bounded cardinality);
 * meshlens_diag_findings{severity} of the last diag_run() that had a
 * baseline. Families are prefixed meshlens_diag_ or meshlens_nic_.
 */
void diag_render(struct diag_state *s, struct expo *e);

#endif /* MESHLENS_DIAGNOSE_H */
