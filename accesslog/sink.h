/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * accesslog/sink - where the lines go: stdout, a file or a FIFO, in
 * batches of whole lines written with one write(2) per flush, so a line
 * is never torn or interleaved; reopened after logrotate, or rotated by
 * size itself (rotate.c). Part of accesslog.h, which callers include.
 */
#ifndef MESHLENS_ACCESSLOG_SINK_H
#define MESHLENS_ACCESSLOG_SINK_H

#include <stddef.h>
#include <stdint.h>

struct accesslog_sink;

/*
 * Open a sink: "-" = stdout, anything else a file path opened O_APPEND
 * and non-blocking (created 0640, with its missing parent directories; a
 * FIFO must have a reader). Returns NULL with errno set on failure.
 */
struct accesslog_sink *accesslog_open(const char *dest);

/*
 * Queue one complete line ('\n'-terminated, < ACCESSLOG_LINE_MAX); flushes
 * first when the batch buffer is full. Returns 0 once queued, -EINVAL for a
 * malformed line. Lines a triggered flush could not write are counted in
 * accesslog_lost_lines(), not returned: callers must not retry.
 */
int accesslog_append(struct accesslog_sink *s, const char *line, size_t len);

/* Write every queued line (one write(2) per batch). 0 or -errno. */
int accesslog_flush(struct accesslog_sink *s);

/*
 * Re-open the file (after logrotate moved it); no-op for stdout. 0 or
 * -errno; on failure nothing more goes to the old file: lines are counted
 * lost while each flush retries (once a second; said on stderr once a
 * minute). A symlink at the path is followed only if the path was one
 * when the sink was opened.
 */
int accesslog_reopen(struct accesslog_sink *s);

/* strerror() for the sink's errors, naming the two it makes itself
 * (ELOOP: a symlink not followed; ENXIO: a FIFO nobody reads) */
const char *accesslog_strerror(int err);

/* Lines that could not be written (e.g. disk full) since open. */
uint64_t accesslog_lost_lines(const struct accesslog_sink *s);

/* Why the last lines counted lost were: -errno (ENOSPC...), 0 if none were. */
int accesslog_last_error(const struct accesslog_sink *s);

/*
 * Size-based rotation of a file sink (a no-op returning 0 for stdout).
 * At flush time, before a batch would take a non-empty file past
 * max_bytes, the file is renamed path.1 -- older ones shift, path.N[.gz]
 * -> path.N+1[.gz], and the one at max_files is deleted -- and a fresh
 * path is created (0640). Batches go whole to one file, so no line is
 * split or lost: a file exceeds max_bytes only when a single batch does.
 *
 * path.1 is then gzip-compressed to path.1.gz (fsync'd before path.1 is
 * removed) a slice at every flush, keeping the loop responsive; a file
 * that cannot be compressed stays uncompressed (counted in
 * accesslog_rotation_errors(), said once on stderr). A path.1 already
 * there (an earlier run stopped before compressing it) is compressed too.
 *
 * max_bytes 0 turns rotation off. 0, or -EINVAL (max_files 0),
 * -ENAMETOOLONG, -ENOMEM. accesslog_reopen() keeps working with it on.
 */
int accesslog_set_rotation(struct accesslog_sink *s, uint64_t max_bytes, unsigned int max_files);

/*
 * accesslog_open() and, with max_bytes > 0, accesslog_set_rotation() in
 * one: the sink, or NULL with "--access-log 'DEST': why" in err and *ret
 * the -errno.
 */
struct accesslog_sink *accesslog_open_rotating(const char *dest, uint64_t max_bytes,
					       unsigned int max_files, int *ret, char *err,
					       size_t errlen);

/* Rotations done since open. */
uint64_t accesslog_rotations(const struct accesslog_sink *s);

/*
 * Rotations and compressions that failed since open. No line is lost by
 * them: they stay in the current file, or in an uncompressed path.N.
 */
uint64_t accesslog_rotation_errors(const struct accesslog_sink *s);

/* Flush and close. */
void accesslog_close(struct accesslog_sink *s);

#endif /* MESHLENS_ACCESSLOG_SINK_H */
