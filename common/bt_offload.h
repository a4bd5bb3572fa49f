/*
 * bt_offload — run a piece of work on a helper thread while the caller does
 * another, then wait for it: e.g. write a chunk to disk while hashing it.
 * A small fixed pool serves every caller; a job never waits for another job.
 */
#ifndef BT_OFFLOAD_H
#define BT_OFFLOAD_H

#include <stdbool.h>

typedef struct bt_offload bt_offload;
typedef struct bt_job bt_job;

/* A pool of n helper threads. */
bt_offload *bt_offload_new(int n);
void bt_offload_free(bt_offload **o);

/* Starts fn(arg) on a helper; the caller must bt_job_wait on the result. */
bt_job *bt_job_start(bt_offload *o, void (*fn)(void *arg), void *arg);
/* Waits for the job to finish and frees it. */
void bt_job_wait(bt_job *j);
/* Whether the job has finished (it still needs its bt_job_wait). */
bool bt_job_done(bt_job *j);

#endif
