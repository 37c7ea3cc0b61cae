/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * accesslog - tcp_probe_info record -> one JSON line -> sink (stdout/file).
 *
 * The whole API of the module. Nothing here allocates per record: the
 * caller formats into its own buffer and appends to a sink that batches
 * lines and writes them with one write(2) per flush, so a line is never
 * torn or interleaved.
 */
#ifndef MESHLENS_ACCESSLOG_H
#define MESHLENS_ACCESSLOG_H

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

/* Address text: v4-mapped -> dotted quad; else RFC 5952 IPv6. */
int accesslog_format_addr(const uint8_t addr[ML_ADDR_LEN], char *buf, size_t len);

/*
 * "ipv4" when the socket is AF_INET or the server address (dst_addr) is
 * v4-mapped, else "ipv6". dst_addr decides: after a connect() that failed
 * locally, src_addr is still unspecified.
 */
const char *accesslog_family_name(const struct tcp_probe_info *r);

/* TCP state number -> "ESTABLISHED", "SYN_SENT", ...; "UNKNOWN" otherwise. */
const char *accesslog_state_name(unsigned int state);

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
 * Workload identity of a connection record, resolved by the caller; NULL
 * members are left out of the line. "src_*" name the client, "dst_*" the
 * server; cgroup is the socket's cgroup path relative to the cgroup v2 root.
 */
struct accesslog_identity {
	const char *cgroup;
	const char *src_workload, *src_namespace;
	const char *dst_workload, *dst_namespace, *dst_service;
};

/*
 * accesslog_format() plus the identity keys ("cgroup", "src_workload",
 * "src_namespace", "dst_workload", "dst_namespace", "dst_service"), each
 * value escaped. id NULL: exactly accesslog_format(). -1 if buf is too
 * small (long names can make that happen within ACCESSLOG_LINE_MAX).
 */
int accesslog_format_id(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
			const struct accesslog_identity *id, char *buf, size_t len);

/*
 * With --drops, records carry "drops" and, when some were dropped,
 * "last_drop_reason": the daemon names reasons (from the kernel's BTF)
 * through this, set once at start-up. buf is scratch space the namer may
 * write the name into.
 */
typedef const char *(*accesslog_reason_fn)(void *ctx, uint32_t reason, char *buf, size_t len);
void accesslog_set_reason_namer(accesslog_reason_fn fn, void *ctx);

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
 * id->cgroup is not used). Returns the length, or -1 if buf is too small.
 */
int accesslog_format_drop(const struct ml_flow_key *k, const struct ml_flow_val *v,
			  const struct accesslog_drop_names *names,
			  const struct accesslog_identity *id, const struct accesslog_clock *clk,
			  char *buf, size_t len);

struct accesslog_sink;

/*
 * Open a sink: "-" = stdout, anything else a file path opened O_APPEND
 * and non-blocking (created 0640, with its missing parent directories; a
 * FIFO must have a reader). Returns NULL with errno set on failure.
 */
struct accesslog_sink *accesslog_open(const char *dest);

/*
 * Queue one complete line ('\n'-terminated, < ACCESSLOG_LINE_MAX); flushes
 * first when the batch buffer is full. Returns 0 once queued, -EINVAL for a
 * malformed line. Lines a triggered flush could not write are counted in
 * accesslog_lost_lines(), not returned: callers must not retry.
 */
int accesslog_append(struct accesslog_sink *s, const char *line, size_t len);

/* Write every queued line (one write(2) per batch). 0 or -errno. */
int accesslog_flush(struct accesslog_sink *s);

/*
 * Re-open the file (after logrotate moved it); no-op for stdout. 0 or
 * -errno; on failure nothing more goes to the old file: lines are counted
 * lost while each flush retries (once a second; said on stderr once a
 * minute). A symlink at the path is followed only if the path was one
 * when the sink was opened.
 */
int accesslog_reopen(struct accesslog_sink *s);

/* strerror() for the sink's errors, naming the two it makes itself
 * (ELOOP: a symlink not followed; ENXIO: a FIFO nobody reads) */
const char *accesslog_strerror(int err);

/* Lines that could not be written (e.g. disk full) since open. */
uint64_t accesslog_lost_lines(const struct accesslog_sink *s);

/* Why the last lines counted lost were: -errno (ENOSPC...), 0 if none were. */
int accesslog_last_error(const struct accesslog_sink *s);

/*
 * Size-based rotation of a file sink (a no-op returning 0 for stdout).
 * At flush time, before a batch would take a non-empty file past
 * max_bytes, the file is renamed path.1 -- older ones shift, path.N[.gz]
 * -> path.N+1[.gz], and the one at max_files is deleted -- and a fresh
 * path is created (0640). Batches go whole to one file, so no line is
 * split or lost: a file exceeds max_bytes only when a single batch does.
 *
 * path.1 is then gzip-compressed to path.1.gz (fsync'd before path.1 is
 * removed) a slice at every flush, keeping the loop responsive; a file
 * that cannot be compressed stays uncompressed (counted in
 * accesslog_rotation_errors(), said once on stderr). A path.1 already
 * there (an earlier run stopped before compressing it) is compressed too.
 *
 * max_bytes 0 turns rotation off. 0, or -EINVAL (max_files 0),
 * -ENAMETOOLONG, -ENOMEM. accesslog_reopen() keeps working with it on.
 */
int accesslog_set_rotation(struct accesslog_sink *s, uint64_t max_bytes, unsigned int max_files);

/* Rotations done since open. */
uint64_t accesslog_rotations(const struct accesslog_sink *s);

/*
 * Rotations and compressions that failed since open. No line is lost by
 * them: they stay in the current file, or in an uncompressed path.N.
 */
uint64_t accesslog_rotation_errors(const struct accesslog_sink *s);

/* Flush and close. */
void accesslog_close(struct accesslog_sink *s);

#endif /* MESHLENS_ACCESSLOG_H */
