/*
 * image_decompress — streaming decompression of image layers: gzip through
 * isa-l's igzip (concatenated members and trailing zero padding accepted, as
 * `gzip -d` does), zstd through libzstd's streaming API (concatenated and
 * skippable frames), and plain bytes passed through; and the layer stream
 * built on it (reader → digest → decompress → digest, optionally on a worker
 * thread).  Every byte is untrusted: corrupt or truncated input is an
 * INVALID_ARGUMENT error, never an abort.
 */
#ifndef IMAGE_DECOMPRESS_H
#define IMAGE_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bt_digest.h"
#include "bt_err.h"

typedef enum { IMG_COMP_NONE, IMG_COMP_GZIP, IMG_COMP_ZSTD } img_comp;

/* Chosen by the stream's magic bytes (1f 8b gzip, 28 b5 2f fd zstd, else plain).
 * Needs the first 4 bytes of the stream; fewer means plain. */
img_comp img_comp_detect(const void *p, size_t n);

/* "gzip", "zstd" or "none". */
const char *img_comp_name(img_comp c);

/* Streaming: feed compressed bytes, get plain bytes. */
typedef struct img_decomp img_decomp;

/* A decompressor for c; caller frees with img_decomp_free.  Aborts on OOM. */
img_decomp *img_decomp_new(img_comp c, bt_err *e);

/*
 * Consumes up to in_len bytes of in, produces up to out_cap bytes into out,
 * and reports how much of each (*in_used, *out_len).  in_len == 0 means the
 * input has ended: the call then flushes what is left (call again while it
 * fills out) and sets *eof once the whole stream has been produced.  A call
 * with input may consume only part of it (out was full): call again with the
 * rest.  Corrupt input → INVALID_ARGUMENT "corrupt gzip stream: …"; input
 * that ends inside a member or frame → INVALID_ARGUMENT "… truncated".
 * After an error the decompressor only repeats it.
 */
int img_decomp_run(img_decomp *d, const void *in, size_t in_len, size_t *in_used, void *out, size_t out_cap,
		   size_t *out_len, bool *eof, bt_err *e);

/* Frees d and sets *d to NULL; NULL is fine. */
void img_decomp_free(img_decomp **d);

#define _cleanup_decomp_ __attribute__((cleanup(img_decomp_free)))

/*
 * A layer stream: pulls compressed bytes through a reader, chooses the
 * decompressor by the first bytes, and hands out plain chunks while hashing
 * both the bytes read (compressed digest) and the bytes produced (diffID).
 * Threaded, decompression and hashing run on a worker thread while the
 * caller consumes chunks; the reader and progress callbacks are always called
 * on the caller's thread.
 */
typedef struct img_stream img_stream;

typedef struct img_stream_opts {
	/* Returns bytes read (0 at the end), or -1 with e set. */
	ssize_t (*read)(void *arg, void *buf, size_t len, bt_err *e);
	void *arg;
	/* Optional: compressed bytes read so far. */
	void (*progress)(void *arg, int64_t consumed);
	int64_t max_total; /* bound on plain bytes (> 0) */
	bool threaded;
} img_stream_opts;

/* Reads the first bytes (to detect the compression) and starts the stream; caller frees. */
img_stream *img_stream_new(const img_stream_opts *o, bt_err *e);
img_comp img_stream_comp(const img_stream *s);
/* The next chunk of plain bytes in *buf (valid until the next call): its length, 0 at the end, -1 on error. */
ssize_t img_stream_next(img_stream *s, const void **buf, bt_err *e);
/* After img_stream_next returned 0: the digests ("sha256:…") and sizes of the bytes read and produced. */
void img_stream_result(const img_stream *s, char compressed[BT_DIGEST_STR_LEN], int64_t *compressed_size,
		       char plain[BT_DIGEST_STR_LEN], int64_t *plain_size);
/* Stops the worker (if any) and frees s; sets *s to NULL. */
void img_stream_free(img_stream **s);

#define _cleanup_stream_ __attribute__((cleanup(img_stream_free)))

#endif
