/*
 * bt_err — error values with a status code and a context-prefixed message.
 */
#include "bt_err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int bt_err_setv(bt_err *e, int code, const char *fmt, va_list ap)
{
	if (!e)
		return -1;
	e->code = code;
	e->transport = 0;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return -1;
}

int bt_err_set(bt_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bt_err_setv(e, code, fmt, ap);
	va_end(ap);
	return -1;
}

int bt_err_errno(bt_err *e, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!e)
		return -1;
	va_start(ap, fmt);
	bt_err_setv(e, bt_code_from_errno(errnum), fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	if (n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(errnum));
	return -1;
}

int bt_err_wrap(bt_err *e, const char *fmt, ...)
{
	char prefix[BT_ERR_MSG_MAX];
	char old[BT_ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	if (old[0])
		snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old);
	else
		snprintf(e->msg, sizeof(e->msg), "%s", prefix);
	if (e->code == BT_OK)
		e->code = BT_UNKNOWN;
	return -1;
}

void bt_err_clear(bt_err *e)
{
	if (!e)
		return;
	e->code = BT_OK;
	e->transport = 0;
	e->msg[0] = '\0';
}

int bt_code_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return BT_OK;
	case ENOENT:
	case ESRCH:
		return BT_NOT_FOUND;
	case EEXIST:
		return BT_ALREADY_EXISTS;
	case EACCES:
	case EPERM:
	case EROFS:
		return BT_PERMISSION_DENIED;
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EAGAIN:
		return BT_RESOURCE_EXHAUSTED;
	case EINVAL:
	case ENAMETOOLONG:
	case ELOOP:
	case ENOTDIR:
	case EISDIR:
	case EXDEV:
		return BT_INVALID_ARGUMENT;
	case ETIMEDOUT:
		return BT_DEADLINE_EXCEEDED;
	case ECANCELED:
		return BT_CANCELLED;
	case ENOTEMPTY:
	case EBUSY:
		return BT_FAILED_PRECONDITION;
	case ECONNREFUSED:
	case ECONNRESET:
	case EPIPE:
	case EHOSTUNREACH:
		return BT_UNAVAILABLE;
	case ENOSYS:
	case EOPNOTSUPP:
		return BT_UNIMPLEMENTED;
	default:
		return BT_INTERNAL;
	}
}

static const char *const code_names[] = {
	[BT_OK] = "OK",
	[BT_CANCELLED] = "CANCELLED",
	[BT_UNKNOWN] = "UNKNOWN",
	[BT_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
	[BT_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
	[BT_NOT_FOUND] = "NOT_FOUND",
	[BT_ALREADY_EXISTS] = "ALREADY_EXISTS",
	[BT_PERMISSION_DENIED] = "PERMISSION_DENIED",
	[BT_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
	[BT_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
	[BT_ABORTED] = "ABORTED",
	[BT_OUT_OF_RANGE] = "OUT_OF_RANGE",
	[BT_UNIMPLEMENTED] = "UNIMPLEMENTED",
	[BT_INTERNAL] = "INTERNAL",
	[BT_UNAVAILABLE] = "UNAVAILABLE",
	[BT_DATA_LOSS] = "DATA_LOSS",
	[BT_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *bt_code_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(code_names) / sizeof(code_names[0])))
		return "UNKNOWN";
	return code_names[code];
}

int bt_code_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
		if (code_names[i] && strcmp(code_names[i], name) == 0)
			return (int)i;
	return -1;
}
