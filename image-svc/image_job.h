/*
 * image_job — what the transfers share: a job (progress per blob, a result,
 * callers watching it) and single-flight keys (one worker per key, the rest
 * wait for its outcome).
 */
#ifndef IMAGE_JOB_H
#define IMAGE_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bt_digest.h"
#include "bt_err.h"
#include "bt_server.h"

/* One blob's progress. */
typedef struct xprog {
	char kind[16];   /* "index", "manifest", "config", "layer" */
	char *media_type;
	char digest[BT_DIGEST_STR_LEN];
	int64_t size;
	char state[16];  /* waiting, downloading, exists, unpacking, unpacked, done, uploading, mounted, error */
	int64_t offset;
	int64_t total;
	char *message;
	uint64_t changed; /* job version of the last change */
} xprog;

typedef struct xjob xjob;
typedef struct xjobs xjobs;

/* Runs a job's work on its own thread; fills e and returns -1 on failure. */
typedef int (*xjob_fn)(xjob *j, void *arg, bt_err *e);

xjobs *xjobs_new(void);
/* Cancels nothing: waits (up to grace_ms) for running jobs, then frees. */
void xjobs_free(xjobs **t, int64_t grace_ms);

/* The job named key: the one running, or a new one started with fn(arg)
 * (arg freed with free_arg when the job is done). The caller holds a
 * reference; drop it with xjob_put. */
xjob *xjob_get(xjobs *t, const char *key, xjob_fn fn, void *arg, void (*free_arg)(void *), bt_err *e);
void xjob_put(xjobs *t, xjob *j);
/* How many jobs run in namespace ns (job keys are "<kind>\n<namespace>\n…"). */
size_t xjobs_running_in(xjobs *t, const char *ns);

/* Updates (or adds) the progress entry of digest. NULL strings keep the old value. */
void xjob_progress(xjob *j, const char *kind, const char *media_type, const char *digest, int64_t size,
		   const char *state, int64_t offset, int64_t total, const char *message);
/* Sets the job's textual result (a digest or chain ID) — read by watchers at the end. */
void xjob_set_result(xjob *j, const char *result);

/* Streams the job's progress to call until the job ends or the caller goes
 * away: send(call, items, n, final, result, ctx) encodes and sends one
 * message (final: the job ended and result holds its outcome). Then replies
 * with the job's status. */
typedef int (*xjob_send_fn)(bt_call *call, const xprog *items, size_t n, bool final, const char *result, void *ctx,
			    bt_err *e);
void xjob_watch(xjob *j, bt_call *call, xjob_send_fn send, void *ctx);

/* Single flight: xonce_begin returns 1 when the caller is to do the work
 * for key (then it must call xonce_end with the outcome), 0 when another
 * caller did it successfully meanwhile (the caller waited for it). */
typedef struct xonce xonce;
xonce *xonce_new(void);
void xonce_free(xonce **o);
int xonce_begin(xonce *o, const char *key);
void xonce_end(xonce *o, const char *key, bool ok);

#endif
