/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * util - the few macros every module would otherwise define again.
 */
#ifndef MESHLENS_UTIL_H
#define MESHLENS_UTIL_H

/* Elements of an array (not a pointer: sizeof would be the pointer's). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* MESHLENS_UTIL_H */
