// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: accesslog/format.c, the hand-written JSON writer (and
 * lib/names.c, the addresses and states it writes).
 *
 * Input layout (zero-padded when short):
 *
 *   [  0, 200)  struct tcp_probe_info        -> accesslog_format()
 *   [200, 208)  int64 mono_to_real_ns        (struct accesslog_clock)
 *   [208, 260)  struct ml_flow_key           -> accesslog_format_drop()
 *   [260, 308)  struct ml_flow_val
 *   [308, ...)  NUL-separated: drop reason, layer, module (raw bytes, at
 *               most 63 each), then the name the caller gives for
 *               last_drop_reason (mapped onto [A-Z0-9_], like a BTF name;
 *               empty = none, "UNKNOWN"; in the identity, or alone in one
 *               when there is none), then the workload identity for
 *               accesslog_format_id():
 *               cgroup, src_workload, src_namespace, dst_workload,
 *               dst_namespace, dst_service (raw bytes, at most 63 each;
 *               empty = NULL; no pieces at all = no identity), also given
 *               to accesslog_format_drop() (which leaves cgroup out)
 *
 * and accesslog_json_string() runs on the whole raw input.
 *
 * Every line must parse with cJSON and carry exactly the record's values:
 * numbers are compared both as cJSON's double (against the u64 rounded the
 * same way) and as the exact digits in the text, so values above 2^53 are
 * checked too; times against gmtime_r(), addresses against inet_ntop(),
 * strings against an independent UTF-8 validator. Each formatter must also
 * fit a heap buffer of exactly its length + 1, and refuse (-1, no write past
 * the end) one byte less.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "accesslog/accesslog.h"
#include "lib/names.h"

#define REC_OFF 0
#define CLK_OFF (REC_OFF + sizeof(struct tcp_probe_info))
#define KEY_OFF (CLK_OFF + sizeof(int64_t))
#define VAL_OFF (KEY_OFF + sizeof(struct ml_flow_key))
#define TAIL_OFF (VAL_OFF + sizeof(struct ml_flow_val))
#define NAME_MAX_LEN 63

_Static_assert(TAIL_OFF == 308, "input layout documented above");

static const char *cur_line; /* for die() */

static __attribute__((noreturn)) void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_accesslog: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	if (cur_line)
		fprintf(stderr, "line: %s\n", cur_line);
	abort();
}

/* ---- references, written independently of format.c and names.c ---- */

static bool in_list(const char *key, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(key, list[i]))
			return true;
	return false;
}

/* Length of a well-formed UTF-8 sequence at s (by code point value), else 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp, min;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, l;

	while (i < n) {
		l = utf8_seq(u + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

/*
 * What a JSON parser must read back from accesslog's string for s[0..n):
 * each byte that does not start a well-formed sequence becomes U+FFFD; the
 * text ends at the first NUL (cJSON's strings are C strings). out needs 3n+1.
 */
static size_t expected_string(const char *s, size_t n, char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, l;

	while (i < n && u[i]) {
		l = utf8_seq(u + i, n - i);
		if (l) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	return o;
}

/* real = mono + off, clamped to [0, 2^64 - 1], as RFC 3339 via gmtime_r(). */
static void expected_time(uint64_t mono, int64_t off, char *out, size_t len)
{
	__int128 t = (__int128)mono + off;
	uint64_t real = t < 0 ? 0 : t > (__int128)UINT64_MAX ? UINT64_MAX : (uint64_t)t;
	time_t secs = (time_t)(real / 1000000000ULL);
	struct tm tm;

	if (!gmtime_r(&secs, &tm))
		die("gmtime_r", NULL);
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned int)(real % 1000000000ULL / 1000));
}

static bool v4mapped(const uint8_t a[ML_ADDR_LEN])
{
	for (int i = 0; i < 10; i++)
		if (a[i])
			return false;
	return a[10] == 0xff && a[11] == 0xff;
}

/* got is the address text accesslog wrote for a. */
static void check_addr(const uint8_t a[ML_ADDR_LEN], const char *got)
{
	char want[INET6_ADDRSTRLEN];
	uint8_t back[ML_ADDR_LEN];

	if (v4mapped(a)) {
		inet_ntop(AF_INET, a + 12, want, sizeof(want));
		if (strcmp(want, got))
			die("IPv4 address differs from inet_ntop()", want);
		return;
	}
	/* glibc agrees with RFC 5952 except for its mixed ::a.b.c.d notation */
	inet_ntop(AF_INET6, a, want, sizeof(want));
	if (!strchr(want, '.') && strcmp(want, got))
		die("IPv6 address differs from inet_ntop()", want);
	if (strchr(got, '.') || inet_pton(AF_INET6, got, back) != 1 || memcmp(back, a, 16))
		die("IPv6 address does not read back", got);
}

/* ---- line checks ---- */

/* The exact integer after "key": in the text (works above 2^53). */
static uint64_t raw_u64(const char *line, const char *key)
{
	char pat[64];
	const char *p;
	char *end;
	uint64_t v;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	/* '"' inside a string value is always escaped, so pat only matches a key */
	p = strstr(line, pat);
	if (!p || (p[-1] != '{' && p[-1] != ','))
		die("key not found in the text", key);
	p += strlen(pat);
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		die("not a plain JSON integer", key);
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno || (*end != ',' && *end != '}'))
		die("integer out of range or followed by junk", key);
	return v;
}

static void want_num(const char *line, const cJSON *o, const char *key, uint64_t v)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(item))
		die("missing or not a number", key);
	/* both sides rounded to nearest: strtod() in cJSON, the conversion here */
	if (item->valuedouble != (double)v)
		die("cJSON reads a different number", key);
	if (raw_u64(line, key) != v)
		die("the digits differ from the record", key);
}

static void want_str(const cJSON *o, const char *key, const char *v)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(item))
		die("missing or not a string", key);
	if (strcmp(item->valuestring, v))
		die("string differs", key);
}

/* Keys in order (no duplicates, nothing else), NULL-terminated list. */
static void want_keys(const cJSON *o, const char *const *keys)
{
	const cJSON *item;
	int i = 0;

	cJSON_ArrayForEach(item, o) {
		if (!keys[i])
			die("unexpected extra key", item->string);
		if (strcmp(item->string, keys[i]))
			die("key out of place, expected", keys[i]);
		i++;
	}
	if (keys[i])
		die("key missing", keys[i]);
}

/* A line: one JSON object, '\n'-terminated, no other newline, valid UTF-8. */
static cJSON *parse_line(const char *line, int n)
{
	const char *end = NULL;
	cJSON *o;

	cur_line = line;
	if (n <= 2 || (size_t)n != strlen(line) || line[n - 1] != '\n' ||
	    memchr(line, '\n', n - 1))
		die("not one '\\n'-terminated line", NULL);
	if (!utf8_valid(line, n))
		die("line is not valid UTF-8", NULL);
	for (int i = 0; i < n - 1; i++)
		if ((unsigned char)line[i] < 0x20)
			die("raw control character in the line", NULL);
	o = cJSON_ParseWithOpts(line, &end, 1);
	if (!cJSON_IsObject(o))
		die("line does not parse as a JSON object", NULL);
	return o;
}

/*
 * fmt into a heap buffer of exactly n + 1 bytes (must give the same text)
 * and of n bytes (must refuse); ASan catches a write past either end.
 */
typedef int (*fmt_fn)(const void *ctx, char *buf, size_t len);

static void check_exact_fit(fmt_fn fmt, const void *ctx, const char *text, int n)
{
	char *b = malloc(n + 1);

	if (!b)
		return;
	if (fmt(ctx, b, n + 1) != n || memcmp(b, text, n + 1))
		die("different result with a buffer of exactly length + 1", NULL);
	if (fmt(ctx, b, n) != -1)
		die("a buffer one byte short was not refused", NULL);
	free(b);
	b = malloc(1);
	if (b && fmt(ctx, b, 0) != -1)
		die("a zero-length buffer was not refused", NULL);
	free(b);
}

/* ---- accesslog_format() ---- */

static void want_name(const cJSON *o, const char *key, const char *raw);

static char namer_text[NAME_MAX_LEN + 1];

struct rec_ctx {
	const struct tcp_probe_info *r;
	const struct accesslog_clock *clk;
	const struct accesslog_identity *id;
};

static int fmt_rec(const void *ctx, char *buf, size_t len)
{
	const struct rec_ctx *c = ctx;

	return accesslog_format_id(c->r, c->clk, c->id, buf, len);
}

#define N_ID 6
static const char *const id_keys[N_ID] = {
	"cgroup", "src_workload", "src_namespace", "dst_workload", "dst_namespace", "dst_service",
};

/*
 * An identity as the daemon gives it (keys rendered once by
 * accesslog_cgroup_key() and accesslog_end_keys(), as the metadata load
 * does) beside the raw names it was rendered from, which the checks want
 * to find again in the line.
 */
#define KEYS_MAX (3 * (16 + 6 * NAME_MAX_LEN)) /* three keys of six bytes a name byte */
struct fz_id {
	struct accesslog_identity id;
	const char *v[N_ID]; /* id_keys' raw values; NULL: none */
	char text[3][KEYS_MAX];
};

static struct accesslog_keys rendered(int n, const char *text)
{
	if (n < 0) /* cannot be: KEYS_MAX is the most they take */
		abort();
	return (struct accesslog_keys){ text, (size_t)n };
}

static void fz_id_init(struct fz_id *f, const char *const v[N_ID], const char *drop_reason)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->v, v, sizeof(f->v));
	f->id.drop_reason = drop_reason;
	if (v[0])
		f->id.cgroup = rendered(accesslog_cgroup_key(v[0], f->text[0], KEYS_MAX),
					f->text[0]);
	f->id.src = rendered(accesslog_end_keys(false, v[1], v[2], NULL, f->text[1], KEYS_MAX),
			     f->text[1]);
	f->id.dst = rendered(accesslog_end_keys(true, v[3], v[4], v[5], f->text[2], KEYS_MAX),
			     f->text[2]);
}

static const char *id_value(const struct fz_id *f, int i)
{
	return f->v[i];
}

/*
 * The record line without identity must fit ACCESSLOG_LINE_MAX; with
 * identity (names from a user's metadata file: any bytes, any length) it is
 * checked in a larger buffer, and in ACCESSLOG_LINE_MAX it must either be
 * the same line or a clean -1 (the daemon then logs the record without
 * names).
 */
static void check_record(const struct tcp_probe_info *r, const struct accesslog_clock *clk,
			 const struct fz_id *fid)
{
	const struct accesslog_identity *id = &fid->id;
	static const char *const keys_all[] = {
		"time", "start_time", "duration_ns", "direction", "src_addr", "src_port",
		"dst_addr", "dst_port", "family", "success", "failure", "error", "handshake_us",
		"sent_bytes", "received_bytes", "srtt_us", "min_rtt_us", "mss", "retransmits", "segs_in",
		"segs_out", "lost", "bytes_retrans", "dsack_dups", "reord_seen", "rcv_ooopack",
		"delivered_ce", "snd_cwnd", "snd_ssthresh", "delivery_rate", "total_rto",
		"total_rto_recoveries", "total_rto_time_ms", "state", "sock_cookie", "drops",
		"last_drop_reason", NULL,
	};
	static const char *const health[] = { "bytes_retrans", "dsack_dups", "reord_seen",
					      "rcv_ooopack", "delivered_ce", "snd_cwnd",
					      "snd_ssthresh", "delivery_rate" };
	static const char *const rto[] = { "total_rto", "total_rto_recoveries",
					   "total_rto_time_ms" };
	const size_t big = 8 * ACCESSLOG_LINE_MAX;
	const char *keys[64], *dir;
	char *line = malloc(big), *plain = malloc(ACCESSLOG_LINE_MAX);
	char *fit = malloc(ACCESSLOG_LINE_MAX), t[64];
	struct rec_ctx ctx = { r, clk, id };
	const cJSON *item;
	cJSON *o;
	int n, m, k = 0;

	if (!line || !plain || !fit)
		goto out;
	m = accesslog_format(r, clk, plain, ACCESSLOG_LINE_MAX);
	if (m <= 0)
		die("accesslog_format() did not fit ACCESSLOG_LINE_MAX", NULL);
	if (accesslog_format_id(r, clk, NULL, fit, ACCESSLOG_LINE_MAX) != m || strcmp(fit, plain))
		die("accesslog_format_id() without identity differs from accesslog_format()", NULL);
	n = accesslog_format_id(r, clk, id, line, big);
	if (n <= 0)
		die("accesslog_format_id() did not fit 8 x ACCESSLOG_LINE_MAX", NULL);
	m = accesslog_format_id(r, clk, id, fit, ACCESSLOG_LINE_MAX);
	if (n < ACCESSLOG_LINE_MAX ? m != n || strcmp(fit, line) : m != -1)
		die("with ACCESSLOG_LINE_MAX: neither the same line nor a clean -1", NULL);
	o = parse_line(line, n);

	for (int i = 0; keys_all[i]; i++) {
		const char *key = keys_all[i];

		if (!strcmp(key, "failure") && r->conn_success)
			continue;
		if (!strcmp(key, "error") && (r->conn_success || !r->sk_err ||
					      !strerrorname_np((int)r->sk_err)))
			continue;
		if (!strcmp(key, "handshake_us") && !(r->flags & ML_F_HANDSHAKE))
			continue;
		if (in_list(key, health, sizeof(health) / sizeof(health[0])) &&
		    (!(r->flags & ML_F_HEALTH) ||
		     (!strcmp(key, "snd_ssthresh") && r->snd_ssthresh >= ML_INFINITE_SSTHRESH)))
			continue;
		if (in_list(key, rto, sizeof(rto) / sizeof(rto[0])) &&
		    (r->flags & (ML_F_HEALTH | ML_F_RTO)) != (ML_F_HEALTH | ML_F_RTO))
			continue;
		if (!strcmp(key, "drops") && !(r->flags & ML_F_DROPS))
			continue;
		if (!strcmp(key, "last_drop_reason") && (!(r->flags & ML_F_DROPS) || !r->drops))
			continue;
		keys[k++] = key;
	}
	for (int i = 0; i < N_ID; i++)
		if (id_value(fid, i))
			keys[k++] = id_keys[i];
	keys[k] = NULL;
	want_keys(o, keys);

	expected_time(r->close_ns, clk->mono_to_real_ns, t, sizeof(t));
	want_str(o, "time", t);
	expected_time(r->start_ns, clk->mono_to_real_ns, t, sizeof(t));
	want_str(o, "start_time", t);
	want_num(line, o, "duration_ns", r->duration);
	dir = r->direction == ML_DIR_OUTBOUND ? "outbound"
	      : r->direction == ML_DIR_INBOUND ? "inbound" : "unknown";
	want_str(o, "direction", dir);
	item = cJSON_GetObjectItemCaseSensitive(o, "src_addr");
	if (!cJSON_IsString(item))
		die("src_addr", NULL);
	check_addr(r->src_addr, item->valuestring);
	want_num(line, o, "src_port", r->src_port);
	item = cJSON_GetObjectItemCaseSensitive(o, "dst_addr");
	if (!cJSON_IsString(item))
		die("dst_addr", NULL);
	check_addr(r->dst_addr, item->valuestring);
	want_num(line, o, "dst_port", r->dst_port);
	want_str(o, "family", accesslog_family_name(r));
	want_str(o, "family", r->family == AF_INET || v4mapped(r->dst_addr) ? "ipv4" : "ipv6");
	item = cJSON_GetObjectItemCaseSensitive(o, "success");
	if (r->conn_success ? !cJSON_IsTrue(item) : !cJSON_IsFalse(item))
		die("success", NULL);
	if (!r->conn_success)
		want_str(o, "failure", accesslog_failure_name(r->failure));
	if (!r->conn_success && r->sk_err && strerrorname_np((int)r->sk_err))
		want_str(o, "error", strerrorname_np((int)r->sk_err));
	if (r->flags & ML_F_HANDSHAKE)
		want_num(line, o, "handshake_us", r->handshake_us);
	want_num(line, o, "sent_bytes", r->sent_bytes);
	want_num(line, o, "received_bytes", r->received_bytes);
	want_num(line, o, "srtt_us", r->srtt_us);
	want_num(line, o, "min_rtt_us", r->rtt_min);
	want_num(line, o, "mss", r->mss_cache);
	want_num(line, o, "retransmits", r->total_retrans);
	want_num(line, o, "segs_in", r->segs_in);
	want_num(line, o, "segs_out", r->segs_out);
	want_num(line, o, "lost", r->lost_out);
	if (r->flags & ML_F_HEALTH) {
		want_num(line, o, "bytes_retrans", r->bytes_retrans);
		want_num(line, o, "dsack_dups", r->dsack_dups);
		want_num(line, o, "reord_seen", r->reord_seen);
		want_num(line, o, "rcv_ooopack", r->rcv_ooopack);
		want_num(line, o, "delivered_ce", r->delivered_ce);
		want_num(line, o, "snd_cwnd", r->snd_cwnd);
		if (r->snd_ssthresh < ML_INFINITE_SSTHRESH)
			want_num(line, o, "snd_ssthresh", r->snd_ssthresh);
		want_num(line, o, "delivery_rate", r->delivery_rate);
		if (r->flags & ML_F_RTO) {
			want_num(line, o, "total_rto", r->total_rto);
			want_num(line, o, "total_rto_recoveries", r->total_rto_recoveries);
			want_num(line, o, "total_rto_time_ms", r->total_rto_time);
		}
	}
	want_str(o, "state", ml_tcp_state_name(r->state));
	want_num(line, o, "sock_cookie", r->sock_cookie);
	if (r->flags & ML_F_DROPS) {
		want_num(line, o, "drops", r->drops);
		if (r->drops)
			want_str(o, "last_drop_reason",
				 id && id->drop_reason ? id->drop_reason : "UNKNOWN");
	}
	for (int i = 0; i < N_ID; i++)
		if (id_value(fid, i))
			want_name(o, id_keys[i], id_value(fid, i));
	cJSON_Delete(o);
	check_exact_fit(fmt_rec, &ctx, line, n);
	cur_line = NULL;
out:
	free(fit);
	free(plain);
	free(line);
}

/* ---- accesslog_format_drop() ---- */

struct drop_ctx {
	const struct ml_flow_key *k;
	const struct ml_flow_val *v;
	const struct accesslog_drop_names *names;
	const struct accesslog_identity *id;
	const struct accesslog_clock *clk;
};

static int fmt_drop(const void *ctx, char *buf, size_t len)
{
	const struct drop_ctx *c = ctx;

	return accesslog_format_drop(c->k, c->v, c->names, c->id, c->clk, buf, len);
}

static bool plain_ascii(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

static void want_name(const cJSON *o, const char *key, const char *raw)
{
	char *want = malloc(3 * strlen(raw) + 1);

	if (!want)
		return;
	expected_string(raw, strlen(raw), want);
	want_str(o, key, want);
	free(want);
}

static void check_drop(const struct ml_flow_key *k, const struct ml_flow_val *v,
		       const struct accesslog_drop_names *names,
		       const struct fz_id *fid, const struct accesslog_clock *clk)
{
	const struct accesslog_identity *id = fid ? &fid->id : NULL;
	static const char *const flag_names[] = { "FIN", "SYN", "RST", "PSH",
						  "ACK", "URG", "ECE", "CWR" };
	struct drop_ctx ctx = { k, v, names, id, clk };
	bool plain = plain_ascii(names->reason) && plain_ascii(names->layer) &&
		     plain_ascii(names->module);
	const char *keys[32], *proto;
	char *line, t[64], flags[64] = "";
	const cJSON *item;
	size_t cap;
	cJSON *o;
	int n, nk = 0;

	/* names as the daemon has them (BTF identifiers) must fit a daemon-sized
	 * line; workload names (any bytes) may not: the daemon then writes the
	 * line without them */
	cap = plain && !id ? ACCESSLOG_LINE_MAX : 8 * ACCESSLOG_LINE_MAX;
	line = malloc(cap);
	if (!line)
		return;
	n = accesslog_format_drop(k, v, names, id, clk, line, cap);
	if (n <= 0)
		die(cap == ACCESSLOG_LINE_MAX ? "drop line did not fit ACCESSLOG_LINE_MAX"
					      : "drop line did not fit",
		    NULL);
	o = parse_line(line, n);

	switch (k->l4proto) {
	case 6: proto = "tcp"; break;
	case 17: proto = "udp"; break;
	case 1: proto = "icmp"; break;
	case 58: proto = "icmpv6"; break;
	case 132: proto = "sctp"; break;
	default: proto = "other"; break;
	}
	keys[nk++] = "type";
	keys[nk++] = "time";
	keys[nk++] = "first_time";
	keys[nk++] = "reason";
	keys[nk++] = "layer";
	keys[nk++] = "module";
	keys[nk++] = "direction";
	if (k->family) {
		keys[nk++] = "family";
		keys[nk++] = "protocol";
		keys[nk++] = "src_addr";
		keys[nk++] = "dst_addr";
		if (k->l4proto == 1 || k->l4proto == 58) {
			keys[nk++] = "icmp_type";
			keys[nk++] = "icmp_code";
		} else if (strcmp(proto, "other")) {
			keys[nk++] = "src_port";
			keys[nk++] = "dst_port";
		}
		if (k->l4proto == 6)
			keys[nk++] = "tcp_flags";
	}
	if (v->tcp_state)
		keys[nk++] = "tcp_state";
	keys[nk++] = "packets";
	keys[nk++] = "bytes";
	keys[nk++] = "ifindex";
	keys[nk++] = "netns";
	if (v->sock_cookie)
		keys[nk++] = "sock_cookie";
	for (int i = 1; fid && i < N_ID; i++) /* every identity key but cgroup */
		if (id_value(fid, i))
			keys[nk++] = id_keys[i];
	keys[nk] = NULL;
	want_keys(o, keys);

	want_str(o, "type", "drop");
	expected_time(v->last_ns, clk->mono_to_real_ns, t, sizeof(t));
	want_str(o, "time", t);
	expected_time(v->first_ns, clk->mono_to_real_ns, t, sizeof(t));
	want_str(o, "first_time", t);
	want_name(o, "reason", names->reason);
	want_name(o, "layer", names->layer);
	want_name(o, "module", names->module);
	want_str(o, "direction", k->direction == ML_DROP_EGRESS ? "egress" : "ingress");
	if (k->family) {
		want_str(o, "family", k->family == AF_INET ? "ipv4" : "ipv6");
		want_str(o, "protocol", proto);
		item = cJSON_GetObjectItemCaseSensitive(o, "src_addr");
		check_addr(k->src_addr, item->valuestring);
		item = cJSON_GetObjectItemCaseSensitive(o, "dst_addr");
		check_addr(k->dst_addr, item->valuestring);
		if (k->l4proto == 1 || k->l4proto == 58) {
			want_num(line, o, "icmp_type", k->src_port);
			want_num(line, o, "icmp_code", k->dst_port);
		} else if (strcmp(proto, "other")) {
			want_num(line, o, "src_port", k->src_port);
			want_num(line, o, "dst_port", k->dst_port);
		}
		if (k->l4proto == 6) {
			for (int i = 0; i < 8; i++) {
				if (!(v->tcp_flags & (1u << i)))
					continue;
				if (flags[0])
					strcat(flags, "|");
				strcat(flags, flag_names[i]);
			}
			want_str(o, "tcp_flags", flags);
		}
	}
	if (v->tcp_state)
		want_str(o, "tcp_state", ml_tcp_state_name(v->tcp_state));
	want_num(line, o, "packets", v->packets);
	want_num(line, o, "bytes", v->bytes);
	want_num(line, o, "ifindex", k->ifindex);
	want_num(line, o, "netns", k->netns);
	if (v->sock_cookie)
		want_num(line, o, "sock_cookie", v->sock_cookie);
	for (int i = 1; fid && i < N_ID; i++)
		if (id_value(fid, i))
			want_name(o, id_keys[i], id_value(fid, i));
	cJSON_Delete(o);
	check_exact_fit(fmt_drop, &ctx, line, n);
	cur_line = NULL;
	free(line);
}

/* ---- accesslog_json_string() ---- */

struct str_ctx {
	const char *s;
	size_t n;
};

static int fmt_str(const void *ctx, char *buf, size_t len)
{
	const struct str_ctx *c = ctx;

	return accesslog_json_string(c->s, c->n, buf, len);
}

static void check_json_string(const char *s, size_t n)
{
	/* worst case: every byte becomes a 6-byte \uXXXX escape */
	size_t cap = 6 * n + 3;
	char *out = malloc(cap), *want = malloc(3 * n + 1);
	struct str_ctx ctx = { s, n };
	const char *end = NULL;
	cJSON *v;
	int len;

	if (!out || !want)
		goto out;
	len = accesslog_json_string(s, n, out, cap);
	if (len < 2 || (size_t)len != strlen(out) || out[0] != '"' || out[len - 1] != '"')
		die("accesslog_json_string() gave no quoted string", NULL);
	cur_line = out;
	if (!utf8_valid(out, len))
		die("JSON string is not valid UTF-8", NULL);
	for (int i = 0; i < len; i++)
		if ((unsigned char)out[i] < 0x20)
			die("raw control character in a JSON string", NULL);
	v = cJSON_ParseWithOpts(out, &end, 1);
	if (!cJSON_IsString(v))
		die("JSON string does not parse as a string", NULL);
	expected_string(s, n, want);
	if (strcmp(v->valuestring, want))
		die("JSON string reads back different text", NULL);
	/* valid UTF-8 without NUL goes through unchanged */
	if (!memchr(s, '\0', n) && utf8_valid(s, n) && strlen(v->valuestring) != n)
		die("valid UTF-8 did not read back unchanged", NULL);
	cJSON_Delete(v);
	/* the fit logic does not depend on the length; long inputs would only slow the run */
	if (n <= 256)
		check_exact_fit(fmt_str, &ctx, out, len);
	cur_line = NULL;
out:
	free(want);
	free(out);
}

/* ---- driver ---- */

/* Next NUL-terminated piece of the tail, at most max bytes kept. */
static const uint8_t *next_piece(const uint8_t *p, const uint8_t *end, char *out, size_t max)
{
	size_t n = 0;

	while (p < end && *p) {
		if (n < max)
			out[n++] = (char)*p;
		p++;
	}
	out[n] = '\0';
	return p < end ? p + 1 : p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char ident[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
	uint8_t head[TAIL_OFF] = { 0 };
	char reason[NAME_MAX_LEN + 1], layer[NAME_MAX_LEN + 1], module[NAME_MAX_LEN + 1];
	struct accesslog_drop_names names = { reason, layer, module };
	char idv[N_ID][NAME_MAX_LEN + 1];
	const char *idp[N_ID];
	static const char *const none[N_ID];
	static struct fz_id id, reason_only; /* 1.2 KiB of keys each */
	bool has_id;
	struct tcp_probe_info r;
	struct accesslog_clock clk;
	struct ml_flow_key k;
	struct ml_flow_val v;
	const uint8_t *p, *end = data + size;
	size_t i;

	memcpy(head, data, size < TAIL_OFF ? size : TAIL_OFF);
	memcpy(&r, head + REC_OFF, sizeof(r));
	memcpy(&clk.mono_to_real_ns, head + CLK_OFF, sizeof(clk.mono_to_real_ns));
	memcpy(&k, head + KEY_OFF, sizeof(k));
	memcpy(&v, head + VAL_OFF, sizeof(v));

	p = size > TAIL_OFF ? data + TAIL_OFF : end;
	p = next_piece(p, end, reason, NAME_MAX_LEN);
	p = next_piece(p, end, layer, NAME_MAX_LEN);
	p = next_piece(p, end, module, NAME_MAX_LEN);
	p = next_piece(p, end, namer_text, NAME_MAX_LEN);
	for (i = 0; namer_text[i]; i++)
		namer_text[i] = ident[(unsigned char)namer_text[i] % (sizeof(ident) - 1)];
	/* identity: pieces that are there and not empty; none there: no identity */
	has_id = p < end;
	for (i = 0; i < N_ID; i++) {
		bool there = p < end;

		p = next_piece(p, end, idv[i], NAME_MAX_LEN);
		idp[i] = there && idv[i][0] ? idv[i] : NULL;
	}
	fz_id_init(&id, idp, namer_text[0] ? namer_text : NULL);
	fz_id_init(&reason_only, none, id.id.drop_reason);

	check_record(&r, &clk, has_id ? &id : &reason_only);
	check_drop(&k, &v, &names, NULL, &clk);
	if (has_id)
		check_drop(&k, &v, &names, &id, &clk);
	check_json_string((const char *)data, size);
	return 0;
}
