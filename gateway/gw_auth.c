/*
 * gw_auth — who a remote client is and what it may do.
 *
 * Remote clients reach the gateway over TCP with CURVE.  Their public keys
 * are listed in the authorized keys file, one per line:
 *
 *   KEY  ro|rw  PATTERN[,PATTERN...]  [NAME]
 *
 * KEY is the client's public key (z85, 40 characters); PATTERNs are shell
 * patterns on namespace names ("team-*"); NAME labels the key in logs and
 * in the principal (default: the key's first 8 characters).  '#' starts a
 * comment when it stands alone as a field ("# a note"), or when a line's
 * first field starts with it and is not a key (keys may contain '#').
 *
 * libzmq asks the ZAP handler here about every CURVE handshake: a key not
 * in the file is refused before any request is read; a known
 * key's requests carry it as the connection's User-Id, which the forwarding
 * loop turns into the principal it sets on every request.
 */
#define _GNU_SOURCE
#include "gw_auth.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "bt_log.h"
#include "bt_rpc.h"
#include "bt_util.h"

#define KEY_LEN 40
#define MAX_KEYS 10000

struct gw_auth {
	gw_key *keys;
	size_t n;
	void *zap;
	pthread_t thread;
	bool running;
	atomic_int stop;
};

static bool z85_ok(const char *s, size_t n)
{
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
	if (n != KEY_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(alphabet, s[i]))
			return false;
	return true;
}

static void key_clear(gw_key *k)
{
	free(k->name);
	bt_strv_free(k->patterns);
	memset(k, 0, sizeof(*k));
}

/* One line of the file; 0 with nothing added for blanks and comments. */
static int parse_line(gw_auth *a, char *line, const char *path, int lineno, bt_err *e)
{
	char *save = NULL, *f[4] = { 0 };
	int nf = 0;
	bool extra = false;

	/* '#' is also a z85 character, so a key may hold one: a comment is a
	 * field that is "#" alone, or a first field starting with '#' that is
	 * not 40 characters long */
	for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (!strcmp(t, "#") || (nf == 0 && t[0] == '#' && strlen(t) != KEY_LEN))
			break;
		if (nf == 4) {
			extra = true;
			break;
		}
		f[nf++] = t;
	}
	if (nf == 0)
		return 0;
	if (nf < 3 || extra)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s:%d: expected KEY ro|rw PATTERN[,PATTERN...] [NAME]", path,
				  lineno);
	if (!z85_ok(f[0], strlen(f[0])))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s:%d: the key is not a 40-character z85 public key", path,
				  lineno);
	if (strcmp(f[1], "ro") && strcmp(f[1], "rw"))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s:%d: access must be ro or rw, not \"%s\"", path, lineno,
				  f[1]);
	if (a->n == MAX_KEYS)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "%s: more than %d keys", path, MAX_KEYS);
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->keys[i].key, f[0]))
			return bt_err_set(e, BT_INVALID_ARGUMENT, "%s:%d: the key is listed twice", path, lineno);
	a->keys = bt_xrealloc(a->keys, (a->n + 1) * sizeof(*a->keys));
	gw_key *k = &a->keys[a->n++];
	memset(k, 0, sizeof(*k));
	memcpy(k->key, f[0], KEY_LEN);
	k->read_only = !strcmp(f[1], "ro");
	k->name = f[3] ? bt_xstrdup(f[3]) : bt_xstrndup(f[0], 8);
	char *psave = NULL;
	for (char *p = strtok_r(f[2], ",", &psave); p; p = strtok_r(NULL, ",", &psave))
		bt_strv_push(&k->patterns, p);
	if (!k->patterns)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s:%d: no namespace pattern", path, lineno);
	return 0;
}

int gw_auth_load(const char *path, gw_auth **out, bt_err *e)
{
	gw_auth *a = bt_xzalloc(sizeof(*a));
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;

	atomic_init(&a->stop, 0);
	if (!f) {
		if (errno != ENOENT) {
			bt_err_errno(e, errno, "open %s", path);
			gw_auth_free(&a);
			return -1;
		}
		bt_log_warn("%s does not exist: every remote key will be refused", path);
		*out = a;
		return 0;
	}
	while (rc == 0 && getline(&line, &cap, f) >= 0)
		rc = parse_line(a, line, path, ++lineno, e);
	free(line);
	fclose(f);
	if (rc < 0) {
		gw_auth_free(&a);
		return -1;
	}
	*out = a;
	return 0;
}

const gw_key *gw_auth_lookup(const gw_auth *a, const char *key)
{
	for (size_t i = 0; a && key && i < a->n; i++)
		if (!strcmp(a->keys[i].key, key))
			return &a->keys[i];
	return NULL;
}

bool gw_key_allows(char *const *patterns, size_t n, const char *ns)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(patterns[i], ns, 0) == 0)
			return true;
	return false;
}

bool gw_method_reads(const char *method)
{
	static const char *const reads[] = { "Get",   "List",	 "Info",   "Read",     "Status", "ListStatuses",
					     "Stat",  "Mounts", "Usage", "Wait",     "Metrics", "ListPids",
					     "Subscribe", "Health", "Version", "NamespaceUsage", "ListResources" };
	for (size_t i = 0; i < BT_ARRAY_LEN(reads); i++)
		if (!strcmp(method, reads[i]))
			return true;
	return false;
}

/* --- ZAP (RFC 27) ------------------------------------------------------------------------- */

static void zap_reply(void *s, const zmq_msg_t *req, int nreq, const char *status, const char *text,
		      const char *user)
{
	/* version, request id, status code, status text, user id, metadata */
	zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(s, nreq > 1 ? zmq_msg_data((zmq_msg_t *)&req[1]) : "", nreq > 1 ? zmq_msg_size((zmq_msg_t *)&req[1]) : 0,
		 ZMQ_SNDMORE);
	zmq_send(s, status, strlen(status), ZMQ_SNDMORE);
	zmq_send(s, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(s, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(s, "", 0, 0);
}

static void zap_one(gw_auth *a)
{
	zmq_msg_t f[8];
	int n = 0;
	bool overflow;

	if (bt_recv_frames(a->zap, f, 8, &n, &overflow, 0) < 0)
		return;
	/* version, request id, domain, address, identity, mechanism, credentials… */
	const char *mech = n > 5 ? zmq_msg_data(&f[5]) : "";
	size_t mlen = n > 5 ? zmq_msg_size(&f[5]) : 0;
	if (n < 7 || overflow || mlen != 5 || memcmp(mech, "CURVE", 5) || zmq_msg_size(&f[6]) != 32) {
		zap_reply(a->zap, f, n, "400", "CURVE required", "");
	} else {
		char z85[KEY_LEN + 1];
		zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
		const gw_key *k = gw_auth_lookup(a, z85);
		if (k) {
			zap_reply(a->zap, f, n, "200", "OK", z85);
		} else {
			bt_log_warn("refused a connection with unknown key %s", z85);
			zap_reply(a->zap, f, n, "400", "unknown key", "");
		}
	}
	bt_close_frames(f, n);
}

static void *zap_main(void *arg)
{
	gw_auth *a = arg;
	zmq_pollitem_t it = { .socket = a->zap, .events = ZMQ_POLLIN };

	while (!atomic_load(&a->stop)) {
		if (zmq_poll(&it, 1, 200) > 0)
			zap_one(a);
	}
	return NULL;
}

int gw_auth_start(gw_auth *a, bt_err *e)
{
	a->zap = bt_zmq_socket(ZMQ_REP, e);
	if (!a->zap)
		return -1;
	if (zmq_bind(a->zap, "inproc://zeromq.zap.01") < 0)
		return bt_err_set(e, BT_INTERNAL, "bind the ZAP handler: %s", zmq_strerror(errno));
	if (pthread_create(&a->thread, NULL, zap_main, a) != 0)
		return bt_err_set(e, BT_INTERNAL, "cannot start the ZAP handler thread");
	a->running = true;
	return 0;
}

void gw_auth_free(gw_auth **ap)
{
	gw_auth *a = *ap;
	if (!a)
		return;
	if (a->running) {
		atomic_store(&a->stop, 1);
		pthread_join(a->thread, NULL);
	}
	bt_zmq_close(&a->zap);
	for (size_t i = 0; i < a->n; i++)
		key_clear(&a->keys[i]);
	free(a->keys);
	free(a);
	*ap = NULL;
}
