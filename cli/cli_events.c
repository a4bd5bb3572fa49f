/*
 * cli_events — `berth events`: the current namespace's events as they
 * happen, one line each (time, namespace, topic, fields), as ctr events.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bt_util.h"
#include "cli.h"

typedef struct ev_args {
	char **filters;
	bool all;
} ev_args;

static int ev_opt(void *arg, int idx, const char *val)
{
	ev_args *a = arg;
	if (idx == 0) {
		_cleanup_free_ char *f = bt_xasprintf("topic==%s", val);
		bt_strv_push(&a->filters, f);
	} else if (idx == 1) {
		bt_strv_push(&a->filters, val);
	} else {
		a->all = true;
	}
	return 0;
}

static int print_event(void *arg, const berth_event *ev)
{
	char when[64];
	time_t t = (time_t)(ev->timestamp / 1000000000LL);
	struct tm tm;

	(void)arg;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (ev->dropped)
		printf("%s.%09lldZ %s /events/dropped count=%llu\n", when, (long long)(ev->timestamp % 1000000000LL),
		       ev->namespace_, (unsigned long long)ev->dropped);
	_cleanup_free_ char *fields = cli_labels_str(ev->fields, ev->n_fields);
	printf("%s.%09lldZ %s %s %s\n", when, (long long)(ev->timestamp % 1000000000LL), ev->namespace_, ev->topic,
	       fields);
	fflush(stdout);
	return 0;
}

static int events(cli_ctx *ctx, int argc, char **argv)
{
	static const cli_opt opts[] = {
		{ "topic", 't', "TOPIC", "only this topic (repeatable: any may match)" },
		{ "filter", 'f', "FILTER", "a filter on topic, namespace, source, fields.KEY (repeatable)" },
		{ "all-namespaces", 'A', NULL, "every namespace this client may see" },
		{ NULL, 0, NULL, NULL },
	};
	ev_args a = { 0 };
	berth_error err;
	int first = cli_parse(ctx, "events", "[OPTIONS]", "Print events as they happen, until interrupted.", opts, argc,
			      argv, ev_opt, &a);
	if (first < 0 || argc - first != 0) {
		bt_strv_free(a.filters);
		if (first == -2)
			return 0;
		return first < 0 ? CLI_EXIT_USAGE : cli_usage_error(ctx, "events", "unexpected argument %s", argv[first]);
	}
	berth_client *c = cli_client(ctx);
	if (!c) {
		bt_strv_free(a.filters);
		return CLI_EXIT_FAIL;
	}
	berth_subscribe_opts o = {
		.filters = (const char *const *)a.filters,
		.n_filters = bt_strv_len(a.filters),
		.all_namespaces = a.all,
		.each = print_event,
	};
	int rc = berth_events_subscribe(c, NULL, &o, &err);
	bt_strv_free(a.filters);
	return rc < 0 ? cli_fail(ctx, &err) : 0;
}

int cli_events(cli_ctx *ctx, int argc, char **argv)
{
	return events(ctx, argc, argv);
}
