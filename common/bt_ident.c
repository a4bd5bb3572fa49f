/*
 * bt_ident — validators for identifiers, labels and ingest refs.
 *
 * Inputs come straight from clients, so messages never echo them raw: they
 * are cut to a few dozen bytes and anything unprintable is escaped.
 */
#include "bt_ident.h"

#include <stdio.h>
#include <string.h>

#include "bt_util.h"

#define IDENT_RULE "[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*"

/* How much of an offending input a message quotes, escaped. */
#define SHOW_MAX 96


static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The pattern alone: alphanumeric runs joined by single '.', '_' or '-'. */
static bool ident_ok(const char *s, size_t len)
{
	bool after_sep = true;	/* the start acts like a separator: needs an alnum */

	for (size_t i = 0; i < len; i++) {
		if (is_alnum(s[i])) {
			after_sep = false;
		} else if (s[i] == '.' || s[i] == '_' || s[i] == '-') {
			if (after_sep)
				return false;
			after_sep = true;
		} else {
			return false;
		}
	}
	return len > 0 && !after_sep;
}

int bt_ident_validate(const char *what, const char *s, bt_err *e)
{
	char shown[SHOW_MAX + 8];
	size_t len;

	if (!what)
		what = "identifier";
	if (!s || !s[0])
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s \"\": invalid: must not be empty",
				  what);
	len = strlen(s);
	if (len > BT_IDENT_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "%s \"%s\": invalid: %zu characters long, at most %d", what,
				  bt_escape(shown, sizeof(shown), s, len), len, BT_IDENT_MAX);
	if (!ident_ok(s, len))
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "%s \"%s\": invalid: must match " IDENT_RULE
				  " (at most %d characters)",
				  what, bt_escape(shown, sizeof(shown), s, len), BT_IDENT_MAX);
	return 0;
}

int bt_label_validate(const char *key, size_t klen, const char *value, size_t vlen,
		      bool allow_reserved, bt_err *e)
{
	char shown[SHOW_MAX + 8];
	size_t plen = strlen(BT_LABEL_RESERVED_PREFIX);

	if (!key || klen == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "label key: invalid: must not be empty");
	if (!value)
		vlen = 0;
	/* written to stay clear of overflow in klen + vlen */
	if (klen > BT_LABEL_MAX || vlen > BT_LABEL_MAX - klen)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "label \"%s\": invalid: key and value are %zu + %zu bytes, "
				  "at most %d together",
				  bt_escape(shown, sizeof(shown), key, klen), klen, vlen, BT_LABEL_MAX);
	if (memchr(key, '\0', klen))
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "label key \"%s\": invalid: contains a NUL byte",
				  bt_escape(shown, sizeof(shown), key, klen));
	if (vlen > 0 && memchr(value, '\0', vlen))
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "label \"%s\": invalid: value contains a NUL byte",
				  bt_escape(shown, sizeof(shown), key, klen));
	if (!allow_reserved && klen >= plen && memcmp(key, BT_LABEL_RESERVED_PREFIX, plen) == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "label \"%s\": invalid: the prefix \"" BT_LABEL_RESERVED_PREFIX
				  "\" is reserved for berth",
				  bt_escape(shown, sizeof(shown), key, klen));
	return 0;
}

int bt_ref_validate(const char *ref, size_t len, bt_err *e)
{
	char shown[SHOW_MAX + 8];

	if (!ref || len == 0)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "ref \"\": invalid: must not be empty");
	if (len > BT_REF_MAX)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "ref \"%s\": invalid: %zu bytes long, at most %d",
				  bt_escape(shown, sizeof(shown), ref, len), len, BT_REF_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)ref[i];

		if (c < 0x21 || c > 0x7e)
			return bt_err_set(e, BT_INVALID_ARGUMENT,
					  "ref \"%s\": invalid: byte 0x%02x at offset %zu is not "
					  "printable ASCII ('!' to '~', no spaces)",
					  bt_escape(shown, sizeof(shown), ref, len), c, i);
	}
	return 0;
}
