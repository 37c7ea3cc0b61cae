// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <string.h>

#include "../drops/reasons.h"
#include "metadata.h"
#include "pipeline.h"

static bool addr_unspecified(const uint8_t a[ML_ADDR_LEN])
{
	uint64_t w[2];

	memcpy(w, a, sizeof(w));
	return !(w[0] | w[1]);
}

/*
 * Names of both ends: the socket's cgroup names its own end (outbound:
 * the client, inbound: the server) and wins there; addresses name either.
 */
static void name_ends(struct ml_metadata *md, const struct tcp_probe_info *r,
		      const struct ml_workload **srcp, const struct ml_workload **dstp)
{
	const struct ml_workload *own = NULL, *src = NULL, *dst = NULL;
	const char *cgroup = ml_metadata_cgroup_path(md, r->cgroup_id);

	if (cgroup)
		own = ml_metadata_by_cgroup(md, cgroup);
	if (own && r->direction == ML_DIR_OUTBOUND)
		src = own;
	else if (!addr_unspecified(r->src_addr))
		src = ml_metadata_by_addr(md, r->src_addr);
	if (own && r->direction == ML_DIR_INBOUND)
		dst = own;
	else if (!addr_unspecified(r->dst_addr))
		dst = ml_metadata_by_addr(md, r->dst_addr);
	*srcp = src;
	*dstp = dst;
}

/* A line's names: the socket's cgroup and the ends' keys, rendered at load. */
static void identify(struct ml_metadata *md, const struct tcp_probe_info *r,
		     struct accesslog_identity *id)
{
	const struct accesslog_keys *cg = ml_metadata_cgroup_key(md, r->cgroup_id);
	const struct ml_workload *src, *dst;

	if (cg) /* the root itself has none: nothing to say */
		id->cgroup = *cg;
	name_ends(md, r, &src, &dst);
	if (src)
		id->src = src->src_keys;
	if (dst)
		id->dst = dst->dst_keys;
}

static void end_of(const struct ml_workload *w, struct metrics_end *e)
{
	if (!w)
		return;
	*e = (struct metrics_end){ w->service,	 w->canonical_service, w->canonical_revision,
				   w->principal, w->app,	       w->version,
				   w->cluster };
}

void ml_pipeline_names(void *pipeline, const struct tcp_probe_info *r, struct metrics_names *out)
{
	struct ml_pipeline *p = pipeline;
	const struct ml_workload *src, *dst;

	if (!p->md)
		return;
	name_ends(p->md, r, &src, &dst);
	end_of(src, &out->src);
	end_of(dst, &out->dst);
	if (src) {
		out->src_workload = src->workload;
		out->src_namespace = src->namespace;
	}
	if (dst) {
		out->dst_workload = dst->workload;
		out->dst_namespace = dst->namespace;
	}
	out->src_id = src;
	out->dst_id = dst;
	out->id_gen = ml_metadata_generation(p->md);
}

int ml_pipeline_record(void *pipeline, void *data, size_t size)
{
	struct ml_pipeline *p = pipeline;
	const struct tcp_probe_info *r = data;
	struct accesslog_identity id = { 0 };
	char line[ACCESSLOG_LINE_MAX], rn[64];
	int len;

	if (size < sizeof(*r) || r->type < ML_REC_CONN_CLOSE || r->type > ML_REC_CONN_LIVE)
		return 0;
	if (p->md && ml_metadata_cgroup_unknown(p->md, r->cgroup_id)) {
		p->stalled = true;
		return ML_PIPELINE_AGAIN;
	}
	p->records++;
	p->by_type[r->type]++;
	metrics_record(p->metrics, r);
	if (!p->sink || (r->type != ML_REC_CONN_CLOSE && r->type != ML_REC_CONN_FAILED))
		return 0;
	if (p->md)
		identify(p->md, r, &id);
	/* named only where the line has the key: a lookup per record with drops */
	if ((r->flags & ML_F_DROPS) && r->drops && p->reasons)
		id.drop_reason = drop_reason_name(p->reasons, r->last_drop_reason, rn, sizeof(rn));
	len = accesslog_format_id(r, &p->clk, p->md || id.drop_reason ? &id : NULL, line,
				  sizeof(line));
	if (len < 0 && p->md) { /* names too long for a line: the record still goes out */
		struct accesslog_identity reason_only = { .drop_reason = id.drop_reason };

		len = accesslog_format_id(r, &p->clk, &reason_only, line, sizeof(line));
	}
	if (len > 0)
		accesslog_append(p->sink, line, (size_t)len);
	return 0;
}

bool ml_pipeline_unstall(struct ml_pipeline *p)
{
	if (!p->stalled)
		return false;
	p->stalled = false;
	ml_metadata_rescan(p->md);
	return true;
}

void ml_pipeline_interim(void *pipeline, const struct tcp_probe_info *r,
			 const struct metrics_interval *iv)
{
	struct ml_pipeline *p = pipeline;
	struct accesslog_interval a = { iv->sent, iv->received, iv->retrans };
	struct accesslog_identity id = { 0 };
	char line[ACCESSLOG_LINE_MAX];
	int len = -1;

	if (!p->sink)
		return;
	if (p->md) {
		identify(p->md, r, &id);
		len = accesslog_format_interim(r, &a, &p->clk, &id, line, sizeof(line));
	}
	if (len < 0) /* no metadata, or names too long for a line */
		len = accesslog_format_interim(r, &a, &p->clk, NULL, line, sizeof(line));
	if (len > 0)
		accesslog_append(p->sink, line, (size_t)len);
}
