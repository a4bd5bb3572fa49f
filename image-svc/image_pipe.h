/*
 * image_pipe — a bounded byte pipe between a registry transfer (producer,
 * on the transfer thread, never blocking: a full pipe makes it pause) and a
 * consumer thread (the content writer, or the layer applier) that blocks.
 * When the consumer frees room it resumes the paused transfer.  A consumer
 * that no longer wants the bytes detaches: the producer then drops them.
 */
#ifndef IMAGE_PIPE_H
#define IMAGE_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bt_err.h"

typedef struct img_xfer img_xfer;
typedef struct image_pipe image_pipe;

image_pipe *image_pipe_new(size_t cap);
void image_pipe_free(image_pipe **p);
/* The transfer to resume when room frees up (set before data flows). */
void image_pipe_set_xfer(image_pipe *p, img_xfer *x);

/* Producer: room for n bytes? (false: the caller pauses; the pipe resumes it later). */
bool image_pipe_room(image_pipe *p, size_t n);
/* Producer: appends n bytes (image_pipe_room said yes, or the pipe is detached). */
void image_pipe_put(image_pipe *p, const void *data, size_t n);
/* Producer: no more data; e NULL or OK means the end of the stream, else the error consumers see. */
void image_pipe_close(image_pipe *p, const bt_err *e);

/* Consumer: up to len bytes; 0 at the end; -1 with the producer's error. Blocks. */
ssize_t image_pipe_read(image_pipe *p, void *buf, size_t len, bt_err *e);
/* Consumer: will read no more; the producer's further bytes are dropped. */
void image_pipe_detach(image_pipe *p);

#endif
