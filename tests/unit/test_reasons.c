// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Drop reasons against this machine's kernel BTF (values cross-checked with
 * libbpf directly, not with numbers written here), plus synthetic BTF files
 * that prove values and subsystem enums are read, not assumed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/btf.h>
#include <cmocka.h>

#include "drops/reasons.h"

#define VMLINUX "/sys/kernel/btf/vmlinux"
#define CORE_PREFIX "SKB_DROP_REASON_"
#define SUBSYS_BITS(v) ((v) >> 16)

/* Without kernel BTF the kernel tests skip, loudly; with CI=true they fail. */
static void load_kernel(struct drop_reasons *r)
{
	char err[256] = "";
	const char *ci = getenv("CI");

	if (access(VMLINUX, R_OK)) {
		if (ci && !strcmp(ci, "true"))
			fail_msg("%s: %s (CI=true: a missing kernel BTF is a failure)", VMLINUX,
				 strerror(errno));
		fprintf(stderr, "SKIP: %s: %s: kernel drop-reason tests not run\n", VMLINUX,
			strerror(errno));
		skip();
	}
	if (drop_reasons_load(r, NULL, err, sizeof(err)))
		fail_msg("drop_reasons_load: %s", err);
}

/* The value of enumerator `name` of enum skb_drop_reason, read by libbpf here. */
static int64_t btf_core_value(const char *name)
{
	struct btf *btf = btf__load_vmlinux_btf();
	const struct btf_type *t;
	const struct btf_enum *e;
	int64_t v = -1;
	int id;

	assert_non_null(btf);
	id = btf__find_by_name_kind(btf, "skb_drop_reason", BTF_KIND_ENUM);
	assert_true(id > 0);
	t = btf__type_by_id(btf, id);
	e = btf_enum(t);
	for (int i = 0; i < btf_vlen(t); i++, e++)
		if (!strcmp(btf__name_by_offset(btf, e->name_off), name))
			v = (uint32_t)e->val;
	btf__free(btf);
	return v;
}

static const struct drop_reason *by_name(const struct drop_reasons *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].name, name))
			return &r->v[i];
	return NULL;
}

static const struct drop_reason *must(const struct drop_reasons *r, const char *name)
{
	const struct drop_reason *d = by_name(r, name);

	if (!d)
		fail_msg("reason %s not loaded", name);
	return d;
}

static void test_netfilter_drop_value_from_btf(void **state)
{
	struct drop_reasons r;
	int64_t v = btf_core_value(CORE_PREFIX "NETFILTER_DROP");
	const struct drop_reason *d;

	(void)state;
	load_kernel(&r);
	assert_true(v >= 0);
	d = drop_reasons_find(&r, (uint32_t)v);
	assert_non_null(d);
	assert_string_equal(d->name, "NETFILTER_DROP");
	assert_string_equal(d->module, "l3.netfilter");
	assert_string_equal(d->layer, "l3");
	assert_int_equal(drop_reasons_core_value(&r, "NETFILTER_DROP"), v);
	drop_reasons_free(&r);
}

/* Every SKB_DROP_REASON_ enumerator but the MAX and SUBSYS_MASK markers, same value. */
static void test_every_core_enumerator_loaded(void **state)
{
	struct drop_reasons r;
	struct btf *btf;
	const struct btf_type *t;
	const struct btf_enum *e;
	size_t expect = 0, core = 0;

	(void)state;
	load_kernel(&r);
	btf = btf__load_vmlinux_btf();
	assert_non_null(btf);
	t = btf__type_by_id(btf, btf__find_by_name_kind(btf, "skb_drop_reason", BTF_KIND_ENUM));
	assert_non_null(t);
	e = btf_enum(t);
	for (int i = 0; i < btf_vlen(t); i++, e++) {
		const char *name = btf__name_by_offset(btf, e->name_off);
		const struct drop_reason *d;

		if (strncmp(name, CORE_PREFIX, strlen(CORE_PREFIX)) ||
		    !strcmp(name, CORE_PREFIX "MAX") || !strcmp(name, CORE_PREFIX "SUBSYS_MASK"))
			continue;
		expect++;
		d = drop_reasons_find(&r, (uint32_t)e->val);
		if (!d || strcmp(d->name, name + strlen(CORE_PREFIX)))
			fail_msg("%s = %d loaded as %s", name, e->val, d ? d->name : "nothing");
	}
	btf__free(btf);
	for (size_t i = 0; i < r.n; i++)
		core += !SUBSYS_BITS(r.v[i].value);
	assert_true(expect > 50);
	assert_int_equal(core, expect);
	drop_reasons_free(&r);
}

static void test_nondrops_hidden_but_valued(void **state)
{
	struct drop_reasons r;
	int64_t consumed = btf_core_value("SKB_CONSUMED");
	int64_t not_dropped = btf_core_value("SKB_NOT_DROPPED_YET");

	(void)state;
	load_kernel(&r);
	assert_true(consumed >= 0 && not_dropped >= 0);
	assert_null(by_name(&r, "CONSUMED"));
	assert_null(by_name(&r, "NOT_DROPPED_YET"));
	assert_null(by_name(&r, "MAX"));
	assert_null(by_name(&r, "SUBSYS_MASK"));
	assert_int_equal(drop_reasons_core_value(&r, "CONSUMED"), consumed);
	assert_int_equal(drop_reasons_core_value(&r, "SKB_CONSUMED"), consumed);
	assert_int_equal(drop_reasons_core_value(&r, "consumed"), consumed);
	assert_int_equal(drop_reasons_core_value(&r, "NOT_DROPPED_YET"), not_dropped);
	assert_int_equal(drop_reasons_core_value(&r, "SKB_DROP_REASON_NO_SOCKET"),
			 btf_core_value(CORE_PREFIX "NO_SOCKET"));
	/* SKB_CSUM is a reason of its own: the SKB_ prefix must not be eaten first */
	assert_int_equal(drop_reasons_core_value(&r, "SKB_CSUM"),
			 btf_core_value(CORE_PREFIX "SKB_CSUM"));
	assert_int_equal(drop_reasons_core_value(&r, "NO_SUCH_REASON"), -1);
	drop_reasons_free(&r);
}

static void test_representative_modules(void **state)
{
	static const char *const want[][2] = {
		{ "NETFILTER_DROP", "l3.netfilter" }, { "NO_SOCKET", "l4.sock" },
		{ "TCP_CSUM", "l4.tcp" },	      { "UDP_CSUM", "l4.udp" },
		{ "ICMP_CSUM", "l4.icmp" },	      { "IP_RPFILTER", "l3.route" },
		{ "IP_OUTNOROUTES", "l3.route" },     { "IP_CSUM", "l3.ip" },
		{ "IP_INADDRERRORS", "l3.ip" },	      { "OTHERHOST", "l3.ip" },
		{ "IPV6_BAD_EXTHDR", "l3.ipv6" },     { "IPV6_NDISC_FRAG", "l2.neigh" },
		{ "NEIGH_FAILED", "l2.neigh" },	      { "QDISC_DROP", "l2.qdisc" },
		{ "TC_INGRESS", "l2.qdisc" },	      { "CPU_BACKLOG", "l2.dev" },
		{ "SKB_CSUM", "l2.dev" },	      { "FULL_RING", "l1.nic" },
		{ "XFRM_POLICY", "l3.xfrm" },	      { "VXLAN_INVALID_HDR", "l3.tunnel" },
		{ "IP_TUNNEL_ECN", "l3.tunnel" },     { "BRIDGE_INGRESS_STP_STATE", "l2.bridge" },
		{ "QUEUE_PURGE", "l4.sock" },	      { "NOT_SPECIFIED", "other" },
	};
	struct drop_reasons r;

	(void)state;
	load_kernel(&r);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct drop_reason *d = by_name(&r, want[i][0]);

		/* a reason this kernel no longer has is not a mapping error */
		if (!d)
			continue;
		if (strcmp(d->module, want[i][1]))
			fail_msg("%s -> %s, want %s", d->name, d->module, want[i][1]);
		assert_int_equal(strncmp(d->module, d->layer, strlen(d->layer)), 0);
	}
	must(&r, "NO_SOCKET");
	must(&r, "TCP_CSUM");
	must(&r, "QDISC_DROP");
	drop_reasons_free(&r);
}

/*
 * Only NOT_SPECIFIED may be "other" (the kernel gave no reason, so no
 * layer either). A new kernel's unmapped reason is named here.
 */
static void test_no_core_reason_unmapped(void **state)
{
	struct drop_reasons r;
	char bad[1024] = "";

	(void)state;
	load_kernel(&r);
	for (size_t i = 0; i < r.n; i++) {
		const struct drop_reason *d = &r.v[i];

		if (i)
			assert_true(r.v[i - 1].value < d->value);
		if (SUBSYS_BITS(d->value) || strcmp(d->module, "other") ||
		    !strcmp(d->name, "NOT_SPECIFIED"))
			continue;
		strncat(bad, " ", sizeof(bad) - strlen(bad) - 1);
		strncat(bad, d->name, sizeof(bad) - strlen(bad) - 1);
	}
	if (bad[0])
		fail_msg("reasons mapped to \"other\":%s", bad);
	drop_reasons_free(&r);
}

static void test_benign_off_by_default(void **state)
{
	static const char *const off[] = { "QUEUE_PURGE", "SOCKET_CLOSE", "UNIX_SKIP_OOB",
					    "NOT_SPECIFIED" };
	static const char *const on[] = { "NETFILTER_DROP", "NO_SOCKET", "TCP_OLD_DATA",
					   "TCP_CLOSE" };
	struct drop_reasons r;
	char err[256];

	(void)state;
	load_kernel(&r);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
			assert_true(must(&r, off[i])->benign);
			assert_false(must(&r, off[i])->enabled);
		}
		for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
			assert_false(must(&r, on[i])->benign);
			assert_true(must(&r, on[i])->enabled);
		}
		/* no --include/--exclude: the defaults again */
		assert_int_equal(drop_reasons_select(&r, NULL, 0, NULL, 0, err, sizeof(err)), 0);
	}
	drop_reasons_free(&r);
}

static void test_include_layer_and_module(void **state)
{
	char *by_layer[] = { "L3" }, *by_module[] = { "l2.neigh", "L4.TCP" };
	struct drop_reasons r;
	char err[256];
	size_t on = 0;

	(void)state;
	load_kernel(&r);
	assert_int_equal(drop_reasons_select(&r, by_layer, 1, NULL, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < r.n; i++) {
		assert_int_equal(r.v[i].enabled, !strcmp(r.v[i].layer, "l3"));
		on += r.v[i].enabled;
	}
	assert_true(on > 10);
	assert_int_equal(drop_reasons_select(&r, by_module, 2, NULL, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.v[i].enabled, !strcmp(r.v[i].module, "l2.neigh") ||
							 !strcmp(r.v[i].module, "l4.tcp"));
	drop_reasons_free(&r);
}

static void test_include_names(void **state)
{
	char *inc[] = { "skb_drop_reason_netfilter_drop", "Tcp_Csum" };
	struct drop_reasons r;
	char err[256];

	(void)state;
	load_kernel(&r);
	assert_int_equal(drop_reasons_select(&r, inc, 2, NULL, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.v[i].enabled, !strcmp(r.v[i].name, "NETFILTER_DROP") ||
							 !strcmp(r.v[i].name, "TCP_CSUM"));
	drop_reasons_free(&r);
}

/* A benign reason needs its own name: its module or layer does not switch it on. */
static void test_benign_needs_its_name(void **state)
{
	char *group[] = { "l4.sock" }, *named[] = { "l4.sock", "queue_purge" };
	struct drop_reasons r;
	char err[256];

	(void)state;
	load_kernel(&r);
	assert_int_equal(drop_reasons_select(&r, group, 1, NULL, 0, err, sizeof(err)), 0);
	assert_false(must(&r, "QUEUE_PURGE")->enabled);
	assert_true(must(&r, "NO_SOCKET")->enabled);
	assert_int_equal(drop_reasons_select(&r, named, 2, NULL, 0, err, sizeof(err)), 0);
	assert_true(must(&r, "QUEUE_PURGE")->enabled);
	assert_false(must(&r, "SOCKET_CLOSE")->enabled);
	drop_reasons_free(&r);
}

static void test_exclude_wins(void **state)
{
	char *inc[] = { "l3", "NETFILTER_DROP" };
	char *exc[] = { "l3.netfilter", "SKB_DROP_REASON_IP_RPFILTER" }, *exc_only[] = { "l4" };
	struct drop_reasons r;
	char err[256];

	(void)state;
	load_kernel(&r);
	assert_int_equal(drop_reasons_select(&r, inc, 2, exc, 2, err, sizeof(err)), 0);
	for (size_t i = 0; i < r.n; i++) {
		const struct drop_reason *d = &r.v[i];
		bool want = !strcmp(d->layer, "l3") && strcmp(d->module, "l3.netfilter") &&
			    strcmp(d->name, "IP_RPFILTER");

		assert_int_equal(d->enabled, want);
	}
	/* excludes alone trim the defaults */
	assert_int_equal(drop_reasons_select(&r, NULL, 0, exc_only, 1, err, sizeof(err)), 0);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.v[i].enabled, !r.v[i].benign && strcmp(r.v[i].layer, "l4"));
	drop_reasons_free(&r);
}

static void test_unknown_point(void **state)
{
	char *bad[] = { "l9" }, *bad_exc[] = { "NOPE" }, *empty[] = { "" }, *good[] = { "l3" };
	struct drop_reasons r;
	char err[1024], tiny[16];

	(void)state;
	load_kernel(&r);
	assert_int_equal(drop_reasons_select(&r, good, 1, NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(drop_reasons_select(&r, bad, 1, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--include 'l9': unknown drop point"));
	assert_non_null(strstr(err, "valid layers: l1 l2 l3 l4 other;"));
	assert_non_null(strstr(err, " l1.nic "));
	assert_non_null(strstr(err, " l3.netfilter "));
	assert_non_null(strstr(err, " l2.openvswitch "));
	assert_non_null(strstr(err, "reasons: see --list"));
	assert_null(strchr(err, '\n'));
	/* an error leaves the previous selection as it was */
	assert_true(must(&r, "NETFILTER_DROP")->enabled);
	assert_false(must(&r, "TCP_CSUM")->enabled);
	assert_int_equal(drop_reasons_select(&r, good, 1, bad_exc, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--exclude 'NOPE'"));
	assert_int_equal(drop_reasons_select(&r, empty, 1, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(drop_reasons_select(&r, bad, 1, NULL, 0, tiny, sizeof(tiny)), -EINVAL);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	drop_reasons_free(&r);
}

static void test_name_fallbacks(void **state)
{
	struct drop_reasons r;
	const struct drop_reason *d;
	char buf[64];
	uint32_t unknown = 0xfff0; /* past any core reason, no subsystem bits */

	(void)state;
	load_kernel(&r);
	d = must(&r, "NO_SOCKET");
	assert_ptr_equal(drop_reason_name(&r, d->value, buf, sizeof(buf)), d->name);
	assert_null(drop_reasons_find(&r, unknown));
	assert_string_equal(drop_reason_name(&r, unknown, buf, sizeof(buf)), "UNKNOWN_65520");
	assert_null(drop_reasons_find(&r, (7u << 16) | 5));
	assert_string_equal(drop_reason_name(&r, (7u << 16) | 5, buf, sizeof(buf)), "SUBSYS_7_5");
	drop_reasons_free(&r);
}

/* Lines in columns under a header: each column starts where its title does. */
static void test_list_columns(void **state)
{
	struct drop_reasons r;
	char *text = NULL, *line, *save = NULL;
	size_t len = 0, lines = 0, col_layer, col_value_end, col_default;
	FILE *f;

	(void)state;
	load_kernel(&r);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	drop_reasons_list(&r, f);
	fclose(f);
	line = strtok_r(text, "\n", &save);
	assert_non_null(line);
	assert_int_equal(strncmp(line, "NAME ", 5), 0);
	assert_non_null(strstr(line, "MODULE"));
	col_layer = (size_t)(strstr(line, "LAYER") - line);
	col_value_end = (size_t)(strstr(line, "VALUE") - line) + strlen("VALUE");
	col_default = (size_t)(strstr(line, "DEFAULT") - line);
	while ((line = strtok_r(NULL, "\n", &save))) {
		char name[64], layer[16], module[32], def[8];
		unsigned value;
		const struct drop_reason *d;

		assert_int_equal(sscanf(line, "%63s %15s %31s %u %7s", name, layer, module, &value,
					def), 5);
		d = drop_reasons_find(&r, value);
		assert_non_null(d);
		assert_string_equal(d->name, name);
		assert_string_equal(d->layer, layer);
		assert_string_equal(d->module, module);
		assert_string_equal(def, d->benign ? "off" : "on");
		assert_int_equal(strncmp(line + col_layer, layer, strlen(layer)), 0);
		assert_true(line[col_value_end - 1] >= '0' && line[col_value_end - 1] <= '9');
		assert_int_equal(line[col_value_end], ' ');
		assert_string_equal(line + col_default, def);
		lines++;
	}
	assert_int_equal(lines, r.n);
	free(text);
	drop_reasons_free(&r);
}

static void test_missing_btf_file(void **state)
{
	struct drop_reasons r;
	char err[256] = "";

	(void)state;
	assert_int_equal(drop_reasons_load(&r, "/nonexistent/meshlens-btf", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/meshlens-btf"));
	assert_non_null(strstr(err, strerror(ENOENT)));
	assert_null(r.v);
	assert_int_equal(r.n, 0);
	drop_reasons_free(&r);
}

/* ---- synthetic BTF: every value below differs from any real kernel's ---- */

struct enumerator {
	const char *name;
	int64_t value;
};

static void add_enum(struct btf *btf, const char *name, const struct enumerator *e, size_t n)
{
	assert_true(btf__add_enum(btf, name, 4) > 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(btf__add_enum_value(btf, e[i].name, e[i].value), 0);
}

#define ADD_ENUM(btf, name, list) add_enum(btf, name, list, sizeof(list) / sizeof(list[0]))

static const struct enumerator old_core[] = {
	{ "SKB_NOT_DROPPED_YET", 0 },
	{ "SKB_CONSUMED", 1 },
	{ "SKB_DROP_REASON_NOT_SPECIFIED", 2 },
	{ "SKB_DROP_REASON_QUEUE_PURGE", 3 },
	{ "SKB_DROP_REASON_NETFILTER_DROP", 8 }, /* where 5.17 had it */
	{ "SKB_DROP_REASON_MAX", 9 },
};

/* Writes the BTF to a temporary file, loads it, removes the file. */
static int load_synthetic(struct btf *btf, struct drop_reasons *r, char *err, size_t errlen)
{
	char path[] = "/tmp/ml-reasons-btf-XXXXXX";
	const void *raw;
	__u32 size;
	int fd, ret;

	raw = btf__raw_data(btf, &size);
	assert_non_null(raw);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, raw, size), (ssize_t)size);
	close(fd);
	ret = drop_reasons_load(r, path, err, errlen);
	unlink(path);
	btf__free(btf);
	return ret;
}

static void test_synthetic_values_are_read(void **state)
{
	struct btf *btf = btf__new_empty();
	struct drop_reasons r;
	char err[256], buf[64];

	(void)state;
	assert_non_null(btf);
	ADD_ENUM(btf, "skb_drop_reason", old_core);
	/* no skb_drop_reason_subsys: a pre-6.5 kernel, core reasons only */
	assert_int_equal(load_synthetic(btf, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(drop_reasons_find(&r, 8)->name, "NETFILTER_DROP");
	assert_string_equal(drop_reasons_find(&r, 8)->module, "l3.netfilter");
	assert_int_equal(drop_reasons_core_value(&r, "NETFILTER_DROP"), 8);
	assert_int_equal(drop_reasons_core_value(&r, "CONSUMED"), 1);
	assert_int_equal(drop_reasons_core_value(&r, "NOT_DROPPED_YET"), 0);
	assert_null(drop_reasons_find(&r, 9));
	assert_string_equal(drop_reason_name(&r, 12, buf, sizeof(buf)), "UNKNOWN_12");
	assert_true(drop_reasons_find(&r, 3)->benign);
	drop_reasons_free(&r);
}

static void test_synthetic_subsystems(void **state)
{
	static const struct enumerator core[] = {
		{ "SKB_NOT_DROPPED_YET", 0 },
		{ "SKB_CONSUMED", 1 },
		{ "SKB_DROP_REASON_NOT_SPECIFIED", 2 },
		{ "SKB_DROP_REASON_NETFILTER_DROP", 3 },
		{ "SKB_DROP_REASON_MAX", 4 },
		{ "SKB_DROP_REASON_SUBSYS_MASK", 0xffff0000 },
	};
	static const struct enumerator subsys[] = {
		{ "SKB_DROP_REASON_SUBSYS_CORE", 0 },
		{ "SKB_DROP_REASON_SUBSYS_MAC80211_UNUSABLE", 1 },
		{ "SKB_DROP_REASON_SUBSYS_OPENVSWITCH", 2 },
		{ "SKB_DROP_REASON_SUBSYS_NUM", 3 },
	};
	static const struct enumerator ovs[] = {
		{ "__OVS_DROP_REASON", 0x20000 },
		{ "OVS_DROP_LAST_ACTION", 0x20001 },
		{ "OVS_DROP_ACTION_ERROR", 0x20002 },
		{ "OVS_DROP_MAX", 0x20003 },
	};
	static const struct enumerator mac80211[] = {
		{ "RX_CONTINUE", 1 }, /* = SKB_CONSUMED, must not shadow it */
		{ "RX_QUEUED", 0 },
		{ "RX_DROP_UNUSABLE", 0x10000 },
		{ "RX_DROP_U_MIC_FAIL", 0x10001 },
	};
	/* the same bits outside drop enums (BTRFS mount flags), and an unknown subsystem */
	static const struct enumerator flags[] = { { "FLAG_A", 0x10000 }, { "FLAG_B", 0x20000 } };
	static const struct enumerator future[] = { { "FUTURE_DROP_X", 0x50001 } };
	struct btf *btf = btf__new_empty();
	char *ovs_only[] = { "l2.openvswitch" }, *absent[] = { "OVS_DROP_METER" };
	struct drop_reasons r;
	char err[512], buf[64];

	(void)state;
	assert_non_null(btf);
	ADD_ENUM(btf, "skb_drop_reason", core);
	ADD_ENUM(btf, "skb_drop_reason_subsys", subsys);
	ADD_ENUM(btf, "ovs_drop_reason", ovs);
	ADD_ENUM(btf, "mac80211_drop_reason", mac80211);
	ADD_ENUM(btf, NULL, flags);
	ADD_ENUM(btf, "btrfs_mount_opt", flags);
	ADD_ENUM(btf, "future_drop_reason", future);
	assert_int_equal(load_synthetic(btf, &r, err, sizeof(err)), 0);

	assert_int_equal(r.n, 2 + 2 + 2);
	assert_string_equal(drop_reasons_find(&r, 0x20001)->name, "OVS_DROP_LAST_ACTION");
	assert_string_equal(drop_reasons_find(&r, 0x20002)->module, "l2.openvswitch");
	assert_string_equal(drop_reasons_find(&r, 0x20002)->layer, "l2");
	assert_string_equal(drop_reasons_find(&r, 0x10000)->name, "RX_DROP_UNUSABLE");
	assert_string_equal(drop_reasons_find(&r, 0x10001)->module, "l2.mac80211");
	assert_true(drop_reasons_find(&r, 0x20002)->enabled);
	assert_null(drop_reasons_find(&r, 0x20000)); /* __OVS_DROP_REASON: a marker */
	assert_string_equal(drop_reason_name(&r, 0x20003, buf, sizeof(buf)), "SUBSYS_2_3");
	assert_string_equal(drop_reason_name(&r, 0x50001, buf, sizeof(buf)), "SUBSYS_5_1");
	assert_int_equal(drop_reasons_core_value(&r, "CONSUMED"), 1);
	assert_int_equal(drop_reasons_core_value(&r, "OVS_DROP_LAST_ACTION"), -1);

	assert_int_equal(drop_reasons_select(&r, ovs_only, 1, NULL, 0, err, sizeof(err)), 0);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.v[i].enabled, r.v[i].value >> 16 == 2);
	assert_int_equal(drop_reasons_select(&r, absent, 1, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'OVS_DROP_METER'"));
	drop_reasons_free(&r);
}

static void test_synthetic_bad_layouts(void **state)
{
	static const struct enumerator wide_mask[] = {
		{ "SKB_DROP_REASON_NOT_SPECIFIED", 2 },
		{ "SKB_DROP_REASON_SUBSYS_MASK", 0xff000000 },
	};
	static const struct enumerator other[] = { { "SOMETHING", 1 } };
	struct drop_reasons r;
	struct btf *btf;
	char err[256], path[] = "/tmp/ml-reasons-junk-XXXXXX";
	int fd;

	(void)state;
	btf = btf__new_empty();
	assert_non_null(btf);
	ADD_ENUM(btf, "skb_drop_reason", wide_mask);
	assert_int_equal(load_synthetic(btf, &r, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "SUBSYS_MASK is 0xff000000"));
	assert_null(r.v);

	btf = btf__new_empty();
	assert_non_null(btf);
	ADD_ENUM(btf, "unrelated", other);
	/* a kernel before 5.17 names no drop: one reason, NOT_SPECIFIED (2), on */
	assert_int_equal(load_synthetic(btf, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].name, "NOT_SPECIFIED");
	assert_int_equal(r.v[0].value, 2);
	assert_true(r.v[0].enabled);
	assert_false(r.v[0].benign);
	drop_reasons_free(&r);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not BTF at all\n", 15), 15);
	close(fd);
	assert_true(drop_reasons_load(&r, path, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, path));
	unlink(path);
	drop_reasons_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_netfilter_drop_value_from_btf),
		cmocka_unit_test(test_every_core_enumerator_loaded),
		cmocka_unit_test(test_nondrops_hidden_but_valued),
		cmocka_unit_test(test_representative_modules),
		cmocka_unit_test(test_no_core_reason_unmapped),
		cmocka_unit_test(test_benign_off_by_default),
		cmocka_unit_test(test_include_layer_and_module),
		cmocka_unit_test(test_include_names),
		cmocka_unit_test(test_benign_needs_its_name),
		cmocka_unit_test(test_exclude_wins),
		cmocka_unit_test(test_unknown_point),
		cmocka_unit_test(test_name_fallbacks),
		cmocka_unit_test(test_list_columns),
		cmocka_unit_test(test_missing_btf_file),
		cmocka_unit_test(test_synthetic_values_are_read),
		cmocka_unit_test(test_synthetic_subsystems),
		cmocka_unit_test(test_synthetic_bad_layouts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
