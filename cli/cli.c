/*
 * cli — command dispatch, option parsing, errors with hints, tables.
 */
#define _GNU_SOURCE
#include "bt_keys.h"
#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bt_config.h"
#include "bt_util.h"

static const cli_cmd *find_cmd(const cli_cmd *table, const char *name)
{
	for (const cli_cmd *c = table; c->name; c++) {
		if (strcmp(c->name, name) == 0)
			return c;
		for (int i = 0; i < 3 && c->aliases[i]; i++)
			if (strcmp(c->aliases[i], name) == 0)
				return c;
	}
	return NULL;
}

void cli_group_help(FILE *f, const char *prog, const char *path, const cli_cmd *table)
{
	size_t w = 0;

	fprintf(f, "Usage: %s%s%s COMMAND [OPTIONS]\n\nCommands:\n", prog, path && *path ? " " : "",
		path ? path : "");
	for (const cli_cmd *c = table; c->name; c++)
		w = BT_MAX(w, strlen(c->name));
	for (const cli_cmd *c = table; c->name; c++)
		fprintf(f, "  %-*s  %s\n", (int)w, c->name, c->summary);
	fprintf(f, "\nRun '%s%s%s COMMAND --help' for a command's options.\n", prog, path && *path ? " " : "",
		path ? path : "");
}

int cli_dispatch(cli_ctx *ctx, const cli_cmd *table, const char *path, int argc, char **argv)
{
	const cli_cmd *c;

	if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "help") == 0) {
		cli_group_help(argc < 1 ? stderr : stdout, ctx->prog, path, table);
		return argc < 1 ? CLI_EXIT_USAGE : 0;
	}
	c = find_cmd(table, argv[0]);
	if (!c)
		return cli_usage_error(ctx, path, "unknown command \"%s\"", argv[0]);
	if (c->sub) {
		_cleanup_free_ char *sub = bt_xasprintf("%s%s%s", path && *path ? path : "", path && *path ? " " : "",
						       c->name);
		return cli_dispatch(ctx, c->sub, sub, argc - 1, argv + 1);
	}
	return c->fn(ctx, argc, argv);
}

static void to_public(berth_error *err, const bt_err *e)
{
	err->code = e->code;
	err->transport = 0;
	snprintf(err->message, sizeof(err->message), "%s", e->msg);
}

berth_client *cli_client_new(cli_ctx *ctx, berth_error *err)
{
	berth_options o = { .address = ctx->address, .namespace_ = ctx->ns, .timeout_ms = ctx->timeout_ms };
	char server[BT_KEY_LEN + 1], secret[BT_KEY_LEN + 1], public[BT_KEY_LEN + 1];
	const char *skf = ctx->server_key_file ? ctx->server_key_file : getenv("BERTH_SERVER_KEY");
	const char *kf = ctx->key_file ? ctx->key_file : getenv("BERTH_KEY");
	bt_err e;

	if ((skf && *skf) || (kf && *kf)) {
		if (!skf || !*skf || !kf || !*kf) {
			bt_err_set(&e, BT_INVALID_ARGUMENT,
				   "CURVE needs both --server-key (the gateway's .pub) and --key (your .key)");
			to_public(err, &e);
			return NULL;
		}
		if (bt_key_read(skf, server, &e) < 0 || bt_key_read(kf, secret, &e) < 0 ||
		    bt_key_public(secret, public, &e) < 0) {
			to_public(err, &e);
			return NULL;
		}
		o.server_key = server;
		o.public_key = public;
		o.secret_key = secret;
	}
	berth_client *c = berth_client_new(&o, err);
	explicit_bzero(secret, sizeof(secret));
	return c;
}

berth_client *cli_client(cli_ctx *ctx)
{
	berth_error err;

	if (ctx->client)
		return ctx->client;
	ctx->client = cli_client_new(ctx, &err);
	if (!ctx->client)
		cli_fail(ctx, &err);
	return ctx->client;
}

void cli_close(cli_ctx *ctx)
{
	berth_client_free(&ctx->client);
}

int cli_fail(cli_ctx *ctx, const berth_error *err)
{
	fprintf(stderr, "%s: error: %s\n", ctx->prog, err->message);
	if (err->code == BERTH_UNAVAILABLE && err->transport) {
		const char *addr = ctx->client ? berth_client_address(ctx->client) : ctx->address;
		fprintf(stderr, "hint: is %s running%s%s? (address set by --address or BERTH_ADDRESS)\n",
			ctx->daemon ? ctx->daemon : "berth-gatewayd", addr ? " at " : "", addr ? addr : "");
	} else if (err->code == BERTH_FAILED_PRECONDITION && strstr(err->message, "namespace is required")) {
		fprintf(stderr, "hint: pass --namespace NAME\n");
	}
	return CLI_EXIT_FAIL;
}

int cli_errorf(cli_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: error: ", ctx->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

/* path as the user types it: without the group a debug CLI stands for
 * ("content ls" is `berth-content ls`). */
static const char *shown_path(const cli_ctx *ctx, const char *path)
{
	size_t n = ctx->group ? strlen(ctx->group) : 0;

	if (!path || !n || strncmp(path, ctx->group, n) != 0 || (path[n] != ' ' && path[n] != '\0'))
		return path;
	return path[n] == ' ' ? path + n + 1 : path + n;
}

int cli_usage_error(cli_ctx *ctx, const char *path, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ctx->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	path = shown_path(ctx, path);
	fprintf(stderr, "\nSee '%s%s%s --help'.\n", ctx->prog, path && *path ? " " : "", path ? path : "");
	return CLI_EXIT_USAGE;
}

int cli_parse(cli_ctx *ctx, const char *path, const char *usage, const char *summary, const cli_opt *opts,
	      int argc, char **argv, int (*on)(void *arg, int idx, const char *val), void *arg)
{
	size_t n = 0;
	bt_buf shorts = { 0 };
	int c, idx;

	while (opts && opts[n].name)
		n++;
	struct option *lo = bt_xcalloc(n + 2, sizeof(*lo));
	bt_buf_append(&shorts, "+:h", 3);
	for (size_t i = 0; i < n; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].arg ? required_argument : no_argument;
		lo[i].val = 256 + (int)i;
		if (opts[i].short_name) {
			char s[3] = { opts[i].short_name, ':', 0 };
			bt_buf_append(&shorts, s, opts[i].arg ? 2 : 1);
		}
	}
	lo[n].name = "help";
	lo[n].val = 'h';
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts.data, lo, &idx)) != -1) {
		if (c == 'h') {
			const char *shown = shown_path(ctx, path);
			printf("Usage: %s%s%s%s%s\n%s\n", ctx->prog, *shown ? " " : "", shown, usage && *usage ? " " : "",
			       usage ? usage : "",
			       summary);
			if (n)
				printf("\nOptions:\n");
			for (size_t i = 0; i < n; i++) {
				char left[64], sh[5] = "    ";
				if (opts[i].short_name)
					snprintf(sh, sizeof(sh), "-%c, ", opts[i].short_name);
				snprintf(left, sizeof(left), "%s--%s%s%s", sh, opts[i].name, opts[i].arg ? " " : "",
					 opts[i].arg ? opts[i].arg : "");
				printf("  %-32s  %s\n", left, opts[i].help);
			}
			free(lo);
			bt_buf_free(&shorts);
			return -2;
		}
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			free(lo);
			bt_buf_free(&shorts);
			cli_usage_error(ctx, path, c == ':' ? "option %s needs a value" : "unknown option %s", bad);
			return -1;
		}
		int i = -1;
		if (c >= 256)
			i = c - 256;
		else
			for (size_t k = 0; k < n; k++)
				if (opts[k].short_name == c)
					i = (int)k;
		int r = i < 0 ? -1 : on(arg, i, optarg);
		if (r < 0) {
			free(lo);
			bt_buf_free(&shorts);
			if (i >= 0 && r != -2)
				cli_usage_error(ctx, path, "invalid value for --%s: \"%s\"", opts[i].name,
						optarg ? optarg : "");
			return -1;
		}
	}
	free(lo);
	bt_buf_free(&shorts);
	return optind;
}

/* --- tables -------------------------------------------------------------------- */

struct cli_table {
	size_t ncols;
	char **cells; /* row-major, header first */
	size_t nrows;
};

cli_table *cli_table_new(size_t ncols, const char *const *headers)
{
	cli_table *t = bt_xzalloc(sizeof(*t));
	t->ncols = ncols;
	cli_table_row(t, headers);
	return t;
}

void cli_table_row(cli_table *t, const char *const *cells)
{
	t->cells = bt_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = bt_xstrdup(cells[i] ? cells[i] : "");
	t->nrows++;
}

void cli_table_print(cli_table *t, FILE *f, bool quiet)
{
	size_t *w = bt_xcalloc(t->ncols, sizeof(size_t));

	if (quiet) {
		for (size_t r = 1; r < t->nrows; r++)
			fprintf(f, "%s\n", t->cells[r * t->ncols]);
		free(w);
		return;
	}
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++)
			w[c] = BT_MAX(w[c], strlen(t->cells[r * t->ncols + c]));
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			if (c + 1 == t->ncols)
				fprintf(f, "%s\n", cell);
			else
				fprintf(f, "%-*s  ", (int)w[c], cell);
		}
	}
	free(w);
}

void cli_table_free(cli_table **tp)
{
	cli_table *t = *tp;
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	*tp = NULL;
}

/* --- helpers --------------------------------------------------------------------- */

const char *cli_size(int64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < BT_ARRAY_LEN(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lld B", (long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

const char *cli_age(int64_t ns, char *buf, size_t len)
{
	int64_t s = (bt_now_ns() - ns) / 1000000000LL;

	if (ns <= 0)
		snprintf(buf, len, "-");
	else if (s < 1)
		snprintf(buf, len, "Less than a second");
	else if (s < 60)
		snprintf(buf, len, "%lld second%s", (long long)s, s == 1 ? "" : "s");
	else if (s < 3600)
		snprintf(buf, len, "%lld minute%s", (long long)(s / 60), s / 60 == 1 ? "" : "s");
	else if (s < 86400 * 2)
		snprintf(buf, len, "%lld hour%s", (long long)(s / 3600), s / 3600 == 1 ? "" : "s");
	else
		snprintf(buf, len, "%lld days", (long long)(s / 86400));
	return buf;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const berth_label *)a)->key, ((const berth_label *)b)->key);
}

char *cli_labels_str(const berth_label *l, size_t n)
{
	bt_buf b = { 0 };

	if (n == 0)
		return bt_xstrdup("-");
	berth_label *sorted = bt_xmalloc(n * sizeof(*sorted));
	memcpy(sorted, l, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), label_cmp);
	for (size_t i = 0; i < n; i++)
		bt_buf_appendf(&b, "%s%s=%s", i ? "," : "", sorted[i].key, sorted[i].value);
	free(sorted);
	return bt_buf_steal(&b);
}

int cli_parse_label(const char *s, berth_label *out)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return -1;
	out->key = bt_xstrndup(s, (size_t)(eq - s));
	out->value = bt_xstrdup(eq + 1);
	return 0;
}

int cli_label_edit_parse(char *const *args, int n, cli_label_edit *out, const char **bad)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < n; i++) {
		berth_label one;
		if (cli_parse_label(args[i], &one) < 0) {
			*bad = args[i];
			cli_label_edit_clear(out);
			return -1;
		}
		out->mask = bt_xrealloc(out->mask, (out->n_mask + 1) * sizeof(*out->mask));
		out->mask[out->n_mask++] = bt_xasprintf("labels.%s", one.key);
		if (one.value[0]) {
			out->set = bt_xrealloc(out->set, (out->n_set + 1) * sizeof(*out->set));
			out->set[out->n_set++] = one;
		} else {
			free(one.key);
			free(one.value);
		}
	}
	return 0;
}

void cli_label_edit_clear(cli_label_edit *l)
{
	for (size_t i = 0; i < l->n_set; i++) {
		free(l->set[i].key);
		free(l->set[i].value);
	}
	free(l->set);
	for (size_t i = 0; i < l->n_mask; i++)
		free(l->mask[i]);
	free(l->mask);
	memset(l, 0, sizeof(*l));
}

int cli_parse_format(cli_ctx *ctx, const char *s, cli_format *out)
{
	(void)ctx;
	if (strcmp(s, "table") == 0)
		*out = CLI_FMT_TABLE;
	else if (strcmp(s, "json") == 0)
		*out = CLI_FMT_JSON;
	else
		return -1;
	return 0;
}

const char *cli_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t == '/' ? t : "/tmp";
}

int cli_list_opt(void *arg, int idx, const char *val)
{
	cli_list_args *a = arg;
	if (idx == 0)
		a->quiet = true;
	else if (idx == 1)
		return cli_parse_format(a->ctx, val, &a->fmt);
	return 0;
}

int cli_label_push(const char *val, berth_label **l, size_t *n)
{
	*l = bt_xrealloc(*l, (*n + 1) * sizeof(**l));
	if (cli_parse_label(val, &(*l)[*n]) < 0)
		return -1;
	(*n)++;
	return 0;
}

int cli_no_opts(void *arg, int idx, const char *val)
{
	(void)arg;
	(void)idx;
	(void)val;
	return 0;
}

void cli_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(j);
}

json_t *cli_labels_json(const berth_label *l, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		json_object_set_new(o, l[i].key, json_string(l[i].value));
	return o;
}

int cli_debug_main(const cli_debug *d, int argc, char **argv)
{
	cli_ctx ctx = { .prog = d->prog, .daemon = d->daemon, .group = d->groups ? NULL : d->service };
	_cleanup_free_ char *addr = NULL;
	int i = 1, rc;

	bt_tune_malloc();
	while (i < argc) {
		const char *a = argv[i];
		if ((!strcmp(a, "-a") || !strcmp(a, "--address")) && i + 1 < argc) {
			ctx.address = argv[i + 1];
			i += 2;
		} else if (bt_startswith(a, "--address=")) {
			ctx.address = a + 10;
			i++;
		} else if ((!strcmp(a, "-n") || !strcmp(a, "--namespace")) && i + 1 < argc) {
			ctx.ns = argv[i + 1];
			i += 2;
		} else if (bt_startswith(a, "--namespace=")) {
			ctx.ns = a + 12;
			i++;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("%s talks to %s directly, bypassing the gateway (root only).\n"
			       "  -a, --address ENDPOINT   the daemon's socket (default: the configured one)\n"
			       "  -n, --namespace NS       the namespace (env BERTH_NAMESPACE; default \"default\")\n\n",
			       d->prog, d->daemon);
			char *help[] = { (char *)d->service, (char *)"--help", NULL };
			return d->group(&ctx, 2, help);
		} else {
			break;
		}
	}
	if (!ctx.address) {
		bt_config *cfg = NULL;
		bt_err e;
		if (bt_config_load(&cfg, &e) < 0) {
			fprintf(stderr, "%s: %s\n", d->prog, e.msg);
			return CLI_EXIT_FAIL;
		}
		addr = bt_config_service_address(cfg, d->service);
		ctx.address = addr;
		bt_config_free(&cfg);
	}
	char **args = bt_xcalloc((size_t)(argc - i) + 2, sizeof(char *));
	args[0] = (char *)d->service;
	for (int k = i; k < argc; k++)
		args[k - i + 1] = argv[k];
	rc = d->group(&ctx, argc - i + 1, args);
	free(args);
	cli_close(&ctx);
	return rc;
}
