/*
 * image_job — jobs with progress and watchers; single-flight keys.
 */
#define _GNU_SOURCE
#include "image_job.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "bt_log.h"
#include "bt_map.h"
#include "bt_util.h"

/* Progress is sent at most this often while a job runs. */
#define WATCH_INTERVAL_MS 100

struct xjob {
	xjobs *table;
	char *key;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t version;
	xprog *items;
	size_t n;
	bool done;
	bt_err err;
	char *result;
	int refs; /* under table->mu */
	xjob_fn fn;
	void *arg;
	void (*free_arg)(void *);
};

struct xjobs {
	pthread_mutex_t mu;
	pthread_cond_t idle;
	bt_map *running; /* key → job, while the job runs */
	int threads;     /* job threads alive */
};

xjobs *xjobs_new(void)
{
	xjobs *t = bt_xzalloc(sizeof(*t));
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->idle, NULL);
	t->running = bt_map_new();
	return t;
}

static void job_free(xjob *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->items[i].media_type);
		free(j->items[i].message);
	}
	free(j->items);
	free(j->result);
	free(j->key);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

void xjobs_free(xjobs **tp, int64_t grace_ms)
{
	xjobs *t = *tp;
	if (!t)
		return;
	int64_t until = bt_mono_ms() + grace_ms;
	pthread_mutex_lock(&t->mu);
	while (t->threads > 0 && bt_mono_ms() < until) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&t->idle, &t->mu, &ts);
	}
	int busy = t->threads;
	pthread_mutex_unlock(&t->mu);
	if (busy) {
		/* jobs still use the table: leave it to the process's exit */
		bt_log_warn("%d transfer job(s) still running at shutdown", busy);
		*tp = NULL;
		return;
	}
	bt_map_free(&t->running);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->idle);
	free(t);
	*tp = NULL;
}

static void *job_main(void *p)
{
	xjob *j = p;
	xjobs *t = j->table;
	bt_err e = { 0 };
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	int rc = j->fn(j, j->arg, &e);
	if (j->free_arg)
		j->free_arg(j->arg);
	j->arg = NULL;
	pthread_mutex_lock(&j->mu);
	if (rc < 0)
		j->err = e;
	j->done = true;
	j->version++;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);

	pthread_mutex_lock(&t->mu);
	if (bt_map_sget(t->running, j->key) == j)
		bt_map_sdel(t->running, j->key);
	bool last = --j->refs == 0;
	t->threads--;
	pthread_cond_broadcast(&t->idle);
	pthread_mutex_unlock(&t->mu);
	if (last)
		job_free(j);
	return NULL;
}

size_t xjobs_running_in(xjobs *t, const char *ns)
{
	bt_map_iter it;
	const void *k;
	size_t klen, n = 0, nl = strlen(ns);
	void *v;

	pthread_mutex_lock(&t->mu);
	bt_map_iter_init(&it, t->running);
	while (bt_map_iter_next(&it, &k, &klen, &v)) {
		const char *key = k, *nsp = memchr(key, '\n', klen);
		/* keys are "<kind>\n<namespace>\n…" */
		if (nsp && (size_t)(key + klen - nsp - 1) > nl && memcmp(nsp + 1, ns, nl) == 0 && nsp[1 + nl] == '\n')
			n++;
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

xjob *xjob_get(xjobs *t, const char *key, xjob_fn fn, void *arg, void (*free_arg)(void *), bt_err *e)
{
	xjob *j;
	pthread_t th;
	pthread_attr_t attr;

	pthread_mutex_lock(&t->mu);
	j = bt_map_sget(t->running, key);
	if (j) {
		j->refs++;
		pthread_mutex_unlock(&t->mu);
		if (free_arg)
			free_arg(arg);
		return j;
	}
	j = bt_xzalloc(sizeof(*j));
	j->table = t;
	j->key = bt_xstrdup(key);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->fn = fn;
	j->arg = arg;
	j->free_arg = free_arg;
	j->refs = 2; /* the caller and the job's thread */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, job_main, j) != 0) {
		pthread_attr_destroy(&attr);
		pthread_mutex_unlock(&t->mu);
		if (free_arg)
			free_arg(arg);
		job_free(j);
		bt_err_set(e, BT_RESOURCE_EXHAUSTED, "cannot start a transfer thread");
		return NULL;
	}
	pthread_attr_destroy(&attr);
	t->threads++;
	bt_map_sput(t->running, j->key, j);
	pthread_mutex_unlock(&t->mu);
	return j;
}

void xjob_put(xjobs *t, xjob *j)
{
	bool last;

	if (!j)
		return;
	pthread_mutex_lock(&t->mu);
	last = --j->refs == 0;
	pthread_mutex_unlock(&t->mu);
	if (last)
		job_free(j);
}

static void set_str(char **dst, const char *v)
{
	if (!v)
		return;
	free(*dst);
	*dst = bt_xstrdup(v);
}

void xjob_progress(xjob *j, const char *kind, const char *media_type, const char *digest, int64_t size,
		   const char *state, int64_t offset, int64_t total, const char *message)
{
	xprog *p = NULL;

	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < j->n; i++)
		if (!strcmp(j->items[i].digest, digest))
			p = &j->items[i];
	if (!p) {
		j->items = bt_xrealloc(j->items, (j->n + 1) * sizeof(*j->items));
		p = &j->items[j->n++];
		memset(p, 0, sizeof(*p));
		snprintf(p->digest, sizeof(p->digest), "%s", digest);
	}
	if (kind)
		snprintf(p->kind, sizeof(p->kind), "%s", kind);
	set_str(&p->media_type, media_type);
	if (size >= 0)
		p->size = size;
	if (state)
		snprintf(p->state, sizeof(p->state), "%s", state);
	if (offset >= 0)
		p->offset = offset;
	if (total >= 0)
		p->total = total;
	set_str(&p->message, message);
	p->changed = ++j->version;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

void xjob_set_result(xjob *j, const char *result)
{
	pthread_mutex_lock(&j->mu);
	set_str(&j->result, result);
	pthread_mutex_unlock(&j->mu);
}

/* Copies the entries changed since *seen (caller frees the strings with the array). */
static xprog *changed_since(xjob *j, uint64_t seen, size_t *n)
{
	xprog *v = NULL;
	*n = 0;
	for (size_t i = 0; i < j->n; i++) {
		if (j->items[i].changed <= seen)
			continue;
		v = bt_xrealloc(v, (*n + 1) * sizeof(*v));
		v[*n] = j->items[i];
		v[*n].media_type = j->items[i].media_type ? bt_xstrdup(j->items[i].media_type) : NULL;
		v[*n].message = j->items[i].message ? bt_xstrdup(j->items[i].message) : NULL;
		(*n)++;
	}
	return v;
}

static void items_free(xprog *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].media_type);
		free(v[i].message);
	}
	free(v);
}

void xjob_watch(xjob *j, bt_call *call, xjob_send_fn send, void *ctx)
{
	uint64_t seen = 0;
	bt_err e;

	for (;;) {
		size_t n;
		pthread_mutex_lock(&j->mu);
		while (!j->done && j->version == seen && !bt_call_done(call)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&j->cv, &j->mu, &ts);
		}
		bool done = j->done;
		uint64_t version = j->version;
		xprog *v = changed_since(j, seen, &n);
		_cleanup_free_ char *result = j->result ? bt_xstrdup(j->result) : NULL;
		bt_err jerr = j->err;
		pthread_mutex_unlock(&j->mu);
		seen = version;
		if (bt_call_done(call)) {
			/* the caller went away; the job goes on without it */
			items_free(v, n);
			bt_call_done_err(call, &e);
			bt_call_error(call, &e);
			return;
		}
		if (done) {
			int rc = 0;
			if (jerr.code == BT_OK)
				rc = send(call, v, n, true, result, ctx, &e);
			else if (n)
				rc = send(call, v, n, false, NULL, ctx, &e);
			items_free(v, n);
			if (rc < 0)
				bt_call_error(call, &e);
			else if (jerr.code != BT_OK)
				bt_call_error(call, &jerr);
			else
				bt_call_reply(call, NULL);
			return;
		}
		if (n && send(call, v, n, false, NULL, ctx, &e) < 0) {
			items_free(v, n);
			bt_call_error(call, &e);
			return;
		}
		items_free(v, n);
		/* batch updates: a download reports thousands of times a second */
		struct timespec pause = { 0, WATCH_INTERVAL_MS * 1000000L };
		nanosleep(&pause, NULL);
	}
}

/* --- single flight ----------------------------------------------------------- */

struct xonce {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bt_map *keys; /* key → once_entry while someone works on it */
};

xonce *xonce_new(void)
{
	xonce *o = bt_xzalloc(sizeof(*o));
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	o->keys = bt_map_new();
	return o;
}

void xonce_free(xonce **op)
{
	xonce *o = *op;
	bt_map_iter it;
	void *v;

	if (!o)
		return;
	bt_map_iter_init(&it, o->keys);
	while (bt_map_iter_next(&it, NULL, NULL, &v))
		free(v);
	bt_map_free(&o->keys);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
	*op = NULL;
}

/* Outcomes of finished keys are kept for waiters through a generation
 * counter: a waiter that saw the key busy returns 0 if the worker
 * succeeded, or competes to become the worker if it failed. */
typedef struct once_state {
	bool busy;
	bool ok;
	uint64_t gen;
	int waiters;
} once_state;

/* Forgets a key nobody works on or waits for. Caller holds o->mu. */
static void once_prune(xonce *o, const char *key, once_state *st)
{
	if (!st->busy && st->waiters == 0) {
		bt_map_sdel(o->keys, key);
		free(st);
	}
}

int xonce_begin(xonce *o, const char *key)
{
	once_state *st;
	int rc;

	pthread_mutex_lock(&o->mu);
	st = bt_map_sget(o->keys, key);
	if (!st) {
		st = bt_xzalloc(sizeof(*st));
		bt_map_sput(o->keys, key, st);
	}
	if (!st->busy) {
		st->busy = true;
		pthread_mutex_unlock(&o->mu);
		return 1;
	}
	uint64_t gen = st->gen;
	st->waiters++;
	while (st->busy && st->gen == gen)
		pthread_cond_wait(&o->cv, &o->mu);
	if (st->gen != gen && st->ok) {
		rc = 0;
	} else {
		/* the worker failed: this caller tries (waiting again if another got in first) */
		while (st->busy)
			pthread_cond_wait(&o->cv, &o->mu);
		st->busy = true;
		rc = 1;
	}
	st->waiters--;
	if (rc == 0)
		once_prune(o, key, st);
	pthread_mutex_unlock(&o->mu);
	return rc;
}

void xonce_end(xonce *o, const char *key, bool ok)
{
	once_state *st;

	pthread_mutex_lock(&o->mu);
	st = bt_map_sget(o->keys, key);
	if (st) {
		st->busy = false;
		st->ok = ok;
		st->gen++;
		once_prune(o, key, st);
	}
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
}
