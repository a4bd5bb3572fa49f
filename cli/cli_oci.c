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

enum {
	O_ENV,
	O_CWD,
	O_USER,
	O_MOUNT,
	O_NET_HOST,
	O_PRIV,
	O_SECCOMP,
	O_TTY,
	O_PLATFORM,
	O_SNAP,
	O_HOSTNAME,
	O_ANNOTATION,
	O_COMMON, /* the options above are `berth run`'s too; those below only for inspection */
	O_ROOTFS = O_COMMON,
	O_ID,
};

const cli_opt cli_spec_opts[] = {
	[O_ENV] = { "env", 'e', "K=V", "set (or with K alone, remove) an environment variable; repeatable" },
	[O_CWD] = { "cwd", 0, "DIR", "working directory (default: the image's, else /)" },
	[O_USER] = { "user", 'u', "U[:G]", "uid, name, uid:gid or name:group (default: the image's User)" },
	[O_MOUNT] = { "mount", 0, "SPEC", "type=bind,src=/a,dst=/b,options=rbind:ro; repeatable" },
	[O_NET_HOST] = { "net-host", 0, NULL, "use the host's network namespace, /etc/hosts and resolv.conf" },
	[O_PRIV] = { "privileged", 0, NULL, "every capability the host grants, host devices, no seccomp, no masks" },
	[O_SECCOMP] = { "seccomp-profile", 0, "FILE", "a linux.seccomp JSON profile instead of the default" },
	[O_TTY] = { "tty", 't', NULL, "give the process a terminal" },
	[O_PLATFORM] = { "platform", 0, "OS/ARCH", "the image's platform (default: the host's)" },
	[O_SNAP] = { "snapshotter", 0, "NAME", "where the image is unpacked (default: the configured one)" },
	[O_HOSTNAME] = { "hostname", 0, "NAME", "hostname (default: the container id)" },
	[O_ANNOTATION] = { "annotation", 0, "K=V", "an annotation of the spec; repeatable" },
	[O_ROOTFS] = { "rootfs", 0, "DIR", "the image's root file system, where user names are looked up" },
	[O_ID] = { "id", 0, "ID", "container id (hostname, cgroupsPath /NAMESPACE/ID)" },
	{ NULL, 0, NULL, NULL },
};
const size_t cli_spec_common_opts = O_COMMON;

int cli_spec_opt(cli_spec_args *a, int idx, const char *val)
{
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
	case O_PLATFORM:
		a->o.platform = val;
		break;
	case O_SNAP:
		a->snapshotter = val;
		break;
	case O_HOSTNAME:
		a->o.hostname = val;
		break;
	case O_ANNOTATION:
		if (!strchr(val, '=') || val[0] == '=')
			return -1;
		bt_strv_push(&a->annotations, val);
		break;
	case O_ROOTFS:
		a->o.rootfs = val;
		break;
	case O_ID:
		a->o.id = val;
		break;
	default:
		return -1;
	}
	return 0;
}

static int spec_opt(void *arg, int idx, const char *val)
{
	return cli_spec_opt(arg, idx, val);
}

void cli_spec_args_finish(cli_spec_args *a, char **args, int n_args)
{
	a->o.args = (const char *const *)args;
	a->o.n_args = (size_t)n_args;
	a->o.env = (const char *const *)a->env;
	a->o.n_env = bt_strv_len(a->env);
	a->o.mounts = (const char *const *)a->mounts;
	a->o.n_mounts = bt_strv_len(a->mounts);
	a->o.n_annotations = bt_strv_len(a->annotations);
	a->ann = bt_xcalloc(a->o.n_annotations + 1, sizeof(*a->ann));
	for (size_t i = 0; i < a->o.n_annotations; i++)
		cli_parse_label(a->annotations[i], &a->ann[i]);
	a->o.annotations = a->ann;
}

void cli_spec_args_clear(cli_spec_args *a)
{
	for (size_t i = 0; a->ann && i < a->o.n_annotations; i++) {
		free(a->ann[i].key);
		free(a->ann[i].value);
	}
	free(a->ann);
	bt_strv_free(a->env);
	bt_strv_free(a->mounts);
	bt_strv_free(a->annotations);
	memset(a, 0, sizeof(*a));
}

void cli_rootfs_drop(berth_client *c, cli_rootfs *r)
{
	berth_error err;

	if (r->mounted && berth_unmount(r->dir, &err) < 0)
		fprintf(stderr, "berth: warning: unmount %s: %s\n", r->dir, err.message);
	if (r->dir && rmdir(r->dir) < 0 && r->mounted)
		fprintf(stderr, "berth: warning: %s left behind\n", r->dir);
	if (r->view[0] && berth_snapshot_remove(c, NULL, r->snapshotter, r->view, &err) < 0)
		fprintf(stderr, "berth: warning: remove view %s: %s\n", r->view, err.message);
	free(r->dir);
	memset(r, 0, sizeof(*r));
}

int cli_rootfs_mount(const berth_mount *mounts, size_t n, cli_rootfs *r, berth_error *err)
{
	_cleanup_free_ char *tmpl = bt_xasprintf("%s/berth-rootfs-XXXXXX", cli_tmpdir());

	if (!mkdtemp(tmpl)) {
		snprintf(err->message, sizeof(err->message), "mkdtemp: %s", strerror(errno));
		err->code = BERTH_INTERNAL;
		return -1;
	}
	r->dir = bt_xstrdup(tmpl);
	if (berth_mount_all(mounts, n, r->dir, err) < 0)
		return -1;
	r->mounted = true;
	return 0;
}

/* Mounts a read-only view of the image for the lookup of names; returns 1
 * when mounted, 0 when it cannot be (why goes into why), -1 on error. */
static int view_mount(berth_client *c, const cli_spec_args *a, cli_rootfs *r, char *why, size_t why_len,
		      berth_error *err)
{
	berth_image img;
	char chain[72];
	berth_mount *mounts = NULL;
	size_t n = 0;

	if (geteuid() != 0) {
		snprintf(why, why_len, "not root, so the image's snapshot cannot be mounted");
		return 0;
	}
	if (berth_image_get(c, NULL, a->o.image, &img, err) < 0)
		return -1;
	int u = berth_image_unpacked(c, NULL, &img, a->o.platform, a->snapshotter, chain, err);
	berth_image_clear(&img);
	if (u <= 0) {
		if (u == 0)
			snprintf(why, why_len, "the image is not unpacked (berth images unpack %s)", a->o.image);
		return u;
	}
	_cleanup_free_ char *hex = bt_random_hex(8);
	r->snapshotter = a->snapshotter;
	snprintf(r->view, sizeof(r->view), "oci-spec-%s", hex);
	if (berth_snapshot_view(c, NULL, a->snapshotter, r->view, chain, NULL, 0, &mounts, &n, err) < 0) {
		r->view[0] = '\0';
		return -1;
	}
	int m = cli_rootfs_mount(mounts, n, r, err);
	berth_mounts_free(mounts, n);
	return m < 0 ? -1 : 1;
}

static int oci_spec(cli_ctx *ctx, int argc, char **argv)
{
	cli_spec_args a = { 0 };
	_cleanup_free_ char *cfg = NULL, *json = NULL;
	size_t len;
	berth_error err;
	cli_rootfs v = { 0 };
	int rc = CLI_EXIT_FAIL;

	int first = cli_parse(ctx, "oci spec", "[OPTIONS] IMAGE [CMD...]",
			      "Print the OCI runtime spec (config.json) of a container of IMAGE.", cli_spec_opts, argc,
			      argv, spec_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (first >= argc) {
		rc = cli_usage_error(ctx, "oci spec", "an image is needed");
		goto out;
	}
	a.o.image = argv[first];
	cli_spec_args_finish(&a, argv + first + 1, argc - first - 1);

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
			cli_rootfs_drop(c, &v);
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
	cli_rootfs_drop(c, &v);
	if (r < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	printf("%s\n", json);
	rc = 0;
out:
	cli_spec_args_clear(&a);
	return rc;
}

const cli_cmd cli_oci_cmds[] = {
	{ "spec", oci_spec, NULL, "Print the OCI runtime spec of a container of an image", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
