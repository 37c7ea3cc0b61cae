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
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

static void jw_u64(struct jw *w, uint64_t v)
{
	char tmp[20], *p = tmp + sizeof(tmp);

	do {
		*--p = '0' + v % 10;
		v /= 10;
	} while (v);
	jw_raw(w, p, tmp + sizeof(tmp) - p);
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
		/* copy the longest run that needs no escaping in one go */
		for (start = i; i < n && (step = plain_len(u + i, n - i)); i += step)
			;
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

/* Right-aligned decimal digits of v in p[0..n). */
static void put_digits(char *p, unsigned int v, int n)
{
	while (n--) {
		p[n] = '0' + v % 10;
		v /= 10;
	}
}

int accesslog_format_time(uint64_t real_ns, char *buf, size_t len)
{
	uint64_t secs = real_ns / NSEC_PER_SEC;
	unsigned int sod = secs % 86400, y, m, d;

	if (len < TIME_LEN + 1)
		return -1;
	/* u64 ns end in 2554: the year always has four digits */
	civil_from_days(secs / 86400, &y, &m, &d);
	memcpy(buf, "0000-00-00T00:00:00.000000Z", TIME_LEN + 1);
	put_digits(buf, y, 4);
	put_digits(buf + 5, m, 2);
	put_digits(buf + 8, d, 2);
	put_digits(buf + 11, sod / 3600, 2);
	put_digits(buf + 14, sod / 60 % 60, 2);
	put_digits(buf + 17, sod % 60, 2);
	put_digits(buf + 20, real_ns % NSEC_PER_SEC / 1000, 6);
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

int accesslog_format_addr(const uint8_t addr[ML_ADDR_LEN], char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n;

	if (is_v4mapped(addr)) {
		inet_ntop(AF_INET, addr + 12, tmp, sizeof(tmp));
		n = strlen(tmp);
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

/* The line is NUL-terminated too; the returned length does not count it. */
static accesslog_reason_fn reason_namer;
static void *reason_ctx;

int accesslog_format(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
		     char *buf, size_t len)
{
	char t[TIME_LEN + 1], addr[INET6_ADDRSTRLEN], rn[64];
	struct jw w;

	jw_init(&w, buf, len);
	accesslog_format_time(mono_to_real(r->close_ns, clk->mono_to_real_ns), t, sizeof(t));
	jw_lit(&w, "{\"time\":");
	jw_str(&w, t, TIME_LEN);
	accesslog_format_time(mono_to_real(r->start_ns, clk->mono_to_real_ns), t, sizeof(t));
	jw_text(&w, "start_time", t);
	jw_num(&w, "duration_ns", r->duration);
	jw_text(&w, "direction", direction_name(r->direction));
	accesslog_format_addr(r->src_addr, addr, sizeof(addr));
	jw_text(&w, "src_addr", addr);
	jw_num(&w, "src_port", r->src_port);
	accesslog_format_addr(r->dst_addr, addr, sizeof(addr));
	jw_text(&w, "dst_addr", addr);
	jw_num(&w, "dst_port", r->dst_port);
	jw_text(&w, "family", accesslog_family_name(r));
	if (r->conn_success) {
		jw_lit(&w, ",\"success\":true");
	} else {
		jw_lit(&w, ",\"success\":false");
		jw_text(&w, "failure", accesslog_failure_name(r->failure));
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
	jw_text(&w, "state", accesslog_state_name(r->state));
	jw_num(&w, "sock_cookie", r->sock_cookie);
	if (r->flags & ML_F_DROPS) {
		jw_num(&w, "drops", r->drops);
		if (r->drops)
			jw_text(&w, "last_drop_reason",
				reason_namer ? reason_namer(reason_ctx, r->last_drop_reason, rn,
							    sizeof(rn))
					     : "UNKNOWN");
	}
	jw_lit(&w, "}\n");
	return jw_end(&w);
}

void accesslog_set_reason_namer(accesslog_reason_fn fn, void *ctx)
{
	reason_namer = fn;
	reason_ctx = ctx;
}

static const char *l4_name(unsigned int proto)
{
	switch (proto) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 1:
		return "icmp";
	case 58:
		return "icmpv6";
	case 132:
		return "sctp";
	default:
		return "other";
	}
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
			  const struct accesslog_clock *clk, char *buf, size_t len)
{
	char t[TIME_LEN + 1], addr[INET6_ADDRSTRLEN], flags[40];
	const char *proto = l4_name(k->l4proto);
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
	jw_lit(&w, "}\n");
	return jw_end(&w);
}

struct accesslog_sink {
	int fd;
	char *path;	/* NULL for stdout: not ours to close or reopen */
	char *buf;	/* whole lines, BATCH_SIZE bytes */
	size_t used;
	bool torn;	/* the file ends inside the line that starts buf */
	uint64_t lost;
};

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

struct accesslog_sink *accesslog_open(const char *dest)
{
	struct accesslog_sink *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->fd = STDOUT_FILENO;
	s->buf = malloc(BATCH_SIZE);
	if (!s->buf)
		goto cleanup;
	if (strcmp(dest, "-")) {
		s->path = strdup(dest);
		if (!s->path)
			goto cleanup;
		s->fd = open_log(dest);
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

int accesslog_flush(struct accesslog_sink *s)
{
	size_t done = 0, keep = 0;
	ssize_t n;
	int err = 0;

	while (done < s->used) {
		n = write(s->fd, s->buf + done, s->used - done);
		if (n >= 0) {
			done += n;
		} else if (errno != EINTR) {
			err = -errno;
			break;
		}
	}
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
int accesslog_reopen(struct accesslog_sink *s)
{
	int fd;

	if (!s->path)
		return 0;
	accesslog_flush(s);
	fd = open_log(s->path);
	if (fd < 0)
		return -errno;
	/* the rest of a line torn in the old file must not start the new one */
	if (s->torn) {
		s->lost++;
		s->used = 0;
		s->torn = false;
	}
	close(s->fd);
	s->fd = fd;
	return 0;
}

uint64_t accesslog_lost_lines(const struct accesslog_sink *s)
{
	return s->lost;
}

void accesslog_close(struct accesslog_sink *s)
{
	if (!s)
		return;
	accesslog_flush(s);
	if (s->path)
		close(s->fd);
	free(s->path);
	free(s->buf);
	free(s);
}
