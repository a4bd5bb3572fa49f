/*
 * berth_spec — the pure parts of the OCI runtime spec generator, for the
 * unit tests and for libberth's own use: users and groups looked up inside a
 * root file system, the capability set for a bounding set, and the spec
 * built from an image config.
 */
#ifndef BERTH_SPEC_H
#define BERTH_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/berth.h"
#include "bt_err.h"

/* The largest uid or gid a container may get: 2^32−1 means "no id" to the kernel. */
#define BERTH_SPEC_MAX_ID 4294967294ull
/* Bound on /etc/passwd and /etc/group read from an image. */
#define BERTH_SPEC_MAX_ETC (4u << 20)

/* Reads path (absolute, as the image sees it) resolved inside the root
 * file system open at rootfd (openat2 RESOLVE_IN_ROOT: "..", absolute
 * symlinks and magic links cannot leave it); a regular file of at most max
 * bytes.  Returns 1 with *out (NUL-terminated, caller frees), 0 when it does
 * not exist, -1 on error. */
int berth_spec_read_in_root(int rootfd, const char *path, size_t max, char **out, size_t *len, bt_err *e);

typedef struct berth_spec_user {
	uint32_t uid;
	uint32_t gid;
	uint32_t *gids; /* additionalGids: the primary gid first, then /etc/group memberships */
	size_t n_gids;
} berth_spec_user;

void berth_spec_user_clear(berth_spec_user *u);
/* Resolves "uid", "name", "uid:gid", "name:group", "uid:group", "name:gid"
 * through the /etc/passwd and /etc/group of the root file system at rootfd
 * (-1: none, numeric ids only).  Ids must lie in 0…BERTH_SPEC_MAX_ID. */
int berth_spec_resolve_user(int rootfd, const char *user, berth_spec_user *out, bt_err *e);

/* The bounding set of this process (/proc/self/status CapBnd); 0 when unreadable. */
uint64_t berth_spec_host_bounding(void);
/* The capability names a container gets from bounding: the default set, or
 * every capability when privileged; never one outside bounding.
 * NULL-terminated, caller frees (bt_strv_free). */
char **berth_spec_caps(uint64_t bounding, bool privileged);

/* The spec for an image config (NULL config: an empty one) as a JSON object;
 * bounding is the host's bounding set. */
int berth_spec_build(const char *ns, const char *config_json, size_t len, const berth_spec_opts *o,
		     uint64_t bounding, json_t **out, bt_err *e);

#endif
