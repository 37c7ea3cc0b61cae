/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * accesslog/sink_internal - what sink.c and rotate.c share, and no one
 * else: the sink's state, and the points where the batching sink calls
 * into size rotation and back. Not part of the module's API (sink.h).
 */
#ifndef MESHLENS_ACCESSLOG_SINK_INTERNAL_H
#define MESHLENS_ACCESSLOG_SINK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <zlib.h>

#include "sink.h"
#include "../lib/util.h"

#define NSEC_PER_SEC 1000000000ULL

/* Compression of path.1 in progress (rotate.c). */
struct accesslog_gz {
	int src;		/* path.1 open for reading; -1: nothing to compress */
	int dst;		/* path.1.gz.tmp; -1 when not open */
	uint64_t left;		/* bytes of src not read yet */
	bool zinit;		/* zs holds deflate state to end */
	bool eof;
	z_stream zs;
	unsigned char *in, *out; /* GZ_CHUNK each, allocated with the rotation */
};

struct accesslog_sink {
	int fd;
	char *path;	/* NULL for stdout: not ours to close or reopen */
	char *buf;	/* whole lines, BATCH_SIZE bytes (sink.c) */
	size_t used;
	bool torn;	/* the file ends inside the line that starts buf */
	uint64_t lost;
	int last_err;		/* -errno of the last batch not written */
	/* a reopen that failed (fd -1): retried at flushes, lines meanwhile lost */
	bool follow;		/* the path was a symlink at start: the operator's, followed */
	int reopen_err;		/* -errno of the last failed attempt; 0 = open */
	int64_t reopen_retry_ns, reopen_said_ns; /* CLOCK_MONOTONIC */
	uint64_t lost_at_fail;	/* s->lost when the reopen first failed */
	/* rotation (rotate.c); max_bytes 0 = off */
	uint64_t max_bytes;
	unsigned int max_files;
	uint64_t rotations, rotation_errors;
	bool rotate_failing, gz_failing; /* said once, until it works again */
	int64_t rotate_retry_ns;	 /* CLOCK_MONOTONIC: no new attempt before this */
	struct accesslog_gz gz;
};

/*
 * sink.c: open path for appending (missing parent directories created),
 * following a symlink there only if follow. An fd, or -1 with errno set.
 */
int accesslog_open_file(const char *path, bool follow);

/* rotate.c, called by sink.c: */

/* At open: nothing being compressed. */
void accesslog_rotate_init(struct accesslog_sink *s);

/* Rotation on: before a batch of len more bytes goes to the file. */
void accesslog_rotate_before_batch(struct accesslog_sink *s, size_t len);

/* After a flush wrote written bytes: the next slice of compression. */
void accesslog_rotate_after_batch(struct accesslog_sink *s, size_t written);

/* At close, after the last flush: compression finished or left, freed. */
void accesslog_rotate_close(struct accesslog_sink *s);

#endif /* MESHLENS_ACCESSLOG_SINK_INTERNAL_H */
