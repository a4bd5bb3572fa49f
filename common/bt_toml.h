/*
 * bt_toml — a small, bounded reader for TOML 1.0 documents (config.toml,
 * hosts.toml).
 *
 * The whole document is parsed into a tree of values; tables keep their keys
 * in file order.  Input is treated as untrusted: the document is at most
 * BT_TOML_MAX_SIZE bytes, values and key paths nest at most BT_TOML_MAX_DEPTH
 * levels below the root, and a malformed document is an error, never a crash
 * or a hang.  Date-times are kept as the text that was written.
 *
 * Departures from TOML 1.0, both for the sake of C callers: the escape
 * \u0000 is rejected (a string could not carry it), and a number literal may
 * be at most BT_TOML_MAX_NUMBER bytes long.
 *
 * Everything returned by the accessors is borrowed from the tree and lives
 * until bt_toml_free().  Parsing keeps no global state; a finished tree may
 * be read from several threads at once.
 */
#ifndef BT_TOML_H
#define BT_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_err.h"

#define BT_TOML_MAX_SIZE (1024 * 1024) /* bytes in a document */
#define BT_TOML_MAX_DEPTH 64           /* levels of tables and arrays below the root */
#define BT_TOML_MAX_NUMBER 256         /* bytes in one integer or float literal */

typedef enum {
	BT_TOML_TABLE,
	BT_TOML_ARRAY,
	BT_TOML_STRING,
	BT_TOML_INT,
	BT_TOML_FLOAT,
	BT_TOML_BOOL,
	BT_TOML_DATETIME,
} bt_toml_type;

typedef struct bt_toml bt_toml; /* one value: table, array or scalar (opaque) */

/* Parses a whole document of len bytes (no NUL needed); *out is the root table, caller frees with
 * bt_toml_free.  Errors are BT_INVALID_ARGUMENT "line L, column C: what" (BT_RESOURCE_EXHAUSTED when
 * the document is too large); *out is untouched on failure. */
int bt_toml_parse(const char *text, size_t len, bt_toml **out, bt_err *e);
/* Reads and parses a file of at most BT_TOML_MAX_SIZE bytes; a missing file is BT_NOT_FOUND.
 * Parse errors do not name the file: the caller adds it as context. */
int bt_toml_parse_file(const char *path, bt_toml **out, bt_err *e);
/* Frees a whole tree (only ever a root from bt_toml_parse*) and NULLs *v; NULL is fine. */
void bt_toml_free(bt_toml **v);

/* The type of v, which must not be NULL. */
bt_toml_type bt_toml_kind(const bt_toml *v);
/* The direct child named key of a table, or NULL (also when table is NULL or not a table). */
const bt_toml *bt_toml_get(const bt_toml *table, const char *key);
/* Dotted path lookup from a table: segments separated by '.', a segment may be double-quoted to
 * contain dots (no escapes inside): host."https://r.example:5000".capabilities.  NULL when absent or
 * when the path is malformed. */
const bt_toml *bt_toml_path(const bt_toml *table, const char *path);
/* Entries of a table or array, else 0. */
size_t bt_toml_len(const bt_toml *v);
/* Key of the i-th entry of a table (file order), or NULL when out of range or not a table. */
const char *bt_toml_key_at(const bt_toml *table, size_t i);
/* The i-th value of a table (file order) or array, or NULL. */
const bt_toml *bt_toml_at(const bt_toml *v, size_t i);

/* The value of a string, or the text of a date-time; NULL for other types and for NULL. */
const char *bt_toml_str(const bt_toml *v);
/* Scalar readers: 0 with *out set, or -1 (nothing written) when v is NULL or of another type. */
int bt_toml_int(const bt_toml *v, int64_t *out);
int bt_toml_bool(const bt_toml *v, bool *out);
/* Accepts integers too (converted to the nearest double). */
int bt_toml_float(const bt_toml *v, double *out);

/* Convenience with defaults for config readers: the value at path when it exists and has the type
 * asked for (a string or date-time for _str), else dflt. */
const char *bt_toml_path_str(const bt_toml *root, const char *path, const char *dflt);
int64_t bt_toml_path_int(const bt_toml *root, const char *path, int64_t dflt);
bool bt_toml_path_bool(const bt_toml *root, const char *path, bool dflt);

#endif
