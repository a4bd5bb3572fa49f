/*
 * image_pull — Pull and Push jobs: the transfer between a registry and the
 * content store (and, for a pull, the snapshotter).
 *
 * A pull is a streaming pipeline: layers are fetched in parallel; each
 * layer's bytes go at once into the content store and through the
 * decompressor into the tar applier onto its snapshot, so unpacking
 * overlaps downloading; commits follow layer order.
 */
#ifndef IMAGE_PULL_H
#define IMAGE_PULL_H

#include "berth/images/v1/images.pb-c.h"
#include "bt_err.h"
#include "image_job.h"
#include "image_store.h"
#include "image_unpack.h"

typedef struct image_pull_req image_pull_req;
typedef struct image_push_req image_push_req;

/* Checks and copies a PullRequest for a job; NULL with e on bad input. */
image_pull_req *image_pull_req_new(image_env *env, image_store *store, const char *ns,
				   const Berth__Images__V1__PullRequest *r, int max_parallel, bt_err *e);
void image_pull_req_free(void *req);
/* Jobs with the same key are one job (caller frees). */
char *image_pull_key(const image_pull_req *r);
/* The job: its result is the image's name. */
int image_pull_run(xjob *j, void *req, bt_err *e);

image_push_req *image_push_req_new(image_env *env, image_store *store, const char *ns,
				   const Berth__Images__V1__PushRequest *r, bt_err *e);
void image_push_req_free(void *req);
char *image_push_key(const image_push_req *r);
/* The job: its result is the pushed root digest. */
int image_push_run(xjob *j, void *req, bt_err *e);

#endif
