// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <linux/capability.h>
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
#include "core.skel.h"
#include "drops.skel.h"
#include "failures.skel.h"
#include "live.skel.h"
#include "retrans.skel.h"
#include "../cgroup/cgroup.h"
#include "../metrics/expo.h"

#include "../lib/util.h"
#define ML_ERR_TMP 512

/* ---- libbpf's messages ----------------------------------------------------- */

/*
 * While loading, libbpf's messages (a refused program's verifier log among
 * them) go to a buffer: a refused optional variant is an expected answer,
 * and a refused core prints its log after one line that says what failed.
 * MESHLENS_DEBUG=1 shows everything as it happens.
 */
static struct {
	bool on;
	char buf[32768];
	size_t len;
} capture;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	static int debug = -1;
	int n;

	if (debug < 0)
		debug = getenv("MESHLENS_DEBUG") != NULL;
	if (debug)
		return vfprintf(stderr, fmt, ap);
	/* never on stderr by itself: a start-up error is one line of ours,
	 * which names the verifier's verdict where there is one */
	if (level == LIBBPF_DEBUG || !capture.on)
		return 0;
	if (capture.len + 1 >= sizeof(capture.buf))
		return 0;
	n = vsnprintf(capture.buf + capture.len, sizeof(capture.buf) - capture.len, fmt, ap);
	if (n > 0)
		capture.len += (size_t)n < sizeof(capture.buf) - capture.len
				       ? (size_t)n
				       : sizeof(capture.buf) - capture.len - 1;
	return n;
}

static void capture_start(void)
{
	capture.on = true;
	capture.len = 0;
	capture.buf[0] = '\0';
}

/*
 * The verifier's own word on a refused program: the last line of the log
 * before its statistics ("processed N insns"), e.g. "program of this type
 * cannot use helper bpf_sk_storage_get#107". Empty when the kernel refused
 * before verifying (EPERM: "processed 0 insns").
 */
static void verifier_verdict(char *out, size_t len)
{
	const char *end = strstr(capture.buf, "\nprocessed ");
	const char *begin = strstr(capture.buf, "-- BEGIN PROG LOAD LOG --\n");
	const char *p;

	out[0] = '\0';
	if (!end || !begin || end <= begin + 26)
		return;
	for (p = end; p > begin + 26 && p[-1] != '\n'; p--)
		;
	snprintf(out, len, "%.*s", (int)(end - p), p);
}

/* ---- the test-only refusal switch -------------------------------------------- */

/* MESHLENS_TEST_REFUSE names a program, or is a prefix of one of a hook's parts */
static bool test_refused(const char *prog, const char *hook)
{
	const char *list = getenv("MESHLENS_TEST_REFUSE");
	char buf[512], *tok, *save;

	if (!list || !*list)
		return false;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(tok);

		if (prog && !strcmp(tok, prog))
			return true;
		for (const char *h = hook; h && *h; h = strchr(h, '+') ? strchr(h, '+') + 1 : "")
			if (!strncmp(h, tok, n) && (h[n] == '\0' || h[n] == '+' || h[n] == '/'))
				return true;
	}
	return false;
}

/* ---- the features and their variants --------------------------------------- */

struct ml_variant {
	const char *hook;     /* what --probe and meshlens_hook_info say */
	const char *progs[3]; /* the programs it loads, NULL-terminated */
	const char *tp;       /* tp_btf: this tracepoint's BTF prototype ... */
	int min_params;       /* ... must have at least this many parameters */
	bool tracefs;         /* a classic tracepoint: tracefs must be mounted */
	bool no_sk_storage;   /* without the socket-storage lookup (tracing programs
			       * may use it from 5.11 on) */
	const char *note;     /* said by --probe when it serves (a fallback's cost) */
};

struct ml_feature_def {
	const char *name;
	const char *off_note; /* what happens when nothing serves */
	const struct ml_variant *variants;
	int n_variants;
	void *(*open)(struct bpf_object **obj);
	/* the skeleton's load, not bpf_object__load(): only it maps .bss and
	 * .data over the kernel's copy, so that writes to skel->bss reach the
	 * programs (iter_full_pass, flow_epoch, ml_drops_on) */
	int (*load)(void *skel);
	void (*destroy)(void *skel);
	/* before load (rodata); may be NULL */
	void (*prepare)(void *skel, const struct ml_bpf *b, const struct ml_variant *v);
};

#define ML_SKEL_OPS(n)                                                                 \
	static void *n##_open(struct bpf_object **obj)                                 \
	{                                                                              \
		struct n##_bpf *s = n##_bpf__open();                                   \
		*obj = s ? s->obj : NULL;                                              \
		return s;                                                              \
	}                                                                              \
	static int n##_load(void *s)                                                   \
	{                                                                              \
		return n##_bpf__load(s);                                               \
	}                                                                              \
	static void n##_destroy(void *s)                                               \
	{                                                                              \
		n##_bpf__destroy(s);                                                   \
	}
ML_SKEL_OPS(live)
ML_SKEL_OPS(failures)
ML_SKEL_OPS(drops)
ML_SKEL_OPS(retrans)

static void failures_prepare(void *skel, const struct ml_bpf *b, const struct ml_variant *v)
{
	(void)v;
	((struct failures_bpf *)skel)->rodata->wakeup_bytes = b->wakeup_bytes;
}

/*
 * The drop maps fill from tracing programs, where allocating an element
 * at run time is safe only with the BPF memory allocator (6.1, struct
 * bpf_mem_alloc); before, the verifier warns that it is not, and they
 * are preallocated instead. A map already pinned keeps its flags (a
 * mismatch would refuse the feature).
 */
static void drop_map_flags(struct bpf_map *m, const struct ml_bpf *b)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", b->pin_dir, bpf_map__name(m));
	if (b->pin_dir[0] && (fd = bpf_obj_get(path)) >= 0) {
		if (!bpf_obj_get_info_by_fd(fd, &info, &len))
			bpf_map__set_map_flags(m, info.map_flags);
		close(fd);
		return;
	}
	if (!b->mem_alloc)
		bpf_map__set_map_flags(m, bpf_map__map_flags(m) & ~BPF_F_NO_PREALLOC);
}

static void drops_prepare(void *skel, const struct ml_bpf *b, const struct ml_variant *v)
{
	struct drops_bpf *s = skel;

	s->rodata->sk_storage = !v->no_sk_storage;
	s->rodata->flows = b->drop_flows;
	drop_map_flags(s->maps.drop_counts, b);
	drop_map_flags(s->maps.drop_flows, b);
}

static const struct ml_variant live_variants[] = {
	{ .hook = "iter/bpf_sk_storage_map", .progs = { "ml_iter_live" } },
	{ .hook = "iter/task_file", .progs = { "ml_iter_task_file_st" },
	  .note = "every task's open files each refresh, all network namespaces; socket storage read through the socket" },
	{ .hook = "iter/task_file", .progs = { "ml_iter_task_file" },
	  .note = "every task's open files each refresh, all network namespaces; raw counters less the open records' bases" },
};

static const struct ml_variant failure_variants[] = {
	{ .hook = "fexit/tcp_v4_connect+fexit/tcp_v6_connect",
	  .progs = { "ml_fexit_tcp_v4_connect", "ml_fexit_tcp_v6_connect" } },
	{ .hook = "cgroup/sock_release", .progs = { "ml_sock_release" },
	  .note = "at close(), reported as unreachable without the errno" },
};

static const struct ml_variant drop_variants[] = {
	{ .hook = "tp_btf/kfree_skb", .progs = { "ml_kfree_skb" }, .tp = "kfree_skb",
	  .min_params = 5 },
	{ .hook = "tp_btf/kfree_skb", .progs = { "ml_kfree_skb_old" }, .tp = "kfree_skb",
	  .min_params = 4, .note = "no rx_sk: an arriving packet's socket only through skb->sk" },
	{ .hook = "tp_btf/kfree_skb", .progs = { "ml_kfree_skb_noreason" }, .tp = "kfree_skb",
	  .min_params = 3, .note = "this kernel gives no drop reason: every drop is NOT_SPECIFIED" },
	{ .hook = "tp_btf/kfree_skb", .progs = { "ml_kfree_skb_noreason" }, .tp = "kfree_skb",
	  .min_params = 3, .no_sk_storage = true,
	  .note = "this kernel gives no drop reason: every drop is NOT_SPECIFIED; no "
		  "per-connection drop counts (no socket storage from tracing programs)" },
	{ .hook = "tracepoint/skb/kfree_skb", .progs = { "ml_kfree_skb_tp" }, .tracefs = true,
	  .note = "no per-connection drop counts" },
};

static const struct ml_variant rtx_variants[] = {
	{ .hook = "tp_btf/tcp_retransmit_skb+tp_btf/tcp_retransmit_synack",
	  .progs = { "ml_rtx_skb", "ml_rtx_synack" }, .tp = "tcp_retransmit_skb", .min_params = 4 },
	{ .hook = "tp_btf/tcp_retransmit_skb+tp_btf/tcp_retransmit_synack",
	  .progs = { "ml_rtx_skb_old", "ml_rtx_synack" }, .tp = "tcp_retransmit_skb",
	  .min_params = 3 },
	{ .hook = "tracepoint/tcp/tcp_retransmit_skb+tracepoint/tcp/tcp_retransmit_synack",
	  .progs = { "ml_rtx_skb_tp", "ml_rtx_synack_tp" }, .tracefs = true },
};

static const struct ml_feature_def features[ML_FEATURES] = {
#define ML_FEATURE(id_, name_, off_, v_, ops_, prep_)                                  \
	[id_] = { .name = name_, .off_note = off_, .variants = v_, .n_variants = ARRAY_SIZE(v_), \
		  .open = ops_##_open, .load = ops_##_load, .destroy = ops_##_destroy,       \
		  .prepare = prep_ }
	ML_FEATURE(ML_FEAT_LIVE, "live-counters", "bytes of open connections counted when they close",
		   live_variants, live, NULL),
	ML_FEATURE(ML_FEAT_FAILURES, "connect-failures",
		   "a connect() failing before any SYN is not logged", failure_variants, failures,
		   failures_prepare),
	ML_FEATURE(ML_FEAT_DROPS, "packet-drops", "no drop tracing", drop_variants, drops,
		   drops_prepare),
	ML_FEATURE(ML_FEAT_RETRANS, "node-retransmits", "no node-wide retransmission counts",
		   rtx_variants, retrans, NULL),
};

/* the core's maps every feature object shares */
static const char *const shared_maps[] = { "sk_states", "events", "counters" };
/* feature maps that hold state across restarts: pinned too */
static const char *const pinned_feature_maps[] = { "drop_counts", "drop_flows" };

/*
 * Parameters of tracepoint name's prototype in this kernel's BTF (the
 * typedef btf_trace_<name> points to it; the first parameter is the
 * tracepoint's own context), or -1 when there is none. A tp_btf program
 * may not read arguments the tracepoint does not have, and tracepoints
 * gain some: kfree_skb its reason in 5.17 and rx_sk in 6.11,
 * tcp_retransmit_skb an err later.
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

/* Whether struct name of this kernel's BTF has a member called member. */
static bool btf_has_member(const struct btf *btf, const char *name, const char *member)
{
	int id = btf ? btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT) : -1;
	const struct btf_type *t = id > 0 ? btf__type_by_id(btf, id) : NULL;
	const struct btf_member *m = t ? btf_members(t) : NULL;

	for (int i = 0; t && i < btf_vlen(t); i++, m++)
		if (!strcmp(btf__name_by_offset(btf, m->name_off), member))
			return true;
	return false;
}

/* a prototype this kernel lacks is not a refusal: the next variant fits */
static bool variant_fits(const struct ml_variant *v, const struct btf *btf)
{
	return !v->tp || tp_btf_params(btf, v->tp) >= v->min_params;
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n && list[i]; i++)
		if (!strcmp(name, list[i]))
			return true;
	return false;
}

static void add_reason(struct ml_feature *f, const char *fmt, ...)
{
	size_t len = strlen(f->reason);
	va_list ap;

	if (len && len + 2 < sizeof(f->reason)) {
		memcpy(f->reason + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(f->reason + len, sizeof(f->reason) - len, fmt, ap);
	va_end(ap);
}

static int attach_tracing(struct ml_bpf *b, struct bpf_object *obj)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, obj) {
		struct bpf_link *link;

		if (!bpf_program__autoload(p) ||
		    bpf_program__type(p) == BPF_PROG_TYPE_CGROUP_SOCK) /* ml_bpf_attach() */
			continue;
		if (b->n_links >= ML_MAX_LINKS)
			return -E2BIG;
		if (!strcmp(bpf_program__section_name(p), "iter/bpf_sk_storage_map")) {
			union bpf_iter_link_info info = {
				.map.map_fd = (__u32)bpf_map__fd(b->core->maps.sk_states),
			};
			LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &info,
				    .link_info_len = sizeof(info));

			link = bpf_program__attach_iter(p, &opts);
		} else if (bpf_program__expected_attach_type(p) == BPF_TRACE_ITER) {
			link = bpf_program__attach_iter(p, NULL);
		} else {
			link = bpf_program__attach(p);
		}
		if (!link)
			return -errno;
		if (bpf_program__expected_attach_type(p) == BPF_TRACE_ITER)
			b->iter_link = link;
		b->links[b->n_links++] = link;
	}
	return 0;
}

/* One variant: open its object, share the core's maps, load, attach. */
static int try_variant(struct ml_bpf *b, const struct ml_feature_def *def,
		       const struct ml_variant *v, void **skel_out, struct bpf_object **obj_out)
{
	int first_link = b->n_links;
	struct bpf_object *obj;
	struct bpf_program *p;
	struct bpf_map *m;
	void *skel;
	int err;

	for (int i = 0; v->progs[i]; i++)
		if (test_refused(v->progs[i], v->hook))
			return -EPERM;
	if (v->tracefs) {
		err = cgroup_ensure_tracefs();
		if (err)
			return err;
	}
	skel = def->open(&obj);
	if (!skel)
		return -errno;
	bpf_object__for_each_program(p, obj)
		bpf_program__set_autoload(p, in_list(bpf_program__name(p), v->progs,
						     ARRAY_SIZE(v->progs)));
	err = 0;
	bpf_object__for_each_map(m, obj) {
		const char *name = bpf_map__name(m);
		struct bpf_map *core_map = bpf_object__find_map_by_name(b->core->obj, name);
		char path[512];

		if (core_map && in_list(name, shared_maps, ARRAY_SIZE(shared_maps)))
			err = bpf_map__reuse_fd(m, bpf_map__fd(core_map));
		else if (b->pin_dir[0] &&
			 in_list(name, pinned_feature_maps, ARRAY_SIZE(pinned_feature_maps))) {
			snprintf(path, sizeof(path), "%s/%s", b->pin_dir, name);
			err = bpf_map__set_pin_path(m, path);
		}
		if (err)
			break;
	}
	if (!err && def->prepare)
		def->prepare(skel, b, v);
	if (!err)
		err = def->load(skel);
	if (!err)
		err = attach_tracing(b, obj);
	if (err) {
		while (b->n_links > first_link) {
			if (b->links[--b->n_links] == b->iter_link)
				b->iter_link = NULL;
			bpf_link__destroy(b->links[b->n_links]);
		}
		def->destroy(skel);
		return err < 0 ? err : -err;
	}
	*skel_out = skel;
	*obj_out = obj;
	return 0;
}

/* The first variant of feature f this kernel accepts, or none. */
static void load_feature(struct ml_bpf *b, enum ml_feature_id f, const struct btf *btf)
{
	const struct ml_feature_def *def = &features[f];
	struct ml_feature *t = &b->table[f];
	bool refused = false;

	for (int i = 0; i < def->n_variants; i++) {
		const struct ml_variant *v = &def->variants[i];
		char verdict[160];
		int err;

		if (!variant_fits(v, btf))
			continue;
		capture_start();
		err = try_variant(b, def, v, &b->skel[f], &b->obj[f]);
		capture.on = false;
		if (!err) {
			t->state = refused ? ML_FS_FALLBACK : ML_FS_ON;
			t->hook = v->hook;
			b->variant[f] = i;
			if (v->note)
				add_reason(t, "%s", v->note);
			return;
		}
		verifier_verdict(verdict, sizeof(verdict));
		add_reason(t, "%s: %s%s%s%s", v->hook, strerror(-err),
			   test_refused(v->progs[0], v->hook) ? " (MESHLENS_TEST_REFUSE)" : "",
			   verdict[0] ? ": " : "", verdict);
		refused = true;
	}
	t->state = ML_FS_OFF;
	add_reason(t, "%s", def->off_note);
}

/* ---- the core ----------------------------------------------------------------- */

static int load_core(struct ml_bpf *b, unsigned int ringbuf_bytes, char *err, size_t errlen)
{
	static const char *const core_progs[] = { "ml_sockops", "ml_connect4", "ml_connect6" };
	struct core_bpf *s = core_bpf__open();
	int ret;

	if (!s) {
		ret = -errno;
		snprintf(err, errlen, "opening the core BPF object: %s", strerror(-ret));
		return ret;
	}
	bpf_map__set_max_entries(s->maps.events, ringbuf_bytes);
	s->rodata->wakeup_bytes = b->wakeup_bytes;
	if (b->pin_dir[0]) {
		struct bpf_map *maps[] = { s->maps.sk_states, s->maps.events, s->maps.counters };
		char path[512];

		for (size_t i = 0; i < ARRAY_SIZE(maps); i++) {
			snprintf(path, sizeof(path), "%s/%s", b->pin_dir, bpf_map__name(maps[i]));
			bpf_map__set_pin_path(maps[i], path);
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(core_progs); i++)
		if (test_refused(core_progs[i], NULL)) {
			snprintf(err, errlen, "loading the core BPF program %s: %s (MESHLENS_TEST_REFUSE)",
				 core_progs[i], strerror(EPERM));
			core_bpf__destroy(s);
			return -EPERM;
		}
	capture_start();
	ret = core_bpf__load(s);
	capture.on = false;
	if (ret) {
		const char *prog = strstr(capture.buf, "prog '");
		int n = prog ? (int)strcspn(prog + 6, "'") : 0;
		char verdict[160];

		verifier_verdict(verdict, sizeof(verdict));
		if (strstr(capture.buf, "reusing pinned map"))
			snprintf(err, errlen,
				 "loading the core BPF programs: %s (maps pinned under %s by another "
				 "meshlens version or ringbuf_bytes? remove them with --detach)",
				 strerror(-ret), b->pin_dir);
		else
			snprintf(err, errlen, "loading the core BPF program %.*s: %s%s%s%s", n,
				 prog ? prog + 6 : "", strerror(-ret), verdict[0] ? ": " : "",
				 verdict, getenv("MESHLENS_DEBUG") ? "" : " (MESHLENS_DEBUG=1 shows libbpf's log)");
		core_bpf__destroy(s);
		return ret;
	}
	b->core = s;
	return 0;
}

static int check_pin_dir(const char *pin_dir, char *err, size_t errlen);
static int unpin_dir(const char *pin_dir, char *err, size_t errlen);

/* --pin-path: an absolute directory on bpffs, made if missing */
static int prepare_pin_dir(struct ml_bpf *b, const char *pin_dir, char *err, size_t errlen)
{
	char parent[256];
	char *slash;
	int ret;

	if (pin_dir[0] != '/' || strlen(pin_dir) >= sizeof(b->pin_dir) - 1) {
		snprintf(err, errlen, "--pin-path '%s': must be an absolute path (at most %zu bytes)",
			 pin_dir, sizeof(b->pin_dir) - 1);
		return -EINVAL;
	}
	snprintf(b->pin_dir, sizeof(b->pin_dir), "%s", pin_dir);
	snprintf(parent, sizeof(parent), "%s", pin_dir);
	slash = strrchr(parent, '/');
	*slash = '\0';
	/* bpffs is not mounted at boot on every host */
	if (!strcmp(parent, "/sys/fs/bpf"))
		cgroup_ensure_bpffs(parent);
	if (mkdir(pin_dir, 0700) == 0)
		b->pin_dir_made = true;
	else if (errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "--pin-path '%s': %s", pin_dir, strerror(-ret));
		return ret;
	}
	ret = check_pin_dir(pin_dir, err, errlen);
	if (!ret) {
		b->pin_lock_fd = ml_bpf_lock_pin_dir(pin_dir, err, errlen);
		ret = b->pin_lock_fd < 0 ? b->pin_lock_fd : 0;
	}
	if (ret && b->pin_dir_made)
		rmdir(pin_dir);
	if (ret)
		b->pin_dir_made = false;
	return ret;
}

/* The pid holding an flock on the file st names, from /proc/locks; 0 if none. */
static long flock_holder(const struct stat *st)
{
	unsigned int maj, min;
	unsigned long ino;
	char line[256];
	long pid = 0;
	FILE *f = fopen("/proc/locks", "re");

	if (!f)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 4242 00:29:11339814 0 EOF"; waiters have "->" */
	while (!pid && fgets(line, sizeof(line), f)) {
		long p;

		if (sscanf(line, "%*d: FLOCK %*s %*s %ld %x:%x:%lu", &p, &maj, &min, &ino) == 4 &&
		    maj == major(st->st_dev) && min == minor(st->st_dev) && ino == st->st_ino)
			pid = p;
	}
	fclose(f);
	return pid;
}

/* bpffs holds no regular files: the lock is an flock on the directory itself,
 * dropped by the kernel however the daemon ends */
int ml_bpf_lock_pin_dir(const char *pin_dir, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "--pin-path '%s': %s", pin_dir, strerror(errno));
		return ret;
	}
	if (!flock(fd, LOCK_EX | LOCK_NB))
		return fd;
	ret = -errno;
	if (ret == -EWOULDBLOCK) {
		long pid = fstat(fd, &st) ? 0 : flock_holder(&st);

		ret = -EBUSY;
		if (pid)
			snprintf(err, errlen, "--pin-path '%s': in use by another meshlens (pid %ld)",
				 pin_dir, pid);
		else
			snprintf(err, errlen, "--pin-path '%s': in use by another meshlens", pin_dir);
	} else {
		snprintf(err, errlen, "--pin-path '%s': locking: %s", pin_dir, strerror(-ret));
	}
	close(fd);
	return ret;
}

int ml_bpf_load(struct ml_bpf *b, const struct ml_load_opts *o, char *err, size_t errlen)
{
	struct btf *btf;
	int ret;

	memset(b, 0, sizeof(*b));
	b->pin_lock_fd = -1;
	for (int f = 0; f < ML_FEATURES; f++) {
		b->variant[f] = -1;
		b->table[f].name = features[f].name;
		b->table[f].state = ML_FS_OFF;
	}
	/* wake the reader only once a quarter of the ring is unread */
	b->wakeup_bytes = o->ringbuf_bytes / 4;
	if (o->pin_dir) {
		ret = prepare_pin_dir(b, o->pin_dir, err, errlen);
		if (ret)
			return ret;
	}
	libbpf_set_print(libbpf_print);
	ret = load_core(b, o->ringbuf_bytes, err, errlen);
	if (ret) {
		if (b->pin_dir_made)
			unpin_dir(b->pin_dir, NULL, 0);
		return ret;
	}
	btf = btf__load_vmlinux_btf();
	b->mem_alloc = btf && btf__find_by_name_kind(btf, "bpf_mem_alloc", BTF_KIND_STRUCT) >= 0;
	/* what bpf_core_field_exists() answers the programs (bpf/conn.h) */
	b->rto_counted = btf_has_member(btf, "tcp_sock", "total_rto");
	b->drop_flows = o->drop_flows;
	for (int f = 0; f < ML_FEATURES; f++) {
		if (f == ML_FEAT_DROPS && !o->drops) {
			snprintf(b->table[f].reason, sizeof(b->table[f].reason),
				 "off by default: --drops");
			continue;
		}
		load_feature(b, f, btf);
	}
	btf__free(btf);
	b->n_feature_links = b->n_links;
	/* live passes that read the storage see every open connection: the
	 * core writes no open record (bpf/live.bpf.c) */
	b->core->bss->ml_no_open_records = b->skel[ML_FEAT_LIVE] && b->variant[ML_FEAT_LIVE] < 2;
	if (ml_bpf_drops_per_conn(b)) { /* records carry the socket's drops */
		b->core->bss->ml_drops_on = 1;
		if (b->skel[ML_FEAT_LIVE])
			((struct live_bpf *)b->skel[ML_FEAT_LIVE])->bss->ml_drops_on = 1;
	}
	return 0;
}

int ml_bpf_flow_epoch(const struct ml_bpf *b)
{
	const struct drops_bpf *d = b->skel[ML_FEAT_DROPS];

	return d ? d->bss->flow_epoch : 0;
}

void ml_bpf_flip_flow_epoch(struct ml_bpf *b)
{
	struct drops_bpf *d = b->skel[ML_FEAT_DROPS];

	if (d)
		__atomic_store_n(&d->bss->flow_epoch, d->bss->flow_epoch ^ 1, __ATOMIC_RELEASE);
}

bool ml_bpf_drops_per_conn(const struct ml_bpf *b)
{
	const struct ml_variant *v;

	if (b->variant[ML_FEAT_DROPS] < 0)
		return false;
	v = &drop_variants[b->variant[ML_FEAT_DROPS]];
	/* the classic tracepoint's socket is a plain number to the helpers */
	return !v->tracefs && !v->no_sk_storage;
}

/* ---- attach ---------------------------------------------------------------------- */

/* What meshlens pins: its maps, and links named link-<cgroup id>-<program>. */
static bool ours(const char *name)
{
	static const char *const maps[] = { "sk_states", "events", "counters", "drop_counts",
					    "drop_flows" };

	return in_list(name, maps, ARRAY_SIZE(maps)) || !strncmp(name, "link-", 5);
}

/* A directory of bpffs, not its root (shared with every other tool). */
static int check_pin_dir(const char *pin_dir, char *err, size_t errlen)
{
	struct stat st, up;
	struct statfs sfs;
	char parent[512];

	if (pin_dir[0] != '/') {
		snprintf(err, errlen, "--pin-path '%s': must be an absolute path", pin_dir);
		return -EINVAL;
	}
	if (statfs(pin_dir, &sfs) || sfs.f_type != BPF_FS_MAGIC) {
		snprintf(err, errlen, "--pin-path '%s': not on a bpf filesystem", pin_dir);
		return -EMEDIUMTYPE;
	}
	snprintf(parent, sizeof(parent), "%s/..", pin_dir);
	if (!stat(pin_dir, &st) && !stat(parent, &up) && st.st_dev != up.st_dev) {
		snprintf(err, errlen,
			 "--pin-path '%s': the root of a bpf filesystem, shared with other tools; "
			 "give meshlens a directory of its own",
			 pin_dir);
		return -EINVAL;
	}
	return 0;
}

/* ml_bpf_unpin_all() of a checked directory whose lock the caller holds;
 * err may be NULL */
static int unpin_dir(const char *pin_dir, char *err, size_t errlen)
{
	char path[512], dummy[ML_ERR_TMP];
	struct dirent *de;
	int ret = 0;
	DIR *dir;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	dir = opendir(pin_dir);
	if (!dir) {
		ret = -errno;
		snprintf(err, errlen, "--pin-path '%s': %s", pin_dir, strerror(errno));
		return ret;
	}
	/* only what meshlens pinned: anything else there is someone else's */
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || !ours(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		if (unlink(path) && !ret) {
			ret = -errno;
			snprintf(err, errlen, "removing %s: %s", path, strerror(errno));
		}
	}
	closedir(dir);
	if (!ret && rmdir(pin_dir) && errno != ENOTEMPTY && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "removing %s: %s", pin_dir, strerror(errno));
	}
	return ret;
}

int ml_bpf_unpin_all(const char *pin_dir, char *err, size_t errlen)
{
	int ret, lock;

	if (pin_dir[0] == '/' && access(pin_dir, F_OK) && errno == ENOENT)
		return 0; /* nothing pinned */
	ret = check_pin_dir(pin_dir, err, errlen);
	if (ret)
		return ret;
	/* not from under a running daemon */
	lock = ml_bpf_lock_pin_dir(pin_dir, err, errlen);
	if (lock < 0)
		return lock;
	ret = unpin_dir(pin_dir, err, errlen);
	close(lock);
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
	struct core_bpf *s = b->core;
	struct failures_bpf *fs = b->skel[ML_FEAT_FAILURES];
	bool release = fs && bpf_program__autoload(fs->progs.ml_sock_release);
	struct bpf_program *cg_progs[4] = { s->progs.ml_sockops, s->progs.ml_connect4,
					    s->progs.ml_connect6,
					    release ? fs->progs.ml_sock_release : NULL };
	static const char *const cg_names[4] = { "sockops", "connect4", "connect6",
						 "sock_release" };
	int n_cg_progs = release ? 4 : 3;
	int i, ret;

	if (b->n_links + n_cg * n_cg_progs > ML_MAX_LINKS) {
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
	if (b->pin_dir[0])
		unpin_stale_links(b, cg_fds, n_cg, cg_names, n_cg_progs);
	return 0;
fail:
	ml_bpf_detach(b);
	if (b->pin_dir_made) /* nothing of ours was there before: leave nothing */
		unpin_dir(b->pin_dir, NULL, 0);
	return ret;
}

/* ---- reading ----------------------------------------------------------------------- */

int ml_bpf_iter_open(const struct ml_bpf *b, bool full)
{
	struct live_bpf *s = b->skel[ML_FEAT_LIVE];

	if (!s)
		return -ENOTSUP;
	s->bss->iter_full_pass = full;
	/* libbpf returns -errno itself */
	return b->iter_link ? bpf_iter_create(bpf_link__fd(b->iter_link)) : -ENOTSUP;
}

int ml_bpf_map_fd(const struct ml_bpf *b, enum ml_map m)
{
	const struct drops_bpf *d = b->skel[ML_FEAT_DROPS];
	const struct retrans_bpf *r = b->skel[ML_FEAT_RETRANS];

	switch (m) {
	case ML_MAP_EVENTS:
		return bpf_map__fd(b->core->maps.events);
	case ML_MAP_COUNTERS:
		return bpf_map__fd(b->core->maps.counters);
	case ML_MAP_DROP_FILTER:
		return d ? bpf_map__fd(d->maps.drop_filter) : -1;
	case ML_MAP_DROP_COUNTS:
		return d ? bpf_map__fd(d->maps.drop_counts) : -1;
	case ML_MAP_DROP_FLOWS:
		return d ? bpf_map__fd(d->maps.drop_flows) : -1;
	case ML_MAP_RETRANS:
		return r ? bpf_map__fd(r->maps.retrans_counts) : -1;
	}
	return -1;
}

unsigned int ml_bpf_ringbuf_bytes(const struct ml_bpf *b)
{
	return bpf_map__max_entries(b->core->maps.events);
}

uint64_t ml_bpf_counter(const struct ml_bpf *b, uint32_t idx)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 vals[ncpus > 0 ? ncpus : 1];
	uint64_t sum = 0;

	if (ncpus <= 0 || bpf_map_lookup_elem(bpf_map__fd(b->core->maps.counters), &idx, vals))
		return 0;
	for (int i = 0; i < ncpus; i++)
		sum += vals[i];
	return sum;
}

/*
 * Whether what the loop does after attach -- map reads, an iterator pass
 * -- still works without CAP_BPF. From 6.5 only loading checks it; before,
 * with unprivileged BPF disabled (Debian's default), every bpf() command
 * does. Tried for real in a child that drops every capability (raw capset:
 * nothing that allocates after fork() in a threaded process).
 */
bool ml_bpf_needs_cap_bpf(const struct ml_bpf *b)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { 0 };
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return true;
	if (pid == 0) {
		__u64 vals[512];
		__u32 key = 0;
		int fd, ok;

		ok = !syscall(SYS_capset, &hdr, none) &&
		     (libbpf_num_possible_cpus() > 512 ||
		      !bpf_map_lookup_elem(bpf_map__fd(b->core->maps.counters), &key, vals));
		if (ok && b->iter_link) {
			fd = bpf_iter_create(bpf_link__fd(b->iter_link));
			ok = fd >= 0 && read(fd, vals, sizeof(vals)) >= 0;
			if (fd >= 0)
				close(fd);
		}
		_exit(ok ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return true;
	return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

static uint64_t obj_recursion_misses(struct bpf_object *obj)
{
	struct bpf_program *p;
	uint64_t n = 0;

	bpf_object__for_each_program(p, obj) {
		struct bpf_prog_info info = { 0 };
		__u32 len = sizeof(info);

		/* (a kernel before 5.12 has no such field: it stays 0) */
		if (bpf_program__fd(p) >= 0 &&
		    !bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			n += info.recursion_misses;
	}
	return n;
}

uint64_t ml_bpf_recursion_misses(const struct ml_bpf *b)
{
	uint64_t n = b->core ? obj_recursion_misses(b->core->obj) : 0;

	for (int f = 0; f < ML_FEATURES; f++)
		if (b->skel[f])
			n += obj_recursion_misses(b->obj[f]);
	return n;
}

/* ---- tear-down ---------------------------------------------------------------------- */

void ml_bpf_detach(struct ml_bpf *b)
{
	while (b->n_links > 0)
		bpf_link__destroy(b->links[--b->n_links]);
	b->n_feature_links = 0;
	b->iter_link = NULL;
}

void ml_bpf_destroy(struct ml_bpf *b)
{
	ml_bpf_detach(b);
	for (int f = 0; f < ML_FEATURES; f++)
		if (b->skel[f])
			features[f].destroy(b->skel[f]);
	memset(b->skel, 0, sizeof(b->skel));
	memset(b->obj, 0, sizeof(b->obj));
	core_bpf__destroy(b->core);
	b->core = NULL;
	if (b->pin_dir[0] && b->pin_lock_fd >= 0)
		close(b->pin_lock_fd);
	b->pin_dir[0] = '\0';
}

/* ---- the table ------------------------------------------------------------------------ */

const char *ml_feature_state_name(enum ml_feature_state s)
{
	return s == ML_FS_ON ? "on" : s == ML_FS_FALLBACK ? "fallback" : "off";
}

int ml_bpf_features(const struct ml_bpf *b, struct ml_feature *out, int max)
{
	const struct ml_feature core[] = {
		{ .name = "connections", .state = ML_FS_ON, .hook = "sockops" },
		{ .name = "connect-attempts", .state = ML_FS_ON,
		  .hook = "cgroup/connect4+cgroup/connect6" },
	};
	int n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(core) && n < max; i++)
		out[n++] = core[i];
	for (int f = 0; f < ML_FEATURES && n < max; f++)
		out[n++] = b->table[f];
	return n;
}

bool ml_bpf_live_by_task(const struct ml_bpf *b)
{
	return b->variant[ML_FEAT_LIVE] > 0;
}

bool ml_bpf_live_full_records(const struct ml_bpf *b)
{
	return b->skel[ML_FEAT_LIVE] && b->variant[ML_FEAT_LIVE] < 2;
}

void ml_bpf_print_probe(const struct ml_bpf *b, FILE *out)
{
	struct ml_feature f[ML_FEATURES + 2];
	int n = ml_bpf_features(b, f, (int)ARRAY_SIZE(f));

	for (int i = 0; i < n; i++) {
		fprintf(out, "%-18s %-9s %s", f[i].name, ml_feature_state_name(f[i].state),
			f[i].hook ? f[i].hook : "-");
		if (f[i].reason[0])
			fprintf(out, "  (%s)", f[i].reason);
		fputc('\n', out);
	}
}

void ml_bpf_summary(const struct ml_bpf *b, char *out, size_t len)
{
	struct ml_feature f[ML_FEATURES + 2];
	int n = ml_bpf_features(b, f, (int)ARRAY_SIZE(f));
	size_t used = 0;

	out[0] = '\0';
	for (int i = 2; i < n && used < len; i++) /* the core's two always serve */
		used += (size_t)snprintf(out + used, len - used, "%s%s=%s", used ? " " : "",
					 f[i].name, f[i].hook ? f[i].hook : "off");
}

void ml_bpf_render_info(const struct ml_bpf *b, struct expo *e)
{
	struct ml_feature f[ML_FEATURES + 2];
	int i, n = ml_bpf_features(b, f, (int)ARRAY_SIZE(f));

	expo_family(e, "meshlens_hook_info", "gauge",
		    "The kernel hook serving each feature on this kernel, always 1.");
	for (i = 0; i < n; i++)
		if (f[i].state != ML_FS_OFF)
			expo_sample_u64(e, "meshlens_hook_info",
					(const char *const[]){ "feature", f[i].name, "hook",
							       f[i].hook, NULL },
					1);
	expo_family(e, "meshlens_feature_info", "gauge",
		    "Every feature, always 1: state on (preferred hook), fallback (a later "
		    "variant: --probe says why) or off, and the hook serving it (none when off).");
	for (i = 0; i < n; i++)
		expo_sample_u64(e, "meshlens_feature_info",
				(const char *const[]){ "feature", f[i].name, "state",
						       ml_feature_state_name(f[i].state), "hook",
						       f[i].hook ? f[i].hook : "none", NULL },
				1);
}
