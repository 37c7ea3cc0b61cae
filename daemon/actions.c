// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * actions - what runs and ends before anything is attached: --help,
 * --version, --gen-config, --list, --diagnose, --detach, and the refusal
 * to start as another user than root.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "../drops/diagnose.h"

#ifndef MESHLENS_VERSION
#define MESHLENS_VERSION "0.1.0-dev"
#endif

int ml_fail(int code, const char *what, const char *err)
{
	fprintf(stderr, "meshlens: %s%s%s\n", what, what[0] ? ": " : "", err);
	return code;
}

/* --diagnose: one pass over every source, printed. */
static int diagnose_once(void)
{
	struct diag_finding f[64];
	struct diag_state *s = diag_new();
	int n = s ? diag_run(s, f, 64) : -ENOMEM;

	if (n >= 0)
		diag_print(stdout, f, n);
	diag_free(s);
	return n < 0 ? ml_fail(ML_EXIT_RUNTIME, "diagnosis", strerror(-n)) : 0;
}

/*
 * What runs and ends before anything is attached; -1 when none was asked
 * for. Drop points are named from this kernel's BTF (--list, --drops and
 * a selection to validate need them).
 */
int ml_one_shot(struct ml_daemon *d, char *err, size_t errlen)
{
	struct ml_options *o = &d->opt;
	char *text;
	int ret;

	if (o->help)
		return ml_options_usage(stdout), 0;
	if (o->version)
		return printf("meshlens %s\n", MESHLENS_VERSION) < 0;
	if (o->gen_config) {
		text = ml_config_dump(o);
		ret = text ? printf("%s\n", text) < 0 : 1;
		free(text);
		return ret;
	}
	if (o->user && !getpwnam(o->user)) {
		snprintf(err, errlen, "--user '%s': no such user", o->user);
		return ml_fail(ML_EXIT_USAGE, "", err);
	}
	if (o->list || o->drops || o->n_include || o->n_exclude) {
		if (drop_reasons_load(&d->reasons, NULL, err, errlen))
			return ml_fail(ML_EXIT_RUNTIME, "drop reasons", err);
		if (drop_reasons_select(&d->reasons, o->include, o->n_include, o->exclude,
					o->n_exclude, err, errlen))
			return ml_fail(ML_EXIT_USAGE, "", err);
	}
	if (o->list)
		return drop_reasons_list(&d->reasons, stdout), 0;
	if (o->diagnose)
		return diagnose_once();
	if (o->detach && geteuid() == 0) {
		ret = ml_bpf_unpin_all(o->pin_path, err, errlen);
		/* a path that is no pin directory of ours is bad usage */
		if (ret)
			return ml_fail(ret == -EINVAL || ret == -EMEDIUMTYPE || ret == -EBUSY ? ML_EXIT_USAGE
											  : ML_EXIT_RUNTIME,
				    "--detach", err);
		return 0;
	}
	if (geteuid() != 0)
		return ml_fail(ML_EXIT_USAGE, "",
			    "must run as root (loading and attaching BPF programs needs CAP_BPF, "
			    "CAP_NET_ADMIN and CAP_SYS_ADMIN)");
	return -1;
}
