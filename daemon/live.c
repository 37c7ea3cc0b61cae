// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "drain.h"
#include "live.h"
#include "loader.h"
#include "pipeline.h"
#include "../lib/util.h"

/* Room for 64 more records at least; false when memory is out. */
static bool reserve(struct ml_live *lv, size_t have)
{
	const size_t rec = sizeof(struct tcp_probe_info);
	size_t cap;
	char *nb;

	if (lv->cap - have >= 64 * rec)
		return true;
	cap = lv->cap ? lv->cap * 2 : 256 * rec;
	nb = realloc(lv->buf, cap);
	if (!nb)
		return false;
	lv->buf = nb;
	lv->cap = cap;
	return true;
}

bool ml_live_refresh(struct ml_live *lv)
{
	const size_t rec = sizeof(struct tcp_probe_info);
	struct ml_pipeline *pl = lv->drain->pl;
	bool full = lv->passes++ % ML_LIVE_FULL_EVERY == 0 || lv->every_pass_full;
	size_t have = 0;
	ssize_t n;
	int fd;

	ml_drain_run(lv->drain);
	if (!ml_bpf_on(lv->bpf, ML_FEAT_LIVE)) /* bytes counted at close */
		return full;
	fd = ml_bpf_iter_open(lv->bpf, full);
	if (fd < 0) {
		fprintf(stderr, "meshlens: live-socket iterator: %s\n", strerror(-fd));
		return full;
	}
	metrics_live_begin(pl->metrics, full);
	while (reserve(lv, have)) {
		n = read(fd, lv->buf + have, lv->cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		/* hand over whole records, keep a partial one for the next read */
		size_t whole = have - have % rec;

		for (size_t off = 0; off < whole; off += rec)
			if (ml_pipeline_record(pl, lv->buf + off, rec) == ML_PIPELINE_AGAIN &&
			    ml_pipeline_unstall(pl))
				ml_pipeline_record(pl, lv->buf + off, rec);
		memmove(lv->buf, lv->buf + whole, have - whole);
		have -= whole;
		/* a long pass must not let the ringbuf fill up behind it; closes
		 * read now are safe: a closed socket is no longer reported live */
		ml_drain_run(lv->drain);
	}
	close(fd);
	metrics_live_end(pl->metrics, (uint64_t)ml_mono_ns(), full);
	return full;
}

void ml_live_free(struct ml_live *lv)
{
	free(lv->buf);
	lv->buf = NULL;
	lv->cap = 0;
}
