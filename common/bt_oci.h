/*
 * bt_oci — the JSON documents of an image (OCI and Docker schema 2):
 * indexes and manifest lists, manifests, configs; media types; platforms
 * and how one is chosen; chain IDs.  Every document is untrusted input:
 * sizes are bounded by the caller, counts and lengths here.
 */
#ifndef BT_OCI_H
#define BT_OCI_H

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

typedef struct bt_oci_platform {
	char *os;
	char *arch;
	char *variant; /* "" when none */
	char *os_version;
} bt_oci_platform;

typedef struct bt_oci_desc {
	char *media_type;
	char digest[BT_DIGEST_STR_LEN];
	int64_t size;
	bt_labels annotations;
	char **urls; /* foreign layers; NULL-terminated or NULL */
	bool has_platform;
	bt_oci_platform platform;
} bt_oci_desc;

typedef struct bt_oci_index {
	bt_oci_desc *manifests;
	size_t n;
} bt_oci_index;

typedef struct bt_oci_manifest {
	bt_oci_desc config;
	bt_oci_desc *layers;
	size_t n_layers;
} bt_oci_manifest;

typedef struct bt_oci_config {
	bt_oci_platform platform;
	char **diff_ids; /* n_diff_ids "sha256:…" */
	size_t n_diff_ids;
} bt_oci_config;

bool bt_oci_is_index(const char *mt);
bool bt_oci_is_manifest(const char *mt);
bool bt_oci_is_config(const char *mt);
bool bt_oci_is_layer(const char *mt);

void bt_oci_platform_clear(bt_oci_platform *p);
void bt_oci_desc_clear(bt_oci_desc *d);
void bt_oci_desc_copy(bt_oci_desc *dst, const bt_oci_desc *src);
void bt_oci_index_clear(bt_oci_index *x);
void bt_oci_manifest_clear(bt_oci_manifest *m);
void bt_oci_config_clear(bt_oci_config *c);

int bt_oci_parse_index(const char *json, size_t len, bt_oci_index *out, bt_err *e);
int bt_oci_parse_manifest(const char *json, size_t len, bt_oci_manifest *out, bt_err *e);
int bt_oci_parse_config(const char *json, size_t len, bt_oci_config *out, bt_err *e);
/* The media type a document declares (mediaType), or NULL (caller frees). */
char *bt_oci_sniff_media_type(const char *json, size_t len);

/* "os/arch[/variant]" (normalized: x86_64 → amd64, aarch64 → arm64, …); an
 * empty string is the host's platform. */
int bt_oci_platform_parse(const char *s, bt_oci_platform *out, bt_err *e);
void bt_oci_platform_host(bt_oci_platform *out);
/* "linux/amd64", "linux/arm/v7" (caller frees). */
char *bt_oci_platform_str(const bt_oci_platform *p);
/* How well have fits want: 0 no, higher better (exact beats a fallback
 * such as 386 on amd64). */
int bt_oci_platform_score(const bt_oci_platform *want, const bt_oci_platform *have);
/* The index entry to use for want, or -1 with NOT_FOUND listing what there is. */
int bt_oci_index_choose(const bt_oci_index *x, const bt_oci_platform *want, bt_err *e);

/* chain[i] = diff_ids[0] for i = 0, else sha256(chain[i-1] + " " + diff_ids[i]). */
void bt_oci_chain_ids(char *const *diff_ids, size_t n, char (*chain)[BT_DIGEST_STR_LEN]);

#endif
