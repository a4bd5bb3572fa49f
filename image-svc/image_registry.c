/*
 * image_registry — the registry client: one transfer thread running one
 * curl multi handle for every transfer of the daemon.
 *
 * A transfer (img_xfer) is a small state machine run on the transfer
 * thread: it issues one HTTP request at a time to the endpoint it is on
 * (x_issue), and when the request ends (x_complete) it moves on: next phase
 * (HEAD → GET, POST → PUT), retry after a backoff (a timer), a token fetch
 * (another transfer it waits for), the next endpoint, or the end
 * (x_finish, which runs on_done).  Other threads only ever touch a
 * transfer through the command queue (start, resume, cancel), its atomic
 * progress counter and its done/err pair under its mutex.
 */
#define _GNU_SOURCE
#include "image_registry.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "bt_log.h"
#include "bt_oci.h"
#include "bt_util.h"

#define ERR_BODY_MAX (64 << 10)
#define TOKEN_MAX (1 << 20)
#define CA_FILE_MAX (4 << 20)
#define HDR_VAL_MAX 8192
#define HDR_TOTAL_MAX (256 << 10) /* all header lines of one request, redirects and 1xx answers included */
#define MAX_RESUMES 100     /* resumes of one blob that each made progress */
#define MAX_AUTH_ROUNDS 3   /* 401s answered within one transfer */
#define MAX_TOKENS_PER_HOST 64
#define TOKEN_MARGIN_MS 5000

static const char ACCEPT_MANIFESTS[] =
	"Accept: " MT_DOCKER_MANIFEST ", " MT_DOCKER_LIST ", " MT_OCI_MANIFEST ", " MT_OCI_INDEX ", */*";

enum xkind { XK_RESOLVE, XK_MANIFEST, XK_BLOB_MEM, XK_BLOB, XK_BLOB_HEAD, XK_PUSH_BLOB, XK_PUSH_MANIFEST, XK_TOKEN };
enum xstate { XS_NEW, XS_RUNNING, XS_TIMER, XS_AUTHWAIT, XS_DONE };
enum xphase { PH_HEAD, PH_GET, PH_MOUNT, PH_POST, PH_PUT, PH_PATCH, PH_FINAL, PH_TOKEN_POST, PH_TOKEN_GET };
enum xsink { SINK_UNSET, SINK_MEM, SINK_STREAM, SINK_ERR };

struct tok {
	char *scopes;           /* the key: sorted scopes joined by ' ', then whose credentials (x_tok_key) */
	char *token;            /* NULL while being fetched */
	int64_t expires_ms;     /* bt_mono_ms() */
	img_xfer *fetcher;      /* the token transfer while fetching */
	img_xfer *waiters;      /* transfers waiting for it, through wait_next */
	struct tok *next;
};

struct auth_host {
	char *host;
	img_auth_scheme scheme;
	char *realm, *service;
	struct tok *toks;
	size_t n_toks;
	struct auth_host *next;
};

struct cmd {
	enum { CMD_START, CMD_RESUME, CMD_CANCEL } op;
	img_xfer *x;            /* holds a reference */
	struct cmd *next;
};

struct img_registry {
	char *hosts_dir, *docker_config, *user_agent;
	img_creds creds;
	struct curl_slist *resolve;
	long max_host, max_total, connect_ms, low_limit, low_time, request_ms;
	int max_retries, retry_base_ms, retry_max_ms, max_retry_after_s;
	char *system_ca;        /* the default CA bundle, read once, for CAs added by hosts.toml */
	size_t system_ca_len;

	CURLM *multi;
	pthread_t thread;
	pthread_t thread_id;    /* for the asserts against blocking calls on it */
	pthread_mutex_t mu;     /* guards cmds and stopping */
	struct cmd *cmd_head, *cmd_tail;
	bool stopping;

	/* the transfer thread's own */
	img_xfer *active;       /* every started, unfinished transfer */
	img_xfer *timers;       /* waiting for a retry, through timer_next */
	struct auth_host *auth;
	unsigned rng;
};

struct img_repo {
	atomic_int refs;
	img_registry *reg;
	img_ref ref;
	char name[IMG_REF_STR_MAX];     /* "domain/path" for messages */
	img_hosts hosts;
	img_creds creds;                /* from Docker's config.json, after reg->creds */
	img_creds user;                 /* img_repo_opts.cred: before everything, for any host */
	bool push;
	char **ca_blob;                 /* per endpoint: system CAs + hosts.toml CAs, or NULL */
	size_t *ca_len;
	bool *use_http;                 /* per endpoint, transfer thread: learnt plain HTTP fallback */
};

struct resp {
	long status;
	char *content_type, *digest, *location, *www_auth, *content_range;
	int64_t content_length;         /* -1 when absent */
	int64_t retry_after_ms;         /* -1 when absent */
};

struct img_xfer {
	atomic_int refs;
	img_registry *reg;
	img_repo *repo;                 /* NULL for token transfers */
	enum xkind kind;
	unsigned caps;
	char *object;                   /* tag or digest */
	char what[160];                 /* "resolve latest", "blob sha256:…", for messages */

	img_data_fn on_data;
	img_read_fn on_read;
	img_done_fn on_done;
	void *arg;

	int64_t size, max;
	bt_digest *dg;                  /* verification of streamed blobs, or NULL */
	char **urls;                    /* foreign URLs, tried first */
	size_t url_i;
	const void *data;               /* push source in memory, or manifest body */
	size_t data_len;
	char *media_type;               /* push manifest */
	char *mount_from;
	int64_t chunk;

	/* token transfers */
	struct auth_host *ah;
	struct tok *tok;
	char *tk_user, *tk_pass, *tk_idt;
	char **tk_scopes;

	/* state, transfer thread only */
	enum xstate state;
	enum xphase phase;
	char *abs_url;                  /* token and foreign URLs */
	size_t ep;                      /* endpoint index */
	bool on_foreign;
	int attempts;                   /* retries on the current endpoint */
	int resumes;
	int auth_rounds;
	bool had_401;                   /* answered a 401 since the last other answer */
	char *chal_scope;
	int64_t due_ms;
	img_xfer *timer_next, *wait_next, *a_prev, *a_next;
	struct tok *waiting_on;

	CURL *h;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
	struct resp r;
	enum xsink sink;
	bt_buf body;
	int64_t pos;                    /* stream: absolute offset of the next byte received */
	int64_t delivered;              /* stream: absolute offset of the next byte to deliver */
	int64_t delivered_at_issue;
	int64_t send_base, send_pos, send_end; /* upload: the range of the blob this request sends */
	char *upload_url;
	bool paused;
	bool stalled;                   /* cut by on_progress: nothing moved for low_time */
	size_t hdr_bytes;               /* header bytes received by this request */
	int64_t moved, moved_ms;        /* bytes moved by this request and when that last changed */
	bool aborted;
	bt_err abort_err;

	bt_err best;                    /* the most telling failure across endpoints */
	int best_prio;

	img_resolved res;
	bool mounted, exists;
	atomic_int_least64_t progress;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	bt_err err;
};

static void x_issue(img_xfer *x);
static void x_finish(img_xfer *x, const bt_err *err);

/* ---- small helpers ------------------------------------------------------------------------- */

int img_http_code(long status)
{
	if (status >= 200 && status < 300)
		return BT_OK;
	switch (status) {
	case 400:
		return BT_INVALID_ARGUMENT;
	case 401:
		return BT_UNAUTHENTICATED;
	case 403:
		return BT_PERMISSION_DENIED;
	case 404:
		return BT_NOT_FOUND;
	case 405:
	case 501:
		return BT_UNIMPLEMENTED;
	case 408:
	case 504:
		return BT_UNAVAILABLE;
	case 409:
		return BT_FAILED_PRECONDITION;
	case 413:
	case 429:
		return BT_RESOURCE_EXHAUSTED;
	case 416:
		return BT_OUT_OF_RANGE;
	default:
		if (status >= 500)
			return BT_UNAVAILABLE;
		return status >= 400 ? BT_FAILED_PRECONDITION : BT_UNKNOWN;
	}
}

static bool retryable_status(long st)
{
	return st == 408 || st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

static bool retryable_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static void strv_free_null(char ***v)
{
	bt_strv_free(*v);
	*v = NULL;
}

static void resp_clear(struct resp *r)
{
	free(r->content_type);
	free(r->digest);
	free(r->location);
	free(r->www_auth);
	free(r->content_range);
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->retry_after_ms = -1;
}

/* The registry's own explanation from an error body ({"errors":[{"code","message"}]}), or "". */
static void registry_message(const bt_buf *b, char *out, size_t cap)
{
	json_t *root, *errs;
	size_t o = 0;

	out[0] = '\0';
	if (!b->len)
		return;
	root = json_loadb(b->data, b->len, 0, NULL);
	errs = json_object_get(root, "errors");
	for (size_t i = 0; i < json_array_size(errs) && i < 3 && o + 4 < cap; i++) {
		json_t *it = json_array_get(errs, i);
		const char *code = json_string_value(json_object_get(it, "code"));
		const char *msg = json_string_value(json_object_get(it, "message"));
		o += (size_t)snprintf(out + o, cap - o, "%s%s%s%s", i ? "; " : "", code ? code : "",
				      code && msg ? ": " : "", msg ? msg : "");
	}
	json_decref(root);
	/* keep it printable and short */
	for (char *c = out; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
}

static const char *x_host(const img_xfer *x)
{
	if (x->abs_url) {
		const char *p = strstr(x->abs_url, "://");
		static __thread char host[256];
		p = p ? p + 3 : x->abs_url;
		snprintf(host, sizeof(host), "%.*s", (int)strcspn(p, "/?#"), p);
		return host;
	}
	return x->repo->hosts.v[x->ep].host;
}

/* Sets err to "<repo>: <what>: <host>: <fmt…>" with code. */
static void x_err(const img_xfer *x, bt_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void x_err(const img_xfer *x, bt_err *err, int code, const char *fmt, ...)
{
	char msg[BT_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->repo)
		bt_err_set(err, code, "%s: %s: %s: %s", x->repo->name, x->what, x_host(x), msg);
	else
		bt_err_set(err, code, "%s: %s: %s", x->what, x_host(x), msg);
}

/* ---- references and lifetime -------------------------------------------------------------- */

static void repo_unref(img_repo *p)
{
	if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	for (size_t i = 0; i < p->hosts.n; i++)
		free(p->ca_blob[i]);
	free(p->ca_blob);
	free(p->ca_len);
	free(p->use_http);
	img_hosts_clear(&p->hosts);
	img_creds_clear(&p->creds);
	img_creds_clear(&p->user);
	free(p);
}

void img_repo_free(img_repo **p)
{
	repo_unref(*p);
	*p = NULL;
}

const img_hosts *img_repo_hosts(const img_repo *p)
{
	return &p->hosts;
}

static img_xfer *x_ref(img_xfer *x)
{
	atomic_fetch_add(&x->refs, 1);
	return x;
}

static void x_unref(img_xfer *x)
{
	if (!x || atomic_fetch_sub(&x->refs, 1) != 1)
		return;
	if (x->h)
		curl_easy_cleanup(x->h);
	curl_slist_free_all(x->hdrs);
	resp_clear(&x->r);
	bt_buf_free(&x->body);
	bt_digest_free(&x->dg);
	strv_free_null(&x->urls);
	strv_free_null(&x->tk_scopes);
	free(x->object);
	free(x->media_type);
	free(x->mount_from);
	free(x->abs_url);
	free(x->upload_url);
	free(x->chal_scope);
	free(x->tk_user);
	if (x->tk_pass)
		explicit_bzero(x->tk_pass, strlen(x->tk_pass));
	free(x->tk_pass);
	free(x->tk_idt);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	repo_unref(x->repo);
	free(x);
}

void img_xfer_free(img_xfer **x)
{
	x_unref(*x);
	*x = NULL;
}

static img_xfer *x_new(img_registry *reg, img_repo *repo, enum xkind kind)
{
	img_xfer *x = bt_xzalloc(sizeof(*x));

	atomic_init(&x->refs, 1);
	atomic_init(&x->progress, 0);
	x->reg = reg;
	if (repo) {
		atomic_fetch_add(&repo->refs, 1);
		x->repo = repo;
	}
	x->kind = kind;
	x->size = -1;
	resp_clear(&x->r);
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	return x;
}

/* ---- commands from other threads ---------------------------------------------------------- */

static int submit(img_registry *r, img_xfer *x, int op)
{
	struct cmd *c = bt_xzalloc(sizeof(*c));
	bool stopping;

	c->op = op;
	c->x = x_ref(x);
	pthread_mutex_lock(&r->mu);
	stopping = r->stopping;
	if (!stopping) {
		if (r->cmd_tail)
			r->cmd_tail->next = c;
		else
			r->cmd_head = c;
		r->cmd_tail = c;
	}
	pthread_mutex_unlock(&r->mu);
	if (stopping) {
		x_unref(c->x);
		free(c);
		return -1;
	}
	curl_multi_wakeup(r->multi);
	return 0;
}

void img_xfer_resume(img_xfer *x)
{
	submit(x->reg, x, CMD_RESUME);
}

void img_xfer_cancel(img_xfer *x)
{
	submit(x->reg, x, CMD_CANCEL);
}

int img_xfer_wait(img_xfer *x, bt_err *e)
{
	int rc;

	assert(!pthread_equal(pthread_self(), x->reg->thread_id));
	pthread_mutex_lock(&x->mu);
	while (!x->done)
		pthread_cond_wait(&x->cv, &x->mu);
	rc = x->err.code == BT_OK ? 0 : -1;
	if (rc < 0 && e)
		*e = x->err;
	pthread_mutex_unlock(&x->mu);
	return rc;
}

int64_t img_xfer_progress(const img_xfer *x)
{
	return atomic_load(&((img_xfer *)x)->progress);
}

bool img_xfer_mounted(const img_xfer *x)
{
	return x->mounted;
}

/* ---- auth cache (transfer thread) --------------------------------------------------------- */

static struct auth_host *auth_get(img_registry *r, const char *host, bool create)
{
	struct auth_host *a;

	for (a = r->auth; a; a = a->next)
		if (strcasecmp(a->host, host) == 0)
			return a;
	if (!create)
		return NULL;
	a = bt_xzalloc(sizeof(*a));
	a->host = bt_xstrdup(host);
	a->next = r->auth;
	r->auth = a;
	return a;
}

static void tok_free(struct tok *t)
{
	if (t->token)
		explicit_bzero(t->token, strlen(t->token));
	free(t->token);
	free(t->scopes);
	free(t);
}

static void tok_unlink(struct auth_host *a, struct tok *t)
{
	for (struct tok **pp = &a->toks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			a->n_toks--;
			return;
		}
}

/* Drops expired tokens (and, over the bound, the oldest idle ones). */
static void auth_prune(struct auth_host *a)
{
	int64_t now = bt_mono_ms();
	struct tok **pp = &a->toks;

	while (*pp) {
		struct tok *t = *pp;
		bool idle = !t->fetcher && !t->waiters;
		if (idle && (t->expires_ms <= now || a->n_toks > MAX_TOKENS_PER_HOST)) {
			*pp = t->next;
			a->n_toks--;
			tok_free(t);
			continue;
		}
		pp = &t->next;
	}
}

static void auth_free_all(img_registry *r)
{
	while (r->auth) {
		struct auth_host *a = r->auth;
		r->auth = a->next;
		while (a->toks) {
			struct tok *t = a->toks;
			a->toks = t->next;
			tok_free(t);
		}
		free(a->host);
		free(a->realm);
		free(a->service);
		free(a);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The scopes a request needs, sorted and unique. */
static char **x_scopes(const img_xfer *x)
{
	char **v = NULL;
	_cleanup_free_ char *own = bt_xasprintf("repository:%s:%s", x->repo->ref.path, x->repo->push ? "pull,push" : "pull");
	size_t n, o = 0;

	bt_strv_push(&v, own);
	if (x->mount_from && x->phase == PH_MOUNT) {
		_cleanup_free_ char *m = bt_xasprintf("repository:%s:pull", x->mount_from);
		bt_strv_push(&v, m);
	}
	if (x->chal_scope) {
		_cleanup_free_ char *copy = bt_xstrdup(x->chal_scope);
		char *save = NULL;
		for (char *s = strtok_r(copy, " ", &save); s; s = strtok_r(NULL, " ", &save))
			bt_strv_push(&v, s);
	}
	n = bt_strv_len(v);
	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (o > 0 && strcmp(v[o - 1], v[i]) == 0) {
			free(v[i]);
			continue;
		}
		v[o++] = v[i];
	}
	v[o] = NULL;
	return v;
}

static char *join(char **v, const char *sep)
{
	bt_buf b = { 0 };

	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			bt_buf_append(&b, sep, strlen(sep));
		bt_buf_append(&b, v[i], strlen(v[i]));
	}
	return b.data ? bt_buf_steal(&b) : bt_xstrdup("");
}

/* The credentials for the endpoint a transfer is on. */
static const img_cred *x_cred(const img_xfer *x)
{
	const img_endpoint *ep = &x->repo->hosts.v[x->ep];
	const img_cred *c;

	if (x->repo->user.n)
		return &x->repo->user.v[0];
	c = img_creds_find(&x->reg->creds, ep->host);

	if (!c)
		c = img_creds_find(&x->repo->creds, ep->host);
	/* hosts.toml may name another server for the domain: the domain's credentials go to it */
	if (!c && ep->is_server) {
		c = img_creds_find(&x->reg->creds, x->repo->ref.domain);
		if (!c)
			c = img_creds_find(&x->repo->creds, x->repo->ref.domain);
	}
	return c;
}

/* The token cache key of a transfer's request: its scopes and a fingerprint of the credentials
 * the token would be fetched with, so that a token got with one user's credentials never serves
 * another's request (or an anonymous one) for the same scopes. */
static char *x_tok_key(const img_xfer *x)
{
	_cleanup_strv_ char **scopes = x_scopes(x);
	_cleanup_free_ char *sc = join(scopes, " ");
	const img_cred *c = x_cred(x);
	char fp[BT_DIGEST_STR_LEN] = "anonymous";

	if (c && (c->username[0] || c->identity_token)) {
		bt_buf b = { 0 };
		const char *idt = c->identity_token ? c->identity_token : "";
		bt_buf_append(&b, c->username, strlen(c->username) + 1);
		bt_buf_append(&b, c->password, strlen(c->password) + 1);
		bt_buf_append(&b, idt, strlen(idt));
		bt_digest_buf(b.data, b.len, fp);
		explicit_bzero(b.data, b.len);
		bt_buf_free(&b);
	}
	return bt_xasprintf("%s|%s", sc, fp);
}

static char *url_escape(const char *s)
{
	char *t = curl_easy_escape(NULL, s, 0);
	char *r;

	if (!t)
		bt_oom();
	r = bt_xstrdup(t);
	curl_free(t);
	return r;
}

static void token_start(img_registry *r, img_xfer *waiter, struct auth_host *a, struct tok *t);

/* Adds Authorization for the transfer's request, or parks it while a token is fetched (returns 1). */
static int x_authorize(img_xfer *x)
{
	struct auth_host *a;
	const img_cred *c;

	if (x->abs_url || x->on_foreign)
		return 0;
	a = auth_get(x->reg, x->repo->hosts.v[x->ep].host, false);
	if (!a)
		return 0;
	c = x_cred(x);
	if (a->scheme == IMG_AUTH_BASIC) {
		if (c && c->username[0]) {
			_cleanup_free_ char *b = img_basic_auth(c->username, c->password);
			_cleanup_free_ char *h = bt_xasprintf("Authorization: %s", b);
			x->hdrs = curl_slist_append(x->hdrs, h);
			explicit_bzero(h, strlen(h));
		}
		return 0;
	}
	if (a->scheme == IMG_AUTH_BEARER) {
		_cleanup_free_ char *key = x_tok_key(x);
		struct tok *t;

		auth_prune(a);
		for (t = a->toks; t; t = t->next)
			if (strcmp(t->scopes, key) == 0)
				break;
		if (t && t->token && t->expires_ms > bt_mono_ms()) {
			_cleanup_free_ char *h = bt_xasprintf("Authorization: Bearer %s", t->token);
			x->hdrs = curl_slist_append(x->hdrs, h);
			return 0;
		}
		if (!t) {
			t = bt_xzalloc(sizeof(*t));
			t->scopes = BT_STEAL(key);
			t->next = a->toks;
			a->toks = t;
			a->n_toks++;
		}
		/* park: the token transfer reissues us */
		x->state = XS_AUTHWAIT;
		x->waiting_on = t;
		x->wait_next = t->waiters;
		t->waiters = x;
		if (!t->fetcher) {
			free(t->token);
			t->token = NULL;
			token_start(x->reg, x, a, t);
		}
		return 1;
	}
	return 0;
}

/* ---- timers ------------------------------------------------------------------------------ */

static void timer_add(img_xfer *x, int64_t delay_ms)
{
	x->state = XS_TIMER;
	x->due_ms = bt_mono_ms() + delay_ms;
	x->timer_next = x->reg->timers;
	x->reg->timers = x;
}

static void timer_remove(img_xfer *x)
{
	for (img_xfer **pp = &x->reg->timers; *pp; pp = &(*pp)->timer_next)
		if (*pp == x) {
			*pp = x->timer_next;
			return;
		}
}

static int64_t backoff_ms(img_xfer *x)
{
	img_registry *r = x->reg;
	int64_t d = r->retry_base_ms;

	for (int i = 1; i < x->attempts && d < r->retry_max_ms; i++)
		d *= 2;
	if (d > r->retry_max_ms)
		d = r->retry_max_ms;
	/* ±20 % jitter so parallel transfers do not come back in step */
	d = d * (80 + (int64_t)(rand_r(&r->rng) % 41)) / 100;
	if (x->r.retry_after_ms >= 0) {
		int64_t ra = BT_MIN(x->r.retry_after_ms, (int64_t)r->max_retry_after_s * 1000);
		d = BT_MAX(d, ra);
	}
	return d;
}

/* ---- endpoint iteration ------------------------------------------------------------------- */

static bool ep_usable(const img_xfer *x, size_t i)
{
	return (x->repo->hosts.v[i].caps & x->caps) != 0;
}

/* Whether no endpoint is left to try after this one (foreign URLs are followed by the endpoints). */
static bool x_last_endpoint(const img_xfer *x)
{
	if (x->on_foreign)
		return false;
	if (x->abs_url)
		return true;
	for (size_t i = x->ep + 1; i < x->repo->hosts.n; i++)
		if (ep_usable(x, i))
			return false;
	return true;
}

/* Keeps the most telling failure: anything over a 404, and the first of each. */
static void x_note(img_xfer *x, const bt_err *err)
{
	int prio = err->code == BT_NOT_FOUND ? 1 : 2;

	if (prio > x->best_prio) {
		x->best = *err;
		x->best_prio = prio;
	}
}

static void x_reset_for_endpoint(img_xfer *x)
{
	x->attempts = 0;
	x->auth_rounds = 0;
	x->had_401 = false;
	free(x->chal_scope);
	x->chal_scope = NULL;
	free(x->upload_url);
	x->upload_url = NULL;
	if (x->kind == XK_RESOLVE)
		x->phase = PH_HEAD;
	if (x->kind == XK_PUSH_BLOB)
		x->phase = x->mount_from ? PH_MOUNT : PH_POST;
}

/* Moves to the next endpoint (after noting err), or ends with the best failure seen. */
static void x_next_endpoint(img_xfer *x, const bt_err *err)
{
	if (err)
		x_note(x, err);
	if (x->on_foreign) {
		x->url_i++;
		free(x->abs_url);
		x->abs_url = NULL;
		if (x->urls[x->url_i]) {
			x->abs_url = bt_xstrdup(x->urls[x->url_i]);
			x_reset_for_endpoint(x);
			x_issue(x);
			return;
		}
		x->on_foreign = false;
		x->ep = (size_t)-1;
	} else if (x->abs_url) {
		x_finish(x, &x->best);
		return;
	}
	for (size_t i = x->ep + 1; i < x->repo->hosts.n; i++) {
		if (!ep_usable(x, i))
			continue;
		x->ep = i;
		x_reset_for_endpoint(x);
		x_issue(x);
		return;
	}
	x_finish(x, &x->best);
}

/* A failure that may pass: retried here after a backoff, or the next endpoint is tried. */
static void x_retry(img_xfer *x, const bt_err *err)
{
	/* with somewhere else to go (a mirror, a foreign URL), go there at once */
	if (x_last_endpoint(x) && x->attempts < x->reg->max_retries) {
		x->attempts++;
		bt_log_debug("%s (retry %d of %d)", err->msg, x->attempts, x->reg->max_retries);
		timer_add(x, backoff_ms(x));
		return;
	}
	if (x->attempts > 0) {
		/* the final word on this endpoint: say that it was not for lack of trying */
		bt_err last = *err;
		bt_err_set(&last, err->code, "%s (%d attempts)", err->msg, x->attempts + 1);
		x_next_endpoint(x, &last);
		return;
	}
	x_next_endpoint(x, err);
}

/* ---- curl callbacks (transfer thread) ----------------------------------------------------- */

static int64_t parse_retry_after(const char *v)
{
	uint64_t s;
	time_t t;

	if (bt_parse_u64(v, &s) == 0)
		return s > 86400 ? 86400000 : (int64_t)s * 1000;
	t = curl_getdate(v, NULL);
	if (t < 0)
		return -1;
	t -= time(NULL);
	return t < 0 ? 0 : (int64_t)BT_MIN(t, 86400) * 1000;
}

static size_t abort_with(img_xfer *x, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static size_t on_header(char *b, size_t sz, size_t n, void *ud)
{
	img_xfer *x = ud;
	size_t len = sz * n, nl, vl;
	const char *colon, *v;
	char **slot = NULL;

	x->hdr_bytes += len;
	if (x->hdr_bytes > HDR_TOTAL_MAX)
		return abort_with(x, BT_RESOURCE_EXHAUSTED, "more than %d bytes of response headers", HDR_TOTAL_MAX);
	if (len >= 5 && memcmp(b, "HTTP/", 5) == 0) {
		const char *sp = memchr(b, ' ', len);
		resp_clear(&x->r);
		x->r.status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return len;
	}
	colon = memchr(b, ':', len);
	if (!colon)
		return len;
	nl = (size_t)(colon - b);
	v = colon + 1;
	while (v < b + len && (*v == ' ' || *v == '\t'))
		v++;
	vl = (size_t)(b + len - v);
	while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (vl > HDR_VAL_MAX || memchr(v, '\0', vl))
		return len;
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(b, name, nl) == 0)
	if (IS("content-type"))
		slot = &x->r.content_type;
	else if (IS("docker-content-digest"))
		slot = &x->r.digest;
	else if (IS("location"))
		slot = &x->r.location;
	else if (IS("content-range"))
		slot = &x->r.content_range;
	else if (IS("www-authenticate")) {
		/* several headers are several challenges: keep them all */
		if (x->r.www_auth) {
			char *j;
			if (strlen(x->r.www_auth) + vl > HDR_VAL_MAX)
				return len; /* bounded like every header: the first challenges are kept */
			j = bt_xasprintf("%s, %.*s", x->r.www_auth, (int)vl, v);
			free(x->r.www_auth);
			x->r.www_auth = j;
			return len;
		}
		slot = &x->r.www_auth;
	} else if (IS("content-length") || IS("retry-after")) {
		_cleanup_free_ char *s = bt_xstrndup(v, vl);
		uint64_t u;
		if (IS("content-length") && bt_parse_u64(s, &u) == 0 && u <= INT64_MAX)
			x->r.content_length = (int64_t)u;
		else if (IS("retry-after"))
			x->r.retry_after_ms = parse_retry_after(s);
	}
#undef IS
	if (slot) {
		free(*slot);
		*slot = bt_xstrndup(v, vl);
	}
	return len;
}

static size_t abort_with(img_xfer *x, int code, const char *fmt, ...)
{
	char msg[BT_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x_err(x, &x->abort_err, code, "%s", msg);
	x->aborted = true;
	return 0;
}

/* Cuts a request on which nothing has moved, either way, for low_time seconds while it was not paused.
 * curl's own low-speed check (also set) averages over its last five seconds, so after a burst a
 * dead connection would go unnoticed for that much longer; this catches the silence itself. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	img_xfer *x = ud;
	int64_t now = bt_mono_ms(), moved = (int64_t)dlnow + (int64_t)ulnow;

	(void)dltotal;
	(void)ultotal;
	if (moved != x->moved || x->paused) {
		x->moved = moved;
		x->moved_ms = now;
		return 0;
	}
	if (now - x->moved_ms < x->reg->low_time * 1000)
		return 0;
	snprintf(x->errbuf, sizeof(x->errbuf), "nothing received for %ld s (stalled)", x->reg->low_time);
	x->stalled = true;
	return 1;
}

/* "bytes START-END/TOTAL" → start and total (-1 for '*'). */
static int parse_content_range(const char *s, int64_t *start, int64_t *total)
{
	char *end;
	long long a, b, t = -1;

	if (!s || strncasecmp(s, "bytes ", 6) != 0)
		return -1;
	s += 6;
	errno = 0;
	a = strtoll(s, &end, 10);
	if (end == s || *end != '-' || a < 0)
		return -1;
	s = end + 1;
	b = strtoll(s, &end, 10);
	if (end == s || *end != '/' || b < a)
		return -1;
	if (end[1] != '*') {
		t = strtoll(end + 1, &end, 10);
		if (t <= b)
			return -1;
	}
	if (errno)
		return -1;
	*start = a;
	*total = t;
	return 0;
}

/* Decides where a response's body goes, at its first byte. */
static size_t choose_sink(img_xfer *x)
{
	long st = x->r.status;
	bool ok = st >= 200 && st < 300;

	if (ok && x->kind == XK_BLOB) {
		int64_t start = 0, total = -1;
		if (st == 206) {
			if (parse_content_range(x->r.content_range, &start, &total) < 0)
				return abort_with(x, BT_UNAVAILABLE, "206 with a bad Content-Range \"%.80s\"",
						  x->r.content_range ? x->r.content_range : "");
			if (start > x->delivered)
				return abort_with(x, BT_UNAVAILABLE, "asked for bytes from %lld, got them from %lld",
						  (long long)x->delivered, (long long)start);
		} else {
			total = x->r.content_length;
		}
		if (x->size >= 0 && total >= 0 && total != x->size)
			return abort_with(x, total > x->size ? BT_RESOURCE_EXHAUSTED : BT_DATA_LOSS,
					  "the registry has %lld bytes for a blob of %lld", (long long)total, (long long)x->size);
		x->pos = start;
		x->sink = SINK_STREAM;
	} else if (ok && (x->kind == XK_MANIFEST || x->kind == XK_BLOB_MEM || x->kind == XK_TOKEN ||
			  (x->kind == XK_RESOLVE && x->phase == PH_GET))) {
		if (x->r.content_length > x->max)
			return abort_with(x, BT_RESOURCE_EXHAUSTED, "%lld bytes is over the bound of %lld",
					  (long long)x->r.content_length, (long long)x->max);
		x->sink = SINK_MEM;
	} else {
		x->sink = SINK_ERR;
	}
	return 1;
}

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
	img_xfer *x = ud;
	size_t len = sz * n;

	if (x->sink == SINK_UNSET && choose_sink(x) == 0)
		return 0;
	switch (x->sink) {
	case SINK_ERR:
		if (x->body.len < ERR_BODY_MAX)
			bt_buf_append(&x->body, p, BT_MIN(len, ERR_BODY_MAX - x->body.len));
		return len;
	case SINK_MEM:
		if ((int64_t)(x->body.len + len) > x->max)
			return abort_with(x, BT_RESOURCE_EXHAUSTED, "more than the bound of %lld bytes", (long long)x->max);
		bt_buf_append(&x->body, p, len);
		return len;
	case SINK_STREAM: {
		size_t skip = 0, rest;
		int64_t limit = x->size >= 0 ? x->size : x->max;
		if (x->pos < x->delivered)
			skip = (size_t)BT_MIN((int64_t)len, x->delivered - x->pos);
		rest = len - skip;
		if (limit > 0 && x->pos + (int64_t)len > limit)
			return abort_with(x, BT_RESOURCE_EXHAUSTED, "more than the blob's %lld bytes", (long long)limit);
		if (rest) {
			bt_err ce = { 0 };
			int rc = x->on_data(x->arg, p + skip, rest, &ce);
			if (rc == IMG_XFER_PAUSE) {
				x->paused = true;
				return CURL_WRITEFUNC_PAUSE;
			}
			if (rc < 0) {
				x->abort_err = ce;
				if (x->abort_err.code == BT_OK)
					x_err(x, &x->abort_err, BT_ABORTED, "aborted by the consumer");
				x->aborted = true;
				return 0;
			}
			if (x->dg)
				bt_digest_update(x->dg, p + skip, rest);
			x->delivered += (int64_t)rest;
			atomic_store(&x->progress, x->delivered);
		}
		x->pos += (int64_t)len;
		return len;
	}
	default:
		return 0;
	}
}

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
	img_xfer *x = ud;
	size_t want = (size_t)BT_MIN((int64_t)(sz * n), x->send_end - x->send_pos);
	size_t got = 0;

	if (want == 0)
		return 0;
	if (x->data) {
		memcpy(buf, (const char *)x->data + x->send_pos, want);
		got = want;
	} else {
		bt_err ce = { 0 };
		int rc = x->on_read(x->arg, x->send_pos, buf, want, &got, &ce);
		if (rc == IMG_XFER_PAUSE) {
			x->paused = true;
			return CURL_READFUNC_PAUSE;
		}
		if (rc < 0 || got == 0 || got > want) {
			if (rc < 0)
				x->abort_err = ce;
			if (rc >= 0 || x->abort_err.code == BT_OK)
				x_err(x, &x->abort_err, rc < 0 ? BT_ABORTED : BT_DATA_LOSS,
				      "the source %s at offset %lld", rc < 0 ? "failed" : "ended early", (long long)x->send_pos);
			x->aborted = true;
			return CURL_READFUNC_ABORT;
		}
	}
	x->send_pos += (int64_t)got;
	return got;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	img_xfer *x = ud;

	if (origin != SEEK_SET || off < 0 || x->send_base + off > x->send_end)
		return CURL_SEEKFUNC_CANTSEEK;
	x->send_pos = x->send_base + off;
	return CURL_SEEKFUNC_OK;
}

/* ---- issuing requests --------------------------------------------------------------------- */

static char *add_query(char *url, const char *kv)
{
	char *n = bt_xasprintf("%s%c%s", url, strchr(url, '?') ? '&' : '?', kv);
	free(url);
	return n;
}

/* The upload location made absolute against the endpoint. */
static char *upload_target(const img_xfer *x, const char *scheme)
{
	const img_endpoint *ep = &x->repo->hosts.v[x->ep];
	const char *loc = x->upload_url;

	if (bt_startswith(loc, "http://") || bt_startswith(loc, "https://"))
		return bt_xstrdup(loc);
	if (loc[0] == '/')
		return bt_xasprintf("%s://%s%s", scheme, ep->host, loc);
	return bt_xasprintf("%s://%s%s/%s/blobs/uploads/%s", scheme, ep->host, strcmp(ep->path, "/") ? ep->path : "",
			    x->repo->ref.path, loc);
}

static char *x_url(img_xfer *x)
{
	const img_endpoint *ep;
	const char *scheme;
	char *url;

	if (x->abs_url)
		return bt_xstrdup(x->abs_url);
	ep = &x->repo->hosts.v[x->ep];
	scheme = x->repo->use_http[x->ep] ? "http" : ep->scheme;
	if (x->kind == XK_PUSH_BLOB && (x->phase == PH_PUT || x->phase == PH_PATCH || x->phase == PH_FINAL)) {
		url = upload_target(x, scheme);
		if (x->phase != PH_PATCH) {
			_cleanup_free_ char *d = bt_xasprintf("digest=%s", x->object);
			url = add_query(url, d);
		}
		return url;
	}
	url = bt_xasprintf("%s://%s%s/%s", scheme, ep->host, strcmp(ep->path, "/") ? ep->path : "", x->repo->ref.path);
	switch (x->kind) {
	case XK_RESOLVE:
	case XK_MANIFEST:
	case XK_PUSH_MANIFEST: {
		char *n = bt_xasprintf("%s/manifests/%s", url, x->object);
		free(url);
		url = n;
		break;
	}
	case XK_PUSH_BLOB: {
		char *n = bt_xasprintf("%s/blobs/uploads/", url);
		free(url);
		url = n;
		if (x->phase == PH_MOUNT) {
			_cleanup_free_ char *from = url_escape(x->mount_from);
			_cleanup_free_ char *q = bt_xasprintf("mount=%s&from=%s", x->object, from);
			url = add_query(url, q);
		}
		break;
	}
	default: {
		char *n = bt_xasprintf("%s/blobs/%s", url, x->object);
		free(url);
		url = n;
	}
	}
	if (ep->proxy) {
		_cleanup_free_ char *ns = url_escape(x->repo->ref.domain);
		_cleanup_free_ char *q = bt_xasprintf("ns=%s", ns);
		url = add_query(url, q);
	}
	return url;
}

static void x_set_tls(img_xfer *x, CURL *h)
{
	const img_endpoint *ep;

	if (x->abs_url)
		return;
	ep = &x->repo->hosts.v[x->ep];
	if (ep->skip_verify) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (x->repo->ca_blob[x->ep]) {
		struct curl_blob blob = { .data = x->repo->ca_blob[x->ep], .len = x->repo->ca_len[x->ep],
					  .flags = CURL_BLOB_NOCOPY };
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (ep->client_cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, ep->client_cert);
		if (ep->client_key)
			curl_easy_setopt(h, CURLOPT_SSLKEY, ep->client_key);
	}
	if (ep->dial_timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ep->dial_timeout_ms);
}

/* Sets the method, body and headers of the current phase. */
static void x_set_method(img_xfer *x, CURL *h)
{
	switch (x->phase) {
	case PH_HEAD:
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		break;
	case PH_MOUNT:
	case PH_POST:
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
		break;
	case PH_TOKEN_POST:
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)x->data);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)x->data_len);
		x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/x-www-form-urlencoded");
		break;
	case PH_PUT:
	case PH_PATCH:
	case PH_FINAL:
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		if (x->kind == XK_PUSH_MANIFEST) {
			x->send_base = x->send_pos = 0;
			x->send_end = (int64_t)x->data_len;
		} else if (x->phase == PH_FINAL) {
			x->send_base = x->send_pos = x->send_end = 0;
		} else if (x->phase == PH_PATCH) {
			x->send_base = x->send_pos = atomic_load(&x->progress);
			x->send_end = BT_MIN(x->size, x->send_base + x->chunk);
			_cleanup_free_ char *cr = bt_xasprintf("Content-Range: %lld-%lld", (long long)x->send_base,
							       (long long)x->send_end - 1);
			x->hdrs = curl_slist_append(x->hdrs, cr);
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
		} else {
			x->send_base = x->send_pos = 0;
			x->send_end = x->size;
		}
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(x->send_end - x->send_base));
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
		if (x->kind == XK_PUSH_MANIFEST) {
			_cleanup_free_ char *ct = bt_xasprintf("Content-Type: %s", x->media_type);
			x->hdrs = curl_slist_append(x->hdrs, ct);
		} else {
			x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/octet-stream");
		}
		break;
	default:
		break;
	}
}

/* Issues the request of the transfer's current phase on its current endpoint. */
static void x_issue(img_xfer *x)
{
	img_registry *r = x->reg;
	_cleanup_free_ char *url = NULL;
	CURL *h;
	bool small = x->kind != XK_BLOB && !(x->kind == XK_PUSH_BLOB && (x->phase == PH_PUT || x->phase == PH_PATCH));
	const img_endpoint *ep = x->abs_url ? NULL : &x->repo->hosts.v[x->ep];

	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	resp_clear(&x->r);
	bt_buf_free(&x->body);
	x->sink = SINK_UNSET;
	x->aborted = false;
	x->paused = false;
	x->stalled = false;
	x->hdr_bytes = 0;
	x->moved = 0;
	x->moved_ms = bt_mono_ms();
	x->errbuf[0] = '\0';

	if (x_authorize(x) > 0)
		return;
	url = x_url(x);
	h = curl_easy_init();
	if (!h)
		bt_oom();
	x->h = h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, r->user_agent);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, r->low_limit);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, r->low_time);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	if (small)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->request_ms);
	curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	if (r->resolve)
		curl_easy_setopt(h, CURLOPT_RESOLVE, r->resolve);
	/* redirects (to blob storage) only for reads; curl drops Authorization on a host change */
	if (x->phase == PH_HEAD || x->phase == PH_GET || x->phase == PH_TOKEN_GET) {
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	}
	if (x->kind == XK_BLOB) {
		curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 128L * 1024);
		if (x->delivered > 0) {
			char range[48];
			snprintf(range, sizeof(range), "%lld-", (long long)x->delivered);
			curl_easy_setopt(h, CURLOPT_RANGE, range);
		}
	}
	x_set_tls(x, h);
	x_set_method(x, h);
	if (x->kind == XK_RESOLVE || x->kind == XK_MANIFEST)
		x->hdrs = curl_slist_append(x->hdrs, ACCEPT_MANIFESTS);
	if (x->phase == PH_TOKEN_GET && x->tk_user && x->tk_pass && x->tk_user[0]) {
		_cleanup_free_ char *b = img_basic_auth(x->tk_user, x->tk_pass);
		_cleanup_free_ char *hb = bt_xasprintf("Authorization: %s", b);
		x->hdrs = curl_slist_append(x->hdrs, hb);
		explicit_bzero(hb, strlen(hb));
	}
	for (char **hl = ep ? ep->headers : NULL; hl && *hl; hl++)
		x->hdrs = curl_slist_append(x->hdrs, *hl);
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);

	x->delivered_at_issue = x->delivered;
	x->state = XS_RUNNING;
	if (curl_multi_add_handle(r->multi, h) != CURLM_OK) {
		bt_err err;
		curl_easy_cleanup(h);
		x->h = NULL;
		x_err(x, &err, BT_INTERNAL, "curl refused the transfer");
		x_finish(x, &err);
	}
}

/* ---- token transfers ---------------------------------------------------------------------- */

static void token_start(img_registry *r, img_xfer *waiter, struct auth_host *a, struct tok *t)
{
	img_xfer *tx = x_new(r, NULL, XK_TOKEN);
	const img_cred *c = x_cred(waiter);
	_cleanup_strv_ char **scopes = x_scopes(waiter);

	snprintf(tx->what, sizeof(tx->what), "token for %s from %.100s", waiter->repo->name, a->realm);
	tx->ah = a;
	tx->tok = t;
	tx->best_prio = 1;
	bt_err_set(&tx->best, BT_UNAVAILABLE, "%s: no token", tx->what);
	tx->max = TOKEN_MAX;
	tx->tk_scopes = BT_STEAL(scopes);
	if (c) {
		tx->tk_user = bt_xstrdup(c->username);
		tx->tk_pass = bt_xstrdup(c->password);
		tx->tk_idt = c->identity_token ? bt_xstrdup(c->identity_token) : NULL;
	}
	t->fetcher = tx;
	/* with credentials: the OAuth2 POST form; without: an anonymous GET */
	if (tx->tk_idt || (tx->tk_user && tx->tk_user[0])) {
		bt_buf f = { 0 };
		_cleanup_free_ char *scope = join(tx->tk_scopes, " ");
		_cleanup_free_ char *es = url_escape(scope);
		_cleanup_free_ char *svc = url_escape(a->service ? a->service : "");
		if (tx->tk_idt) {
			_cleanup_free_ char *rt = url_escape(tx->tk_idt);
			bt_buf_appendf(&f, "grant_type=refresh_token&refresh_token=%s", rt);
		} else {
			_cleanup_free_ char *u = url_escape(tx->tk_user);
			_cleanup_free_ char *p = url_escape(tx->tk_pass);
			bt_buf_appendf(&f, "grant_type=password&username=%s&password=%s", u, p);
			explicit_bzero(p, strlen(p));
		}
		bt_buf_appendf(&f, "&service=%s&scope=%s&client_id=berth", svc, es);
		tx->data_len = f.len;
		tx->data = bt_buf_steal(&f);
		tx->phase = PH_TOKEN_POST;
		tx->abs_url = bt_xstrdup(a->realm);
	} else {
		tx->phase = PH_TOKEN_GET;
	}
	if (tx->phase == PH_TOKEN_GET) {
		char *u = bt_xstrdup(a->realm);
		if (a->service) {
			_cleanup_free_ char *s = url_escape(a->service);
			_cleanup_free_ char *q = bt_xasprintf("service=%s", s);
			u = add_query(u, q);
		}
		for (char **s = tx->tk_scopes; s && *s; s++) {
			_cleanup_free_ char *es = url_escape(*s);
			_cleanup_free_ char *q = bt_xasprintf("scope=%s", es);
			u = add_query(u, q);
		}
		tx->abs_url = u;
	}
	/* into the active list like any transfer */
	tx->a_next = r->active;
	if (r->active)
		r->active->a_prev = tx;
	r->active = tx;
	x_issue(tx);
}

/* The token transfer ended: hand the token (or the failure) to everyone waiting for it. */
static void token_done(img_xfer *tx, const bt_err *err)
{
	struct tok *t = tx->tok;
	struct auth_host *a = tx->ah;
	img_xfer *w;

	t->fetcher = NULL;
	if (err->code == BT_OK) {
		char *token = NULL;
		int64_t exp = 60;
		bt_err pe;
		if (img_token_parse(tx->body.data ? tx->body.data : "", tx->body.len, &token, &exp, &pe) < 0) {
			bt_err bad;
			x_err(tx, &bad, BT_UNAUTHENTICATED, "%s", pe.msg);
			token_done(tx, &bad);
			return;
		}
		t->token = token;
		t->expires_ms = bt_mono_ms() + BT_MAX(exp * 1000 - TOKEN_MARGIN_MS, 1000);
	}
	w = t->waiters;
	t->waiters = NULL;
	if (err->code != BT_OK) {
		tok_unlink(a, t);
		tok_free(t);
	}
	while (w) {
		img_xfer *next = w->wait_next;
		w->wait_next = NULL;
		w->waiting_on = NULL;
		if (err->code == BT_OK) {
			x_issue(w);
		} else {
			bt_err we = *err;
			if (we.code == BT_UNAUTHENTICATED || we.code == BT_PERMISSION_DENIED)
				bt_err_set(&we, BT_PERMISSION_DENIED, "%s access denied for %s: %s",
					   w->repo->push ? "push" : "pull", w->repo->name, err->msg);
			x_finish(w, &we);
		}
		w = next;
	}
}

/* ---- responses ---------------------------------------------------------------------------- */

/* The standard reason phrase of the statuses a registry answers with ("" for others): the server's
 * own phrase is not kept (HTTP/2 has none). */
static const char *status_text(long st)
{
	static const struct {
		long st;
		const char *text;
	} t[] = {
		{ 400, " Bad Request" },        { 401, " Unauthorized" },          { 403, " Forbidden" },
		{ 404, " Not Found" },          { 405, " Method Not Allowed" },    { 408, " Request Timeout" },
		{ 409, " Conflict" },           { 413, " Payload Too Large" },     { 416, " Range Not Satisfiable" },
		{ 429, " Too Many Requests" },  { 500, " Internal Server Error" }, { 501, " Not Implemented" },
		{ 502, " Bad Gateway" },        { 503, " Service Unavailable" },   { 504, " Gateway Timeout" },
	};

	for (size_t i = 0; i < BT_ARRAY_LEN(t); i++)
		if (t[i].st == st)
			return t[i].text;
	return "";
}

/* "HTTP 500 Internal Server Error (the registry's own words)"; a HEAD's answer has no body, so no words. */
static void status_err(img_xfer *x, bt_err *err)
{
	char rm[512];

	registry_message(&x->body, rm, sizeof(rm));
	x_err(x, err, img_http_code(x->r.status), "HTTP %ld%s%s%s%s", x->r.status, status_text(x->r.status),
	      rm[0] ? " (" : "", rm, rm[0] ? ")" : "");
}

static void content_type_of(const img_xfer *x, char out[IMG_MEDIA_TYPE_MAX])
{
	const char *ct = x->r.content_type ? x->r.content_type : "";
	size_t n = strcspn(ct, "; \t");

	snprintf(out, IMG_MEDIA_TYPE_MAX, "%.*s", (int)BT_MIN(n, (size_t)IMG_MEDIA_TYPE_MAX - 1), ct);
	/* a generic type says nothing: look at the document */
	if (x->body.len && (!out[0] || strcmp(out, "application/json") == 0 || strcmp(out, "application/octet-stream") == 0 ||
			    strcmp(out, "text/plain") == 0)) {
		_cleanup_free_ char *mt = bt_oci_sniff_media_type(x->body.data, x->body.len);
		if (mt)
			snprintf(out, IMG_MEDIA_TYPE_MAX, "%s", mt);
		else
			snprintf(out, IMG_MEDIA_TYPE_MAX, "%s",
				 strstr(x->body.data, "\"manifests\"") ? MT_OCI_INDEX : MT_OCI_MANIFEST);
	}
}

static bool schema1(const char *mt)
{
	return bt_startswith(mt, "application/vnd.docker.distribution.manifest.v1");
}

/* A 2xx for a resolve, manifest, config or HEAD of a blob. */
static void x_ok_read(img_xfer *x)
{
	bt_err err;
	char dg[BT_DIGEST_STR_LEN];

	switch (x->kind) {
	case XK_RESOLVE: {
		bool by_digest = bt_startswith(x->object, "sha256:");
		content_type_of(x, x->res.media_type);
		if (schema1(x->res.media_type)) {
			x_err(x, &err, BT_UNIMPLEMENTED, "Docker schema 1 manifests are not supported");
			x_finish(x, &err);
			return;
		}
		if (x->phase == PH_HEAD) {
			if (x->r.content_length > IMG_MAX_MANIFEST) {
				x_err(x, &err, BT_RESOURCE_EXHAUSTED, "manifest of %lld bytes is over the bound of %d",
				      (long long)x->r.content_length, IMG_MAX_MANIFEST);
				x_finish(x, &err);
				return;
			}
			if (x->r.digest && bt_digest_validate(x->r.digest, NULL, NULL) == 0 && x->r.content_length >= 0 &&
			    x->res.media_type[0]) {
				if (by_digest && strcmp(x->r.digest, x->object) != 0) {
					x_err(x, &err, BT_DATA_LOSS, "the registry answers with digest %s", x->r.digest);
					x_finish(x, &err);
					return;
				}
				snprintf(x->res.digest, sizeof(x->res.digest), "%s", x->r.digest);
				x->res.size = x->r.content_length;
				x_finish(x, NULL);
				return;
			}
			/* no digest (or no type): fetch it and hash */
			x->phase = PH_GET;
			x_issue(x);
			return;
		}
		bt_digest_buf(x->body.data ? x->body.data : "", x->body.len, dg);
		if (by_digest && strcmp(dg, x->object) != 0) {
			x_err(x, &err, BT_DATA_LOSS, "manifest has digest %s", dg);
			x_finish(x, &err);
			return;
		}
		snprintf(x->res.digest, sizeof(x->res.digest), "%s", dg);
		x->res.size = (int64_t)x->body.len;
		x_finish(x, NULL);
		return;
	}
	case XK_MANIFEST:
	case XK_BLOB_MEM:
		bt_digest_buf(x->body.data ? x->body.data : "", x->body.len, dg);
		if (strcmp(dg, x->object) != 0) {
			x_err(x, &err, BT_DATA_LOSS, "content has digest %s", dg);
			x_finish(x, &err);
			return;
		}
		if (x->kind == XK_MANIFEST) {
			content_type_of(x, x->res.media_type);
			if (schema1(x->res.media_type)) {
				x_err(x, &err, BT_UNIMPLEMENTED, "Docker schema 1 manifests are not supported");
				x_finish(x, &err);
				return;
			}
		}
		x_finish(x, NULL);
		return;
	case XK_BLOB_HEAD:
		x->exists = true;
		x->res.size = x->r.content_length;
		x_finish(x, NULL);
		return;
	default:
		x_finish(x, NULL);
	}
}

/* A 2xx for a streamed blob. */
static void x_ok_blob(img_xfer *x)
{
	bt_err err;

	if (x->size >= 0 && x->delivered < x->size) {
		/* the body ended early (no or a lying Content-Length): resume like a broken connection */
		x_err(x, &err, BT_DATA_LOSS, "blob truncated at %lld of %lld bytes", (long long)x->delivered,
		      (long long)x->size);
		if (x->delivered > x->delivered_at_issue && x->resumes < MAX_RESUMES) {
			x->resumes++;
			x_issue(x);
		} else {
			x_retry(x, &err);
		}
		return;
	}
	if (x->dg) {
		char dg[BT_DIGEST_STR_LEN];
		bt_digest_final(x->dg, dg);
		if (strcmp(dg, x->object) != 0) {
			x_err(x, &err, BT_DATA_LOSS, "content has digest %s", dg);
			x_finish(x, &err);
			return;
		}
	}
	x_finish(x, NULL);
}

/* A 2xx or 3xx for a push step. */
static void x_ok_push(img_xfer *x)
{
	bt_err err;

	if (x->kind == XK_PUSH_MANIFEST) {
		char dg[BT_DIGEST_STR_LEN];
		bt_digest_buf(x->data, x->data_len, dg);
		if (x->r.digest && strcmp(x->r.digest, dg) != 0) {
			x_err(x, &err, BT_DATA_LOSS, "the registry stored digest %.80s for %s", x->r.digest, dg);
			x_finish(x, &err);
			return;
		}
		snprintf(x->res.digest, sizeof(x->res.digest), "%s", dg);
		x_finish(x, NULL);
		return;
	}
	switch (x->phase) {
	case PH_MOUNT:
	case PH_POST:
		if (x->phase == PH_MOUNT && x->r.status == 201) {
			x->mounted = true;
			atomic_store(&x->progress, x->size);
			x_finish(x, NULL);
			return;
		}
		if (x->r.status != 202 || !x->r.location || !x->r.location[0]) {
			x_err(x, &err, BT_UNAVAILABLE, "upload not started (HTTP %ld%s)", x->r.status,
			      x->r.location ? "" : ", no Location");
			x_retry(x, &err);
			return;
		}
		free(x->upload_url);
		x->upload_url = BT_STEAL(x->r.location);
		atomic_store(&x->progress, 0);
		x->phase = x->chunk > 0 && x->size > 0 ? PH_PATCH : PH_PUT;
		x_issue(x);
		return;
	case PH_PATCH:
		if (!x->r.location || !x->r.location[0]) {
			x_err(x, &err, BT_UNAVAILABLE, "chunk accepted without a Location");
			x_retry(x, &err);
			return;
		}
		free(x->upload_url);
		x->upload_url = BT_STEAL(x->r.location);
		atomic_store(&x->progress, x->send_end);
		if (x->send_end >= x->size)
			x->phase = PH_FINAL;
		x_issue(x);
		return;
	case PH_PUT:
	case PH_FINAL:
		if (x->r.digest && strcmp(x->r.digest, x->object) != 0) {
			x_err(x, &err, BT_DATA_LOSS, "the registry stored digest %.80s", x->r.digest);
			x_finish(x, &err);
			return;
		}
		atomic_store(&x->progress, x->size);
		x_finish(x, NULL);
		return;
	default:
		x_finish(x, NULL);
	}
}

/* A 401: answer the challenge and go again, or give up. */
static void x_unauthorized(img_xfer *x)
{
	img_challenge ch;
	bt_err err, pe;
	struct auth_host *a;
	const img_cred *c;
	const char *host = x_host(x);

	if (x->abs_url) {
		/* a token server or a foreign URL refusing us */
		if (x->kind == XK_TOKEN && x->phase == PH_TOKEN_POST && x->tk_user && x->tk_user[0]) {
			x->phase = PH_TOKEN_GET;
			goto token_get;
		}
		status_err(x, &err);
		err.code = BT_PERMISSION_DENIED;
		x_next_endpoint(x, &err);
		return;
	}
	if (img_challenge_parse(x->r.www_auth, &ch, &pe) < 0) {
		x_err(x, &err, BT_UNAUTHENTICATED, "401 without a challenge berth can answer (%s)", pe.msg);
		x_next_endpoint(x, &err);
		return;
	}
	x->auth_rounds++;
	if (x->had_401 || x->auth_rounds > MAX_AUTH_ROUNDS) {
		char rm[512];
		registry_message(&x->body, rm, sizeof(rm));
		x_err(x, &err, BT_PERMISSION_DENIED,
		      "%s access denied for %s, repository does not exist or may require authorization%s%s",
		      x->repo->push ? "push" : "pull", x->repo->ref.path, rm[0] ? ": " : "", rm);
		img_challenge_clear(&ch);
		x_next_endpoint(x, &err);
		return;
	}
	x->had_401 = true;
	a = auth_get(x->reg, host, true);
	c = x_cred(x);
	if (ch.scheme == IMG_AUTH_BASIC) {
		img_challenge_clear(&ch);
		if (!c || !c->username[0]) {
			x_err(x, &err, BT_UNAUTHENTICATED, "authentication required and no credentials for %s", host);
			x_next_endpoint(x, &err);
			return;
		}
		a->scheme = IMG_AUTH_BASIC;
		x_issue(x);
		return;
	}
	/* Bearer: a new realm or service forgets the old tokens; the token of our scopes is stale */
	if (a->scheme != IMG_AUTH_BEARER || !a->realm || strcmp(a->realm, ch.realm) != 0 ||
	    (a->service ? !ch.service || strcmp(a->service, ch.service) != 0 : ch.service != NULL)) {
		for (struct tok *t = a->toks; t; t = t->next)
			if (!t->fetcher)
				t->expires_ms = 0;
		auth_prune(a);
		free(a->realm);
		free(a->service);
		a->realm = BT_STEAL(ch.realm);
		a->service = BT_STEAL(ch.service);
	}
	a->scheme = IMG_AUTH_BEARER;
	free(x->chal_scope);
	x->chal_scope = BT_STEAL(ch.scope);
	{
		_cleanup_free_ char *key = x_tok_key(x);
		for (struct tok *t = a->toks; t; t = t->next)
			if (strcmp(t->scopes, key) == 0 && t->token) {
				/* expire it: the next x_authorize fetches a fresh one */
				t->expires_ms = 0;
			}
	}
	img_challenge_clear(&ch);
	x_issue(x);
	return;
token_get: {
	/* the POST form was refused: GET with basic auth */
	struct auth_host *ah = x->ah;
	char *u = bt_xstrdup(ah->realm);
	free(x->abs_url);
	if (ah->service) {
		_cleanup_free_ char *s = url_escape(ah->service);
		_cleanup_free_ char *q = bt_xasprintf("service=%s", s);
		u = add_query(u, q);
	}
	for (char **s = x->tk_scopes; s && *s; s++) {
		_cleanup_free_ char *es = url_escape(*s);
		_cleanup_free_ char *q = bt_xasprintf("scope=%s", es);
		u = add_query(u, q);
	}
	x->abs_url = u;
	x_issue(x);
}
}

static void x_complete(img_xfer *x, CURLcode rc)
{
	long st = x->r.status;
	bt_err err;

	curl_multi_remove_handle(x->reg->multi, x->h);
	curl_easy_cleanup(x->h);
	x->h = NULL;

	if (x->aborted) {
		/* our own decision in a callback: a bound, a consumer's error, a bad resume */
		if (x->abort_err.code == BT_UNAVAILABLE && x->kind == XK_BLOB)
			x_retry(x, &x->abort_err);
		else
			x_finish(x, &x->abort_err);
		return;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK && x->stalled)
		rc = CURLE_OPERATION_TIMEDOUT; /* on_progress: like curl's own low-speed cut */
	if (rc != CURLE_OK) {
		if (rc == CURLE_SSL_CONNECT_ERROR && !x->abs_url && x->repo->hosts.v[x->ep].http_fallback &&
		    !x->repo->use_http[x->ep]) {
			bt_log_debug("%s: TLS handshake failed, trying plain HTTP", x->repo->hosts.v[x->ep].host);
			x->repo->use_http[x->ep] = true;
			x_issue(x);
			return;
		}
		x_err(x, &err, BT_UNAVAILABLE, "%s",
		      x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		if (x->kind == XK_BLOB && x->delivered > x->delivered_at_issue && x->resumes < MAX_RESUMES) {
			/* progress was made: resume at once from the next byte */
			bt_log_debug("%s; resuming at %lld", err.msg, (long long)x->delivered);
			x->resumes++;
			x->attempts = 0;
			x_issue(x);
			return;
		}
		if (retryable_curl(rc))
			x_retry(x, &err);
		else
			x_next_endpoint(x, &err);
		return;
	}
	if (st != 401)
		x->had_401 = false;
	if (st == 401) {
		x_unauthorized(x);
		return;
	}
	if (x->kind == XK_TOKEN) {
		if (st >= 200 && st < 300) {
			x_finish(x, NULL);
			return;
		}
		if (x->phase == PH_TOKEN_POST && x->tk_user && x->tk_user[0] &&
		    (st == 400 || st == 404 || st == 405)) {
			x_unauthorized(x); /* the same fallback: GET with basic auth */
			return;
		}
		status_err(x, &err);
		if (st == 403)
			err.code = BT_PERMISSION_DENIED;
		if (retryable_status(st))
			x_retry(x, &err);
		else
			x_finish(x, &err);
		return;
	}
	if (st >= 200 && st < 300) {
		if (x->kind == XK_BLOB)
			x_ok_blob(x);
		else if (x->kind == XK_PUSH_BLOB || x->kind == XK_PUSH_MANIFEST)
			x_ok_push(x);
		else
			x_ok_read(x);
		return;
	}
	if (st == 405 && x->phase == PH_HEAD && x->kind == XK_RESOLVE) {
		x->phase = PH_GET;
		x_issue(x);
		return;
	}
	if (st == 404 && x->kind == XK_BLOB_HEAD && x_last_endpoint(x)) {
		x->exists = false;
		x_finish(x, NULL);
		return;
	}
	status_err(x, &err);
	if (st == 404) {
		char rm[512];
		registry_message(&x->body, rm, sizeof(rm));
		x_err(x, &err, BT_NOT_FOUND, "not found%s%s%s", rm[0] ? " (" : "", rm, rm[0] ? ")" : "");
	}
	if (retryable_status(st))
		x_retry(x, &err);
	else
		x_next_endpoint(x, &err);
}

/* ---- start, finish ------------------------------------------------------------------------ */

static void x_start(img_xfer *x)
{
	img_registry *r = x->reg;

	x->a_next = r->active;
	if (r->active)
		r->active->a_prev = x;
	r->active = x;
	x->best_prio = 0;
	x_err(x, &x->best, BT_NOT_FOUND, "no endpoint of this registry can %s",
	      x->caps == IMG_CAP_PUSH ? "push" : x->caps == IMG_CAP_RESOLVE ? "resolve" : "pull");

	if (x->kind == XK_BLOB && x->size >= 0 && x->delivered >= x->size) {
		/* nothing left to fetch (resumed at the end, or an empty blob) */
		x_ok_blob(x);
		return;
	}
	if (x->urls && x->urls[0]) {
		x->on_foreign = true;
		x->url_i = 0;
		x->abs_url = bt_xstrdup(x->urls[0]);
		x_reset_for_endpoint(x);
		x_issue(x);
		return;
	}
	x->ep = (size_t)-1;
	x_next_endpoint(x, NULL);
}

static void x_finish(img_xfer *x, const bt_err *err)
{
	img_registry *r = x->reg;
	bt_err ok = { 0 };

	if (x->state == XS_DONE)
		return;
	if (x->h) {
		curl_multi_remove_handle(r->multi, x->h);
		curl_easy_cleanup(x->h);
		x->h = NULL;
	}
	if (x->state == XS_TIMER)
		timer_remove(x);
	if (x->state == XS_AUTHWAIT && x->waiting_on) {
		for (img_xfer **pp = &x->waiting_on->waiters; *pp; pp = &(*pp)->wait_next)
			if (*pp == x) {
				*pp = x->wait_next;
				break;
			}
		x->waiting_on = NULL;
	}
	x->state = XS_DONE;
	if (x->a_prev)
		x->a_prev->a_next = x->a_next;
	else if (r->active == x)
		r->active = x->a_next;
	if (x->a_next)
		x->a_next->a_prev = x->a_prev;
	x->a_prev = x->a_next = NULL;
	if (!err)
		err = &ok;
	bt_digest_free(&x->dg);

	if (x->kind == XK_TOKEN) {
		if (x->data) {
			explicit_bzero((void *)x->data, x->data_len);
			free((void *)x->data);
			x->data = NULL;
		}
		token_done(x, err);
	} else if (x->on_done) {
		x->on_done(x->arg, err);
	}
	pthread_mutex_lock(&x->mu);
	x->err = *err;
	x->done = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	x_unref(x); /* the transfer thread's reference */
}

/* ---- the transfer thread ------------------------------------------------------------------ */

static void run_cmd(img_registry *r, struct cmd *c)
{
	img_xfer *x = c->x;
	bt_err err;

	switch (c->op) {
	case CMD_START:
		if (x->state == XS_NEW)
			x_start(x_ref(x)); /* the transfer thread's reference, dropped by x_finish */
		break;
	case CMD_RESUME:
		if (x->state == XS_RUNNING && x->paused && x->h) {
			x->paused = false;
			x->moved_ms = bt_mono_ms(); /* a pause is not a stall */
			curl_easy_pause(x->h, CURLPAUSE_CONT);
		}
		break;
	case CMD_CANCEL:
		if (x->state != XS_DONE && x->state != XS_NEW) {
			x_err(x, &err, BT_CANCELLED, "cancelled");
			x_finish(x, &err);
		}
		break;
	}
	(void)r;
}

static void drain_cmds(img_registry *r, bool *stopping)
{
	struct cmd *c;

	pthread_mutex_lock(&r->mu);
	c = r->cmd_head;
	r->cmd_head = r->cmd_tail = NULL;
	*stopping = r->stopping;
	pthread_mutex_unlock(&r->mu);
	while (c) {
		struct cmd *next = c->next;
		if (*stopping && c->op == CMD_START && c->x->state == XS_NEW) {
			bt_err err;
			x_err(c->x, &err, BT_CANCELLED, "the registry client is shutting down");
			x_ref(c->x); /* the reference x_finish drops */
			x_finish(c->x, &err);
		} else {
			run_cmd(r, c);
		}
		x_unref(c->x);
		free(c);
		c = next;
	}
}

static void run_timers(img_registry *r)
{
	int64_t now = bt_mono_ms();
	img_xfer **pp = &r->timers;

	while (*pp) {
		img_xfer *x = *pp;
		if (x->due_ms <= now) {
			*pp = x->timer_next;
			x->timer_next = NULL;
			x->state = XS_RUNNING;
			if (x->kind == XK_PUSH_BLOB && (x->phase == PH_PUT || x->phase == PH_PATCH || x->phase == PH_FINAL))
				x->phase = PH_POST; /* a failed upload starts a new session */
			x_issue(x);
			pp = &r->timers; /* x_issue may have changed the list */
			continue;
		}
		pp = &x->timer_next;
	}
}

static int next_timeout(img_registry *r)
{
	int64_t now = bt_mono_ms(), t = 1000;

	for (img_xfer *x = r->timers; x; x = x->timer_next)
		t = BT_MIN(t, BT_MAX(x->due_ms - now, 0));
	return (int)t;
}

static void *thread_main(void *arg)
{
	img_registry *r = arg;
	bool stopping = false;

	for (;;) {
		CURLMsg *m;
		int running, left;

		drain_cmds(r, &stopping);
		if (stopping) {
			while (r->active) {
				bt_err err;
				x_err(r->active, &err, BT_CANCELLED, "the registry client is shutting down");
				x_finish(r->active, &err);
			}
			break;
		}
		run_timers(r);
		curl_multi_perform(r->multi, &running);
		while ((m = curl_multi_info_read(r->multi, &left))) {
			img_xfer *x = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			x_complete(x, m->data.result);
		}
		curl_multi_poll(r->multi, NULL, 0, next_timeout(r), NULL);
	}
	return NULL;
}

/* ---- public: registry and repositories ---------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

img_registry *img_registry_new(const img_registry_opts *o, bt_err *e)
{
	img_registry_opts d = { 0 };
	img_registry *r;
	const curl_version_info_data *vi;

	if (!o)
		o = &d;
	pthread_once(&curl_once, curl_init_once);
	r = bt_xzalloc(sizeof(*r));
	r->hosts_dir = o->hosts_dir ? bt_xstrdup(o->hosts_dir) : NULL;
	r->docker_config = o->docker_config ? bt_xstrdup(o->docker_config) : NULL;
	r->user_agent = bt_xstrdup(o->user_agent ? o->user_agent : "berth/" BERTH_VERSION);
	for (size_t i = 0; i < o->n_creds; i++)
		img_creds_add(&r->creds, o->creds[i].host, o->creds[i].username, o->creds[i].password,
			      o->creds[i].identity_token);
	for (const char *const *s = o->resolve; s && *s; s++)
		r->resolve = curl_slist_append(r->resolve, *s);
	r->max_host = o->max_host_connections > 0 ? o->max_host_connections : 6;
	r->max_total = o->max_total_connections > 0 ? o->max_total_connections : 64;
	r->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	r->low_limit = o->low_speed_limit > 0 ? o->low_speed_limit : 1024;
	r->low_time = o->low_speed_time_s > 0 ? o->low_speed_time_s : 30;
	r->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 120000;
	r->max_retries = o->max_retries > 0 ? o->max_retries : o->max_retries < 0 ? 0 : 4;
	r->retry_base_ms = o->retry_base_ms > 0 ? o->retry_base_ms : 500;
	r->retry_max_ms = o->retry_max_ms > 0 ? o->retry_max_ms : 10000;
	r->max_retry_after_s = o->max_retry_after_s > 0 ? o->max_retry_after_s : 60;
	bt_random_bytes(&r->rng, sizeof(r->rng));

	vi = curl_version_info(CURLVERSION_NOW);
	if (vi && vi->age >= CURLVERSION_NINTH && vi->cainfo) {
		bt_err ce;
		if (bt_read_file(vi->cainfo, CA_FILE_MAX, &r->system_ca, &r->system_ca_len, &ce) < 0)
			r->system_ca = NULL;
	}

	r->multi = curl_multi_init();
	if (!r->multi) {
		bt_err_set(e, BT_INTERNAL, "registry client: curl_multi_init failed");
		goto fail;
	}
	curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS, r->max_host);
	curl_multi_setopt(r->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, r->max_total);
	curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, r->max_total);
	curl_multi_setopt(r->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	pthread_mutex_init(&r->mu, NULL);
	if (pthread_create(&r->thread, NULL, thread_main, r) != 0) {
		bt_err_set(e, BT_INTERNAL, "registry client: cannot start the transfer thread");
		pthread_mutex_destroy(&r->mu);
		goto fail;
	}
	r->thread_id = r->thread;
	return r;
fail:
	if (r->multi)
		curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->resolve);
	img_creds_clear(&r->creds);
	free(r->system_ca);
	free(r->hosts_dir);
	free(r->docker_config);
	free(r->user_agent);
	free(r);
	return NULL;
}

void img_registry_free(img_registry **rp)
{
	img_registry *r = *rp;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	pthread_mutex_unlock(&r->mu);
	curl_multi_wakeup(r->multi);
	pthread_join(r->thread, NULL);
	auth_free_all(r);
	curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->resolve);
	img_creds_clear(&r->creds);
	free(r->system_ca);
	free(r->hosts_dir);
	free(r->docker_config);
	free(r->user_agent);
	pthread_mutex_destroy(&r->mu);
	free(r);
	*rp = NULL;
}

/* System CAs plus the endpoint's own, as one PEM blob for CURLOPT_CAINFO_BLOB. */
static int load_cas(img_registry *r, const img_endpoint *ep, char **blob, size_t *len, bt_err *e)
{
	bt_buf b = { 0 };

	*blob = NULL;
	*len = 0;
	if (!ep->ca_files)
		return 0;
	if (r->system_ca)
		bt_buf_append(&b, r->system_ca, r->system_ca_len);
	for (char **f = ep->ca_files; *f; f++) {
		_cleanup_free_ char *text = NULL;
		size_t n;
		if (bt_read_file(*f, CA_FILE_MAX, &text, &n, e) < 0) {
			bt_buf_free(&b);
			return bt_err_wrap(e, "CA file of %s", ep->host);
		}
		bt_buf_append(&b, "\n", 1);
		bt_buf_append(&b, text, n);
	}
	*len = b.len;
	*blob = bt_buf_steal(&b);
	return 0;
}

img_repo *img_repo_open(img_registry *r, const img_ref *ref, const img_repo_opts *o, bt_err *e)
{
	img_repo_opts d = { 0 };
	img_repo *p;
	char nb[IMG_REF_STR_MAX];

	if (!o)
		o = &d;
	p = bt_xzalloc(sizeof(*p));
	atomic_init(&p->refs, 1);
	p->reg = r;
	p->ref = *ref;
	p->push = o->push;
	if (o->cred)
		img_creds_add(&p->user, ref->domain, o->cred->username, o->cred->password, o->cred->identity_token);
	snprintf(p->name, sizeof(p->name), "%s", img_ref_name(ref, nb));
	if (img_hosts_load(r->hosts_dir, ref->domain, o->plain_http, &p->hosts, e) < 0) {
		bt_err_wrap(e, "%s", p->name);
		free(p);
		return NULL;
	}
	p->ca_blob = bt_xcalloc(p->hosts.n, sizeof(*p->ca_blob));
	p->ca_len = bt_xcalloc(p->hosts.n, sizeof(*p->ca_len));
	p->use_http = bt_xcalloc(p->hosts.n, sizeof(*p->use_http));
	for (size_t i = 0; i < p->hosts.n; i++)
		if (load_cas(r, &p->hosts.v[i], &p->ca_blob[i], &p->ca_len[i], e) < 0)
			goto fail;
	if (!r->docker_config || r->docker_config[0]) {
		if (img_creds_load_docker(&p->creds, r->docker_config, e) < 0)
			goto fail;
	}
	return p;
fail:
	bt_err_wrap(e, "%s", p->name);
	repo_unref(p);
	return NULL;
}

/* ---- public: transfers -------------------------------------------------------------------- */

static int check_digest(const char *d, bt_err *e)
{
	if (!d)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "no digest");
	return bt_digest_validate(d, NULL, e);
}

/* Submits x (caller's reference in *out, or dropped when out is NULL). */
static int start(img_xfer *x, img_xfer **out, bt_err *e)
{
	if (out)
		*out = x_ref(x);
	if (submit(x->reg, x, CMD_START) < 0) {
		if (out) {
			x_unref(*out);
			*out = NULL;
		}
		x_unref(x);
		return bt_err_set(e, BT_CANCELLED, "the registry client is shutting down");
	}
	x_unref(x);
	return 0;
}

int img_fetch_blob(img_repo *p, const img_fetch_opts *o, img_xfer **out, bt_err *e)
{
	img_xfer *x;

	*out = NULL;
	if (!o->on_data)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "fetch blob: no on_data");
	if (check_digest(o->digest, e) < 0)
		return bt_err_wrap(e, "%s: fetch blob", p->name);
	if (o->offset < 0 || (o->size >= 0 && o->offset > o->size))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "fetch blob %s: offset %lld outside the blob", o->digest,
				  (long long)o->offset);
	if (o->digest_state && (int64_t)bt_digest_count(o->digest_state) != o->offset)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "fetch blob %s: digest state covers %llu bytes, not %lld",
				  o->digest, (unsigned long long)bt_digest_count(o->digest_state), (long long)o->offset);
	x = x_new(p->reg, p, XK_BLOB);
	x->phase = PH_GET;
	x->caps = IMG_CAP_PULL;
	x->object = bt_xstrdup(o->digest);
	snprintf(x->what, sizeof(x->what), "blob %s", o->digest);
	x->size = o->size;
	x->max = o->size < 0 ? o->max_size : o->size;
	x->delivered = o->offset;
	atomic_store(&x->progress, o->offset);
	if (o->offset == 0)
		x->dg = bt_digest_new();
	else if (o->digest_state)
		x->dg = o->digest_state;
	for (const char *const *u = o->urls; u && *u; u++)
		if (bt_startswith(*u, "http://") || bt_startswith(*u, "https://"))
			bt_strv_push(&x->urls, *u);
	x->on_data = o->on_data;
	x->on_done = o->on_done;
	x->arg = o->arg;
	return start(x, out, e);
}

int img_push_blob_start(img_repo *p, const img_push_opts *o, img_xfer **out, bt_err *e)
{
	img_xfer *x;

	*out = NULL;
	if (check_digest(o->digest, e) < 0)
		return bt_err_wrap(e, "push blob");
	if (!p->push)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "push blob %s: %s was not opened for push", o->digest, p->name);
	if (o->size < 0 || (!o->data && !o->on_read) || (o->data && o->on_read))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "push blob %s: need a size and one source", o->digest);
	if (o->mount_from && img_ref_check_path(o->mount_from, e) < 0)
		return bt_err_wrap(e, "push blob %s: mount from \"%.100s\"", o->digest, o->mount_from);
	x = x_new(p->reg, p, XK_PUSH_BLOB);
	x->caps = IMG_CAP_PUSH;
	x->object = bt_xstrdup(o->digest);
	snprintf(x->what, sizeof(x->what), "push blob %s", o->digest);
	x->size = o->size;
	x->data = o->data;
	x->on_read = o->on_read;
	x->chunk = o->chunk_size;
	x->mount_from = o->mount_from && strcmp(o->mount_from, p->ref.path) != 0 ? bt_xstrdup(o->mount_from) : NULL;
	x->phase = x->mount_from ? PH_MOUNT : PH_POST;
	x->on_done = o->on_done;
	x->arg = o->arg;
	return start(x, out, e);
}

/* Runs x to its end on the transfer thread while this thread waits. */
static int run_sync(img_xfer *x, bt_err *e)
{
	img_xfer *h = NULL;

	assert(!pthread_equal(pthread_self(), x->reg->thread_id));
	if (start(x_ref(x), &h, e) < 0)
		return -1;
	img_xfer_free(&h);
	return img_xfer_wait(x, e);
}

static bool tag_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > IMG_REF_TAG_MAX || t[0] == '.' || t[0] == '-')
		return false;
	return strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

int img_resolve(img_repo *p, const char *object, img_resolved *out, bt_err *e)
{
	img_xfer *x;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!object)
		object = img_ref_object(&p->ref);
	if (bt_startswith(object, "sha256:") ? check_digest(object, e) < 0 : !tag_ok(object))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: resolve \"%.100s\": not a tag or digest", p->name, object);
	x = x_new(p->reg, p, XK_RESOLVE);
	x->caps = IMG_CAP_RESOLVE;
	x->object = bt_xstrdup(object);
	snprintf(x->what, sizeof(x->what), "resolve %.130s", object);
	x->max = IMG_MAX_MANIFEST;
	x->phase = PH_HEAD;
	rc = run_sync(x, e);
	if (rc == 0)
		*out = x->res;
	x_unref(x);
	return rc;
}

static int fetch_mem(img_repo *p, enum xkind kind, const char *digest, size_t max, char **data, size_t *len,
		     char *media_type, bt_err *e)
{
	img_xfer *x;
	int rc;

	*data = NULL;
	*len = 0;
	if (check_digest(digest, e) < 0)
		return bt_err_wrap(e, "%s: fetch", p->name);
	x = x_new(p->reg, p, kind);
	x->caps = IMG_CAP_PULL;
	x->object = bt_xstrdup(digest);
	snprintf(x->what, sizeof(x->what), "%s %s", kind == XK_MANIFEST ? "manifest" : "blob", digest);
	x->max = (int64_t)max;
	x->phase = PH_GET;
	rc = run_sync(x, e);
	if (rc == 0) {
		*len = x->body.len;
		*data = x->body.data ? bt_buf_steal(&x->body) : bt_xstrdup("");
		if (media_type)
			snprintf(media_type, IMG_MEDIA_TYPE_MAX, "%s", x->res.media_type);
	}
	x_unref(x);
	return rc;
}

int img_fetch_manifest(img_repo *p, const char *digest, size_t max, char **data, size_t *len,
		       char media_type[IMG_MEDIA_TYPE_MAX], bt_err *e)
{
	return fetch_mem(p, XK_MANIFEST, digest, max ? max : IMG_MAX_MANIFEST, data, len, media_type, e);
}

int img_fetch_blob_mem(img_repo *p, const char *digest, size_t max, char **data, size_t *len, bt_err *e)
{
	return fetch_mem(p, XK_BLOB_MEM, digest, max ? max : IMG_MAX_CONFIG, data, len, NULL, e);
}

int img_blob_exists(img_repo *p, const char *digest, int64_t *size, bt_err *e)
{
	img_xfer *x;
	int rc;

	if (check_digest(digest, e) < 0)
		return bt_err_wrap(e, "%s: blob exists", p->name);
	x = x_new(p->reg, p, XK_BLOB_HEAD);
	x->caps = p->push ? IMG_CAP_PUSH : IMG_CAP_PULL;
	x->object = bt_xstrdup(digest);
	snprintf(x->what, sizeof(x->what), "blob %s", digest);
	x->phase = PH_HEAD;
	rc = run_sync(x, e);
	if (rc == 0) {
		rc = x->exists ? 1 : 0;
		if (size)
			*size = x->exists ? x->res.size : -1;
	}
	x_unref(x);
	return rc;
}

int img_push_blob(img_repo *p, const img_push_opts *o, bool *mounted, bt_err *e)
{
	img_xfer *x = NULL;
	int rc;

	if (img_push_blob_start(p, o, &x, e) < 0)
		return -1;
	rc = img_xfer_wait(x, e);
	if (mounted)
		*mounted = rc == 0 && x->mounted;
	img_xfer_free(&x);
	return rc;
}

int img_push_manifest(img_repo *p, const char *tag_or_digest, const char *media_type, const void *data, size_t len,
		      char digest_out[BT_DIGEST_STR_LEN], bt_err *e)
{
	img_xfer *x;
	int rc;

	if (!p->push)
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s: push manifest: not opened for push", p->name);
	if (!tag_or_digest || !*tag_or_digest || strchr(tag_or_digest, '/') || !media_type || !*media_type ||
	    strpbrk(media_type, "\r\n") || len > IMG_MAX_MANIFEST)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s: push manifest: bad tag, media type or size", p->name);
	x = x_new(p->reg, p, XK_PUSH_MANIFEST);
	x->caps = IMG_CAP_PUSH;
	x->object = bt_xstrdup(tag_or_digest);
	snprintf(x->what, sizeof(x->what), "push manifest %.130s", tag_or_digest);
	x->media_type = bt_xstrdup(media_type);
	x->data = data;
	x->data_len = len;
	x->size = (int64_t)len;
	x->phase = PH_PUT;
	rc = run_sync(x, e);
	if (rc == 0 && digest_out)
		snprintf(digest_out, BT_DIGEST_STR_LEN, "%s", x->res.digest);
	x_unref(x);
	return rc;
}
