/*
 * cli_namespaces — `berth namespaces create|ls|rm|label`, as ctr's.
 */
#include <stdio.h>
#include <string.h>

#include "bt_util.h"
#include "cli.h"

static int ns_create(cli_ctx *ctx, int argc, char **argv)
{
	cli_label_edit l;
	berth_error err;
	const char *bad;
	int first = cli_parse(ctx, "namespaces create", "NAME [KEY=VALUE...]", "Create a namespace with labels.", NULL,
			      argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "namespaces create", "expected a NAME");
	if (cli_label_edit_parse(argv + first + 1, argc - first - 1, &l, &bad) < 0)
		return cli_usage_error(ctx, "namespaces create", "\"%s\": expected KEY=VALUE", bad);
	berth_client *c = cli_client(ctx);
	int rc = c ? berth_namespace_create(c, argv[first], l.set, l.n_set, NULL, &err) : -2;
	cli_label_edit_clear(&l);
	if (rc == -2)
		return CLI_EXIT_FAIL;
	return rc < 0 ? cli_fail(ctx, &err) : 0;
}

typedef struct {
	cli_ctx *ctx;
	bool quiet;
	cli_format fmt;
} ls_args;

static int ls_opt(void *arg, int idx, const char *val)
{
	ls_args *a = arg;
	if (idx == 0)
		a->quiet = true;
	else
		return cli_parse_format(a->ctx, val, &a->fmt);
	return 0;
}

static int ns_ls(cli_ctx *ctx, int argc, char **argv)
{
	static const cli_opt opts[] = { { "quiet", 'q', NULL, "print only the names" },
					{ "format", 0, "FORMAT", "table (default) or json" },
					{ NULL, 0, NULL, NULL } };
	ls_args a = { .ctx = ctx, .fmt = CLI_FMT_TABLE };
	berth_namespace *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "namespaces ls", "[OPTIONS] [FILTER...]", "List namespaces.", opts, argc, argv,
			      ls_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_namespace_list(c, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON && !a.quiet) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:o}", "name", v[i].name, "labels",
							     cli_labels_json(v[i].labels, v[i].n_labels)));
		cli_print_json(arr);
		berth_namespaces_free(v, n);
		return 0;
	}
	static const char *const hdr[] = { "NAME", "LABELS" };
	cli_table *t = cli_table_new(2, hdr);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *labels = cli_labels_str(v[i].labels, v[i].n_labels);
		const char *row[] = { v[i].name, labels };
		cli_table_row(t, row);
	}
	cli_table_print(t, stdout, a.quiet);
	cli_table_free(&t);
	berth_namespaces_free(v, n);
	return 0;
}

static int ns_rm(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "namespaces rm", "NAME...",
			      "Remove namespaces; refused while any service still holds something in one.", NULL, argc,
			      argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "namespaces rm", "expected at least one NAME");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++) {
		if (berth_namespace_delete(c, argv[i], &err) < 0)
			rc = cli_fail(ctx, &err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

static int ns_label(cli_ctx *ctx, int argc, char **argv)
{
	cli_label_edit l;
	berth_namespace out;
	berth_error err;
	const char *bad;
	int rc;
	int first = cli_parse(ctx, "namespaces label", "NAME [KEY=VALUE...]",
			      "Set labels on a namespace; KEY= with no value removes KEY. Without labels, print them.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "namespaces label", "expected a NAME");
	if (cli_label_edit_parse(argv + first + 1, argc - first - 1, &l, &bad) < 0)
		return cli_usage_error(ctx, "namespaces label", "\"%s\": expected KEY=VALUE", bad);
	berth_client *c = cli_client(ctx);
	if (!c) {
		cli_label_edit_clear(&l);
		return CLI_EXIT_FAIL;
	}
	rc = l.n_mask == 0 ? berth_namespace_get(c, argv[first], &out, &err)
			   : berth_namespace_update(c, argv[first], l.set, l.n_set, (const char *const *)l.mask,
						    l.n_mask, &out, &err);
	cli_label_edit_clear(&l);
	if (rc < 0)
		return cli_fail(ctx, &err);
	_cleanup_free_ char *shown = cli_labels_str(out.labels, out.n_labels);
	printf("%s %s\n", out.name, shown);
	berth_namespace_clear(&out);
	return 0;
}

const cli_cmd cli_namespaces_cmds[] = {
	{ "create", ns_create, NULL, "Create a namespace", NULL, { 0 } },
	{ "ls", ns_ls, NULL, "List namespaces", NULL, { "list" } },
	{ "rm", ns_rm, NULL, "Remove empty namespaces", NULL, { "remove", "delete" } },
	{ "label", ns_label, NULL, "Set or remove labels of a namespace", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};
