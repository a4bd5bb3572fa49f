/*
 * cli_containers — `berth containers create|ls|info|rm|label`, following
 * ctr's verbs: create prepares the container's snapshot (key = its id) on
 * the image's unpacked layers and records the container; rm removes the
 * record and that snapshot.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <string.h>

#include "bt_util.h"
#include "cli.h"

typedef struct create_args {
	const char *runtime, *binary, *root, *snapshotter, *spec;
	berth_label *labels;
	size_t n_labels;
	cli_ctx *ctx;
} create_args;

static const cli_opt create_opts[] = {
	{ "runtime", 0, "NAME", "runc (default) or crun" },
	{ "runtime-binary", 0, "PATH", "the runtime binary (default: NAME in PATH)" },
	{ "runtime-root", 0, "DIR", "the runtime's --root (default: the service's)" },
	{ "snapshotter", 0, "NAME", "snapshotter of the root filesystem (default: the gateway's)" },
	{ "label", 0, "KEY=VALUE", "a label (repeatable)" },
	{ "spec", 0, "FILE", "the OCI runtime spec (config.json) to run" },
	{ NULL, 0, NULL, NULL },
};

static int create_opt(void *arg, int idx, const char *val)
{
	create_args *a = arg;
	switch (idx) {
	case 0: a->runtime = val; break;
	case 1: a->binary = val; break;
	case 2: a->root = val; break;
	case 3: a->snapshotter = val; break;
	case 4:
		if (cli_label_push(val, &a->labels, &a->n_labels) < 0)
			return cli_usage_error(a->ctx, "containers create", "--label %s: expected KEY=VALUE", val), -2;
		break;
	case 5: a->spec = val; break;
	}
	return 0;
}

static int containers_create(cli_ctx *ctx, int argc, char **argv)
{
	create_args a = { .ctx = ctx };
	berth_image img = { 0 };
	berth_container in = { 0 };
	berth_error err;
	char chain[72];
	_cleanup_free_ char *spec = NULL;
	int rc = CLI_EXIT_FAIL;
	bool prepared = false;
	int first = cli_parse(ctx, "containers create", "[OPTIONS] IMAGE ID",
			      "Create a container: its snapshot on IMAGE's unpacked layers, and its record.", create_opts,
			      argc, argv, create_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (argc - first != 2) {
		rc = cli_usage_error(ctx, "containers create", "expected IMAGE and ID");
		goto out;
	}
	if (!a.spec) {
		rc = cli_usage_error(ctx, "containers create", "--spec FILE is required (an OCI runtime spec)");
		goto out;
	}
	size_t len;
	bt_err e;
	if (bt_read_file(a.spec, 1u << 20, &spec, &len, &e) < 0) {
		rc = cli_errorf(ctx, "--spec: %s", e.msg);
		goto out;
	}
	const char *image = argv[first], *id = argv[first + 1];
	berth_client *c = cli_client(ctx);
	if (!c)
		goto out;
	if (berth_image_get(c, NULL, image, &img, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	int u = berth_image_unpacked(c, NULL, &img, NULL, a.snapshotter, chain, &err);
	if (u < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (u == 0) {
		rc = cli_errorf(ctx, "image %s is not unpacked%s%s (berth images unpack %s)", image,
				a.snapshotter ? " in " : "", a.snapshotter ? a.snapshotter : "", image);
		goto out;
	}
	if (berth_snapshot_prepare(c, NULL, a.snapshotter, id, chain, NULL, 0, NULL, NULL, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	prepared = true;
	in.id = (char *)id;
	in.image = img.name;
	in.spec = spec;
	in.snapshotter = (char *)(a.snapshotter ? a.snapshotter : "");
	in.snapshot_key = (char *)id;
	in.runtime = (char *)(a.runtime ? a.runtime : "runc");
	in.runtime_binary = (char *)(a.binary ? a.binary : "");
	in.runtime_root = (char *)(a.root ? a.root : "");
	in.labels = a.labels;
	in.n_labels = a.n_labels;
	if (berth_container_create(c, NULL, &in, NULL, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	prepared = false;
	printf("%s\n", id);
	rc = 0;
out:
	if (prepared) {
		berth_error e2;
		if (berth_snapshot_remove(ctx->client, NULL, a.snapshotter, argv[first + 1], &e2) < 0)
			fprintf(stderr, "%s: warning: remove snapshot %s: %s\n", ctx->prog, argv[first + 1], e2.message);
	}
	berth_image_clear(&img);
	for (size_t i = 0; i < a.n_labels; i++) {
		free(a.labels[i].key);
		free(a.labels[i].value);
	}
	free(a.labels);
	return rc;
}

static const cli_opt ls_opts[] = CLI_LIST_OPTS("print only the ids");

static json_t *ctr_json(const berth_container *c)
{
	json_error_t je;
	json_t *o = json_object(), *rt = json_object();
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "image", json_string(c->image));
	json_object_set_new(o, "snapshotter", json_string(c->snapshotter));
	json_object_set_new(o, "snapshotKey", json_string(c->snapshot_key));
	json_object_set_new(rt, "name", json_string(c->runtime));
	json_object_set_new(rt, "binary", json_string(c->runtime_binary));
	json_object_set_new(rt, "root", json_string(c->runtime_root));
	json_object_set_new(o, "runtime", rt);
	json_object_set_new(o, "labels", cli_labels_json(c->labels, c->n_labels));
	char t[48];
	json_object_set_new(o, "createdAt", json_string(bt_time_fmt(c->created_at, t, sizeof(t))));
	json_object_set_new(o, "updatedAt", json_string(bt_time_fmt(c->updated_at, t, sizeof(t))));
	json_t *spec = json_loads(c->spec, 0, &je);
	json_object_set_new(o, "spec", spec ? spec : json_string(c->spec));
	return o;
}

static int containers_ls(cli_ctx *ctx, int argc, char **argv)
{
	cli_list_args a = { .ctx = ctx };
	berth_container *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "containers ls", "[OPTIONS] [FILTER...]",
			      "List containers (filters: id, image, snapshotter, snapshot_key, runtime.name, labels.KEY).",
			      ls_opts, argc, argv, cli_list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_container_list(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", v[i].id);
	} else if (a.fmt == CLI_FMT_JSON) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, ctr_json(&v[i]));
		cli_print_json(arr);
	} else {
		static const char *const hdr[] = { "CONTAINER", "IMAGE", "RUNTIME", "LABELS" };
		cli_table *t = cli_table_new(4, hdr);
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *labels = cli_labels_str(v[i].labels, v[i].n_labels);
			const char *row[] = { v[i].id, *v[i].image ? v[i].image : "-", v[i].runtime, labels };
			cli_table_row(t, row);
		}
		cli_table_print(t, stdout, false);
		cli_table_free(&t);
	}
	berth_containers_free(v, n);
	return 0;
}

static int containers_info(cli_ctx *ctx, int argc, char **argv)
{
	berth_container v;
	berth_error err;
	int first = cli_parse(ctx, "containers info", "ID", "Print a container as JSON.", NULL, argc, argv, cli_no_opts,
			      NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "containers info", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_container_get(c, NULL, argv[first], &v, &err) < 0)
		return cli_fail(ctx, &err);
	cli_print_json(ctr_json(&v));
	berth_container_clear(&v);
	return 0;
}

static int containers_rm(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "containers rm", "ID...", "Delete containers and their snapshots.", NULL, argc, argv,
			      cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "containers rm", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++) {
		berth_container v;
		if (berth_container_get(c, NULL, argv[i], &v, &err) < 0 ||
		    berth_container_delete(c, NULL, argv[i], &err) < 0) {
			if (berth_container_get(c, NULL, argv[i], &v, &err) == 0)
				berth_container_clear(&v);
			rc = cli_fail(ctx, &err);
			continue;
		}
		if (*v.snapshot_key &&
		    berth_snapshot_remove(c, NULL, *v.snapshotter ? v.snapshotter : NULL, v.snapshot_key, &err) < 0 &&
		    err.code != BERTH_NOT_FOUND)
			rc = cli_fail(ctx, &err);
		berth_container_clear(&v);
	}
	return rc;
}

static int containers_label(cli_ctx *ctx, int argc, char **argv)
{
	cli_label_edit l;
	berth_container in = { 0 }, out;
	berth_error err;
	const char *bad;
	int rc = 0;
	int first = cli_parse(ctx, "containers label", "ID [KEY=VALUE...]",
			      "Set labels on a container; KEY= with no value removes KEY.", NULL, argc, argv, cli_no_opts,
			      NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "containers label", "expected an ID");
	if (cli_label_edit_parse(argv + first + 1, argc - first - 1, &l, &bad) < 0)
		return cli_usage_error(ctx, "containers label", "\"%s\": expected KEY=VALUE", bad);
	berth_client *c = cli_client(ctx);
	if (!c) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	in.id = argv[first];
	in.labels = l.set;
	in.n_labels = l.n_set;
	if (l.n_mask == 0 ? berth_container_get(c, NULL, argv[first], &out, &err) < 0
			  : berth_container_update(c, NULL, &in, (const char *const *)l.mask, l.n_mask, &out, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	{
		/* a block: the gotos above must not jump into a cleanup variable's scope */
		_cleanup_free_ char *shown = cli_labels_str(out.labels, out.n_labels);
		printf("%s %s\n", out.id, shown);
	}
	berth_container_clear(&out);
out:
	cli_label_edit_clear(&l);
	return rc;
}

const cli_cmd cli_containers_cmds[] = {
	{ "create", containers_create, NULL, "Create a container from an unpacked image", NULL, { 0 } },
	{ "ls", containers_ls, NULL, "List containers", NULL, { "list" } },
	{ "info", containers_info, NULL, "Print a container as JSON", NULL, { 0 } },
	{ "rm", containers_rm, NULL, "Delete containers", NULL, { "remove", "delete" } },
	{ "label", containers_label, NULL, "Set or remove labels of a container", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
