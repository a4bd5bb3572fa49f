/*
 * bt_config — /etc/berth/config.toml and the environment.
 *
 * Every key has a default, so no file is needed.  BERTH_CONFIG names another
 * file (which must then exist); BERTH_ROOT and BERTH_RUN override the state
 * and runtime directories so several suites can run side by side.  The keys,
 * their types and defaults are one table in bt_config.c (printed by
 * `berth config default`); a key of the wrong type is an error, an unknown
 * key a warning.
 */
#ifndef BT_CONFIG_H
#define BT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bt_err.h"

#define BT_CONFIG_DEFAULT_PATH "/etc/berth/config.toml"
#define BT_DEFAULT_ROOT "/var/lib/berth"
#define BT_DEFAULT_RUN "/run/berth"

typedef struct bt_toml bt_toml;

typedef struct bt_config {
	char *path;   /* the file read, or NULL when none was */
	char *root;   /* state directory: BERTH_ROOT, `root`, or /var/lib/berth */
	char *run;    /* runtime directory: BERTH_RUN, `run`, or /run/berth */
	bt_toml *doc; /* the parsed file (NULL when none) */
} bt_config;

/* Loads the configuration; warnings (unknown keys) go to the log. */
int bt_config_load(bt_config **out, bt_err *e);
/* Same, from a given file (NULL: none) — for tests and `berth config check`. */
int bt_config_load_file(const char *path, bt_config **out, bt_err *e);
void bt_config_free(bt_config **c);

/* Endpoint of an internal service ("content", "snapshots", "images",
 * "tasks"): [services.NAME] address, default ipc://$run/svc/NAME.sock.
 * Caller frees. */
char *bt_config_service_address(const bt_config *c, const char *service);
/* The gateway's public endpoint: [gateway] address, default ipc://$run/berth.sock. Caller frees. */
char *bt_config_gateway_address(const bt_config *c);
/* The gateway's unix stream door: [gateway] unix_address, default
 * unix://$run/berth-unix.sock; NULL when set to "off".  Caller frees. */
char *bt_config_gateway_unix_address(const bt_config *c);
/* Snapshotters: the local berth-snapshotd's (named by snapshots.name, else
 * its driver) and every [snapshotters.NAME] with an address. */
typedef struct bt_snapshotter_ref {
	char *name;
	char *address;
} bt_snapshotter_ref;
/* All known snapshotters, the local one first; free with bt_snapshotters_free. */
size_t bt_config_snapshotters(const bt_config *c, bt_snapshotter_ref **out);
void bt_snapshotters_free(bt_snapshotter_ref *v, size_t n);
/* Name of the local instance's snapshotter, and the default one (borrowed). */
const char *bt_config_local_snapshotter(const bt_config *c);
const char *bt_config_default_snapshotter(const bt_config *c);
/* Endpoint of snapshotter name (NULL/"": the default); NULL when unknown. Caller frees. */
char *bt_config_snapshotter_address(const bt_config *c, const char *name);

/* A service's state directory: $root/NAME. Caller frees. */
char *bt_config_state_dir(const bt_config *c, const char *service);

/* Typed lookups with the table's defaults (path as in TOML: "content.lock_timeout"). */
const char *bt_config_str(const bt_config *c, const char *path);
int64_t bt_config_int(const bt_config *c, const char *path);
bool bt_config_bool(const bt_config *c, const char *path);
/* Durations ("30s") and sizes ("16MiB") written as strings. */
int64_t bt_config_duration_ms(const bt_config *c, const char *path);
uint64_t bt_config_size(const bt_config *c, const char *path);

/* Writes every known key with its default and meaning, as TOML comments. */
void bt_config_print_defaults(FILE *f);

#endif
