/*
 * cli_gc — `berth gc [--dry-run] [--format json]`: collects the current
 * namespace's garbage and reports each object removed and the bytes freed.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

#include "bt_util.h"
#include "cli.h"

typedef struct gc_args {
	bool dry_run;
	cli_format fmt;
	cli_ctx *ctx;
} gc_args;

static const cli_opt gc_opts[] = {
	{ "dry-run", 'n', NULL, "report what would be removed, remove nothing" },
	{ "format", 0, "FORMAT", "table (default) or json" },
	{ NULL, 0, NULL, NULL },
};

static int gc_opt(void *arg, int idx, const char *val)
{
	gc_args *a = arg;
	if (idx == 0)
		a->dry_run = true;
	else if (idx == 1)
		return cli_parse_format(a->ctx, val, &a->fmt);
	return 0;
}

static json_t *report_json(const berth_gc_report *r, bool dry_run)
{
	json_t *o = json_object(), *arr = json_array();
	for (size_t i = 0; i < r->n_removed; i++) {
		json_t *x = json_object();
		json_object_set_new(x, "kind", json_string(r->removed[i].kind));
		json_object_set_new(x, "id", json_string(r->removed[i].id));
		if (*r->removed[i].snapshotter)
			json_object_set_new(x, "snapshotter", json_string(r->removed[i].snapshotter));
		json_object_set_new(x, "size", json_integer(r->removed[i].size));
		json_array_append_new(arr, x);
	}
	json_object_set_new(o, "dryRun", json_boolean(dry_run));
	json_object_set_new(o, "removed", arr);
	json_object_set_new(o, "contentBytes", json_integer(r->content_bytes));
	json_object_set_new(o, "snapshotBytes", json_integer(r->snapshot_bytes));
	json_object_set_new(o, "keptContent", json_integer(r->kept_content));
	json_object_set_new(o, "keptSnapshots", json_integer(r->kept_snapshots));
	json_object_set_new(o, "durationUs", json_integer(r->duration_us));
	return o;
}

int cli_gc(cli_ctx *ctx, int argc, char **argv)
{
	gc_args a = { .ctx = ctx };
	berth_gc_report r;
	berth_error err;
	char s1[32], s2[32];
	int first = cli_parse(ctx, "gc", "[--dry-run] [--format json]",
			      "Remove the namespace's content and snapshots that no image, container or gc.root label "
			      "reaches; report what went and the bytes freed.",
			      gc_opts, argc, argv, gc_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (first != argc)
		return cli_usage_error(ctx, "gc", "unexpected argument %s", argv[first]);
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_gc_collect(c, NULL, a.dry_run, &r, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.fmt == CLI_FMT_JSON) {
		cli_print_json(report_json(&r, a.dry_run));
		berth_gc_report_clear(&r);
		return 0;
	}
	size_t blobs = 0, snaps = 0;
	for (size_t i = 0; i < r.n_removed; i++) {
		const berth_gc_removed *x = &r.removed[i];
		bool blob = !strcmp(x->kind, "content");
		blobs += blob;
		snaps += !blob;
		printf("%s %s %s%s%s %s\n", a.dry_run ? "would remove" : "removed", x->kind, blob ? "" : x->snapshotter,
		       blob ? "" : "/", x->id, cli_size(x->size, s1, sizeof(s1)));
	}
	printf("%s %zu blob%s (%s) and %zu snapshot%s (%s) in %" PRId64 " ms; kept %" PRId64 " blob%s and %" PRId64
	       " snapshot%s\n",
	       a.dry_run ? "would remove" : "removed", blobs, blobs == 1 ? "" : "s",
	       cli_size(r.content_bytes, s1, sizeof(s1)), snaps, snaps == 1 ? "" : "s",
	       cli_size(r.snapshot_bytes, s2, sizeof(s2)), r.duration_us / 1000, r.kept_content,
	       r.kept_content == 1 ? "" : "s", r.kept_snapshots, r.kept_snapshots == 1 ? "" : "s");
	berth_gc_report_clear(&r);
	return 0;
}
