/*
 * bt_config — the table of configuration keys, loading and typed lookups.
 */
#define _GNU_SOURCE
#include "bt_config.h"

#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "bt_log.h"
#include "bt_toml.h"
#include "bt_util.h"

typedef enum { K_STR, K_INT, K_BOOL, K_DURATION, K_SIZE } key_kind;

typedef struct key_def {
	const char *path; /* a '*' segment matches any one table name */
	key_kind kind;
	const char *dflt;
	const char *doc;
} key_def;

/* Every key berth reads: the one place defaults live. */
static const key_def keys[] = {
	{ "root", K_STR, BT_DEFAULT_ROOT,
	  "State directory; each service keeps its own subdirectory. BERTH_ROOT overrides." },
	{ "run", K_STR, BT_DEFAULT_RUN,
	  "Runtime directory: internal sockets (svc/), task state. BERTH_RUN overrides." },
	{ "log.level", K_STR, "info", "error, warn, info or debug. BERTH_LOG_LEVEL overrides." },
	{ "gateway.address", K_STR, "", "Public endpoint; empty means ipc://$run/berth.sock." },
	{ "gateway.unix_address", K_STR, "",
	  "Public unix stream socket (unix:///PATH, the envelope without ZeroMQ); empty means "
	  "unix://$run/berth-unix.sock, \"off\" none." },
	{ "gateway.socket_mode", K_STR, "0660", "Mode of the public unix sockets (octal)." },
	{ "gateway.socket_group", K_STR, "", "Group owning the public unix sockets; empty keeps root's." },
	{ "gateway.tcp_address", K_STR, "",
	  "Endpoint for remote clients (tcp://HOST:PORT), secured with CURVE; empty means none." },
	{ "gateway.key_file", K_STR, "",
	  "The gateway's CURVE secret key (z85); empty means $root/gateway/server.key, made on first use." },
	{ "gateway.authorized_keys", K_STR, "/etc/berth/authorized_keys",
	  "Remote clients' public keys: KEY ro|rw NAMESPACE-PATTERN[,…] [NAME] per line." },
	{ "gateway.event_queue", K_INT, "1024",
	  "Events held for one subscriber that reads slowly; beyond, its oldest are dropped (and counted)." },
	{ "gateway.max_in_flight", K_INT, "1024", "Requests one client may have in flight at the gateway." },
	{ "gateway.connect_grace", K_DURATION, "2s",
	  "How long a request waits for a backend that is not connected (restarting) before UNAVAILABLE." },
	{ "gc.delay", K_DURATION, "1s",
	  "Collect a namespace's garbage this long after a deletion in it (deletions meanwhile join the same "
	  "collection); 0 means only on demand (berth gc)." },
	{ "services.*.address", K_STR, "",
	  "Endpoint of an internal service (content, snapshots, images, tasks); "
	  "empty means ipc://$run/svc/NAME.sock." },
	{ "snapshots.driver", K_STR, "overlayfs",
	  "Driver of this berth-snapshotd instance: overlayfs or native." },
	{ "snapshots.name", K_STR, "",
	  "Name this berth-snapshotd instance serves under; empty means its driver's name." },
	{ "snapshots.default", K_STR, "",
	  "Snapshotter used when a request names none; empty means the local instance's name." },
	{ "snapshotters.*.address", K_STR, "",
	  "Endpoint of a further snapshotter NAME (any process speaking the snapshots protocol)." },
	{ "images.hosts_dir", K_STR, "/etc/berth/certs.d",
	  "Per-registry settings: <dir>/<host>/hosts.toml as containerd reads them, or Docker's certs.d files." },
	{ "images.docker_config", K_STR, "",
	  "Docker config.json whose auths hold registry credentials; empty means $DOCKER_CONFIG or ~/.docker." },
	{ "images.max_parallel_layers", K_INT, "4", "Layers one pull downloads at once." },
	{ "images.auths.*.username", K_STR, "", "Registry credentials for host * (as in [images.auths.\"host:5000\"])." },
	{ "images.auths.*.password", K_STR, "", "Its password." },
	{ "content.lock_timeout", K_DURATION, "30s",
	  "An ingest's writer loses its hold on the ref after this long without writing." },
	{ "content.max_ingests", K_INT, "4096", "Ingests in progress per namespace." },
};

static const key_def *find_key(const char *path)
{
	for (size_t i = 0; i < BT_ARRAY_LEN(keys); i++) {
		const char *p = keys[i].path, *q = path;
		for (;;) {
			if (*p == '*') {
				const char *dot = strchr(q, '.');
				if (!dot)
					break;
				/* allow a quoted segment containing dots */
				if (*q == '"') {
					const char *end = strchr(q + 1, '"');
					if (!end || end[1] != '.')
						break;
					dot = end + 1;
				}
				p++;
				q = dot;
				continue;
			}
			if (*p != *q)
				break;
			if (!*p)
				return &keys[i];
			p++;
			q++;
		}
	}
	return NULL;
}

static const bt_toml *lookup(const bt_config *c, const char *path, const key_def **def)
{
	*def = find_key(path);
	assert(*def && "configuration key missing from the table");
	return c && c->doc ? bt_toml_path(c->doc, path) : NULL;
}

const char *bt_config_str(const bt_config *c, const char *path)
{
	const key_def *d;
	const bt_toml *v = lookup(c, path, &d);
	const char *s = v ? bt_toml_str(v) : NULL;
	return s ? s : d->dflt;
}

int64_t bt_config_int(const bt_config *c, const char *path)
{
	const key_def *d;
	const bt_toml *v = lookup(c, path, &d);
	int64_t n;
	if (v && bt_toml_int(v, &n) == 0)
		return n;
	return strtoll(d->dflt, NULL, 10);
}

bool bt_config_bool(const bt_config *c, const char *path)
{
	const key_def *d;
	const bt_toml *v = lookup(c, path, &d);
	bool b;
	if (v && bt_toml_bool(v, &b) == 0)
		return b;
	return strcmp(d->dflt, "true") == 0;
}

int64_t bt_config_duration_ms(const bt_config *c, const char *path)
{
	int64_t ms = 0;
	if (bt_parse_duration_ms(bt_config_str(c, path), &ms) < 0)
		bt_parse_duration_ms(find_key(path)->dflt, &ms);
	return ms;
}

uint64_t bt_config_size(const bt_config *c, const char *path)
{
	uint64_t n = 0;
	if (bt_parse_size(bt_config_str(c, path), &n) < 0)
		bt_parse_size(find_key(path)->dflt, &n);
	return n;
}

/* Walks the document: every leaf must be a known key of the right type. */
static int check_table(const bt_toml *t, bt_buf *prefix, bt_err *e)
{
	for (size_t i = 0; i < bt_toml_len(t); i++) {
		const char *k = bt_toml_key_at(t, i);
		const bt_toml *v = bt_toml_at(t, i);
		size_t saved = prefix->len;
		bool quote = strchr(k, '.') != NULL;

		if (prefix->len)
			bt_buf_append(prefix, ".", 1);
		bt_buf_appendf(prefix, quote ? "\"%s\"" : "%s", k);
		if (bt_toml_kind(v) == BT_TOML_TABLE) {
			if (check_table(v, prefix, e) < 0)
				return -1;
		} else {
			const key_def *d = find_key(prefix->data);
			if (!d) {
				bt_log_warn("config: unknown key %s (ignored)", prefix->data);
			} else {
				bool ok;
				switch (d->kind) {
				case K_INT:
					ok = bt_toml_kind(v) == BT_TOML_INT;
					break;
				case K_BOOL:
					ok = bt_toml_kind(v) == BT_TOML_BOOL;
					break;
				case K_DURATION: {
					int64_t ms;
					ok = bt_toml_str(v) && bt_parse_duration_ms(bt_toml_str(v), &ms) == 0;
					break;
				}
				case K_SIZE: {
					uint64_t n;
					ok = bt_toml_str(v) && bt_parse_size(bt_toml_str(v), &n) == 0;
					break;
				}
				default:
					ok = bt_toml_kind(v) == BT_TOML_STRING;
				}
				if (!ok) {
					static const char *const want[] = { "a string", "an integer", "a boolean",
									    "a duration string like \"30s\"",
									    "a size string like \"16MiB\"" };
					return bt_err_set(e, BT_INVALID_ARGUMENT, "key %s: expected %s", prefix->data,
							  want[d->kind]);
				}
			}
		}
		prefix->len = saved;
		prefix->data[saved] = '\0';
	}
	return 0;
}

int bt_config_load_file(const char *path, bt_config **out, bt_err *e)
{
	bt_config *c = bt_xzalloc(sizeof(*c));
	const char *env;

	if (path) {
		if (bt_toml_parse_file(path, &c->doc, e) < 0) {
			bt_err_wrap(e, "config %s", path);
			bt_config_free(&c);
			return -1;
		}
		c->path = bt_xstrdup(path);
		bt_buf prefix = { 0 };
		bt_buf_append(&prefix, "", 0);
		int rc = check_table(c->doc, &prefix, e);
		bt_buf_free(&prefix);
		if (rc < 0) {
			bt_err_wrap(e, "config %s", path);
			bt_config_free(&c);
			return -1;
		}
	}
	env = getenv("BERTH_ROOT");
	c->root = bt_xstrdup(env && *env ? env : bt_config_str(c, "root"));
	env = getenv("BERTH_RUN");
	c->run = bt_xstrdup(env && *env ? env : bt_config_str(c, "run"));
	if (c->root[0] != '/' || c->run[0] != '/') {
		bt_err_set(e, BT_INVALID_ARGUMENT, "config: root (%s) and run (%s) must be absolute paths", c->root,
			   c->run);
		bt_config_free(&c);
		return -1;
	}
	*out = c;
	return 0;
}

int bt_config_load(bt_config **out, bt_err *e)
{
	const char *env = getenv("BERTH_CONFIG");

	if (env && *env)
		return bt_config_load_file(env, out, e);
	if (access(BT_CONFIG_DEFAULT_PATH, F_OK) == 0)
		return bt_config_load_file(BT_CONFIG_DEFAULT_PATH, out, e);
	return bt_config_load_file(NULL, out, e);
}

void bt_config_free(bt_config **cp)
{
	bt_config *c = *cp;
	if (!c)
		return;
	bt_toml_free(&c->doc);
	free(c->path);
	free(c->root);
	free(c->run);
	free(c);
	*cp = NULL;
}

char *bt_config_service_address(const bt_config *c, const char *service)
{
	_cleanup_free_ char *key = bt_xasprintf("services.%s.address", service);
	const char *a = bt_config_str(c, key);
	if (a && *a)
		return bt_xstrdup(a);
	return bt_xasprintf("ipc://%s/svc/%s.sock", c->run, service);
}

const char *bt_config_local_snapshotter(const bt_config *c)
{
	const char *n = bt_config_str(c, "snapshots.name");
	return n && *n ? n : bt_config_str(c, "snapshots.driver");
}

const char *bt_config_default_snapshotter(const bt_config *c)
{
	const char *n = bt_config_str(c, "snapshots.default");
	return n && *n ? n : bt_config_local_snapshotter(c);
}

size_t bt_config_snapshotters(const bt_config *c, bt_snapshotter_ref **out)
{
	const bt_toml *t = c->doc ? bt_toml_get(c->doc, "snapshotters") : NULL;
	size_t n = 1, cap = 1 + (t ? bt_toml_len(t) : 0);
	bt_snapshotter_ref *v = bt_xcalloc(cap, sizeof(*v));

	v[0].name = bt_xstrdup(bt_config_local_snapshotter(c));
	v[0].address = bt_config_service_address(c, "snapshots");
	for (size_t i = 0; t && bt_toml_kind(t) == BT_TOML_TABLE && i < bt_toml_len(t); i++) {
		const bt_toml *entry = bt_toml_at(t, i);
		const bt_toml *addr = bt_toml_kind(entry) == BT_TOML_TABLE ? bt_toml_get(entry, "address") : NULL;
		const char *a = addr ? bt_toml_str(addr) : NULL;
		if (!a || !*a)
			continue;
		const char *name = bt_toml_key_at(t, i);
		if (strcmp(name, v[0].name) == 0) {
			/* configuring the local name's address moves it */
			free(v[0].address);
			v[0].address = bt_xstrdup(a);
			continue;
		}
		v[n].name = bt_xstrdup(name);
		v[n].address = bt_xstrdup(a);
		n++;
	}
	*out = v;
	return n;
}

void bt_snapshotters_free(bt_snapshotter_ref *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].address);
	}
	free(v);
}

char *bt_config_snapshotter_address(const bt_config *c, const char *name)
{
	bt_snapshotter_ref *v;
	size_t n = bt_config_snapshotters(c, &v);
	char *found = NULL;

	if (!name || !*name)
		name = bt_config_default_snapshotter(c);
	for (size_t i = 0; i < n && !found; i++)
		if (strcmp(v[i].name, name) == 0)
			found = bt_xstrdup(v[i].address);
	bt_snapshotters_free(v, n);
	return found;
}

char *bt_config_gateway_address(const bt_config *c)
{
	const char *a = bt_config_str(c, "gateway.address");
	if (a && *a)
		return bt_xstrdup(a);
	return bt_xasprintf("ipc://%s/berth.sock", c->run);
}

char *bt_config_gateway_unix_address(const bt_config *c)
{
	const char *a = bt_config_str(c, "gateway.unix_address");
	if (a && strcmp(a, "off") == 0)
		return NULL;
	if (a && *a)
		return bt_xstrdup(a);
	return bt_xasprintf("unix://%s/berth-unix.sock", c->run);
}

char *bt_config_state_dir(const bt_config *c, const char *service)
{
	return bt_xasprintf("%s/%s", c->root, service);
}

void bt_config_print_defaults(FILE *f)
{
	fprintf(f, "# berth configuration: every key with its default.\n");
	for (size_t i = 0; i < BT_ARRAY_LEN(keys); i++) {
		const key_def *d = &keys[i];
		fprintf(f, "\n# %s\n", d->doc);
		if (d->kind == K_INT || d->kind == K_BOOL)
			fprintf(f, "# %s = %s\n", d->path, d->dflt);
		else
			fprintf(f, "# %s = \"%s\"\n", d->path, d->dflt);
	}
}
