/*
 * cli_run — `berth run [OPTIONS] IMAGE ID [CMD...]`, following `ctr run`:
 * the image must be stored (nothing is pulled implicitly) and is unpacked
 * when it is not yet; the container's snapshot is prepared on it, its spec
 * built from the image config (user names looked up in the snapshot itself,
 * mounted for the moment), the container and its task created, and the
 * task's stdio streamed until it exits.  The exit code is the task's.  With
 * --rm the task, the container and its snapshot go afterwards; with -d the
 * command returns once the task runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bt_labels.h"
#include "bt_util.h"
#include "cli.h"

enum { R_RM, R_DETACH, R_RUNTIME, R_RUNTIME_BINARY, R_LABEL, R_NULL_IO, R_N };

static const cli_opt run_only_opts[] = {
	[R_RM] = { "rm", 0, NULL, "remove the task, the container and its snapshot once it exits" },
	[R_DETACH] = { "detach", 'd', NULL, "return once the task runs (its stdio FIFOs stay for attach)" },
	[R_RUNTIME] = { "runtime", 0, "NAME", "runc (default) or crun" },
	[R_RUNTIME_BINARY] = { "runtime-binary", 0, "PATH", "the runtime binary (default: NAME in PATH)" },
	[R_LABEL] = { "label", 0, "KEY=VALUE", "a label of the container (repeatable)" },
	[R_NULL_IO] = { "null-io", 0, NULL, "stdio to /dev/null" },
};

typedef struct run_args {
	cli_spec_args spec;
	bool rm, detach, null_io;
	const char *runtime, *binary;
	berth_label *labels;
	size_t n_labels;
	cli_ctx *ctx;
} run_args;

static int run_opt(void *arg, int idx, const char *val)
{
	run_args *a = arg;

	if ((size_t)idx < cli_spec_common_opts)
		return cli_spec_opt(&a->spec, idx, val);
	switch (idx - (int)cli_spec_common_opts) {
	case R_RM:
		a->rm = true;
		break;
	case R_DETACH:
		a->detach = true;
		break;
	case R_RUNTIME:
		if (strcmp(val, "runc") && strcmp(val, "crun"))
			return cli_usage_error(a->ctx, "run", "--runtime %s: expected runc or crun", val), -2;
		a->runtime = val;
		break;
	case R_RUNTIME_BINARY:
		a->binary = val;
		break;
	case R_LABEL:
		if (cli_label_push(val, &a->labels, &a->n_labels) < 0)
			return cli_usage_error(a->ctx, "run", "--label %s: expected KEY=VALUE", val), -2;
		break;
	case R_NULL_IO:
		a->null_io = true;
		break;
	default:
		return -1;
	}
	return 0;
}

/* The spec, with user and group names looked up in the container's own
 * snapshot (mounted at mounts for the moment) when this process can mount. */
static int build_spec(berth_client *c, run_args *a, const char *cfg, size_t len, const berth_mount *mounts,
		      size_t n_mounts, char **json, berth_error *err)
{
	cli_rootfs r = { 0 };

	if (geteuid() == 0) {
		if (cli_rootfs_mount(mounts, n_mounts, &r, err) < 0) {
			cli_rootfs_drop(c, &r);
			return -1;
		}
		a->spec.o.rootfs = r.dir;
	} else {
		fprintf(stderr, "%s: note: not root, so user and group names cannot be looked up in the image; numeric "
				"ids are taken as given\n",
			a->ctx->prog);
	}
	int rc = berth_spec_from_config(berth_client_namespace(c), cfg, len, &a->spec.o, json, err);
	cli_rootfs_drop(c, &r);
	a->spec.o.rootfs = NULL;
	return rc;
}

/* The container's labels: the image config's, then --label. */
static void merge_labels(run_args *a, const char *cfg, size_t len, berth_label **out, size_t *n_out)
{
	berth_label *img = NULL;
	size_t n_img = 0;
	berth_error err;

	if (berth_spec_image_labels(cfg, len, &img, &n_img, &err) < 0) {
		img = NULL;
		n_img = 0;
	}
	bt_labels all = { 0 };
	for (size_t i = 0; i < n_img + a->n_labels; i++) {
		const berth_label *l = i < n_img ? &img[i] : &a->labels[i - n_img];
		bt_labels_set(&all, l->key, l->value);
	}
	berth_spec_labels_free(img, n_img);
	/* the strings move to the berth_label array */
	*out = bt_xcalloc(all.n + 1, sizeof(**out));
	for (size_t i = 0; i < all.n; i++) {
		(*out)[i].key = all.keys[i];
		(*out)[i].value = all.vals[i];
	}
	*n_out = all.n;
	free(all.keys);
	free(all.vals);
}

/* Removes what run made: the task (when it was created), the container
 * record, the snapshot. */
static void undo(cli_ctx *ctx, berth_client *c, run_args *a, const char *id, bool task, bool ctr, bool snap)
{
	berth_error err;

	if (task && berth_task_delete(c, NULL, id, NULL, NULL, NULL, &err) < 0 && err.code != BERTH_NOT_FOUND)
		fprintf(stderr, "%s: warning: delete task %s: %s\n", ctx->prog, id, err.message);
	if (ctr && berth_container_delete(c, NULL, id, &err) < 0 && err.code != BERTH_NOT_FOUND)
		fprintf(stderr, "%s: warning: delete container %s: %s\n", ctx->prog, id, err.message);
	if (snap && berth_snapshot_remove(c, NULL, a->spec.snapshotter, id, &err) < 0 && err.code != BERTH_NOT_FOUND)
		fprintf(stderr, "%s: warning: remove snapshot %s: %s\n", ctx->prog, id, err.message);
}

int cli_run(cli_ctx *ctx, int argc, char **argv)
{
	run_args a = { .ctx = ctx, .runtime = "runc" };
	cli_opt *opts = bt_xcalloc(cli_spec_common_opts + R_N + 1, sizeof(*opts));
	_cleanup_free_ char *cfg = NULL, *spec = NULL;
	berth_label *labels = NULL;
	size_t n_labels = 0, len, n_mounts = 0;
	berth_mount *mounts = NULL;
	berth_image img = { 0 };
	berth_error err;
	char chain[72];
	bool made_snap = false, made_ctr = false, made_task = false;
	cli_cio io;
	uint32_t pid;
	int rc = CLI_EXIT_FAIL;

	cli_cio_none(&io, false);
	memcpy(opts, cli_spec_opts, cli_spec_common_opts * sizeof(*opts));
	memcpy(opts + cli_spec_common_opts, run_only_opts, R_N * sizeof(*opts));
	int first = cli_parse(ctx, "run", "[OPTIONS] IMAGE ID [CMD [ARG...]]",
			      "Run a container of a stored IMAGE as ID (as `ctr run`): CMD replaces the image's Cmd; the "
			      "exit code is the task's.",
			      opts, argc, argv, run_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (argc - first < 2) {
		rc = cli_usage_error(ctx, "run", "expected an IMAGE and an ID");
		goto out;
	}
	if (a.rm && a.detach) {
		rc = cli_usage_error(ctx, "run", "--rm and --detach cannot go together (berth tasks rm and berth "
						 "containers rm remove a detached one)");
		goto out;
	}
	const char *image = argv[first], *id = argv[first + 1];
	a.spec.o.image = image;
	a.spec.o.id = id;
	cli_spec_args_finish(&a.spec, argv + first + 2, argc - first - 2);

	berth_client *c = cli_client(ctx);
	if (!c)
		goto out;
	/* the image, as stored here: nothing is pulled */
	if (berth_image_get(c, NULL, image, &img, &err) < 0) {
		if (err.code == BERTH_NOT_FOUND)
			rc = cli_errorf(ctx, "image %s is not stored in namespace %s: berth images pull %s (or berth "
					     "images import) first",
					image, berth_client_namespace(c), image);
		else
			rc = cli_fail(ctx, &err);
		goto out;
	}
	if (berth_image_config_of(c, NULL, &img, a.spec.o.platform, &cfg, &len, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	int u = berth_image_unpacked(c, NULL, &img, a.spec.o.platform, a.spec.snapshotter, chain, &err);
	if (u < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (u == 0 && berth_image_unpack(c, NULL, img.name, a.spec.o.platform, a.spec.snapshotter, NULL, NULL, chain,
					 &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (berth_snapshot_prepare(c, NULL, a.spec.snapshotter, id, chain, NULL, 0, &mounts, &n_mounts, &err) < 0) {
		if (err.code == BERTH_ALREADY_EXISTS)
			rc = cli_errorf(ctx, "a snapshot %s exists already: is there a container %s? (berth containers "
					     "ls; berth containers rm %s)",
					id, id, id);
		else
			rc = cli_fail(ctx, &err);
		goto out;
	}
	made_snap = true;
	if (build_spec(c, &a, cfg, len, mounts, n_mounts, &spec, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	merge_labels(&a, cfg, len, &labels, &n_labels);
	berth_container ctr = {
		.id = (char *)id,
		.image = img.name,
		.spec = spec,
		.snapshotter = (char *)(a.spec.snapshotter ? a.spec.snapshotter : ""),
		.snapshot_key = (char *)id,
		.runtime = (char *)a.runtime,
		.runtime_binary = (char *)(a.binary ? a.binary : ""),
		.runtime_root = (char *)"",
		.labels = labels,
		.n_labels = n_labels,
	};
	if (berth_container_create(c, NULL, &ctr, NULL, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	made_ctr = true;
	if (!a.null_io && cli_cio_new(&io, a.spec.o.tty, !a.detach, a.detach) < 0) {
		rc = cli_errorf(ctx, "stdio FIFOs: %s", strerror(errno));
		goto out;
	}
	if (a.null_io)
		io.terminal = a.spec.o.tty;
	berth_stdio st = cli_cio_stdio(&io);
	if (berth_task_create(c, NULL, id, &st, &pid, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	made_task = true;
	/* the terminal exists once created: sized before the process runs */
	if (io.terminal)
		cli_send_size(c, id, NULL);
	if (berth_task_start(c, NULL, id, NULL, &pid, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (a.detach) {
		made_task = made_ctr = made_snap = false; /* it runs: everything stays */
		rc = 0;
		goto out;
	}
	int status = cli_session_run(ctx, c, id, NULL, &io, true);
	rc = status < 0 ? CLI_EXIT_FAIL : status;
	if (berth_task_delete(c, NULL, id, NULL, NULL, NULL, &err) < 0 && err.code != BERTH_NOT_FOUND) {
		cli_fail(ctx, &err);
		if (rc == 0)
			rc = CLI_EXIT_FAIL;
	}
	made_task = false;
	if (!a.rm)
		made_ctr = made_snap = false;
out:
	if (made_task || made_ctr || made_snap)
		undo(ctx, ctx->client, &a, argv[first + 1], made_task, made_ctr, made_snap);
	if (a.detach)
		io.keep = rc == 0; /* the FIFOs stay for attach while the task runs */
	cli_cio_close(&io);
	berth_mounts_free(mounts, n_mounts);
	berth_spec_labels_free(labels, n_labels);
	berth_image_clear(&img);
	berth_spec_labels_free(a.labels, a.n_labels);
	cli_spec_args_clear(&a.spec);
	free(opts);
	return rc;
}
