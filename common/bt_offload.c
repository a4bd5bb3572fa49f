/*
 * bt_offload — a fixed pool of helper threads with a job queue.
 */
#include "bt_offload.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "bt_util.h"

struct bt_job {
	void (*fn)(void *);
	void *arg;
	bool done;
	bt_job *next;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

struct bt_offload {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bt_job *head, *tail;
	bool stop;
	int n;
	pthread_t *threads;
};

static void *helper(void *p)
{
	bt_offload *o = p;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&o->mu);
	for (;;) {
		while (!o->head && !o->stop)
			pthread_cond_wait(&o->cv, &o->mu);
		if (!o->head)
			break;
		bt_job *j = o->head;
		o->head = j->next;
		if (!o->head)
			o->tail = NULL;
		pthread_mutex_unlock(&o->mu);
		j->fn(j->arg);
		pthread_mutex_lock(&j->mu);
		j->done = true;
		pthread_cond_signal(&j->cv);
		pthread_mutex_unlock(&j->mu);
		pthread_mutex_lock(&o->mu);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

bt_offload *bt_offload_new(int n)
{
	bt_offload *o = bt_xzalloc(sizeof(*o));

	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	o->threads = bt_xcalloc((size_t)n, sizeof(pthread_t));
	for (int i = 0; i < n; i++)
		if (pthread_create(&o->threads[o->n], NULL, helper, o) == 0)
			o->n++;
	return o;
}

void bt_offload_free(bt_offload **op)
{
	bt_offload *o = *op;
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	for (int i = 0; i < o->n; i++)
		pthread_join(o->threads[i], NULL);
	free(o->threads);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
	*op = NULL;
}

bt_job *bt_job_start(bt_offload *o, void (*fn)(void *arg), void *arg)
{
	bt_job *j = bt_xzalloc(sizeof(*j));

	j->fn = fn;
	j->arg = arg;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	if (!o || o->n == 0) {
		/* no helpers: run it here */
		fn(arg);
		j->done = true;
		return j;
	}
	pthread_mutex_lock(&o->mu);
	if (o->tail)
		o->tail->next = j;
	else
		o->head = j;
	o->tail = j;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
	return j;
}

void bt_job_wait(bt_job *j)
{
	pthread_mutex_lock(&j->mu);
	while (!j->done)
		pthread_cond_wait(&j->cv, &j->mu);
	pthread_mutex_unlock(&j->mu);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j);
}

bool bt_job_done(bt_job *j)
{
	pthread_mutex_lock(&j->mu);
	bool done = j->done;
	pthread_mutex_unlock(&j->mu);
	return done;
}
