/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http - the metrics/health endpoint (libmicrohttpd: one thread polls every
 * connection, one helper thread keeps time and compresses).
 *
 * The HTTP threads never touch metric state. A scrape asks the event loop
 * for a fresh snapshot through an eventfd, waits suspended (at most 5 s,
 * then 503) until the loop publishes one, and serves that immutable,
 * reference-counted body. All scrapes waiting at the same time share one
 * render. Every client's time is bounded; slow or idle clients hold no
 * thread and never cost the loop anything.
 *
 * Routes: /metrics (text format 0.0.4, gzip when accepted), /healthz
 * (200 "ok" once ready, 503 before), / (landing page), else 404.
 */
#ifndef MESHLENS_HTTP_H
#define MESHLENS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct metrics_http;

/*
 * Bind addr ("127.0.0.1:2112", "localhost:2112", "[::1]:2112", "0.0.0.0:80")
 * and start serving. Raises the soft RLIMIT_NOFILE (up to the hard one) to
 * fit its connections. Returns NULL with a one-line message in err
 * (e.g. "metrics address 127.0.0.1:2112: Address already in use").
 */
struct metrics_http *metrics_http_start(const char *addr, char *err, size_t errlen);

/* eventfd the loop polls: readable when a scrape wants a snapshot. */
int metrics_http_notify_fd(const struct metrics_http *h);

/*
 * Loop side, on notify_fd readable: true when at least one scrape waits
 * for a snapshot (consumes the notification).
 */
bool metrics_http_wanted(struct metrics_http *h);

/*
 * Loop side: hand over a freshly rendered body (malloc'd; ownership passes
 * to h, which frees it once no response uses it) and wake every scrape that
 * asked before this call.
 */
void metrics_http_publish(struct metrics_http *h, char *body, size_t len);

/* /healthz turns 200 once set. */
void metrics_http_set_ready(struct metrics_http *h, bool ready);

/* What /healthz says after "ok: " (still 200); NULL or "" for nothing. */
void metrics_http_set_health_note(struct metrics_http *h, const char *note);

/* Stop the server's threads and free everything (waiting scrapes get 503). */
void metrics_http_stop(struct metrics_http *h);

#endif /* MESHLENS_HTTP_H */
