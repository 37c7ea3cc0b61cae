// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * accesslog - tcp_probe_info -> one JSON line -> batched sink.
 *
 * Lines are produced by a small hand-written JSON writer, not cJSON: the
 * per-record path must not allocate (DESIGN.md, data flow) and cJSON builds
 * a tree of heap nodes per object. The writer appends into the caller's
 * buffer, never past its end, and remembers whether anything did not fit.
 * Every string value goes through the escaper, so keys that later carry
 * user-supplied text (workload names) cannot break the line.
 */
#define _GNU_SOURCE /* strerrorname_np */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "accesslog.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NSEC_PER_SEC 1000000000ULL

#define TIME_LEN 27			/* "2026-11-21T22:15:01.123456Z" */
#define BATCH_SIZE (256 * 1024)		/* one write(2) per flush */

struct jw {
	char *buf;
	char *p;
	char *end;	/* one byte before the real end: room for the NUL */
	bool overflow;
};

static void jw_init(struct jw *w, char *buf, size_t len)
{
	w->buf = w->p = buf;
	w->end = len ? buf + len - 1 : buf;
	w->overflow = !len;
}

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	if ((size_t)(w->end - w->p) < n) {
		w->overflow = true;
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

/* Length written, NUL-terminated, or -1 if anything did not fit. */
static int jw_end(struct jw *w)
{
	if (w->overflow)
		return -1;
	*w->p = '\0';
	return w->p - w->buf;
}

#define jw_lit(w, s) jw_raw(w, s, sizeof(s) - 1)

/* "00".."99": two digits per division (numbers were a sixth of a line's cost) */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/* The decimal digits of v, right-aligned in p[0..n). */
static inline __attribute__((always_inline)) void put_pairs(char *p, uint64_t v, int n)
{
	for (; n >= 2; n -= 2, v /= 100)
		memcpy(p + n - 2, digit_pairs + 2 * (v % 100), 2);
	if (n)
		*p = (char)('0' + v % 10);
}

static void jw_u64(struct jw *w, uint64_t v)
{
	/* the digits end at tmp + 20; the 20 bytes after them are read too */
	char tmp[40], *p = tmp + 20;
	size_t n;

	for (; v >= 100; v /= 100) {
		p -= 2;
		memcpy(p, digit_pairs + 2 * (v % 100), 2);
	}
	if (v >= 10) {
		p -= 2;
		memcpy(p, digit_pairs + 2 * v, 2);
	} else {
		*--p = (char)('0' + v);
	}
	n = tmp + 20 - p;
	if ((size_t)(w->end - w->p) < 20) {
		jw_raw(w, p, n);
		return;
	}
	/* a fixed-size copy is a few moves, a sized one a call: copy 20
	 * bytes from p (what lies past the number is overwritten next) */
	memcpy(w->p, p, 20);
	w->p += n;
}

/*
 * Bytes at s that go into a JSON string as they are: one printable ASCII
 * character other than '"' and '\\', or one well-formed UTF-8 sequence
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
 * 0 when the byte must be escaped or replaced.
 */
static size_t plain_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != '"' && s[0] != '\\';
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (n < len)
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;	/* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f;	/* UTF-16 surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90;	/* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f;	/* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * s[0..n) as a quoted JSON string. A byte that is not valid UTF-8 becomes
 * U+FFFD: the log is promised to be UTF-8 whatever a metadata file holds.
 */
static void jw_str(struct jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	char esc[6] = { '\\', 'u', '0', '0' };
	size_t i = 0, start, step;

	jw_lit(w, "\"");
	while (i < n) {
		/* copy the longest run that needs no escaping in one go; plain
		 * ASCII tested inline (a call per byte was a third of a line) */
		for (start = i;;) {
			while (i < n && u[i] >= 0x20 && u[i] < 0x80 && u[i] != '"' && u[i] != '\\')
				i++;
			if (i == n || u[i] < 0x80 || !(step = plain_len(u + i, n - i)))
				break;
			i += step;
		}
		jw_raw(w, s + start, i - start);
		if (i == n)
			break;
		if (u[i] == '"' || u[i] == '\\') {
			esc[1] = u[i];
			jw_raw(w, esc, 2);
			esc[1] = 'u';
		} else if (u[i] < 0x20) {
			esc[4] = hex[u[i] >> 4];
			esc[5] = hex[u[i] & 0xf];
			jw_raw(w, esc, 6);
		} else {
			jw_lit(w, "\\ufffd");
		}
		i++;
	}
	jw_lit(w, "\"");
}

/* ,"key":value -- key must be a string literal: it is pasted, not escaped. */
#define jw_num(w, key, v)				\
	do {						\
		jw_lit(w, ",\"" key "\":");		\
		jw_u64(w, v);				\
	} while (0)
#define jw_text(w, key, s)				\
	do {						\
		jw_lit(w, ",\"" key "\":");		\
		jw_str(w, s, strlen(s));		\
	} while (0)

/*
 * s[0..n) quoted, unscanned: only for what this file itself words (names
 * from its tables, times, addresses), never for outside text. Scanning
 * those for escapes was a third of a line's cost (callgrind).
 */
static void jw_plain(struct jw *w, const char *s, size_t n)
{
	if ((size_t)(w->end - w->p) < n + 2) {
		w->overflow = true;
		return;
	}
	*w->p++ = '"';
	memcpy(w->p, s, n);
	w->p += n;
	*w->p++ = '"';
}

#define jw_word(w, key, s)				\
	do {						\
		const char *s_ = (s);			\
		jw_lit(w, ",\"" key "\":");		\
		jw_plain(w, s_, strlen(s_));		\
	} while (0)

int accesslog_json_string(const char *s, size_t n, char *buf, size_t len)
{
	struct jw w;

	jw_init(&w, buf, len);
	jw_str(&w, s, n);
	return jw_end(&w);
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * (int64_t)NSEC_PER_SEC + ts.tv_nsec;
}

void accesslog_clock_sync(struct accesslog_clock *clk)
{
	int64_t m0, real, m1, best = INT64_MAX;
	int i;

	/*
	 * The realtime read sits between two monotonic reads, best guessed at
	 * their midpoint. Keep the narrowest of a few tries so that being
	 * preempted between the reads does not skew every timestamp.
	 */
	for (i = 0; i < 3; i++) {
		m0 = clock_ns(CLOCK_MONOTONIC);
		real = clock_ns(CLOCK_REALTIME);
		m1 = clock_ns(CLOCK_MONOTONIC);
		if (m1 - m0 < best) {
			best = m1 - m0;
			clk->mono_to_real_ns = real - (m0 + (m1 - m0) / 2);
		}
	}
}

/* Wall-clock ns of a monotonic stamp, clamped rather than wrapped. */
static uint64_t mono_to_real(uint64_t mono, int64_t off)
{
	uint64_t real;

	if (__builtin_add_overflow(mono, off, &real))
		return off < 0 ? 0 : UINT64_MAX;
	return real;
}

/* Howard Hinnant's civil_from_days(), for days >= 0 since 1970-01-01. */
static void civil_from_days(uint64_t days, unsigned int *y, unsigned int *m, unsigned int *d)
{
	uint64_t z = days + 719468;	/* days since 0000-03-01 */
	uint64_t era = z / 146097;
	unsigned int doe = z - era * 146097;
	unsigned int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned int mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = era * 400 + yoe + (*m <= 2);
}

int accesslog_format_time(uint64_t real_ns, char *buf, size_t len)
{
	/* the date of the last call: records come in time order, days apart
	 * never (per thread: the writer has no lock) */
	static _Thread_local uint64_t cached_days = UINT64_MAX;
	static _Thread_local char date[11];
	uint64_t secs = real_ns / NSEC_PER_SEC;
	unsigned int sod = secs % 86400, y, m, d;

	if (len < TIME_LEN + 1)
		return -1;
	if (secs / 86400 != cached_days) {
		cached_days = secs / 86400;
		/* u64 ns end in 2554: the year always has four digits */
		civil_from_days(cached_days, &y, &m, &d);
		memcpy(date, "0000-00-00T", 11);
		put_pairs(date, y, 4);
		put_pairs(date + 5, m, 2);
		put_pairs(date + 8, d, 2);
	}
	memcpy(buf, date, 11);
	memcpy(buf + 11, "00:00:00.000000Z", 17);
	put_pairs(buf + 11, sod / 3600, 2);
	put_pairs(buf + 14, sod / 60 % 60, 2);
	put_pairs(buf + 17, sod % 60, 2);
	put_pairs(buf + 20, real_ns % NSEC_PER_SEC / 1000, 6);
	return TIME_LEN;
}

static bool is_v4mapped(const uint8_t a[ML_ADDR_LEN])
{
	static const uint8_t prefix[12] = { [10] = 0xff, [11] = 0xff };

	return !memcmp(a, prefix, sizeof(prefix));
}

/*
 * RFC 5952 by hand: glibc's inet_ntop() prints ::/96 in mixed notation
 * (::1.2.3.4), which RFC 5952 section 5 keeps for well-known prefixes only.
 * Lowercase hex without leading zeros; the longest run (the first on a tie)
 * of two or more zero groups becomes "::". out needs INET6_ADDRSTRLEN.
 */
static int format_ipv6(const uint8_t a[ML_ADDR_LEN], char *out)
{
	static const char hex[] = "0123456789abcdef";
	int best = -1, best_len = 1, run, shift, i, n = 0;
	unsigned int g[8];

	for (i = 0; i < 8; i++)
		g[i] = a[2 * i] << 8 | a[2 * i + 1];
	for (i = 0; i < 8; i++) {
		for (run = 0; i + run < 8 && !g[i + run]; run++)
			;
		if (run > best_len) {
			best = i;
			best_len = run;
		}
	}
	for (i = 0; i < 8; i++) {
		if (i == best) {
			out[n++] = ':';
			out[n++] = ':';
			i += best_len - 1;
			continue;
		}
		/* no ':' right after "::" (with no run, best + best_len is 0) */
		if (i && i != best + best_len)
			out[n++] = ':';
		for (shift = 12; shift && !(g[i] >> shift); shift -= 4)
			;
		for (; shift >= 0; shift -= 4)
			out[n++] = hex[g[i] >> shift & 0xf];
	}
	out[n] = '\0';
	return n;
}

/*
 * Dotted quad by hand too: glibc's inet_ntop() formats IPv4 through
 * sprintf(), which was a quarter of the per-record cost (callgrind, `make
 * bench`). out needs 16 bytes.
 */
static int format_ipv4(const uint8_t a[4], char *out)
{
	int n = 0;

	for (int i = 0; i < 4; i++) {
		unsigned int v = a[i];

		if (i)
			out[n++] = '.';
		if (v >= 100)
			out[n++] = (char)('0' + v / 100);
		if (v >= 10)
			out[n++] = (char)('0' + v / 10 % 10);
		out[n++] = (char)('0' + v % 10);
	}
	out[n] = '\0';
	return n;
}

int accesslog_format_addr(const uint8_t addr[ML_ADDR_LEN], char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n;

	if (is_v4mapped(addr)) {
		n = format_ipv4(addr + 12, tmp);
	} else {
		n = format_ipv6(addr, tmp);
	}
	if (n >= len)
		return -1;
	memcpy(buf, tmp, n + 1);
	return n;
}

/*
 * By the server address: the client's may still be unspecified (::) when a
 * connect failed early, the server's is always the connect target or the
 * accepting socket's own address.
 */
const char *accesslog_family_name(const struct tcp_probe_info *r)
{
	return r->family == AF_INET || is_v4mapped(r->dst_addr) ? "ipv4" : "ipv6";
}

const char *accesslog_state_name(unsigned int state)
{
	/* the kernel's numbering, include/net/tcp_states.h */
	static const char *const names[] = {
		[1] = "ESTABLISHED", [2] = "SYN_SENT",   [3] = "SYN_RECV",
		[4] = "FIN_WAIT1",   [5] = "FIN_WAIT2",  [6] = "TIME_WAIT",
		[7] = "CLOSE",       [8] = "CLOSE_WAIT", [9] = "LAST_ACK",
		[10] = "LISTEN",     [11] = "CLOSING",   [12] = "NEW_SYN_RECV",
	};

	return state < ARRAY_SIZE(names) && names[state] ? names[state] : "UNKNOWN";
}

const char *accesslog_failure_name(unsigned int failure)
{
	static const char *const names[] = {
		[ML_FAIL_REFUSED] = "refused",
		[ML_FAIL_TIMEOUT] = "timeout",
		[ML_FAIL_RESET] = "reset",
		[ML_FAIL_UNREACHABLE] = "unreachable",
		[ML_FAIL_ABORTED] = "aborted",
		[ML_FAIL_OTHER] = "error",
	};

	return failure < ARRAY_SIZE(names) && names[failure] ? names[failure] : "unknown";
}

static const char *direction_name(unsigned int direction)
{
	switch (direction) {
	case ML_DIR_OUTBOUND:
		return "outbound";
	case ML_DIR_INBOUND:
		return "inbound";
	default:
		return "unknown";
	}
}

/* ,"key":"<time>" formatted in place */
static void jw_time(struct jw *w, const char *key_lit, size_t key_len, uint64_t real_ns)
{
	jw_raw(w, key_lit, key_len);
	if ((size_t)(w->end - w->p) < TIME_LEN + 2) {
		w->overflow = true;
		return;
	}
	*w->p++ = '"';
	accesslog_format_time(real_ns, w->p, TIME_LEN + 1); /* its NUL: under the '"' */
	w->p += TIME_LEN;
	*w->p++ = '"';
}

/* ,"key":"<address>" formatted in place */
static void jw_addr(struct jw *w, const char *key_lit, size_t key_len,
		    const uint8_t addr[ML_ADDR_LEN])
{
	jw_raw(w, key_lit, key_len);
	if ((size_t)(w->end - w->p) < INET6_ADDRSTRLEN + 2) {
		w->overflow = true;
		return;
	}
	*w->p++ = '"';
	w->p += is_v4mapped(addr) ? format_ipv4(addr + 12, w->p) : format_ipv6(addr, w->p);
	*w->p++ = '"';
}

#define jw_key(key) ",\"" key "\":", sizeof(",\"" key "\":") - 1

/* The line is NUL-terminated too; the returned length does not count it. */
static accesslog_reason_fn reason_namer;
static void *reason_ctx;

int accesslog_format(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
		     char *buf, size_t len)
{
	return accesslog_format_id(r, clk, NULL, buf, len);
}

/* ,"key":"value" when value is set */
#define jw_opt(w, key, s)			\
	do {					\
		if (s)				\
			jw_text(w, key, s);	\
	} while (0)

/* The workload keys of both ends, those that are known. */
static void jw_workloads(struct jw *w, const struct accesslog_identity *id)
{
	jw_opt(w, "src_workload", id->src_workload);
	jw_opt(w, "src_namespace", id->src_namespace);
	jw_opt(w, "dst_workload", id->dst_workload);
	jw_opt(w, "dst_namespace", id->dst_namespace);
	jw_opt(w, "dst_service", id->dst_service);
}

int accesslog_format_id(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
			const struct accesslog_identity *id, char *buf, size_t len)
{
	char rn[64];
	struct jw w;

	jw_init(&w, buf, len);
	jw_lit(&w, "{");
	jw_time(&w, "\"time\":", 7, mono_to_real(r->close_ns, clk->mono_to_real_ns));
	jw_time(&w, jw_key("start_time"), mono_to_real(r->start_ns, clk->mono_to_real_ns));
	jw_num(&w, "duration_ns", r->duration);
	jw_word(&w, "direction", direction_name(r->direction));
	jw_addr(&w, jw_key("src_addr"), r->src_addr);
	jw_num(&w, "src_port", r->src_port);
	jw_addr(&w, jw_key("dst_addr"), r->dst_addr);
	jw_num(&w, "dst_port", r->dst_port);
	jw_word(&w, "family", accesslog_family_name(r));
	if (r->conn_success) {
		jw_lit(&w, ",\"success\":true");
	} else {
		jw_lit(&w, ",\"success\":false");
		jw_word(&w, "failure", accesslog_failure_name(r->failure));
		/* the kernel's own word, where the hook that saw it had it */
		if (r->sk_err && strerrorname_np((int)r->sk_err))
			jw_word(&w, "error", strerrorname_np((int)r->sk_err));
	}
	jw_num(&w, "sent_bytes", r->sent_bytes);
	jw_num(&w, "received_bytes", r->received_bytes);
	jw_num(&w, "srtt_us", r->srtt_us);
	jw_num(&w, "min_rtt_us", r->rtt_min);
	jw_num(&w, "mss", r->mss_cache);
	jw_num(&w, "retransmits", r->total_retrans);
	jw_num(&w, "segs_in", r->segs_in);
	jw_num(&w, "segs_out", r->segs_out);
	jw_num(&w, "lost", r->lost_out);
	jw_word(&w, "state", accesslog_state_name(r->state));
	jw_num(&w, "sock_cookie", r->sock_cookie);
	if (r->flags & ML_F_DROPS) {
		jw_num(&w, "drops", r->drops);
		if (r->drops)
			jw_text(&w, "last_drop_reason",
				reason_namer ? reason_namer(reason_ctx, r->last_drop_reason, rn,
							    sizeof(rn))
					     : "UNKNOWN");
	}
	if (id) {
		jw_opt(&w, "cgroup", id->cgroup);
		jw_workloads(&w, id);
	}
	jw_lit(&w, "}\n");
	return jw_end(&w);
}

void accesslog_set_reason_namer(accesslog_reason_fn fn, void *ctx)
{
	reason_namer = fn;
	reason_ctx = ctx;
}

/* "SYN|ACK": the flags of TCP's header byte 13, lowest bit first */
static void tcp_flags_text(uint8_t flags, char *buf)
{
	static const char *const names[] = { "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR" };
	char *p = buf;

	*p = '\0';
	for (int i = 0; i < 8; i++) {
		if (!(flags & (1u << i)))
			continue;
		if (p != buf)
			*p++ = '|';
		strcpy(p, names[i]);
		p += strlen(names[i]);
	}
}

int accesslog_format_drop(const struct ml_flow_key *k, const struct ml_flow_val *v,
			  const struct accesslog_drop_names *names,
			  const struct accesslog_identity *id, const struct accesslog_clock *clk,
			  char *buf, size_t len)
{
	char t[TIME_LEN + 1], addr[INET6_ADDRSTRLEN], flags[40];
	const char *proto = ml_l4proto_name(k->l4proto);
	struct jw w;

	jw_init(&w, buf, len);
	jw_lit(&w, "{\"type\":\"drop\"");
	accesslog_format_time(mono_to_real(v->last_ns, clk->mono_to_real_ns), t, sizeof(t));
	jw_text(&w, "time", t);
	accesslog_format_time(mono_to_real(v->first_ns, clk->mono_to_real_ns), t, sizeof(t));
	jw_text(&w, "first_time", t);
	jw_text(&w, "reason", names->reason);
	jw_text(&w, "layer", names->layer);
	jw_text(&w, "module", names->module);
	jw_text(&w, "direction", k->direction == ML_DROP_EGRESS ? "egress" : "ingress");
	if (k->family) {
		jw_text(&w, "family", k->family == AF_INET ? "ipv4" : "ipv6");
		jw_text(&w, "protocol", proto);
		accesslog_format_addr(k->src_addr, addr, sizeof(addr));
		jw_text(&w, "src_addr", addr);
		accesslog_format_addr(k->dst_addr, addr, sizeof(addr));
		jw_text(&w, "dst_addr", addr);
		if (k->l4proto == 1 || k->l4proto == 58) {
			jw_num(&w, "icmp_type", k->src_port);
			jw_num(&w, "icmp_code", k->dst_port);
		} else if (strcmp(proto, "other")) {
			jw_num(&w, "src_port", k->src_port);
			jw_num(&w, "dst_port", k->dst_port);
		}
		if (k->l4proto == 6) {
			tcp_flags_text(v->tcp_flags, flags);
			jw_text(&w, "tcp_flags", flags);
		}
	}
	if (v->tcp_state)
		jw_text(&w, "tcp_state", accesslog_state_name(v->tcp_state));
	jw_num(&w, "packets", v->packets);
	jw_num(&w, "bytes", v->bytes);
	jw_num(&w, "ifindex", k->ifindex);
	jw_num(&w, "netns", k->netns);
	if (v->sock_cookie)
		jw_num(&w, "sock_cookie", v->sock_cookie);
	if (id)
		jw_workloads(&w, id);
	jw_lit(&w, "}\n");
	return jw_end(&w);
}

/*
 * Size-based rotation (accesslog_set_rotation). Rotated files are path.1
 * (newest) up to path.<max_files> (oldest); each becomes path.N.gz once
 * compressed. A file that could not be compressed keeps its plain name and
 * shifts like the others, so a failure never costs a line.
 *
 * Compression is incremental rather than done in one go at rotation time:
 * the daemon commits ringbuf records only after their lines are written
 * (daemon/main.c, drain()), so compressing a whole file of hundreds of MiB
 * inside one flush would stall the loop for seconds and let the ringbuf
 * fill. Instead every flush deflates a slice of path.1: at least
 * GZ_MIN_STEP bytes, and twice what it just wrote, so compression keeps
 * ahead of the log and is done long before the next rotation (which
 * finishes whatever is left first, as path.1 is about to move).
 */
#define GZ_CHUNK (64 * 1024)		/* read/deflate buffer size */
#define GZ_MIN_STEP (128 * 1024)	/* input compressed per flush, at least */
#define GZ_CLOSE_MAX (64ULL << 20)	/* close finishes a compression this close to done */
#define GZ_TMP ".gz.tmp"
#define ROTATE_RETRY_NS NSEC_PER_SEC	/* after a failed rotation */
#define REOPEN_RETRY_NS NSEC_PER_SEC	/* after a failed reopen */
#define REOPEN_SAY_NS (60 * NSEC_PER_SEC)	/* between messages while it fails */

struct accesslog_gz {
	int src;		/* path.1 open for reading; -1: nothing to compress */
	int dst;		/* path.1.gz.tmp; -1 when not open */
	uint64_t left;		/* bytes of src not read yet */
	bool zinit;		/* zs holds deflate state to end */
	bool eof;
	z_stream zs;
	unsigned char *in, *out; /* GZ_CHUNK each, allocated with the rotation */
};

struct accesslog_sink {
	int fd;
	char *path;	/* NULL for stdout: not ours to close or reopen */
	char *buf;	/* whole lines, BATCH_SIZE bytes */
	size_t used;
	bool torn;	/* the file ends inside the line that starts buf */
	uint64_t lost;
	int last_err;		/* -errno of the last batch not written */
	/* a reopen that failed (fd -1): retried at flushes, lines meanwhile lost */
	bool follow;		/* the path was a symlink at start: the operator's, followed */
	int reopen_err;		/* -errno of the last failed attempt; 0 = open */
	int64_t reopen_retry_ns, reopen_said_ns; /* CLOCK_MONOTONIC */
	uint64_t lost_at_fail;	/* s->lost when the reopen first failed */
	/* rotation; max_bytes 0 = off */
	uint64_t max_bytes;
	unsigned int max_files;
	uint64_t rotations, rotation_errors;
	bool rotate_failing, gz_failing; /* said once, until it works again */
	int64_t rotate_retry_ns;	 /* CLOCK_MONOTONIC: no new attempt before this */
	struct accesslog_gz gz;
};

/* mkdir -p of the directory holding path (its parents may be gone by a reopen) */
static void make_parent_dirs(const char *path)
{
	char dir[PATH_MAX];
	char *p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return;
	for (p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0750);
		*p = '/';
	}
}

/*
 * Opened non-blocking, so that a FIFO nobody reads fails at once (ENXIO)
 * rather than hanging start-up; writes block again after (a slow reader
 * holds the loop back, and the ringbuf absorbs that, as with a pipe on
 * stdout). No symlink is followed unless the path was one at start: one
 * planted at the path later must not redirect the log.
 */
static int open_log(const char *path, bool follow)
{
	int fd, fl;

	make_parent_dirs(path);
	fd = open(path,
		  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW),
		  0640);
	if (fd >= 0 && ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

struct accesslog_sink *accesslog_open(const char *dest)
{
	struct accesslog_sink *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = STDOUT_FILENO;
	s->gz.src = s->gz.dst = -1;
	s->buf = malloc(BATCH_SIZE);
	if (!s->buf)
		goto cleanup;
	if (strcmp(dest, "-")) {
		s->path = strdup(dest);
		if (!s->path)
			goto cleanup;
		struct stat st;

		s->follow = !lstat(dest, &st) && S_ISLNK(st.st_mode);
		s->fd = open_log(dest, s->follow);
		if (s->fd < 0)
			goto cleanup;
	}
	return s;

cleanup:
	err = errno;
	free(s->path);
	free(s->buf);
	free(s);
	errno = err;
	return NULL;
}

/* Lines (each ends in '\n') in buf[from, to). */
static uint64_t count_lines(const char *buf, size_t from, size_t to)
{
	const char *p = buf + from, *end = buf + to;
	uint64_t n = 0;

	while ((p = memchr(p, '\n', end - p))) {
		n++;
		p++;
	}
	return n;
}

/* "path.N" + suffix; accesslog_set_rotation() checked that it fits. */
static void slot_name(const struct accesslog_sink *s, char *buf, unsigned int n, const char *suffix)
{
	snprintf(buf, PATH_MAX, "%s.%u%s", s->path, n, suffix);
}

static int write_all(int fd, const void *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p = (const char *)p + w;
		n -= w;
	}
	return 0;
}

/* So that a rename survives a crash before the file it replaces is removed. */
static void fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		memcpy(dir, path, slash - path);
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Stop compressing: path.1 stays as it is, the partial .gz goes. */
static void gz_abort(struct accesslog_sink *s)
{
	struct accesslog_gz *g = &s->gz;
	char tmp[PATH_MAX];

	if (g->zinit)
		deflateEnd(&g->zs);
	g->zinit = false;
	if (g->dst >= 0)
		close(g->dst);
	if (g->src >= 0) {
		slot_name(s, tmp, 1, GZ_TMP);
		unlink(tmp);
		close(g->src);
	}
	g->src = g->dst = -1;
}

/* Counted, and said once per streak of failures; the plain file is kept. */
static void gz_fail(struct accesslog_sink *s, const char *what, int err)
{
	char name[PATH_MAX];

	slot_name(s, name, 1, "");
	s->rotation_errors++;
	if (!s->gz_failing)
		fprintf(stderr, "meshlens: access log: compressing %s: %s: %s (kept uncompressed)\n",
			name, what, strerror(err));
	s->gz_failing = true;
	gz_abort(s);
}

/* Begin compressing path.1 into path.1.gz.tmp, if there is a path.1. */
static void gz_start(struct accesslog_sink *s)
{
	struct accesslog_gz *g = &s->gz;
	char name[PATH_MAX];
	struct stat st;

	slot_name(s, name, 1, "");
	g->src = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (g->src < 0) {
		if (errno != ENOENT)
			gz_fail(s, "open", errno);
		return;
	}
	if (fstat(g->src, &st) || !S_ISREG(st.st_mode)) {
		close(g->src);
		g->src = -1;
		return;
	}
	slot_name(s, name, 1, GZ_TMP);
	g->dst = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (g->dst < 0) {
		gz_fail(s, "create", errno);
		return;
	}
	/* the same permissions as the log it holds (0640 unless changed) */
	if (fchmod(g->dst, st.st_mode & 07777)) {
		gz_fail(s, "chmod", errno);
		return;
	}
	memset(&g->zs, 0, sizeof(g->zs));
	/* windowBits 15 + 16: a gzip header and trailer around the deflate data */
	if (deflateInit2(&g->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		gz_fail(s, "deflateInit2", ENOMEM);
		return;
	}
	g->zinit = true;
	g->left = st.st_size;
	g->eof = false;
}

/*
 * path.1.gz.tmp is complete: make it durable, name it path.1.gz, and only
 * then remove path.1 -- after checking path.1 is still the file compressed
 * (someone else may have moved it meanwhile; then the copy goes instead).
 */
static void gz_finish(struct accesslog_sink *s)
{
	struct accesslog_gz *g = &s->gz;
	char plain[PATH_MAX], tmp[PATH_MAX], gz[PATH_MAX];
	const char *what;
	struct stat a, b;
	int err;

	slot_name(s, plain, 1, "");
	slot_name(s, tmp, 1, GZ_TMP);
	slot_name(s, gz, 1, ".gz");
	deflateEnd(&g->zs);
	g->zinit = false;
	what = "fsync";
	if (fsync(g->dst))
		goto fail;
	what = "close";
	err = close(g->dst);
	g->dst = -1;
	if (err)
		goto fail;
	if (fstat(g->src, &a) || lstat(plain, &b) || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		gz_abort(s);
		return;
	}
	what = "rename";
	if (rename(tmp, gz))
		goto fail;
	fsync_dir(s->path);
	what = "unlink";
	if (unlink(plain))
		goto fail;
	close(g->src);
	g->src = -1;
	s->gz_failing = false;
	return;
fail:
	gz_fail(s, what, errno);
}

/* Compress about budget more input bytes of path.1 (UINT64_MAX: all). */
static void gz_step(struct accesslog_sink *s, uint64_t budget)
{
	struct accesslog_gz *g = &s->gz;
	size_t want;
	ssize_t n;
	int ret, err;

	while (g->src >= 0) {
		if (!g->zs.avail_in && !g->eof) {
			/* with nothing left the read that finds the end costs nothing */
			if (!budget && g->left)
				return;
			want = budget && budget < GZ_CHUNK ? budget : GZ_CHUNK;
			n = read(g->src, g->in, want);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				gz_fail(s, "read", errno);
				return;
			}
			g->eof = !n;
			budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
			g->left -= (uint64_t)n < g->left ? (uint64_t)n : g->left;
			g->zs.next_in = g->in;
			g->zs.avail_in = (uInt)n;
		}
		g->zs.next_out = g->out;
		g->zs.avail_out = GZ_CHUNK;
		ret = deflate(&g->zs, g->eof ? Z_FINISH : Z_NO_FLUSH);
		if (ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR) {
			gz_fail(s, "deflate", EIO);
			return;
		}
		err = write_all(g->dst, g->out, GZ_CHUNK - g->zs.avail_out);
		if (err) {
			gz_fail(s, "write", -err);
			return;
		}
		if (ret == Z_STREAM_END) {
			gz_finish(s);
			return;
		}
	}
}

static bool slot_exists(const struct accesslog_sink *s, unsigned int n)
{
	char name[PATH_MAX];
	struct stat st;

	slot_name(s, name, n, "");
	if (!lstat(name, &st))
		return true;
	slot_name(s, name, n, ".gz");
	return !lstat(name, &st);
}

/* Both forms of slot n renamed to slot to, or removed when to is 0. */
static int slot_move(const struct accesslog_sink *s, unsigned int n, unsigned int to)
{
	static const char *const forms[] = { "", ".gz" };
	char from[PATH_MAX], dst[PATH_MAX];
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		slot_name(s, from, n, forms[i]);
		if (to) {
			slot_name(s, dst, to, forms[i]);
			r = rename(from, dst);
		} else {
			r = unlink(from);
		}
		if (r && errno != ENOENT)
			return -errno;
	}
	return 0;
}

/*
 * path -> path.1 and a fresh path. Older files shift up to the first free
 * slot (so a gap left by hand costs nothing); when every slot is taken the
 * oldest is deleted. On failure nothing has moved but the shifted files,
 * and the sink goes on writing to the file it has.
 */
static int rotate(struct accesslog_sink *s)
{
	unsigned int free_slot, n;
	char one[PATH_MAX];
	int fd, err;

	/* what is left of the previous file first: path.1 is about to move */
	gz_step(s, UINT64_MAX);
	for (free_slot = 1; free_slot <= s->max_files && slot_exists(s, free_slot); free_slot++)
		;
	if (free_slot > s->max_files) {
		free_slot = s->max_files;
		err = slot_move(s, free_slot, 0);
		if (err)
			return err;
	}
	for (n = free_slot; n > 1; n--) {
		err = slot_move(s, n - 1, n);
		if (err)
			return err;
	}
	slot_name(s, one, 1, "");
	if (rename(s->path, one))
		return -errno;
	fd = open_log(s->path, s->follow);
	if (fd < 0) {
		err = -errno;
		/* keep the file we write to under the name it had */
		rename(one, s->path);
		return err;
	}
	close(s->fd);
	s->fd = fd;
	s->rotations++;
	gz_start(s);
	return 0;
}

/*
 * Rotate before a batch of len bytes would take a non-empty file past the
 * limit. Not when the file was moved away by someone else (an external
 * logrotate) and not reopened yet: it is theirs, SIGHUP will follow.
 */
static void maybe_rotate(struct accesslog_sink *s, size_t len)
{
	struct stat st, at;
	int64_t now;
	int err;

	if (fstat(s->fd, &st) || !S_ISREG(st.st_mode) || !st.st_size ||
	    (uint64_t)st.st_size + len <= s->max_bytes)
		return;
	if (stat(s->path, &at) || at.st_dev != st.st_dev || at.st_ino != st.st_ino)
		return;
	now = clock_ns(CLOCK_MONOTONIC);
	if (now < s->rotate_retry_ns)
		return;
	err = rotate(s);
	if (!err) {
		s->rotate_failing = false;
		return;
	}
	s->rotation_errors++;
	s->rotate_retry_ns = now + ROTATE_RETRY_NS;
	if (!s->rotate_failing)
		fprintf(stderr, "meshlens: access log: rotating %s: %s (still writing to it)\n",
			s->path, strerror(-err));
	s->rotate_failing = true;
}

int accesslog_set_rotation(struct accesslog_sink *s, uint64_t max_bytes, unsigned int max_files)
{
	if (!s->path)
		return 0;
	if (!max_bytes) {
		s->max_bytes = 0;
		return 0;
	}
	if (!max_files)
		return -EINVAL;
	if (strlen(s->path) + sizeof(".4294967295" GZ_TMP) > PATH_MAX)
		return -ENAMETOOLONG;
	if (!s->gz.in) {
		s->gz.in = malloc(2 * GZ_CHUNK);
		if (!s->gz.in)
			return -ENOMEM;
		s->gz.out = s->gz.in + GZ_CHUNK;
	}
	s->max_bytes = max_bytes;
	s->max_files = max_files;
	/* a path.1 an earlier run stopped compressing (or could not) */
	if (s->gz.src < 0)
		gz_start(s);
	return 0;
}

uint64_t accesslog_rotations(const struct accesslog_sink *s)
{
	return s->rotations;
}

uint64_t accesslog_rotation_errors(const struct accesslog_sink *s)
{
	return s->rotation_errors;
}

/* Write buf[*done, to), advancing *done. 0 or -errno. */
static int write_batch(struct accesslog_sink *s, size_t *done, size_t to)
{
	ssize_t n;

	while (*done < to) {
		n = write(s->fd, s->buf + *done, to - *done);
		if (n >= 0)
			*done += n;
		else if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int reopen_now(struct accesslog_sink *s);

/* While the file cannot be reopened: a new attempt a second, a word a minute. */
static int retry_reopen(struct accesslog_sink *s)
{
	int64_t now = clock_ns(CLOCK_MONOTONIC);

	if (now >= s->reopen_retry_ns) {
		s->reopen_retry_ns = now + REOPEN_RETRY_NS;
		if (!reopen_now(s))
			return 0;
	}
	if (now >= s->reopen_said_ns) {
		s->reopen_said_ns = now + REOPEN_SAY_NS;
		fprintf(stderr,
			"meshlens: access log: cannot reopen %s: %s (%" PRIu64
			" lines lost so far; retrying every second)\n",
			s->path, accesslog_strerror(s->reopen_err), s->lost - s->lost_at_fail);
	}
	return s->reopen_err;
}

int accesslog_flush(struct accesslog_sink *s)
{
	size_t done = 0, keep = 0;
	int err = 0;

	if (s->reopen_err && s->used && retry_reopen(s)) {
		/* nowhere to write: the lines are lost, counted (no torn line
		 * is left: the failed reopen dropped its rest) */
		s->last_err = s->reopen_err;
		s->lost += count_lines(s->buf, 0, s->used);
		s->used = 0;
		s->torn = false;
		return s->reopen_err;
	}
	if (s->max_bytes && s->used) {
		/* the rest of a torn line belongs to the file holding its start */
		if (s->torn)
			err = write_batch(s, &done,
					  (const char *)memchr(s->buf, '\n', s->used) + 1 - s->buf);
		/* between batches only: a batch goes whole to one file */
		if (!err && done < s->used)
			maybe_rotate(s, s->used - done);
	}
	if (!err)
		err = write_batch(s, &done, s->used);
	if (s->gz.src >= 0)
		gz_step(s, GZ_MIN_STEP + 2 * (uint64_t)done);
	if (!err) {
		s->used = 0;
		s->torn = false;
		return 0;
	}
	/*
	 * Disk full, EIO, a closed pipe...: drop the batch and count it, so the
	 * daemon neither blocks nor grows. A line cut short keeps its rest, to
	 * be written first next time: a torn line left in the file would run
	 * into the next one and spoil it too.
	 */
	if (done ? s->buf[done - 1] != '\n' : s->torn) {
		const char *nl = memchr(s->buf + done, '\n', s->used - done);

		keep = nl + 1 - (s->buf + done);
	}
	s->torn = keep != 0;
	s->last_err = err;
	s->lost += count_lines(s->buf, done + keep, s->used);
	memmove(s->buf, s->buf + done, keep);
	s->used = keep;
	return err;
}

/*
 * 0 once the line is queued. A failed flush on the way has counted the
 * lines it dropped in accesslog_lost_lines(); retrying would duplicate.
 */
int accesslog_append(struct accesslog_sink *s, const char *line, size_t len)
{
	if (!len || len > ACCESSLOG_LINE_MAX || line[len - 1] != '\n')
		return -EINVAL;
	/* even after a failed flush at most a torn line's rest (< a line) is left */
	if (len > BATCH_SIZE - s->used)
		accesslog_flush(s);
	memcpy(s->buf + s->used, line, len);
	s->used += len;
	return 0;
}

/*
 * 0 once the new file is open. Lines queued so far were logged before the
 * rotation and go to the old file; what cannot be written there is counted
 * lost. If the path cannot be opened, keep logging to the old file.
 */
static int reopen_now(struct accesslog_sink *s)
{
	int fd = open_log(s->path, s->follow);

	if (fd < 0) {
		s->reopen_err = -errno;
		return s->reopen_err;
	}
	if (s->fd >= 0)
		close(s->fd);
	else
		fprintf(stderr, "meshlens: access log: reopened %s (%" PRIu64
				" lines lost while it could not be)\n",
			s->path, s->lost - s->lost_at_fail);
	s->fd = fd;
	s->reopen_err = 0;
	return 0;
}

const char *accesslog_strerror(int err)
{
	if (err == -ELOOP)
		return "a symbolic link is there (not followed)";
	if (err == -ENXIO)
		return "a FIFO no process reads";
	return strerror(-err);
}

/*
 * Lines queued so far were logged before the rotation and go to the old
 * file. If the path cannot be opened, nothing more goes to the old file
 * either (it is no longer the log: a deleted or moved file): lines are
 * counted lost while the reopen is retried at each flush, once a second.
 */
int accesslog_reopen(struct accesslog_sink *s)
{
	if (!s->path)
		return 0;
	accesslog_flush(s);
	/* the rest of a line torn in the old file must not start the new one */
	if (s->torn) {
		s->lost++;
		s->used = 0;
		s->torn = false;
	}
	if (!reopen_now(s))
		return 0;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
		s->lost_at_fail = s->lost;
	}
	s->reopen_retry_ns = clock_ns(CLOCK_MONOTONIC) + REOPEN_RETRY_NS;
	s->reopen_said_ns = s->reopen_retry_ns + REOPEN_SAY_NS; /* the caller says it now */
	return s->reopen_err;
}

uint64_t accesslog_lost_lines(const struct accesslog_sink *s)
{
	return s->lost;
}

int accesslog_last_error(const struct accesslog_sink *s)
{
	return s->last_err;
}

void accesslog_close(struct accesslog_sink *s)
{
	if (!s)
		return;
	accesslog_flush(s);
	/*
	 * Finish a compression that is nearly done; a big one is left for the
	 * next start (accesslog_set_rotation() resumes it) rather than holding
	 * up the exit. Either way path.1 keeps every line.
	 */
	if (s->gz.src >= 0 && s->gz.left <= GZ_CLOSE_MAX)
		gz_step(s, UINT64_MAX);
	gz_abort(s);
	if (s->path && s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->buf);
	free(s->gz.in);
	free(s);
}
