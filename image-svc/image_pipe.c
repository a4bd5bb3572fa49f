/*
 * image_pipe — a ring buffer with a paused-producer handshake.
 */
#include "image_pipe.h"

#include <pthread.h>
#include <string.h>

#include "bt_util.h"
#include "image_registry.h"

struct image_pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *buf;
	size_t cap, head, len;
	bool closed;
	bool detached;
	bool paused; /* the producer was refused room */
	bt_err err;
	img_xfer *xfer;
};

image_pipe *image_pipe_new(size_t cap)
{
	image_pipe *p = bt_xzalloc(sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->buf = bt_xmalloc(cap);
	p->cap = cap;
	return p;
}

void image_pipe_free(image_pipe **pp)
{
	image_pipe *p = *pp;
	if (!p)
		return;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->buf);
	free(p);
	*pp = NULL;
}

void image_pipe_set_xfer(image_pipe *p, img_xfer *x)
{
	pthread_mutex_lock(&p->mu);
	p->xfer = x;
	pthread_mutex_unlock(&p->mu);
}

bool image_pipe_room(image_pipe *p, size_t n)
{
	bool ok;
	pthread_mutex_lock(&p->mu);
	ok = p->detached || p->cap - p->len >= n;
	if (!ok)
		p->paused = true;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

void image_pipe_put(image_pipe *p, const void *data, size_t n)
{
	const char *c = data;

	pthread_mutex_lock(&p->mu);
	if (!p->detached) {
		while (n > 0 && p->len < p->cap) {
			size_t tail = (p->head + p->len) % p->cap;
			size_t chunk = BT_MIN(n, p->cap - tail);
			chunk = BT_MIN(chunk, p->cap - p->len);
			memcpy(p->buf + tail, c, chunk);
			p->len += chunk;
			c += chunk;
			n -= chunk;
		}
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

void image_pipe_close(image_pipe *p, const bt_err *e)
{
	pthread_mutex_lock(&p->mu);
	p->closed = true;
	if (e && e->code != BT_OK)
		p->err = *e;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Resumes the producer when it waits for room and there is some (caller holds mu). */
static img_xfer *to_resume(image_pipe *p)
{
	if (p->paused && p->xfer && (p->detached || p->cap - p->len >= p->cap / 2)) {
		p->paused = false;
		return p->xfer;
	}
	return NULL;
}

ssize_t image_pipe_read(image_pipe *p, void *buf, size_t len, bt_err *e)
{
	size_t got = 0;
	img_xfer *resume;

	pthread_mutex_lock(&p->mu);
	while (p->len == 0 && !p->closed)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->len == 0 && p->err.code != BT_OK) {
		*e = p->err;
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	while (got < len && p->len > 0) {
		size_t chunk = BT_MIN(len - got, BT_MIN(p->len, p->cap - p->head));
		memcpy((char *)buf + got, p->buf + p->head, chunk);
		p->head = (p->head + chunk) % p->cap;
		p->len -= chunk;
		got += chunk;
	}
	resume = to_resume(p);
	pthread_mutex_unlock(&p->mu);
	if (resume)
		img_xfer_resume(resume);
	return (ssize_t)got;
}

void image_pipe_detach(image_pipe *p)
{
	img_xfer *resume;

	pthread_mutex_lock(&p->mu);
	p->detached = true;
	p->len = 0;
	resume = to_resume(p);
	pthread_mutex_unlock(&p->mu);
	if (resume)
		img_xfer_resume(resume);
}
