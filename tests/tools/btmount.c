/*
 * btmount — mounts the way berth's services do (bt_mount_all), with
 * mount(8)'s arguments, so tests can eval what `berth snapshots mounts`
 * prints with `mount` replaced by `btmount`: overlays longer than a page
 * (deep chains) then mount too.
 *
 *   btmount [-n] -t TYPE [-o OPTIONS] SOURCE TARGET   mount (-n: never the new mount API)
 *   btmount -u TARGET                                 unmount everything at TARGET
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "bt_mount.h"
#include "bt_util.h"

int main(int argc, char **argv)
{
	const char *type = NULL, *opts = NULL, *unmount = NULL;
	unsigned flags = 0;
	bt_mount m;
	bt_err e;
	int c;

	while ((c = getopt(argc, argv, "nt:o:u:")) != -1) {
		switch (c) {
		case 'n':
			flags |= BT_MOUNT_NO_NEW_API;
			break;
		case 't':
			type = optarg;
			break;
		case 'o':
			opts = optarg;
			break;
		case 'u':
			unmount = optarg;
			break;
		default:
			fprintf(stderr, "usage: btmount [-n] -t TYPE [-o OPTIONS] SOURCE TARGET | btmount -u TARGET\n");
			return 2;
		}
	}
	if (unmount) {
		if (bt_unmount_all(unmount, &e) < 0) {
			fprintf(stderr, "btmount: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	/* getopt permutes: -o may follow the operands, as ctr prints it */
	if (!type || argc - optind != 2) {
		fprintf(stderr, "usage: btmount [-n] -t TYPE [-o OPTIONS] SOURCE TARGET | btmount -u TARGET\n");
		return 2;
	}
	bt_mount_init(&m, type, argv[optind]);
	if (opts) {
		_cleanup_free_ char *copy = bt_xstrdup(opts);
		char *save = NULL;
		for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
			bt_mount_add_option(&m, o);
	}
	int rc = bt_mount_all_flags(&m, 1, argv[optind + 1], flags, &e);
	bt_mount_clear(&m);
	if (rc < 0) {
		fprintf(stderr, "btmount: %s\n", e.msg);
		return 1;
	}
	return 0;
}
