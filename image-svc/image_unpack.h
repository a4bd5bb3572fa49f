/*
 * image_unpack — layers onto snapshots, named by chain ID so a chain that
 * exists is reused.  Each layer is applied to a temporary active snapshot
 * (prepared on its parent chain, mounted by the image service in the host's
 * mount namespace), made durable with one syncfs, checked against its
 * diffID, and committed under its chain ID; a failure removes the temporary
 * snapshot, and a crash leaves a journal entry that start-up uses to remove
 * it.
 */
#ifndef IMAGE_UNPACK_H
#define IMAGE_UNPACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "berth/berth.h"
#include "bt_config.h"
#include "bt_digest.h"
#include "bt_err.h"
#include "bt_oci.h"
#include "image_job.h"

typedef struct image_env {
	const bt_config *cfg;
	char *content_addr; /* berth-contentd's socket */
	char *gateway_addr; /* berth-gatewayd's public socket: its leases */
	char *mnt_dir;      /* $RUN/images/mnt: where layers are mounted while applied */
	char *journal_dir;  /* $ROOT/images/tmp: temporary snapshots in use */
	char *spool_dir;    /* $ROOT/images/spool: blobs on their way to a registry */
	xonce *unpacks;     /* one unpack per snapshotter/namespace/chain */
	xonce *fetches;     /* one download per namespace/digest */
	struct img_registry *registry; /* the daemon's HTTP transfers */
} image_env;

int image_env_init(image_env *env, const bt_config *cfg, const char *state_dir, bt_err *e);
void image_env_clear(image_env *env);
/* Start-up: removes the temporary snapshots and mounts a crash left behind. */
int image_env_recover(image_env *env, bt_err *e);

/* A client of the content service, and of snapshotter sn (NULL: default), for this thread. */
berth_client *image_content_client(image_env *env, bt_err *e);
/* A client of the gateway, for the leases a caller names. */
berth_client *image_gateway_client(image_env *env, bt_err *e);
berth_client *image_snap_client(image_env *env, const char *sn, bt_err *e);
/* The name a snapshotter request names ("" or NULL: the default). */
const char *image_snapshotter_name(image_env *env, const char *sn);

/* Reads a whole small blob (≤ max bytes) from the content store. */
int image_read_blob(berth_client *content, const char *ns, const char *digest, size_t max, char **out, size_t *len,
		    bt_err *e);

/* Where a layer's compressed bytes come from. */
typedef ssize_t (*image_read_fn)(void *arg, void *buf, size_t len, bt_err *e);

typedef struct image_layer_job {
	const char *ns;
	const char *snapshotter;   /* name */
	const char *parent_chain;  /* NULL for the first layer */
	const char *chain;         /* this layer's chain ID */
	const char *diff_id;       /* expected */
	image_read_fn read;
	void *arg;
	void (*progress)(void *arg, int64_t consumed); /* called with arg */
} image_layer_job;

/* Applies one layer as described above. Returns 1 when the chain existed
 * already (nothing applied; the reader is untouched), 0 when applied. */
int image_unpack_layer(image_env *env, berth_client *snap, const image_layer_job *j, bt_err *e);

/* The manifest of an image for a platform: resolves an index through the
 * content store. */
int image_resolve_manifest(berth_client *content, const char *ns, const bt_oci_desc *root,
			   const bt_oci_platform *want, bt_oci_manifest *out, bt_oci_desc *chosen, bt_err *e);

/* Unpacks every layer of a stored image (reading blobs from the content
 * store), reporting to job; chain_out gets the top chain ID. */
int image_unpack_stored(image_env *env, xjob *job, const char *ns, const bt_oci_desc *root,
			const bt_oci_platform *want, const char *snapshotter, char chain_out[BT_DIGEST_STR_LEN],
			bt_err *e);

#endif
