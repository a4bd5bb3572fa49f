/*
 * cli_oci — `berth oci spec`: the OCI runtime spec berth would give a
 * container of an image, printed for inspection.
 *
 * User and group names are looked up in the image's own /etc/passwd and
 * /etc/group: in --rootfs DIR when given, else (as root, with the image
 * unpacked) in a read-only view of its snapshot mounted for the moment of the
 * lookup and removed afterwards.  Without either, numeric ids are used as
 * given and a name is refused with a message saying so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bt_util.h"
#include "cli.h"

typedef struct spec_args {
	berth_spec_opts o;
	char **env;
	char **mounts;
	char **annotations;
	const char *snapshotter;
} spec_args;

enum {
	O_ENV,
	O_CWD,
	O_USER,
	O_MOUNT,
	O_NET_HOST,
	O_PRIV,
	O_SECCOMP,
	O_TTY,
	O_ROOTFS,
	O_PLATFORM,
	O_SNAP,
	O_ID,
	O_HOSTNAME,
	O_ANNOTATION,
};

static const cli_opt spec_opts[] = {
	[O_ENV] = { "env", 'e', "K=V", "set (or with K alone, remove) an environment variable; repeatable" },
	[O_CWD] = { "cwd", 0, "DIR", "working directory (default: the image's, else /)" },
	[O_USER] = { "user", 'u', "U[:G]", "uid, name, uid:gid or name:group (default: the image's User)" },
	[O_MOUNT] = { "mount", 0, "SPEC", "type=bind,src=/a,dst=/b,options=rbind:ro; repeatable" },
	[O_NET_HOST] = { "net-host", 0, NULL, "use the host's network namespace, /etc/hosts and resolv.conf" },
	[O_PRIV] = { "privileged", 0, NULL, "every capability the host grants, host devices, no seccomp, no masks" },
	[O_SECCOMP] = { "seccomp-profile", 0, "FILE", "a linux.seccomp JSON profile instead of the default" },
	[O_TTY] = { "tty", 't', NULL, "give the process a terminal" },
	[O_ROOTFS] = { "rootfs", 0, "DIR", "the image's root file system, where user names are looked up" },
	[O_PLATFORM] = { "platform", 0, "OS/ARCH", "the image's platform (default: the host's)" },
	[O_SNAP] = { "snapshotter", 0, "NAME", "where the image is unpacked (default: the configured one)" },
	[O_ID] = { "id", 0, "ID", "container id (hostname, cgroupsPath /NAMESPACE/ID)" },
	[O_HOSTNAME] = { "hostname", 0, "NAME", "hostname (default: the id)" },
	[O_ANNOTATION] = { "annotation", 0, "K=V", "an annotation of the spec; repeatable" },
	{ NULL, 0, NULL, NULL },
};

static int spec_opt(void *arg, int idx, const char *val)
{
	spec_args *a = arg;

	switch (idx) {
	case O_ENV:
		bt_strv_push(&a->env, val);
		break;
	case O_CWD:
		a->o.cwd = val;
		break;
	case O_USER:
		a->o.user = val;
		break;
	case O_MOUNT:
		bt_strv_push(&a->mounts, val);
		break;
	case O_NET_HOST:
		a->o.net_host = true;
		break;
	case O_PRIV:
		a->o.privileged = true;
		break;
	case O_SECCOMP:
		a->o.seccomp_profile = val;
		break;
	case O_TTY:
		a->o.tty = true;
		break;
	case O_ROOTFS:
		a->o.rootfs = val;
		break;
	case O_PLATFORM:
		a->o.platform = val;
		break;
	case O_SNAP:
		a->snapshotter = val;
		break;
	case O_ID:
		a->o.id = val;
		break;
	case O_HOSTNAME:
		a->o.hostname = val;
		break;
	case O_ANNOTATION:
		if (!strchr(val, '=') || val[0] == '=')
			return -1;
		bt_strv_push(&a->annotations, val);
		break;
	default:
		return -1;
	}
	return 0;
}

/* A read-only view of the image's unpacked snapshot, mounted. */
typedef struct view {
	char key[64];
	char *dir;
	bool made, mounted;
} view;

static void view_drop(berth_client *c, const char *snapshotter, view *v)
{
	berth_error err;

	if (v->mounted && berth_unmount(v->dir, &err) < 0)
		fprintf(stderr, "berth: warning: unmount %s: %s\n", v->dir, err.message);
	if (v->dir && !v->mounted)
		rmdir(v->dir);
	else if (v->dir && rmdir(v->dir) < 0)
		fprintf(stderr, "berth: warning: %s left behind\n", v->dir);
	if (v->made && berth_snapshot_remove(c, NULL, snapshotter, v->key, &err) < 0)
		fprintf(stderr, "berth: warning: remove view %s: %s\n", v->key, err.message);
	free(v->dir);
	memset(v, 0, sizeof(*v));
}

/* Mounts a view of the image for the lookup of names; returns 1 when
 * mounted, 0 when it cannot be (why goes into why), -1 on error. */
static int view_mount(berth_client *c, const spec_args *a, view *v, char *why, size_t why_len, berth_error *err)
{
	berth_image img;
	char chain[72];
	berth_mount *mounts = NULL;
	size_t n = 0;
	int r;

	if (geteuid() != 0) {
		snprintf(why, why_len, "not root, so the image's snapshot cannot be mounted");
		return 0;
	}
	if (berth_image_get(c, NULL, a->o.image, &img, err) < 0)
		return -1;
	r = berth_image_unpacked(c, NULL, &img, a->o.platform, a->snapshotter, chain, err);
	berth_image_clear(&img);
	if (r <= 0) {
		if (r == 0)
			snprintf(why, why_len, "the image is not unpacked (berth images unpack %s)", a->o.image);
		return r;
	}
	_cleanup_free_ char *hex = bt_random_hex(8);
	snprintf(v->key, sizeof(v->key), "oci-spec-%s", hex);
	if (berth_snapshot_view(c, NULL, a->snapshotter, v->key, chain, NULL, 0, &mounts, &n, err) < 0)
		return -1;
	v->made = true;
	char tmpl[] = "/tmp/berth-oci-XXXXXX";
	if (!mkdtemp(tmpl)) {
		berth_mounts_free(mounts, n);
		snprintf(err->message, sizeof(err->message), "mkdtemp: %s", strerror(errno));
		err->code = BERTH_INTERNAL;
		return -1;
	}
	v->dir = bt_xstrdup(tmpl);
	r = berth_mount_all(mounts, n, v->dir, err);
	berth_mounts_free(mounts, n);
	if (r < 0)
		return -1;
	v->mounted = true;
	return 1;
}

static int oci_spec(cli_ctx *ctx, int argc, char **argv)
{
	spec_args a = { 0 };
	berth_label *ann = NULL;
	_cleanup_free_ char *cfg = NULL, *json = NULL;
	size_t len;
	berth_error err;
	view v = { 0 };
	int rc = CLI_EXIT_FAIL;

	int first = cli_parse(ctx, "oci spec", "[OPTIONS] IMAGE [CMD...]",
			      "Print the OCI runtime spec (config.json) of a container of IMAGE.", spec_opts, argc, argv,
			      spec_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (first >= argc) {
		rc = cli_usage_error(ctx, "oci spec", "an image is needed");
		goto out;
	}
	a.o.image = argv[first];
	a.o.args = (const char *const *)(argv + first + 1);
	a.o.n_args = (size_t)(argc - first - 1);
	a.o.env = (const char *const *)a.env;
	a.o.n_env = bt_strv_len(a.env);
	a.o.mounts = (const char *const *)a.mounts;
	a.o.n_mounts = bt_strv_len(a.mounts);
	a.o.n_annotations = bt_strv_len(a.annotations);
	ann = bt_xcalloc(a.o.n_annotations + 1, sizeof(*ann));
	for (size_t i = 0; i < a.o.n_annotations; i++)
		cli_parse_label(a.annotations[i], &ann[i]);
	a.o.annotations = ann;

	berth_client *c = cli_client(ctx);
	if (!c)
		goto out;
	if (berth_image_config(c, NULL, a.o.image, a.o.platform, &cfg, &len, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (!a.o.rootfs) {
		char why[256] = "";
		int r = view_mount(c, &a, &v, why, sizeof(why), &err);
		if (r < 0) {
			view_drop(c, a.snapshotter, &v);
			rc = cli_fail(ctx, &err);
			goto out;
		}
		if (r == 1)
			a.o.rootfs = v.dir;
		else
			fprintf(stderr,
				"berth: note: %s: user and group names cannot be looked up in the image; numeric ids "
				"are taken as given (--rootfs DIR names a root file system to use)\n",
				why);
	}
	int r = berth_spec_from_config(berth_client_namespace(c), cfg, len, &a.o, &json, &err);
	view_drop(c, a.snapshotter, &v);
	if (r < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	printf("%s\n", json);
	rc = 0;
out:
	for (size_t i = 0; ann && i < a.o.n_annotations; i++) {
		free(ann[i].key);
		free(ann[i].value);
	}
	free(ann);
	bt_strv_free(a.env);
	bt_strv_free(a.mounts);
	bt_strv_free(a.annotations);
	return rc;
}

const cli_cmd cli_oci_cmds[] = {
	{ "spec", oci_spec, NULL, "Print the OCI runtime spec of a container of an image", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
