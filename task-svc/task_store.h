/*
 * task_store — berth-taskd's container records: per namespace, an id with
 * its image name, OCI runtime spec (JSON), snapshotter and snapshot key,
 * runtime (name, binary, root), labels and times, in one sqlite database
 * ($ROOT/tasks/meta.db).
 */
#ifndef TASK_STORE_H
#define TASK_STORE_H

#include <stdint.h>

#include "bt_err.h"
#include "bt_filter.h"
#include "bt_labels.h"

typedef struct task_store task_store;

typedef struct ctr_rec {
	char *id;
	char *image;
	char *spec; /* JSON object */
	char *snapshotter;
	char *snapshot_key;
	char *runtime;      /* "runc" or "crun" */
	char *runtime_binary;
	char *runtime_root;
	bt_labels labels;
	int64_t created; /* ns since the epoch */
	int64_t updated;
} ctr_rec;

void ctr_rec_clear(ctr_rec *r);
void ctr_rec_copy(ctr_rec *dst, const ctr_rec *src);
/* Checks a record a client sent: id, spec (a JSON object), runtime name,
 * paths, labels.  Fills an empty runtime name with "runc". */
int ctr_rec_validate(ctr_rec *r, bt_err *e);

int task_store_open(const char *dir, task_store **out, bt_err *e);
void task_store_free(task_store **s);
/* NOT_FOUND when there is no container id in ns. */
int task_store_get(task_store *s, const char *ns, const char *id, ctr_rec *out, bt_err *e);
/* Calls cb per container of ns matching f, by id. */
int task_store_list(task_store *s, const char *ns, const bt_filter *f, int (*cb)(const ctr_rec *r, void *arg),
		    void *arg, bt_err *e);
/* ALREADY_EXISTS when the id is taken.  out may be NULL. */
int task_store_create(task_store *s, const char *ns, ctr_rec *r, ctr_rec *out, bt_err *e);
/* mask: see tasks.proto UpdateContainerRequest.  out may be NULL. */
int task_store_update(task_store *s, const char *ns, ctr_rec *r, char *const *mask, size_t nmask, ctr_rec *out,
		      bt_err *e);
int task_store_delete(task_store *s, const char *ns, const char *id, bt_err *e);

/* system.NamespaceUsage (a bt_ns_usage_fn; arg is the store): the containers in ns (a task needs one). */
int task_store_ns_usage(void *arg, const char *ns, char ***holds, bt_err *e);

#endif
