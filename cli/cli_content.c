/*
 * cli_content — `berth content ls|info|get|ingest|rm|active|label|abort`,
 * following ctr's verbs and flags.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bt_util.h"
#include "cli.h"

static json_t *info_json(const berth_content_info *i)
{
	char created[48], updated[48];
	json_t *o = json_object();

	json_object_set_new(o, "digest", json_string(i->digest));
	json_object_set_new(o, "size", json_integer(i->size));
	json_object_set_new(o, "created_at", json_string(bt_time_fmt(i->created_at, created, sizeof(created))));
	json_object_set_new(o, "updated_at", json_string(bt_time_fmt(i->updated_at, updated, sizeof(updated))));
	json_object_set_new(o, "labels", cli_labels_json(i->labels, i->n_labels));
	return o;
}

/* --- ls ------------------------------------------------------------------------ */

static const cli_opt ls_opts[] = CLI_LIST_OPTS("print only the digests");

static int content_ls(cli_ctx *ctx, int argc, char **argv)
{
	cli_list_args a = { .ctx = ctx };
	berth_content_info *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "content ls", "[OPTIONS] [FILTER...]",
			      "List blobs of the namespace (filters: digest, size, labels.KEY; ==, !=, ~=).", ls_opts,
			      argc, argv, cli_list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_content_list(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, info_json(&v[i]));
		cli_print_json(arr);
	} else {
		static const char *const hdr[] = { "DIGEST", "SIZE", "AGE", "LABELS" };
		cli_table *t = cli_table_new(4, hdr);
		for (size_t i = 0; i < n; i++) {
			char size[32], age[48];
			_cleanup_free_ char *labels = cli_labels_str(v[i].labels, v[i].n_labels);
			const char *row[] = { v[i].digest, cli_size(v[i].size, size, sizeof(size)),
					      cli_age(v[i].created_at, age, sizeof(age)), labels };
			cli_table_row(t, row);
		}
		cli_table_print(t, stdout, a.quiet);
		cli_table_free(&t);
	}
	berth_content_infos_free(v, n);
	return 0;
}

/* --- info ---------------------------------------------------------------------- */

static int content_info(cli_ctx *ctx, int argc, char **argv)
{
	berth_content_info info;
	berth_error err;
	int first = cli_parse(ctx, "content info", "DIGEST", "Print a blob's record as JSON.", NULL, argc, argv,
			      cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "content info", "expected one DIGEST");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_content_get_info(c, NULL, argv[first], &info, &err) < 0)
		return cli_fail(ctx, &err);
	cli_print_json(info_json(&info));
	berth_content_info_clear(&info);
	return 0;
}

/* --- get ----------------------------------------------------------------------- */

static int write_out(void *arg, const void *data, size_t len)
{
	(void)arg;
	return bt_write_all(STDOUT_FILENO, data, len);
}

static int content_get(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int first = cli_parse(ctx, "content get", "DIGEST", "Write a blob's bytes to standard output.", NULL, argc,
			      argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "content get", "expected one DIGEST");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_content_read(c, NULL, argv[first], 0, 0, write_out, NULL, &err) < 0) {
		if (err.code == BERTH_CANCELLED)
			return cli_errorf(ctx, "writing to standard output: %s", strerror(errno));
		return cli_fail(ctx, &err);
	}
	return 0;
}

/* --- ingest -------------------------------------------------------------------- */

typedef struct ingest_args {
	const char *digest;
	int64_t size;
	berth_label *labels;
	size_t n_labels;
	int64_t retry_ms;
	bool quiet;
} ingest_args;

static int ingest_opt(void *arg, int idx, const char *val)
{
	ingest_args *a = arg;
	uint64_t n;
	int64_t ms;

	switch (idx) {
	case 0:
		a->digest = val;
		return 0;
	case 1:
		if (bt_parse_u64(val, &n) < 0 || n > INT64_MAX)
			return -1;
		a->size = (int64_t)n;
		return 0;
	case 2:
		return cli_label_push(val, &a->labels, &a->n_labels);
	case 3:
		if (bt_parse_duration_ms(val, &ms) < 0)
			return -1;
		a->retry_ms = ms == 0 ? -1 : ms;
		return 0;
	case 4:
		a->quiet = true;
		return 0;
	}
	return -1;
}

static const cli_opt ingest_opts[] = {
	{ "expected-digest", 0, "DIGEST", "verify the committed blob has this digest" },
	{ "expected-size", 0, "N", "verify the committed blob has N bytes" },
	{ "label", 0, "KEY=VALUE", "label the blob (repeatable)" },
	{ "retry", 0, "DURATION", "keep retrying a lost connection this long (default 60s; 0: never)" },
	{ "quiet", 'q', NULL, "do not print the digest" },
	{ NULL, 0, NULL, NULL },
};

static int64_t stdin_source(void *arg, void *buf, size_t len)
{
	(void)arg;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int stdin_seek(void *arg, int64_t off)
{
	(void)arg;
	return lseek(STDIN_FILENO, off, SEEK_SET) == off ? 0 : -1;
}

static int content_ingest(cli_ctx *ctx, int argc, char **argv)
{
	ingest_args a = { 0 };
	char digest[72];
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "content ingest", "[OPTIONS] REF",
			      "Store standard input as a blob through the ingest REF (resumes an interrupted one).",
			      ingest_opts, argc, argv, ingest_opt, &a);
	if (first < 0) {
		rc = first == -2 ? 0 : CLI_EXIT_USAGE;
		goto out;
	}
	if (argc - first != 1) {
		rc = cli_usage_error(ctx, "content ingest", "expected one REF");
		goto out;
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	struct stat st;
	bool seekable = fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode);
	berth_ingest_opts o = {
		.ref = argv[first],
		.expected_digest = a.digest,
		.expected_size = a.size,
		.labels = a.labels,
		.n_labels = a.n_labels,
		.source = stdin_source,
		.seek = seekable ? stdin_seek : NULL,
		.retry_ms = a.retry_ms,
	};
	if (berth_content_ingest(c, NULL, &o, digest, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	if (!a.quiet)
		printf("%s\n", digest);
out:
	for (size_t i = 0; i < a.n_labels; i++) {
		free(a.labels[i].key);
		free(a.labels[i].value);
	}
	free(a.labels);
	return rc;
}

/* --- rm ------------------------------------------------------------------------ */

static int content_rm(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "content rm", "DIGEST...", "Remove blobs from the namespace.", NULL, argc, argv,
			      cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "content rm", "expected at least one DIGEST");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++) {
		if (berth_content_delete(c, NULL, argv[i], &err) < 0)
			rc = cli_fail(ctx, &err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

/* --- active -------------------------------------------------------------------- */

static int content_active(cli_ctx *ctx, int argc, char **argv)
{
	cli_list_args a = { .ctx = ctx };
	berth_ingest_status *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "content active", "[OPTIONS] [FILTER...]",
			      "List ingests in progress (filters: ref, expected).", ls_opts, argc, argv, cli_list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_content_list_statuses(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n,
					&err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++) {
			char t1[48], t2[48];
			json_t *o = json_object();
			json_object_set_new(o, "ref", json_string(v[i].ref));
			json_object_set_new(o, "offset", json_integer(v[i].offset));
			json_object_set_new(o, "total", json_integer(v[i].total));
			json_object_set_new(o, "expected", json_string(v[i].expected));
			json_object_set_new(o, "started_at", json_string(bt_time_fmt(v[i].started_at, t1, sizeof(t1))));
			json_object_set_new(o, "updated_at", json_string(bt_time_fmt(v[i].updated_at, t2, sizeof(t2))));
			json_array_append_new(arr, o);
		}
		cli_print_json(arr);
	} else {
		static const char *const hdr[] = { "REF", "SIZE", "AGE" };
		cli_table *t = cli_table_new(3, hdr);
		for (size_t i = 0; i < n; i++) {
			char size[64], a1[32], a2[32], age[48];
			if (v[i].total > 0)
				snprintf(size, sizeof(size), "%s/%s", cli_size(v[i].offset, a1, sizeof(a1)),
					 cli_size(v[i].total, a2, sizeof(a2)));
			else
				cli_size(v[i].offset, size, sizeof(size));
			const char *row[] = { v[i].ref, size, cli_age(v[i].started_at, age, sizeof(age)) };
			cli_table_row(t, row);
		}
		cli_table_print(t, stdout, a.quiet);
		cli_table_free(&t);
	}
	berth_ingest_statuses_free(v, n);
	return 0;
}

/* --- label --------------------------------------------------------------------- */

static int content_label(cli_ctx *ctx, int argc, char **argv)
{
	cli_label_edit l;
	berth_content_info info;
	berth_error err;
	const char *bad;
	int rc;
	int first = cli_parse(ctx, "content label", "DIGEST [KEY=VALUE...]",
			      "Set labels on a blob; KEY= with no value removes KEY.", NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "content label", "expected a DIGEST");
	if (cli_label_edit_parse(argv + first + 1, argc - first - 1, &l, &bad) < 0)
		return cli_usage_error(ctx, "content label", "\"%s\": expected KEY=VALUE", bad);
	berth_client *c = cli_client(ctx);
	if (!c) {
		cli_label_edit_clear(&l);
		return CLI_EXIT_FAIL;
	}
	/* no arguments: print the labels */
	rc = l.n_mask == 0 ? berth_content_get_info(c, NULL, argv[first], &info, &err)
			   : berth_content_update(c, NULL, argv[first], l.set, l.n_set, (const char *const *)l.mask,
						  l.n_mask, &info, &err);
	cli_label_edit_clear(&l);
	if (rc < 0)
		return cli_fail(ctx, &err);
	_cleanup_free_ char *shown = cli_labels_str(info.labels, info.n_labels);
	printf("%s %s\n", info.digest, shown);
	berth_content_info_clear(&info);
	return 0;
}

/* --- abort --------------------------------------------------------------------- */

static int content_abort(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "content abort", "REF...", "Abandon ingests in progress and drop their bytes.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "content abort", "expected at least one REF");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++)
		if (berth_content_abort(c, NULL, argv[i], &err) < 0)
			rc = cli_fail(ctx, &err);
	return rc;
}

const cli_cmd cli_content_cmds[] = {
	{ "ls", content_ls, NULL, "List blobs", NULL, { "list" } },
	{ "info", content_info, NULL, "Print a blob's record", NULL, { 0 } },
	{ "get", content_get, NULL, "Write a blob to standard output", NULL, { 0 } },
	{ "ingest", content_ingest, NULL, "Store standard input as a blob", NULL, { 0 } },
	{ "rm", content_rm, NULL, "Remove blobs", NULL, { "remove", "delete" } },
	{ "active", content_active, NULL, "List ingests in progress", NULL, { 0 } },
	{ "label", content_label, NULL, "Set or remove labels of a blob", NULL, { 0 } },
	{ "abort", content_abort, NULL, "Abandon ingests in progress", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};

int cli_content(cli_ctx *ctx, int argc, char **argv)
{
	/* a debug CLI is the group itself: its usage lines name no group */
	return cli_dispatch(ctx, cli_content_cmds, strcmp(ctx->prog, "berth") ? "" : "content", argc - 1, argv + 1);
}
