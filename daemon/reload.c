// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * reload - what a running daemon takes in again: the config file on
 * SIGHUP (its live keys), the metadata file when it changes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "daemon.h"
#include "metadata.h"
#include "../lib/util.h"

/*
 * What a reload says: at most one line a second (a writer replacing the
 * file in a loop, or a SIGHUP storm, must not flood stderr); one held back
 * is said by the loop once the second is over, so the last word is
 * always said.
 */
#define ML_RELOAD_SAY_NS 1000000000LL

void ml_reload_say_held(struct ml_daemon *d)
{
	if (!d->reload_held || ml_mono_ns() - d->reload_said_ns < ML_RELOAD_SAY_NS)
		return;
	if (d->reload_held > 1)
		fprintf(stderr, "meshlens: %s (the last of %u reloads in a second)\n",
			d->reload_text, d->reload_held);
	else
		fprintf(stderr, "meshlens: %s\n", d->reload_text);
	d->reload_held = 0;
	d->reload_said_ns = ml_mono_ns();
}

void ml_reload_metadata(struct ml_daemon *d)
{
	char err[ML_ERR_LEN];
	const char *warn;

	if (!d->pl.md)
		return;
	ml_drain_run(&d->drain); /* records closed before the change get the old names */
	if (ml_metadata_reload(d->pl.md, err, sizeof(err))) {
		snprintf(d->reload_text, sizeof(d->reload_text),
			 "reloading metadata: %s (keeping the previous one)", err);
	} else {
		warn = ml_metadata_warning(d->pl.md);
		snprintf(d->reload_text, sizeof(d->reload_text), "metadata reloaded from %s%s%s",
			 ml_metadata_path(d->pl.md), warn[0] ? ": " : "", warn);
	}
	d->reload_held++;
	ml_reload_say_held(d);
}

/* inotify events of the directory: reload once if any is about the file */
static void metadata_changed(void *ctx)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct ml_daemon *d = ctx;
	const struct inotify_event *ev;
	bool hit = false;
	ssize_t n;

	while ((n = read(d->ifd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->len && !strcmp(ev->name, d->md_name))
				hit = true;
		}
	if (hit)
		ml_reload_metadata(d);
}

/*
 * Watch the directory, not the file: editors and config writers replace
 * the file by renaming a new one over it, which a watch on the old inode
 * never sees.
 */
int ml_watch_metadata(struct ml_daemon *d)
{
	char dir[PATH_MAX];
	const char *path = d->opt.metadata, *slash;

	if (!d->pl.md)
		return 0;
	slash = strrchr(path, '/');
	d->md_name = slash ? slash + 1 : path;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	d->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (d->ifd < 0 || inotify_add_watch(d->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
		return -errno;
	return ml_loop_add(&d->loop, d->ifd, metadata_changed, d);
}

static void add_word(char *list, size_t len, const char *word)
{
	size_t n = strlen(list);

	snprintf(list + n, len - n, "%s%s", n ? ", " : "", word);
}

/* Take what is live from n into d (n then owns what d had); 0 or -errno. */
static int apply_live(struct ml_daemon *d, struct ml_options *n, char *err, size_t errlen)
{
	struct ml_options *o = &d->opt;
	int ret = 0;

	if (d->drops_on) {
		/* validated before anything changes: a bad name keeps the old selection */
		ret = drop_reasons_select(&d->reasons, n->include, n->n_include, n->exclude,
					  n->n_exclude, err, errlen);
		if (ret)
			return ret;
		ret = ml_dropfeed_select(&d->drops, err, errlen);
		if (ret)
			return ret;
	}
	if ((n->drain_interval_ms != o->drain_interval_ms &&
	     (ret = ml_loop_timer_set(d->drain_tfd, n->drain_interval_ms))) ||
	    (n->refresh_interval_ms != o->refresh_interval_ms &&
	     (ret = ml_loop_timer_set(d->refresh_tfd, n->refresh_interval_ms)))) {
		snprintf(err, errlen, "timers: %s", strerror(-ret));
		return ret;
	}
	if (d->pl.sink && (n->log_max_size_kb != o->log_max_size_kb ||
			   n->log_max_files != o->log_max_files)) {
		ret = accesslog_set_rotation(d->pl.sink, (uint64_t)n->log_max_size_kb * 1024,
					     n->log_max_files);
		if (ret) {
			snprintf(err, errlen, "rotation: %s", strerror(-ret));
			return ret;
		}
	}
	metrics_set_series_idle(d->pl.metrics, n->series_idle_seconds);
	ml_options_take_live(o, n);
	return 0;
}

/*
 * The config file read again, the command line still on top. The live
 * keys are applied; a changed key of the others is named as needing a
 * restart. A bad file, or a bad value, changes nothing.
 */
void ml_reload_config(struct ml_daemon *d)
{
	char err[ML_ERR_LEN] = "", applied[256] = "", restart[256] = "";
	char *old_text = NULL, *new_text = NULL;
	cJSON *old = NULL, *cur = NULL, *k, *v;
	struct ml_options n;

	if (!d->opt.config_path)
		return;
	ml_options_init(&n);
	if (ml_options_parse(&n, d->argc, d->argv, err, sizeof(err)))
		goto said;
	old_text = ml_config_dump(&d->opt);
	new_text = ml_config_dump(&n);
	old = old_text ? cJSON_Parse(old_text) : NULL;
	cur = new_text ? cJSON_Parse(new_text) : NULL;
	if (!old || !cur) {
		snprintf(err, sizeof(err), "%s", strerror(ENOMEM));
		goto said;
	}
	cJSON_ArrayForEach(k, old) {
		bool live = ml_config_key_is_live(k->string);

		v = cJSON_GetObjectItemCaseSensitive(cur, k->string);
		if (!v || !cJSON_Compare(k, v, true))
			add_word(live ? applied : restart, live ? sizeof(applied) : sizeof(restart),
				 k->string);
	}
	if (applied[0] && apply_live(d, &n, err, sizeof(err)))
		goto said;
	if (applied[0] || restart[0])
		fprintf(stderr, "meshlens: config reloaded from %s: applied %s; needs a restart: %s\n",
			d->opt.config_path, applied[0] ? applied : "nothing",
			restart[0] ? restart : "nothing");
	goto out;
said:
	fprintf(stderr, "meshlens: reloading config: %s (nothing changed)\n", err);
out:
	cJSON_Delete(old);
	cJSON_Delete(cur);
	free(old_text);
	free(new_text);
	ml_options_free(&n);
}
