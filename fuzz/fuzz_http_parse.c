// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: the parsers of metrics/http.c that are ours, in process.
 *
 * They are static, so this file includes metrics/http.c (and
 * daemon/options.c, for the differential check below) instead of linking
 * them. Each line of the input (split on '\n') is:
 *
 *   1. one Accept-Encoding header value: all lines together go through
 *      scan_accept_encoding() exactly as MHD would hand them over, and the
 *      gzip decision must match a reference parser written from RFC 9110
 *      section 12.5.3 (qvalue grammar; an element whose weight cannot be
 *      read is ignored; "gzip"/"x-gzip" beats "*"; q=0 refuses);
 *   2. a metrics address: options.c's check of --metrics-addr and the
 *      listener's bind both read it with ml_parse_hostport() (lib/parse.c);
 *      it must accept exactly what a reference written from the grammar
 *      accepts (the check options.c had before the two were one: the last
 *      ':' splits, PORT 1..65535 in 1-5 digits, HOST "localhost", an
 *      inet_pton() IPv4 or a bracketed inet_pton() IPv6), to the same
 *      address and port, and options.c must agree with it.
 */
#include "metrics/http.c"
#include "daemon/options.c"

#include <ctype.h>

#define MAX_LINES 64

static __attribute__((noreturn)) void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_http_parse: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	abort();
}

/* ---- reference Accept-Encoding parser ---- */

static const char *skip_ows(const char *b, const char *e)
{
	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	return b;
}

static const char *rskip_ows(const char *b, const char *e)
{
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	return e;
}

static bool ieq(const char *b, const char *e, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(e - b) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (tolower((unsigned char)b[i]) != word[i])
			return false;
	return true;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ); -1 if not one. */
static int ref_qvalue(const char *b, const char *e)
{
	size_t n = (size_t)(e - b);
	int q, mult = 100;

	if (n == 0 || n > 5 || (b[0] != '0' && b[0] != '1'))
		return -1;
	if (n > 1 && b[1] != '.')
		return -1;
	q = (b[0] - '0') * 1000;
	for (size_t i = 2; i < n; i++, mult /= 10) {
		if (!isdigit((unsigned char)b[i]))
			return -1;
		q += (b[i] - '0') * mult;
	}
	if (b[0] == '1' && q != 1000)
		return -1;
	return q;
}

struct ref {
	int gzip_q, any_q;
};

static void ref_element(const char *b, const char *e, struct ref *r)
{
	const char *name_b, *name_e, *p;
	int q = 1000;

	/* coding *( OWS ";" OWS parameter ), the last "q=" parameter wins */
	for (p = b; p < e && *p != ';'; p++)
		;
	name_b = skip_ows(b, p);
	name_e = rskip_ows(name_b, p);
	while (p < e) {
		const char *pb = p + 1, *pe;

		for (pe = pb; pe < e && *pe != ';'; pe++)
			;
		p = pe;
		pb = skip_ows(pb, pe);
		pe = rskip_ows(pb, pe);
		if (pe - pb >= 2 && (pb[0] == 'q' || pb[0] == 'Q') && pb[1] == '=')
			q = ref_qvalue(pb + 2, pe);
	}
	if (q < 0)
		return;
	if (ieq(name_b, name_e, "gzip") || ieq(name_b, name_e, "x-gzip")) {
		if (q > r->gzip_q)
			r->gzip_q = q;
	} else if (ieq(name_b, name_e, "*")) {
		if (q > r->any_q)
			r->any_q = q;
	}
}

static void ref_header(const char *v, struct ref *r)
{
	const char *e = v + strlen(v), *b = v, *c;

	for (;;) {
		for (c = b; c < e && *c != ','; c++)
			;
		ref_element(b, c, r);
		if (c == e)
			break;
		b = c + 1;
	}
}

/* ---- metrics address ---- */

/* The grammar, written apart from lib/parse.c: true with want/port filled. */
static bool ref_addr(const char *a, int *family, unsigned char want[16], unsigned long *port)
{
	const char *colon = strrchr(a, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t hlen, plen;

	if (!colon)
		return false;
	hlen = (size_t)(colon - a);
	plen = strlen(colon + 1);
	if (!hlen || hlen >= sizeof(host) || !plen || plen > 5 ||
	    strspn(colon + 1, "0123456789") != plen)
		return false;
	*port = strtoul(colon + 1, NULL, 10);
	if (*port < 1 || *port > 65535)
		return false;
	memcpy(host, a, hlen);
	host[hlen] = '\0';
	if (!strcmp(host, "localhost")) {
		*family = AF_INET;
		return inet_pton(AF_INET, "127.0.0.1", want) == 1;
	}
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']')
			return false;
		host[hlen - 1] = '\0';
		*family = AF_INET6;
		return inet_pton(AF_INET6, host + 1, want) == 1;
	}
	*family = AF_INET;
	return inet_pton(AF_INET, host, want) == 1;
}

static void check_addr(const char *a)
{
	union ml_sockaddr sa;
	socklen_t len = 0;
	const char *why;
	unsigned long port = 0;
	unsigned char want[16];
	int family = 0;
	bool ok = ref_addr(a, &family, want, &port);

	if (metrics_addr_valid(a) != (ok || !strcmp(a, "off")))
		die("options.c and the reference disagree on an address", a);
	why = ml_parse_hostport(a, &sa, &len);
	if (!ok) {
		if (!why)
			die("lib/parse.c accepts an address the reference refuses", a);
		return;
	}
	if (why) {
		fprintf(stderr, "address '%s': %s\n", a, why);
		die("lib/parse.c refuses an address the reference accepts", why);
	}
	if (family == AF_INET6) {
		if (sa.sa.sa_family != AF_INET6 || len != sizeof(sa.in6) ||
		    memcmp(&sa.in6.sin6_addr, want, 16) || ntohs(sa.in6.sin6_port) != port)
			die("lib/parse.c reads a different IPv6 address or port", a);
		return;
	}
	if (sa.sa.sa_family != AF_INET || len != sizeof(sa.in) ||
	    memcmp(&sa.in.sin_addr, want, 4) || ntohs(sa.in.sin_port) != port)
		die("lib/parse.c reads a different IPv4 address or port", a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct accept_gzip ag = { .gzip_q = -1, .any_q = -1 };
	struct ref ref = { -1, -1 };
	char *text, *lines[MAX_LINES];
	bool got, want;
	int n = 0;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (char *s = text; n < MAX_LINES;) {
		char *nl = strchr(s, '\n');

		lines[n++] = s;
		if (!nl)
			break;
		*nl = '\0';
		s = nl + 1;
	}

	for (int i = 0; i < n; i++) {
		/* the header name is matched case-insensitively; other headers are skipped */
		scan_accept_encoding(&ag, MHD_HEADER_KIND, i & 1 ? "accept-ENCODING" : "Accept-Encoding",
				     lines[i]);
		scan_accept_encoding(&ag, MHD_HEADER_KIND, "Accept", "gzip");
		ref_header(lines[i], &ref);
		if (ag.gzip_q < -1 || ag.gzip_q > 1000 || ag.any_q < -1 || ag.any_q > 1000)
			die("weight out of range", lines[i]);
		check_addr(lines[i]);
	}
	got = ag.gzip_q >= 0 ? ag.gzip_q > 0 : ag.any_q > 0;
	want = ref.gzip_q >= 0 ? ref.gzip_q > 0 : ref.any_q > 0;
	if (ag.gzip_q != ref.gzip_q || ag.any_q != ref.any_q || got != want) {
		fprintf(stderr, "gzip_q %d (reference %d), any_q %d (reference %d)\n", ag.gzip_q,
			ref.gzip_q, ag.any_q, ref.any_q);
		die("Accept-Encoding decision differs from the reference", n ? lines[0] : "");
	}
	free(text);
	return 0;
}
