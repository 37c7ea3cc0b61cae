// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * reasons - drop reasons named from BTF, mapped to rtrace-style layers.
 *
 * Nothing here knows a reason's number: NETFILTER_DROP was 8, then 11, and
 * is 12 on 6.18, and subsystem reasons only exist when their module is
 * loaded. Names come from the enumerators, numbers from their values, and
 * the layer/module from the name through the pattern table below.
 */
#define _GNU_SOURCE /* strcasestr */
#include "reasons.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <bpf/btf.h>

#include "../lib/util.h"

/*
 * SKB_DROP_REASON_SUBSYS_SHIFT is a #define, so BTF does not carry it; the
 * SKB_DROP_REASON_SUBSYS_MASK enumerator does, and load checks they agree.
 */
#define SUBSYS_SHIFT 16
#define SUBSYS_MASK (UINT32_MAX << SUBSYS_SHIFT)
#define SUBSYS_OF(v) ((v) >> SUBSYS_SHIFT)

#define CORE_PREFIX "SKB_DROP_REASON_"
#define SUBSYS_PREFIX "SKB_DROP_REASON_SUBSYS_"
#define MODULE_BTF_DIR "/sys/kernel/btf"

/* An exact name, or a prefix when the pattern ends in '*'. */
struct reason_map {
	const char *pattern;
	const char *module;
};

/*
 * Core reasons, by name; the first match wins, so specific names come
 * before the prefixes that would also match them. Every enumerator of 6.18
 * maps to a module; a reason a newer kernel adds falls to a prefix or to
 * "other" (the unit test names any such reason on the kernel it runs on).
 */
static const struct reason_map core_map[] = {
	/*
	 * No reason given (kfree_skb() without one): the layer is unknown.
	 * It also fires for pure ACKs a socket in CLOSE_WAIT receives after a
	 * half-close (see benign_reasons[] below).
	 */
	{ "NOT_SPECIFIED", "other" },

	/*
	 * FIB decisions on input and output: reverse-path filter, no route,
	 * and the martian source/destination checks of fib_validate_source()
	 * and ip_route_input_slow(), the same family as rp_filter.
	 */
	{ "IP_RPFILTER", "l3.route" },
	{ "IP_OUTNOROUTES", "l3.route" },
	{ "IP_INNOROUTES", "l3.route" },
	{ "IP_LOCAL_SOURCE", "l3.route" },
	{ "IP_INVALID_SOURCE", "l3.route" },
	{ "IP_LOCALNET", "l3.route" },
	{ "IP_INVALID_DEST", "l3.route" },

	/* Encapsulation: VXLAN (its FDB has no remote: NO_TX_TARGET), IP tunnels. */
	{ "IP_TUNNEL_*", "l3.tunnel" },
	{ "VXLAN_*", "l3.tunnel" },
	{ "TUNNEL_*", "l3.tunnel" },
	{ "NO_TX_TARGET", "l3.tunnel" },

	/*
	 * IPv6 neighbour discovery is to IPv6 what ARP is to IPv4, so it sits
	 * with the neighbour table rather than with the IPv6 header checks.
	 */
	{ "IPV6_NDISC_*", "l2.neigh" },
	{ "NEIGH_*", "l2.neigh" },
	{ "ARP_*", "l2.neigh" },

	/* IP itself: header, checksum, options, address errors, fragments, MTU. */
	{ "IPV6*", "l3.ipv6" },
	{ "IP_*", "l3.ip" },
	{ "PKT_TOO_SMALL", "l3.ip" },
	{ "PKT_TOO_BIG", "l3.ip" },
	{ "OTHERHOST", "l3.ip" },
	{ "UNICAST_IN_L2_MULTICAST", "l3.ip" },
	{ "DUP_FRAG", "l3.ip" },
	{ "FRAG_*", "l3.ip" },

	{ "NETFILTER_DROP", "l3.netfilter" },
	{ "NF_*", "l3.netfilter" },

	/* IPsec policy, and PSP, the other encryption protocol with its own policy checks. */
	{ "XFRM_*", "l3.xfrm" },
	{ "PSP_*", "l3.xfrm" },

	/* cgroup BPF egress programs (ip_finish_output): policy written in BPF. */
	{ "BPF_CGROUP_*", "l3.bpf" },

	{ "TCP_*", "l4.tcp" },
	{ "UDP_*", "l4.udp" },
	/* INVALID_PROTO: icmp_rcv() refusing what RFC 1122 forbids (broadcast timestamps). */
	{ "ICMP_*", "l4.icmp" },
	{ "INVALID_PROTO", "l4.icmp" },

	/*
	 * Socket level, whatever the protocol: no socket, receive buffer and
	 * backlog full, socket filters and LSM hooks (sk_filter_trim_cap()
	 * also refuses memory-reserve skbs: PFMEMALLOC), queues freed on
	 * close, AF_UNIX and AF_PACKET sockets.
	 */
	{ "NO_SOCKET", "l4.sock" },
	{ "SOCKET_*", "l4.sock" },
	{ "PROTO_MEM", "l4.sock" },
	{ "SECURITY_HOOK", "l4.sock" },
	{ "PFMEMALLOC", "l4.sock" },
	{ "QUEUE_PURGE", "l4.sock" },
	{ "UNIX_*", "l4.sock" },
	{ "PACKET_SOCK_ERROR", "l4.sock" },

	/* Traffic control: qdiscs (fq, cake, dualpi2, ...) and tc classifiers/actions. */
	{ "QDISC_*", "l2.qdisc" },
	{ "TC_*", "l2.qdisc" },
	{ "FQ_*", "l2.qdisc" },
	{ "CAKE_*", "l2.qdisc" },
	{ "DUALPI2_*", "l2.qdisc" },

	{ "BRIDGE_*", "l2.bridge" },

	/* The device's own ring (tun/tap, veth, drivers) overflowed. */
	{ "FULL_RING", "l1.nic" },

	/*
	 * The device layer: netif receive/xmit (per-CPU backlog, no handler
	 * for the protocol, generic XDP, xmit recursion), skb buffer handling
	 * (checksum, GSO, copy from user, truncated header, no memory),
	 * device state, MAC-level checks, tun/tap filters, CAN frames.
	 */
	{ "DEV_*", "l2.dev" },
	{ "SKB_*", "l2.dev" },
	{ "MAC_*", "l2.dev" },
	{ "LOCAL_MAC", "l2.dev" },
	{ "CPU_BACKLOG", "l2.dev" },
	{ "UNHANDLED_PROTO", "l2.dev" },
	{ "XDP", "l2.dev" },
	{ "RECURSION_LIMIT", "l2.dev" },
	{ "NOMEM", "l2.dev" },
	{ "HDR_TRUNC", "l2.dev" },
	{ "TAP_*", "l2.dev" },
	{ "CAN_*", "l2.dev" },
	{ "CANFD_*", "l2.dev" },
	{ "CANXL_*", "l2.dev" },
};

/* Subsystems, by their SKB_DROP_REASON_SUBSYS_ enumerator minus that prefix. */
static const struct reason_map subsys_map[] = {
	{ "OPENVSWITCH", "l2.openvswitch" },
	{ "MAC80211*", "l2.mac80211" }, /* _UNUSABLE, and _MONITOR before 6.12 */
};

static const char *const layers[] = { "l1", "l2", "l3", "l4", "other" };

/*
 * Benign: off by default because ordinary traffic makes them fire, so
 * counting them would bury real drops. Measured on 6.18 by counting
 * skb:kfree_skb reasons of the traffic tool's own process:
 * - QUEUE_PURGE: once per connection (100 loopback connections -> 100,
 *   IPv4 and IPv6, with or without payload, either side closing; a
 *   1000-connection storm -> 1000): the first closer, orphaned in
 *   FIN_WAIT2, purges its receive queue (holding the peer's FIN) in
 *   inet_csk_destroy_sock() -> sk_stream_kill_queues().
 * - SOCKET_CLOSE: an AF_UNIX socket closed with messages still queued
 *   (20 datagram pairs closed with 2 unread -> 40): data the application
 *   chose not to read, not lost on the way.
 * - UNIX_SKIP_OOB: every read past an AF_UNIX MSG_OOB mark (20 -> 20): the
 *   out-of-band byte is skipped by design.
 * - NOT_SPECIFIED: 49 of 50 half-closed connections (pure ACKs reaching a
 *   CLOSE_WAIT socket are freed with no reason). It is also every drop site
 *   the kernel has not annotated, so it is one --include away; on by
 *   default it would give ordinary connections "drops" in the access log.
 * Measured and kept on: NO_SOCKET
 * and TCP_CLOSE (7 of 50 clients closing with unread data while the server
 * kept sending) are data really thrown away, as are refused connects and
 * UDP to closed ports (NO_SOCKET). TCP_OLD_DATA never fired on clean
 * loopback; when it does, a retransmission raced an ACK: worth seeing.
 */
static const char *const benign_reasons[] = { "QUEUE_PURGE", "SOCKET_CLOSE", "UNIX_SKIP_OOB",
					      "NOT_SPECIFIED" };

struct reason_vec {
	struct drop_reason *v;
	size_t n, cap;
};

struct subsys {
	uint32_t id;
	const char *module;
};

/* Appends to what buf already holds, truncating at len. */
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t off = strnlen(buf, len);
	va_list ap;

	if (off + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
}

static bool pattern_match(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);

	if (n && pattern[n - 1] == '*')
		return !strncmp(pattern, name, n - 1);
	return !strcmp(pattern, name);
}

static const char *map_lookup(const struct reason_map *map, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (pattern_match(map[i].pattern, name))
			return map[i].module;
	return "other";
}

/* "l3.route" -> "l3"; the layer strings are static, like the modules. */
static const char *layer_of(const char *module)
{
	size_t len = strcspn(module, ".");

	for (size_t i = 0; i < ARRAY_SIZE(layers); i++)
		if (strlen(layers[i]) == len && !strncmp(layers[i], module, len))
			return layers[i];
	return "other";
}

static bool is_benign(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(benign_reasons); i++)
		if (!strcmp(benign_reasons[i], name))
			return true;
	return false;
}

static int vec_push(struct reason_vec *vec, uint32_t value, const char *name, const char *module,
		    bool benign)
{
	struct drop_reason *d;

	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 256;

		d = realloc(vec->v, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		vec->v = d;
		vec->cap = cap;
	}
	d = &vec->v[vec->n++];
	memset(d, 0, sizeof(*d));
	d->value = value;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->module = module;
	d->layer = layer_of(module);
	d->benign = benign;
	d->enabled = !benign;
	return 0;
}

static int cmp_reason(const void *a, const void *b)
{
	const struct drop_reason *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return strcmp(x->name, y->name);
}

static const struct btf_type *find_enum(const struct btf *btf, const char *name)
{
	int id = btf__find_by_name_kind(btf, name, BTF_KIND_ENUM);

	return id > 0 ? btf__type_by_id(btf, id) : NULL;
}

/*
 * enum skb_drop_reason: SKB_DROP_REASON_X are drops named "X"; other SKB_
 * enumerators (SKB_NOT_DROPPED_YET, SKB_CONSUMED) are the non-drops,
 * collected apart. SKB_DROP_REASON_MAX and the subsystem mask are markers.
 */
static int load_core(const struct btf *btf, const struct btf_type *t, struct reason_vec *drops,
		     struct reason_vec *nondrops, char *err, size_t errlen)
{
	const struct btf_enum *e = btf_enum(t);
	int ret;

	for (int i = 0; i < btf_vlen(t); i++, e++) {
		const char *name = btf__name_by_offset(btf, e->name_off);
		uint32_t value = (uint32_t)e->val;

		if (!name || strncmp(name, "SKB_", 4))
			continue;
		if (!strcmp(name, CORE_PREFIX "SUBSYS_MASK")) {
			if (value != SUBSYS_MASK) {
				ml_err(err, errlen, -EINVAL,
					"enum skb_drop_reason: SUBSYS_MASK is 0x%" PRIx32
					", expected 0x%" PRIx32 ": unknown reason layout",
					value, (uint32_t)SUBSYS_MASK);
				return -EPROTO;
			}
			continue;
		}
		if (!strcmp(name, CORE_PREFIX "MAX") || SUBSYS_OF(value))
			continue;
		if (!strncmp(name, CORE_PREFIX, strlen(CORE_PREFIX))) {
			name += strlen(CORE_PREFIX);
			ret = vec_push(drops, value, name,
				       map_lookup(core_map, ARRAY_SIZE(core_map), name),
				       is_benign(name));
		} else {
			ret = vec_push(nondrops, value, name + 4, "other", false);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * enum skb_drop_reason_subsys: SKB_DROP_REASON_SUBSYS_OPENVSWITCH = 2, ...
 * Kernels before 6.5 have none: *n stays 0 and only core reasons load.
 */
static int load_subsystems(const struct btf *btf, struct subsys **out, int *n)
{
	const struct btf_type *t = find_enum(btf, "skb_drop_reason_subsys");
	const struct btf_enum *e;
	struct subsys *s;

	*out = NULL;
	*n = 0;
	if (!t)
		return 0;
	s = calloc(btf_vlen(t) ? btf_vlen(t) : 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	e = btf_enum(t);
	for (int i = 0; i < btf_vlen(t); i++, e++) {
		const char *name = btf__name_by_offset(btf, e->name_off);

		/* CORE is enum skb_drop_reason itself; NUM is a marker */
		if (!name || strncmp(name, SUBSYS_PREFIX, strlen(SUBSYS_PREFIX)) ||
		    !e->val || !strcmp(name, SUBSYS_PREFIX "NUM"))
			continue;
		name += strlen(SUBSYS_PREFIX);
		s[*n].id = (uint32_t)e->val;
		s[*n].module = map_lookup(subsys_map, ARRAY_SIZE(subsys_map), name);
		(*n)++;
	}
	*out = s;
	return 0;
}

static const struct subsys *find_subsys(const struct subsys *s, int n, uint32_t id)
{
	for (int i = 0; i < n; i++)
		if (s[i].id == id)
			return &s[i];
	return NULL;
}

/*
 * A subsystem names its reasons in its own enum (enum ovs_drop_reason,
 * enum mac80211_drop_reason) whose values already carry the subsystem id
 * in the upper bits. Such an enum is found by its values, but only among
 * named enums with "drop" in the name: flag enums elsewhere (BTRFS mount
 * options: 0x10000, 0x20000) have the same bits. In those enums, names
 * with a leading underscore are markers or aliases (__OVS_DROP_REASON,
 * ___RX_DROP_*), and *_MAX ends the list. A compiler may leave an enum out
 * of BTF when no variable uses it; its reasons then stay unnamed
 * (drop_reason_name() falls back to SUBSYS_<s>_<code>).
 */
static int scan_subsys_enums(const struct btf *btf, __u32 first_id, const struct subsys *subs,
			     int n_subs, struct reason_vec *drops)
{
	__u32 cnt = btf__type_cnt(btf);

	for (__u32 id = first_id; id < cnt; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_enum *e;
		const char *tname;

		if (!btf_is_enum(t))
			continue;
		tname = btf__name_by_offset(btf, t->name_off);
		if (!tname || !strcasestr(tname, "drop") || !strncmp(tname, "skb_drop_reason", 15))
			continue;
		e = btf_enum(t);
		for (int i = 0; i < btf_vlen(t); i++, e++) {
			const char *name = btf__name_by_offset(btf, e->name_off);
			uint32_t value = (uint32_t)e->val;
			const struct subsys *s = find_subsys(subs, n_subs, SUBSYS_OF(value));
			size_t len = name ? strlen(name) : 0;
			int ret;

			if (!s || !len || name[0] == '_' ||
			    (len > 4 && !strcmp(name + len - 4, "_MAX")))
				continue;
			ret = vec_push(drops, value, name, s->module, false);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/*
 * Module BTF (/sys/kernel/btf/<module>) is split BTF on top of vmlinux:
 * only the module's own types, from btf__type_cnt(vmlinux) on, are new.
 * A module that fails to parse (unloading right now) is skipped.
 */
static int scan_modules(struct btf *vmlinux, const struct subsys *subs, int n_subs,
			struct reason_vec *drops)
{
	DIR *dir = opendir(MODULE_BTF_DIR);
	struct dirent *de;
	int ret = 0;

	if (!dir)
		return 0;
	while (!ret && (de = readdir(dir))) {
		char path[512];
		struct btf *mod;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "vmlinux"))
			continue;
		snprintf(path, sizeof(path), MODULE_BTF_DIR "/%s", de->d_name);
		mod = btf__parse_split(path, vmlinux);
		if (!mod)
			continue;
		ret = scan_subsys_enums(mod, btf__type_cnt(vmlinux), subs, n_subs, drops);
		btf__free(mod);
	}
	closedir(dir);
	return ret;
}

/*
 * Sorts the drops by value for drop_reasons_find() (a value named twice
 * keeps one name) and sets *n to how many there are. The non-drops ride
 * behind them, ended by an entry with an empty name:
 * drop_reasons_core_value() needs their values, and nothing that walks
 * v[0..n) sees them.
 */
static int finish(struct reason_vec *drops, const struct reason_vec *nondrops, size_t *n)
{
	size_t kept = 0;
	int ret = 0;

	if (drops->n)
		qsort(drops->v, drops->n, sizeof(*drops->v), cmp_reason);
	for (size_t i = 0; i < drops->n; i++)
		if (!kept || drops->v[i].value != drops->v[kept - 1].value)
			drops->v[kept++] = drops->v[i];
	drops->n = kept;
	for (size_t i = 0; !ret && i < nondrops->n; i++)
		ret = vec_push(drops, nondrops->v[i].value, nondrops->v[i].name, "other", false);
	if (!ret)
		ret = vec_push(drops, 0, "", "other", false);
	*n = kept;
	return ret;
}

int drop_reasons_load(struct drop_reasons *r, const char *btf_path, char *err, size_t errlen)
{
	const char *where = btf_path ? btf_path : MODULE_BTF_DIR "/vmlinux";
	struct reason_vec drops = { 0 }, nondrops = { 0 };
	struct subsys *subs = NULL;
	const struct btf_type *t;
	struct btf *btf;
	size_t n = 0;
	int ret, n_subs = 0;

	r->v = NULL;
	r->n = 0;
	btf = btf_path ? btf__parse(btf_path, NULL) : btf__load_vmlinux_btf();
	if (!btf) {
		ret = errno ? -errno : -ENOENT;
		ml_err(err, errlen, -EINVAL, "reading BTF %s: %s", where, strerror(-ret));
		return ret;
	}
	t = find_enum(btf, "skb_drop_reason");
	if (!t) {
		/*
		 * Before 5.17 kfree_skb() gave no reason: every drop is
		 * NOT_SPECIFIED, as the kernel says where reasons exist (2),
		 * and counted by default (it is the only one).
		 */
		ret = vec_push(&drops, 2, "NOT_SPECIFIED", "other", false);
		if (!ret)
			ret = finish(&drops, &nondrops, &n);
		if (ret) {
			ml_err(err, errlen, -EINVAL, "loading drop reasons: %s", strerror(-ret));
			goto cleanup;
		}
		r->v = drops.v;
		r->n = n;
		drops.v = NULL;
		goto cleanup;
	}
	ret = load_core(btf, t, &drops, &nondrops, err, errlen);
	if (ret == -EPROTO)
		goto cleanup;
	if (!ret)
		ret = load_subsystems(btf, &subs, &n_subs);
	if (!ret && n_subs)
		ret = scan_subsys_enums(btf, 1, subs, n_subs, &drops);
	if (!ret && n_subs && !btf_path)
		ret = scan_modules(btf, subs, n_subs, &drops);
	if (!ret)
		ret = finish(&drops, &nondrops, &n);
	if (ret) {
		ml_err(err, errlen, -EINVAL, "loading drop reasons from %s: %s", where, strerror(-ret));
		goto cleanup;
	}
	r->v = drops.v;
	r->n = n;
	drops.v = NULL;
cleanup:
	free(subs);
	free(drops.v);
	free(nondrops.v);
	btf__free(btf);
	return ret;
}

static const char *strip_core_prefix(const char *name)
{
	size_t n = strlen(CORE_PREFIX);

	return strncasecmp(name, CORE_PREFIX, n) ? name : name + n;
}

static const struct drop_reason *find_core(const struct drop_reasons *r, const char *name)
{
	if (!r->v)
		return NULL;
	for (size_t i = 0; i < r->n; i++)
		if (!SUBSYS_OF(r->v[i].value) && !strcasecmp(r->v[i].name, name))
			return &r->v[i];
	for (const struct drop_reason *d = r->v + r->n; d->name[0]; d++)
		if (!strcasecmp(d->name, name))
			return d;
	return NULL;
}

int64_t drop_reasons_core_value(const struct drop_reasons *r, const char *name)
{
	const struct drop_reason *d = find_core(r, strip_core_prefix(name));

	/* "SKB_CONSUMED" is an enumerator name too; "SKB_CSUM" is a reason's */
	if (!d && !strncasecmp(name, "SKB_", 4))
		d = find_core(r, name + 4);
	return d ? (int64_t)d->value : -1;
}

const struct drop_reason *drop_reasons_find(const struct drop_reasons *r, uint32_t value)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->v[mid].value == value)
			return &r->v[mid];
		if (r->v[mid].value < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *drop_reason_name(const struct drop_reasons *r, uint32_t value, char *buf,
			     size_t len)
{
	const struct drop_reason *d = drop_reasons_find(r, value);

	if (d)
		return d->name;
	if (SUBSYS_OF(value))
		snprintf(buf, len, "SUBSYS_%" PRIu32 "_%" PRIu32, SUBSYS_OF(value),
			 value & ~SUBSYS_MASK);
	else
		snprintf(buf, len, "UNKNOWN_%" PRIu32, value);
	return buf;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every module a reason can map to, sorted, without repeats; returns how many. */
static size_t known_modules(const char **out)
{
	const struct reason_map *maps[] = { core_map, subsys_map };
	const size_t sizes[] = { ARRAY_SIZE(core_map), ARRAY_SIZE(subsys_map) };
	size_t n = 0;

	out[n++] = "other";
	for (size_t m = 0; m < ARRAY_SIZE(maps); m++) {
		for (size_t i = 0; i < sizes[m]; i++) {
			size_t j = 0;

			while (j < n && strcmp(out[j], maps[m][i].module))
				j++;
			if (j == n)
				out[n++] = maps[m][i].module;
		}
	}
	qsort(out, n, sizeof(*out), cmp_str);
	return n;
}

#define MAX_MODULES (ARRAY_SIZE(core_map) + ARRAY_SIZE(subsys_map) + 1)

static bool name_matches(const struct drop_reason *d, const char *point)
{
	return !strcasecmp(d->name, strip_core_prefix(point));
}

static bool group_matches(const struct drop_reason *d, const char *point)
{
	return !strcasecmp(d->layer, point) || !strcasecmp(d->module, point);
}

static bool point_known(const struct drop_reasons *r, const char *point)
{
	const char *mods[MAX_MODULES];
	size_t n = known_modules(mods);

	for (size_t i = 0; i < ARRAY_SIZE(layers); i++)
		if (!strcasecmp(layers[i], point))
			return true;
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(mods[i], point))
			return true;
	for (size_t i = 0; i < r->n; i++)
		if (name_matches(&r->v[i], point))
			return true;
	return false;
}

/* "--include 'l9': unknown drop point; valid layers: ...; modules: ...; reasons: see --list" */
static void unknown_point(const char *opt, const char *point, char *err, size_t errlen)
{
	const char *mods[MAX_MODULES];
	size_t n = known_modules(mods);

	ml_err(err, errlen, -EINVAL, "%s '%s': unknown drop point; valid layers:", opt, point);
	for (size_t i = 0; i < ARRAY_SIZE(layers); i++)
		append(err, errlen, " %s", layers[i]);
	append(err, errlen, "; modules:");
	for (size_t i = 0; i < n; i++)
		append(err, errlen, " %s", mods[i]);
	append(err, errlen, "; reasons: see --list");
}

int drop_reasons_select(struct drop_reasons *r, char *const *include, int n_include,
			char *const *exclude, int n_exclude, char *err, size_t errlen)
{
	/* validate everything first: an error leaves the selection untouched */
	for (int i = 0; i < n_include; i++) {
		if (!point_known(r, include[i])) {
			unknown_point("--include", include[i], err, errlen);
			return -EINVAL;
		}
	}
	for (int i = 0; i < n_exclude; i++) {
		if (!point_known(r, exclude[i])) {
			unknown_point("--exclude", exclude[i], err, errlen);
			return -EINVAL;
		}
	}
	/*
	 * A layer or module turns on its benign reasons only when they are
	 * named: --include l4.sock asks for socket drops, not for the
	 * QUEUE_PURGE of every close.
	 */
	for (size_t k = 0; k < r->n; k++) {
		struct drop_reason *d = &r->v[k];

		d->enabled = n_include ? false : !d->benign;
		for (int i = 0; i < n_include; i++)
			if (name_matches(d, include[i]) ||
			    (!d->benign && group_matches(d, include[i])))
				d->enabled = true;
		for (int i = 0; i < n_exclude; i++)
			if (name_matches(d, exclude[i]) || group_matches(d, exclude[i]))
				d->enabled = false;
	}
	return 0;
}

void drop_reasons_list(const struct drop_reasons *r, FILE *out)
{
	int wname = (int)strlen("NAME"), wmod = (int)strlen("MODULE"), wval = (int)strlen("VALUE");
	int wlayer = (int)strlen("LAYER");

	for (size_t i = 0; i < r->n; i++) {
		const struct drop_reason *d = &r->v[i];
		int w = snprintf(NULL, 0, "%" PRIu32, d->value);

		if ((int)strlen(d->name) > wname)
			wname = (int)strlen(d->name);
		if ((int)strlen(d->module) > wmod)
			wmod = (int)strlen(d->module);
		if ((int)strlen(d->layer) > wlayer)
			wlayer = (int)strlen(d->layer);
		if (w > wval)
			wval = w;
	}
	fprintf(out, "%-*s  %-*s  %-*s  %*s  %s\n", wname, "NAME", wlayer, "LAYER", wmod, "MODULE",
		wval, "VALUE", "DEFAULT");
	for (size_t i = 0; i < r->n; i++) {
		const struct drop_reason *d = &r->v[i];

		fprintf(out, "%-*s  %-*s  %-*s  %*" PRIu32 "  %s\n", wname, d->name, wlayer,
			d->layer, wmod, d->module, wval, d->value, d->benign ? "off" : "on");
	}
}

void drop_reasons_free(struct drop_reasons *r)
{
	free(r->v);
	r->v = NULL;
	r->n = 0;
}
