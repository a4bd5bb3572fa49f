/*
 * bt_err — the one error convention of berth.
 *
 * A function that can fail returns 0 (or a non-NULL pointer) on success and
 * -1 (or NULL) on failure, after filling the caller's bt_err with a status
 * code (gRPC's numbering, the same as the wire's) and a message.  Callers add
 * context on the way up with bt_err_wrap(); only the RPC layer turns an error
 * into a wire status and only main() or a CLI prints one.
 */
#ifndef BT_ERR_H
#define BT_ERR_H

#include <stdarg.h>

/* Status codes; the numbers are gRPC's and those of berth.rpc.v1.Code. */
typedef enum bt_code {
	BT_OK = 0,
	BT_CANCELLED = 1,
	BT_UNKNOWN = 2,
	BT_INVALID_ARGUMENT = 3,
	BT_DEADLINE_EXCEEDED = 4,
	BT_NOT_FOUND = 5,
	BT_ALREADY_EXISTS = 6,
	BT_PERMISSION_DENIED = 7,
	BT_RESOURCE_EXHAUSTED = 8,
	BT_FAILED_PRECONDITION = 9,
	BT_ABORTED = 10,
	BT_OUT_OF_RANGE = 11,
	BT_UNIMPLEMENTED = 12,
	BT_INTERNAL = 13,
	BT_UNAVAILABLE = 14,
	BT_DATA_LOSS = 15,
	BT_UNAUTHENTICATED = 16,
} bt_code;

#define BT_ERR_MSG_MAX 1024

typedef struct bt_err {
	int code;                  /* a bt_code; BT_OK when no error */
	int transport;             /* 1 when the error arose in transit (peer unreachable or lost), not from the service */
	char msg[BT_ERR_MSG_MAX];  /* human-readable, context first */
} bt_err;

/* Sets code and message; always returns -1 so callers can `return bt_err_set(…)`. */
int bt_err_set(bt_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int bt_err_setv(bt_err *e, int code, const char *fmt, va_list ap);

/* Like bt_err_set but the code comes from errnum and ": strerror(errnum)" is appended. */
int bt_err_errno(bt_err *e, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes context ("ctx: previous message"); keeps the code; returns -1. */
int bt_err_wrap(bt_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resets to BT_OK with an empty message. */
void bt_err_clear(bt_err *e);

/* The code an errno value maps to (ENOENT → NOT_FOUND, EEXIST → ALREADY_EXISTS, …). */
int bt_code_from_errno(int errnum);

/* Canonical upper-case name of a code ("NOT_FOUND"); "UNKNOWN" for others. */
const char *bt_code_name(int code);

/* The code for a canonical name, or -1. */
int bt_code_from_name(const char *name);

#endif
