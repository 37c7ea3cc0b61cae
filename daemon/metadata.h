/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * metadata - workload identity from a JSON file (DESIGN.md, "Workload
 * metadata file"): address -> workload by longest-prefix match over IPv4
 * and IPv6 CIDRs and exact IPs, and cgroup id -> cgroup path (relative to
 * the cgroup v2 root) -> workload by the path or its nearest named ancestor.
 *
 * Lookups do not allocate and never walk the cgroup tree: the id -> path
 * cache is filled at open, at each reload and by ml_metadata_rescan(),
 * which the daemon calls between records, not in the record path
 * (pipeline.h). Not thread-safe: the daemon's loop is the only user.
 */
#ifndef MESHLENS_METADATA_H
#define MESHLENS_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../accesslog/format.h"

struct ml_workload {
	const char *workload;  /* always set */
	const char *namespace; /* NULL when the file does not say */
	const char *service;
	const char *node;
	/* Istio's identity of the workload (the istio_tcp_* families): from the
	 * pod's labels (service.istio.io/canonical-name, ...-revision, app,
	 * version), the cluster's name, the SPIFFE principal of its service
	 * account; NULL when the file does not say */
	const char *canonical_service;
	const char *canonical_revision;
	const char *app;
	const char *version;
	const char *cluster;
	const char *principal;
	/* the access-log keys of the workload as the client's end and as the
	 * server's (accesslog_end_keys()), rendered at load */
	struct accesslog_keys src_keys, dst_keys;
};

struct ml_metadata;

/*
 * Load path; cgroup_root is the cgroup v2 mount the "cgroups" entries and
 * the cgroup ids are relative to (a plain directory tree in tests).
 * NULL on failure, with a one-line "<path>: <problem>" in err.
 */
struct ml_metadata *ml_metadata_open(const char *path, const char *cgroup_root, char *err,
				     size_t err_len);

/*
 * Parse the file again and swap the table in only if it parsed: on
 * failure (-EINVAL, "<path>: <problem>" in err) the previous table stays.
 */
int ml_metadata_reload(struct ml_metadata *md, char *err, size_t err_len);

/*
 * 1 after the open, one more after each successful reload: the workloads
 * (struct ml_workload *) the lookups return stay valid, and mean the same
 * names, for as long as this does not change.
 */
uint64_t ml_metadata_generation(const struct ml_metadata *md);

/* The file given to ml_metadata_open(). */
const char *ml_metadata_path(const struct ml_metadata *md);

/* What the last successful load would warn of (an address listed for two
 * workloads: the first listed is used), or "". */
const char *ml_metadata_warning(const struct ml_metadata *md);

/* Workload of a 16-byte address (IPv4 v4-mapped); NULL when none matches. */
const struct ml_workload *ml_metadata_by_addr(const struct ml_metadata *md,
					      const uint8_t addr[16]);

/* Path of cgroup id relative to the root ("" for the root itself), or NULL
 * when the cache does not know it. */
const char *ml_metadata_cgroup_path(struct ml_metadata *md, uint64_t cgroup_id);

/* Its access-log key, ,"cgroup":"<path>"; NULL when unknown or the root. */
const struct accesslog_keys *ml_metadata_cgroup_key(struct ml_metadata *md, uint64_t cgroup_id);

/*
 * Whether cgroup id (not 0) is not in the cache and a rescan may find it:
 * the last walk was a second ago or more (a cgroup made since, a new pod).
 */
bool ml_metadata_cgroup_unknown(struct ml_metadata *md, uint64_t cgroup_id);

/* Walk the cgroup tree again (the old cache stays if memory runs out). */
void ml_metadata_rescan(struct ml_metadata *md);

/* Workload named for cgroup path rel or its nearest ancestor; NULL if none. */
const struct ml_workload *ml_metadata_by_cgroup(const struct ml_metadata *md, const char *rel);

void ml_metadata_free(struct ml_metadata *md);

#endif /* MESHLENS_METADATA_H */
