/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * probe.h - the whole kernel/user ABI of meshlens.
 *
 * Every struct that crosses the BPF/user boundary is defined here and only
 * here; the bpf/ programs and the user-space modules both include this file.
 * Rules: fixed-width types only, no pointers, largest fields first,
 * explicit padding, a _Static_assert on each size.
 *
 * Units and conventions:
 *   - times are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns()); user space
 *     converts them to wall-clock time;
 *   - addresses are 16-byte IPv6, IPv4 stored v4-mapped (::ffff:a.b.c.d);
 *     `family` is the socket's family (AF_INET/AF_INET6), so an AF_INET6
 *     socket talking to a v4-mapped peer keeps family AF_INET6;
 *   - ports are host byte order;
 *   - "src" is always the client (initiator), "dst" the server (acceptor),
 *     whichever end this socket is;
 *   - byte counters are application payload bytes, u64, with SYN/FIN
 *     sequence space already removed by the kernel side.
 */
#ifndef MESHLENS_PROBE_H
#define MESHLENS_PROBE_H

#ifdef __BPF__
/* vmlinux.h already provides __u8..__u64 */
#else
#include <linux/types.h>
#endif

#define ML_ADDR_LEN 16
#define ML_INFINITE_SSTHRESH 0x7fffffffu /* the kernel's TCP_INFINITE_SSTHRESH */

/* tcp_probe_info.type */
enum ml_record_type {
	ML_REC_CONN_CLOSE = 1,  /* a connection that reached ESTABLISHED closed */
	ML_REC_CONN_FAILED = 2, /* a connection attempt that never got there */
	ML_REC_CONN_OPEN = 3,   /* a connection reached ESTABLISHED (ringbuf) */
	ML_REC_CONN_LIVE = 4,   /* an open connection's counters so far (iterator) */
};

/* tcp_probe_info.direction */
enum ml_direction {
	ML_DIR_OUTBOUND = 1, /* this socket called connect() */
	ML_DIR_INBOUND = 2,  /* this socket was accepted */
};

/*
 * tcp_probe_info.failure: why a connection attempt failed, decided in the
 * kernel where the evidence is (sk_err, connect() return value, state).
 */
enum ml_failure {
	ML_FAIL_NONE = 0,
	ML_FAIL_REFUSED = 1,     /* RST answered our SYN (ECONNREFUSED) */
	ML_FAIL_TIMEOUT = 2,     /* SYNs unanswered (ETIMEDOUT) */
	ML_FAIL_RESET = 3,       /* reset during the handshake (ECONNRESET) */
	ML_FAIL_UNREACHABLE = 4, /* failed before any SYN left (no route, ...) */
	ML_FAIL_ABORTED = 5,     /* closed by the application while connecting */
	ML_FAIL_OTHER = 6,       /* any other error; errno in `sk_err` */
};

/* tcp_probe_info.flags */
#define ML_F_FIN_IN (1u << 0)   /* peer's FIN received */
#define ML_F_FIN_OUT (1u << 1)  /* our FIN sent */
#define ML_F_RESET_IN (1u << 2) /* closed by a received RST */
#define ML_F_DROPS (1u << 3)    /* drop tracing was on: `drops` is meaningful */
#define ML_F_RAW (1u << 4)      /* LIVE from iter/task_file: sent_bytes/received_bytes are
				 * the kernel's bytes_acked/bytes_received less the FINs;
				 * user space subtracts the OPEN record's bases; only
				 * type, flags, sock_cookie, state, total_retrans, close_ns
				 * are filled */
#define ML_F_HANDSHAKE (1u << 5) /* handshake_us is a measurement (ml_sock_state.flags too) */
#define ML_F_RTO (1u << 6)       /* the kernel keeps total_rto* (6.7 and later): meaningful */
#define ML_F_HEALTH (1u << 7)    /* the TCP health fields were read (a tcp_sock was there) */

/*
 * One record per opened or closed connection or failed attempt (ringbuf
 * payload), and per open connection in the live-socket iterator's output.
 * For OPEN and LIVE records close_ns is the time of the reading.
 * OPEN records carry no payload yet (0 by definition); their sent_bytes
 * and received_bytes are the bases instead: the kernel's bytes_acked and
 * bytes_received at ESTABLISHED (the SYN's sequence space, and data a
 * TCP Fast Open SYN carried), which ML_F_RAW records are relative to.
 * OPEN records carry the ends, identity, times and handshake_us (with
 * ML_F_HANDSHAKE) only: the TCP counters (srtt_us .. last_drop_reason)
 * and the TCP health fields are 0 there.
 */
struct tcp_probe_info {
	__u64 start_ns;       /* monotonic ns: connect() called / accepted */
	__u64 close_ns;       /* monotonic ns: closed / failed */
	__u64 duration;       /* ns, close_ns - start_ns */
	__u64 sent_bytes;     /* payload bytes this socket sent, acked by peer */
	__u64 received_bytes; /* payload bytes this socket received */
	__u64 sock_cookie;    /* bpf_get_socket_cookie(), unique per socket */
	__u64 cgroup_id;      /* cgroup v2 id of the socket's cgroup */
	/* TCP health (CLOSE and LIVE records), the kernel's own counters
	 * (tcp_info's names); see ml_fill_conn() */
	__u64 bytes_retrans;  /* bytes retransmitted */
	__u64 delivery_rate;  /* bytes/s, the last delivery-rate sample (tcpi_delivery_rate) */
	__u8 src_addr[ML_ADDR_LEN]; /* client address */
	__u8 dst_addr[ML_ADDR_LEN]; /* server address */
	__u32 srtt_us;        /* smoothed RTT in us, already unshifted (>>3) */
	__u32 rtt_min;        /* minimum RTT seen, us */
	__u32 mss_cache;      /* effective MSS, bytes */
	__u32 total_retrans;  /* retransmitted segments, whole connection */
	__u32 segs_in;        /* segments received (RFC 4898) */
	__u32 segs_out;       /* segments sent (RFC 4898) */
	__u32 lost_out;       /* segments currently marked lost, at close */
	__u32 sk_err;         /* errno that ended the socket, 0 if none */
	__u32 drops;          /* packets of this socket dropped (drop tracing on) */
	__u32 last_drop_reason; /* enum skb_drop_reason of the last one */
	__u32 handshake_us;   /* with ML_F_HANDSHAKE: outbound, connect() to ESTABLISHED;
			       * inbound, the kernel's SYN-ACK round trip (see
			       * ml_established()); us */
	__u32 dsack_dups;     /* segments the peer reported received twice (DSACK) */
	__u32 reord_seen;     /* reordering events seen */
	__u32 rcv_ooopack;    /* packets received out of order */
	__u32 delivered_ce;   /* packets delivered with ECN CE marks */
	__u32 snd_cwnd;       /* congestion window, segments */
	__u32 snd_ssthresh;   /* slow-start threshold, segments; ML_INFINITE_SSTHRESH: never set */
	__u32 total_rto_time; /* with ML_F_RTO: ms spent in RTO recovery */
	__u16 total_rto;      /* with ML_F_RTO: RTO timeouts */
	__u16 total_rto_recoveries; /* with ML_F_RTO: recoveries the RTOs started */
	__u16 src_port;       /* client port, host order */
	__u16 dst_port;       /* server port, host order */
	__u16 family;         /* AF_INET or AF_INET6 (of the socket) */
	__u8 type;            /* enum ml_record_type */
	__u8 direction;       /* enum ml_direction */
	__u8 state;           /* TCP state before close (TCP_ESTABLISHED = 1, ...) */
	__u8 protocol;        /* IPPROTO_TCP */
	__u8 conn_success;    /* 1 if the connection reached ESTABLISHED */
	__u8 failure;         /* enum ml_failure, 0 when conn_success */
	__u8 flags;           /* ML_F_* */
	__u8 pad[7];
};
_Static_assert(sizeof(struct tcp_probe_info) == 200, "tcp_probe_info ABI size");

/* ml_sock_state.phase: how far an observed socket got. */
enum ml_phase {
	ML_PH_ATTEMPT = 1,     /* connect() called, no SYN sent yet */
	ML_PH_CONNECTING = 2,  /* SYN sent (TCP_CONNECT_CB) */
	ML_PH_ESTABLISHED = 3, /* handshake completed */
	ML_PH_CLOSED = 4,      /* close record emitted; storage about to go */
};

/*
 * Per-socket state, one BPF_MAP_TYPE_SK_STORAGE value per observed socket.
 * Created at connect() (outbound) or at establishment (inbound), deleted
 * when the socket's record has been emitted.
 */
struct ml_sock_state {
	__u64 connect_ns;         /* monotonic ns: connect() called / accepted */
	__u64 sent_base;          /* bytes_acked at ESTABLISHED (SYN sequence space) */
	__u64 recv_base;          /* bytes_received at ESTABLISHED */
	__u64 cgroup_id;          /* cgroup v2 id of the socket */
	__u64 sock_cookie;        /* bpf_get_socket_cookie(), taken where a ctx allows it */
	__u8 dst_addr[ML_ADDR_LEN]; /* connect() destination, v4-mapped for IPv4 */
	__u16 dst_port;           /* connect() destination port, host order */
	__u8 direction;           /* enum ml_direction */
	__u8 connect_success;     /* 1 once ESTABLISHED */
	__u8 phase;               /* enum ml_phase */
	__u8 flags;               /* ML_F_HANDSHAKE, or 0 (FIN_OUT is read from the state) */
	__u8 live_seen;           /* a live pass has reported it */
	__u8 pad;
	__u32 drops;              /* packets of this socket dropped */
	__u32 last_drop_reason;   /* enum skb_drop_reason of the last one */
	__u64 live_sent;          /* counters the live-socket iterator last reported */
	__u64 live_received;
	__u32 live_retrans;
	__u32 handshake_us;       /* tcp_probe_info.handshake_us, with ML_F_HANDSHAKE in flags */
};
_Static_assert(sizeof(struct ml_sock_state) == 96, "ml_sock_state ABI size");

/* ---- packet drops (kfree_skb) ------------------------------------------------ */

/* direction of a dropped packet */
enum ml_drop_dir {
	ML_DROP_INGRESS = 1, /* arriving at this host */
	ML_DROP_EGRESS = 2,  /* sent by a local socket */
};

/* Per-CPU hash `drop_counts`: what metrics count (named in user space). */
struct ml_drop_key {
	__u32 reason;   /* enum skb_drop_reason, subsystem bits included */
	__u8 l4proto;   /* IPPROTO_* of the packet, 0 when not IP */
	__u8 family;    /* AF_INET, AF_INET6, 0 when not IP */
	__u8 direction; /* enum ml_drop_dir */
	__u8 pad;
};
_Static_assert(sizeof(struct ml_drop_key) == 8, "ml_drop_key ABI size");

struct ml_drop_val {
	__u64 packets;
	__u64 bytes; /* skb->len */
};
_Static_assert(sizeof(struct ml_drop_val) == 16, "ml_drop_val ABI size");

/*
 * Hash `drop_flows`: drops per flow, rebuilt from the packet. User space
 * flips the epoch every refresh and takes the other epoch's entries out
 * (lookup, delete) at the next drain tick, when no program can still be
 * adding to them: an entry deleted while a program on another CPU was
 * adding to it lost that packet (seen on a slow VM: 10 of 11 drops logged).
 */
struct ml_flow_key {
	__u8 src_addr[ML_ADDR_LEN]; /* packet source, v4-mapped for IPv4 */
	__u8 dst_addr[ML_ADDR_LEN]; /* packet destination */
	__u32 reason;               /* enum skb_drop_reason */
	__u32 ifindex;              /* device the packet was on, 0 if none */
	__u32 netns;                /* network namespace inode number */
	__u16 src_port;             /* host order; ICMP: type */
	__u16 dst_port;             /* host order; ICMP: code */
	__u8 l4proto;               /* IPPROTO_* */
	__u8 family;                /* AF_INET, AF_INET6 */
	__u8 direction;             /* enum ml_drop_dir */
	__u8 epoch;                 /* drops.bpf.c's flow_epoch when counted (0/1) */
};
_Static_assert(sizeof(struct ml_flow_key) == 52, "ml_flow_key ABI size");

struct ml_flow_val {
	__u64 packets;
	__u64 bytes;
	__u64 first_ns;    /* monotonic ns of the first drop in this entry */
	__u64 last_ns;     /* ... and of the last */
	__u64 sock_cookie; /* observed socket the packet belonged to, 0 if none */
	__u8 tcp_flags;    /* OR of the TCP flags of the dropped packets */
	__u8 tcp_state;    /* TCP state of the packet's socket at the last drop */
	__u8 pad[6];
};
_Static_assert(sizeof(struct ml_flow_val) == 48, "ml_flow_val ABI size");

/*
 * Per-CPU array `retrans_counts`: node-wide retransmitted TCP segments, one
 * slot per (family, TCP state): IPv4 states first, then IPv6.
 */
#define ML_RTX_STATES 16
#define ML_RTX_SLOTS (2 * ML_RTX_STATES)

static inline __u32 ml_rtx_slot(__u16 family, __u32 state)
{
	return (family == 10 /* AF_INET6 */ ? ML_RTX_STATES : 0) + (state & (ML_RTX_STATES - 1));
}

/* Indexes of the per-CPU `counters` array map. */
enum ml_counter {
	ML_CNT_UNUSED0 = 0,      /* not counted (was: records submitted) */
	ML_CNT_RECORDS_LOST = 1, /* close/failure records lost: ringbuf full */
	ML_CNT_STORAGE_FAIL = 2, /* sockets not tracked: storage alloc failed */
	ML_CNT_FLOWS_FULL = 3,   /* drops not kept per flow: drop_flows full */
	ML_CNT_OPEN_LOST = 4,    /* open records lost: ringbuf full (the close
				  * record still counts the connection opened) */
	ML_CNT_MAX = 8,
};

#endif /* MESHLENS_PROBE_H */
