/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * file - read a whole file (the config, the --metadata file).
 */
#ifndef MESHLENS_FILE_H
#define MESHLENS_FILE_H

#include <stddef.h>

/*
 * The whole of path in a malloc'd buffer with a NUL after its last byte
 * (*len does not count it), or NULL with a one-line reason in err, for the
 * caller to prefix with what the file is: the open's strerror(),
 * "cannot read: <strerror>", "larger than <max> bytes" (or "<n> MiB"),
 * "out of memory". Reads until EOF rather than trusting st_size, so pipes
 * and /dev/stdin work; stops reading past max, so `-c /dev/zero` costs
 * max bytes, not all memory.
 */
char *ml_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif /* MESHLENS_FILE_H */
