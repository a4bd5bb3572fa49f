/*
 * image_unpack — layers onto snapshots by chain ID, with a journal of the
 * temporary snapshots in use so that a crash leaves nothing behind.
 */
#define _GNU_SOURCE
#include "image_unpack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_log.h"
#include "bt_offload.h"
#include "bt_mount.h"
#include "bt_util.h"
#include "bt_toml.h"
#include "image_apply.h"
#include "image_gc.h"
#include "image_registry.h"

/* berth's own registry credentials: [images.auths."host"] username, password. */
static img_cred *config_creds(const bt_config *cfg, size_t *n)
{
	const bt_toml *images = cfg->doc ? bt_toml_get(cfg->doc, "images") : NULL;
	const bt_toml *auths = images && bt_toml_kind(images) == BT_TOML_TABLE ? bt_toml_get(images, "auths") : NULL;
	img_cred *v = NULL;

	*n = 0;
	for (size_t i = 0; auths && bt_toml_kind(auths) == BT_TOML_TABLE && i < bt_toml_len(auths); i++) {
		const bt_toml *t = bt_toml_at(auths, i);
		if (bt_toml_kind(t) != BT_TOML_TABLE)
			continue;
		const bt_toml *u = bt_toml_get(t, "username"), *p = bt_toml_get(t, "password");
		v = bt_xrealloc(v, (*n + 1) * sizeof(*v));
		memset(&v[*n], 0, sizeof(v[*n]));
		v[*n].host = bt_xstrdup(bt_toml_key_at(auths, i));
		v[*n].username = bt_xstrdup(u && bt_toml_str(u) ? bt_toml_str(u) : "");
		v[*n].password = bt_xstrdup(p && bt_toml_str(p) ? bt_toml_str(p) : "");
		(*n)++;
	}
	return v;
}

int image_env_init(image_env *env, const bt_config *cfg, const char *state_dir, bt_err *e)
{
	size_t ncreds;
	img_cred *creds;

	memset(env, 0, sizeof(*env));
	env->cfg = cfg;
	creds = config_creds(cfg, &ncreds);
	img_registry_opts ro = {
		.hosts_dir = bt_config_str(cfg, "images.hosts_dir"),
		.docker_config = *bt_config_str(cfg, "images.docker_config") ? bt_config_str(cfg, "images.docker_config")
									   : NULL,
		.creds = creds,
		.n_creds = ncreds,
	};
	env->registry = img_registry_new(&ro, e);
	for (size_t i = 0; i < ncreds; i++) {
		free(creds[i].host);
		free(creds[i].username);
		free(creds[i].password);
	}
	free(creds);
	if (!env->registry)
		return -1;
	env->content_addr = bt_config_service_address(cfg, "content");
	env->gateway_addr = bt_config_gateway_address(cfg);
	env->mnt_dir = bt_xasprintf("%s/images/mnt", cfg->run);
	env->journal_dir = bt_xasprintf("%s/tmp", state_dir);
	env->spool_dir = bt_xasprintf("%s/spool", state_dir);
	env->unpacks = xonce_new();
	env->fetches = xonce_new();
	if (bt_mkdir_p(env->mnt_dir, 0700, e) < 0 || bt_mkdir_p(env->journal_dir, 0700, e) < 0 ||
	    bt_rm_rf(env->spool_dir, e) < 0 || bt_mkdir_p(env->spool_dir, 0700, e) < 0) {
		image_env_clear(env);
		return -1;
	}
	return 0;
}

void image_env_clear(image_env *env)
{
	free(env->content_addr);
	free(env->gateway_addr);
	free(env->mnt_dir);
	free(env->journal_dir);
	free(env->spool_dir);
	xonce_free(&env->unpacks);
	xonce_free(&env->fetches);
	img_registry_free(&env->registry);
	memset(env, 0, sizeof(*env));
}

static berth_client *client_of(const char *what, const char *address, bt_err *e)
{
	berth_options o = { .address = address, .namespace_ = "default" };
	berth_error err;
	berth_client *c = berth_client_new(&o, &err);

	if (!c)
		bt_err_set(e, err.code, "%s: %s", what, err.message);
	return c;
}

berth_client *image_content_client(image_env *env, bt_err *e)
{
	return client_of("content service", env->content_addr, e);
}

berth_client *image_gateway_client(image_env *env, bt_err *e)
{
	return client_of("gateway", env->gateway_addr, e);
}

const char *image_snapshotter_name(image_env *env, const char *sn)
{
	return sn && *sn ? sn : bt_config_default_snapshotter(env->cfg);
}

berth_client *image_snap_client(image_env *env, const char *sn, bt_err *e)
{
	const char *name = image_snapshotter_name(env, sn);
	_cleanup_free_ char *addr = bt_config_snapshotter_address(env->cfg, name);
	berth_error err;

	if (!addr) {
		bt_err_set(e, BT_NOT_FOUND, "unknown snapshotter \"%s\"", name);
		return NULL;
	}
	berth_options o = { .address = addr, .namespace_ = "default" };
	berth_client *c = berth_client_new(&o, &err);
	if (!c)
		bt_err_set(e, err.code, "snapshotter %s: %s", name, err.message);
	return c;
}

typedef struct bounded {
	bt_buf buf;
	size_t max;
} bounded;

static int collect_bounded(void *arg, const void *data, size_t len)
{
	bounded *b = arg;
	if (b->buf.len + len > b->max)
		return -1;
	bt_buf_append(&b->buf, data, len);
	return 0;
}

int image_read_blob(berth_client *content, const char *ns, const char *digest, size_t max, char **out, size_t *len,
		    bt_err *e)
{
	bounded b = { .max = max };
	berth_error err;

	if (berth_content_read(content, ns, digest, 0, 0, collect_bounded, &b, &err) < 0) {
		bt_buf_free(&b.buf);
		if (err.code == BERTH_CANCELLED)
			return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "blob %s is larger than %zu bytes", digest, max);
		return bt_err_set(e, err.code, "read %s: %s", digest, err.message);
	}
	*len = b.buf.len;
	*out = b.buf.data ? bt_buf_steal(&b.buf) : bt_xstrdup("");
	return 0;
}

/* --- the journal of temporary snapshots ----------------------------------------- */

static char *journal_path(image_env *env, const char *key)
{
	char d[BT_DIGEST_STR_LEN];
	bt_digest_buf(key, strlen(key), d);
	return bt_xasprintf("%s/%.32s", env->journal_dir, d + 7);
}

static int journal_add(image_env *env, const char *ns, const char *sn, const char *key, bt_err *e)
{
	json_t *j = json_pack("{s:s, s:s, s:s}", "namespace", ns, "snapshotter", sn, "key", key);
	char *s = json_dumps(j, JSON_COMPACT);
	_cleanup_free_ char *path = journal_path(env, key);
	int rc = bt_write_file_atomic(path, s, strlen(s), 0600, e);
	free(s);
	json_decref(j);
	return rc;
}

static void journal_del(image_env *env, const char *key)
{
	_cleanup_free_ char *path = journal_path(env, key);
	if (unlink(path) < 0 && errno != ENOENT)
		bt_log_warn("remove %s: %s", path, strerror(errno));
}

int image_env_recover(image_env *env, bt_err *e)
{
	_cleanup_dir_ DIR *d = NULL;
	struct dirent *de;

	/* mounts first: a temporary snapshot cannot go while mounted */
	d = opendir(env->mnt_dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = bt_xasprintf("%s/%s", env->mnt_dir, de->d_name);
		bt_err ue;
		if (bt_unmount_all(p, &ue) < 0)
			bt_log_warn("recover: unmount %s: %s", p, ue.msg);
		if (rmdir(p) < 0 && errno != ENOENT)
			bt_log_warn("recover: rmdir %s: %s", p, strerror(errno));
	}
	if (d) {
		closedir(d);
		d = NULL;
	}
	d = opendir(env->journal_dir);
	if (!d)
		return bt_err_errno(e, errno, "open %s", env->journal_dir);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = bt_xasprintf("%s/%s", env->journal_dir, de->d_name);
		_cleanup_free_ char *text = NULL;
		size_t len;
		bt_err je;
		if (bt_read_file(p, 4096, &text, &len, &je) < 0) {
			unlink(p);
			continue;
		}
		json_t *j = json_loadb(text, len, 0, NULL);
		const char *ns = json_string_value(json_object_get(j, "namespace"));
		const char *sn = json_string_value(json_object_get(j, "snapshotter"));
		const char *key = json_string_value(json_object_get(j, "key"));
		bool gone = true;
		if (ns && sn && key) {
			berth_client *snap = image_snap_client(env, sn, &je);
			berth_error err;
			if (snap && berth_snapshot_remove(snap, ns, sn, key, &err) < 0 && err.code != BERTH_NOT_FOUND) {
				/* the snapshotter may be down: try again at the next start */
				bt_log_warn("recover: remove temporary snapshot %s in %s: %s", key, ns, err.message);
				gone = false;
			} else if (snap) {
				bt_log_info("recover: removed temporary snapshot %s in %s (%s)", key, ns, sn);
			} else {
				gone = false;
			}
			berth_client_free(&snap);
		}
		json_decref(j);
		if (gone)
			unlink(p);
	}
	return 0;
}

/* --- one layer ------------------------------------------------------------------- */

static bt_mount *mounts_to_bt(const berth_mount *v, size_t n)
{
	bt_mount *m = bt_xcalloc(n ? n : 1, sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		bt_mount_init(&m[i], v[i].type, v[i].source);
		m[i].target = v[i].target && *v[i].target ? bt_xstrdup(v[i].target) : NULL;
		for (size_t k = 0; k < v[i].n_options; k++)
			bt_mount_add_option(&m[i], v[i].options[k]);
	}
	return m;
}

static int snap_err(bt_err *e, const berth_error *err, const char *what, const char *key)
{
	return bt_err_set(e, err->code, "%s %s: %s", what, key, err->message);
}

/* Compressed bytes between two background syncs of a layer being applied. */
#define UNPACK_SYNC_EVERY (8 << 20)

/* The layer's progress, and a syncfs of the snapshot on a helper thread
 * every UNPACK_SYNC_EVERY, one at a time, while the extraction goes on:
 * the disk's cache flush costs in proportion to what it holds (see
 * docs/content.md), so the syncfs before the commit then pays for the
 * tail instead of the whole layer. */
typedef struct apply_sync {
	ssize_t (*read)(void *arg, void *buf, size_t len, bt_err *e);
	void (*progress)(void *arg, int64_t consumed);
	void *arg;
	int fd;
	bt_offload *pool;
	bt_job *job;
	int64_t last;
} apply_sync;

static void apply_sync_run(void *arg)
{
	(void)syncfs(*(int *)arg);
}

static ssize_t apply_read(void *arg, void *buf, size_t len, bt_err *e)
{
	apply_sync *a = arg;
	return a->read(a->arg, buf, len, e);
}

static void apply_progress(void *arg, int64_t consumed)
{
	apply_sync *a = arg;

	if (a->progress)
		a->progress(a->arg, consumed);
	if (consumed - a->last < UNPACK_SYNC_EVERY || (a->job && !bt_job_done(a->job)))
		return;
	if (a->job)
		bt_job_wait(a->job);
	a->job = bt_job_start(a->pool, apply_sync_run, &a->fd);
	a->last = consumed;
}

int image_unpack_layer(image_env *env, berth_client *snap, const image_layer_job *j, bt_err *e)
{
	_cleanup_free_ char *rnd = bt_random_hex(8);
	_cleanup_free_ char *key = bt_xasprintf("berth-unpack-%s", rnd);
	_cleanup_free_ char *target = bt_xasprintf("%s/%s", env->mnt_dir, rnd);
	berth_snapshot_info info;
	berth_mount *mounts = NULL;
	size_t n = 0;
	berth_error err;
	img_apply_result res = { 0 };
	bool mounted = false, prepared = false;
	int fd = -1, rc = -1;

	/* a chain that exists is reused, not extracted again */
	if (berth_snapshot_stat(snap, j->ns, j->snapshotter, j->chain, &info, &err) == 0) {
		int kind = info.kind;
		berth_snapshot_info_clear(&info);
		if (kind == BERTH_SNAPSHOT_COMMITTED)
			return 1;
	} else if (err.code != BERTH_NOT_FOUND) {
		return snap_err(e, &err, "stat snapshot", j->chain);
	}
	if (journal_add(env, j->ns, j->snapshotter, key, e) < 0)
		return -1;
	berth_label lbl = { (char *)"berth.io/snapshot.unpacking", (char *)j->chain };
	if (berth_snapshot_prepare(snap, j->ns, j->snapshotter, key, j->parent_chain, &lbl, 1, &mounts, &n, &err) < 0) {
		snap_err(e, &err, "prepare snapshot", key);
		goto out;
	}
	prepared = true;
	if (mkdir(target, 0700) < 0 && errno != EEXIST) {
		bt_err_errno(e, errno, "mkdir %s", target);
		goto out;
	}
	bt_mount *bm = mounts_to_bt(mounts, n);
	int mrc = bt_mount_all(bm, n, target, e);
	bt_mounts_free(bm, n);
	if (mrc < 0)
		goto out;
	mounted = true;
	fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		bt_err_errno(e, errno, "open %s", target);
		goto out;
	}
	apply_sync as = {
		.read = j->read, .progress = j->progress, .arg = j->arg, .fd = fd, .pool = bt_offload_new(1)
	};
	img_apply_opts ao = {
		.mode = IMG_APPLY_MERGED,
		.read = apply_read,
		.arg = &as,
		.progress = apply_progress,
	};
	int arc = img_apply(fd, &ao, &res, e);
	if (as.job)
		bt_job_wait(as.job);
	bt_offload_free(&as.pool);
	if (arc < 0) {
		bt_err_wrap(e, "layer %s", j->diff_id);
		goto out;
	}
	if (strcmp(res.diff_id, j->diff_id) != 0) {
		bt_err_set(e, BT_DATA_LOSS, "layer: uncompressed digest %s differs from the diffID %s in the image config",
			   res.diff_id, j->diff_id);
		goto out;
	}
	/* durable before committed: a power cut must not leave a committed
	 * snapshot with empty files */
	if (syncfs(fd) < 0) {
		bt_err_errno(e, errno, "syncfs %s", target);
		goto out;
	}
	close(fd);
	fd = -1;
	if (bt_unmount_all(target, e) < 0)
		goto out;
	mounted = false;
	berth_label done = { (char *)"berth.io/snapshot.diff_id", (char *)j->diff_id };
	if (berth_snapshot_commit(snap, j->ns, j->snapshotter, j->chain, key, &done, 1, &err) < 0) {
		if (err.code != BERTH_ALREADY_EXISTS) {
			snap_err(e, &err, "commit snapshot", j->chain);
			goto out;
		}
		/* someone else committed the chain meanwhile: theirs stands */
	} else {
		prepared = false;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (mounted) {
		bt_err ue;
		if (bt_unmount_all(target, &ue) < 0)
			bt_log_warn("unmount %s: %s", target, ue.msg);
	}
	rmdir(target);
	if (prepared && berth_snapshot_remove(snap, j->ns, j->snapshotter, key, &err) < 0 &&
	    err.code != BERTH_NOT_FOUND)
		bt_log_warn("remove temporary snapshot %s: %s (start-up will retry)", key, err.message);
	else
		journal_del(env, key);
	berth_mounts_free(mounts, n);
	return rc;
}

/* --- stored images ------------------------------------------------------------------- */

int image_resolve_manifest(berth_client *content, const char *ns, const bt_oci_desc *root,
			   const bt_oci_platform *want, bt_oci_manifest *out, bt_oci_desc *chosen, bt_err *e)
{
	_cleanup_free_ char *doc = NULL;
	size_t len;
	bt_oci_desc cur = { 0 };

	bt_oci_desc_copy(&cur, root);
	for (int depth = 0; depth < 4; depth++) {
		if (bt_oci_is_manifest(cur.media_type)) {
			free(doc);
			doc = NULL;
			int rc = image_read_blob(content, ns, cur.digest, OCI_MAX_MANIFEST, &doc, &len, e);
			if (rc == 0)
				rc = bt_oci_parse_manifest(doc, len, out, e);
			if (rc == 0 && chosen)
				bt_oci_desc_copy(chosen, &cur);
			bt_oci_desc_clear(&cur);
			return rc < 0 ? bt_err_wrap(e, "manifest %s", root->digest) : 0;
		}
		if (!bt_oci_is_index(cur.media_type)) {
			bt_err_set(e, BT_UNIMPLEMENTED, "%s: unsupported media type %s", cur.digest, cur.media_type);
			break;
		}
		bt_oci_index idx;
		free(doc);
		doc = NULL;
		if (image_read_blob(content, ns, cur.digest, OCI_MAX_MANIFEST, &doc, &len, e) < 0 ||
		    bt_oci_parse_index(doc, len, &idx, e) < 0)
			break;
		int i = bt_oci_index_choose(&idx, want, e);
		if (i < 0) {
			bt_oci_index_clear(&idx);
			break;
		}
		bt_oci_desc_copy(&cur, &idx.manifests[i]);
		bt_oci_index_clear(&idx);
	}
	bt_oci_desc_clear(&cur);
	if (!e->code)
		bt_err_set(e, BT_INVALID_ARGUMENT, "%s: indexes nested too deep", root->digest);
	return -1;
}

typedef struct reader_arg {
	berth_reader *r;
	xjob *job;
	const bt_oci_desc *d;
} reader_arg;

static ssize_t read_stored(void *arg, void *buf, size_t len, bt_err *e)
{
	reader_arg *a = arg;
	berth_error err;
	int64_t n = berth_reader_read(a->r, buf, len, &err);
	if (n < 0)
		return bt_err_set(e, err.code, "%s", err.message);
	return (ssize_t)n;
}

static void stored_progress(void *arg, int64_t consumed)
{
	reader_arg *a = arg;
	if (a->job)
		xjob_progress(a->job, "layer", NULL, a->d->digest, -1, "unpacking", consumed, a->d->size, NULL);
}

int image_unpack_stored(image_env *env, xjob *job, const char *ns, const bt_oci_desc *root,
			const bt_oci_platform *want, const char *snapshotter, char chain_out[BT_DIGEST_STR_LEN],
			bt_err *e)
{
	const char *sn = image_snapshotter_name(env, snapshotter);
	berth_client *content = image_content_client(env, e);
	berth_client *snap = content ? image_snap_client(env, sn, e) : NULL;
	bt_oci_manifest m = { 0 };
	bt_oci_config cfg = { 0 };
	_cleanup_free_ char *doc = NULL;
	char (*chain)[BT_DIGEST_STR_LEN] = NULL;
	size_t len;
	int rc = -1;

	if (!snap)
		goto out;
	if (image_resolve_manifest(content, ns, root, want, &m, NULL, e) < 0)
		goto out;
	if (image_read_blob(content, ns, m.config.digest, OCI_MAX_CONFIG, &doc, &len, e) < 0 ||
	    bt_oci_parse_config(doc, len, &cfg, e) < 0) {
		bt_err_wrap(e, "config %s", m.config.digest);
		goto out;
	}
	if (cfg.n_diff_ids != m.n_layers) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "image config lists %zu diffIDs for %zu layers", cfg.n_diff_ids,
			   m.n_layers);
		goto out;
	}
	if (m.n_layers == 0) {
		bt_err_set(e, BT_INVALID_ARGUMENT, "image has no layers to unpack");
		goto out;
	}
	chain = bt_xcalloc(m.n_layers, sizeof(*chain));
	bt_oci_chain_ids(cfg.diff_ids, m.n_layers, chain);
	for (size_t i = 0; i < m.n_layers; i++) {
		const bt_oci_desc *d = &m.layers[i];
		_cleanup_free_ char *once_key = bt_xasprintf("%s\n%s\n%s", sn, ns, chain[i]);
		if (job)
			xjob_progress(job, "layer", d->media_type, d->digest, d->size, "waiting", 0, d->size, NULL);
		if (xonce_begin(env->unpacks, once_key) == 0) {
			if (job)
				xjob_progress(job, "layer", NULL, d->digest, -1, "exists", d->size, d->size, NULL);
			continue; /* unpacked by another job just now */
		}
		berth_error err;
		reader_arg ra = { .job = job, .d = d };
		ra.r = berth_content_reader(content, ns, d->digest, 0, &err);
		if (!ra.r) {
			xonce_end(env->unpacks, once_key, false);
			bt_err_set(e, err.code, "layer %s: %s", d->digest, err.message);
			goto out;
		}
		image_layer_job lj = {
			.ns = ns,
			.snapshotter = sn,
			.parent_chain = i ? chain[i - 1] : NULL,
			.chain = chain[i],
			.diff_id = cfg.diff_ids[i],
			.read = read_stored,
			.arg = &ra,
			.progress = stored_progress,
		};
		int lr = image_unpack_layer(env, snap, &lj, e);
		berth_reader_free(&ra.r);
		xonce_end(env->unpacks, once_key, lr >= 0);
		if (lr < 0) {
			if (job)
				xjob_progress(job, "layer", NULL, d->digest, -1, "error", -1, -1, e->msg);
			goto out;
		}
		if (job)
			xjob_progress(job, "layer", NULL, d->digest, -1, lr == 1 ? "exists" : "unpacked", d->size, d->size,
				      NULL);
	}
	snprintf(chain_out, BT_DIGEST_STR_LEN, "%s", chain[m.n_layers - 1]);
	/* the config holds the chain: the collector keeps the snapshots while the image stands */
	if (image_gc_label_config(content, ns, m.config.digest, sn, chain_out, e) < 0)
		goto out;
	rc = 0;
out:
	free(chain);
	bt_oci_manifest_clear(&m);
	bt_oci_config_clear(&cfg);
	berth_client_free(&snap);
	berth_client_free(&content);
	return rc;
}
