// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Drop diagnosis from sources that need no BPF: sock_diag and rtnetlink
 * (libnl-3), /proc/net MIB counters and /proc/sys settings.
 *
 * A pass takes a snapshot of every source, then turns it into findings.
 * diag_run keeps its snapshot as the baseline the next run compares counters
 * against; diag_render takes a fresh snapshot too but leaves the baseline
 * alone, so metric scrapes do not eat the deltas a periodic diag_run reports.
 *
 * Everything is read in the calling thread's network namespace: netlink
 * sockets are opened per pass (a socket stays in the netns it was created
 * in) and /proc is read through /proc/thread-self, which /proc/net (a link to
 * self/net, the thread group leader's) is not for a thread that called
 * setns().
 */
#include "diagnose.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#define PROC_NET "/proc/thread-self/net/"
#define PROC_SYS "/proc/sys/"

/* Series caps: listeners and interfaces beyond them are summed into "other". */
#define MAX_LISTENERS 50
#define MAX_NICS 256

#include "../lib/util.h"

/* ---- tables: what is read, where it drops, what to do about it ----------- */

enum sysctl_id {
	SC_NONE, /* no argument: hints print "" for it */
	SC_SOMAXCONN,
	SC_SYN_BACKLOG,
	SC_SYNCOOKIES,
	SC_NETDEV_BACKLOG,
	SC_NETDEV_BUDGET,
	SC_TCP_RMEM,
	SC_RMEM_MAX,
	SC_WMEM_MAX,
	SC_IP_FORWARD,
	SC_CT_COUNT,
	SC_CT_MAX,
	SC_TW_RECYCLE, /* gone since Linux 4.12; still found on old hosts */
	SC_RPF_ALL,
	SC_RPF_DEFAULT,
	N_SYSCTL,
};

static const char *const sysctl_name[N_SYSCTL] = {
	[SC_SOMAXCONN] = "net.core.somaxconn",
	[SC_SYN_BACKLOG] = "net.ipv4.tcp_max_syn_backlog",
	[SC_SYNCOOKIES] = "net.ipv4.tcp_syncookies",
	[SC_NETDEV_BACKLOG] = "net.core.netdev_max_backlog",
	[SC_NETDEV_BUDGET] = "net.core.netdev_budget",
	[SC_TCP_RMEM] = "net.ipv4.tcp_rmem",
	[SC_RMEM_MAX] = "net.core.rmem_max",
	[SC_WMEM_MAX] = "net.core.wmem_max",
	[SC_IP_FORWARD] = "net.ipv4.ip_forward",
	[SC_CT_COUNT] = "net.netfilter.nf_conntrack_count",
	[SC_CT_MAX] = "net.netfilter.nf_conntrack_max",
	[SC_TW_RECYCLE] = "net.ipv4.tcp_tw_recycle",
	[SC_RPF_ALL] = "net.ipv4.conf.all.rp_filter",
	[SC_RPF_DEFAULT] = "net.ipv4.conf.default.rp_filter",
};

#define CSUM_HINT                                                                                  \
	"corrupted packets: a faulty NIC, cable or checksum offload; compare the NICs' "           \
	"rx_crc_errors and try ethtool -K IF rx off"

/*
 * Counters of /proc/net/{netstat,snmp,snmp6} and softnet_stat that count
 * packets lost at one drop point. The hint is a printf format taking the
 * values of the sysctls in arg. worst is the severity of fresh increases;
 * counters that show pressure rather than loss stop at a warning.
 */
struct counter_def {
	const char *mib, *name, *layer, *point;
	enum diag_severity worst;
	const char *hint;
	enum sysctl_id arg[2];
};

static const struct counter_def counters[] = {
	{ "TcpExt", "ListenOverflows", "l4", "l4.tcp.accept_queue", DIAG_PROBLEM,
	  "an accept queue was full: a listener does not accept() fast enough or its listen() "
	  "backlog is too small (capped by net.core.somaxconn, %s)",
	  { SC_SOMAXCONN } },
	{ "TcpExt", "ListenDrops", "l4", "l4.tcp.listen", DIAG_PROBLEM,
	  "SYNs or handshake ACKs dropped at a listener: the ListenOverflows plus memory, route "
	  "or security failures; any excess over ListenOverflows is the latter",
	  {} },
	{ "TcpExt", "TCPReqQFullDrop", "l4", "l4.tcp.syn_queue", DIAG_PROBLEM,
	  "SYN queue full without syncookies: enable net.ipv4.tcp_syncookies (%s) or raise the "
	  "listen() backlog and net.ipv4.tcp_max_syn_backlog (%s); a SYN flood looks the same",
	  { SC_SYNCOOKIES, SC_SYN_BACKLOG } },
	{ "TcpExt", "TCPReqQFullDoCookies", "l4", "l4.tcp.syn_queue", DIAG_WARNING,
	  "SYN queue full, answered with syncookies (those connections lose window scaling and "
	  "SACK unless timestamps are on): raise the listen() backlog, or look for a SYN flood",
	  {} },
	{ "TcpExt", "TCPBacklogDrop", "l4", "l4.tcp.socket_backlog", DIAG_PROBLEM,
	  "socket backlog full while the application held the socket lock: read faster or raise "
	  "the receive buffer (SO_RCVBUF; net.ipv4.tcp_rmem %s, net.core.rmem_max %s)",
	  { SC_TCP_RMEM, SC_RMEM_MAX } },
	{ "TcpExt", "TCPRcvQDrop", "l4", "l4.tcp.rcv_queue", DIAG_PROBLEM,
	  "receive queue over the socket's rcvbuf under memory pressure: read faster or raise "
	  "net.ipv4.tcp_rmem (%s)",
	  { SC_TCP_RMEM } },
	{ "TcpExt", "TCPOFODrop", "l4", "l4.tcp.ofo_queue", DIAG_PROBLEM,
	  "out-of-order segments dropped for lack of receive buffer: raise net.ipv4.tcp_rmem "
	  "(%s) and look for loss upstream",
	  { SC_TCP_RMEM } },
	{ "TcpExt", "TCPZeroWindowDrop", "l4", "l4.tcp.zero_window", DIAG_PROBLEM,
	  "data beyond a zero receive window: a receiving application stopped reading",
	  {} },
	{ "TcpExt", "PFMemallocDrop", "l4", "l4.tcp.pfmemalloc", DIAG_PROBLEM,
	  "packets in emergency (pfmemalloc) memory dropped: the host is short of memory",
	  {} },
	{ "TcpExt", "TCPMinTTLDrop", "l4", "l4.tcp.min_ttl", DIAG_PROBLEM,
	  "segments below a socket's IP_MINTTL / IPV6_MINHOPCOUNT (GTSM): check the path's "
	  "hop count",
	  {} },
	{ "TcpExt", "IPReversePathFilter", "l3", "l3.ip.rp_filter", DIAG_PROBLEM,
	  "reverse path filter drops: replies would leave by another interface (asymmetric "
	  "routing); use rp_filter 2 (loose) or fix the routes",
	  {} },
	{ "Tcp", "InCsumErrors", "l4", "l4.tcp.csum", DIAG_PROBLEM, CSUM_HINT, {} },
	{ "Udp", "InCsumErrors", "l4", "l4.udp.csum", DIAG_PROBLEM, CSUM_HINT, {} },
	{ "Udp6", "InCsumErrors", "l4", "l4.udp.csum", DIAG_PROBLEM, CSUM_HINT, {} },
	{ "Udp", "RcvbufErrors", "l4", "l4.udp.rcvbuf", DIAG_PROBLEM,
	  "UDP receive buffer full: read faster or raise SO_RCVBUF (net.core.rmem_max %s)",
	  { SC_RMEM_MAX } },
	{ "Udp6", "RcvbufErrors", "l4", "l4.udp.rcvbuf", DIAG_PROBLEM,
	  "UDP receive buffer full: read faster or raise SO_RCVBUF (net.core.rmem_max %s)",
	  { SC_RMEM_MAX } },
	{ "Udp", "SndbufErrors", "l4", "l4.udp.sndbuf", DIAG_PROBLEM,
	  "UDP send buffer full: send slower or raise SO_SNDBUF (net.core.wmem_max %s)",
	  { SC_WMEM_MAX } },
	{ "Udp6", "SndbufErrors", "l4", "l4.udp.sndbuf", DIAG_PROBLEM,
	  "UDP send buffer full: send slower or raise SO_SNDBUF (net.core.wmem_max %s)",
	  { SC_WMEM_MAX } },
	{ "Icmp", "InCsumErrors", "l3", "l3.icmp.csum", DIAG_PROBLEM, CSUM_HINT, {} },
	{ "Icmp6", "InCsumErrors", "l3", "l3.icmp.csum", DIAG_PROBLEM, CSUM_HINT, {} },
	{ "IpExt", "InCsumErrors", "l3", "l3.ip.csum", DIAG_PROBLEM, CSUM_HINT, {} },
	{ "Ip", "InHdrErrors", "l3", "l3.ip.header", DIAG_PROBLEM,
	  "malformed IP headers, or TTL expired while forwarding (a routing loop)",
	  {} },
	{ "Ip6", "InHdrErrors", "l3", "l3.ip.header", DIAG_PROBLEM,
	  "malformed IPv6 headers, or hop limit expired while forwarding (a routing loop)",
	  {} },
	{ "Ip", "InAddrErrors", "l3", "l3.ip.address", DIAG_PROBLEM,
	  "packets for an address this host neither owns nor forwards (net.ipv4.ip_forward %s): "
	  "check addresses, routes and neighbours pointing here",
	  { SC_IP_FORWARD } },
	{ "Ip6", "InAddrErrors", "l3", "l3.ip.address", DIAG_PROBLEM,
	  "packets for an IPv6 address this host neither owns nor forwards: check addresses and "
	  "routes pointing here",
	  {} },
	{ "IpExt", "InNoRoutes", "l3", "l3.ip.no_route", DIAG_PROBLEM,
	  "received packets with no route to forward them: check routes and policy rules",
	  {} },
	{ "Ip6", "InNoRoutes", "l3", "l3.ip.no_route", DIAG_PROBLEM,
	  "received IPv6 packets with no route to forward them: check routes and policy rules",
	  {} },
	{ "Ip", "OutNoRoutes", "l3", "l3.ip.out_no_route", DIAG_PROBLEM,
	  "local packets with no route out: a missing default route or policy rule",
	  {} },
	{ "Ip", "InDiscards", "l3", "l3.ip.discards", DIAG_PROBLEM,
	  "IP input discarded packets that had no error (out of memory)",
	  {} },
	{ "softnet", "dropped", "l2", "l2.softnet.backlog", DIAG_PROBLEM,
	  "a CPU's input backlog was full (host-wide figure): raise net.core.netdev_max_backlog "
	  "(%s) or spread receive work over more CPUs (RSS/RPS)",
	  { SC_NETDEV_BACKLOG } },
	{ "softnet", "time_squeeze", "l2", "l2.softnet.squeeze", DIAG_WARNING,
	  "receive processing ran out of budget with packets left (host-wide figure); raise "
	  "net.core.netdev_budget (%s) if softnet drops follow",
	  { SC_NETDEV_BUDGET } },
};

#define N_COUNTERS ARRAY_SIZE(counters)

/*
 * Link statistics of every interface. The hint is a printf format taking
 * the interface name; point NULL means a metric only (rx_errors is the sum
 * of the specific receive errors reported on their own).
 */
struct nic_def {
	rtnl_link_stat_id_t id;
	const char *stat; /* rtnl_link_stats64 field; metric meshlens_nic_<stat>_total */
	const char *layer, *point, *hint;
};

static const struct nic_def nic_stats[] = {
	{ RTNL_LINK_RX_OVER_ERR, "rx_over_errors", "l1", "l1.nic.rx_over",
	  "the RX ring overflowed: raise it (ethtool -G %s rx N) or spread interrupts over "
	  "more CPUs" },
	{ RTNL_LINK_RX_MISSED_ERR, "rx_missed_errors", "l1", "l1.nic.rx_missed",
	  "the NIC missed packets for lack of host buffers: raise the RX ring (ethtool -G %s) "
	  "and check IRQ affinity and CPU load" },
	{ RTNL_LINK_RX_FIFO_ERR, "rx_fifo_errors", "l1", "l1.nic.rx_fifo",
	  "NIC FIFO overruns: the host drains the RX ring too slowly; raise it (ethtool -G %s) "
	  "and check the CPU serving its interrupts" },
	{ RTNL_LINK_RX_CRC_ERR, "rx_crc_errors", "l1", "l1.nic.rx_crc",
	  "frames with bad CRC on %s: cable, optics, switch port or duplex mismatch" },
	{ RTNL_LINK_RX_FRAME_ERR, "rx_frame_errors", "l1", "l1.nic.rx_frame",
	  "misaligned frames on %s: a physical layer problem" },
	{ RTNL_LINK_RX_LEN_ERR, "rx_length_errors", "l1", "l1.nic.rx_length",
	  "frames of bad length on %s: MTU mismatch with the peer, or a physical problem" },
	{ RTNL_LINK_RX_ERRORS, "rx_errors", NULL, NULL, NULL },
	{ RTNL_LINK_TX_ERRORS, "tx_errors", "l1", "l1.nic.tx_errors",
	  "transmit errors (carrier, FIFO, heartbeat): check the link; ethtool -S %s" },
	{ RTNL_LINK_RX_DROPPED, "rx_dropped", "l2", "l2.nic.rx_dropped",
	  "received packets dropped by the driver or the core (no buffer, input backlog full: "
	  "see softnet dropped, unknown protocol or VLAN); ethtool -S %s breaks it down" },
	{ RTNL_LINK_TX_DROPPED, "tx_dropped", "l2", "l2.nic.tx_dropped",
	  "packets dropped before transmit (queue full, link down): tc -s qdisc show dev %s" },
};

#define N_NIC_STATS ARRAY_SIZE(nic_stats)

/* ---- snapshot -------------------------------------------------------------- */

struct listener {
	uint8_t family;
	uint8_t addr[16];
	uint16_t port;	  /* host order */
	uint32_t len;	  /* accept queue length (sk_ack_backlog) */
	uint32_t limit;	  /* listen() backlog after the somaxconn cap (sk_max_ack_backlog) */
	uint32_t syn_len; /* request sockets (SYN_RECV) waiting for their handshake ACK */
};

struct nic {
	char name[16]; /* IFNAMSIZ; "other" for the interfaces past MAX_NICS */
	int ifindex;   /* 0 for "other" */
	uint64_t v[N_NIC_STATS];
};

struct snapshot {
	uint64_t netns; /* the baseline only counts for the same namespace */
	uint64_t ctr[N_COUNTERS];
	bool ctr_ok[N_COUNTERS];
	struct listener *ls;
	size_t n_ls, cap_ls;
	struct nic nics[MAX_NICS + 1];
	int n_nics;
	char sc[N_SYSCTL][64];
	bool sc_ok[N_SYSCTL];
	char rpf_strict[160]; /* interfaces (not all/default) with rp_filter 1, comma separated */
	int n_rpf_strict;
};

struct diag_state {
	struct snapshot snap[2];
	int cur; /* snap[cur] is filled next; snap[!cur] is the baseline */
	struct snapshot shown; /* what diag_render() shows: diag_refresh() takes it */
	bool have_shown;
	bool have_base;
	/* findings by severity of the last run that had a baseline: what the
	 * daemon publishes (a whole period, never a part of one) */
	uint64_t period_counts[3];
	struct diag_finding *f;
	size_t n_f, cap_f;
	struct diag_finding spare; /* written to when f cannot grow */
	bool oom;
	unsigned int warned; /* sources whose failure was already logged (bit per source) */
};

enum { SRC_LISTENERS = 1, SRC_NICS = 2, SRC_COUNTERS = 4, SRC_SYSCTL = 8 };

static void warn_once(struct diag_state *s, unsigned int src, const char *what, const char *why)
{
	if (s->warned & src)
		return;
	s->warned |= src;
	fprintf(stderr, "diagnose: %s: %s\n", what, why);
}

static uint64_t netns_inode(void)
{
	struct stat st;

	return stat("/proc/thread-self/ns/net", &st) ? 0 : (uint64_t)st.st_ino;
}

/* ---- listeners: sock_diag ------------------------------------------------- */

/*
 * A raw SOCK_DIAG_BY_FAMILY request (inet_diag_req_v2) over libnl-3's core
 * socket rather than libnl-idiag: libnl-idiag only speaks the legacy
 * TCPDIAG_GETSOCK request, ships in a separate library and package, and
 * builds one cache object per socket, where three fields of inet_diag_msg
 * are all we read. libnl still does the framing, sequence checks and
 * multipart dump handling.
 */
struct dump_ctx {
	struct snapshot *snap;
	bool oom;
};

static bool is_wildcard(const struct listener *l)
{
	static const uint8_t zero[16];

	return !memcmp(l->addr, zero, l->family == AF_INET ? 4 : 16);
}

/*
 * The listener a request socket belongs to: same port, and the most specific
 * of same address, wildcard of the same family, or a dual-stack [::]
 * listener taking an IPv4 SYN.
 */
static struct listener *owner(struct snapshot *p, const struct listener *req)
{
	struct listener *best = NULL;
	int best_score = 0;

	for (size_t i = 0; i < p->n_ls; i++) {
		struct listener *l = &p->ls[i];
		int score = 0;

		if (l->port != req->port)
			continue;
		if (l->family == req->family)
			score = !memcmp(l->addr, req->addr, 16) ? 3 : is_wildcard(l) ? 2 : 0;
		else if (l->family == AF_INET6 && is_wildcard(l))
			score = 1;
		if (score > best_score) {
			best = l;
			best_score = score;
		}
	}
	return best;
}

static int on_inet_diag(struct nl_msg *msg, void *arg)
{
	struct dump_ctx *ctx = arg;
	struct snapshot *p = ctx->snap;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	const struct inet_diag_msg *m = nlmsg_data(h);
	struct listener l = { 0 };

	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || nlmsg_datalen(h) < (int)sizeof(*m))
		return NL_SKIP;
	l.family = m->idiag_family;
	memcpy(l.addr, m->id.idiag_src, 16);
	l.port = ntohs(m->id.idiag_sport);
	if (m->idiag_state == TCP_SYN_RECV) {
		struct listener *o = owner(p, &l);

		if (o)
			o->syn_len++;
		return NL_OK;
	}
	if (m->idiag_state != TCP_LISTEN)
		return NL_SKIP;
	if (p->n_ls == p->cap_ls) {
		size_t cap = p->cap_ls ? p->cap_ls * 2 : 64;
		struct listener *n = realloc(p->ls, cap * sizeof(*n));

		if (!n) {
			ctx->oom = true;
			return NL_STOP;
		}
		p->ls = n;
		p->cap_ls = cap;
	}
	/* For a listener inet_diag reports sk_ack_backlog and sk_max_ack_backlog here. */
	l.len = m->idiag_rqueue;
	l.limit = m->idiag_wqueue;
	p->ls[p->n_ls++] = l;
	return NL_OK;
}

static int dump_state(struct nl_sock *sk, uint8_t family, int state)
{
	struct inet_diag_req_v2 req = {
		.sdiag_family = family,
		.sdiag_protocol = IPPROTO_TCP,
		.idiag_states = 1u << state,
	};
	int err = nl_send_simple(sk, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &req, sizeof(req));

	return err < 0 ? err : nl_recvmsgs_default(sk);
}

/* Listeners first, so that each request socket finds its listener. */
static int dump_listeners(struct nl_sock *sk, struct dump_ctx *ctx)
{
	static const int states[] = { TCP_LISTEN, TCP_SYN_RECV };
	static const uint8_t families[] = { AF_INET, AF_INET6 };
	int err = 0;

	ctx->snap->n_ls = 0;
	for (size_t i = 0; i < ARRAY_SIZE(states) && !err && !ctx->oom; i++)
		for (size_t j = 0; j < ARRAY_SIZE(families) && !err && !ctx->oom; j++)
			err = dump_state(sk, families[j], states[i]);
	return err;
}

static int read_listeners(struct diag_state *s, struct snapshot *p)
{
	struct dump_ctx ctx = { .snap = p };
	struct nl_sock *sk;
	int err;

	p->n_ls = 0;
	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	err = nl_connect(sk, NETLINK_SOCK_DIAG);
	if (!err)
		err = nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_inet_diag, &ctx);
	/* A dump that raced with socket changes is flagged; a second one usually is not. */
	for (int tries = 1; !err; tries++) {
		err = dump_listeners(sk, &ctx);
		if (err != -NLE_DUMP_INTR || tries == 3)
			break;
		err = 0;
	}
	nl_socket_free(sk);
	if (ctx.oom)
		return -ENOMEM;
	if (err) {
		warn_once(s, SRC_LISTENERS, "inet_diag dump", nl_geterror(err));
		return -EIO;
	}
	return 0;
}

static bool listener_full(const struct listener *l)
{
	/*
	 * The kernel refuses a connection once len > limit, so at len == limit
	 * the queue holds as many as the backlog asked for and takes one more.
	 */
	return l->len > 0 && l->len >= l->limit;
}

static bool syn_queue_full(const struct listener *l)
{
	/* With syncookies a full request queue (len >= backlog) switches to cookies. */
	return l->syn_len > 0 && l->syn_len >= l->limit;
}

static void listener_name(const struct listener *l, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(l->family, l->addr, a, sizeof(a));
	snprintf(buf, len, l->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, l->port);
}

/* ---- NIC statistics: rtnetlink ---------------------------------------------- */

static int read_nics(struct diag_state *s, struct snapshot *p)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct nl_cache *cache = NULL;
	struct nic *other = &p->nics[MAX_NICS];
	int err;

	p->n_nics = 0;
	if (!sk)
		return -ENOMEM;
	err = nl_connect(sk, NETLINK_ROUTE);
	if (!err)
		err = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	nl_socket_free(sk);
	if (err) {
		warn_once(s, SRC_NICS, "rtnetlink link dump", nl_geterror(err));
		return -EIO;
	}
	memset(other, 0, sizeof(*other));
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *link = (struct rtnl_link *)o;
		struct nic *n = p->n_nics < MAX_NICS ? &p->nics[p->n_nics++] : other;

		if (n != other) {
			snprintf(n->name, sizeof(n->name), "%s", rtnl_link_get_name(link));
			n->ifindex = rtnl_link_get_ifindex(link);
			memset(n->v, 0, sizeof(n->v));
		}
		for (size_t i = 0; i < N_NIC_STATS; i++)
			n->v[i] += rtnl_link_get_stat(link, nic_stats[i].id);
	}
	if (p->n_nics == MAX_NICS && nl_cache_nitems(cache) > MAX_NICS) {
		snprintf(other->name, sizeof(other->name), "other");
		p->n_nics++;
	}
	nl_cache_free(cache);
	return 0;
}

/* ---- MIB counters: /proc/net ---------------------------------------------- */

/* The next blank-separated token of *cursor, NUL-terminated in place. */
static char *token(char **cursor)
{
	char *t = *cursor + strspn(*cursor, " \t\n");
	char *end;

	if (!*t)
		return NULL;
	end = t + strcspn(t, " \t\n");
	*cursor = *end ? end + 1 : end;
	*end = '\0';
	return t;
}

static void set_counter(struct snapshot *p, const char *mib, const char *name, uint64_t v)
{
	for (size_t i = 0; i < N_COUNTERS; i++) {
		if (!strcmp(counters[i].mib, mib) && !strcmp(counters[i].name, name)) {
			p->ctr[i] = v;
			p->ctr_ok[i] = true;
			return;
		}
	}
}

static uint64_t counter(const struct snapshot *p, const char *mib, const char *name)
{
	for (size_t i = 0; i < N_COUNTERS; i++)
		if (!strcmp(counters[i].mib, mib) && !strcmp(counters[i].name, name))
			return p->ctr[i];
	return 0;
}

/*
 * /proc/net/netstat and /proc/net/snmp: a "Mib: name name ..." line followed
 * by a "Mib: value value ..." line, for every MIB. A line whose successor
 * does not carry the same prefix is taken for noise, not mispaired.
 */
static int read_mib_pairs(const char *path, struct snapshot *p)
{
	FILE *f = fopen(path, "re");
	char *line[2] = { NULL, NULL };
	size_t cap[2] = { 0, 0 };
	int hdr = 0; /* line[hdr] is the candidate name line */
	bool more;

	if (!f)
		return -errno;
	more = getline(&line[hdr], &cap[hdr], f) >= 0;
	while (more && getline(&line[!hdr], &cap[!hdr], f) >= 0) {
		char *names = line[hdr], *vals = line[!hdr], *n, *v;
		size_t plen = strcspn(names, " ");

		if (plen < 2 || names[plen - 1] != ':' || strncmp(names, vals, plen + 1)) {
			hdr = !hdr;
			continue;
		}
		names[plen - 1] = '\0';
		n = names + plen;
		v = vals + plen;
		for (char *nt, *vt; (nt = token(&n)) && (vt = token(&v));)
			set_counter(p, names, nt, strtoull(vt, NULL, 10));
		more = getline(&line[hdr], &cap[hdr], f) >= 0;
	}
	free(line[0]);
	free(line[1]);
	fclose(f);
	return 0;
}

/* /proc/net/snmp6: "Udp6RcvbufErrors  12", the MIB being the name up to its first '6'. */
static int read_snmp6(const char *path, struct snapshot *p)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		char *c = line, *name = token(&c), *v = token(&c), *six;
		char mib[16];

		if (!v || !(six = strchr(name, '6')) || (size_t)(six - name) + 1 >= sizeof(mib))
			continue;
		memcpy(mib, name, (size_t)(six - name) + 1);
		mib[six - name + 1] = '\0';
		set_counter(p, mib, six + 1, strtoull(v, NULL, 10));
	}
	free(line);
	fclose(f);
	return 0;
}

/*
 * /proc/net/softnet_stat: one line per CPU in hex; the second column counts
 * packets dropped because the CPU's input backlog was full, the third the
 * times receive processing ran out of budget. Host-wide, whatever the netns.
 */
static int read_softnet(const char *path, struct snapshot *p)
{
	FILE *f = fopen(path, "re");
	uint64_t dropped = 0, squeezed = 0;
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		char *c = line, *d, *sq;

		if (!token(&c) || !(d = token(&c)) || !(sq = token(&c)))
			continue;
		dropped += strtoull(d, NULL, 16);
		squeezed += strtoull(sq, NULL, 16);
	}
	free(line);
	fclose(f);
	set_counter(p, "softnet", "dropped", dropped);
	set_counter(p, "softnet", "time_squeeze", squeezed);
	return 0;
}

static int read_counters(struct diag_state *s, struct snapshot *p)
{
	int ok = 0;

	memset(p->ctr_ok, 0, sizeof(p->ctr_ok));
	ok += !read_mib_pairs(PROC_NET "netstat", p);
	ok += !read_mib_pairs(PROC_NET "snmp", p);
	ok += !read_snmp6(PROC_NET "snmp6", p); /* absent with ipv6.disable=1 */
	ok += !read_softnet(PROC_NET "softnet_stat", p);
	if (!ok) {
		warn_once(s, SRC_COUNTERS, PROC_NET "{netstat,snmp}", strerror(errno));
		return -ENOENT;
	}
	return 0;
}

/* ---- settings: /proc/sys -------------------------------------------------- */

/* The first line of a file, tabs (tcp_rmem's separators) turned into spaces. */
static int read_value(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return -errno;
	ok = fgets(buf, (int)len, f);
	fclose(f);
	if (!ok)
		return -EIO;
	buf[strcspn(buf, "\n")] = '\0';
	for (char *c = buf; *c; c++)
		if (*c == '\t')
			*c = ' ';
	return 0;
}

/* Interfaces whose own rp_filter is strict; all and default are read as fixed sysctls. */
static void read_rp_filters(struct snapshot *p)
{
	DIR *d = opendir(PROC_SYS "net/ipv4/conf");
	size_t used = 0;
	struct dirent *de;

	p->n_rpf_strict = 0;
	p->rpf_strict[0] = '\0';
	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[320], v[8];
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "all") ||
		    !strcmp(de->d_name, "default"))
			continue;
		snprintf(path, sizeof(path), PROC_SYS "net/ipv4/conf/%s/rp_filter", de->d_name);
		if (read_value(path, v, sizeof(v)) || strcmp(v, "1"))
			continue;
		p->n_rpf_strict++;
		if (used + len + 3 > sizeof(p->rpf_strict))
			continue; /* the evidence gives the count; the list is a sample */
		used += (size_t)snprintf(p->rpf_strict + used, sizeof(p->rpf_strict) - used, "%s%s",
					 used ? ", " : "", de->d_name);
	}
	closedir(d);
}

static int read_sysctls(struct diag_state *s, struct snapshot *p)
{
	int ok = 0;

	for (int i = SC_NONE + 1; i < N_SYSCTL; i++) {
		char path[128], *c;

		/* Dots to slashes is safe here: no interface name is part of these. */
		snprintf(path, sizeof(path), PROC_SYS "%s", sysctl_name[i]);
		for (c = path + strlen(PROC_SYS); *c; c++)
			if (*c == '.')
				*c = '/';
		p->sc_ok[i] = !read_value(path, p->sc[i], sizeof(p->sc[i]));
		ok += p->sc_ok[i];
	}
	read_rp_filters(p);
	if (!ok) {
		warn_once(s, SRC_SYSCTL, PROC_SYS "net", strerror(errno));
		return -ENOENT;
	}
	return 0;
}

/* A sysctl's value for a hint; "unknown" when it could not be read. */
static const char *sc_str(const struct snapshot *p, enum sysctl_id id)
{
	if (id == SC_NONE)
		return "";
	return p->sc_ok[id] ? p->sc[id] : "unknown";
}

static bool sc_num(const struct snapshot *p, enum sysctl_id id, long long *v)
{
	char *end;

	if (!p->sc_ok[id])
		return false;
	*v = strtoll(p->sc[id], &end, 10);
	return end != p->sc[id];
}

static int snapshot(struct diag_state *s, struct snapshot *p)
{
	int err_l = read_listeners(s, p);
	int err_n = read_nics(s, p);
	int err_c = read_counters(s, p);
	int err_s = read_sysctls(s, p);

	p->netns = netns_inode();
	if (err_l == -ENOMEM || err_n == -ENOMEM)
		return -ENOMEM;
	/* Any one source is worth a report. */
	return !err_l || !err_n || !err_c || !err_s ? 0 : err_l;
}

/* ---- findings ------------------------------------------------------------- */

static struct diag_finding *add(struct diag_state *s, enum diag_severity sev, const char *layer,
				const char *point)
{
	struct diag_finding *f = &s->spare;

	if (s->n_f == s->cap_f) {
		size_t cap = s->cap_f ? s->cap_f * 2 : 32;
		struct diag_finding *n = realloc(s->f, cap * sizeof(*n));

		if (n) {
			s->f = n;
			s->cap_f = cap;
		} else {
			s->oom = true;
		}
	}
	if (s->n_f < s->cap_f)
		f = &s->f[s->n_f++];
	memset(f, 0, sizeof(*f));
	f->severity = sev;
	snprintf(f->layer, sizeof(f->layer), "%s", layer);
	snprintf(f->point, sizeof(f->point), "%s", point);
	return f;
}

#define SYNQ_COOKIES_HINT                                                                          \
	"handshakes do not complete (a SYN flood, or lost ACKs); new SYNs get syncookies: "        \
	"raise the listen() backlog if the clients are real"
#define SYNQ_DROP_HINT                                                                             \
	"with net.ipv4.tcp_syncookies 0 a full SYN queue drops SYNs: enable syncookies or raise "  \
	"the listen() backlog"

static void eval_listeners(struct diag_state *s, const struct snapshot *p)
{
	unsigned int full = 0, syn_full = 0;
	long long cookies = 1;
	struct diag_finding *f;
	char name[64];

	sc_num(p, SC_SYNCOOKIES, &cookies);
	for (size_t i = 0; i < p->n_ls; i++) {
		const struct listener *l = &p->ls[i];

		if (listener_full(l) && full++ < MAX_LISTENERS) {
			listener_name(l, name, sizeof(name));
			f = add(s, DIAG_PROBLEM, "l4", "l4.tcp.accept_queue");
			snprintf(f->subject, sizeof(f->subject), "listener %s", name);
			snprintf(f->evidence, sizeof(f->evidence),
				 "accept queue %u of %u (len/limit), ListenOverflows %" PRIu64
				 ", ListenDrops %" PRIu64,
				 l->len, l->limit, counter(p, "TcpExt", "ListenOverflows"),
				 counter(p, "TcpExt", "ListenDrops"));
			snprintf(f->hint, sizeof(f->hint),
				 "the application does not accept() fast enough; raise its "
				 "listen() backlog and net.core.somaxconn (%s)",
				 sc_str(p, SC_SOMAXCONN));
		}
		if (syn_queue_full(l) && syn_full++ < MAX_LISTENERS) {
			listener_name(l, name, sizeof(name));
			f = add(s, cookies ? DIAG_WARNING : DIAG_PROBLEM, "l4", "l4.tcp.syn_queue");
			snprintf(f->subject, sizeof(f->subject), "listener %s", name);
			snprintf(f->evidence, sizeof(f->evidence),
				 "SYN queue %u of %u (len/limit), TCPReqQFullDoCookies %" PRIu64
				 ", TCPReqQFullDrop %" PRIu64,
				 l->syn_len, l->limit, counter(p, "TcpExt", "TCPReqQFullDoCookies"),
				 counter(p, "TcpExt", "TCPReqQFullDrop"));
			snprintf(f->hint, sizeof(f->hint), "%s",
				 cookies ? SYNQ_COOKIES_HINT : SYNQ_DROP_HINT);
		}
	}
	if (full > MAX_LISTENERS) {
		f = add(s, DIAG_PROBLEM, "l4", "l4.tcp.accept_queue");
		snprintf(f->subject, sizeof(f->subject), "%u more listeners", full - MAX_LISTENERS);
		snprintf(f->evidence, sizeof(f->evidence),
			 "accept queues full on %u listeners in all, %d listed", full,
			 MAX_LISTENERS);
		snprintf(f->hint, sizeof(f->hint),
			 "see ss -ltn: Recv-Q is the accept queue length, Send-Q its limit");
	}
}

/*
 * Counters against the baseline: an increase is happening now (the counter's
 * worst severity); without a baseline a nonzero total is history, one step
 * milder.
 */
static void eval_counters(struct diag_state *s, const struct snapshot *p,
			  const struct snapshot *base)
{
	for (size_t i = 0; i < N_COUNTERS; i++) {
		const struct counter_def *d = &counters[i];
		uint64_t v = p->ctr[i];
		bool have_base = base && base->ctr_ok[i] && v >= base->ctr[i];
		struct diag_finding *f;

		if (!p->ctr_ok[i] || (have_base ? v == base->ctr[i] : v == 0))
			continue;
		f = add(s, have_base ? d->worst : d->worst - 1, d->layer, d->point);
		snprintf(f->subject, sizeof(f->subject), "%s %s", d->mib, d->name);
		if (have_base)
			snprintf(f->evidence, sizeof(f->evidence),
				 "+%" PRIu64 " since last check (%" PRIu64 " in all)",
				 v - base->ctr[i], v);
		else
			snprintf(f->evidence, sizeof(f->evidence),
				 "%" PRIu64 " since boot (first check)", v);
		snprintf(f->hint, sizeof(f->hint), d->hint, sc_str(p, d->arg[0]),
			 sc_str(p, d->arg[1]));
	}
}

static const struct nic *find_nic(const struct snapshot *p, const struct nic *n)
{
	for (int i = 0; i < p->n_nics; i++)
		if (p->nics[i].ifindex == n->ifindex && !strcmp(p->nics[i].name, n->name))
			return &p->nics[i];
	return NULL;
}

static void eval_nics(struct diag_state *s, const struct snapshot *p, const struct snapshot *base)
{
	for (int i = 0; i < p->n_nics; i++) {
		const struct nic *n = &p->nics[i];
		const struct nic *b = base ? find_nic(base, n) : NULL;

		for (size_t k = 0; k < N_NIC_STATS; k++) {
			const struct nic_def *d = &nic_stats[k];
			bool have_base = b && n->v[k] >= b->v[k];
			struct diag_finding *f;

			if (!d->point || (have_base ? n->v[k] == b->v[k] : n->v[k] == 0))
				continue;
			f = add(s, have_base ? DIAG_PROBLEM : DIAG_WARNING, d->layer, d->point);
			snprintf(f->subject, sizeof(f->subject), "%s", n->name);
			if (have_base)
				snprintf(f->evidence, sizeof(f->evidence),
					 "%s +%" PRIu64 " since last check (%" PRIu64 " in all)",
					 d->stat, n->v[k] - b->v[k], n->v[k]);
			else
				snprintf(f->evidence, sizeof(f->evidence),
					 "%s %" PRIu64 " since boot (first check)", d->stat,
					 n->v[k]);
			snprintf(f->hint, sizeof(f->hint), d->hint, n->name);
		}
	}
}

#define RPF_HINT                                                                                   \
	"strict reverse path filtering drops packets whose reply would leave by another "          \
	"interface (asymmetric or policy routing, multi-homing, some CNIs); use 2 (loose) there"

static void eval_sysctls(struct diag_state *s, const struct snapshot *p)
{
	uint64_t rpf_drops = counter(p, "TcpExt", "IPReversePathFilter");
	long long v, max, all = 0;
	struct diag_finding *f;

	/* An interface filters with the larger of conf.all and its own rp_filter. */
	if (sc_num(p, SC_RPF_ALL, &all) && all == 1) {
		f = add(s, DIAG_WARNING, "l3", "l3.ip.rp_filter");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_RPF_ALL]);
		snprintf(f->evidence, sizeof(f->evidence),
			 "rp_filter 1 (strict) on every interface, IPReversePathFilter %" PRIu64,
			 rpf_drops);
		snprintf(f->hint, sizeof(f->hint), RPF_HINT);
	}
	if (all == 0 && sc_num(p, SC_RPF_DEFAULT, &v) && v == 1) {
		f = add(s, DIAG_WARNING, "l3", "l3.ip.rp_filter");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_RPF_DEFAULT]);
		snprintf(f->evidence, sizeof(f->evidence),
			 "rp_filter 1 (strict) for interfaces created from now on, "
			 "IPReversePathFilter %" PRIu64,
			 rpf_drops);
		snprintf(f->hint, sizeof(f->hint), RPF_HINT);
	}
	if (all == 0 && p->n_rpf_strict) {
		f = add(s, DIAG_WARNING, "l3", "l3.ip.rp_filter");
		if (p->n_rpf_strict == 1)
			snprintf(f->subject, sizeof(f->subject), "net.ipv4.conf.%.16s.rp_filter",
				 p->rpf_strict);
		else
			snprintf(f->subject, sizeof(f->subject), "net.ipv4.conf.*.rp_filter");
		snprintf(f->evidence, sizeof(f->evidence),
			 "rp_filter 1 (strict) on %d interface(s): %s; "
			 "IPReversePathFilter %" PRIu64,
			 p->n_rpf_strict, p->rpf_strict, rpf_drops);
		snprintf(f->hint, sizeof(f->hint), RPF_HINT);
	}
	if (sc_num(p, SC_SOMAXCONN, &v) && v < 4096) {
		f = add(s, DIAG_INFO, "l4", "l4.tcp.accept_queue");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_SOMAXCONN]);
		snprintf(f->evidence, sizeof(f->evidence),
			 "somaxconn %lld, below 4096 (the default since Linux 5.4)", v);
		snprintf(f->hint, sizeof(f->hint),
			 "listen() backlogs are silently capped at net.core.somaxconn; raise it if "
			 "listeners overflow");
	}
	/* tcp_max_syn_backlog only drops SYNs when syncookies are off. */
	if (sc_num(p, SC_SYNCOOKIES, &v) && v == 0) {
		f = add(s, DIAG_WARNING, "l4", "l4.tcp.syn_queue");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_SYNCOOKIES]);
		snprintf(f->evidence, sizeof(f->evidence),
			 "tcp_syncookies 0, tcp_max_syn_backlog %s, TCPReqQFullDrop %" PRIu64,
			 sc_str(p, SC_SYN_BACKLOG), counter(p, "TcpExt", "TCPReqQFullDrop"));
		snprintf(f->hint, sizeof(f->hint),
			 "a full SYN queue drops SYNs instead of answering with cookies; set "
			 "net.ipv4.tcp_syncookies=1, or raise listen() backlogs and "
			 "net.ipv4.tcp_max_syn_backlog");
	}
	if (sc_num(p, SC_NETDEV_BACKLOG, &v) && v < 1000) {
		f = add(s, DIAG_INFO, "l2", "l2.softnet.backlog");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_NETDEV_BACKLOG]);
		snprintf(f->evidence, sizeof(f->evidence),
			 "netdev_max_backlog %lld, below the kernel default 1000; "
			 "softnet dropped %" PRIu64,
			 v, counter(p, "softnet", "dropped"));
		snprintf(f->hint, sizeof(f->hint),
			 "each CPU queues at most this many received packets and drops the rest");
	}
	if (sc_num(p, SC_CT_COUNT, &v) && sc_num(p, SC_CT_MAX, &max) && max > 0 &&
	    v * 10 >= max * 9) {
		f = add(s, DIAG_PROBLEM, "l3", "l3.netfilter.conntrack");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_CT_MAX]);
		snprintf(f->evidence, sizeof(f->evidence),
			 "nf_conntrack_count %lld of nf_conntrack_max %lld (%lld%%)", v, max,
			 v * 100 / max);
		snprintf(f->hint, sizeof(f->hint),
			 "new flows are dropped once the table is full (dmesg: "
			 "\"nf_conntrack: table full, dropping packet\"); raise "
			 "nf_conntrack_max or shorten conntrack timeouts");
	}
	if (sc_num(p, SC_TW_RECYCLE, &v) && v == 1) {
		f = add(s, DIAG_PROBLEM, "l4", "l4.tcp.tw_recycle");
		snprintf(f->subject, sizeof(f->subject), "%s", sysctl_name[SC_TW_RECYCLE]);
		snprintf(f->evidence, sizeof(f->evidence), "tcp_tw_recycle 1");
		snprintf(f->hint, sizeof(f->hint),
			 "drops SYNs from clients behind NAT whose timestamps go backwards "
			 "(PAWSPassive); set it to 0");
	}
}

/* Every finding of snapshot p into s->f, against the baseline if it is comparable. */
static void evaluate(struct diag_state *s, const struct snapshot *p)
{
	const struct snapshot *base = &s->snap[!s->cur];

	if (!s->have_base || base->netns != p->netns)
		base = NULL;
	s->n_f = 0;
	s->oom = false;
	eval_listeners(s, p);
	eval_counters(s, p, base);
	eval_nics(s, p, base);
	eval_sysctls(s, p);
}

/*
 * Most severe first, then the upper layers (l4 before l1), then by point and
 * subject (ignoring case, so that "listener ..." comes before "TcpExt ...").
 */
static int cmp_finding(const void *a, const void *b)
{
	const struct diag_finding *x = a, *y = b;
	int c;

	if (x->severity != y->severity)
		return x->severity > y->severity ? -1 : 1;
	c = strcmp(y->layer, x->layer);
	if (!c)
		c = strcmp(x->point, y->point);
	return c ? c : strcasecmp(x->subject, y->subject);
}

/* ---- API ------------------------------------------------------------------- */

struct diag_state *diag_new(void)
{
	return calloc(1, sizeof(struct diag_state));
}

void diag_free(struct diag_state *s)
{
	if (!s)
		return;
	free(s->snap[0].ls);
	free(s->snap[1].ls);
	free(s->shown.ls);
	free(s->f);
	free(s);
}

int diag_run(struct diag_state *s, struct diag_finding *out, int max)
{
	struct snapshot *p = &s->snap[s->cur];
	int err = snapshot(s, p), n;

	if (err)
		return err;
	evaluate(s, p);
	if (s->oom)
		return -ENOMEM;
	if (s->n_f > 1)
		qsort(s->f, s->n_f, sizeof(*s->f), cmp_finding);
	if (s->have_base) {
		memset(s->period_counts, 0, sizeof(s->period_counts));
		for (size_t i = 0; i < s->n_f; i++)
			s->period_counts[s->f[i].severity]++;
	}
	n = max < 0 ? 0 : (size_t)max < s->n_f ? max : (int)s->n_f;
	if (n)
		memcpy(out, s->f, (size_t)n * sizeof(*out));
	s->cur = !s->cur;
	s->have_base = true;
	return n;
}

static const char *const severity_name[] = { "info", "warning", "problem" };
static const char *const severity_tag[] = { "INFO", "WARNING", "PROBLEM" };

void diag_print(FILE *out, const struct diag_finding *f, int n)
{
	int count[3] = { 0 };
	time_t now = time(NULL);
	char ts[16] = "";
	struct tm tm;

	if (localtime_r(&now, &tm))
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	fprintf(out, "meshlens drop diagnosis (netns inode %" PRIu64 ", %s)\n", netns_inode(), ts);
	if (n <= 0) {
		fprintf(out, "no drop points with evidence found\n");
		return;
	}
	for (int i = 0; i < n; i++) {
		count[f[i].severity]++;
		fprintf(out, "[%s] %s %s  %s\n    evidence: %s\n    hint: %s\n",
			severity_tag[f[i].severity], f[i].layer, f[i].point, f[i].subject,
			f[i].evidence, f[i].hint);
	}
	fprintf(out, "%d finding(s): %d problem(s), %d warning(s), %d info\n", n,
		count[DIAG_PROBLEM], count[DIAG_WARNING], count[DIAG_INFO]);
}

static void render_counters(struct expo *e, const struct snapshot *p)
{
	static const char name[] = "meshlens_diag_netstat_total";

	expo_family(e, name, "counter",
		    "Kernel MIB counters of dropped packets (/proc/net/netstat, snmp, snmp6 of the "
		    "netns; mib=\"softnet\" is /proc/net/softnet_stat, host-wide).");
	for (size_t i = 0; i < N_COUNTERS; i++) {
		if (p->ctr_ok[i])
			expo_sample_u64(e, name,
					(const char *const[]){ "mib", counters[i].mib, "counter",
							       counters[i].name, NULL },
					p->ctr[i]);
	}
}

static void render_nics(struct expo *e, const struct snapshot *p)
{
	for (size_t k = 0; k < N_NIC_STATS; k++) {
		char name[64], help[160];

		snprintf(name, sizeof(name), "meshlens_nic_%s_total", nic_stats[k].stat);
		snprintf(help, sizeof(help),
			 "Link statistic %s of each interface (rtnetlink); interfaces past %d are "
			 "summed into interface=\"other\".",
			 nic_stats[k].stat, MAX_NICS);
		expo_family(e, name, "counter", help);
		for (int i = 0; i < p->n_nics; i++)
			expo_sample_u64(e, name,
					(const char *const[]){ "interface", p->nics[i].name, NULL },
					p->nics[i].v[k]);
	}
}

static void render_listeners(struct expo *e, const struct snapshot *p)
{
	static const char name[] = "meshlens_diag_listen_queue_full";
	unsigned int full = 0;
	char l[64];

	expo_family(e, name, "gauge",
		    "1 for each TCP listener whose accept queue is at its limit; listeners past 50 "
		    "are counted in listener=\"other\".");
	for (size_t i = 0; i < p->n_ls; i++) {
		if (!listener_full(&p->ls[i]) || full++ >= MAX_LISTENERS)
			continue;
		listener_name(&p->ls[i], l, sizeof(l));
		expo_sample_u64(e, name, (const char *const[]){ "listener", l, NULL }, 1);
	}
	if (full > MAX_LISTENERS)
		expo_sample_u64(e, name, (const char *const[]){ "listener", "other", NULL },
				full - MAX_LISTENERS);
}

static void render_conntrack(struct expo *e, const struct snapshot *p)
{
	long long count, max;

	if (!sc_num(p, SC_CT_COUNT, &count) || !sc_num(p, SC_CT_MAX, &max))
		return;
	expo_family(e, "meshlens_diag_conntrack_entries", "gauge",
		    "Connection tracking entries in use (net.netfilter.nf_conntrack_count).");
	expo_sample_u64(e, "meshlens_diag_conntrack_entries", NULL, (uint64_t)count);
	expo_family(e, "meshlens_diag_conntrack_entries_limit", "gauge",
		    "Connection tracking table size (net.netfilter.nf_conntrack_max); new flows "
		    "are dropped at this many entries.");
	expo_sample_u64(e, "meshlens_diag_conntrack_entries_limit", NULL, (uint64_t)max);
}

int diag_refresh(struct diag_state *s)
{
	int err = snapshot(s, &s->shown);

	s->have_shown = !err;
	return err;
}

void diag_render(struct diag_state *s, struct expo *e)
{
	static const char name[] = "meshlens_diag_findings";

	if (s->have_shown) {
		render_counters(e, &s->shown);
		render_nics(e, &s->shown);
		render_listeners(e, &s->shown);
		render_conntrack(e, &s->shown);
	}
	expo_family(e, name, "gauge",
		    "Drop diagnosis findings by severity of the last whole diagnosis period "
		    "(12 refresh intervals, 60 s by default): counter increases over it, full "
		    "listeners and settings at its end; 0 until a period has passed.");
	for (int i = DIAG_PROBLEM; i >= DIAG_INFO; i--)
		expo_sample_u64(e, name,
				(const char *const[]){ "severity", severity_name[i], NULL },
				s->period_counts[i]);
}
