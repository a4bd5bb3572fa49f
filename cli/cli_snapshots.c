/*
 * cli_snapshots — `berth snapshots [--snapshotter NAME] prepare|view|mounts|
 * commit|rm|ls|info|usage|tree|label|cleanup`, following ctr's verbs and
 * output: `ls` prints KEY PARENT KIND, `mounts TARGET KEY` prints a
 * `mount -t … … TARGET -o …` line to eval, `tree` the parent tree, `usage`
 * KEY SIZE INODES.
 *
 * --snapshotter (env BERTH_SNAPSHOTTER) belongs to the group, as in ctr:
 * `berth snapshots --snapshotter native ls`.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bt_util.h"
#include "cli.h"

/* The group's context: the shared one plus the snapshotter chosen. */
typedef struct snap_cli {
	cli_ctx base; /* first: verbs get &base and find the rest */
	const char *snapshotter;
} snap_cli;

static const char *sn(cli_ctx *ctx)
{
	return ((snap_cli *)ctx)->snapshotter;
}

static const char *kind_title(int kind)
{
	switch (kind) {
	case BERTH_SNAPSHOT_VIEW:
		return "View";
	case BERTH_SNAPSHOT_ACTIVE:
		return "Active";
	case BERTH_SNAPSHOT_COMMITTED:
		return "Committed";
	default:
		return "Unknown";
	}
}

static json_t *info_json(const berth_snapshot_info *i)
{
	char created[48], updated[48];
	json_t *o = json_object();
	json_t *l = cli_labels_json(i->labels, i->n_labels);

	json_object_set_new(o, "name", json_string(i->name));
	json_object_set_new(o, "parent", json_string(i->parent));
	json_object_set_new(o, "kind", json_string(berth_snapshot_kind_name(i->kind)));
	json_object_set_new(o, "created_at", json_string(bt_time_fmt(i->created_at, created, sizeof(created))));
	json_object_set_new(o, "updated_at", json_string(bt_time_fmt(i->updated_at, updated, sizeof(updated))));
	json_object_set_new(o, "labels", l);
	return o;
}

static json_t *mounts_json(const berth_mount *m, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		json_t *opts = json_array();
		for (size_t k = 0; k < m[i].n_options; k++)
			json_array_append_new(opts, json_string(m[i].options[k]));
		json_object_set_new(o, "type", json_string(m[i].type));
		json_object_set_new(o, "source", json_string(m[i].source));
		json_object_set_new(o, "target", json_string(m[i].target));
		json_object_set_new(o, "options", opts);
		json_array_append_new(arr, o);
	}
	return arr;
}

/* Appends s to b, single-quoted for a shell when it needs to be. */
static void shell_word(bt_buf *b, const char *s)
{
	bool plain = *s != '\0';

	for (const char *c = s; *c && plain; c++)
		plain = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-", *c) != NULL;
	if (plain) {
		bt_buf_append(b, s, strlen(s));
		return;
	}
	bt_buf_append(b, "'", 1);
	for (const char *c = s; *c; c++) {
		if (*c == '\'')
			bt_buf_append(b, "'\\''", 4);
		else
			bt_buf_append(b, c, 1);
	}
	bt_buf_append(b, "'", 1);
}

/* One `mount -t TYPE SOURCE TARGET -o OPTIONS` line per mount, as ctr prints them. */
static void print_mounts(const char *target, const berth_mount *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bt_buf line = { 0 };
		_cleanup_free_ char *t = m[i].target && *m[i].target && strcmp(m[i].target, "/") != 0
						 ? bt_xasprintf("%s/%s", target, m[i].target + (m[i].target[0] == '/'))
						 : bt_xstrdup(target);
		bt_buf_append(&line, "mount -t ", 9);
		shell_word(&line, m[i].type);
		bt_buf_append(&line, " ", 1);
		shell_word(&line, m[i].source);
		bt_buf_append(&line, " ", 1);
		shell_word(&line, t);
		if (m[i].n_options) {
			bt_buf opts = { 0 };
			for (size_t k = 0; k < m[i].n_options; k++) {
				if (k)
					bt_buf_append(&opts, ",", 1);
				bt_buf_append(&opts, m[i].options[k], strlen(m[i].options[k]));
			}
			bt_buf_append(&line, " -o ", 4);
			shell_word(&line, opts.data);
			bt_buf_free(&opts);
		}
		printf("%s\n", line.data);
		bt_buf_free(&line);
	}
}

typedef struct label_set {
	berth_label *v;
	size_t n;
} label_set;

static int add_label(label_set *l, const char *s)
{
	l->v = bt_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	if (cli_parse_label(s, &l->v[l->n]) < 0)
		return -1;
	l->n++;
	return 0;
}

static void label_set_free(label_set *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* --- prepare, view ----------------------------------------------------------------- */

typedef struct create_args {
	const char *target;
	bool mounts;
	label_set labels;
} create_args;

static int create_opt(void *arg, int idx, const char *val)
{
	create_args *a = arg;

	if (idx == 0)
		a->target = val;
	else if (idx == 1)
		a->mounts = true;
	else if (idx == 2)
		return add_label(&a->labels, val);
	return 0;
}

static const cli_opt create_opts[] = {
	{ "target", 't', "DIR", "print the mount command for DIR" },
	{ "mounts", 0, NULL, "print the mounts as JSON" },
	{ "label", 0, "KEY=VALUE", "label the snapshot (repeatable)" },
	{ NULL, 0, NULL, NULL },
};

static int create(cli_ctx *ctx, bool view, int argc, char **argv)
{
	const char *path = view ? "snapshots view" : "snapshots prepare";
	create_args a = { 0 };
	berth_mount *m = NULL;
	size_t n = 0;
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, path, "[OPTIONS] KEY [PARENT]",
			      view ? "Make a read-only view KEY of the committed snapshot PARENT."
				   : "Make an active (writable) snapshot KEY, empty or on top of the committed PARENT.",
			      create_opts, argc, argv, create_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (argc - first < 1 || argc - first > 2) {
		rc = cli_usage_error(ctx, path, "expected KEY [PARENT]");
		goto out;
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	const char *parent = argc - first == 2 ? argv[first + 1] : NULL;
	rc = view ? berth_snapshot_view(c, NULL, sn(ctx), argv[first], parent, a.labels.v, a.labels.n, &m, &n, &err)
		  : berth_snapshot_prepare(c, NULL, sn(ctx), argv[first], parent, a.labels.v, a.labels.n, &m, &n,
					   &err);
	if (rc < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (a.target)
		print_mounts(a.target, m, n);
	if (a.mounts)
		cli_print_json(mounts_json(m, n));
	berth_mounts_free(m, n);
out:
	label_set_free(&a.labels);
	return rc;
}

static int snap_prepare(cli_ctx *ctx, int argc, char **argv)
{
	return create(ctx, false, argc, argv);
}

static int snap_view(cli_ctx *ctx, int argc, char **argv)
{
	return create(ctx, true, argc, argv);
}

/* --- mounts ---------------------------------------------------------------------------- */

static int snap_mounts(cli_ctx *ctx, int argc, char **argv)
{
	berth_mount *m = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "snapshots mounts", "TARGET KEY",
			      "Print the mount commands that show snapshot KEY at TARGET (eval them as root).", NULL, argc,
			      argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 2)
		return cli_usage_error(ctx, "snapshots mounts", "expected TARGET KEY");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_snapshot_mounts(c, NULL, sn(ctx), argv[first + 1], &m, &n, &err) < 0)
		return cli_fail(ctx, &err);
	print_mounts(argv[first], m, n);
	berth_mounts_free(m, n);
	return 0;
}

/* --- commit ---------------------------------------------------------------------------- */

static int commit_opt(void *arg, int idx, const char *val)
{
	(void)idx;
	return add_label(arg, val);
}

static const cli_opt commit_opts[] = {
	{ "label", 0, "KEY=VALUE", "label the committed snapshot (repeatable)" },
	{ NULL, 0, NULL, NULL },
};

static int snap_commit(cli_ctx *ctx, int argc, char **argv)
{
	label_set l = { 0 };
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "snapshots commit", "[OPTIONS] NAME KEY",
			      "Commit the active snapshot KEY as the committed snapshot NAME.", commit_opts, argc, argv,
			      commit_opt, &l);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (argc - first != 2) {
		rc = cli_usage_error(ctx, "snapshots commit", "expected NAME KEY");
		goto out;
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if (berth_snapshot_commit(c, NULL, sn(ctx), argv[first], argv[first + 1], l.v, l.n, &err) < 0)
		rc = cli_fail(ctx, &err);
out:
	label_set_free(&l);
	return rc;
}

/* --- rm -------------------------------------------------------------------------------- */

static int snap_rm(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "snapshots rm", "KEY...", "Remove snapshots (children before their parents).", NULL,
			      argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "snapshots rm", "expected at least one KEY");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++)
		if (berth_snapshot_remove(c, NULL, sn(ctx), argv[i], &err) < 0)
			rc = cli_fail(ctx, &err);
	return rc;
}

/* --- ls -------------------------------------------------------------------------------- */

static const cli_opt ls_opts[] = CLI_LIST_OPTS("print only the keys");

static int snap_ls(cli_ctx *ctx, int argc, char **argv)
{
	cli_list_args a = { .ctx = ctx };
	berth_snapshot_info *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "snapshots ls", "[OPTIONS] [FILTER...]",
			      "List snapshots (filters: name, parent, kind, labels.KEY; ==, !=, ~=).", ls_opts, argc, argv,
			      cli_list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_snapshot_list(c, NULL, sn(ctx), (const char *const *)argv + first, (size_t)(argc - first), &v, &n,
				&err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, info_json(&v[i]));
		cli_print_json(arr);
	} else {
		static const char *const hdr[] = { "KEY", "PARENT", "KIND" };
		cli_table *t = cli_table_new(3, hdr);
		for (size_t i = 0; i < n; i++) {
			const char *row[] = { v[i].name, v[i].parent, kind_title(v[i].kind) };
			cli_table_row(t, row);
		}
		cli_table_print(t, stdout, a.quiet);
		cli_table_free(&t);
	}
	berth_snapshot_infos_free(v, n);
	return 0;
}

/* --- info ------------------------------------------------------------------------------ */

static int snap_info(cli_ctx *ctx, int argc, char **argv)
{
	berth_snapshot_info info;
	berth_error err;
	int first = cli_parse(ctx, "snapshots info", "KEY", "Print a snapshot's record as JSON.", NULL, argc, argv,
			      cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "snapshots info", "expected one KEY");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_snapshot_stat(c, NULL, sn(ctx), argv[first], &info, &err) < 0)
		return cli_fail(ctx, &err);
	cli_print_json(info_json(&info));
	berth_snapshot_info_clear(&info);
	return 0;
}

/* --- usage ----------------------------------------------------------------------------- */

static const cli_opt usage_opts[] = {
	{ "b", 0, NULL, "sizes in bytes" },
	{ "format", 0, "FORMAT", "table (default) or json (sizes in bytes)" },
	{ NULL, 0, NULL, NULL },
};

typedef struct usage_args {
	cli_ctx *ctx;
	bool bytes;
	cli_format fmt;
} usage_args;

static int usage_args_opt(void *arg, int idx, const char *val)
{
	usage_args *a = arg;
	if (idx == 0)
		a->bytes = true;
	else
		return cli_parse_format(a->ctx, val, &a->fmt);
	return 0;
}

static int snap_usage(cli_ctx *ctx, int argc, char **argv)
{
	usage_args a = { .ctx = ctx, .fmt = CLI_FMT_TABLE };
	berth_snapshot_info *all = NULL;
	size_t nall = 0;
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "snapshots usage", "[OPTIONS] [KEY...]",
			      "Print the disk usage of snapshots' own layers (all of them without KEY).", usage_opts, argc,
			      argv, usage_args_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (argc == first && berth_snapshot_list(c, NULL, sn(ctx), NULL, 0, &all, &nall, &err) < 0)
		return cli_fail(ctx, &err);
	static const char *const hdr[] = { "KEY", "SIZE", "INODES" };
	cli_table *t = cli_table_new(3, hdr);
	json_t *arr = json_array();
	size_t n = argc > first ? (size_t)(argc - first) : nall;
	for (size_t i = 0; i < n; i++) {
		const char *key = argc > first ? argv[first + (int)i] : all[i].name;
		berth_snapshot_usage u;
		char size[32], inodes[32];
		if (berth_snapshot_get_usage(c, NULL, sn(ctx), key, &u, &err) < 0) {
			rc = cli_fail(ctx, &err);
			continue;
		}
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I}", "key", key, "size", (json_int_t)u.size, "inodes",
						     (json_int_t)u.inodes));
		if (a.bytes)
			snprintf(size, sizeof(size), "%lld", (long long)u.size);
		else
			cli_size(u.size, size, sizeof(size));
		snprintf(inodes, sizeof(inodes), "%lld", (long long)u.inodes);
		const char *row[] = { key, size, inodes };
		cli_table_row(t, row);
	}
	if (a.fmt == CLI_FMT_JSON)
		cli_print_json(arr);
	else {
		json_decref(arr);
		cli_table_print(t, stdout, false);
	}
	cli_table_free(&t);
	berth_snapshot_infos_free(all, nall);
	return rc;
}

/* --- tree ------------------------------------------------------------------------------ */

static void print_node(const berth_snapshot_info *v, size_t n, size_t at, int level)
{
	for (int i = 0; i < level; i++)
		fputs("  ", stdout);
	printf("%s %s\n", level > 0 ? "\\_" : "", v[at].name);
	/* the list is sorted by name, so children come out sorted too */
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].parent, v[at].name) == 0 && level < 1000)
			print_node(v, n, i, level + 1);
}

static int snap_tree(cli_ctx *ctx, int argc, char **argv)
{
	berth_snapshot_info *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "snapshots tree", "", "Print the snapshots as a tree of parents and children.", NULL,
			      argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc != first)
		return cli_usage_error(ctx, "snapshots tree", "expected no arguments");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_snapshot_list(c, NULL, sn(ctx), NULL, 0, &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	for (size_t i = 0; i < n; i++)
		if (!v[i].parent[0])
			print_node(v, n, i, 0);
	berth_snapshot_infos_free(v, n);
	return 0;
}

/* --- label ----------------------------------------------------------------------------- */

static int snap_label(cli_ctx *ctx, int argc, char **argv)
{
	cli_label_edit l;
	berth_snapshot_info info;
	berth_error err;
	const char *bad;
	int rc;
	int first = cli_parse(ctx, "snapshots label", "KEY [LABEL=VALUE...]",
			      "Set labels on a snapshot; LABEL= with no value removes LABEL. Without labels, print them.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "snapshots label", "expected a KEY");
	if (cli_label_edit_parse(argv + first + 1, argc - first - 1, &l, &bad) < 0)
		return cli_usage_error(ctx, "snapshots label", "\"%s\": expected LABEL=VALUE", bad);
	berth_client *c = cli_client(ctx);
	if (!c) {
		cli_label_edit_clear(&l);
		return CLI_EXIT_FAIL;
	}
	rc = l.n_mask == 0 ? berth_snapshot_stat(c, NULL, sn(ctx), argv[first], &info, &err)
			   : berth_snapshot_update(c, NULL, sn(ctx), argv[first], l.set, l.n_set,
						   (const char *const *)l.mask, l.n_mask, &info, &err);
	cli_label_edit_clear(&l);
	if (rc < 0)
		return cli_fail(ctx, &err);
	_cleanup_free_ char *shown = cli_labels_str(info.labels, info.n_labels);
	printf("%s %s\n", info.name, shown);
	berth_snapshot_info_clear(&info);
	return 0;
}

/* --- cleanup --------------------------------------------------------------------------- */

static int snap_cleanup(cli_ctx *ctx, int argc, char **argv)
{
	int64_t removed = 0;
	berth_error err;
	int first = cli_parse(ctx, "snapshots cleanup", "",
			      "Remove snapshot directories no record owns (left by a crash); prints how many.", NULL, argc,
			      argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc != first)
		return cli_usage_error(ctx, "snapshots cleanup", "expected no arguments");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_snapshot_cleanup(c, NULL, sn(ctx), &removed, &err) < 0)
		return cli_fail(ctx, &err);
	printf("%lld\n", (long long)removed);
	return 0;
}

static const cli_cmd cmds[] = {
	{ "prepare", snap_prepare, NULL, "Make an active snapshot", NULL, { 0 } },
	{ "view", snap_view, NULL, "Make a read-only view of a committed snapshot", NULL, { 0 } },
	{ "mounts", snap_mounts, NULL, "Print the mount commands of a snapshot", NULL, { "m", "mount" } },
	{ "commit", snap_commit, NULL, "Commit an active snapshot", NULL, { 0 } },
	{ "rm", snap_rm, NULL, "Remove snapshots", NULL, { "remove", "delete", "del" } },
	{ "ls", snap_ls, NULL, "List snapshots", NULL, { "list" } },
	{ "info", snap_info, NULL, "Print a snapshot's record", NULL, { 0 } },
	{ "usage", snap_usage, NULL, "Print disk usage", NULL, { 0 } },
	{ "tree", snap_tree, NULL, "Print the tree of snapshots", NULL, { 0 } },
	{ "label", snap_label, NULL, "Set or remove labels of a snapshot", NULL, { 0 } },
	{ "cleanup", snap_cleanup, NULL, "Remove directories no snapshot owns", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};

int cli_snapshots(cli_ctx *ctx, int argc, char **argv)
{
	snap_cli sc = { .base = *ctx, .snapshotter = getenv("BERTH_SNAPSHOTTER") };
	/* `berth snapshots VERB`, but `berth-snapshot VERB` */
	const char *group = strcmp(ctx->prog, "berth") == 0 ? "snapshots" : "";
	int i = 1, rc;

	/* the group's own options, before the verb */
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("Usage: %s%s%s [--snapshotter NAME] COMMAND [OPTIONS]\n"
			       "  -s, --snapshotter NAME  the snapshotter to use (env BERTH_SNAPSHOTTER; default: the\n"
			       "                          gateway's default, or the one at --address)\n\n",
			       ctx->prog, *group ? " " : "", group);
			cli_group_help(stdout, ctx->prog, group, cmds);
			return 0;
		}
		if (strcmp(argv[i], "--snapshotter") == 0 || strcmp(argv[i], "-s") == 0) {
			if (i + 1 >= argc)
				return cli_usage_error(ctx, group, "option %s needs a value", argv[i]);
			sc.snapshotter = argv[i + 1];
			i += 2;
		} else if (bt_startswith(argv[i], "--snapshotter=")) {
			sc.snapshotter = argv[i] + strlen("--snapshotter=");
			i++;
		} else {
			return cli_usage_error(ctx, group, "unknown option %s", argv[i]);
		}
	}
	rc = cli_dispatch(&sc.base, cmds, group, argc - i, argv + i);
	/* the connection, if one was made, is closed by the caller */
	ctx->client = sc.base.client;
	return rc;
}
