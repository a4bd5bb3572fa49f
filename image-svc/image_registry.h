/*
 * image_registry — the OCI distribution (registry) client of the image
 * service, on the libcurl multi interface.
 *
 * Threading.  One img_registry per daemon owns one transfer thread, which
 * runs a single curl multi handle for every transfer of the daemon: all
 * transfers share its connection cache (keep-alive, HTTP/2 multiplexing
 * where the server offers it, at most max_host_connections connections per
 * host; more transfers wait inside curl for a free connection) and its DNS
 * cache.  Transfers are submitted from any thread; their callbacks
 * (on_data, on_read, on_done) run on the transfer thread and must not
 * block: to apply backpressure a callback returns IMG_XFER_PAUSE and the
 * consumer calls img_xfer_resume() (any thread) when it can take more.
 * The synchronous helpers (img_resolve, img_fetch_*, img_blob_exists,
 * img_push_*) submit a transfer and wait for it; they block the calling
 * thread and must never be called from a callback (they assert so).
 *
 * Behaviour of every request (REFERENCE §5):
 *   - endpoints come from image_hosts (mirrors in file order, then the
 *     server), filtered by capability: resolve, pull (blobs, manifests by
 *     digest) or push.  A 404 or any failure on a mirror moves on to the
 *     next endpoint; the error reported is the most telling one seen (a
 *     non-404 over a 404).  Requests to a mirror carry ?ns=<domain>.
 *   - 401: the WWW-Authenticate challenge is answered.  Bearer: a token is
 *     fetched from the realm (POST grant_type=password with credentials, or
 *     refresh_token with an identity token, falling back to GET with basic
 *     auth on 400/401/404/405; anonymous GET realm?service=&scope=), read
 *     from "token" or "access_token", and cached per host, scope set and
 *     credentials (a token is never shared between users) until
 *     expires_in; one fetch per key at a time, other requests wait for it.  Basic: the credentials go with every later request to that
 *     host.  A second 401 after fresh credentials is PERMISSION_DENIED
 *     ("pull access denied for REPO …"); a 401 with no credentials to offer
 *     to a Basic challenge is UNAUTHENTICATED.  Scopes are
 *     repository:<repo>:pull, or pull,push for a push repo, plus the source
 *     repo's pull scope for a cross-repository mount.
 *   - 429, 5xx (500, 502, 503, 504, 408) and connection errors (refused,
 *     reset, timeouts, stalls below the low-speed limit) are retried with
 *     exponential backoff (retry_base_ms doubled, capped, with jitter),
 *     honouring Retry-After (seconds or an HTTP date, capped by
 *     max_retry_after_s), at most max_retries times per endpoint; on a
 *     mirror, the next endpoint is tried at once instead.  A blob whose
 *     connection broke after some progress resumes at once with a Range
 *     request.  The final error names the status ("HTTP 503 Service
 *     Unavailable (the registry's message) (5 attempts)"); the answer to a
 *     HEAD has no body, so no registry message.
 *   - a TLS handshake failure on an endpoint with http_fallback retries it
 *     over plain HTTP (localhost registries, http:// with TLS settings).
 *   - every response is bounded: manifests and indexes 4 MiB, configs
 *     8 MiB (or the caller's bound), blobs the descriptor's size, error
 *     bodies 64 KiB, token answers 1 MiB.
 *   - statuses map to codes: 404 NOT_FOUND, 401 UNAUTHENTICATED or
 *     PERMISSION_DENIED, 403 PERMISSION_DENIED, 429 and size bounds
 *     RESOURCE_EXHAUSTED, 5xx/timeouts/connection errors UNAVAILABLE,
 *     400/malformed answers INVALID_ARGUMENT, 405/501 UNIMPLEMENTED,
 *     416 OUT_OF_RANGE, digest mismatch or truncation DATA_LOSS, cancel
 *     CANCELLED.  Messages name the host, the repository and what happened,
 *     with the registry's own error message when it sent one.
 */
#ifndef IMAGE_REGISTRY_H
#define IMAGE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_digest.h"
#include "bt_err.h"
#include "image_hosts.h"
#include "image_ref.h"

#define IMG_MAX_MANIFEST (4 << 20)
#define IMG_MAX_CONFIG (8 << 20)
#define IMG_MEDIA_TYPE_MAX 256

/* Returned by on_data/on_read: nothing was taken, the transfer pauses until img_xfer_resume(). */
#define IMG_XFER_PAUSE 1

typedef struct img_registry img_registry;
typedef struct img_repo img_repo;
typedef struct img_xfer img_xfer;

typedef struct img_registry_opts {
	const char *hosts_dir;          /* configuration root, e.g. "/etc/berth/certs.d"; NULL: defaults only */
	const char *docker_config;      /* Docker config.json; NULL: $DOCKER_CONFIG or ~/.docker; "": none */
	const img_cred *creds;          /* berth's own credentials (copied), looked up before Docker's */
	size_t n_creds;
	int max_host_connections;       /* per host; 0: 6 */
	int max_total_connections;      /* 0: 64 */
	int connect_timeout_ms;         /* 0: 10000 (a hosts.toml dial_timeout wins) */
	int low_speed_limit;            /* bytes/s below which ... 0: 1024 */
	int low_speed_time_s;           /* ... for this long, or silent this long, a transfer is cut (and
					 * resumed); 0: 30 */
	int request_timeout_ms;         /* whole-request bound for small requests (HEAD, manifests, tokens,
					 * pushes of manifests); 0: 120000 */
	int max_retries;                /* per endpoint; 0: 4; negative: none */
	int retry_base_ms;              /* 0: 500 */
	int retry_max_ms;               /* 0: 10000 */
	int max_retry_after_s;          /* Retry-After honoured up to this; 0: 60 */
	const char *user_agent;         /* 0: "berth/<version>" */
	const char *const *resolve;     /* static name resolution, curl's "host:port:address" entries,
					 * NULL-terminated (air-gapped setups, tests); copied */
} img_registry_opts;

/* Starts the transfer thread.  NULL with e (INTERNAL) if curl or the thread cannot start.  Call from
 * the daemon's main thread; caller owns the result. */
img_registry *img_registry_new(const img_registry_opts *o, bt_err *e);
/* Cancels every transfer (their on_done run with CANCELLED), stops the thread, frees, NULLs *r.
 * Repositories and transfer handles still held by callers stay valid to free afterwards. */
void img_registry_free(img_registry **r);

/* ---- repositories ------------------------------------------------------------------------- */

typedef struct img_repo_opts {
	bool plain_http;                /* plain HTTP for the default server (ctr --plain-http) */
	bool push;                      /* tokens with pull,push scope; endpoints with the push capability */
	const img_cred *cred;           /* credentials for this repository only (ctr --user), sent to whichever
					 * host asks (its host field is ignored); copied; win over every other
					 * source.  NULL: berth's list, then Docker's config.json */
} img_repo_opts;

/* A repository to talk to: the reference's domain and path, with its endpoints (image_hosts) and
 * credentials read now, on the calling thread (the files are read again on the next open, so
 * edits apply to later pulls).  o may be NULL.  Caller owns the result; transfers keep their own
 * reference, so it may be freed while they run.  Thread-safe: one repo serves any number of
 * concurrent transfers from any threads. */
img_repo *img_repo_open(img_registry *r, const img_ref *ref, const img_repo_opts *o, bt_err *e);
void img_repo_free(img_repo **p);
/* The endpoints in use (borrowed, immutable). */
const img_hosts *img_repo_hosts(const img_repo *p);

/* ---- asynchronous blob transfers ---------------------------------------------------------- */

/* Data of a blob, in order, from offset on.  Runs on the transfer thread; must not block.
 * Returns 0 when all n bytes were taken, IMG_XFER_PAUSE when none were (the same bytes come again
 * after img_xfer_resume()), or -1 with e set to abort the transfer with that error. */
typedef int (*img_data_fn)(void *arg, const void *p, size_t n, bt_err *e);
/* Called exactly once per transfer, on the transfer thread, when it ends: e->code is BT_OK on
 * success.  e is borrowed for the call.  The transfer handle may be freed from here. */
typedef void (*img_done_fn)(void *arg, const bt_err *e);

typedef struct img_fetch_opts {
	const char *digest;             /* required: "sha256:…" */
	int64_t size;                   /* the descriptor's size: expected length and bound; < 0 unknown
					 * (then bounded by max_size) */
	int64_t max_size;               /* bound when size < 0; 0: no bound */
	int64_t offset;                 /* resume: first byte wanted (Range: bytes=N-); 0 from the start */
	/* Verification.  From offset 0 the transfer hashes the whole blob and fails with DATA_LOSS on a
	 * mismatch.  With offset > 0 it can only do so if given the hash state of the bytes before
	 * offset: digest_state, taken over (freed by the transfer), must have been fed exactly the first
	 * offset bytes.  Without it the caller verifies (the content store does on commit). */
	bt_digest *digest_state;
	const char *const *urls;        /* foreign-layer URLs to try first (desc.urls), NULL-terminated */
	img_data_fn on_data;            /* required */
	img_done_fn on_done;            /* optional (img_xfer_wait works either way) */
	void *arg;
} img_fetch_opts;

/* Starts GET /v2/<repo>/blobs/<digest>.  *out is set before the transfer can start, so callbacks may
 * read it from the caller's structure.  The bytes reach on_data exactly once and in order even
 * when the connection breaks: an interrupted transfer resumes with a Range request from the next
 * byte needed (a 206 must start there; a 200 is skipped up to it).  More bytes than size is
 * RESOURCE_EXHAUSTED, fewer DATA_LOSS.  Caller owns *out (img_xfer_free).  Any thread except
 * the transfer thread. */
int img_fetch_blob(img_repo *p, const img_fetch_opts *o, img_xfer **out, bt_err *e);

/* Reads upload data: fills buf with up to len bytes of the blob starting at off into *got (0 at
 * the end).  Runs on the transfer thread; must not block: returns 0, IMG_XFER_PAUSE (resume with
 * img_xfer_resume()), or -1 with e set.  off restarts at 0 (or a chunk's start) when an upload is
 * retried, so the source must be able to read again. */
typedef int (*img_read_fn)(void *arg, int64_t off, void *buf, size_t len, size_t *got, bt_err *e);

typedef struct img_push_opts {
	const char *digest;             /* required */
	int64_t size;                   /* required, exact */
	const char *mount_from;         /* a repository path on the same registry that holds the blob
					 * (from distribution.source labels): tried as a cross-repo mount first */
	const void *data;               /* the whole blob in memory (borrowed until on_done) … */
	img_read_fn on_read;            /* … or a source read through this callback */
	int64_t chunk_size;             /* 0: one PUT with the whole blob; > 0: PATCH chunks of this size,
					 * then PUT ?digest= */
	img_done_fn on_done;            /* optional */
	void *arg;
} img_push_opts;

/* Starts a blob upload: POST /v2/<repo>/blobs/uploads/ (with ?mount=<digest>&from=<repo> first when
 * mount_from is set; 201 means mounted and done), then the data, then PUT <location>?digest=.
 * The repo must have been opened with push.  Same contract for *out as img_fetch_blob. */
int img_push_blob_start(img_repo *p, const img_push_opts *o, img_xfer **out, bt_err *e);

/* Thread-safe, any thread: resumes a paused transfer (no effect otherwise; a resume that arrives
 * just before the pause it answers is not lost). */
void img_xfer_resume(img_xfer *x);
/* Thread-safe: ends the transfer with CANCELLED (on_done runs) unless it already ended. */
void img_xfer_cancel(img_xfer *x);
/* Blocks until the transfer ended; returns 0 or -1 with its error.  Not on the transfer thread. */
int img_xfer_wait(img_xfer *x, bt_err *e);
/* Bytes delivered to on_data (fetch) or accepted by the registry (push) so far; any thread. */
int64_t img_xfer_progress(const img_xfer *x);
/* After the transfer ended: whether a push was done by a cross-repo mount. */
bool img_xfer_mounted(const img_xfer *x);
/* Drops the caller's handle; the transfer itself goes on (cancel it first to stop it) and on_done
 * still runs.  NULLs *x; NULL is fine. */
void img_xfer_free(img_xfer **x);

/* ---- synchronous helpers (block the calling thread; never from a callback) ------------------ */

typedef struct img_resolved {
	char media_type[IMG_MEDIA_TYPE_MAX]; /* Content-Type of the manifest or index */
	char digest[BT_DIGEST_STR_LEN];
	int64_t size;
} img_resolved;

/* HEAD /v2/<repo>/manifests/<object> (object: a tag or digest; NULL: the reference's own) with Accept:
 * Docker manifest v2, Docker manifest list v2, OCI manifest, OCI index, star-slash-star.  The digest
 * comes from Docker-Content-Digest, else a GET (bounded, hashed); the size from Content-Length.  A
 * HEAD refused with 405 is retried as GET.  Schema 1 manifests are UNIMPLEMENTED; larger than 4 MiB
 * RESOURCE_EXHAUSTED; when object is a digest, a different Docker-Content-Digest is DATA_LOSS. */
int img_resolve(img_repo *p, const char *object, img_resolved *out, bt_err *e);

/* GET /v2/<repo>/manifests/<digest> into memory (max 0: 4 MiB), digest verified.  *data (NUL-
 * terminated) owned by the caller; media_type (optional) receives the Content-Type. */
int img_fetch_manifest(img_repo *p, const char *digest, size_t max, char **data, size_t *len,
		       char media_type[IMG_MEDIA_TYPE_MAX], bt_err *e);

/* GET /v2/<repo>/blobs/<digest> into memory (max 0: 8 MiB; a config), digest verified. */
int img_fetch_blob_mem(img_repo *p, const char *digest, size_t max, char **data, size_t *len, bt_err *e);

/* HEAD /v2/<repo>/blobs/<digest>: 1 when the registry has it (*size, optional, from Content-Length),
 * 0 when not, -1 on error. */
int img_blob_exists(img_repo *p, const char *digest, int64_t *size, bt_err *e);

/* img_push_blob_start + wait.  *mounted (optional) tells whether a cross-repo mount did it.  The
 * source (on_read) must not pause. */
int img_push_blob(img_repo *p, const img_push_opts *o, bool *mounted, bt_err *e);

/* PUT /v2/<repo>/manifests/<tag or digest> with Content-Type media_type.  The digest the registry
 * reports (Docker-Content-Digest) must match the data's; digest_out (optional) receives it. */
int img_push_manifest(img_repo *p, const char *tag_or_digest, const char *media_type, const void *data,
		      size_t len, char digest_out[BT_DIGEST_STR_LEN], bt_err *e);

/* The code for an HTTP status as above (200-299 → BT_OK). */
int img_http_code(long status);

#endif
