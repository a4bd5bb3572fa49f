/*
 * cli — what every berth command shares: the global options, a lazily
 * connected client, command tables, error reporting, output helpers
 * (aligned tables as ctr prints them, JSON), and argument parsing.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "berth/berth.h"

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

typedef struct cli_ctx {
	const char *prog;      /* "berth" or "berth-content" */
	const char *address;   /* NULL: libberth's default (env BERTH_ADDRESS) */
	const char *ns;        /* NULL: env BERTH_NAMESPACE or "default" */
	int64_t timeout_ms;    /* 0: default */
	const char *daemon;    /* what serves the address, for hints ("berth-gatewayd") */
	const char *server_key_file; /* CURVE for tcp://: the gateway's public key file (env BERTH_SERVER_KEY) */
	const char *key_file;        /* … and this client's secret key file (env BERTH_KEY) */
	berth_client *client;  /* connected on first use */
	const char *group;     /* a debug CLI standing for one group ("content"): dropped from the paths shown */
} cli_ctx;

typedef struct cli_cmd {
	const char *name;
	int (*fn)(cli_ctx *ctx, int argc, char **argv); /* argv[0] is the command's name */
	const char *usage;   /* "[OPTIONS] DIGEST" */
	const char *summary; /* one line */
	const struct cli_cmd *sub; /* a group: its subcommands, NULL-terminated */
	const char *aliases[3];
} cli_cmd;

/* Runs the command named by argv[0] in table (a group called `path`). */
int cli_dispatch(cli_ctx *ctx, const cli_cmd *table, const char *path, int argc, char **argv);
void cli_group_help(FILE *f, const char *prog, const char *path, const cli_cmd *table);

/* The connected client, or NULL after printing why. */
berth_client *cli_client(cli_ctx *ctx);
/* A connection of one's own (for a thread) with the same address, namespace and keys. */
berth_client *cli_client_new(cli_ctx *ctx, berth_error *err);
void cli_close(cli_ctx *ctx);

/* Prints "PROG: error: message" plus a hint for the code; returns CLI_EXIT_FAIL. */
int cli_fail(cli_ctx *ctx, const berth_error *err);
/* Prints a usage error; returns CLI_EXIT_USAGE. */
int cli_usage_error(cli_ctx *ctx, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cli_errorf(cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option parsing: a command's options, getopt_long-style, with --help. */
typedef struct cli_opt {
	const char *name;  /* long name without dashes */
	char short_name;   /* 0 for none */
	const char *arg;   /* NULL for a flag, else the argument's name for help */
	const char *help;
} cli_opt;
/* Parses argv; calls on(opt_index, value) per option (which returns 0, -1 for
 * a bad value, or -2 for one it reported itself); returns the index of the
 * first positional argument, or -1 after printing an error (-2 after --help). */
int cli_parse(cli_ctx *ctx, const char *path, const char *usage, const char *summary, const cli_opt *opts,
	      int argc, char **argv, int (*on)(void *arg, int idx, const char *val), void *arg);

/* Aligned tables (columns separated by at least two spaces). */
typedef struct cli_table cli_table;
cli_table *cli_table_new(size_t ncols, const char *const *headers);
void cli_table_row(cli_table *t, const char *const *cells);
void cli_table_print(cli_table *t, FILE *f, bool quiet_first_column_only);
void cli_table_free(cli_table **t);

/* Human output helpers. */
const char *cli_size(int64_t bytes, char *buf, size_t len);   /* "1.5 MiB" */
const char *cli_age(int64_t ns, char *buf, size_t len);       /* "3 minutes" */
/* "k=v,k2=v2" (or "-" when empty) into buf; caller frees. */
char *cli_labels_str(const berth_label *l, size_t n);
/* Parses "KEY=VALUE"; value may be empty. Returns -1 when there is no '='. */
int cli_parse_label(const char *s, berth_label *out);
/* The KEY=VALUE arguments of a `label` verb: set holds those with a value;
 * mask names every key ("labels.KEY"), so that KEY= removes KEY. */
typedef struct cli_label_edit {
	berth_label *set;
	size_t n_set;
	char **mask;
	size_t n_mask;
} cli_label_edit;
/* 0, or -1 with *bad the argument that is not KEY=VALUE. */
int cli_label_edit_parse(char *const *args, int n, cli_label_edit *out, const char **bad);
void cli_label_edit_clear(cli_label_edit *l);

/* An option handler for commands without options. */
int cli_no_opts(void *arg, int idx, const char *val);
/* Prints j indented with sorted keys, and releases it. */
void cli_print_json(json_t *j);
/* Labels as a JSON object (new reference). */
json_t *cli_labels_json(const berth_label *l, size_t n);

/* --format: "table" (default) or "json". */
typedef enum { CLI_FMT_TABLE, CLI_FMT_JSON } cli_format;
int cli_parse_format(cli_ctx *ctx, const char *s, cli_format *out);

/* What a listing's options (-q, --format) gather: an option table
 * CLI_LIST_OPTS("print only the ids") with the handler cli_list_opt. */
typedef struct cli_list_args {
	bool quiet;
	cli_format fmt;
	cli_ctx *ctx;
} cli_list_args;
#define CLI_LIST_OPTS(quiet_help)                                                                                 \
	{ { "quiet", 'q', NULL, quiet_help }, { "format", 0, "FORMAT", "table (default) or json" }, { NULL, 0, NULL, NULL } }
int cli_list_opt(void *arg, int idx, const char *val);
/* Appends the value of a KEY=VALUE option to *l; -1 when it is not one. */
int cli_label_push(const char *val, berth_label **l, size_t *n);

/* main() of a per-service debug CLI (berth-content, berth-snapshot, …):
 * takes -a/--address (default: the service's configured socket),
 * -n/--namespace and --help, then hands the rest to group(ctx, argc, argv)
 * with argv[0] the group's name, as `berth GROUP …` would. */
typedef struct cli_debug {
	const char *prog;    /* "berth-content" */
	const char *daemon;  /* "berth-contentd", for hints */
	const char *service; /* config name of its socket: "content" */
	int (*group)(cli_ctx *ctx, int argc, char **argv);
	bool groups; /* group dispatches among several groups (berth-task containers|tasks …) */
} cli_debug;
int cli_debug_main(const cli_debug *d, int argc, char **argv);

/* Command groups. */
extern const cli_cmd cli_content_cmds[];
extern const cli_cmd cli_config_cmds[];
int cli_content(cli_ctx *ctx, int argc, char **argv);
extern const cli_cmd cli_images_cmds[];
int cli_images(cli_ctx *ctx, int argc, char **argv);
extern const cli_cmd cli_namespaces_cmds[];
extern const cli_cmd cli_keys_cmds[];
extern const cli_cmd cli_leases_cmds[];
int cli_events(cli_ctx *ctx, int argc, char **argv);

/* Transfer progress for a terminal (bars) or a log (lines). */
typedef struct cli_progress cli_progress;
cli_progress *cli_progress_new(FILE *out);
/* A berth_progress_fn_t: arg is the cli_progress. */
void cli_progress_update(void *arg, const berth_progress *items, size_t n);
/* Draws the last state and frees. */
void cli_progress_free(cli_progress **p);
/* The snapshots group: parses its --snapshotter, then runs the verb. */
int cli_snapshots(cli_ctx *ctx, int argc, char **argv);
int cli_version(cli_ctx *ctx, int argc, char **argv);
int cli_run(cli_ctx *ctx, int argc, char **argv);
int cli_gc(cli_ctx *ctx, int argc, char **argv);
int cli_health(cli_ctx *ctx, int argc, char **argv);

/* --- a task's stdio (cli_tasks.c) -------------------------------------------------- */
/* FIFOs in a private temporary directory, as ctr's cio makes them: the shim
 * opens them by path; the CLI holds its ends. */
typedef struct cli_cio {
	char dir[256]; /* $TMPDIR (or /tmp)/berth-io.XXXXXX */
	char in[280], out[280], err[280];
	int fd_in, fd_out, fd_err;
	bool terminal, keep; /* keep: leave the FIFOs for a later attach */
} cli_cio;
/* The FIFOs (stdin only with with_stdin), the CLI's ends open; -1 with errno. */
int cli_cio_new(cli_cio *io, bool terminal, bool with_stdin, bool keep);
/* No stdio at all (the process's goes to /dev/null). */
void cli_cio_none(cli_cio *io, bool terminal);
berth_stdio cli_cio_stdio(const cli_cio *io);
void cli_cio_close(cli_cio *io);
/* Gives process exec_id (NULL: the task's) of task id the size of our
 * terminal, when we have one: after Create, before Start, so the process
 * never sees a terminal of 0x0. */
void cli_send_size(berth_client *c, const char *id, const char *exec_id);
/* Copies stdio of the started process (task id, or its exec) until it exits:
 * a terminal goes raw and follows SIGWINCH; without one, INT, TERM, HUP and
 * QUIT are passed on.  Returns the exit status, or -1 after printing why. */
int cli_session_run(cli_ctx *ctx, berth_client *c, const char *id, const char *exec_id, cli_cio *io,
		    bool with_stdin);

/* --- container specs (cli_oci.c) --------------------------------------------------- */
/* What the spec options (cli_spec_opts) gather. */
typedef struct cli_spec_args {
	berth_spec_opts o;
	char **env, **mounts, **annotations;
	berth_label *ann;
	const char *snapshotter;
} cli_spec_args;
/* The options of `berth oci spec`; the first cli_spec_common_opts of them are
 * `berth run`'s too (the rest, --rootfs and --id, only inspection's). */
extern const cli_opt cli_spec_opts[];
extern const size_t cli_spec_common_opts;
/* Handles option idx of cli_spec_opts; -1 for a bad value. */
int cli_spec_opt(cli_spec_args *a, int idx, const char *val);
/* Points a->o at what the options gathered, with args replacing the image's Cmd. */
void cli_spec_args_finish(cli_spec_args *a, char **args, int n_args);
void cli_spec_args_clear(cli_spec_args *a);

/* $TMPDIR, or /tmp: where the CLI makes its FIFOs and mount points. */
const char *cli_tmpdir(void);

/* A root file system mounted in a temporary directory for the moment of a
 * lookup (user names in its /etc/passwd). */
typedef struct cli_rootfs {
	char *dir;
	bool mounted;
	char view[64];           /* a view made for it, removed with it ("": none) */
	const char *snapshotter; /* … and its snapshotter */
} cli_rootfs;
/* Mounts mounts onto a new temporary directory (root only). */
int cli_rootfs_mount(const berth_mount *mounts, size_t n, cli_rootfs *r, berth_error *err);
/* Unmounts, removes the directory (and the view); warns of what stays. */
void cli_rootfs_drop(berth_client *c, cli_rootfs *r);

#endif
