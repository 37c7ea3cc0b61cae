/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * accesslog/format - a tcp_probe_info record, or a drop flow, -> one JSON
 * line in the caller's buffer; the clock that turns the kernel's
 * monotonic stamps into wall-clock time. Part of accesslog.h, which
 * callers include. Nothing here allocates or takes a lock.
 */
#ifndef MESHLENS_ACCESSLOG_FORMAT_H
#define MESHLENS_ACCESSLOG_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../bpf/probe.h"

/* Longest line accesslog_format() can produce, with headroom. */
#define ACCESSLOG_LINE_MAX 1024

/* Converts kernel CLOCK_MONOTONIC ns to wall-clock (CLOCK_REALTIME) ns. */
struct accesslog_clock {
	int64_t mono_to_real_ns; /* real = mono + mono_to_real_ns */
};

/* Re-measure the monotonic -> realtime offset (cheap; call once per batch). */
void accesslog_clock_sync(struct accesslog_clock *clk);

/*
 * The formatters below NUL-terminate, return the length without the NUL,
 * and return -1 (buf unspecified) when the text and its NUL do not fit.
 */

/* "2026-11-21T22:15:01.123456Z" (microseconds, UTC). */
int accesslog_format_time(uint64_t real_ns, char *buf, size_t len);

/*
 * "ipv4" when the socket is AF_INET or the server address (dst_addr) is
 * v4-mapped, else "ipv6". dst_addr decides: after a connect() that failed
 * locally, src_addr is still unspecified.
 */
const char *accesslog_family_name(const struct tcp_probe_info *r);

/* enum ml_failure -> "refused", "timeout", ... */
const char *accesslog_failure_name(unsigned int failure);

/* JSON string literal (quotes included) of s[0..n): escapes quote, backslash
 * and control characters, replaces invalid UTF-8 with U+FFFD. */
int accesslog_json_string(const char *s, size_t n, char *buf, size_t len);

/*
 * Format one record as a JSON object followed by '\n' into buf.
 * Returns the line length (including '\n'), or -1 if buf is too small.
 */
int accesslog_format(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
		     char *buf, size_t len);

/*
 * Keys of a line as they go into it (,"key":"value",...), each value
 * escaped: rendered once where the names are loaded and pasted into every
 * line that carries them. Scanning the workload names for escapes in every
 * line was a third of a named line's cost (callgrind, bench_pipeline).
 * len 0: none.
 */
struct accesslog_keys {
	const char *text;
	size_t len;
};

/*
 * An end's workload keys into buf: ,"src_workload":W,"src_namespace":N
 * for the client's end, ,"dst_workload":W,"dst_namespace":N,
 * "dst_service":S for the server's (dst); NULL names are left out. The
 * length without the NUL, -1 if it does not fit.
 */
int accesslog_end_keys(bool dst, const char *workload, const char *ns, const char *service,
		       char *buf, size_t len);

/* ,"cgroup":PATH into buf, as accesslog_end_keys(). */
int accesslog_cgroup_key(const char *path, char *buf, size_t len);

/*
 * Names of a connection record, resolved by the caller; empty keys are
 * left out of the line. src keys name the client, dst keys the server;
 * cgroup is the socket's cgroup path relative to the cgroup v2 root.
 *
 * drop_reason names r->last_drop_reason (with --drops, records carry
 * "drops" and, when some were dropped, "last_drop_reason"; the daemon
 * names reasons from the kernel's BTF); NULL, or no id: "UNKNOWN". The
 * caller resolves it only for a record with drops, so a record without
 * pays nothing for it.
 */
struct accesslog_identity {
	struct accesslog_keys cgroup, src, dst;
	const char *drop_reason;
};

/*
 * accesslog_format() plus the identity keys ("cgroup", "src_workload",
 * "src_namespace", "dst_workload", "dst_namespace", "dst_service"), each
 * value escaped. id NULL: exactly accesslog_format(). -1 if buf is too
 * small (long names can make that happen within ACCESSLOG_LINE_MAX).
 */
int accesslog_format_id(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
			const struct accesslog_identity *id, char *buf, size_t len);

/* What an interval of an open connection added (interim lines). */
struct accesslog_interval {
	uint64_t sent_bytes, received_bytes, retransmits;
};

/*
 * An open connection's interim line (log_interval_s): {"type":"interim",
 * ...} with the keys of a close line — r's counters the cumulative ones so
 * far — and "interval_sent_bytes", "interval_received_bytes",
 * "interval_retransmits": what the interval added. -1 if buf is too small.
 */
int accesslog_format_interim(const struct tcp_probe_info *r, const struct accesslog_interval *iv,
			     const struct accesslog_clock *clk, const struct accesslog_identity *id,
			     char *buf, size_t len);

/* Names of a drop flow's reason, resolved by the caller. */
struct accesslog_drop_names {
	const char *reason; /* "NETFILTER_DROP" */
	const char *layer;  /* "l3" */
	const char *module; /* "l3.netfilter" */
};

/*
 * One drop-log line: {"type":"drop",...} with the flow's drops since it
 * was last taken out of the kernel (packets, bytes, first/last time);
 * with id, the workload keys of the packet's ends ("src_workload", ...;
 * id->cgroup and id->drop_reason are not used: names has the reason). Returns the length, or -1 if buf is too small.
 */
int accesslog_format_drop(const struct ml_flow_key *k, const struct ml_flow_val *v,
			  const struct accesslog_drop_names *names,
			  const struct accesslog_identity *id, const struct accesslog_clock *clk,
			  char *buf, size_t len);

#endif /* MESHLENS_ACCESSLOG_FORMAT_H */
