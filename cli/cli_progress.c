/*
 * cli_progress — how a transfer shows its progress: in a terminal, one bar
 * per blob with the total and the speed, redrawn in place; otherwise a
 * plain line each time a blob changes state.
 */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "bt_util.h"
#include "cli.h"

typedef struct row {
	char kind[16];
	char digest[72];
	char state[16];
	int64_t offset;
	int64_t total;
	char *message;
} row;

struct cli_progress {
	bool tty;
	FILE *out;
	row *rows;
	size_t n;
	int drawn; /* lines drawn last time */
	int64_t started;
	int64_t last_draw;
};

cli_progress *cli_progress_new(FILE *out)
{
	cli_progress *p = bt_xzalloc(sizeof(*p));
	p->out = out;
	p->tty = isatty(fileno(out)) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
	p->started = bt_mono_ms();
	return p;
}

static row *find(cli_progress *p, const char *digest)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->rows[i].digest, digest))
			return &p->rows[i];
	p->rows = bt_xrealloc(p->rows, (p->n + 1) * sizeof(*p->rows));
	row *r = &p->rows[p->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->digest, sizeof(r->digest), "%s", digest);
	return r;
}

static void draw(cli_progress *p, bool force)
{
	int64_t now = bt_mono_ms();
	int64_t done = 0, total = 0;
	char a[32], b[32], spd[32];

	if (!force && now - p->last_draw < 100)
		return;
	p->last_draw = now;
	if (p->drawn)
		fprintf(p->out, "\033[%dA", p->drawn);
	for (size_t i = 0; i < p->n; i++) {
		row *r = &p->rows[i];
		int width = 30, fill = r->total > 0 ? (int)(r->offset * width / r->total) : 0;
		char bar[64];
		if (fill > width)
			fill = width;
		memset(bar, '=', (size_t)fill);
		memset(bar + fill, ' ', (size_t)(width - fill));
		bar[width] = '\0';
		fprintf(p->out, "\033[2K%-8s %.19s %-11s [%s] %s/%s\n", r->kind, r->digest, r->state, bar,
			cli_size(r->offset, a, sizeof(a)), cli_size(r->total, b, sizeof(b)));
		done += r->offset;
		total += r->total;
	}
	double secs = (now - p->started) / 1000.0;
	cli_size(secs > 0 ? (int64_t)(done / secs) : 0, spd, sizeof(spd));
	fprintf(p->out, "\033[2Kelapsed: %.1fs  total: %s/%s  (%s/s)\n", secs, cli_size(done, a, sizeof(a)),
		cli_size(total, b, sizeof(b)), spd);
	p->drawn = (int)p->n + 1;
	fflush(p->out);
}

void cli_progress_update(void *arg, const berth_progress *items, size_t n)
{
	cli_progress *p = arg;

	for (size_t i = 0; i < n; i++) {
		row *r = find(p, items[i].desc->digest);
		bool changed = strcmp(r->state, items[i].state) != 0;
		snprintf(r->kind, sizeof(r->kind), "%s", items[i].kind);
		snprintf(r->state, sizeof(r->state), "%s", items[i].state);
		r->offset = items[i].offset;
		r->total = items[i].total;
		if (items[i].message && *items[i].message) {
			free(r->message);
			r->message = bt_xstrdup(items[i].message);
		}
		if (!p->tty && changed) {
			char a[32];
			fprintf(p->out, "%s %s: %s (%s)%s%s\n", r->kind, r->digest, r->state,
				cli_size(r->total, a, sizeof(a)), r->message ? ": " : "", r->message ? r->message : "");
			fflush(p->out);
		}
	}
	if (p->tty)
		draw(p, false);
}

void cli_progress_free(cli_progress **pp)
{
	cli_progress *p = *pp;
	if (!p)
		return;
	if (p->tty && p->n)
		draw(p, true);
	for (size_t i = 0; i < p->n; i++)
		free(p->rows[i].message);
	free(p->rows);
	free(p);
	*pp = NULL;
}
