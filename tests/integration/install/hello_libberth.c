/*
 * A program written against the installed libberth only (its public header
 * and pkg-config file): stores a blob, reads it back, lists it.
 */
#include <berth/berth.h>
#include <stdio.h>
#include <string.h>

static const char data[] = "hello from libberth";

static int64_t source(void *arg, void *buf, size_t len)
{
	size_t *pos = arg;
	size_t n = sizeof(data) - 1 - *pos;
	if (n > len)
		n = len;
	memcpy(buf, data + *pos, n);
	*pos += n;
	return (int64_t)n;
}

static int sink(void *arg, const void *p, size_t len)
{
	fwrite(p, 1, len, arg);
	return 0;
}

int main(void)
{
	berth_error err;
	berth_client *c = berth_client_new(NULL, &err);
	size_t pos = 0, n = 0;
	char digest[72];
	berth_content_info *v = NULL;

	if (!c) {
		fprintf(stderr, "connect: %s\n", err.message);
		return 1;
	}
	berth_ingest_opts o = { .ref = "hello", .source = source, .arg = &pos };
	if (berth_content_ingest(c, NULL, &o, digest, &err) < 0 ||
	    berth_content_read(c, NULL, digest, 0, 0, sink, stdout, &err) < 0 ||
	    berth_content_list(c, NULL, NULL, 0, &v, &n, &err) < 0) {
		fprintf(stderr, "%s: %s\n", berth_code_name(err.code), err.message);
		berth_client_free(&c);
		return 1;
	}
	printf("\n%s %zu\n", digest, n);
	berth_content_infos_free(v, n);
	berth_client_free(&c);
	return 0;
}
