// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "dropfeed.h"
#include "loader.h"
#include "metadata.h"
#include "pipeline.h"
#include "../drops/byworkload.h"
#include "../drops/diagnose.h"
#include "../drops/drops.h"

int ml_dropfeed_init(struct ml_dropfeed *df, struct ml_bpf *bpf, const struct drop_reasons *r,
		     struct ml_pipeline *pl, bool by_workload, unsigned int max_series, char *err,
		     size_t errlen)
{
	int ret;

	*df = (struct ml_dropfeed){ .bpf = bpf, .reasons = r, .pl = pl };
	df->ncpus = libbpf_num_possible_cpus();
	ret = drops_apply_filter(ml_bpf_map_fd(bpf, ML_MAP_DROP_FILTER), r);
	if (ret) {
		snprintf(err, errlen, "setting up drop tracing: %s", strerror(-ret));
		return ret;
	}
	df->diag = diag_new();
	if (df->diag)
		diag_refresh(df->diag); /* the first scrape's figures */
	if (by_workload)
		df->wl = drop_wl_new(max_series);
	if (!df->diag || (by_workload && !df->wl) || df->ncpus < 0) {
		snprintf(err, errlen, "setting up drop tracing: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

int ml_dropfeed_select(struct ml_dropfeed *df, char *err, size_t errlen)
{
	int ret = drops_apply_filter(ml_bpf_map_fd(df->bpf, ML_MAP_DROP_FILTER), df->reasons);

	if (ret)
		snprintf(err, errlen, "drop selection: %s", strerror(-ret));
	return ret;
}

/*
 * A flow's drops since the last pass: a drop-log line, and with
 * --metadata, the workloads of its ends in the line and the local end's
 * (ingress: the destination, egress: the source) drop counts.
 */
static void on_flow(void *ctx, const struct ml_flow_key *k, const struct ml_flow_val *v,
		    const struct drop_names *n)
{
	struct ml_dropfeed *df = ctx;
	struct ml_pipeline *pl = df->pl;
	struct accesslog_drop_names names = { n->reason, n->layer, n->module };
	struct accesslog_identity id = { 0 };
	const struct ml_workload *src = NULL, *dst = NULL, *local;
	char line[ACCESSLOG_LINE_MAX];
	int len = -1;

	if (!pl->sink && !df->wl)
		return;
	if (pl->md && k->family) {
		src = ml_metadata_by_addr(pl->md, k->src_addr);
		dst = ml_metadata_by_addr(pl->md, k->dst_addr);
	}
	if (src)
		id.src = src->src_keys;
	if (dst)
		id.dst = dst->dst_keys;
	if (df->wl) {
		local = k->direction == ML_DROP_EGRESS ? src : dst;
		drop_wl_add(df->wl, local ? local->workload : NULL, local ? local->namespace : NULL,
			    k->reason, k->direction, v->packets, v->bytes);
	}
	if (!pl->sink)
		return;
	if (pl->md)
		len = accesslog_format_drop(k, v, &names, &id, &pl->clk, line, sizeof(line));
	if (len < 0) /* names too long for a line: the flow still goes out */
		len = accesslog_format_drop(k, v, &names, NULL, &pl->clk, line, sizeof(line));
	if (len > 0)
		accesslog_append(pl->sink, line, (size_t)len);
}

void ml_dropfeed_tick(struct ml_dropfeed *df)
{
	if (!df->flows_due)
		return;
	df->flows_due = false;
	drops_collect(ml_bpf_map_fd(df->bpf, ML_MAP_DROP_FLOWS), ml_bpf_flow_epoch(df->bpf) ^ 1,
		      df->reasons, on_flow, df);
	if (df->pl->sink)
		accesslog_flush(df->pl->sink);
}

void ml_dropfeed_refresh(struct ml_dropfeed *df, bool full)
{
	/* new drops go to the other epoch; this one is taken out at the next
	 * drain tick, once no program can be adding to it (probe.h) */
	ml_dropfeed_tick(df);
	ml_bpf_flip_flow_epoch(df->bpf);
	df->flows_due = true;
	/* one diagnosis per full-pass period: meshlens_diag_findings covers
	 * the last whole period, not the time since boot */
	if (full)
		diag_run(df->diag, NULL, 0);
	diag_refresh(df->diag); /* what scrapes show until the next refresh */
}

void ml_dropfeed_render(struct ml_dropfeed *df, struct expo *e)
{
	drops_render(ml_bpf_map_fd(df->bpf, ML_MAP_DROP_COUNTS), df->ncpus, df->reasons, e);
	if (df->wl)
		drop_wl_render(df->wl, df->reasons, e);
	diag_render(df->diag, e);
}

void ml_dropfeed_free(struct ml_dropfeed *df)
{
	diag_free(df->diag);
	drop_wl_free(df->wl);
	df->diag = NULL;
	df->wl = NULL;
}
