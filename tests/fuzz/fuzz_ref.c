/*
 * fuzz_ref — libFuzzer harness for image reference parsing (image_ref).
 *
 * The input is one reference; it is handed over NUL-terminated at its first
 * NUL (a C string is what callers have).  A parse either fails with an
 * INVALID_ARGUMENT whose message is printable and names the reference, or
 * succeeds with a reference whose parts obey Docker's bounds and whose
 * normalized and familiar forms parse back to the same reference.
 *
 * Run: tests/fuzz/run.sh fuzz ref   (corpus: tests/fuzz/corpus/ref)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bt_util.h"
#include "image_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static bool same(const img_ref *a, const img_ref *b)
{
	return strcmp(a->domain, b->domain) == 0 && strcmp(a->path, b->path) == 0 && strcmp(a->digest, b->digest) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = bt_xstrndup((const char *)data, size);
	char buf[IMG_REF_STR_MAX];
	img_ref r, again;
	bt_err e = { 0 };

	if (img_ref_parse(s, &r, &e) == 0) {
		size_t d = strlen(r.domain), p = strlen(r.path);
		check(d > 0 && p > 0 && d + 1 + p <= IMG_REF_NAME_MAX);
		check(r.tag[0] || r.digest[0]);
		check(strlen(r.tag) <= IMG_REF_TAG_MAX);
		for (const char *c = r.path; *c; c++)
			check(!(*c >= 'A' && *c <= 'Z'));
		check(strcmp(r.domain, "index.docker.io") != 0);
		check(img_ref_check_path(r.path, &e) == 0);
		check(*img_ref_object(&r) && *img_ref_host(&r));

		/* the normalized form is a fixed point */
		img_ref_string(&r, buf);
		check(img_ref_parse(buf, &again, &e) == 0);
		check(same(&r, &again));
		char buf2[IMG_REF_STR_MAX];
		check(strcmp(img_ref_string(&again, buf2), buf) == 0);
		/* the familiar form names the same repository */
		img_ref_familiar(&r, buf);
		check(img_ref_parse(buf, &again, &e) == 0);
		check(same(&r, &again) && strcmp(r.tag, again.tag) == 0);
		img_ref_name(&r, buf);
		check(strlen(buf) <= IMG_REF_NAME_MAX);
	} else {
		check(e.code == BT_INVALID_ARGUMENT);
		check(bt_startswith(e.msg, "reference \""));
		for (const char *c = e.msg; *c; c++)
			check(*c >= 0x20 && *c < 0x7f);
		check(r.domain[0] == '\0' && r.path[0] == '\0' && r.tag[0] == '\0' && r.digest[0] == '\0');
	}
	free(s);
	return 0;
}
