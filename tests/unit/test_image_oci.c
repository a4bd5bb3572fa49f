/*
 * test_bt_oci — image documents, platforms and chain IDs; and the image
 * record store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <unistd.h>

#include "bt_util.h"
#include "bt_oci.h"
#include "image_store.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static void test_manifest(void **state)
{
	(void)state;
	const char *m = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
			"\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":100},"
			"\"layers\":[{\"mediaType\":\"" MT_OCI_LAYER_GZIP "\",\"digest\":\"" D2 "\",\"size\":5,"
			"\"annotations\":{\"a\":\"b\"}},"
			"{\"mediaType\":\"" MT_DOCKER_LAYER_ZSTD "\",\"digest\":\"" D3 "\",\"size\":7}]}";
	bt_oci_manifest man;
	bt_err e;

	assert_int_equal(bt_oci_parse_manifest(m, strlen(m), &man, &e), 0);
	assert_string_equal(man.config.digest, D1);
	assert_int_equal(man.n_layers, 2);
	assert_int_equal(man.layers[0].size, 5);
	assert_string_equal(bt_labels_get(&man.layers[0].annotations, "a"), "b");
	bt_oci_manifest_clear(&man);
	char *mt = bt_oci_sniff_media_type(m, strlen(m));
	assert_string_equal(mt, MT_OCI_MANIFEST);
	free(mt);
}

static void test_bad_documents(void **state)
{
	(void)state;
	bt_oci_manifest man;
	bt_oci_index idx;
	bt_oci_config cfg;
	bt_err e;
	static const char *const bad[] = {
		"",
		"[]",
		"{\"schemaVersion\":1}",
		"{\"schemaVersion\":2}",
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:00\",\"size\":1},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}",
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":{}}",
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1 "\",\"size\":1},"
		"\"layers\":[{\"mediaType\":\"application/x-unknown\",\"digest\":\"" D2 "\",\"size\":1}]}",
		"{\"schemaVersion\":2,\"schemaVersion\":2}",
	};
	for (size_t i = 0; i < BT_ARRAY_LEN(bad); i++) {
		assert_int_equal(bt_oci_parse_manifest(bad[i], strlen(bad[i]), &man, &e), -1);
		assert_true(e.code != BT_OK);
	}
	assert_int_equal(bt_oci_parse_manifest(bad[2], strlen(bad[2]), &man, &e), -1);
	assert_int_equal(e.code, BT_UNIMPLEMENTED);
	assert_non_null(strstr(e.msg, "schema 1"));
	assert_int_equal(bt_oci_parse_manifest(bad[7], strlen(bad[7]), &man, &e), -1);
	assert_non_null(strstr(e.msg, "unknown media type"));
	assert_int_equal(bt_oci_parse_index("{\"schemaVersion\":2,\"manifests\":5}", 33, &idx, &e), -1);
	const char *c = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"nope\"]}}";
	assert_int_equal(bt_oci_parse_config(c, strlen(c), &cfg, &e), -1);
	assert_non_null(strstr(e.msg, "diff_ids[0]"));
	/* too many layers */
	bt_buf b = { 0 };
	bt_buf_appendf(&b, "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"%s\",\"size\":1},\"layers\":[",
		       D1);
	for (int i = 0; i < OCI_MAX_LAYERS + 1; i++)
		bt_buf_appendf(&b, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1}", i ? "," : "", MT_OCI_LAYER, D2);
	bt_buf_appendf(&b, "]}");
	assert_int_equal(bt_oci_parse_manifest(b.data, b.len, &man, &e), -1);
	assert_int_equal(e.code, BT_RESOURCE_EXHAUSTED);
	bt_buf_free(&b);
}

static void test_config(void **state)
{
	(void)state;
	const char *c = "{\"architecture\":\"arm64\",\"variant\":\"v8\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\"]},"
			"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]}}";
	bt_oci_config cfg;
	bt_err e;

	assert_int_equal(bt_oci_parse_config(c, strlen(c), &cfg, &e), 0);
	assert_int_equal(cfg.n_diff_ids, 2);
	assert_string_equal(cfg.platform.arch, "arm64");
	bt_oci_config_clear(&cfg);
}

static void test_chain_ids(void **state)
{
	(void)state;
	char *ids[] = { D1, D2, D3 };
	char chain[3][BT_DIGEST_STR_LEN], want[BT_DIGEST_STR_LEN];

	bt_oci_chain_ids(ids, 3, chain);
	assert_string_equal(chain[0], D1);
	const char *s1 = D1 " " D2;
	bt_digest_buf(s1, strlen(s1), want);
	assert_string_equal(chain[1], want);
	_cleanup_free_ char *s2 = bt_xasprintf("%s %s", want, D3);
	bt_digest_buf(s2, strlen(s2), want);
	assert_string_equal(chain[2], want);
}

static void test_platforms(void **state)
{
	(void)state;
	bt_oci_platform p, h;
	bt_err e;

	assert_int_equal(bt_oci_platform_parse("linux/x86_64", &p, &e), 0);
	assert_string_equal(p.arch, "amd64");
	_cleanup_free_ char *s = bt_oci_platform_str(&p);
	assert_string_equal(s, "linux/amd64");
	bt_oci_platform_clear(&p);
	assert_int_equal(bt_oci_platform_parse("linux/armhf", &p, &e), 0);
	assert_string_equal(p.arch, "arm");
	assert_string_equal(p.variant, "v7");
	bt_oci_platform_clear(&p);
	assert_int_equal(bt_oci_platform_parse("linux", &p, &e), -1);
	assert_int_equal(bt_oci_platform_parse("a/b/c/d", &p, &e), -1);
	assert_int_equal(bt_oci_platform_parse("", &p, &e), 0); /* the host's */
	bt_oci_platform_host(&h);
	assert_string_equal(p.arch, h.arch);
	bt_oci_platform_clear(&p);
	bt_oci_platform_clear(&h);

	/* choosing from an index */
	const char *x = "{\"schemaVersion\":2,\"manifests\":["
			"{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,"
			"\"platform\":{\"os\":\"linux\",\"architecture\":\"386\"}},"
			"{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":1,"
			"\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
			"{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":1,"
			"\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	bt_oci_index idx;
	assert_int_equal(bt_oci_parse_index(x, strlen(x), &idx, &e), 0);
	assert_int_equal(bt_oci_platform_parse("linux/amd64", &p, &e), 0);
	assert_int_equal(bt_oci_index_choose(&idx, &p, &e), 2); /* exact beats the 386 fallback */
	bt_oci_platform_clear(&p);
	assert_int_equal(bt_oci_platform_parse("linux/arm/v7", &p, &e), 0);
	assert_int_equal(bt_oci_index_choose(&idx, &p, &e), 1); /* v6 runs on v7 */
	bt_oci_platform_clear(&p);
	assert_int_equal(bt_oci_platform_parse("linux/s390x", &p, &e), 0);
	assert_int_equal(bt_oci_index_choose(&idx, &p, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_non_null(strstr(e.msg, "linux/amd64"));
	bt_oci_platform_clear(&p);
	assert_int_equal(bt_oci_platform_parse("windows/amd64", &p, &e), 0);
	assert_int_equal(bt_oci_index_choose(&idx, &p, &e), -1);
	bt_oci_platform_clear(&p);
	bt_oci_index_clear(&idx);
}

/* --- records ----------------------------------------------------------------------- */

static image_rec rec(const char *name, const char *digest)
{
	image_rec r = { 0 };
	r.name = bt_xstrdup(name);
	r.media_type = bt_xstrdup(MT_OCI_MANIFEST);
	snprintf(r.digest, sizeof(r.digest), "%s", digest);
	r.size = 123;
	return r;
}

static int count(const image_rec *r, void *arg)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

static void test_store(void **state)
{
	(void)state;
	char dir[] = "/tmp/bt-img.XXXXXX";
	image_store *s;
	image_rec r = rec("docker.io/library/busybox:latest", D1), out = { 0 };
	bt_err e;
	int n = 0;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(image_store_open(dir, &s, &e), 0);
	bt_labels_set(&r.labels, "team", "red");
	bt_labels_set(&r.annotations, "org.opencontainers.image.ref.name", "latest");
	assert_int_equal(image_store_create(s, "ns", &r, &out, &e), 0);
	assert_true(out.created > 0);
	image_rec_clear(&out);
	assert_int_equal(image_store_create(s, "ns", &r, NULL, &e), -1);
	assert_int_equal(e.code, BT_ALREADY_EXISTS);
	/* namespaces apart */
	assert_int_equal(image_store_get(s, "other", r.name, &out, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	assert_int_equal(image_store_create(s, "other", &r, NULL, &e), 0);
	assert_int_equal(image_store_get(s, "ns", r.name, &out, &e), 0);
	assert_string_equal(bt_labels_get(&out.labels, "team"), "red");
	assert_string_equal(bt_labels_get(&out.annotations, "org.opencontainers.image.ref.name"), "latest");
	image_rec_clear(&out);
	/* update labels only, then the target */
	image_rec u = rec(r.name, D2);
	bt_labels_set(&u.labels, "env", "prod");
	char *m1[] = { "labels.env" };
	assert_int_equal(image_store_update(s, "ns", &u, m1, 1, &out, &e), 0);
	assert_string_equal(out.digest, D1);
	assert_string_equal(bt_labels_get(&out.labels, "team"), "red");
	assert_string_equal(bt_labels_get(&out.labels, "env"), "prod");
	image_rec_clear(&out);
	char *m2[] = { "target" };
	assert_int_equal(image_store_update(s, "ns", &u, m2, 1, &out, &e), 0);
	assert_string_equal(out.digest, D2);
	image_rec_clear(&out);
	char *m3[] = { "name" };
	assert_int_equal(image_store_update(s, "ns", &u, m3, 1, &out, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	/* put: keeps labels, moves the target */
	image_rec p = rec(r.name, D3);
	assert_int_equal(image_store_put(s, "ns", &p, &out, &e), 0);
	assert_string_equal(out.digest, D3);
	assert_string_equal(bt_labels_get(&out.labels, "team"), "red");
	image_rec_clear(&out);
	/* list with filters */
	image_rec q = rec("registry.local:5000/app:v1", D1);
	assert_int_equal(image_store_create(s, "ns", &q, NULL, &e), 0);
	assert_int_equal(image_store_list(s, "ns", NULL, count, &n, &e), 0);
	assert_int_equal(n, 2);
	bt_filter *f;
	const char *fs[] = { "name~=^registry" };
	assert_int_equal(bt_filter_parse(fs, 1, &f, &e), 0);
	n = 0;
	assert_int_equal(image_store_list(s, "ns", f, count, &n, &e), 0);
	assert_int_equal(n, 1);
	bt_filter_free(&f);
	/* delete */
	assert_int_equal(image_store_delete(s, "ns", q.name, &e), 0);
	assert_int_equal(image_store_delete(s, "ns", q.name, &e), -1);
	assert_int_equal(e.code, BT_NOT_FOUND);
	/* bad input */
	image_rec bad = rec("has space", D1);
	assert_int_equal(image_store_create(s, "ns", &bad, NULL, &e), -1);
	assert_int_equal(e.code, BT_INVALID_ARGUMENT);
	image_rec_clear(&bad);
	bad = rec("fine", "sha256:nope");
	assert_int_equal(image_store_create(s, "ns", &bad, NULL, &e), -1);
	image_rec_clear(&bad);
	image_rec_clear(&r);
	image_rec_clear(&u);
	image_rec_clear(&p);
	image_rec_clear(&q);
	image_store_free(&s);
	bt_rm_rf(dir, &e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest),  cmocka_unit_test(test_bad_documents), cmocka_unit_test(test_config),
		cmocka_unit_test(test_chain_ids), cmocka_unit_test(test_platforms),     cmocka_unit_test(test_store),
	};
	return cmocka_run_group_tests_name("image_oci", tests, NULL, NULL);
}
