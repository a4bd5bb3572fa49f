/*
 * cli_images — `berth images pull|push|ls|rm|tag|label|check|inspect|
 * export|import|unpack`, following ctr's verbs and flags (ls prints REF TYPE
 * DIGEST SIZE PLATFORMS LABELS; check prints REF TYPE DIGEST STATUS SIZE
 * UNPACKED). References are normalized as Docker does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "bt_util.h"
#include "cli.h"

static const char *short_type(const char *mt)
{
	if (!mt)
		return "-";
	if (strstr(mt, "index") || strstr(mt, "manifest.list"))
		return strstr(mt, "oci") ? "application/vnd.oci.image.index.v1+json" : mt;
	return mt;
}

/* --- pull ------------------------------------------------------------------------ */

typedef struct xfer_args {
	const char *platform;
	const char *snapshotter;
	const char *user;
	const char *lease;
	bool plain_http;
	bool no_unpack;
	bool all_platforms;
	const char *base_name;
	berth_label *labels;
	size_t n_labels;
	cli_format fmt;
	cli_ctx *ctx;
} xfer_args;

static void xfer_args_clear(xfer_args *a)
{
	for (size_t i = 0; i < a->n_labels; i++) {
		free(a->labels[i].key);
		free(a->labels[i].value);
	}
	free(a->labels);
}

enum { O_PLATFORM, O_PLAIN, O_SNAP, O_USER, O_NOUNPACK, O_LABEL, O_ALL, O_BASE, O_FORMAT, O_LEASE };

static int xfer_opt(void *arg, int idx, const char *val)
{
	xfer_args *a = arg;
	switch (idx) {
	case O_PLATFORM:
		a->platform = val;
		return 0;
	case O_PLAIN:
		a->plain_http = true;
		return 0;
	case O_SNAP:
		a->snapshotter = val;
		return 0;
	case O_USER:
		a->user = val;
		return 0;
	case O_NOUNPACK:
		a->no_unpack = true;
		return 0;
	case O_LABEL:
		return cli_label_push(val, &a->labels, &a->n_labels);
	case O_ALL:
		a->all_platforms = true;
		return 0;
	case O_BASE:
		a->base_name = val;
		return 0;
	case O_FORMAT:
		return cli_parse_format(a->ctx, val, &a->fmt);
	case O_LEASE:
		a->lease = val;
		return 0;
	}
	return -1;
}

/* Indexed by the O_* values; commands pass NULL names for options they lack. */
static cli_opt xfer_opts[] = {
	[O_PLATFORM] = { "platform", 0, "OS/ARCH[/VARIANT]", "platform to use (default: this host's)" },
	[O_PLAIN] = { "plain-http", 0, NULL, "talk plain HTTP to the registry" },
	[O_SNAP] = { "snapshotter", 0, "NAME", "snapshotter to unpack into (default: the configured one)" },
	[O_USER] = { "user", 'u', "USER[:PASSWORD]", "registry credentials" },
	[O_NOUNPACK] = { "no-unpack", 0, NULL, "only fetch into the content store" },
	[O_LABEL] = { "label", 0, "KEY=VALUE", "label the image (repeatable)" },
	[O_ALL] = { "all-platforms", 0, NULL, "every platform of the image" },
	[O_BASE] = { "base-name", 0, "NAME", "name for images the archive names only by tag" },
	[O_FORMAT] = { "format", 0, "FORMAT", "table (default) or json" },
	[O_LEASE] = { "lease", 0, "ID", "hold what is stored or reused with this lease (berth leases create)" },
	{ NULL, 0, NULL, NULL },
};

/* The option tables above use fixed positions; cli_parse reports the
 * position in the table it was given, so each command translates. */
typedef struct opt_map {
	xfer_args *a;
	const int *map;
} opt_map;

static int mapped_opt(void *arg, int idx, const char *val)
{
	opt_map *m = arg;
	return xfer_opt(m->a, m->map[idx], val);
}

static int images_pull(cli_ctx *ctx, int argc, char **argv)
{
	xfer_args a = { .ctx = ctx };
	berth_image img = { 0 };
	berth_error err;
	int rc = 0;
	static const int map[] = { O_PLATFORM, O_PLAIN, O_SNAP, O_USER, O_NOUNPACK, O_LABEL, O_LEASE };
	cli_opt opts[] = { xfer_opts[O_PLATFORM], xfer_opts[O_PLAIN], xfer_opts[O_SNAP],  xfer_opts[O_USER],
			   xfer_opts[O_NOUNPACK], xfer_opts[O_LABEL], xfer_opts[O_LEASE], { NULL, 0, NULL, NULL } };
	opt_map m = { &a, map };
	int first = cli_parse(ctx, "images pull", "[OPTIONS] REF",
			      "Fetch an image from a registry into the content store and unpack it.", opts, argc, argv,
			      mapped_opt, &m);
	if (first < 0) {
		xfer_args_clear(&a);
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	}
	if (argc - first != 1) {
		xfer_args_clear(&a);
		return cli_usage_error(ctx, "images pull", "expected one REF");
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		xfer_args_clear(&a);
		return CLI_EXIT_FAIL;
	}
	cli_progress *p = cli_progress_new(stdout);
	berth_pull_opts o = {
		.ref = argv[first],
		.platform = a.platform,
		.snapshotter = a.snapshotter,
		.unpack = !a.no_unpack,
		.plain_http = a.plain_http,
		.user = a.user,
		.labels = a.labels,
		.n_labels = a.n_labels,
		.progress = cli_progress_update,
		.arg = p,
		.lease = a.lease,
	};
	if (berth_image_pull(c, NULL, &o, &img, &err) < 0) {
		cli_progress_free(&p);
		rc = cli_fail(ctx, &err);
	} else {
		cli_progress_free(&p);
		printf("%s: %s\n", img.name, img.target.digest);
		berth_image_clear(&img);
	}
	xfer_args_clear(&a);
	return rc;
}

static int images_push(cli_ctx *ctx, int argc, char **argv)
{
	xfer_args a = { .ctx = ctx };
	static const int map[] = { O_PLATFORM, O_PLAIN, O_USER };
	cli_opt opts[] = { xfer_opts[O_PLATFORM], xfer_opts[O_PLAIN], xfer_opts[O_USER], { NULL, 0, NULL, NULL } };
	opt_map m = { &a, map };
	char digest[72];
	berth_error err;
	int first = cli_parse(ctx, "images push", "[OPTIONS] NAME [REMOTE]",
			      "Push a stored image to a registry (under REMOTE, or its own name).", opts, argc, argv,
			      mapped_opt, &m);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1 || argc - first > 2)
		return cli_usage_error(ctx, "images push", "expected NAME [REMOTE]");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	cli_progress *p = cli_progress_new(stdout);
	berth_push_opts o = {
		.name = argv[first],
		.ref = argc - first == 2 ? argv[first + 1] : NULL,
		.platform = a.platform,
		.plain_http = a.plain_http,
		.user = a.user,
		.progress = cli_progress_update,
		.arg = p,
	};
	int rc = berth_image_push(c, NULL, &o, digest, &err);
	cli_progress_free(&p);
	if (rc < 0)
		return cli_fail(ctx, &err);
	printf("pushed %s: %s\n", o.ref ? o.ref : o.name, digest);
	return 0;
}

/* --- ls / check / inspect ------------------------------------------------------------- */

static const cli_opt ls_opts[] = CLI_LIST_OPTS("print only the names");

static json_t *image_json(const berth_image *i, const berth_image_report *r)
{
	char t1[48], t2[48];
	json_t *o = json_object(), *t = json_object();

	json_object_set_new(o, "name", json_string(i->name));
	json_object_set_new(t, "mediaType", json_string(i->target.media_type));
	json_object_set_new(t, "digest", json_string(i->target.digest));
	json_object_set_new(t, "size", json_integer(i->target.size));
	json_object_set_new(o, "target", t);
	json_object_set_new(o, "labels", cli_labels_json(i->labels, i->n_labels));
	json_object_set_new(o, "created_at", json_string(bt_time_fmt(i->created_at, t1, sizeof(t1))));
	json_object_set_new(o, "updated_at", json_string(bt_time_fmt(i->updated_at, t2, sizeof(t2))));
	if (r) {
		json_t *p = json_array();
		for (size_t k = 0; r->platforms && r->platforms[k]; k++)
			json_array_append_new(p, json_string(r->platforms[k]));
		json_object_set_new(o, "platforms", p);
		json_object_set_new(o, "size", json_integer(r->size));
		json_object_set_new(o, "complete", json_boolean(r->complete));
	}
	return o;
}

static char *platforms_str(const berth_image_report *r)
{
	bt_buf b = { 0 };
	for (size_t k = 0; r->platforms && r->platforms[k]; k++)
		bt_buf_appendf(&b, "%s%s", k ? "," : "", r->platforms[k]);
	return b.len ? bt_buf_steal(&b) : bt_xstrdup("-");
}

static int images_ls(cli_ctx *ctx, int argc, char **argv)
{
	cli_list_args a = { .ctx = ctx };
	berth_image *v = NULL;
	size_t n = 0;
	berth_error err;
	int first = cli_parse(ctx, "images ls", "[OPTIONS] [FILTER...]",
			      "List images (filters: name, target.digest, target.media_type, labels.KEY).", ls_opts, argc,
			      argv, cli_list_opt, &a);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_image_list(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0)
		return cli_fail(ctx, &err);
	if (a.quiet) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", v[i].name);
		berth_images_free(v, n);
		return 0;
	}
	static const char *const hdr[] = { "REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS" };
	cli_table *t = cli_table_new(6, hdr);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		berth_image_report r;
		if (berth_image_inspect(c, NULL, &v[i], NULL, &r, &err) < 0)
			memset(&r, 0, sizeof(r));
		if (a.fmt == CLI_FMT_JSON) {
			json_array_append_new(arr, image_json(&v[i], &r));
		} else {
			char size[32];
			_cleanup_free_ char *plats = platforms_str(&r);
			_cleanup_free_ char *labels = cli_labels_str(v[i].labels, v[i].n_labels);
			const char *row[] = { v[i].name, short_type(v[i].target.media_type), v[i].target.digest,
					      cli_size(r.size, size, sizeof(size)), plats, labels };
			cli_table_row(t, row);
		}
		berth_image_report_clear(&r);
	}
	if (a.fmt == CLI_FMT_JSON)
		cli_print_json(arr);
	else {
		json_decref(arr);
		cli_table_print(t, stdout, false);
	}
	cli_table_free(&t);
	berth_images_free(v, n);
	return 0;
}

static int images_check(cli_ctx *ctx, int argc, char **argv)
{
	xfer_args a = { .ctx = ctx };
	static const int map[] = { O_PLATFORM, O_SNAP, O_FORMAT };
	cli_opt opts[] = { xfer_opts[O_PLATFORM], xfer_opts[O_SNAP], xfer_opts[O_FORMAT], { NULL, 0, NULL, NULL } };
	opt_map m = { &a, map };
	json_t *arr = json_array();
	berth_image *v = NULL;
	size_t n = 0;
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "images check", "[OPTIONS] [FILTER...]",
			      "Check that images' blobs are stored and whether they are unpacked.", opts, argc, argv,
			      mapped_opt, &m);
	if (first < 0) {
		json_decref(arr);
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		json_decref(arr);
		return CLI_EXIT_FAIL;
	}
	if (berth_image_list(c, NULL, (const char *const *)argv + first, (size_t)(argc - first), &v, &n, &err) < 0) {
		json_decref(arr);
		return cli_fail(ctx, &err);
	}
	static const char *const hdr[] = { "REF", "TYPE", "DIGEST", "STATUS", "SIZE", "UNPACKED" };
	cli_table *t = cli_table_new(6, hdr);
	for (size_t i = 0; i < n; i++) {
		berth_image_report r;
		char status[64], size[64], s1[32], s2[32], chain[72] = "";
		bool failed = berth_image_inspect(c, NULL, &v[i], a.platform, &r, &err) < 0;
		if (failed) {
			memset(&r, 0, sizeof(r));
			fprintf(stderr, "%s: %s: %s\n", ctx->prog, v[i].name, err.message);
			rc = CLI_EXIT_FAIL;
		}
		if (failed)
			snprintf(status, sizeof(status), "unknown");
		else if (r.complete)
			snprintf(status, sizeof(status), "complete (%d/%d)", r.present, r.blobs);
		else
			snprintf(status, sizeof(status), "incomplete (%d/%d)", r.present, r.blobs);
		snprintf(size, sizeof(size), "%s/%s", cli_size(r.present_size, s1, sizeof(s1)),
			 cli_size(r.size, s2, sizeof(s2)));
		bool unpacked = r.complete && berth_image_unpacked(c, NULL, &v[i], a.platform, a.snapshotter, chain,
								   &err) == 1;
		const char *row[] = { v[i].name, short_type(v[i].target.media_type), v[i].target.digest, status, size,
				      unpacked ? "true" : "false" };
		cli_table_row(t, row);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:b}", "name", v[i].name,
						     "mediaType", v[i].target.media_type, "digest", v[i].target.digest,
						     "status", failed ? "unknown" : r.complete ? "complete" : "incomplete",
						     "blobs", r.blobs, "present", r.present, "size", (json_int_t)r.size,
						     "presentSize", (json_int_t)r.present_size, "unpacked", unpacked));
		if (!r.complete)
			rc = CLI_EXIT_FAIL;
		berth_image_report_clear(&r);
	}
	if (a.fmt == CLI_FMT_JSON)
		cli_print_json(arr);
	else {
		json_decref(arr);
		cli_table_print(t, stdout, false);
	}
	cli_table_free(&t);
	berth_images_free(v, n);
	return rc;
}

static int images_inspect(cli_ctx *ctx, int argc, char **argv)
{
	berth_image img;
	berth_image_report r;
	berth_error err;
	int first = cli_parse(ctx, "images inspect", "NAME", "Print an image's record and what it holds, as JSON.",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "images inspect", "expected one NAME");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_image_get(c, NULL, argv[first], &img, &err) < 0)
		return cli_fail(ctx, &err);
	if (berth_image_inspect(c, NULL, &img, NULL, &r, &err) < 0) {
		berth_image_clear(&img);
		return cli_fail(ctx, &err);
	}
	cli_print_json(image_json(&img, &r));
	berth_image_report_clear(&r);
	berth_image_clear(&img);
	return 0;
}

/* --- rm / tag / label ------------------------------------------------------------------- */

static int images_rm(cli_ctx *ctx, int argc, char **argv)
{
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "images rm", "NAME...", "Remove image records (blobs go at garbage collection).",
			      NULL, argc, argv, cli_no_opts, NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "images rm", "expected at least one NAME");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	for (int i = first; i < argc; i++) {
		if (berth_image_delete(c, NULL, argv[i], &err) < 0)
			rc = cli_fail(ctx, &err);
		else
			printf("%s\n", argv[i]);
	}
	return rc;
}

static int tag_opt(void *arg, int idx, const char *val)
{
	(void)idx;
	(void)val;
	*(bool *)arg = true;
	return 0;
}

static int images_tag(cli_ctx *ctx, int argc, char **argv)
{
	static const cli_opt opts[] = { { "force", 0, NULL, "replace a name that exists" }, { NULL, 0, NULL, NULL } };
	bool force = false;
	berth_image src;
	berth_error err;
	int rc = 0;
	int first = cli_parse(ctx, "images tag", "[--force] SOURCE TARGET...", "Give an image more names.", opts,
			      argc, argv, tag_opt, &force);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 2)
		return cli_usage_error(ctx, "images tag", "expected SOURCE and at least one TARGET");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	if (berth_image_get(c, NULL, argv[first], &src, &err) < 0)
		return cli_fail(ctx, &err);
	for (int i = first + 1; i < argc; i++) {
		berth_image t = src;
		t.name = argv[i];
		t.n_labels = 0;
		t.labels = NULL;
		if (berth_image_create(c, NULL, &t, NULL, &err) < 0) {
			if (err.code == BERTH_ALREADY_EXISTS && force) {
				static const char *const mask[] = { "target" };
				if (berth_image_update(c, NULL, &t, mask, 1, NULL, &err) == 0) {
					printf("%s\n", argv[i]);
					continue;
				}
			}
			rc = cli_fail(ctx, &err);
		} else {
			printf("%s\n", argv[i]);
		}
	}
	berth_image_clear(&src);
	return rc;
}

static int images_label(cli_ctx *ctx, int argc, char **argv)
{
	cli_label_edit l;
	berth_image img = { 0 }, out;
	berth_error err;
	const char *bad;
	int rc = 0;
	int first = cli_parse(ctx, "images label", "NAME [KEY=VALUE...]",
			      "Set labels on an image; KEY= with no value removes KEY.", NULL, argc, argv, cli_no_opts,
			      NULL);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 1)
		return cli_usage_error(ctx, "images label", "expected a NAME");
	if (cli_label_edit_parse(argv + first + 1, argc - first - 1, &l, &bad) < 0)
		return cli_usage_error(ctx, "images label", "\"%s\": expected KEY=VALUE", bad);
	berth_client *c = cli_client(ctx);
	if (!c) {
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	img.name = argv[first];
	img.labels = l.set;
	img.n_labels = l.n_set;
	if (l.n_mask == 0 ? berth_image_get(c, NULL, argv[first], &out, &err) < 0
			  : berth_image_update(c, NULL, &img, (const char *const *)l.mask, l.n_mask, &out, &err) < 0) {
		rc = cli_fail(ctx, &err);
		goto out;
	}
	{
		/* a block: the gotos above must not jump into a cleanup variable's scope */
		_cleanup_free_ char *shown = cli_labels_str(out.labels, out.n_labels);
		printf("%s %s\n", out.name, shown);
	}
	berth_image_clear(&out);
out:
	cli_label_edit_clear(&l);
	return rc;
}

/* --- export / import / unpack ------------------------------------------------------------ */

static int write_fd(void *arg, const void *data, size_t len)
{
	return bt_write_all(*(int *)arg, data, len);
}

static int images_export(cli_ctx *ctx, int argc, char **argv)
{
	xfer_args a = { .ctx = ctx };
	static const int map[] = { O_PLATFORM, O_ALL };
	cli_opt opts[] = { xfer_opts[O_PLATFORM], xfer_opts[O_ALL], { NULL, 0, NULL, NULL } };
	opt_map m = { &a, map };
	berth_error err;
	int fd;
	int first = cli_parse(ctx, "images export", "[OPTIONS] OUT NAME...",
			      "Write images as an OCI layout archive (OUT \"-\": standard output).", opts, argc, argv,
			      mapped_opt, &m);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first < 2)
		return cli_usage_error(ctx, "images export", "expected OUT and at least one NAME");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	const char *out = argv[first];
	_cleanup_free_ char *tmp = NULL;
	if (!strcmp(out, "-")) {
		fd = STDOUT_FILENO;
	} else {
		tmp = bt_xasprintf("%s.partial", out);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return cli_errorf(ctx, "create %s: %s", tmp, strerror(errno));
	}
	berth_export_opts o = {
		.names = (const char *const *)argv + first + 1,
		.n_names = (size_t)(argc - first - 1),
		.platform = a.platform,
		.all_platforms = a.all_platforms,
		.sink = write_fd,
		.arg = &fd,
	};
	if (berth_image_export(c, NULL, &o, &err) < 0) {
		if (tmp) {
			close(fd);
			unlink(tmp);
		}
		return cli_fail(ctx, &err);
	}
	if (tmp) {
		if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, out) < 0) {
			int errnum = errno;
			unlink(tmp);
			return cli_errorf(ctx, "write %s: %s", out, strerror(errnum));
		}
	}
	return 0;
}

static int64_t read_fd(void *arg, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(*(int *)arg, buf, len);
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

static int images_import(cli_ctx *ctx, int argc, char **argv)
{
	xfer_args a = { .ctx = ctx };
	static const int map[] = { O_BASE, O_PLATFORM, O_ALL, O_SNAP, O_NOUNPACK, O_LABEL };
	cli_opt opts[] = { xfer_opts[O_BASE],	  xfer_opts[O_PLATFORM], xfer_opts[O_ALL],
			   xfer_opts[O_SNAP],	  xfer_opts[O_NOUNPACK], xfer_opts[O_LABEL],
			   { NULL, 0, NULL, NULL } };
	opt_map m = { &a, map };
	berth_image *imgs = NULL;
	size_t n = 0;
	berth_error err;
	int fd, rc = 0;
	int first = cli_parse(ctx, "images import", "[OPTIONS] IN",
			      "Import images from an OCI layout archive or a `docker save` archive (IN \"-\": standard "
			      "input), and unpack them.",
			      opts, argc, argv, mapped_opt, &m);
	if (first < 0) {
		xfer_args_clear(&a);
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	}
	if (argc - first != 1) {
		xfer_args_clear(&a);
		return cli_usage_error(ctx, "images import", "expected one IN");
	}
	const char *in = argv[first];
	fd = strcmp(in, "-") ? open(in, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0) {
		rc = cli_errorf(ctx, "open %s: %s", in, strerror(errno));
		xfer_args_clear(&a);
		return rc;
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		if (fd != STDIN_FILENO)
			close(fd);
		xfer_args_clear(&a);
		return CLI_EXIT_FAIL;
	}
	cli_progress *p = cli_progress_new(stdout);
	berth_import_opts o = {
		.source = read_fd,
		.arg = &fd,
		.base_name = a.base_name,
		.platform = a.platform,
		.all_platforms = a.all_platforms,
		.labels = a.labels,
		.n_labels = a.n_labels,
		.progress = cli_progress_update,
		.progress_arg = p,
	};
	if (berth_image_import(c, NULL, &o, &imgs, &n, &err) < 0) {
		cli_progress_free(&p);
		rc = cli_fail(ctx, &err);
		goto out;
	}
	cli_progress_free(&p);
	for (size_t i = 0; i < n; i++) {
		char chain[72];
		printf("imported %s: %s\n", imgs[i].name, imgs[i].target.digest);
		if (a.no_unpack)
			continue;
		/* names that share a target share its unpacked chain: unpacking again finds it */
		p = cli_progress_new(stdout);
		int r = berth_image_unpack(c, NULL, imgs[i].name, a.all_platforms ? NULL : a.platform, a.snapshotter,
					   cli_progress_update, p, chain, &err);
		cli_progress_free(&p);
		if (r < 0) {
			rc = cli_fail(ctx, &err);
			goto out;
		}
		printf("unpacked %s: %s\n", imgs[i].name, chain);
	}
out:
	berth_images_free(imgs, n);
	if (fd != STDIN_FILENO)
		close(fd);
	xfer_args_clear(&a);
	return rc;
}

static int images_unpack(cli_ctx *ctx, int argc, char **argv)
{
	xfer_args a = { .ctx = ctx };
	static const int map[] = { O_PLATFORM, O_SNAP };
	cli_opt opts[] = { xfer_opts[O_PLATFORM], xfer_opts[O_SNAP], { NULL, 0, NULL, NULL } };
	opt_map m = { &a, map };
	char chain[72];
	berth_error err;
	int first = cli_parse(ctx, "images unpack", "[OPTIONS] NAME", "Unpack a stored image into a snapshotter.",
			      opts, argc, argv, mapped_opt, &m);
	if (first < 0)
		return first == -2 ? 0 : CLI_EXIT_USAGE;
	if (argc - first != 1)
		return cli_usage_error(ctx, "images unpack", "expected one NAME");
	berth_client *c = cli_client(ctx);
	if (!c)
		return CLI_EXIT_FAIL;
	cli_progress *p = cli_progress_new(stdout);
	int rc = berth_image_unpack(c, NULL, argv[first], a.platform, a.snapshotter, cli_progress_update, p, chain, &err);
	cli_progress_free(&p);
	if (rc < 0)
		return cli_fail(ctx, &err);
	printf("unpacked %s: %s\n", argv[first], chain);
	return 0;
}

const cli_cmd cli_images_cmds[] = {
	{ "pull", images_pull, NULL, "Fetch an image from a registry and unpack it", NULL, { 0 } },
	{ "push", images_push, NULL, "Push an image to a registry", NULL, { 0 } },
	{ "ls", images_ls, NULL, "List images", NULL, { "list" } },
	{ "check", images_check, NULL, "Check that images are complete and unpacked", NULL, { 0 } },
	{ "inspect", images_inspect, NULL, "Print an image as JSON", NULL, { 0 } },
	{ "rm", images_rm, NULL, "Remove images", NULL, { "remove", "delete" } },
	{ "tag", images_tag, NULL, "Give an image more names", NULL, { 0 } },
	{ "label", images_label, NULL, "Set or remove labels of an image", NULL, { 0 } },
	{ "export", images_export, NULL, "Write images as an OCI archive", NULL, { 0 } },
	{ "import", images_import, NULL, "Read images from an OCI or docker save archive", NULL, { 0 } },
	{ "unpack", images_unpack, NULL, "Unpack an image into a snapshotter", NULL, { 0 } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};

int cli_images(cli_ctx *ctx, int argc, char **argv)
{
	/* a debug CLI is the group itself: its usage lines name no group */
	return cli_dispatch(ctx, cli_images_cmds, strcmp(ctx->prog, "berth") ? "" : "images", argc - 1, argv + 1);
}
