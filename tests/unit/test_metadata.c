// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests for daemon/metadata.c: longest-prefix match over IPv4, IPv6
 * and v4-mapped addresses, exact IPs over CIDRs, unknown addresses, bad
 * files with the problem named, reload keeping the old table on error,
 * and cgroup id -> path -> workload over a temporary directory tree that
 * stands in for the cgroup v2 root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/metadata.h"

struct fx {
	char dir[64];  /* temp dir: md.json and the fake cgroup root "cg" */
	char file[96];
	char root[96];
	struct ml_metadata *md;
	char err[512];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_metadata.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->file, sizeof(f->file), "%s/md.json", f->dir);
	snprintf(f->root, sizeof(f->root), "%s/cg", f->dir);
	assert_int_equal(mkdir(f->root, 0755), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	ml_metadata_free(f->md);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_file(struct fx *f, const char *text)
{
	FILE *fp = fopen(f->file, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static struct ml_metadata *load(struct fx *f, const char *text)
{
	write_file(f, text);
	f->md = ml_metadata_open(f->file, f->root, f->err, sizeof(f->err));
	if (!f->md)
		fail_msg("load failed: %s", f->err);
	return f->md;
}

/* workload name for an address literal, or NULL */
static const char *who(struct fx *f, const char *ip)
{
	uint8_t a[16] = { 0 };
	const struct ml_workload *w;

	if (inet_pton(AF_INET, ip, a + 12) == 1)
		a[10] = a[11] = 0xff;
	else
		assert_int_equal(inet_pton(AF_INET6, ip, a), 1);
	w = ml_metadata_by_addr(f->md, a);
	return w ? w->workload : NULL;
}

static const char *const TABLE =
	"{\"workloads\":["
	"{\"ips\":[\"10.0.0.0/8\"],\"workload\":\"w8\",\"namespace\":\"ns\"},"
	"{\"ips\":[\"10.244.0.0/16\"],\"workload\":\"w16\"},"
	"{\"ips\":[\"10.244.2.0/24\",\"fd00::/64\"],\"workload\":\"w24\"},"
	"{\"ips\":[\"10.244.2.7\",\"fd00::7\"],\"workload\":\"exact\",\"namespace\":\"bookinfo\","
	" \"service\":\"productpage\",\"node\":\"node-1\"},"
	"{\"ips\":[\"10.244.2.7/32\"],\"workload\":\"second\"},"
	"{\"ips\":[\"fd00::/16\"],\"workload\":\"v6wide\"},"
	"{\"ips\":[\"::ffff:192.168.1.1\"],\"workload\":\"mapped\"},"
	"{\"ips\":[\"10.244.9.9/20\"],\"workload\":\"hostbits\"}"
	"]}";

static void test_longest_prefix_v4(void **state)
{
	struct fx *f = *state;

	load(f, TABLE);
	assert_string_equal(who(f, "10.1.2.3"), "w8");
	assert_string_equal(who(f, "10.244.100.1"), "w16");
	assert_string_equal(who(f, "10.244.1.1"), "hostbits"); /* /20 beats /16 */
	assert_string_equal(who(f, "10.244.2.8"), "w24");
	assert_string_equal(who(f, "10.244.0.1"), "hostbits"); /* 10.244.0.0/20 */
	assert_string_equal(who(f, "10.0.0.0"), "w8");
	assert_string_equal(who(f, "10.255.255.255"), "w8");
}

static void test_duplicate_addresses_warned(void **state)
{
	struct fx *f = *state;

	load(f, TABLE);
	/* "10.244.2.7" of "exact" and "10.244.2.7/32" of "second" */
	assert_string_equal(ml_metadata_warning(f->md),
			    "10.244.2.7 is listed for workloads[3] and workloads[4]: the first is used");
	ml_metadata_free(f->md);
	load(f, "{\"workloads\":[{\"ips\":[\"fd00::/64\",\"10.1.0.0/16\"],\"workload\":\"a\"},"
		"{\"ips\":[\"10.1.0.0/16\",\"fd00::/64\"],\"workload\":\"b\"},"
		"{\"ips\":[\"10.2.0.1\",\"10.2.0.1\"],\"workload\":\"c\"}]}");
	assert_non_null(strstr(ml_metadata_warning(f->md), "is listed for workloads[0] and workloads[1]: "
							   "the first is used (2 addresses so)"));
	assert_string_equal(who(f, "10.1.2.3"), "a");
	ml_metadata_free(f->md);
	load(f, "{\"workloads\":[{\"ips\":[\"10.2.0.1\",\"10.2.0.1\"],\"workload\":\"c\"}]}");
	assert_string_equal(ml_metadata_warning(f->md), ""); /* one workload's own repeat */
}

static void test_exact_beats_cidr_first_wins(void **state)
{
	struct fx *f = *state;
	uint8_t a[16] = { [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 244, [14] = 2, [15] = 7 };
	const struct ml_workload *w;

	load(f, TABLE);
	w = ml_metadata_by_addr(f->md, a);
	assert_non_null(w);
	/* "10.244.2.7" and "10.244.2.7/32" are the same prefix: the first entry wins */
	assert_string_equal(w->workload, "exact");
	assert_string_equal(w->namespace, "bookinfo");
	assert_string_equal(w->service, "productpage");
	assert_string_equal(w->node, "node-1");
	assert_string_equal(who(f, "fd00::7"), "exact");
}

static void test_v6_and_mapped(void **state)
{
	struct fx *f = *state;

	load(f, TABLE);
	assert_string_equal(who(f, "fd00::8"), "w24");
	assert_string_equal(who(f, "fd00:0:0:1::8"), "v6wide");
	/* a v4 entry matches the v4-mapped form only, and a v6-written mapped entry is v4 */
	assert_string_equal(who(f, "::ffff:10.244.2.7"), "exact");
	assert_string_equal(who(f, "192.168.1.1"), "mapped");
	assert_null(who(f, "::a0f4:207")); /* IPv4-compatible, not mapped */
}

static void test_unknown(void **state)
{
	struct fx *f = *state;

	load(f, TABLE);
	assert_null(who(f, "11.0.0.1"));
	assert_null(who(f, "127.0.0.1"));
	assert_null(who(f, "fe80::1"));
	assert_null(who(f, "::"));
	assert_null(ml_metadata_by_cgroup(f->md, "a/b"));
	ml_metadata_free(f->md);
	f->md = NULL;
	load(f, "{\"workloads\":[]}");
	assert_null(who(f, "10.0.0.1"));
}

static void test_zero_length_prefixes(void **state)
{
	struct fx *f = *state;

	load(f, "{\"workloads\":[{\"ips\":[\"0.0.0.0/0\"],\"workload\":\"any4\"},"
		"{\"ips\":[\"::/0\"],\"workload\":\"any\"}]}");
	assert_string_equal(who(f, "1.2.3.4"), "any4");
	assert_string_equal(who(f, "2001:db8::1"), "any");
}

/* each bad file: open fails, err names the file and the problem */
static void test_bad_files(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "{\"workloads\":[", "not valid JSON" },
		{ "[]", "{\"workloads\": [...]}" },
		{ "{\"workload\":[]}", "{\"workloads\": [...]}" },
		{ "{\"workloads\":[1]}", "workloads[0]: not an object" },
		{ "{\"workloads\":[{\"ips\":[\"10.0.0.1\"]}]}", "workloads[0].\"workload\": missing" },
		{ "{\"workloads\":[{\"workload\":\"\"}]}", "workloads[0].\"workload\"" },
		{ "{\"workloads\":[{\"workload\":\"a\",\"namespace\":7}]}",
		  "workloads[0].\"namespace\": not a string" },
		{ "{\"workloads\":[{\"workload\":\"a\"},{\"workload\":\"b\",\"ips\":[\"10.0.0.256\"]}]}",
		  "workloads[1].\"ips\"[0]: \"10.0.0.256\" is not an IP address or CIDR" },
		{ "{\"workloads\":[{\"workload\":\"a\",\"ips\":[\"10.0.0.0/33\"]}]}", "\"10.0.0.0/33\"" },
		{ "{\"workloads\":[{\"workload\":\"a\",\"ips\":[\"fd00::/129\"]}]}", "\"fd00::/129\"" },
		{ "{\"workloads\":[{\"workload\":\"a\",\"ips\":[\"10.0.0.0/\"]}]}", "\"10.0.0.0/\"" },
		{ "{\"workloads\":[{\"workload\":\"a\",\"ips\":\"10.0.0.1\"}]}", "not an array" },
		{ "{\"workloads\":[{\"workload\":\"a\",\"cgroups\":[3]}]}",
		  "workloads[0].\"cgroups\"[0]: not a cgroup path" },
		/* a misspelt key would leave names out silently */
		{ "{\"workloads\":[{\"workload\":\"a\",\"ip\":[\"10.0.0.1\"]}]}",
		  "workloads[0]: unknown key \"ip\"" },
		{ "{\"workloads\":[],\"workload\":[]}", "unknown key \"workload\"" },
	};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(f, cases[i].text);
		f->err[0] = '\0';
		assert_null(ml_metadata_open(f->file, f->root, f->err, sizeof(f->err)));
		if (strncmp(f->err, f->file, strlen(f->file)) || !strstr(f->err, cases[i].want) ||
		    strchr(f->err, '\n'))
			fail_msg("case %zu: error '%s' lacks '%s'", i, f->err, cases[i].want);
	}
	/* a missing file */
	assert_null(ml_metadata_open("/nonexistent/md.json", f->root, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "/nonexistent/md.json: No such file"));
}

static void test_reload(void **state)
{
	struct fx *f = *state;

	load(f, "{\"workloads\":[{\"ips\":[\"10.0.0.1\"],\"workload\":\"old\"}]}");
	assert_string_equal(who(f, "10.0.0.1"), "old");
	assert_int_equal(ml_metadata_generation(f->md), 1);
	write_file(f, "{\"workloads\":[{\"ips\":[\"10.0.0.1\"],\"workload\":\"new\"}]}");
	assert_int_equal(ml_metadata_reload(f->md, f->err, sizeof(f->err)), 0);
	assert_string_equal(who(f, "10.0.0.1"), "new");
	assert_int_equal(ml_metadata_generation(f->md), 2); /* the workloads changed */
	write_file(f, "{\"workloads\":[{\"ips\":[\"10.0.0.x\"],\"workload\":\"bad\"}]}");
	assert_int_equal(ml_metadata_reload(f->md, f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "10.0.0.x"));
	assert_string_equal(who(f, "10.0.0.1"), "new");
	assert_int_equal(ml_metadata_generation(f->md), 2); /* a failed reload changes nothing */
	assert_string_equal(ml_metadata_path(f->md), f->file);
}

static uint64_t ino_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static void mkdirs(struct fx *f, const char *rel)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", f->root, rel);
	assert_int_equal(system(cmd), 0);
}

static void test_cgroups(void **state)
{
	struct fx *f = *state;
	char p[256];
	const char *rel;
	const struct ml_workload *w;
	uint64_t ctr, pod, other, late;

	mkdirs(f, "kubepods.slice/kubepods-pod1234.slice/cri-abc.scope");
	mkdirs(f, "kubepods.slice/kubepods-pod99.slice");
	mkdirs(f, "system.slice/x.service");
	load(f, "{\"workloads\":["
		"{\"cgroups\":[\"kubepods.slice/kubepods-pod1234.slice\"],\"workload\":\"pod\"},"
		"{\"cgroups\":[\"/kubepods.slice/\"],\"workload\":\"kube\"},"
		"{\"cgroups\":[\"system.slice/x.service/deeper\"],\"workload\":\"deep\"}]}");
	snprintf(p, sizeof(p), "%s/kubepods.slice/kubepods-pod1234.slice/cri-abc.scope", f->root);
	ctr = ino_of(p);
	snprintf(p, sizeof(p), "%s/kubepods.slice/kubepods-pod1234.slice", f->root);
	pod = ino_of(p);
	snprintf(p, sizeof(p), "%s/system.slice/x.service", f->root);
	other = ino_of(p);

	rel = ml_metadata_cgroup_path(f->md, ctr);
	assert_non_null(rel);
	assert_string_equal(rel, "kubepods.slice/kubepods-pod1234.slice/cri-abc.scope");
	w = ml_metadata_by_cgroup(f->md, rel); /* the container's pod */
	assert_non_null(w);
	assert_string_equal(w->workload, "pod");
	w = ml_metadata_by_cgroup(f->md, ml_metadata_cgroup_path(f->md, pod));
	assert_string_equal(w->workload, "pod");
	w = ml_metadata_by_cgroup(f->md, "kubepods.slice/kubepods-pod99.slice");
	assert_string_equal(w->workload, "kube"); /* nearest named ancestor */
	assert_string_equal(ml_metadata_cgroup_path(f->md, ino_of(f->root)), "");
	/* a descendant's name does not name its parent; no prefix-of-a-word matches */
	assert_null(ml_metadata_by_cgroup(f->md, ml_metadata_cgroup_path(f->md, other)));
	assert_null(ml_metadata_by_cgroup(f->md, "kubepods.slice2/a"));
	assert_null(ml_metadata_by_cgroup(f->md, ""));

	/* a cgroup created after the load: found by the rescan after a second */
	mkdirs(f, "kubepods.slice/kubepods-pod1234.slice/cri-late.scope");
	snprintf(p, sizeof(p), "%s/kubepods.slice/kubepods-pod1234.slice/cri-late.scope",
		 f->root);
	late = ino_of(p);
	assert_null(ml_metadata_cgroup_path(f->md, late)); /* never walks by itself */
	assert_false(ml_metadata_cgroup_unknown(f->md, late)); /* walked less than 1 s ago */
	sleep(1);
	assert_true(ml_metadata_cgroup_unknown(f->md, late));
	assert_null(ml_metadata_cgroup_path(f->md, late));
	ml_metadata_rescan(f->md);
	assert_false(ml_metadata_cgroup_unknown(f->md, late));
	rel = ml_metadata_cgroup_path(f->md, late);
	assert_non_null(rel);
	assert_string_equal(rel, "kubepods.slice/kubepods-pod1234.slice/cri-late.scope");
	assert_string_equal(ml_metadata_by_cgroup(f->md, rel)->workload, "pod");
	assert_null(ml_metadata_cgroup_path(f->md, 0));
	assert_false(ml_metadata_cgroup_unknown(f->md, 0));
}

static void want_keys(const struct accesslog_keys *k, const char *text)
{
	assert_non_null(k);
	assert_int_equal(k->len, strlen(text));
	assert_memory_equal(k->text, text, k->len);
}

/* The access-log keys rendered at load and at each walk, escaped once. */
static void test_rendered_keys(void **state)
{
	struct fx *f = *state;
	const struct ml_workload *w;
	char p[256];
	uint64_t odd;

	mkdirs(f, "kubepods.slice/po\"d\\1");
	load(f, "{\"workloads\":["
		"{\"ips\":[\"10.0.0.1\"],\"workload\":\"we\\\"b\",\"namespace\":\"shop\","
		"\"service\":\"web\"},"
		"{\"ips\":[\"10.0.0.2\"],\"workload\":\"db\\u0001\"}]}");
	w = ml_metadata_by_addr(f->md, (const uint8_t[16]){ [10] = 0xff, [11] = 0xff, 10, 0, 0, 1 });
	assert_non_null(w);
	want_keys(&w->src_keys, ",\"src_workload\":\"we\\\"b\",\"src_namespace\":\"shop\"");
	want_keys(&w->dst_keys, ",\"dst_workload\":\"we\\\"b\",\"dst_namespace\":\"shop\","
				"\"dst_service\":\"web\"");
	w = ml_metadata_by_addr(f->md, (const uint8_t[16]){ [10] = 0xff, [11] = 0xff, 10, 0, 0, 2 });
	assert_non_null(w);
	want_keys(&w->src_keys, ",\"src_workload\":\"db\\u0001\"");
	want_keys(&w->dst_keys, ",\"dst_workload\":\"db\\u0001\"");

	snprintf(p, sizeof(p), "%s/kubepods.slice/po\"d\\1", f->root);
	odd = ino_of(p);
	assert_string_equal(ml_metadata_cgroup_path(f->md, odd), "kubepods.slice/po\"d\\1");
	want_keys(ml_metadata_cgroup_key(f->md, odd), ",\"cgroup\":\"kubepods.slice/po\\\"d\\\\1\"");
	snprintf(p, sizeof(p), "%s/kubepods.slice", f->root);
	want_keys(ml_metadata_cgroup_key(f->md, ino_of(p)), ",\"cgroup\":\"kubepods.slice\"");
	assert_null(ml_metadata_cgroup_key(f->md, ino_of(f->root))); /* the root: no key */
	assert_null(ml_metadata_cgroup_key(f->md, 0));
}

/* Istio's identity keys: each kept as given, each optional, each a name
 * like the others (1 to 253 bytes). */
static void test_istio_keys(void **state)
{
	struct fx *f = *state;
	const struct ml_workload *w;
	uint8_t a[16] = { [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 7 };

	load(f, "{\"workloads\":[{\"ips\":[\"10.0.0.7\"],\"workload\":\"reviews-v2\","
		"\"namespace\":\"bookinfo\",\"service\":\"reviews\",\"canonical_service\":\"reviews\","
		"\"canonical_revision\":\"v2\",\"app\":\"reviews\",\"version\":\"v2\","
		"\"cluster\":\"Kubernetes\","
		"\"principal\":\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews\"},"
		"{\"ips\":[\"10.0.0.8\"],\"workload\":\"bare\"}]}");
	w = ml_metadata_by_addr(f->md, a);
	assert_non_null(w);
	assert_string_equal(w->canonical_service, "reviews");
	assert_string_equal(w->canonical_revision, "v2");
	assert_string_equal(w->app, "reviews");
	assert_string_equal(w->version, "v2");
	assert_string_equal(w->cluster, "Kubernetes");
	assert_string_equal(w->principal, "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews");
	a[15] = 8;
	w = ml_metadata_by_addr(f->md, a);
	assert_non_null(w);
	assert_null(w->canonical_service);
	assert_null(w->principal);
	ml_metadata_free(f->md);
	f->md = NULL;
	write_file(f, "{\"workloads\":[{\"ips\":[\"10.0.0.7\"],\"workload\":\"x\",\"version\":\"\"}]}");
	assert_null(ml_metadata_open(f->file, f->root, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "workloads[0].\"version\": not a string of 1 to 253 bytes"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_longest_prefix_v4), T(test_exact_beats_cidr_first_wins),
		T(test_v6_and_mapped),     T(test_unknown),
		T(test_zero_length_prefixes), T(test_bad_files),
		T(test_reload),            T(test_cgroups),
		T(test_duplicate_addresses_warned),
		T(test_istio_keys),	   T(test_rendered_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
