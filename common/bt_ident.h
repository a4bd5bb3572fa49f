/*
 * bt_ident — validation of the names every service accepts from clients:
 * identifiers (namespaces, container, task, exec and lease ids, topic
 * components), labels, and content ingest refs.
 *
 * Each validator returns 0 when the input is acceptable, or -1 with
 * BT_INVALID_ARGUMENT and a message that quotes the offending input (cut
 * short and with unprintable bytes escaped) and says what is required.
 */
#ifndef BT_IDENT_H
#define BT_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "bt_err.h"

#define BT_IDENT_MAX 76                     /* characters in an identifier */
#define BT_LABEL_MAX 4096                   /* bytes of key plus value */
#define BT_LABEL_RESERVED_PREFIX "berth.io/" /* label keys only berth may set */
#define BT_REF_MAX 256                      /* bytes in an ingest ref */

/*
 * containerd's identifier rule: ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$ and at
 * most 76 characters.  what names the thing ("namespace", "container id")
 * in the error, e.g. namespace "a..b": invalid: must match ...
 */
int bt_ident_validate(const char *what, const char *s, bt_err *e);

/*
 * A label: key non-empty, key and value together at most 4096 bytes, no NUL
 * in either (hence the lengths); keys starting with "berth.io/" are refused
 * unless allow_reserved (berth's own code setting its own labels).
 */
int bt_label_validate(const char *key, size_t klen, const char *value, size_t vlen,
		      bool allow_reserved, bt_err *e);

/*
 * A content ingest ref: 1 to 256 bytes, each printable ASCII other than
 * space ('!' to '~'): no NUL, control characters or non-ASCII bytes.
 */
int bt_ref_validate(const char *ref, size_t len, bt_err *e);

#endif
