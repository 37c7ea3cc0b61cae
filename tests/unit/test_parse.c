// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * lib/parse: HOST:PORT to the address bound, and the reason for each kind
 * of refusal (test_options and test_http check which inputs their callers
 * take; this checks what comes out).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "lib/parse.h"

static void test_good(void **state)
{
	static const struct {
		const char *in, *host;
		int family;
		uint16_t port;
	} good[] = {
		{ "127.0.0.1:2112", "127.0.0.1", AF_INET, 2112 },
		{ "0.0.0.0:1", "0.0.0.0", AF_INET, 1 },
		{ "localhost:65535", "127.0.0.1", AF_INET, 65535 },
		{ "10.1.2.3:00080", "10.1.2.3", AF_INET, 80 },
		{ "[::1]:2112", "::1", AF_INET6, 2112 },
		{ "[::]:80", "::", AF_INET6, 80 },
		{ "[::ffff:10.0.0.1]:8080", "::ffff:10.0.0.1", AF_INET6, 8080 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		union ml_sockaddr sa;
		socklen_t len = 0;
		unsigned char want[16];

		assert_null(ml_parse_hostport(good[i].in, &sa, &len));
		assert_int_equal(sa.sa.sa_family, good[i].family);
		assert_int_equal(inet_pton(good[i].family, good[i].host, want), 1);
		if (good[i].family == AF_INET) {
			assert_int_equal(len, sizeof(sa.in));
			assert_memory_equal(&sa.in.sin_addr, want, 4);
			assert_int_equal(ntohs(sa.in.sin_port), good[i].port);
		} else {
			assert_int_equal(len, sizeof(sa.in6));
			assert_memory_equal(&sa.in6.sin6_addr, want, 16);
			assert_int_equal(ntohs(sa.in6.sin6_port), good[i].port);
		}
	}
}

static void test_bad_and_why(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "expected HOST:PORT" },
		{ "nonsense", "expected HOST:PORT" },
		{ "[::1]", "expected [IPv6]:PORT" },
		{ "[::1:2112", "expected [IPv6]:PORT" },
		{ "[::1]x:80", "expected [IPv6]:PORT" },
		{ "127.0.0.1:", "port must be 1-65535" },
		{ "127.0.0.1:0", "port must be 1-65535" },
		{ "127.0.0.1:65536", "port must be 1-65535" },
		{ "127.0.0.1:000080", "port must be 1-65535" }, /* six digits */
		{ "127.0.0.1:+80", "port must be 1-65535" },
		{ "127.0.0.1: 80", "port must be 1-65535" },
		{ "[::1]:80:90", "port must be 1-65535" },
		{ "[]:80", "not an IPv6 address" },
		{ "[127.0.0.1]:80", "not an IPv6 address" },
		{ ":2112", "host must be an IPv4 address, localhost or [IPv6 address]" },
		{ "::1:2112", "host must be an IPv4 address, localhost or [IPv6 address]" },
		{ "1.2.3:80", "host must be an IPv4 address, localhost or [IPv6 address]" },
		{ "example.com:80", "host must be an IPv4 address, localhost or [IPv6 address]" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80", "host too long" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		union ml_sockaddr sa;
		socklen_t len = 0;
		const char *why = ml_parse_hostport(bad[i].in, &sa, &len);

		if (!why || strcmp(why, bad[i].why))
			fail_msg("'%s': got \"%s\", want \"%s\"", bad[i].in, why ? why : "(accepted)",
				 bad[i].why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad_and_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
