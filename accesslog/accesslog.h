/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * accesslog - tcp_probe_info record -> one JSON line -> sink (stdout/file).
 *
 * The whole API of the module, in two parts: format.h (record or drop
 * flow -> line, the clock; format.c) and sink.h (batching, reopen and
 * size rotation; sink.c, rotate.c). Nothing here allocates per record: the
 * caller formats into its own buffer and appends to a sink that batches
 * lines and writes them with one write(2) per flush, so a line is never
 * torn or interleaved. Addresses and TCP states are named by lib/names.h.
 */
#ifndef MESHLENS_ACCESSLOG_H
#define MESHLENS_ACCESSLOG_H

#include "format.h"
#include "sink.h"

#endif /* MESHLENS_ACCESSLOG_H */
