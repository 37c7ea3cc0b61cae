// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * metadata - the workload metadata file, parsed into tables that answer
 * without allocating:
 *   - addresses: every IP and CIDR as a 128-bit prefix (IPv4 v4-mapped,
 *     /96 + its length), sorted by length (longest first) then value; a
 *     lookup masks the address once per length present and binary-searches
 *     that length's run. Exact IPs are /128, so they beat any CIDR.
 *   - cgroups: the named paths sorted by (length, bytes); a lookup tries
 *     the path, then each ancestor, nearest first.
 *   - cgroup ids: id -> relative path, sorted by id, built by walking the
 *     cgroup v2 tree (a cgroup's id is its directory's inode number).
 * The first entry of the file naming a prefix or a cgroup wins.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <endian.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "metadata.h"
#include "../lib/file.h"
#include "../lib/util.h"

#define MD_FILE_MAX (64u << 20) /* bigger than any sane metadata file */
#define MD_NAME_MAX 253         /* a DNS subdomain: Kubernetes' longest name */
#define MD_RESCAN_NS 1000000000LL

struct md_prefix {
	uint64_t hi, lo; /* masked */
	uint32_t wl;     /* index into workloads */
	uint8_t len;     /* 0..128 */
};

struct md_len_run {
	uint64_t mhi, mlo; /* mask of this length */
	uint32_t start, count;
};

struct md_cgname {
	char *path; /* no leading or trailing '/' */
	size_t len;
	uint32_t wl;
};

struct md_table {
	struct ml_workload *wl;
	size_t n_wl;
	struct md_prefix *pfx;
	size_t n_pfx;
	struct md_len_run runs[129];
	int n_runs;
	struct md_cgname *cg;
	size_t n_cg;
	char warn[200]; /* addresses listed for two workloads; "" when none */
};

struct md_cgid {
	uint64_t id;
	char *rel;
	struct accesslog_keys key; /* ,"cgroup":"rel" (none for the root), in rel's allocation */
};

struct ml_metadata {
	char *path;
	char *cg_root;
	struct md_table *t;
	uint64_t gen; /* 1, then one more with each reload (a new table) */
	struct md_cgid *ids;
	size_t n_ids;
	int64_t scanned_at; /* monotonic ns of the last tree walk */
	const struct md_cgid *last; /* the last id found: a record asks more than once */
	uint64_t last_miss;         /* the last id not found since the walk (0: none) */
};

/* ---- table ------------------------------------------------------------------ */

static void table_free(struct md_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_wl; i++) {
		free((char *)t->wl[i].workload);
		free((char *)t->wl[i].namespace);
		free((char *)t->wl[i].service);
		free((char *)t->wl[i].node);
		free((char *)t->wl[i].canonical_service);
		free((char *)t->wl[i].canonical_revision);
		free((char *)t->wl[i].app);
		free((char *)t->wl[i].version);
		free((char *)t->wl[i].cluster);
		free((char *)t->wl[i].principal);
		free((char *)t->wl[i].src_keys.text);
	}
	for (i = 0; i < t->n_cg; i++)
		free(t->cg[i].path);
	free(t->wl);
	free(t->pfx);
	free(t->cg);
	free(t);
}

static void len_mask(unsigned int len, uint64_t *hi, uint64_t *lo)
{
	*hi = len >= 64 ? ~0ULL : len ? ~0ULL << (64 - len) : 0;
	*lo = len <= 64 ? 0 : len >= 128 ? ~0ULL : ~0ULL << (128 - len);
}

/* The address as two big-endian halves: two loads, no byte loop (this
 * runs for each end of every record named by address). */
static void addr_split(const uint8_t a[16], uint64_t *hi, uint64_t *lo)
{
	uint64_t h, l;

	memcpy(&h, a, 8);
	memcpy(&l, a + 8, 8);
	*hi = be64toh(h);
	*lo = be64toh(l);
}

/* "10.1.2.3", "10.1.0.0/16", "fd00::7", "fd00::/8" -> prefix; false if not one */
static bool parse_prefix(const char *s, struct md_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	uint8_t a[16] = { 0 };
	unsigned long n;
	unsigned int max, base;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, a + 12) == 1) {
		a[10] = a[11] = 0xff;
		max = 32;
		base = 96;
	} else if (inet_pton(AF_INET6, buf, a) == 1) {
		max = 128;
		base = 0;
	} else {
		return false;
	}
	n = max;
	if (slash) {
		if (*slash < '0' || *slash > '9')
			return false;
		errno = 0;
		n = strtoul(slash, &end, 10);
		if (errno || *end || n > max)
			return false;
	}
	p->len = base + n;
	addr_split(a, &p->hi, &p->lo);
	uint64_t mh, ml;
	len_mask(p->len, &mh, &ml);
	p->hi &= mh;
	p->lo &= ml;
	return true;
}

static int cmp_prefix(const void *a, const void *b)
{
	const struct md_prefix *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1; /* longest first */
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->wl < y->wl ? -1 : x->wl > y->wl; /* first in the file first */
}

static int cmp_cg_key(const char *p, size_t n, const struct md_cgname *c)
{
	if (n != c->len)
		return n < c->len ? -1 : 1;
	return memcmp(p, c->path, n);
}

static int cmp_cgname(const void *a, const void *b)
{
	const struct md_cgname *x = a, *y = b;
	int r = cmp_cg_key(x->path, x->len, y);

	return r ? r : x->wl < y->wl ? -1 : x->wl > y->wl;
}

/*
 * The workload's access-log keys as either end, one allocation, once per
 * load. A name is at most MD_NAME_MAX bytes and each byte at most six in
 * JSON (\u00XX, \ufffd): they always fit.
 */
static int render_keys(struct ml_workload *w)
{
	char buf[3 * 6 * MD_NAME_MAX + 128], *text;
	int a, b;

	a = accesslog_end_keys(false, w->workload, w->namespace, NULL, buf, sizeof(buf));
	b = a < 0 ? -1 :
		    accesslog_end_keys(true, w->workload, w->namespace, w->service, buf + a,
				       sizeof(buf) - (size_t)a);
	if (b < 0)
		return -EINVAL;
	text = malloc((size_t)(a + b) + 1);
	if (!text)
		return -ENOMEM;
	memcpy(text, buf, (size_t)(a + b) + 1);
	w->src_keys = (struct accesslog_keys){ text, (size_t)a };
	w->dst_keys = (struct accesslog_keys){ text + a, (size_t)b };
	return 0;
}

/* optional string member; -1 if present but not a usable string */
static int get_name(const cJSON *o, const char *key, bool required, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = NULL;
	if (!v)
		return required ? -1 : 0;
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > MD_NAME_MAX)
		return -1;
	*out = strdup(v->valuestring);
	return *out ? 0 : -ENOMEM;
}

/* The key of o that is not one of keys[0..n), or NULL. */
static const char *unknown_key(const cJSON *o, const char *const *keys, size_t n)
{
	const cJSON *c;

	for (c = o->child; c; c = c->next) {
		size_t i;

		for (i = 0; i < n && strcmp(c->string, keys[i]); i++)
			;
		if (i == n)
			return c->string;
	}
	return NULL;
}

/* "10.0.0.5", "10.0.0.0/24", "fd00::/64": a prefix as a file would give it */
static void format_prefix(const struct md_prefix *p, char *buf, size_t len)
{
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN];
	bool v4;

	for (int i = 0; i < 8; i++) {
		a[i] = (uint8_t)(p->hi >> (56 - 8 * i));
		a[8 + i] = (uint8_t)(p->lo >> (56 - 8 * i));
	}
	v4 = p->len >= 96 && !p->hi && (p->lo >> 32) == 0xffff;
	inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, text, sizeof(text));
	if (p->len == 128)
		snprintf(buf, len, "%s", text);
	else
		snprintf(buf, len, "%s/%u", text, v4 ? p->len - 96u : p->len);
}

static struct md_table *table_load(const char *path, char *err, size_t err_len)
{
	static const char *const top_keys[] = { "workloads" };
	static const char *const wl_keys[] = { "workload",	    "namespace", "service",
					       "node",		    "canonical_service",
					       "canonical_revision", "app",	  "version",
					       "cluster",	    "principal",	  "ips",
					       "cgroups" };
	const char *bad;
	size_t dups = 0;
	struct md_table *t = NULL;
	const cJSON *wls, *e, *a, *v;
	cJSON *root = NULL;
	size_t len, n_pfx = 0, n_cg = 0, i, j, k;
	char *text, *name, why[160];
	int ret;

	text = ml_read_file(path, MD_FILE_MAX, &len, why, sizeof(why));
	if (!text) {
		ml_err(err, err_len, -EINVAL, "%s: %s", path, why);
		return NULL;
	}
	root = cJSON_ParseWithLength(text, len);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();
		size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
		size_t line = 1;

		for (i = 0; i < off; i++)
			line += text[i] == '\n';
		ml_err(err, err_len, -EINVAL, "%s: not valid JSON (line %zu, byte %zu)", path, line, off);
		goto fail;
	}
	wls = cJSON_GetObjectItemCaseSensitive(root, "workloads");
	if (!cJSON_IsObject(root) || !cJSON_IsArray(wls)) {
		ml_err(err, err_len, -EINVAL, "%s: expected an object {\"workloads\": [...]}", path);
		goto fail;
	}
	/* a misspelt key would silently leave names out: refused, as in the config */
	if ((bad = unknown_key(root, top_keys, 1))) {
		ml_err(err, err_len, -EINVAL, "%s: unknown key \"%s\"", path, bad);
		goto fail;
	}
	/* count first, so the tables are allocated once */
	cJSON_ArrayForEach(e, wls) {
		a = cJSON_GetObjectItemCaseSensitive(e, "ips");
		n_pfx += cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
		a = cJSON_GetObjectItemCaseSensitive(e, "cgroups");
		n_cg += cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
	}
	t = calloc(1, sizeof(*t));
	if (t) {
		t->wl = calloc((size_t)cJSON_GetArraySize(wls) + 1, sizeof(*t->wl));
		t->pfx = calloc(n_pfx + 1, sizeof(*t->pfx));
		t->cg = calloc(n_cg + 1, sizeof(*t->cg));
	}
	if (!t || !t->wl || !t->pfx || !t->cg) {
		ml_err(err, err_len, -ENOMEM, "%s: %s", path, strerror(ENOMEM));
		goto fail;
	}
	i = 0;
	cJSON_ArrayForEach(e, wls) {
		struct ml_workload *w = &t->wl[i];
		static const char *const keys[] = { "workload",		 "namespace", "service",
						    "node",		 "canonical_service",
						    "canonical_revision", "app",	 "version",
						    "cluster",		 "principal" };
		const char **fields[] = { &w->workload,		  &w->namespace, &w->service,
					  &w->node,		  &w->canonical_service,
					  &w->canonical_revision, &w->app,	 &w->version,
					  &w->cluster,		  &w->principal };

		t->n_wl = i + 1;
		if (!cJSON_IsObject(e)) {
			ml_err(err, err_len, -EINVAL, "%s: workloads[%zu]: not an object", path, i);
			goto fail;
		}
		if ((bad = unknown_key(e, wl_keys, sizeof(wl_keys) / sizeof(wl_keys[0])))) {
			ml_err(err, err_len, -EINVAL, "%s: workloads[%zu]: unknown key \"%s\"", path, i, bad);
			goto fail;
		}
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			ret = get_name(e, keys[k], k == 0, &name);
			*fields[k] = name;
			if (ret == -ENOMEM) {
				ml_err(err, err_len, -ENOMEM, "%s: %s", path, strerror(ENOMEM));
				goto fail;
			}
			if (ret) {
				ml_err(err, err_len, -EINVAL,
					"%s: workloads[%zu].\"%s\": %s a string of 1 to %d bytes", path, i,
					keys[k], k == 0 ? "missing or not" : "not", MD_NAME_MAX);
				goto fail;
			}
		}
		if ((ret = render_keys(w))) {
			ml_err(err, err_len, ret, "%s: %s", path, strerror(-ret));
			goto fail;
		}
		a = cJSON_GetObjectItemCaseSensitive(e, "ips");
		if (a && !cJSON_IsArray(a)) {
			ml_err(err, err_len, -EINVAL, "%s: workloads[%zu].\"ips\": not an array", path, i);
			goto fail;
		}
		j = 0;
		cJSON_ArrayForEach(v, a) {
			struct md_prefix *p = &t->pfx[t->n_pfx];

			if (!cJSON_IsString(v) || !parse_prefix(v->valuestring, p)) {
				ml_err(err, err_len, -EINVAL,
					"%s: workloads[%zu].\"ips\"[%zu]: %s%s%s is not an IP address or CIDR", path,
					i, j, cJSON_IsString(v) ? "\"" : "",
					cJSON_IsString(v) ? v->valuestring : "value",
					cJSON_IsString(v) ? "\"" : "");
				goto fail;
			}
			p->wl = i;
			t->n_pfx++;
			j++;
		}
		a = cJSON_GetObjectItemCaseSensitive(e, "cgroups");
		if (a && !cJSON_IsArray(a)) {
			ml_err(err, err_len, -EINVAL, "%s: workloads[%zu].\"cgroups\": not an array", path, i);
			goto fail;
		}
		j = 0;
		cJSON_ArrayForEach(v, a) {
			struct md_cgname *c = &t->cg[t->n_cg];
			const char *s;
			size_t n;

			if (!cJSON_IsString(v) || strlen(v->valuestring) >= PATH_MAX) {
				ml_err(err, err_len, -EINVAL,
					"%s: workloads[%zu].\"cgroups\"[%zu]: not a cgroup path string", path,
					i, j);
				goto fail;
			}
			s = v->valuestring;
			while (*s == '/')
				s++;
			n = strlen(s);
			while (n && s[n - 1] == '/')
				n--;
			c->path = strndup(s, n);
			if (!c->path) {
				ml_err(err, err_len, -ENOMEM, "%s: %s", path, strerror(ENOMEM));
				goto fail;
			}
			c->len = n;
			c->wl = i;
			t->n_cg++;
			j++;
		}
		i++;
	}
	/* sort, keep the first of equal keys, cut into per-length runs */
	if (t->n_pfx > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(t->pfx, t->n_pfx, sizeof(*t->pfx), cmp_prefix);
	for (i = 0, j = 0; i < t->n_pfx; i++) {
		const struct md_prefix *p = &t->pfx[i];

		if (j && p->len == t->pfx[j - 1].len && p->hi == t->pfx[j - 1].hi &&
		    p->lo == t->pfx[j - 1].lo) {
			if (p->wl != t->pfx[j - 1].wl && !dups++) {
				char text[INET6_ADDRSTRLEN + 4];

				format_prefix(p, text, sizeof(text));
				snprintf(t->warn, sizeof(t->warn),
					 "%s is listed for workloads[%u] and workloads[%u]: the "
					 "first is used",
					 text, t->pfx[j - 1].wl, p->wl);
			}
			continue;
		}
		t->pfx[j++] = *p;
	}
	t->n_pfx = j;
	if (dups > 1) {
		size_t n = strlen(t->warn);

		snprintf(t->warn + n, sizeof(t->warn) - n, " (%zu addresses so)", dups);
	}
	for (i = 0; i < t->n_pfx; i++) {
		struct md_len_run *r = t->n_runs ? &t->runs[t->n_runs - 1] : NULL;

		if (!r || t->pfx[r->start].len != t->pfx[i].len) {
			r = &t->runs[t->n_runs++];
			r->start = i;
			r->count = 0;
			len_mask(t->pfx[i].len, &r->mhi, &r->mlo);
		}
		r->count++;
	}
	if (t->n_cg > 1)
		qsort(t->cg, t->n_cg, sizeof(*t->cg), cmp_cgname);
	for (i = 0, j = 0; i < t->n_cg; i++) {
		if (j && !cmp_cg_key(t->cg[i].path, t->cg[i].len, &t->cg[j - 1])) {
			free(t->cg[i].path);
			continue;
		}
		t->cg[j++] = t->cg[i];
	}
	t->n_cg = j;
	cJSON_Delete(root);
	free(text);
	return t;
fail:
	table_free(t);
	cJSON_Delete(root);
	free(text);
	return NULL;
}

/* ---- cgroup ids ------------------------------------------------------------- */

static struct {
	struct md_cgid *ids;
	size_t n, cap;
	size_t root_len;
	bool nomem;
} scan;

/*
 * id and its path, with the path's access-log key rendered before it in
 * one allocation (key NUL rel NUL): a line pastes the key, unscanned.
 * Six bytes a path byte at most.
 */
static int cgid_init(struct md_cgid *c, uint64_t id, const char *rel)
{
	size_t n = strlen(rel), cap = 6 * n + 16;
	char *text = malloc(cap + n + 1), *shrunk;
	int k = 0;

	if (!text)
		return -ENOMEM;
	if (*rel)
		k = accesslog_cgroup_key(rel, text, cap);
	if (k < 0) { /* cannot happen: cap is the most it takes */
		free(text);
		return -EINVAL;
	}
	memcpy(text + k + 1, rel, n + 1);
	shrunk = realloc(text, (size_t)k + 1 + n + 1);
	if (shrunk)
		text = shrunk;
	*c = (struct md_cgid){ id, text + k + 1, { text, (size_t)k } };
	return 0;
}

static int scan_one(const char *fpath, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *rel;

	(void)ftw;
	if (flag != FTW_D)
		return 0;
	if (scan.n == scan.cap) {
		size_t cap = scan.cap ? scan.cap * 2 : 256;
		struct md_cgid *n = realloc(scan.ids, cap * sizeof(*n));

		if (!n) {
			scan.nomem = true;
			return 1;
		}
		scan.ids = n;
		scan.cap = cap;
	}
	rel = fpath + scan.root_len;
	while (*rel == '/')
		rel++;
	if (cgid_init(&scan.ids[scan.n], st->st_ino, rel)) {
		scan.nomem = true;
		return 1;
	}
	scan.n++;
	return 0;
}

static int cmp_cgid(const void *a, const void *b)
{
	const struct md_cgid *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void ids_free(struct md_cgid *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)ids[i].key.text);
	free(ids);
}

/* Walk the tree; the old cache stays if the walk runs out of memory. */
static void rescan(struct ml_metadata *md)
{
	md->scanned_at = ml_mono_ns();
	memset(&scan, 0, sizeof(scan));
	scan.root_len = strlen(md->cg_root);
	nftw(md->cg_root, scan_one, 32, FTW_PHYS | FTW_MOUNT);
	if (scan.nomem) {
		ids_free(scan.ids, scan.n);
		return;
	}
	if (scan.n > 1)
		qsort(scan.ids, scan.n, sizeof(*scan.ids), cmp_cgid);
	ids_free(md->ids, md->n_ids);
	md->ids = scan.ids;
	md->n_ids = scan.n;
	md->last = NULL;
	md->last_miss = 0;
}

static const struct md_cgid *find_id(struct ml_metadata *md, uint64_t id)
{
	const struct md_cgid key = { .id = id };
	const struct md_cgid *c;

	if (md->last && md->last->id == id)
		return md->last;
	if (id == md->last_miss)
		return NULL;
	c = md->n_ids ? bsearch(&key, md->ids, md->n_ids, sizeof(key), cmp_cgid) : NULL;
	if (c)
		md->last = c;
	else
		md->last_miss = id;
	return c;
}

const char *ml_metadata_cgroup_path(struct ml_metadata *md, uint64_t cgroup_id)
{
	const struct md_cgid *c = find_id(md, cgroup_id);

	return c ? c->rel : NULL;
}

const struct accesslog_keys *ml_metadata_cgroup_key(struct ml_metadata *md, uint64_t cgroup_id)
{
	const struct md_cgid *c = find_id(md, cgroup_id);

	return c && c->key.len ? &c->key : NULL;
}

bool ml_metadata_cgroup_unknown(struct ml_metadata *md, uint64_t cgroup_id)
{
	return cgroup_id && !find_id(md, cgroup_id) &&
	       ml_mono_ns() - md->scanned_at >= MD_RESCAN_NS;
}

void ml_metadata_rescan(struct ml_metadata *md)
{
	rescan(md);
}

/* ---- lookups ---------------------------------------------------------------- */

const struct ml_workload *ml_metadata_by_addr(const struct ml_metadata *md,
					      const uint8_t addr[16])
{
	const struct md_table *t = md->t;
	uint64_t hi, lo;

	addr_split(addr, &hi, &lo);
	for (int r = 0; r < t->n_runs; r++) {
		const struct md_len_run *run = &t->runs[r];
		uint64_t h = hi & run->mhi, l = lo & run->mlo;
		size_t a = run->start, b = run->start + run->count;

		while (a < b) {
			size_t m = a + (b - a) / 2;
			const struct md_prefix *p = &t->pfx[m];

			if (p->hi == h && p->lo == l)
				return &t->wl[p->wl];
			if (p->hi < h || (p->hi == h && p->lo < l))
				a = m + 1;
			else
				b = m;
		}
	}
	return NULL;
}

static const struct md_cgname *find_cg(const struct md_table *t, const char *p, size_t n)
{
	size_t a = 0, b = t->n_cg;

	while (a < b) {
		size_t m = a + (b - a) / 2;
		int r = cmp_cg_key(p, n, &t->cg[m]);

		if (!r)
			return &t->cg[m];
		if (r > 0)
			a = m + 1;
		else
			b = m;
	}
	return NULL;
}

const struct ml_workload *ml_metadata_by_cgroup(const struct ml_metadata *md, const char *rel)
{
	const struct md_table *t = md->t;
	const struct md_cgname *c;
	size_t n;

	if (!t->n_cg || !rel)
		return NULL;
	while (*rel == '/')
		rel++;
	n = strlen(rel);
	while (n && rel[n - 1] == '/')
		n--;
	for (;;) {
		c = find_cg(t, rel, n);
		if (c)
			return &t->wl[c->wl];
		if (!n)
			return NULL;
		while (n && rel[n - 1] != '/')
			n--;
		while (n && rel[n - 1] == '/')
			n--;
	}
}

/* ---- life cycle ------------------------------------------------------------- */

struct ml_metadata *ml_metadata_open(const char *path, const char *cgroup_root, char *err,
				     size_t err_len)
{
	struct ml_metadata *md = calloc(1, sizeof(*md));
	size_t n;

	if (!md || !(md->path = strdup(path)) || !(md->cg_root = strdup(cgroup_root))) {
		ml_err(err, err_len, -ENOMEM, "%s: %s", path, strerror(ENOMEM));
		ml_metadata_free(md);
		return NULL;
	}
	n = strlen(md->cg_root);
	while (n > 1 && md->cg_root[n - 1] == '/')
		md->cg_root[--n] = '\0';
	md->t = table_load(path, err, err_len);
	md->gen = 1;
	if (!md->t) {
		ml_metadata_free(md);
		return NULL;
	}
	rescan(md);
	return md;
}

int ml_metadata_reload(struct ml_metadata *md, char *err, size_t err_len)
{
	struct md_table *t = table_load(md->path, err, err_len);

	if (!t)
		return -EINVAL;
	table_free(md->t);
	md->t = t;
	md->gen++;
	rescan(md); /* the file may name cgroups made since */
	return 0;
}

uint64_t ml_metadata_generation(const struct ml_metadata *md)
{
	return md->gen;
}

const char *ml_metadata_path(const struct ml_metadata *md)
{
	return md->path;
}

const char *ml_metadata_warning(const struct ml_metadata *md)
{
	return md->t->warn;
}

void ml_metadata_free(struct ml_metadata *md)
{
	if (!md)
		return;
	table_free(md->t);
	ids_free(md->ids, md->n_ids);
	free(md->path);
	free(md->cg_root);
	free(md);
}
