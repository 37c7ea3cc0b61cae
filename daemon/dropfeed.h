/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * dropfeed - the running half of --drops: the kernel's per-flow drops
 * into drop-log lines (with --metadata: named, and counted per workload),
 * the flow map's epochs switched at each refresh, the diagnosis run on
 * its schedule, and the drop families rendered. The loader's maps are
 * reached through ml_bpf_* only.
 */
#ifndef MESHLENS_DROPFEED_H
#define MESHLENS_DROPFEED_H

#include <stdbool.h>
#include <stddef.h>

struct ml_bpf;
struct ml_pipeline;
struct drop_reasons;
struct drop_wl;
struct diag_state;
struct expo;

struct ml_dropfeed {
	struct ml_bpf *bpf;
	const struct drop_reasons *reasons;
	struct ml_pipeline *pl;  /* the sink and the metadata drop lines use */
	struct diag_state *diag; /* diagnosis figures as metrics */
	struct drop_wl *wl;      /* drops by workload; NULL unless asked for */
	int ncpus;
	bool flows_due;          /* an epoch of drop flows waits to be taken out */
};

/*
 * Set up with the kernel's filter set to the selected reasons; by_workload
 * (--metadata with workload metrics) counts drops per workload, at most
 * max_series of them. 0 or -errno with err.
 */
int ml_dropfeed_init(struct ml_dropfeed *df, struct ml_bpf *bpf, const struct drop_reasons *r,
		     struct ml_pipeline *pl, bool by_workload, unsigned int max_series, char *err,
		     size_t errlen);

/* Drain tick: the epoch the kernel stopped writing, as drop-log lines. */
void ml_dropfeed_tick(struct ml_dropfeed *df);

/* Refresh: switch epochs; a full pass also runs the diagnosis. */
void ml_dropfeed_refresh(struct ml_dropfeed *df, bool full);

/* The kernel's filter to r's selection (a reload). 0 or -errno with err. */
int ml_dropfeed_select(struct ml_dropfeed *df, char *err, size_t errlen);

/* Drop counts, by workload, diagnosis: their families. */
void ml_dropfeed_render(struct ml_dropfeed *df, struct expo *e);

void ml_dropfeed_free(struct ml_dropfeed *df);

#endif /* MESHLENS_DROPFEED_H */
