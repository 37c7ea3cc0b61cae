/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * daemon - the running daemon's parts, wired by main.c. Each part is a
 * module of its own (loop, drain, live, dropfeed, scrape, the loader);
 * this struct only holds them together, for main.c and for the reload
 * (reload.c), which by its nature reaches every part that may change
 * while running.
 */
#ifndef MESHLENS_DAEMON_H
#define MESHLENS_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "drain.h"
#include "dropfeed.h"
#include "live.h"
#include "loader.h"
#include "loop.h"
#include "options.h"
#include "pipeline.h"
#include "scrape.h"
#include "../cgroup/cgroup.h"
#include "../drops/reasons.h"

struct ml_daemon {
	struct ml_options opt;
	int argc;                    /* the command line, read again by a config reload */
	char **argv;
	struct ml_bpf bpf;
	struct ml_pipeline pl;       /* record -> metrics + access log */
	struct ml_loop loop;
	struct ml_drain drain;       /* the pinned ringbuf into the pipeline */
	struct ml_live live;         /* live-counter passes */
	struct ml_dropfeed drops;    /* --drops, when a hook serves */
	bool drops_on;
	struct ml_scrape scrape;
	struct metrics_http *http;   /* NULL when the endpoint is off */
	struct drop_reasons reasons; /* names, layers, selection (--list, --drops) */
	struct cgroup_set cg;
	char cg_root[PATH_MAX];
	int sfd;                     /* signalfd: TERM, INT, HUP */
	int drain_tfd, refresh_tfd;  /* the loop's timers */
	int ifd;                     /* inotify on the --metadata file's directory */
	const char *md_name;         /* the --metadata file's name in that directory */
	char reload_text[ML_ERR_LEN + 64]; /* the last metadata reload's word */
	unsigned int reload_held;          /* reloads since it was last said */
	int64_t reload_said_ns;
};

/* Exit codes: what the user gave (options, paths, files, a taken port), or
 * what failed at run time. Only main.c and its one-shot actions use them;
 * every module returns 0 or -errno with one line of text. */
enum { ML_EXIT_RUNTIME = 1, ML_EXIT_USAGE = 2 };

/* Say "meshlens: what: err" (what may be "") and return code. */
int ml_fail(int code, const char *what, const char *err);

/*
 * The one-shot actions (actions.c): what runs and ends before anything is
 * attached. Its exit code, or -1 when none was asked for (start the daemon).
 */
int ml_one_shot(struct ml_daemon *d, char *err, size_t errlen);

/* SIGHUP: the config file (-c) read again and its live keys applied. */
void ml_reload_config(struct ml_daemon *d);

/* The --metadata file parsed again (the old table stays when it is bad). */
void ml_reload_metadata(struct ml_daemon *d);

/* Reload the metadata when its file is written or replaced. 0 or -errno. */
int ml_watch_metadata(struct ml_daemon *d);

/* A reload's word held back by the once-a-second limit, said once it may be. */
void ml_reload_say_held(struct ml_daemon *d);

#endif /* MESHLENS_DAEMON_H */
