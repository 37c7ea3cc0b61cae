// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "privs.h"

int ml_drop_privileges(const char *user, bool keep_bpf, char *err, size_t errlen)
{
	const cap_value_t keep[] = { CAP_BPF };
	struct passwd *pw = NULL;
	cap_t caps;
	int ret = 0;

	if (user) {
		pw = getpwnam(user);
		if (!pw) {
			snprintf(err, errlen, "--user '%s': no such user", user);
			return -ENOENT;
		}
	}
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
		if ((c != CAP_BPF || !keep_bpf) && CAP_IS_SUPPORTED(c))
			cap_drop_bound(c);
	if (pw && (prctl(PR_SET_KEEPCAPS, 1) || setgroups(0, NULL) || setgid(pw->pw_gid) ||
		   setuid(pw->pw_uid))) {
		ret = -errno;
		snprintf(err, errlen, "--user '%s': %s", user, strerror(-ret));
		return ret;
	}
	caps = cap_init();
	if (!caps || (keep_bpf && (cap_set_flag(caps, CAP_EFFECTIVE, 1, keep, CAP_SET) ||
				   cap_set_flag(caps, CAP_PERMITTED, 1, keep, CAP_SET))) ||
	    cap_set_proc(caps) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		ret = -errno;
		snprintf(err, errlen, "dropping capabilities: %s", strerror(-ret));
	}
	cap_free(caps);
	return ret;
}
