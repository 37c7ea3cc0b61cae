/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loader - start-up probing, open/load of the BPF objects, attach/detach.
 *
 * The core object (sockops, connect4/6, socket storage, ringbuf,
 * counters) loads or meshlens does not run. Every optional feature is an
 * object of its own with an ordered list of variants (hooks); each variant
 * is loaded, and its tracing programs attached, on its own, sharing the
 * core's maps, so a refusal turns that feature to its next variant or off
 * and touches nothing else. One table of {feature, state, hook, reason}
 * (ml_bpf_features()) feeds --probe, meshlens_hook_info and the ready line.
 *
 * Test-only: MESHLENS_TEST_REFUSE=NAME[,NAME...] makes the loader treat
 * every variant that uses a named program (ml_iter_live, ...) or a hook
 * starting with a name ("fexit", "tp_btf", "iter/bpf_sk_storage_map", ...)
 * as refused by the kernel (EPERM), so a machine that allows everything
 * still runs every degraded path. Naming a core program makes the core
 * fail. Off unless set; documented in the README ("Kernels").
 */
#ifndef MESHLENS_LOADER_H
#define MESHLENS_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ML_MAX_LINKS 256

struct core_bpf;
struct bpf_link;
struct bpf_object;

/* The optional features, in the order --probe lists them after the core's. */
enum ml_feature_id {
	ML_FEAT_LIVE,     /* counters of open connections */
	ML_FEAT_FAILURES, /* connect() failing before any SYN */
	ML_FEAT_DROPS,    /* packet drops (--drops) */
	ML_FEAT_RETRANS,  /* node-wide TCP retransmissions */
	ML_FEATURES,
};

enum ml_feature_state {
	ML_FS_ON,       /* the preferred variant serves */
	ML_FS_FALLBACK, /* a later variant serves; reason says why not the first */
	ML_FS_OFF,      /* nothing serves: not asked for, or every variant refused */
};

struct ml_feature {
	const char *name;            /* "live-counters", ... */
	enum ml_feature_state state;
	const char *hook;            /* serving hook; NULL when off */
	char reason[768];            /* refusals ("hook: errno; ..."), or why off */
};

struct ml_bpf {
	struct core_bpf *core;
	void *skel[ML_FEATURES];        /* loaded variant's skeleton, NULL when off */
	struct bpf_object *obj[ML_FEATURES]; /* its object */
	int variant[ML_FEATURES];       /* index of the serving variant, -1 when off */
	struct ml_feature table[ML_FEATURES];
	unsigned int wakeup_bytes;      /* ringbuf fill that wakes the reader */
	char pin_dir[256];              /* bpffs directory of pinned maps and links; "" = none */
	bool pin_dir_made;              /* created by this process: removed again on failure */
	bool mem_alloc;                 /* the kernel has the BPF memory allocator (6.1) */
	bool rto_counted;               /* the kernel counts RTOs per socket (total_rto, 6.7) */
	bool drop_flows;                /* per-flow drop counts are read (ml_load_opts) */
	int pin_lock_fd;                /* the pin directory, flock()ed while this daemon runs */
	struct bpf_link *links[ML_MAX_LINKS];
	int n_links;
	int n_feature_links;            /* links[0..n) are the features' tracing/iterator links */
	struct bpf_link *iter_link;     /* the live-counter iterator's (one of them) */
};

struct ml_load_opts {
	unsigned int ringbuf_bytes;
	bool drops;          /* --drops */
	bool drop_flows;     /* --drops, and something reads the flows (drop log, by workload) */
	const char *pin_dir; /* NULL: nothing pinned (--probe) */
};

/*
 * Load the core, then each feature's first variant this kernel accepts
 * (loaded and its non-cgroup programs attached). With a pin_dir (on
 * bpffs), the maps that hold state are pinned there, or adopted when a
 * previous daemon left them. 0, or -errno with a message in err (for a
 * refused core, followed by the verifier's log).
 */
int ml_bpf_load(struct ml_bpf *b, const struct ml_load_opts *o, char *err, size_t errlen);


/* Remove everything pinned under pin_dir (programs detach, maps go). */
int ml_bpf_unpin_all(const char *pin_dir, char *err, size_t errlen);

/*
 * One daemon per pin directory (two would read one ring: every record
 * logged twice, or taken by the other and in no loss counter). An fd
 * holding the directory's lock until closed or the process ends, or
 * -EBUSY with the holder's pid in err, or another -errno.
 */
int ml_bpf_lock_pin_dir(const char *pin_dir, char *err, size_t errlen);

/*
 * Runs the kernel skipped because a program of ours was already running
 * on that CPU (a tracing program nested in itself, bpf_prog_info's
 * recursion_misses summed over every loaded program): events not seen.
 */
uint64_t ml_bpf_recursion_misses(const struct ml_bpf *b);

/* Whether reading the maps and the iterator after attach needs CAP_BPF
 * on this kernel (tried in a child without it). */
bool ml_bpf_needs_cap_bpf(const struct ml_bpf *b);

/* Attach the cgroup programs to each fd of cg_fds. All or nothing. */
int ml_bpf_attach(struct ml_bpf *b, const int *cg_fds, int n_cg, char *err, size_t errlen);

/*
 * One pass of the live-counter iterator: an fd to read() tcp_probe_info
 * records from (type ML_REC_CONN_LIVE), or -errno (-ENOTSUP when the
 * feature is off). full: every open connection, not only those that moved.
 */
int ml_bpf_iter_open(const struct ml_bpf *b, bool full);

/* Maps user space reads; -1 when their feature is off. */
enum ml_map { ML_MAP_EVENTS, ML_MAP_COUNTERS, ML_MAP_DROP_FILTER, ML_MAP_DROP_COUNTS,
	      ML_MAP_DROP_FLOWS, ML_MAP_RETRANS };
int ml_bpf_map_fd(const struct ml_bpf *b, enum ml_map m);
unsigned int ml_bpf_ringbuf_bytes(const struct ml_bpf *b);

/* Sum over CPUs of one slot of the kernel's counters (enum ml_counter). */
uint64_t ml_bpf_counter(const struct ml_bpf *b, uint32_t idx);

static inline bool ml_bpf_on(const struct ml_bpf *b, enum ml_feature_id f)
{
	return b->table[f].state != ML_FS_OFF;
}

/* The drop_flows epoch the kernel writes now (probe.h), and the switch to the other. */
int ml_bpf_flow_epoch(const struct ml_bpf *b);
void ml_bpf_flip_flow_epoch(struct ml_bpf *b);

/* Drop tracing counts drops per connection too (records carry "drops"). */
bool ml_bpf_drops_per_conn(const struct ml_bpf *b);

/* Destroy every link (programs stop running; maps stay readable). */
void ml_bpf_detach(struct ml_bpf *b);

/* Detach and free everything. */
void ml_bpf_destroy(struct ml_bpf *b);

/* Every feature, the core's first: fills out[0..max), returns how many. */
int ml_bpf_features(const struct ml_bpf *b, struct ml_feature *out, int max);

/* "on", "fallback", "off" */
const char *ml_feature_state_name(enum ml_feature_state s);

/*
 * Live counters come from the files of every task (iter/task_file), not
 * from the socket storage: a connection no pass sees may still be open
 * in a task the iterator missed (metrics.h, metrics_live_set_expiry).
 */
bool ml_bpf_live_by_task(const struct ml_bpf *b);

/* Live passes read the socket storage (full records: addresses, start,
 * TCP info), not only the raw per-task counters; false when off too. */
bool ml_bpf_live_full_records(const struct ml_bpf *b);

/* --probe: one line per feature: name, state, hook (or "-"), and why. */
void ml_bpf_print_probe(const struct ml_bpf *b, FILE *out);

/* "live-counters=iter/task_file packet-drops=off ...": the ready line's. */
void ml_bpf_summary(const struct ml_bpf *b, char *out, size_t len);

struct expo;
/* meshlens_hook_info and meshlens_feature_info. */
void ml_bpf_render_info(const struct ml_bpf *b, struct expo *e);

#endif /* MESHLENS_LOADER_H */
