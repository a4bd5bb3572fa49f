/*
 * test_image_ref — image references against Docker's rules: a table of
 * valid references with their normalized, familiar and API forms, and of
 * invalid ones with the piece the error must name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bt_util.h"
#include "image_ref.h"

#define H64 "86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
#define DG "sha256:" H64

/* in → normalized string, familiar string, registry host, repository path */
static const struct {
	const char *in, *norm, *familiar, *host, *repo;
} valid[] = {
	{ "busybox", "docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io", "library/busybox" },
	{ "busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "registry-1.docker.io", "library/busybox" },
	{ "library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io", "library/busybox" },
	{ "docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io", "library/busybox" },
	{ "docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io", "library/busybox" },
	{ "index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "registry-1.docker.io", "library/busybox" },
	{ "index.docker.io/user/app:v2", "docker.io/user/app:v2", "user/app:v2", "registry-1.docker.io", "user/app" },
	{ "user/app", "docker.io/user/app:latest", "user/app:latest", "registry-1.docker.io", "user/app" },
	{ "library/foo/bar", "docker.io/library/foo/bar:latest", "library/foo/bar:latest", "registry-1.docker.io", "library/foo/bar" },
	{ "a/b/c/d", "docker.io/a/b/c/d:latest", "a/b/c/d:latest", "registry-1.docker.io", "a/b/c/d" },
	{ "localhost/x", "localhost/x:latest", "localhost/x:latest", "localhost", "x" },
	{ "localhost:5000/x/y:t", "localhost:5000/x/y:t", "localhost:5000/x/y:t", "localhost:5000", "x/y" },
	{ "localhost:5000", "docker.io/library/localhost:5000", "localhost:5000", "registry-1.docker.io", "library/localhost" },
	{ "127.0.0.1:5000/app", "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest", "127.0.0.1:5000", "app" },
	{ "192.168.0.1", "docker.io/library/192.168.0.1:latest", "192.168.0.1:latest", "registry-1.docker.io", "library/192.168.0.1" },
	{ "192.168.0.1:80", "docker.io/library/192.168.0.1:80", "192.168.0.1:80", "registry-1.docker.io", "library/192.168.0.1" },
	{ "example.com/app", "example.com/app:latest", "example.com/app:latest", "example.com", "app" },
	{ "example.com:8000/private/moonbase:1", "example.com:8000/private/moonbase:1", "example.com:8000/private/moonbase:1", "example.com:8000", "private/moonbase" },
	{ "ghcr.io/org/image:v1.2.3-rc_1", "ghcr.io/org/image:v1.2.3-rc_1", "ghcr.io/org/image:v1.2.3-rc_1", "ghcr.io", "org/image" },
	{ "Foo/bar", "Foo/bar:latest", "Foo/bar:latest", "Foo", "bar" },
	{ "LOCALDOMAIN/library/debian", "LOCALDOMAIN/library/debian:latest", "LOCALDOMAIN/library/debian:latest", "LOCALDOMAIN", "library/debian" },
	{ "[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000", "docker" },
	{ "[::1]/x", "[::1]/x:latest", "[::1]/x:latest", "[::1]", "x" },
	{ "busybox@" DG, "docker.io/library/busybox@" DG, "busybox@" DG, "registry-1.docker.io", "library/busybox" },
	{ "busybox:1.36@" DG, "docker.io/library/busybox@" DG, "busybox:1.36@" DG, "registry-1.docker.io", "library/busybox" },
	{ "localhost:5000/app@" DG, "localhost:5000/app@" DG, "localhost:5000/app@" DG, "localhost:5000", "app" },
	{ "app@sha512:" H64 H64, "docker.io/library/app@sha512:" H64 H64, "app@sha512:" H64 H64, "registry-1.docker.io", "library/app" },
	{ "docker-rules/docker", "docker.io/docker-rules/docker:latest", "docker-rules/docker:latest", "registry-1.docker.io", "docker-rules/docker" },
	{ "docker---rules/docker", "docker.io/docker---rules/docker:latest", "docker---rules/docker:latest", "registry-1.docker.io", "docker---rules/docker" },
	{ "dock__er/docker", "docker.io/dock__er/docker:latest", "dock__er/docker:latest", "registry-1.docker.io", "dock__er/docker" },
	{ "d/docker", "docker.io/d/docker:latest", "d/docker:latest", "registry-1.docker.io", "d/docker" },
	/* Docker's short form would drop docker.io and name the host "a.b"; berth keeps it */
	{ "docker.io/a.b/c", "docker.io/a.b/c:latest", "docker.io/a.b/c:latest", "registry-1.docker.io", "a.b/c" },
	{ "docker.io/localhost/c", "docker.io/localhost/c:latest", "docker.io/localhost/c:latest", "registry-1.docker.io", "localhost/c" },
	{ "a_b-c/d.e", "docker.io/a_b-c/d.e:latest", "a_b-c/d.e:latest", "registry-1.docker.io", "a_b-c/d.e" },
	{ "foo:Latest", "docker.io/library/foo:Latest", "foo:Latest", "registry-1.docker.io", "library/foo" },
	{ "foo:_x", "docker.io/library/foo:_x", "foo:_x", "registry-1.docker.io", "library/foo" },
	{ "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
	  "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest",
	  "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a:latest", "registry-1.docker.io",
	  "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a" },
	{ "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
	  "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
	  "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest", "registry-1.docker.io",
	  "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev" },
	{ "registry.example/a:01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567",
	  "registry.example/a:01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567",
	  "registry.example/a:01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567",
	  "registry.example", "a" },
};

/* in → a word the error message must contain */
static const struct {
	const char *in, *why;
} invalid[] = {
	{ "", "at least one component" },
	{ "Busybox", "must be lowercase" },
	{ "docker/Docker", "must be lowercase" },
	{ "docker.io/docker/Docker", "must be lowercase" },
	{ "localhost:5000/Upper", "must be lowercase" },
	{ "busybox:-x", "invalid tag \"-x\"" },
	{ "busybox:.x", "invalid tag" },
	{ "busybox:", "invalid tag" },
	{ "busybox:a+b", "invalid tag" },
	{ "busybox:012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678", "invalid tag" },
	{ "busybox@", "invalid digest" },
	{ "busybox@sha256", "invalid digest" },
	{ "busybox@sha256:abc", "invalid digest format" },
	{ "busybox@sha256:" H64 "00", "digest length" },
	{ "busybox@sha256:86E0E091D0DA6BDE2456DBB48306F3956BBEB2EAE1B5B9A43045843F69FE4AAA", "digest format" },
	{ "busybox@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm" },
	{ "busybox@sha256:" H64 "@" DG, "more than one" },
	{ "busybox@@" DG, "more than one" },
	{ "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "64-byte hexadecimal" },
	{ "https://github.com/docker/docker", "invalid" },
	{ "-docker", "invalid repository name" },
	{ "-docker/docker", "invalid repository name" },
	{ "docker-/docker", "invalid repository name" },
	{ "-docker.io/docker/docker", "invalid registry host" },
	{ "docker///docker", "invalid repository name" },
	{ "docker.io/docker///docker", "invalid repository name" },
	{ "docker/", "invalid repository name" },
	{ "/docker", "invalid repository name" },
	{ "____/____", "invalid repository name" },
	{ "_docker/_docker", "invalid repository name" },
	{ "dock..er/docker", "invalid registry host" }, /* a first component with a dot is a host */
	{ "dock_.er/docker", "invalid registry host" },
	{ "dock-.er/docker", "invalid registry host" },
	{ "dock___er/docker", "invalid repository name" },
	{ "x/dock..er", "invalid repository name" },
	{ "x/a_.b", "invalid repository name" },
	{ "[fc00::1]", "invalid" },
	{ "[fc00::1]:5000", "invalid" },
	{ "fc00::1:5000/debian", "invalid registry host" },
	{ "[fe80::1%eth0]:5000/debian", "invalid registry host" },
	{ "[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid registry host" },
	{ "host:/x", "invalid registry host" },
	{ "host:port/x", "invalid registry host" },
	{ "ex_ample.com/x", "invalid registry host" },
	{ "busy box", "unexpected character" },
	{ "busybox\n", "unexpected character" },
	{ "caf\xc3\xa9/x", "unexpected character" },
	{ ":latest", "at least one component" },
	{ "@" DG, "at least one component" },
	{ "localhost:5000/", "invalid repository name" },
	{ "a:b:c", "invalid repository name" },
	{ "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker",
	  "255 characters" },
};

static void test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < BT_ARRAY_LEN(valid); i++) {
		char b[IMG_REF_STR_MAX];
		img_ref r;
		bt_err e = { 0 };

		if (img_ref_parse(valid[i].in, &r, &e) != 0)
			fail_msg("%s: %s", valid[i].in, e.msg);
		if (strcmp(img_ref_string(&r, b), valid[i].norm) != 0)
			fail_msg("%s: normalized %s, want %s", valid[i].in, b, valid[i].norm);
		if (strcmp(img_ref_familiar(&r, b), valid[i].familiar) != 0)
			fail_msg("%s: familiar %s, want %s", valid[i].in, b, valid[i].familiar);
		assert_string_equal(img_ref_host(&r), valid[i].host);
		assert_string_equal(img_ref_repository(&r), valid[i].repo);

		/* the normalized form parses to itself */
		img_ref again;
		char b2[IMG_REF_STR_MAX];
		img_ref_string(&r, b);
		assert_int_equal(img_ref_parse(b, &again, &e), 0);
		assert_string_equal(img_ref_string(&again, b2), b);
		/* and so does the familiar one */
		img_ref_familiar(&r, b);
		assert_int_equal(img_ref_parse(b, &again, &e), 0);
		assert_string_equal(again.domain, r.domain);
		assert_string_equal(again.path, r.path);
		assert_string_equal(again.digest, r.digest);
	}
}

static void test_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < BT_ARRAY_LEN(invalid); i++) {
		img_ref r;
		bt_err e = { 0 };

		if (img_ref_parse(invalid[i].in, &r, &e) == 0) {
			char b[IMG_REF_STR_MAX];
			fail_msg("%s: accepted as %s", invalid[i].in, img_ref_string(&r, b));
		}
		assert_int_equal(e.code, BT_INVALID_ARGUMENT);
		if (!strstr(e.msg, invalid[i].why))
			fail_msg("%s: error \"%s\" lacks \"%s\"", invalid[i].in, e.msg, invalid[i].why);
		assert_true(bt_startswith(e.msg, "reference \""));
		for (const char *c = e.msg; *c; c++)
			assert_true(*c >= 0x20 && *c < 0x7f);
		/* a failed parse leaves nothing behind */
		assert_string_equal(r.domain, "");
		assert_string_equal(r.path, "");
	}
}

static void test_parts(void **state)
{
	(void)state;
	char b[IMG_REF_STR_MAX];
	img_ref r;
	bt_err e;

	assert_int_equal(img_ref_parse("busybox:1.36@" DG, &r, &e), 0);
	assert_string_equal(r.domain, "docker.io");
	assert_string_equal(r.tag, "1.36");
	assert_string_equal(r.digest, DG);
	/* the digest wins */
	assert_string_equal(img_ref_object(&r), DG);
	assert_string_equal(img_ref_name(&r, b), "docker.io/library/busybox");

	assert_int_equal(img_ref_parse("busybox@" DG, &r, &e), 0);
	assert_string_equal(r.tag, "");
	assert_int_equal(img_ref_parse("127.0.0.1:5000/a/b", &r, &e), 0);
	assert_string_equal(img_ref_object(&r), "latest");
	assert_string_equal(img_ref_name(&r, b), "127.0.0.1:5000/a/b");

	/* the name limit counts the host: exactly 255 passes, 256 fails */
	char in[400];
	memset(in, 'a', sizeof(in));
	memcpy(in, "example.com/", 12);
	in[255] = '\0';
	assert_int_equal(img_ref_parse(in, &r, &e), 0);
	assert_int_equal(strlen(img_ref_name(&r, b)), 255);
	memset(in, 'a', sizeof(in));
	memcpy(in, "example.com/", 12);
	in[256] = '\0';
	assert_int_equal(img_ref_parse(in, &r, &e), -1);
	assert_non_null(strstr(e.msg, "255"));
	/* on docker.io "library/" counts too */
	memset(in, 'a', sizeof(in));
	in[255 - 18] = '\0';
	assert_int_equal(img_ref_parse(in, &r, &e), 0);
	in[255 - 18] = 'a';
	in[255 - 17] = '\0';
	assert_int_equal(img_ref_parse(in, &r, &e), -1);
	/* input past the hard bound is refused without parsing */
	char big[IMG_REF_INPUT_MAX + 10];
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(img_ref_parse(big, &r, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);

	assert_int_equal(img_ref_check_path("library/busybox", &e), 0);
	assert_int_equal(img_ref_check_path("Library/busybox", &e), -1);
	assert_int_equal(img_ref_check_path("a//b", &e), -1);
	assert_int_equal(img_ref_check_path("", &e), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_parts),
	};
	printf("# %zu valid and %zu invalid references\n", BT_ARRAY_LEN(valid), BT_ARRAY_LEN(invalid));
	return cmocka_run_group_tests_name("image_ref", tests, NULL, NULL);
}
