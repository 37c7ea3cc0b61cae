/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loader - start-up probing, open/load of the BPF skeleton, attach/detach.
 *
 * Each feature has a preferred hook (fexit, on kernels that allow
 * trampolines) and a fallback this kernel accepts; which one serves is
 * decided here by trying, and reported by ml_bpf_features().
 */
#ifndef MESHLENS_LOADER_H
#define MESHLENS_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#define ML_MAX_LINKS 256

struct meshlens_bpf;
struct bpf_link;

struct ml_bpf {
	struct meshlens_bpf *skel;
	bool fexit;               /* fexit programs loaded (trampolines allowed) */
	int fexit_err;            /* errno that refused them, when !fexit */
	const char *drop_hook;    /* program serving --drops, NULL when off */
	const char *rtx_hook;     /* programs counting the node's TCP retransmissions;
				   * NULL when none loads or attaches here (optional) */
	int rtx_err;              /* errno of a refused attach */
	char pin_dir[256];        /* bpffs directory of pinned maps and links; "" = none */
	bool pin_dir_made;        /* created by this process: removed again on failure */
	struct bpf_link *links[ML_MAX_LINKS];
	int n_links;
	struct bpf_link *iter_link; /* live-socket iterator over the socket storage */
};

struct ml_feature {
	const char *name;  /* "connections", ... */
	const char *hook;  /* hook serving it on this kernel */
	const char *other; /* preferred hook that was refused, or a note; NULL */
	bool off;          /* feature not enabled (e.g. drops without --drops) */
};

/*
 * Open and load, probing fexit first; with drops, the kfree_skb program
 * matching this kernel's tracepoint prototype (tp_btf, else the classic
 * tracepoint). With a pin_dir (on bpffs), the maps that hold state are
 * pinned there, or adopted when a previous daemon left them: socket
 * storage, the ringbuf with its unread records, the kernel counters.
 * 0, or -errno with a message in err.
 */
int ml_bpf_load(struct ml_bpf *b, unsigned int ringbuf_bytes, bool drops, const char *pin_dir,
		char *err, size_t errlen);

/* Remove everything pinned under pin_dir (programs detach, maps go). */
int ml_bpf_unpin_all(const char *pin_dir, char *err, size_t errlen);

/* Attach every program: cgroup ones to each fd of cg_fds. All or nothing. */
int ml_bpf_attach(struct ml_bpf *b, const int *cg_fds, int n_cg, char *err, size_t errlen);

/*
 * One pass of the live-socket iterator: an fd to read() tcp_probe_info
 * records from (type ML_REC_CONN_LIVE), or -errno.
 */
int ml_bpf_iter_open(const struct ml_bpf *b);

/* Destroy every link (programs stop running; maps stay readable). */
void ml_bpf_detach(struct ml_bpf *b);

/* Detach and free everything. */
void ml_bpf_destroy(struct ml_bpf *b);

/* Which hook serves each feature; returns the number filled. */
int ml_bpf_features(const struct ml_bpf *b, struct ml_feature *out, int max);

#endif /* MESHLENS_LOADER_H */
