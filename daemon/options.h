/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * options - meshlens command line and JSON config (cJSON).
 *
 * Precedence: built-in defaults < config file (-c) < command-line options.
 * Errors are returned as one line of text naming the option or the config
 * key (and file) at fault, with -EINVAL (lib/util.h); main prints it and exits 2.
 */
#ifndef MESHLENS_OPTIONS_H
#define MESHLENS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define ML_MAX_CGROUPS 64
#define ML_MAX_POINTS 64
#define ML_ERR_LEN 512

struct ml_options {
	/* from -c/--config; NULL when none */
	char *config_path;
	/* -g/--cgroup (repeatable); config key "cgroups" */
	char *cgroups[ML_MAX_CGROUPS];
	int n_cgroups;
	/* -o/--access-log: "-" (default), a path, or "off"; key "access_log" */
	char *access_log;
	/* -m/--metrics-addr: "127.0.0.1:2112" (default) or "off"; key "metrics_addr" */
	char *metrics_addr;
	/* --drops; key "drops" */
	bool drops;
	/* -i/--include, -e/--exclude (repeatable); keys "include", "exclude" */
	char *include[ML_MAX_POINTS];
	int n_include;
	char *exclude[ML_MAX_POINTS];
	int n_exclude;
	/* --user; key "user"; NULL = stay root */
	char *user;
	/* --pin-path; key "pin_path"; default "/sys/fs/bpf/meshlens" */
	char *pin_path;
	/* --metadata; key "metadata"; NULL = none */
	char *metadata;
	/* config-only tunables */
	unsigned int ringbuf_bytes;     /* key "ringbuf_bytes": power of two, 64 KiB..1 GiB; default 8 MiB */
	unsigned int drain_interval_ms; /* key "drain_interval_ms": 1..1000; default 50 */
	unsigned int refresh_interval_ms; /* key "refresh_interval_ms": live-socket counters, 100..600000; default 5000 */
	unsigned int max_series;        /* key "max_series": series cap per set, 1..10000000; default 10000 */
	bool ip_pair_metrics;           /* key "ip_pair_metrics": meshlens_tcp_* by IP pair; default true */
	bool workload_metrics;          /* key "workload_metrics": meshlens_workload_tcp_* (with a
					 * metadata file); default true */
	bool istio_metrics;             /* key "istio_metrics": istio_tcp_* (Istio's standard TCP
					 * metrics, with a metadata file); default true */
	unsigned int series_idle_seconds; /* key "series_idle_seconds": drop idle series, 0 = never; default 3600 */
	unsigned int log_max_size_kb;   /* key "log_max_size_kb": rotate the access-log file before it
					 * passes this many KiB, 0..4194304 (4 GiB); 0 = never (default) */
	unsigned int log_max_files;     /* key "log_max_files": rotated (gzip) files kept, 1..1000; default 5 */
	unsigned int log_interval_s;    /* key "log_interval_s": an interim access-log line per
					 * interval of an open connection, 0..86400; 0 = off (default) */
	/* one-shot actions (command line only) */
	bool gen_config, list, probe, diagnose, detach, version, help;
};

/* Fill defaults. */
void ml_options_init(struct ml_options *o);

/*
 * Parse argv (getopt_long, options exactly as DESIGN.md "Command line").
 * Loads the config file first when -c is given, then applies the command
 * line on top. Returns 0, or -EINVAL (-ENOMEM) with a one-line message in err.
 */
int ml_options_parse(struct ml_options *o, int argc, char **argv, char *err, size_t errlen);

/* Apply a JSON config file onto o. Returns 0, or -EINVAL (-ENOMEM) with a message in err. */
int ml_config_load(struct ml_options *o, const char *path, char *err, size_t errlen);

/* Apply a JSON config given as text (what ml_config_load reads). */
int ml_config_parse(struct ml_options *o, const char *json, const char *origin, char *err,
		    size_t errlen);

/* The config for o as pretty JSON text (malloc'd; --gen-config prints it). */
char *ml_config_dump(const struct ml_options *o);

/*
 * The keys a running daemon takes from a reloaded config (SIGHUP); the
 * others decide programs, maps, sockets and files set up once, and need a
 * restart.
 */
bool ml_config_key_is_live(const char *key);

/* Move the live keys' values from n into o (n gets o's old ones, to free). */
void ml_options_take_live(struct ml_options *o, struct ml_options *n);

/* Usage text for -h. */
void ml_options_usage(FILE *out);

void ml_options_free(struct ml_options *o);

#endif /* MESHLENS_OPTIONS_H */
