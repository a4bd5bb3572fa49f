/*
 * bt_shimstate — exit records and pid files of a shim's state directory.
 */
#include "bt_shimstate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bt_util.h"

int bt_shim_exit_write(const char *path, const bt_shim_exit *x, bt_err *e)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "pid=%d\nexit_status=%d\nexited_at_ns=%" PRId64 "\n", x->pid,
			 x->exit_status, x->exited_at_ns);
	return bt_write_file_atomic(path, buf, (size_t)n, 0600, e);
}

static int parse_int(const char *v, int64_t max, int64_t *out)
{
	uint64_t u;
	if (bt_parse_u64(v, &u) < 0 || u > (uint64_t)max)
		return -1;
	*out = (int64_t)u;
	return 0;
}

int bt_shim_exit_read(const char *path, bt_shim_exit *x, bt_err *e)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (bt_read_file(path, 4096, &data, &len, e) < 0)
		return -1;
	memset(x, 0, sizeof(*x));
	unsigned seen = 0;
	char *save = NULL;
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (eq == NULL)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "exit record %s: malformed line", path);
		*eq = '\0';
		int64_t v;
		if (strcmp(line, "pid") == 0 && parse_int(eq + 1, INT32_MAX, &v) == 0) {
			x->pid = (int)v;
			seen |= 1;
		} else if (strcmp(line, "exit_status") == 0 && parse_int(eq + 1, 255, &v) == 0) {
			x->exit_status = (int)v;
			seen |= 2;
		} else if (strcmp(line, "exited_at_ns") == 0 && parse_int(eq + 1, INT64_MAX, &v) == 0) {
			x->exited_at_ns = v;
			seen |= 4;
		} else {
			return bt_err_set(e, BT_INVALID_ARGUMENT, "exit record %s: bad field %s", path, line);
		}
	}
	if (seen != 7)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "exit record %s: incomplete", path);
	return 0;
}

int bt_shim_pid_read(const char *path, int *pid, bt_err *e)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (bt_read_file(path, 64, &data, &len, e) < 0)
		return -1;
	if (len > 0 && data[len - 1] == '\n')
		data[len - 1] = '\0';
	uint64_t v;
	if (bt_parse_u64(data, &v) < 0 || v == 0 || v > INT32_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "pid file %s: not a pid", path);
	*pid = (int)v;
	return 0;
}
