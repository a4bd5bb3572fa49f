/*
 * bt_filter — containerd's filter language, used by every List RPC.
 *
 * A filter string is a comma-separated AND of selectors; several filter
 * strings are OR'ed.  A selector is a field path, optionally followed by an
 * operator and a value:
 *
 *	fieldpath		the field is present and non-empty
 *	fieldpath==value	present and equal
 *	fieldpath!=value	absent or different
 *	fieldpath~=regex	present and the POSIX extended regex matches
 *				somewhere in it (unanchored)
 *
 * Path segments are separated by '.'; a bare segment is [A-Za-z0-9_]+, a
 * double-quoted one may hold anything (labels."a.b/c"==x).  A value is either
 * bare — every byte up to the next ',', surrounding whitespace trimmed, no
 * '"' and no backslash escapes — or double-quoted, where \" and \\ are the
 * only escapes (so quoted values may hold commas and quotes).  Whitespace
 * between tokens is ignored.  An empty (or all-blank) filter string matches
 * everything, as in containerd.
 *
 * Filter strings come from peers, so parsing is bounded (see the BT_FILTER_*
 * limits below) and never aborts on bad input; regexes are compiled once, at
 * parse time, and rejected when they could make compiling or matching slow.
 */
#ifndef BT_FILTER_H
#define BT_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "bt_err.h"

/* Bounds on untrusted input. */
#define BT_FILTER_MAX_LEN 4096       /* bytes per filter string */
#define BT_FILTER_MAX_SELECTORS 64   /* selectors per filter string */
#define BT_FILTER_MAX_SEGMENTS 16    /* segments per field path */
#define BT_FILTER_MAX_FILTERS 64     /* filter strings per request */
/*
 * glibc's regcomp and regexec are superlinear, and exponential on some
 * patterns, so a regex may expand (counted repetitions unrolled, '+'
 * doubled) to at most BT_FILTER_REGEX_MAX_COST positions, nest groups at
 * most BT_FILTER_REGEX_MAX_DEPTH deep, must not repeat anything that can
 * match the empty string (a**, (a|)*, .*?) and must not use backreferences.
 * That keeps compiling a regex, and matching it against a 4 KiB value, in
 * the tens of milliseconds at worst.
 */
#define BT_FILTER_REGEX_MAX_COST 256
#define BT_FILTER_REGEX_MAX_DEPTH 32

typedef struct bt_filter bt_filter;

/*
 * Compiles n filter strings (an OR of ANDs) into *out, which the caller owns
 * and frees with bt_filter_free().  n == 0 yields a filter that matches
 * everything.  Errors: BT_INVALID_ARGUMENT, "filter \"...\": column N:
 * expected ..." (columns count bytes from 1).
 */
int bt_filter_parse(const char *const *filters, size_t n, bt_filter **out, bt_err *e);

/* Frees *f (NULL is fine) and sets *f to NULL. */
void bt_filter_free(bt_filter **f);

/*
 * The caller's adaptor: returns the value of the field path path[0..npath)
 * for obj, or NULL when the field is absent.  The string is borrowed and
 * need only live until the next call.
 */
typedef const char *(*bt_filter_get_fn)(void *obj, const char *const *path, size_t npath);

/* true when obj, seen through get, satisfies f. */
bool bt_filter_match(const bt_filter *f, bt_filter_get_fn get, void *obj);

#endif
