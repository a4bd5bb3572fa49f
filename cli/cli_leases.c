/*
 * cli_leases — `berth leases create|ls|rm`, as ctr's: a lease holds what it
 * names against garbage collection (docs/gc.md).
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "bt_util.h"
#include "cli.h"

typedef struct create_args {
	const char *id;
	int64_t expire_ms;
	berth_label *labels;
	size_t n_labels;
	cli_ctx *ctx;
} create_args;

static const cli_opt create_opts[] = {
	{ "id", 0, "ID", "the lease's id (default: a random one)" },
	{ "expires", 'x', "DURATION", "expire after DURATION, e.g. 24h (default: never)" },
	{ "label", 0, "KEY=VALUE", "a label (repeatable)" },
	{ NULL, 0, NULL, NULL },
};

static int create_opt(void *arg, int idx, const char *val)
{
	create_args *a = arg;
	if (idx == 0) {
		a->id = val;
	} else if (idx == 1) {
		if (bt_parse_duration_ms(val, &a->expire_ms) < 0 || a->expire_ms <= 0)
			return cli_usage_error(a->ctx, "leases create", "--expires %s: expected a duration like 24h",
					       val),
			       -2;
	} else if (idx == 2) {
		if (cli_label_push(val, &a->labels, &a->n_labels) < 0)
			return cli_usage_error(a->ctx, "leases create", "--label %s: expected KEY=VALUE", val), -2;
	}
	return 0;
}

static int leases_create(cli_ctx *ctx, int argc, char **argv)
{
	create_args a = { .ctx = ctx };
	berth_lease out;
	berth_error err;
	int rc = CLI_EXIT_FAIL;
	int first = cli_parse(ctx, "leases create", "[OPTIONS]", "Create a lease and print its id.", create_opts, argc,
			      argv, create_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (first != argc) {
		rc = cli_usage_error(ctx, "leases create", "unexpected argument %s", argv[first]);
		goto out;
	}
	berth_client *c = cli_client(ctx);
	if (!c)
		goto out;
	if (berth_lease_create(c, NULL, a.id, a.labels, a.n_labels, a.expire_ms, &out, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	printf("%s\n", out.id);
	berth_lease_clear(&out);
	rc = 0;
out:
	berth_spec_labels_free(a.labels, a.n_labels);
	return rc;
}

static int format_opt(void *arg, int idx, const char *val)
{
	(void)idx;
	return cli_parse_format(((cli_list_args *)arg)->ctx, val, &((cli_list_args *)arg)->fmt);
}

static int leases_ls(cli_ctx *ctx, int argc, char **argv)
{
	static const cli_opt opts[] = CLI_LIST_OPTS("print only the ids");
	cli_list_args a = { .ctx = ctx };
	berth_lease *v = NULL;
	size_t n = 0;
	berth_error err;
	char t1[48], t2[48];
	int first = cli_parse(ctx, "leases ls", "[OPTIONS] [FILTER...]", "List leases (filters: id, labels.KEY).", opts,
			      argc, argv, cli_list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_lease_list(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", v[i].id);
	} else if (a.fmt == CLI_FMT_JSON) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			json_t *o = json_object();
			json_object_set_new(o, "id", json_string(v[i].id));
			json_object_set_new(o, "createdAt", json_string(bt_time_fmt(v[i].created_at, t1, sizeof(t1))));
			json_object_set_new(o, "expiresAt", v[i].expires_at ? json_string(bt_time_fmt(v[i].expires_at, t2,
													sizeof(t2)))
									    : json_null());
			json_object_set_new(o, "labels", cli_labels_json(v[i].labels, v[i].n_labels));
			json_array_append_new(arr, o);
		}
		cli_print_json(arr);
	} else {
		static const char *const hdr[] = { "ID", "CREATED AT", "EXPIRES AT", "LABELS" };
		cli_table *t = cli_table_new(4, hdr);
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *labels = cli_labels_str(v[i].labels, v[i].n_labels);
			const char *row[] = { v[i].id, bt_time_fmt(v[i].created_at, t1, sizeof(t1)),
					      v[i].expires_at ? bt_time_fmt(v[i].expires_at, t2, sizeof(t2)) : "-",
					      labels };
			cli_table_row(t, row);
		}
		cli_table_print(t, stdout, false);
		cli_table_free(&t);
	}
	berth_leases_free(v, n);
	return 0;
}

static int sync_opt(void *arg, int idx, const char *val)
{
	(void)idx;
	(void)val;
	*(bool *)arg = true;
	return 0;
}

static int leases_rm(cli_ctx *ctx, int argc, char **argv)
{
	static const cli_opt opts[] = {
		{ "sync", 0, NULL, "collect the namespace's garbage before returning" },
		{ NULL, 0, NULL, NULL },
	};
	bool sync = false;
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "leases rm", "[--sync] ID...", "Delete leases.", opts, argc, argv, sync_opt, &sync);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "leases rm", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++) {
		if (berth_lease_delete(c, NULL, argv[i], sync, &err) < 0)
			rc = cli_fail(ctx, &err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

/* add|del ID TYPE RESOURCE */
static int resource_verb(cli_ctx *ctx, int argc, char **argv, bool add)
{
	const char *path = add ? "leases add" : "leases del";
	berth_error err;
	int first = cli_parse(ctx, path, "ID TYPE RESOURCE",
			      add ? "Make a lease hold a resource: TYPE content (a digest), snapshots/SNAPSHOTTER (a key), "
				    "ingests (a ref) or images (a name)."
				  : "Let a lease stop holding a resource.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 3)
		return cli_usage_error(ctx, path, "expected ID, TYPE and RESOURCE");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	int rc = add ? berth_lease_add_resource(c, NULL, argv[first], argv[first + 1], argv[first + 2], &err)
		     : berth_lease_delete_resource(c, NULL, argv[first], argv[first + 1], argv[first + 2], &err);
	return rc < 0 ? cli_fail(ctx, &err) : 0;
}

static int leases_add(cli_ctx *ctx, int argc, char **argv)
{
	return resource_verb(ctx, argc, argv, true);
}

static int leases_del(cli_ctx *ctx, int argc, char **argv)
{
	return resource_verb(ctx, argc, argv, false);
}

static int leases_resources(cli_ctx *ctx, int argc, char **argv)
{
	static const cli_opt opts[] = { { "format", 0, "FORMAT", "table (default) or json" }, { NULL, 0, NULL, NULL } };
	cli_list_args a = { .ctx = ctx };
	berth_lease_resource *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "leases resources", "[OPTIONS] ID", "List what a lease holds.", opts, argc, argv,
			      format_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "leases resources", "expected an ID");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_lease_list_resources(c, NULL, argv[first], &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:s}", "type", v[i].type, "id", v[i].id));
		cli_print_json(arr);
		berth_lease_resources_free(v, n);
		return 0;
	}
	static const char *const hdr[] = { "TYPE", "RESOURCE" };
	cli_table *t = cli_table_new(2, hdr);
	for (size_t i = 0; i < n; i++) {
		const char *row[] = { v[i].type, v[i].id };
		cli_table_row(t, row);
	}
	cli_table_print(t, stdout, false);
	cli_table_free(&t);
	berth_lease_resources_free(v, n);
	return 0;
}

const cli_cmd cli_leases_cmds[] = {
	{ "create", leases_create, NULL, "Create a lease", NULL, { 0 } },
	{ "ls", leases_ls, NULL, "List leases", NULL, { "list" } },
	{ "rm", leases_rm, NULL, "Delete leases", NULL, { "remove", "delete" } },
	{ "add", leases_add, NULL, "Make a lease hold a resource", NULL, { 0 } },
	{ "del", leases_del, NULL, "Let a lease stop holding a resource", NULL, { 0 } },
	{ "resources", leases_resources, NULL, "List what a lease holds", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
