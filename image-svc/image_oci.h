/*
 * image_oci — the JSON documents of an image (OCI and Docker schema 2):
 * indexes and manifest lists, manifests, configs; media types; platforms
 * and how one is chosen; chain IDs.  Every document is untrusted input:
 * sizes are bounded by the caller, counts and lengths here.
 */
#ifndef IMAGE_OCI_H
#define IMAGE_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_digest.h"
#include "bt_err.h"
#include "bt_labels.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"
#define MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_DOCKER_LAYER_ZSTD "application/vnd.docker.image.rootfs.diff.tar.zstd"
#define MT_DOCKER_FOREIGN_LAYER "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/* Bounds on documents the caller reads whole. */
#define OCI_MAX_MANIFEST (4 << 20)
#define OCI_MAX_CONFIG (8 << 20)
/* Bounds on what a document may list. */
#define OCI_MAX_LAYERS 500
#define OCI_MAX_MANIFESTS 1000

typedef struct oci_platform {
	char *os;
	char *arch;
	char *variant; /* "" when none */
	char *os_version;
} oci_platform;

typedef struct oci_desc {
	char *media_type;
	char digest[BT_DIGEST_STR_LEN];
	int64_t size;
	bt_labels annotations;
	char **urls; /* foreign layers; NULL-terminated or NULL */
	bool has_platform;
	oci_platform platform;
} oci_desc;

typedef struct oci_index {
	oci_desc *manifests;
	size_t n;
} oci_index;

typedef struct oci_manifest {
	oci_desc config;
	oci_desc *layers;
	size_t n_layers;
} oci_manifest;

typedef struct oci_config {
	oci_platform platform;
	char **diff_ids; /* n_diff_ids "sha256:…" */
	size_t n_diff_ids;
} oci_config;

bool oci_is_index(const char *mt);
bool oci_is_manifest(const char *mt);
bool oci_is_config(const char *mt);
bool oci_is_layer(const char *mt);

void oci_platform_clear(oci_platform *p);
void oci_desc_clear(oci_desc *d);
void oci_desc_copy(oci_desc *dst, const oci_desc *src);
void oci_index_clear(oci_index *x);
void oci_manifest_clear(oci_manifest *m);
void oci_config_clear(oci_config *c);

int oci_parse_index(const char *json, size_t len, oci_index *out, bt_err *e);
int oci_parse_manifest(const char *json, size_t len, oci_manifest *out, bt_err *e);
int oci_parse_config(const char *json, size_t len, oci_config *out, bt_err *e);
/* The media type a document declares (mediaType), or NULL (caller frees). */
char *oci_sniff_media_type(const char *json, size_t len);

/* "os/arch[/variant]" (normalized: x86_64 → amd64, aarch64 → arm64, …); an
 * empty string is the host's platform. */
int oci_platform_parse(const char *s, oci_platform *out, bt_err *e);
void oci_platform_host(oci_platform *out);
/* "linux/amd64", "linux/arm/v7" (caller frees). */
char *oci_platform_str(const oci_platform *p);
/* How well have fits want: 0 no, higher better (exact beats a fallback
 * such as 386 on amd64). */
int oci_platform_score(const oci_platform *want, const oci_platform *have);
/* The index entry to use for want, or -1 with NOT_FOUND listing what there is. */
int oci_index_choose(const oci_index *x, const oci_platform *want, bt_err *e);

/* chain[i] = diff_ids[0] for i = 0, else sha256(chain[i-1] + " " + diff_ids[i]). */
void oci_chain_ids(char *const *diff_ids, size_t n, char (*chain)[BT_DIGEST_STR_LEN]);

#endif
