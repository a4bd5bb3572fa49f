/*
 * berth-task — debug CLI that speaks to one berth-taskd's own socket,
 * bypassing the gateway (root only), with the verbs of `berth containers`
 * and `berth tasks`:  berth-task containers ls,  berth-task tasks ls.
 * Creating a container needs the gateway (images and snapshots).
 */
#include <string.h>

#include "cli.h"

extern const cli_cmd cli_containers_cmds[]; /* cli_containers.c */
extern const cli_cmd cli_tasks_cmds[];      /* cli_tasks.c */

static const cli_cmd groups[] = {
	{ "containers", NULL, NULL, "Container records", cli_containers_cmds, { "container", "c" } },
	{ "tasks", NULL, NULL, "Tasks", cli_tasks_cmds, { "task", "t" } },
	{ NULL, NULL, NULL, NULL, NULL, { 0 } },
};

static int group(cli_ctx *ctx, int argc, char **argv)
{
	return cli_dispatch(ctx, groups, "", argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
	static const cli_debug d = {
		.prog = "berth-task",
		.daemon = "berth-taskd",
		.service = "tasks",
		.group = group,
		.groups = true,
	};
	return cli_debug_main(&d, argc, argv);
}
