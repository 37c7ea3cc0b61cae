// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "meshlens.skel.h"
#include "../cgroup/cgroup.h"

/* While probing, a refused program is an expected answer, not an error. */
static bool quiet_libbpf;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* MESHLENS_DEBUG=1 shows everything, the refused probes included */
	static int debug = -1;

	if (debug < 0)
		debug = getenv("MESHLENS_DEBUG") != NULL;
	if (!debug && (quiet_libbpf || level == LIBBPF_DEBUG))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

enum drop_hook { DROP_OFF, DROP_TP_BTF, DROP_TP_BTF_OLD, DROP_TRACEPOINT };

static const char *const drop_hook_name[] = {
	[DROP_TP_BTF] = "tp_btf/kfree_skb",
	[DROP_TP_BTF_OLD] = "tp_btf/kfree_skb",
	[DROP_TRACEPOINT] = "tracepoint/skb/kfree_skb",
};

enum rtx_hook { RTX_OFF, RTX_TP_BTF, RTX_TP_BTF_OLD, RTX_TRACEPOINT };

static const char *const rtx_hook_name[] = {
	[RTX_TP_BTF] = "tp_btf/tcp_retransmit_skb+tp_btf/tcp_retransmit_synack",
	[RTX_TP_BTF_OLD] = "tp_btf/tcp_retransmit_skb+tp_btf/tcp_retransmit_synack",
	[RTX_TRACEPOINT] = "tracepoint/tcp/tcp_retransmit_skb+tracepoint/tcp/tcp_retransmit_synack",
};

/*
 * Parameters of tracepoint name's prototype in this kernel's BTF (the
 * typedef btf_trace_<name> points to it; the first parameter is the
 * tracepoint's own context), or -1 when there is none. A tp_btf program
 * may not read arguments the tracepoint does not have, and tracepoints
 * gain some: kfree_skb its rx_sk in 6.11, tcp_retransmit_skb an err later.
 */
static int tp_btf_params(const struct btf *btf, const char *name)
{
	char typedef_name[96];
	const struct btf_type *t;
	int id;

	if (!btf)
		return -1;
	snprintf(typedef_name, sizeof(typedef_name), "btf_trace_%s", name);
	id = btf__find_by_name_kind(btf, typedef_name, BTF_KIND_TYPEDEF);
	t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	t = t ? btf__type_by_id(btf, t->type) : NULL; /* pointer */
	t = t && btf_is_ptr(t) ? btf__type_by_id(btf, t->type) : NULL;
	return t && btf_is_func_proto(t) ? btf_vlen(t) : -1;
}

/*
 * One attempt: fexit or its fallback; drops off or through the given hook;
 * the node-wide retransmission counters through the given hook, or off.
 */
static int open_and_load(struct ml_bpf *b, unsigned int ringbuf_bytes, bool fexit,
			 enum drop_hook drop, enum rtx_hook rtx)
{
	struct meshlens_bpf *skel = meshlens_bpf__open();
	int err;

	if (!skel)
		return -errno;
	bpf_map__set_max_entries(skel->maps.events, ringbuf_bytes);
	/* wake the reader only once a quarter of the ring is unread */
	skel->rodata->wakeup_bytes = ringbuf_bytes / 4;
	skel->rodata->drops_enabled = drop != DROP_OFF;
	bpf_program__set_autoload(skel->progs.ml_fexit_tcp_v4_connect, fexit);
	bpf_program__set_autoload(skel->progs.ml_fexit_tcp_v6_connect, fexit);
	bpf_program__set_autoload(skel->progs.ml_sock_release, !fexit);
	bpf_program__set_autoload(skel->progs.ml_kfree_skb, drop == DROP_TP_BTF);
	bpf_program__set_autoload(skel->progs.ml_kfree_skb_old, drop == DROP_TP_BTF_OLD);
	bpf_program__set_autoload(skel->progs.ml_kfree_skb_tp, drop == DROP_TRACEPOINT);
	bpf_program__set_autoload(skel->progs.ml_rtx_skb, rtx == RTX_TP_BTF);
	bpf_program__set_autoload(skel->progs.ml_rtx_skb_old, rtx == RTX_TP_BTF_OLD);
	bpf_program__set_autoload(skel->progs.ml_rtx_synack,
				  rtx == RTX_TP_BTF || rtx == RTX_TP_BTF_OLD);
	bpf_program__set_autoload(skel->progs.ml_rtx_skb_tp, rtx == RTX_TRACEPOINT);
	bpf_program__set_autoload(skel->progs.ml_rtx_synack_tp, rtx == RTX_TRACEPOINT);
	if (b->pin_dir[0]) {
		struct bpf_map *maps[] = { skel->maps.sk_states, skel->maps.events,
					   skel->maps.counters, skel->maps.drop_counts,
					   skel->maps.drop_flows };
		char path[512];

		for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", b->pin_dir, bpf_map__name(maps[i]));
			bpf_map__set_pin_path(maps[i], path);
		}
	}
	err = meshlens_bpf__load(skel);
	if (err) {
		meshlens_bpf__destroy(skel);
		return err;
	}
	b->skel = skel;
	b->fexit = fexit;
	b->drop_hook = drop_hook_name[drop];
	b->rtx_hook = rtx_hook_name[rtx];
	return 0;
}

int ml_bpf_load(struct ml_bpf *b, unsigned int ringbuf_bytes, bool drops, const char *pin_dir,
		char *err, size_t errlen)
{
	/* as on a kernel that refuses tp_btf: the classic tracepoints (tests) */
	bool classic = getenv("MESHLENS_CLASSIC_TRACEPOINTS") != NULL;
	struct btf *btf = classic ? NULL : btf__load_vmlinux_btf();
	int kfree_params = tp_btf_params(btf, "kfree_skb");
	int rtx_params = tp_btf_params(btf, "tcp_retransmit_skb");

	/* as on a kernel before kfree_skb's rx_sk and tcp_retransmit_skb's err:
	 * the tp_btf programs of older prototypes (tests) */
	if (btf && getenv("MESHLENS_TP_BTF_OLD")) {
		kfree_params = 4;
		rtx_params = 3;
	}
	enum drop_hook drop = !drops		 ? DROP_OFF
			      : kfree_params < 0 ? DROP_TRACEPOINT
			      : kfree_params >= 5 ? DROP_TP_BTF
						  : DROP_TP_BTF_OLD;
	enum drop_hook drop_tp = drops ? DROP_TRACEPOINT : DROP_OFF;
	enum rtx_hook rtx = rtx_params < 0  ? RTX_TRACEPOINT
			    : rtx_params >= 4 ? RTX_TP_BTF
					      : RTX_TP_BTF_OLD;
	int ret;

	btf__free(btf);

	memset(b, 0, sizeof(*b));
	if (pin_dir) {
		struct statfs sfs;
		char parent[256];

		snprintf(b->pin_dir, sizeof(b->pin_dir), "%s", pin_dir);
		snprintf(parent, sizeof(parent), "%s", pin_dir);
		*strrchr(parent, '/') = '\0';
		/* bpffs is not mounted at boot on every host */
		if (!strcmp(parent, "/sys/fs/bpf"))
			cgroup_ensure_bpffs(parent);
		if (mkdir(pin_dir, 0700) == 0)
			b->pin_dir_made = true;
		else if (errno != EEXIST) {
			snprintf(err, errlen, "--pin-path '%s': %s", pin_dir, strerror(errno));
			return -errno;
		}
		if (statfs(pin_dir, &sfs) || sfs.f_type != BPF_FS_MAGIC) {
			snprintf(err, errlen, "--pin-path '%s': not on a bpf filesystem", pin_dir);
			if (b->pin_dir_made)
				rmdir(pin_dir);
			return -EMEDIUMTYPE;
		}
	}
	libbpf_set_print(libbpf_print);
	quiet_libbpf = true;
	ret = open_and_load(b, ringbuf_bytes, true, drop, rtx);
	if (ret) {
		b->fexit_err = -ret;
		ret = open_and_load(b, ringbuf_bytes, false, drop, rtx);
	}
	if (ret) /* tp_btf refused: the classic tracepoints */
		ret = open_and_load(b, ringbuf_bytes, false, drop_tp, RTX_TRACEPOINT);
	if (ret) /* the node-wide retransmissions are optional: go without */
		ret = open_and_load(b, ringbuf_bytes, false, drop_tp, RTX_OFF);
	quiet_libbpf = false;
	if (ret) /* the last attempt once more, aloud, for the verifier's log */
		ret = open_and_load(b, ringbuf_bytes, false, drop_tp, RTX_OFF);
	if (ret && b->pin_dir[0] && !b->pin_dir_made)
		snprintf(err, errlen,
			 "loading BPF programs: %s (maps pinned under %s by another meshlens "
			 "version or ringbuf_bytes? remove them with --detach)",
			 strerror(-ret), b->pin_dir);
	else if (ret)
		snprintf(err, errlen, "loading BPF programs: %s", strerror(-ret));
	if (ret && b->pin_dir_made)
		ml_bpf_unpin_all(b->pin_dir, NULL, 0);
	return ret;
}

int ml_bpf_unpin_all(const char *pin_dir, char *err, size_t errlen)
{
	DIR *dir = opendir(pin_dir);
	struct dirent *de;
	char path[512];
	int ret = 0;

	if (!dir) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		if (err)
			snprintf(err, errlen, "--pin-path '%s': %s", pin_dir, strerror(errno));
		return ret;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		if (unlink(path) && !ret) {
			ret = -errno;
			if (err)
				snprintf(err, errlen, "removing %s: %s", path, strerror(errno));
		}
	}
	closedir(dir);
	if (!ret && rmdir(pin_dir) && err) {
		ret = -errno;
		snprintf(err, errlen, "removing %s: %s", pin_dir, strerror(errno));
	}
	return ret;
}

/* Links a previous daemon pinned for cgroups or programs not wanted now. */
static void unpin_stale_links(struct ml_bpf *b, const int *cg_fds, int n_cg,
			      const char *const *names, int n_names)
{
	char *keep[ML_MAX_LINKS] = { 0 };
	int n = 0;

	for (int i = 0; i < n_cg; i++) {
		for (int j = 0; j < n_names && n < ML_MAX_LINKS; j++) {
			keep[n] = malloc(512);
			if (keep[n] && !cgroup_link_path(keep[n], 512, b->pin_dir, cg_fds[i], names[j]))
				n++;
			else
				free(keep[n]);
		}
	}
	cgroup_unpin_stale(b->pin_dir, keep, n);
	while (n--)
		free(keep[n]);
}

int ml_bpf_attach(struct ml_bpf *b, const int *cg_fds, int n_cg, char *err, size_t errlen)
{
	struct meshlens_bpf *s = b->skel;
	struct bpf_program *cg_progs[4] = { s->progs.ml_sockops, s->progs.ml_connect4,
					    s->progs.ml_connect6, s->progs.ml_sock_release };
	struct bpf_program *fexit_progs[2] = { s->progs.ml_fexit_tcp_v4_connect,
					       s->progs.ml_fexit_tcp_v6_connect };
	/* whichever variant loaded, skb first, then synack */
	struct bpf_program *rtx_progs[2] = {
		bpf_program__autoload(s->progs.ml_rtx_skb_tp) ? s->progs.ml_rtx_skb_tp
		: bpf_program__autoload(s->progs.ml_rtx_skb_old) ? s->progs.ml_rtx_skb_old
								 : s->progs.ml_rtx_skb,
		bpf_program__autoload(s->progs.ml_rtx_synack_tp) ? s->progs.ml_rtx_synack_tp
								 : s->progs.ml_rtx_synack,
	};
	static const char *const cg_names[4] = { "sockops", "connect4", "connect6",
						 "sock_release" };
	int n_cg_progs = b->fexit ? 3 : 4;
	int i, ret;

	if (n_cg * n_cg_progs + 5 > ML_MAX_LINKS) {
		snprintf(err, errlen, "too many cgroups (%d)", n_cg);
		return -E2BIG;
	}
	for (i = 0; i < n_cg; i++) {
		ret = b->pin_dir[0] ? cgroup_attach_pinned(cg_progs, cg_names, n_cg_progs, cg_fds[i],
							   b->pin_dir, &b->links[b->n_links])
				    : cgroup_attach(cg_progs, n_cg_progs, cg_fds[i],
						    &b->links[b->n_links]);
		if (ret) {
			snprintf(err, errlen, "attaching to cgroup #%d: %s", i + 1, strerror(-ret));
			goto fail;
		}
		b->n_links += n_cg_progs;
	}
	if (b->drop_hook) {
		struct bpf_program *p = s->progs.ml_kfree_skb;

		if (!bpf_program__autoload(p))
			p = bpf_program__autoload(s->progs.ml_kfree_skb_old) ? s->progs.ml_kfree_skb_old
									     : s->progs.ml_kfree_skb_tp;
		b->links[b->n_links] = bpf_program__attach(p);
		if (!b->links[b->n_links]) {
			ret = -errno;
			snprintf(err, errlen, "attaching %s: %s", b->drop_hook, strerror(-ret));
			goto fail;
		}
		b->n_links++;
	}
	/* optional: a refused attach leaves the feature off, said by --probe
	 * and meshlens_hook_info, not the daemon down */
	for (i = 0; b->rtx_hook && i < 2; i++) {
		b->links[b->n_links] = bpf_program__attach(rtx_progs[i]);
		if (!b->links[b->n_links]) {
			b->rtx_err = errno;
			b->rtx_hook = NULL;
			while (i-- > 0) /* the ones of this feature attached so far */
				bpf_link__destroy(b->links[--b->n_links]);
			break;
		}
		b->n_links++;
	}
	for (i = 0; b->fexit && i < 2; i++) {
		b->links[b->n_links] = bpf_program__attach(fexit_progs[i]);
		if (!b->links[b->n_links]) {
			ret = -errno;
			snprintf(err, errlen, "attaching %s: %s",
				 bpf_program__section_name(fexit_progs[i]), strerror(-ret));
			goto fail;
		}
		b->n_links++;
	}
	if (b->pin_dir[0])
		unpin_stale_links(b, cg_fds, n_cg, cg_names, n_cg_progs);
	if (!b->iter_link) {
		union bpf_iter_link_info info = {
			.map.map_fd = (__u32)bpf_map__fd(s->maps.sk_states),
		};
		LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &info,
			    .link_info_len = sizeof(info));

		b->iter_link = bpf_program__attach_iter(s->progs.ml_iter_live, &opts);
		if (!b->iter_link) {
			ret = -errno;
			snprintf(err, errlen, "attaching iter/bpf_sk_storage_map: %s", strerror(-ret));
			goto fail;
		}
	}
	return 0;
fail:
	ml_bpf_detach(b);
	if (b->pin_dir_made) /* nothing of ours was there before: leave nothing */
		ml_bpf_unpin_all(b->pin_dir, NULL, 0);
	return ret;
}

int ml_bpf_iter_open(const struct ml_bpf *b)
{
	/* libbpf returns -errno itself */
	return b->iter_link ? bpf_iter_create(bpf_link__fd(b->iter_link)) : -EBADF;
}

void ml_bpf_detach(struct ml_bpf *b)
{
	while (b->n_links > 0)
		bpf_link__destroy(b->links[--b->n_links]);
	bpf_link__destroy(b->iter_link);
	b->iter_link = NULL;
}

void ml_bpf_destroy(struct ml_bpf *b)
{
	ml_bpf_detach(b);
	meshlens_bpf__destroy(b->skel);
	b->skel = NULL;
}

int ml_bpf_features(const struct ml_bpf *b, struct ml_feature *out, int max)
{
	static char refused[128], rtx_refused[128];
	const struct ml_feature all[] = {
		{ "connections", "sockops", NULL, false },
		{ "connect-attempts", "cgroup/connect4+cgroup/connect6", NULL, false },
		{ "live-counters", "iter/bpf_sk_storage_map", NULL, false },
		{ "packet-drops", b->drop_hook ? b->drop_hook : "tp_btf/kfree_skb",
		  b->drop_hook ? NULL : "off by default: --drops", !b->drop_hook },
		{ "connect-failures", b->fexit ? "fexit/tcp_v4_connect+fexit/tcp_v6_connect"
					       : "cgroup/sock_release",
		  b->fexit ? NULL : refused, false },
		{ "node-retransmits", b->rtx_hook ? b->rtx_hook : "tp_btf/tcp_retransmit_skb",
		  b->rtx_hook ? NULL : rtx_refused, !b->rtx_hook },
	};
	int n = (int)(sizeof(all) / sizeof(all[0]));

	snprintf(refused, sizeof(refused), "fexit/tcp_v4_connect refused: %s",
		 strerror(b->fexit_err));
	snprintf(rtx_refused, sizeof(rtx_refused), "refused: %s",
		 b->rtx_err ? strerror(b->rtx_err) : "no variant of the programs loads here");
	if (n > max)
		n = max;
	memcpy(out, all, (size_t)n * sizeof(*out));
	return n;
}
