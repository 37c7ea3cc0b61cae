/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * expo - Prometheus text exposition format 0.0.4 writer.
 *
 * Appends to one growable buffer (reused between renders, so a steady
 * state render does not allocate). The caller emits each family once:
 * expo_family() writes # HELP and # TYPE, then expo_sample() its samples.
 * Label values are escaped (\\, \", \n); HELP text likewise (\\, \n).
 */
#ifndef MESHLENS_EXPO_H
#define MESHLENS_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct expo {
	char *buf;
	size_t len, cap;
	bool oom; /* an allocation failed: the text is incomplete */
};

/* Empty the buffer, keeping its memory. */
void expo_reset(struct expo *e);

/* Free the buffer. */
void expo_free(struct expo *e);

/* "# HELP name help\n# TYPE name type\n"; type is "counter", "gauge", ... */
void expo_family(struct expo *e, const char *name, const char *type, const char *help);

/*
 * One sample: name{k1="v1",k2="v2"} value. labels is a list of key, value
 * pairs ended by NULL (NULL itself for no labels).
 */
void expo_sample_u64(struct expo *e, const char *name, const char *const *labels, uint64_t v);
void expo_sample_f64(struct expo *e, const char *name, const char *const *labels, double v);

#endif /* MESHLENS_EXPO_H */
