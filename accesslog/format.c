// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * accesslog/format - tcp_probe_info and drop flows -> one JSON line each
 * (format.h), and the clock that dates them.
 *
 * Lines are produced by a small hand-written JSON writer, not cJSON: the
 * per-record path must not allocate (DESIGN.md, data flow) and cJSON builds
 * a tree of heap nodes per object. The writer appends into the caller's
 * buffer, never past its end, and remembers whether anything did not fit.
 * Every string value goes through the escaper, so keys that later carry
 * user-supplied text (workload names) cannot break the line.
 *
 * The writer is static, in the one file with its callers: a line is some
 * thirty jw_* calls, and the compiler inlines them only within a
 * translation unit. The only per-record calls out of this file are the
 * address text and the state name (lib/names.c), which were calls
 * already or nearly free: +0.7% instructions per record when the module
 * was split (callgrind, bench_pipeline --records 65536).
 */
#define _GNU_SOURCE /* strerrorname_np */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "../lib/names.h"
#include "../lib/util.h"
#include "format.h"

#define NSEC_PER_SEC 1000000000ULL

#define TIME_LEN 27			/* "2026-11-21T22:15:01.123456Z" */


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

	/* one digit, most often 0: a third of a line's numbers (the TCP
	 * health counters of a connection that lost nothing) */
	if (v < 10 && w->p < w->end) {
		*w->p++ = (char)('0' + v);
		return;
	}
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

/*
 * By the server address: the client's may still be unspecified (::) when a
 * connect failed early, the server's is always the connect target or the
 * accepting socket's own address.
 */
const char *accesslog_family_name(const struct tcp_probe_info *r)
{
	return r->family == AF_INET || ml_addr_is_v4mapped(r->dst_addr) ? "ipv4" : "ipv6";
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
	w->p += ml_addr_text(addr, w->p);
	*w->p++ = '"';
}

#define jw_key(key) ",\"" key "\":", sizeof(",\"" key "\":") - 1

/* The line is NUL-terminated too; the returned length does not count it. */
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

int accesslog_end_keys(bool dst, const char *workload, const char *ns, const char *service,
		       char *buf, size_t len)
{
	struct jw w;

	jw_init(&w, buf, len);
	if (dst) {
		jw_opt(&w, "dst_workload", workload);
		jw_opt(&w, "dst_namespace", ns);
		jw_opt(&w, "dst_service", service);
	} else {
		jw_opt(&w, "src_workload", workload);
		jw_opt(&w, "src_namespace", ns);
	}
	return jw_end(&w);
}

int accesslog_cgroup_key(const char *path, char *buf, size_t len)
{
	struct jw w;

	jw_init(&w, buf, len);
	jw_text(&w, "cgroup", path);
	return jw_end(&w);
}

/* keys rendered before, pasted */
static void jw_keys(struct jw *w, const struct accesslog_keys *k)
{
	if (k->len)
		jw_raw(w, k->text, k->len);
}

/* The workload keys of both ends, those that are known. */
static void jw_workloads(struct jw *w, const struct accesslog_identity *id)
{
	jw_keys(w, &id->src);
	jw_keys(w, &id->dst);
}

/* TCP health: the kernel's own counters, tcp_info's names (DESIGN.md) */
static void jw_health(struct jw *w, const struct tcp_probe_info *r)
{
	jw_num(w, "bytes_retrans", r->bytes_retrans);
	jw_num(w, "dsack_dups", r->dsack_dups);
	jw_num(w, "reord_seen", r->reord_seen);
	jw_num(w, "rcv_ooopack", r->rcv_ooopack);
	jw_num(w, "delivered_ce", r->delivered_ce);
	jw_num(w, "snd_cwnd", r->snd_cwnd);
	if (r->snd_ssthresh < ML_INFINITE_SSTHRESH) /* never set: left out, as ss does */
		jw_num(w, "snd_ssthresh", r->snd_ssthresh);
	jw_num(w, "delivery_rate", r->delivery_rate);
	if (r->flags & ML_F_RTO) {
		jw_num(w, "total_rto", r->total_rto);
		jw_num(w, "total_rto_recoveries", r->total_rto_recoveries);
		jw_num(w, "total_rto_time_ms", r->total_rto_time);
	}
}

/* A close's (iv NULL) or an interim line's (iv: the interval's counts). */
static int format_conn(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
		       const struct accesslog_identity *id, const struct accesslog_interval *iv,
		       char *buf, size_t len)
{
	struct jw w;

	jw_init(&w, buf, len);
	if (iv) {
		jw_lit(&w, "{\"type\":\"interim\",");
		jw_time(&w, "\"time\":", 7, mono_to_real(r->close_ns, clk->mono_to_real_ns));
	} else {
		jw_lit(&w, "{");
		jw_time(&w, "\"time\":", 7, mono_to_real(r->close_ns, clk->mono_to_real_ns));
	}
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
	if (r->flags & ML_F_HANDSHAKE)
		jw_num(&w, "handshake_us", r->handshake_us);
	jw_num(&w, "sent_bytes", r->sent_bytes);
	jw_num(&w, "received_bytes", r->received_bytes);
	jw_num(&w, "srtt_us", r->srtt_us);
	jw_num(&w, "min_rtt_us", r->rtt_min);
	jw_num(&w, "mss", r->mss_cache);
	jw_num(&w, "retransmits", r->total_retrans);
	if (iv) {
		jw_num(&w, "interval_sent_bytes", iv->sent_bytes);
		jw_num(&w, "interval_received_bytes", iv->received_bytes);
		jw_num(&w, "interval_retransmits", iv->retransmits);
	}
	jw_num(&w, "segs_in", r->segs_in);
	jw_num(&w, "segs_out", r->segs_out);
	jw_num(&w, "lost", r->lost_out);
	if (r->flags & ML_F_HEALTH)
		jw_health(&w, r);
	jw_word(&w, "state", ml_tcp_state_name(r->state));
	jw_num(&w, "sock_cookie", r->sock_cookie);
	if (r->flags & ML_F_DROPS) {
		jw_num(&w, "drops", r->drops);
		if (r->drops)
			jw_text(&w, "last_drop_reason",
				id && id->drop_reason ? id->drop_reason : "UNKNOWN");
	}
	if (id) {
		jw_keys(&w, &id->cgroup);
		jw_workloads(&w, id);
	}
	jw_lit(&w, "}\n");
	return jw_end(&w);
}

int accesslog_format_id(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
			const struct accesslog_identity *id, char *buf, size_t len)
{
	return format_conn(r, clk, id, NULL, buf, len);
}

int accesslog_format_interim(const struct tcp_probe_info *r, const struct accesslog_interval *iv,
			     const struct accesslog_clock *clk, const struct accesslog_identity *id,
			     char *buf, size_t len)
{
	return format_conn(r, clk, id, iv, buf, len);
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
	const char *proto = ml_proto_name(k->l4proto);
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
		ml_format_addr(k->src_addr, addr, sizeof(addr));
		jw_text(&w, "src_addr", addr);
		ml_format_addr(k->dst_addr, addr, sizeof(addr));
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
		jw_text(&w, "tcp_state", ml_tcp_state_name(v->tcp_state));
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
