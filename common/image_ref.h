/*
 * image_ref — image references ("busybox", "localhost:5000/app:1.0",
 * "repo@sha256:…") parsed and normalized the way Docker and containerd do
 * (REFERENCE §5):
 *
 *   - one component, or a first component that is not a host, names a
 *     repository on docker.io; a one-component path on docker.io gets
 *     "library/" in front: busybox → docker.io/library/busybox;
 *   - the first component is a host when it is "localhost", contains '.' or
 *     ':', or has an upper-case letter; "index.docker.io" becomes "docker.io";
 *   - the repository path is lower case (upper case is an error); the name
 *     (host + "/" + path) is at most 255 characters;
 *   - no tag and no digest → tag "latest"; with both a tag and a digest the
 *     digest wins (it names the content; the tag is kept for display only);
 *   - a bare 64-hex string is refused (it would read as an image ID).
 *
 * An img_ref is a plain value (fixed buffers, no allocation): copy it with
 * '=', nothing to free.  All functions are pure and thread-safe.
 */
#ifndef IMAGE_REF_H
#define IMAGE_REF_H

#include "bt_err.h"

#define IMG_REF_NAME_MAX 255    /* host + "/" + path */
#define IMG_REF_TAG_MAX 128
#define IMG_REF_DIGEST_MAX 135  /* "sha512:" + 128 hex */
#define IMG_REF_INPUT_MAX 1024  /* longer input is refused before parsing */
/* Room for any string the formatters write: name ':' tag '@' digest NUL. */
#define IMG_REF_STR_MAX (IMG_REF_NAME_MAX + 1 + IMG_REF_TAG_MAX + 1 + IMG_REF_DIGEST_MAX + 1)

#define IMG_REF_DEFAULT_DOMAIN "docker.io"
#define IMG_REF_DOCKER_HUB_HOST "registry-1.docker.io"

typedef struct img_ref {
	char domain[IMG_REF_NAME_MAX + 1];    /* "docker.io", "localhost:5000", "[::1]:5000" */
	char path[IMG_REF_NAME_MAX + 1];      /* "library/busybox": the repository path of the API */
	char tag[IMG_REF_TAG_MAX + 1];        /* "latest", or "" with a digest and no tag */
	char digest[IMG_REF_DIGEST_MAX + 1];  /* "sha256:<hex>", or "" */
} img_ref;

/* Parses and normalizes s into *out.  Errors are BT_INVALID_ARGUMENT with a message naming the input
 * ("reference \"busybox:-x\": invalid tag \"-x\""); *out is zeroed on failure. */
int img_ref_parse(const char *s, img_ref *out, bt_err *e);

/* The normalized reference, as image records are named: "docker.io/library/busybox:latest", or
 * "docker.io/library/busybox@sha256:…" when there is a digest (the digest wins over a tag).
 * Writes into buf (IMG_REF_STR_MAX bytes) and returns it. */
const char *img_ref_string(const img_ref *r, char buf[IMG_REF_STR_MAX]);

/* The name alone: "docker.io/library/busybox". */
const char *img_ref_name(const img_ref *r, char buf[IMG_REF_STR_MAX]);

/* Docker's short form for display: "busybox:latest", "user/app:1", "busybox:1.36@sha256:…" (a tag given
 * with a digest is shown), "localhost:5000/app:1". */
const char *img_ref_familiar(const img_ref *r, char buf[IMG_REF_STR_MAX]);

/* What to ask the registry for: the digest when there is one, else the tag.  Borrowed from r. */
const char *img_ref_object(const img_ref *r);

/* The registry host to contact when no hosts.toml says otherwise: "registry-1.docker.io" for
 * docker.io, else the domain.  Borrowed (from r or static). */
const char *img_ref_host(const img_ref *r);

/* The repository path used in /v2/<path>/…: "library/busybox".  Borrowed from r. */
const char *img_ref_repository(const img_ref *r);

/* Checks a repository path on its own ("library/busybox"): components of [a-z0-9] joined by '.', '_',
 * "__" or runs of '-', separated by '/'.  For callers that build references from parts. */
int img_ref_check_path(const char *path, bt_err *e);

#endif
