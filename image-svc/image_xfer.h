/*
 * image_xfer — transfers as jobs: Pull, Push and Unpack run in threads of
 * their own, so a caller that goes away does not stop them, and a second
 * caller asking for the same transfer joins the job in progress.  Callers
 * watch a job's progress (one entry per blob) until it ends.
 *
 * Single flight: within the daemon, one download per (namespace, blob
 * digest) and one unpack per (snapshotter, namespace, chain ID) at a time;
 * others wait for it and use its result.
 */
#ifndef IMAGE_XFER_H
#define IMAGE_XFER_H

#include <stdbool.h>
#include <stdint.h>

#include "bt_config.h"
#include "bt_err.h"
#include "bt_server.h"
#include "image_store.h"
#include "image_unpack.h"

typedef struct image_xfer image_xfer;

typedef struct image_xfer_opts {
	const bt_config *cfg;    /* endpoints of content and snapshotters, run dir */
	image_store *store;      /* image records (borrowed) */
	const char *state_dir;   /* $ROOT/images: the journal of temporary snapshots */
	int max_parallel_layers; /* layers fetched at once per pull; 0: 4 */
} image_xfer_opts;

image_xfer *image_xfer_new(const image_xfer_opts *o, bt_err *e);
/* Waits (bounded) for running jobs to notice the stop, then frees. */
void image_xfer_free(image_xfer **x);
/* The environment its jobs share (content and snapshot clients). */
image_env *image_xfer_env(image_xfer *x);
/* system.NamespaceUsage of the image service (a bt_ns_usage_fn over the
 * transfer table): its images, and its transfers running there, as
 * "N transfers " BT_GC_BUSY (the collector waits for them). */
int image_xfer_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e);
/* Start-up: removes temporary snapshots and mounts a crash left behind. */
int image_xfer_recover(image_xfer *x, bt_err *e);

/* The handlers of images.Pull, Push and Unpack. */
void image_xfer_pull(image_xfer *x, bt_call *call);
void image_xfer_push(image_xfer *x, bt_call *call);
void image_xfer_unpack(image_xfer *x, bt_call *call);

#endif
