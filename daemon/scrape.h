/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * scrape - the Prometheus text of one scrape, rendered on the loop thread
 * and handed to the HTTP endpoint (metrics/http.h). Each feature renders
 * its own families (metrics/, drops/, the loader's feature table); this
 * adds the daemon's own: build info, records by source, what was lost,
 * series counts, the scrape's duration.
 */
#ifndef MESHLENS_SCRAPE_H
#define MESHLENS_SCRAPE_H

#include "../metrics/expo.h"

struct ml_bpf;
struct ml_drain;
struct ml_dropfeed;
struct ml_pipeline;
struct metrics_http;

struct ml_scrape {
	struct expo expo;            /* render buffer, reused */
	const struct ml_bpf *bpf;
	struct ml_drain *drain;      /* emptied first: a scrape counts what closed */
	struct ml_dropfeed *drops;   /* NULL without --drops */
	struct metrics_http *http;
	unsigned int max_series;
	int ncpus;
};

/* Render everything and publish it to s->http. */
void ml_scrape(struct ml_scrape *s);

void ml_scrape_free(struct ml_scrape *s);

#endif /* MESHLENS_SCRAPE_H */
