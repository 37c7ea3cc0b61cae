/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * reasons - the kernel's drop reasons, named from the running kernel's BTF
 * (enum skb_drop_reason, and subsystem enums such as OVS's in module BTF),
 * each mapped to a layer and module, rtrace style (l4.tcp, l3.netfilter,
 * l2.neigh, l1.nic, ...), with --include/--exclude selection.
 *
 * Values carry the subsystem in their upper bits
 * (SKB_DROP_REASON_SUBSYS_SHIFT), exactly as kfree_skb reports them; the
 * kernel side never interprets them, user space names them here.
 */
#ifndef MESHLENS_REASONS_H
#define MESHLENS_REASONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct drop_reason {
	uint32_t value;     /* as kfree_skb reports it */
	char name[64];      /* "NETFILTER_DROP": the enumerator minus "SKB_DROP_REASON_" */
	const char *module; /* "l3.netfilter" */
	const char *layer;  /* "l3" */
	bool benign;        /* fires on ordinary traffic (e.g. QUEUE_PURGE); off by default */
	bool enabled;       /* counted, after defaults and --include/--exclude */
};

struct drop_reasons {
	struct drop_reason *v; /* sorted by value */
	size_t n;
};

/*
 * Read every drop reason the kernel knows. btf_path: a vmlinux BTF file,
 * or NULL for the running kernel (/sys/kernel/btf/vmlinux plus module BTF
 * under /sys/kernel/btf/ for subsystem enums). Excludes the non-drops
 * (NOT_DROPPED_YET, CONSUMED) and the enum's MAX marker. Every reason
 * starts enabled unless benign. Returns 0 or -errno with a message in err.
 */
int drop_reasons_load(struct drop_reasons *r, const char *btf_path, char *err, size_t errlen);

/* Enumerator value of a named reason in enum skb_drop_reason ("CONSUMED",
 * "NOT_DROPPED_YET", ...), or -1: what the BPF side skips is checked here
 * against what bpf_core_enum_value() resolved. */
int64_t drop_reasons_core_value(const struct drop_reasons *r, const char *name);

/* The reason with this value, or NULL. */
const struct drop_reason *drop_reasons_find(const struct drop_reasons *r, uint32_t value);

/*
 * Name of a value: the reason's name, or "SUBSYS_<s>_<code>"/"UNKNOWN_<v>"
 * written to buf when the kernel's BTF did not name it. Never NULL.
 */
const char *drop_reason_name(const struct drop_reasons *r, uint32_t value, char *buf,
			     size_t len);

/*
 * Apply --include/--exclude: each entry is a reason name
 * (case-insensitive, with or without the SKB_DROP_REASON_ prefix), a module
 * ("l3.netfilter") or a layer ("l3"). No includes: the defaults (all but
 * benign). Includes: only what they match (benign ones too, if named).
 * Excludes win. An unknown entry returns -EINVAL with a one-line message
 * naming it and listing the valid layers and modules (and pointing at
 * --list for reason names).
 */
int drop_reasons_select(struct drop_reasons *r, char *const *include, int n_include,
			char *const *exclude, int n_exclude, char *err, size_t errlen);

/* --list: one line per reason: name, layer, module, value, default on/off. */
void drop_reasons_list(const struct drop_reasons *r, FILE *out);

void drop_reasons_free(struct drop_reasons *r);

#endif /* MESHLENS_REASONS_H */
