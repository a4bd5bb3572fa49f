/*
 * bt_seccomp — the default seccomp profile of a container, as the
 * linux.seccomp object of an OCI runtime spec: an allowlist (everything
 * else fails with EPERM) for the host's architectures, widened by the
 * capabilities the container holds, in the manner of Docker's and
 * containerd's default profile.  Every syscall name is checked against
 * libseccomp: a name the host's libseccomp does not know is dropped, never
 * fatal.  Also checks a profile a user supplies.
 */
#ifndef BT_SECCOMP_H
#define BT_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "bt_err.h"

/* The default profile (new reference).  caps: the capability names
 * ("CAP_SYS_ADMIN", …) the container's bounding set holds.  *n_dropped (may
 * be NULL) counts the names dropped because libseccomp knows none of them. */
json_t *bt_seccomp_default(const char *const *caps, size_t n_caps, size_t *n_dropped);

/* The architectures a profile lists for the host ("SCMP_ARCH_X86_64",
 * "SCMP_ARCH_X86", "SCMP_ARCH_X32" on x86_64), NULL-terminated, borrowed. */
const char *const *bt_seccomp_host_arches(void);

/* true when name is a syscall on at least one of the host's architectures. */
bool bt_seccomp_known(const char *name);

/* Checks that j has the shape of an OCI linux.seccomp object (defaultAction,
 * architectures, syscalls with names and an action), so that a bad profile is
 * refused here with its fault named rather than by the runtime later. */
int bt_seccomp_check(const json_t *j, bt_err *e);

#endif
