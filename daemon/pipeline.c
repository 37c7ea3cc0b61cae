// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "pipeline.h"

int ml_pipeline_record(void *pipeline, void *data, size_t size)
{
	struct ml_pipeline *p = pipeline;
	const struct tcp_probe_info *r = data;
	char line[ACCESSLOG_LINE_MAX];
	int len;

	if (size < sizeof(*r) || r->type > ML_REC_CONN_LIVE)
		return 0;
	p->records++;
	p->by_type[r->type]++;
	metrics_record(p->metrics, r);
	if (!p->sink || (r->type != ML_REC_CONN_CLOSE && r->type != ML_REC_CONN_FAILED))
		return 0;
	len = accesslog_format(r, &p->clk, line, sizeof(line));
	if (len > 0)
		accesslog_append(p->sink, line, (size_t)len);
	return 0;
}
