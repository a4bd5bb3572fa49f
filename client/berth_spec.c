/*
 * berth_spec — a container's OCI runtime spec built as containerd builds it:
 * the default Linux spec (capabilities, mounts, masked and read-only paths,
 * rlimits, namespaces, devices), then the image config (Entrypoint + Cmd,
 * Env, WorkingDir, User), then what the caller asks for (arguments, env,
 * cwd, user, mounts, tty, host network, privileged), and a seccomp profile.
 *
 * Users and groups are looked up in the image's /etc/passwd and /etc/group,
 * read inside its root file system with every path resolved there, so that
 * an image cannot make berth read the host's files.  Capabilities never
 * exceed the host's bounding set: a runtime asked for one it cannot grant
 * fails to start the container.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "berth_internal.h"
#include "berth_spec.h"
#include "bt_ident.h"
#include "bt_oci.h"
#include "bt_seccomp.h"
#include "bt_util.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Bounds on what a caller or an image config may list. */
#define MAX_ARGS 4096
#define MAX_GIDS 256
#define MAX_HOST_DEVICES 1024

/* --- reading inside the root file system ------------------------------------ */

int berth_spec_read_in_root(int rootfd, const char *path, size_t max, char **out, size_t *len, bt_err *e)
{
	struct open_how how = {
		/* O_NONBLOCK: a FIFO planted as /etc/passwd must not hang the open */
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int fd = -1;
	struct stat st;
	bt_buf b = { 0 };

	*out = NULL;
	*len = 0;
	do
		fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	while (fd < 0 && (errno == EINTR || errno == EAGAIN));
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOSYS)
			return bt_err_set(e, BT_UNIMPLEMENTED, "%s: the kernel lacks openat2 (Linux 5.6 or later needed)",
					  path);
		return bt_err_errno(e, errno, "open %s in the image's root file system", path);
	}
	if (fstat(fd, &st) < 0)
		return bt_err_errno(e, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return bt_err_set(e, BT_FAILED_PRECONDITION, "%s in the image is not a regular file", path);
	if ((uint64_t)st.st_size > max)
		return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "%s in the image is larger than %zu bytes", path, max);
	/* the size may change under us: read at most max + 1 bytes to notice */
	for (;;) {
		char chunk[16384];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			bt_buf_free(&b);
			return bt_err_errno(e, errno, "read %s", path);
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			bt_buf_free(&b);
			return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "%s in the image is larger than %zu bytes", path,
					  max);
		}
		bt_buf_append(&b, chunk, (size_t)n);
	}
	if (!b.data)
		bt_buf_append(&b, "", 0);
	*len = b.len;
	*out = bt_buf_steal(&b);
	return 1;
}

/* --- users and groups --------------------------------------------------------- */

void berth_spec_user_clear(berth_spec_user *u)
{
	free(u->gids);
	memset(u, 0, sizeof(*u));
}

/* Parses an id: 1 numeric and in range, 0 not a number (a name), -1 a
 * number we refuse (negative or too large). */
static int parse_id(const char *s, size_t n, uint32_t *out, const char *what, bt_err *e)
{
	char esc[64];
	uint64_t v = 0;
	size_t i = 0;
	bool neg = false;

	if (n > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n)
		return neg ? bt_err_set(e, BT_INVALID_ARGUMENT, "%s \"-\": not an id", what) : 0;
	for (size_t k = i; k < n; k++)
		if (s[k] < '0' || s[k] > '9')
			return neg ? bt_err_set(e, BT_INVALID_ARGUMENT, "%s \"%s\": not an id or a name", what,
						bt_escape(esc, sizeof(esc), s, n))
				   : 0;
	if (neg)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "%s %s: negative ids are refused", what,
				  bt_escape(esc, sizeof(esc), s, n));
	for (; i < n; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > BERTH_SPEC_MAX_ID)
			return bt_err_set(e, BT_OUT_OF_RANGE, "%s %s: above the largest id %llu", what,
					  bt_escape(esc, sizeof(esc), s, n), BERTH_SPEC_MAX_ID);
	}
	*out = (uint32_t)v;
	return 1;
}

/* One line of /etc/passwd or /etc/group split at ':' (in place). */
static size_t split_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == ':') {
			*p = '\0';
			f[n++] = p + 1;
		}
	return n;
}

typedef struct etc_file {
	char *data; /* NULL: the image has no such file */
	size_t len;
	const char *path;
} etc_file;

/* Calls each(fields, n, arg) for every entry line until it returns non-zero;
 * returns that value, or 0. */
static int etc_each(const etc_file *f, int (*each)(char **fld, size_t n, void *arg), void *arg)
{
	if (!f->data)
		return 0;
	_cleanup_free_ char *copy = bt_xstrndup(f->data, f->len);
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *fld[8];
		size_t n;
		if (line[0] == '#' || line[0] == '+' || line[0] == '-' || !line[0])
			continue;
		n = split_fields(line, fld, BT_ARRAY_LEN(fld));
		int r = each(fld, n, arg);
		if (r)
			return r;
	}
	return 0;
}

typedef struct pw_query {
	const char *name; /* by name … */
	bool by_uid;      /* … or by uid */
	uint32_t uid;
	char *found_name;
	uint32_t found_uid, found_gid;
	const char *path;
	bt_err *e;
} pw_query;

static int pw_match(char **f, size_t n, void *arg)
{
	pw_query *q = arg;
	uint32_t uid, gid;
	char esc[80];

	if (n < 4)
		return 0;
	if (q->by_uid) {
		/* entries whose uid is not a plain number in range cannot match */
		bt_err ignore;
		if (parse_id(f[2], strlen(f[2]), &uid, "uid", &ignore) != 1 || uid != q->uid)
			return 0;
	} else if (strcmp(f[0], q->name) != 0) {
		return 0;
	}
	/* the entry chosen must hold ids we accept */
	if (parse_id(f[2], strlen(f[2]), &uid, "uid", q->e) != 1 || parse_id(f[3], strlen(f[3]), &gid, "gid", q->e) != 1) {
		if (q->e->code == BT_OK)
			bt_err_set(q->e, BT_INVALID_ARGUMENT, "not a number");
		bt_err_wrap(q->e, "%s: user %s", q->path, bt_escape(esc, sizeof(esc), f[0], strlen(f[0])));
		return -1;
	}
	q->found_name = bt_xstrdup(f[0]);
	q->found_uid = uid;
	q->found_gid = gid;
	return 1;
}

typedef struct gr_query {
	const char *name;   /* a group by name (NULL: collect memberships) */
	const char *member; /* memberships of this user */
	uint32_t gid;
	uint32_t *gids;
	size_t n_gids;
	const char *path;
	bt_err *e;
} gr_query;

static bool has_gid(const uint32_t *v, size_t n, uint32_t g)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == g)
			return true;
	return false;
}

static int gr_match(char **f, size_t n, void *arg)
{
	gr_query *q = arg;
	uint32_t gid;
	char esc[80];

	if (n < 3)
		return 0;
	if (q->name) {
		if (strcmp(f[0], q->name) != 0)
			return 0;
		if (parse_id(f[2], strlen(f[2]), &gid, "gid", q->e) != 1) {
			if (q->e->code == BT_OK)
				bt_err_set(q->e, BT_INVALID_ARGUMENT, "not a number");
			bt_err_wrap(q->e, "%s: group %s", q->path, bt_escape(esc, sizeof(esc), f[0], strlen(f[0])));
			return -1;
		}
		q->gid = gid;
		return 1;
	}
	if (n < 4 || !f[3][0])
		return 0;
	bool member = false;
	_cleanup_free_ char *list = bt_xstrdup(f[3]);
	char *save = NULL;
	for (char *m = strtok_r(list, ",", &save); m && !member; m = strtok_r(NULL, ",", &save))
		member = !strcmp(m, q->member);
	if (!member)
		return 0;
	/* a membership with an id we refuse is skipped, never wrapped */
	bt_err ignore;
	if (parse_id(f[2], strlen(f[2]), &gid, "gid", &ignore) != 1 || has_gid(q->gids, q->n_gids, gid))
		return 0;
	if (q->n_gids >= MAX_GIDS) {
		bt_err_set(q->e, BT_RESOURCE_EXHAUSTED, "%s: user %s is in more than %d groups", q->path,
			   bt_escape(esc, sizeof(esc), q->member, strlen(q->member)), MAX_GIDS);
		return -1;
	}
	q->gids[q->n_gids++] = gid;
	return 0;
}

static int load_etc(int rootfd, const char *path, etc_file *f, bt_err *e)
{
	f->path = path;
	f->data = NULL;
	f->len = 0;
	if (rootfd < 0)
		return 0;
	return berth_spec_read_in_root(rootfd, path, BERTH_SPEC_MAX_ETC, &f->data, &f->len, e) < 0 ? -1 : 0;
}

int berth_spec_resolve_user(int rootfd, const char *user, berth_spec_user *out, bt_err *e)
{
	char esc[300];
	etc_file pw = { 0 }, gr = { 0 };
	_cleanup_free_ char *name = NULL;
	const char *colon;
	size_t ulen;
	uint32_t uid = 0, gid = 0;
	pw_query q = { .e = e };
	int r;

	memset(out, 0, sizeof(*out));
	if (!user || !*user)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "user: empty");
	colon = strchr(user, ':');
	ulen = colon ? (size_t)(colon - user) : strlen(user);
	if (ulen == 0 || (colon && !colon[1]))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "user \"%s\": expected USER or USER:GROUP",
				  bt_escape(esc, sizeof(esc), user, strlen(user)));
	if (load_etc(rootfd, "/etc/passwd", &pw, e) < 0 || load_etc(rootfd, "/etc/group", &gr, e) < 0) {
		bt_err_wrap(e, "user %s", bt_escape(esc, sizeof(esc), user, strlen(user)));
		goto fail;
	}

	/* the user */
	r = parse_id(user, ulen, &uid, "uid", e);
	if (r < 0)
		goto fail;
	q.path = pw.path;
	if (r == 1) {
		q.by_uid = true;
		q.uid = uid;
		if (etc_each(&pw, pw_match, &q) < 0)
			goto fail;
		/* a uid without an entry runs with gid 0 */
		gid = q.found_name ? q.found_gid : 0;
	} else {
		name = bt_xstrndup(user, ulen);
		if (rootfd < 0) {
			bt_err_set(e, BT_FAILED_PRECONDITION,
				   "user \"%s\": a name needs the image's root file system to be looked up in its "
				   "/etc/passwd (give a numeric uid, or the rootfs)",
				   bt_escape(esc, sizeof(esc), name, strlen(name)));
			goto fail;
		}
		if (!pw.data) {
			bt_err_set(e, BT_NOT_FOUND, "user \"%s\": the image has no /etc/passwd",
				   bt_escape(esc, sizeof(esc), name, strlen(name)));
			goto fail;
		}
		q.name = name;
		r = etc_each(&pw, pw_match, &q);
		if (r < 0)
			goto fail;
		if (r == 0) {
			bt_err_set(e, BT_NOT_FOUND, "user \"%s\" is not in the image's /etc/passwd",
				   bt_escape(esc, sizeof(esc), name, strlen(name)));
			goto fail;
		}
		uid = q.found_uid;
		gid = q.found_gid;
	}

	/* the group, when named */
	if (colon) {
		const char *g = colon + 1;
		r = parse_id(g, strlen(g), &gid, "gid", e);
		if (r < 0)
			goto fail;
		if (r == 0) {
			if (rootfd < 0 || !gr.data) {
				bt_err_set(e, rootfd < 0 ? BT_FAILED_PRECONDITION : BT_NOT_FOUND,
					   "group \"%s\": %s", bt_escape(esc, sizeof(esc), g, strlen(g)),
					   rootfd < 0 ? "a name needs the image's root file system to be looked up in its "
							"/etc/group (give a numeric gid, or the rootfs)"
						      : "the image has no /etc/group");
				goto fail;
			}
			gr_query gq = { .name = g, .path = gr.path, .e = e };
			r = etc_each(&gr, gr_match, &gq);
			if (r < 0)
				goto fail;
			if (r == 0) {
				bt_err_set(e, BT_NOT_FOUND, "group \"%s\" is not in the image's /etc/group",
					   bt_escape(esc, sizeof(esc), g, strlen(g)));
				goto fail;
			}
			gid = gq.gid;
		}
	}

	/* supplementary groups: the primary first, then memberships of the user's name */
	gr_query mq = { .member = q.found_name, .gids = bt_xcalloc(MAX_GIDS, sizeof(uint32_t)), .path = gr.path,
			.e = e };
	mq.gids[mq.n_gids++] = gid;
	if (mq.member && etc_each(&gr, gr_match, &mq) < 0) {
		free(mq.gids);
		free(q.found_name);
		goto fail;
	}
	free(q.found_name);
	out->uid = uid;
	out->gid = gid;
	out->gids = mq.gids;
	out->n_gids = mq.n_gids;
	free(pw.data);
	free(gr.data);
	return 0;
fail:
	free(q.found_name);
	free(pw.data);
	free(gr.data);
	return -1;
}

/* --- capabilities --------------------------------------------------------------- */

/* Capability names by number (linux/capability.h). */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

/* The default set of a container (containerd's and Docker's), in containerd's order. */
static const int default_caps[] = { 0 /* CHOWN */,    1 /* DAC_OVERRIDE */, 4 /* FSETID */,
				    3 /* FOWNER */,   27 /* MKNOD */,       13 /* NET_RAW */,
				    6 /* SETGID */,   7 /* SETUID */,       31 /* SETFCAP */,
				    8 /* SETPCAP */,  10 /* NET_BIND_SERVICE */, 18 /* SYS_CHROOT */,
				    5 /* KILL */,     29 /* AUDIT_WRITE */ };

uint64_t berth_spec_host_bounding(void)
{
	_cleanup_free_ char *s = NULL;
	size_t len;
	bt_err e;
	uint64_t v = 0;

	if (bt_read_file("/proc/self/status", 1 << 16, &s, &len, &e) < 0)
		return 0;
	const char *p = strstr(s, "\nCapBnd:");
	if (!p || sscanf(p + 8, "%" SCNx64, &v) != 1)
		return 0;
	return v;
}

char **berth_spec_caps(uint64_t bounding, bool privileged)
{
	char **v = NULL;

	if (privileged) {
		for (size_t i = 0; i < BT_ARRAY_LEN(cap_names); i++)
			if (bounding & (1ull << i))
				bt_strv_push(&v, cap_names[i]);
	} else {
		for (size_t i = 0; i < BT_ARRAY_LEN(default_caps); i++)
			if (bounding & (1ull << default_caps[i]))
				bt_strv_push(&v, cap_names[default_caps[i]]);
	}
	if (!v)
		v = bt_xcalloc(1, sizeof(*v));
	return v;
}

/* --- JSON helpers ------------------------------------------------------------------ */

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *strs_json(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *mount_json(const char *dst, const char *type, const char *src, const char *opts_csv)
{
	json_t *m = json_object(), *o = json_array();
	_cleanup_free_ char *copy = bt_xstrdup(opts_csv);
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(o, json_string(t));
	json_object_set_new(m, "destination", json_string(dst));
	json_object_set_new(m, "type", json_string(type));
	json_object_set_new(m, "source", json_string(src));
	json_object_set_new(m, "options", o);
	return m;
}

/* An array of strings from the image config (absent or null: empty);
 * strings only, bounded. */
static int config_strv(json_t *cfg, const char *key, char ***out, bt_err *e)
{
	json_t *a = cfg ? json_object_get(cfg, key) : NULL, *v;
	size_t i;

	*out = NULL;
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "image config: %s is not an array", key);
	if (json_array_size(a) > MAX_ARGS)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "image config: %s has more than %d entries", key, MAX_ARGS);
	json_array_foreach (a, i, v) {
		if (!json_is_string(v)) {
			bt_strv_free(*out);
			*out = NULL;
			return bt_err_set(e, BT_INVALID_ARGUMENT, "image config: %s[%zu] is not a string", key, i);
		}
		bt_strv_push(out, json_string_value(v));
	}
	return 0;
}

static const char *config_str(json_t *cfg, const char *key)
{
	json_t *v = cfg ? json_object_get(cfg, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* --- environment ------------------------------------------------------------------- */

static size_t env_key_len(const char *kv)
{
	const char *eq = strchr(kv, '=');
	return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* "K=V" replaces K in place or appends; "K" removes K. */
static void env_apply(char ***env, const char *kv)
{
	size_t kl = env_key_len(kv), n = bt_strv_len(*env);
	bool set = kv[kl] == '=';

	for (size_t i = 0; i < n; i++) {
		char *cur = (*env)[i];
		if (env_key_len(cur) != kl || strncmp(cur, kv, kl) != 0)
			continue;
		free(cur);
		if (set) {
			(*env)[i] = bt_xstrdup(kv);
		} else {
			memmove(&(*env)[i], &(*env)[i + 1], (n - i) * sizeof(char *));
		}
		return;
	}
	if (set)
		bt_strv_push(env, kv);
}

static bool env_has(char *const *env, const char *key)
{
	size_t kl = strlen(key);
	for (size_t i = 0; env && env[i]; i++)
		if (env_key_len(env[i]) == kl && !strncmp(env[i], key, kl))
			return true;
	return false;
}

/* --- mounts --------------------------------------------------------------------------- */

/* ctr's --mount: "type=bind,src=/a,dst=/b,options=rbind:ro". */
static int parse_mount(const char *s, json_t **out, bt_err *e)
{
	_cleanup_free_ char *copy = bt_xstrdup(s);
	const char *type = NULL, *src = NULL, *dst = NULL, *opts = NULL;
	char esc[300], *save = NULL;

	for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(f, '=');
		if (!eq)
			return bt_err_set(e, BT_INVALID_ARGUMENT, "mount \"%s\": \"%s\" is not KEY=VALUE",
					  bt_escape(esc, sizeof(esc), s, strlen(s)), f);
		*eq = '\0';
		const char *v = eq + 1;
		if (!strcmp(f, "type"))
			type = v;
		else if (!strcmp(f, "src") || !strcmp(f, "source"))
			src = v;
		else if (!strcmp(f, "dst") || !strcmp(f, "destination") || !strcmp(f, "target"))
			dst = v;
		else if (!strcmp(f, "options"))
			opts = v;
		else
			return bt_err_set(e, BT_INVALID_ARGUMENT,
					  "mount \"%s\": unknown key \"%s\" (type, src, dst, options)",
					  bt_escape(esc, sizeof(esc), s, strlen(s)), f);
	}
	if (!dst || dst[0] != '/')
		return bt_err_set(e, BT_INVALID_ARGUMENT, "mount \"%s\": dst must be an absolute path",
				  bt_escape(esc, sizeof(esc), s, strlen(s)));
	if (!type || !*type)
		type = "bind";
	if (!strcmp(type, "bind") && (!src || src[0] != '/'))
		return bt_err_set(e, BT_INVALID_ARGUMENT, "mount \"%s\": a bind mount needs an absolute src",
				  bt_escape(esc, sizeof(esc), s, strlen(s)));
	/* options are ':'-separated in ctr's syntax */
	bt_buf o = { 0 };
	bool bind_flag = false;
	if (opts && *opts) {
		_cleanup_free_ char *oc = bt_xstrdup(opts);
		char *s2 = NULL;
		for (char *t = strtok_r(oc, ":", &s2); t; t = strtok_r(NULL, ":", &s2)) {
			bt_buf_appendf(&o, "%s%s", o.len ? "," : "", t);
			bind_flag |= !strcmp(t, "bind") || !strcmp(t, "rbind");
		}
	}
	/* a bind mount without bind or rbind among its options is taken as rbind, as Docker does */
	if (!strcmp(type, "bind") && !bind_flag)
		bt_buf_appendf(&o, "%srbind", o.len ? "," : "");
	*out = mount_json(dst, type, src ? src : type, o.data ? o.data : "");
	bt_buf_free(&o);
	return 0;
}

/* Removes the mount at dst from mounts, when there is one (a later mount replaces it). */
static void mounts_drop(json_t *mounts, const char *dst)
{
	size_t i;
	json_t *m;
	json_array_foreach (mounts, i, m)
		if (!strcmp(json_string_value(json_object_get(m, "destination")), dst)) {
			json_array_remove(mounts, i);
			return;
		}
}

/* --- devices -------------------------------------------------------------------------- */

static json_t *dev_rule(bool allow, const char *type, int64_t major, int64_t minor, const char *access)
{
	json_t *d = json_object();
	json_object_set_new(d, "allow", json_boolean(allow));
	if (type)
		json_object_set_new(d, "type", json_string(type));
	if (major >= 0)
		json_object_set_new(d, "major", json_integer(major));
	if (minor >= 0)
		json_object_set_new(d, "minor", json_integer(minor));
	json_object_set_new(d, "access", json_string(access));
	return d;
}

/* The host's device nodes under dir (privileged containers get them all). */
static void host_devices(const char *dir, json_t *out, int depth)
{
	_cleanup_dir_ DIR *d = opendir(dir);
	struct dirent *de;

	if (!d || depth > 4)
		return;
	while ((de = readdir(d)) && json_array_size(out) < MAX_HOST_DEVICES) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *p = bt_xasprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			/* the container has its own of these */
			static const char *const skip[] = { "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts" };
			bool s = false;
			for (size_t i = 0; i < BT_ARRAY_LEN(skip); i++)
				s |= depth == 0 && !strcmp(de->d_name, skip[i]);
			if (!s)
				host_devices(p, out, depth + 1);
			continue;
		}
		if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
			continue;
		if (!strcmp(p, "/dev/console"))
			continue;
		json_t *dev = json_object();
		json_object_set_new(dev, "path", json_string(p));
		json_object_set_new(dev, "type", json_string(S_ISCHR(st.st_mode) ? "c" : "b"));
		json_object_set_new(dev, "major", json_integer(major(st.st_rdev)));
		json_object_set_new(dev, "minor", json_integer(minor(st.st_rdev)));
		json_object_set_new(dev, "fileMode", json_integer(st.st_mode & 07777));
		json_object_set_new(dev, "uid", json_integer(st.st_uid));
		json_object_set_new(dev, "gid", json_integer(st.st_gid));
		json_array_append_new(out, dev);
	}
}

/* --- the spec ----------------------------------------------------------------------------- */

static const char *const masked_paths[] = {
	"/proc/acpi",	    "/proc/asound",     "/proc/kcore",	      "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/sys/firmware",    "/sys/devices/virtual/powercap", "/proc/scsi",
};
static const char *const readonly_paths[] = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
					       "/proc/sysrq-trigger" };

static json_t *default_mounts(void)
{
	json_t *m = json_array();
	json_array_append_new(m, mount_json("/proc", "proc", "proc", "nosuid,noexec,nodev"));
	json_array_append_new(m, mount_json("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
	json_array_append_new(m, mount_json("/dev/pts", "devpts", "devpts",
					    "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
	json_array_append_new(m, mount_json("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
	json_array_append_new(m, mount_json("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
	json_array_append_new(m, mount_json("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
	json_array_append_new(m, mount_json("/run", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
	return m;
}

static json_t *default_devices(void)
{
	json_t *d = json_array();
	json_array_append_new(d, dev_rule(false, NULL, -1, -1, "rwm"));
	static const int allow[][2] = { { 1, 3 }, { 1, 8 }, { 1, 7 }, { 1, 5 }, { 1, 9 },
					{ 5, 0 }, { 5, 1 }, { 5, 2 }, { 136, -1 } };
	for (size_t i = 0; i < BT_ARRAY_LEN(allow); i++)
		json_array_append_new(d, dev_rule(true, "c", allow[i][0], allow[i][1], "rwm"));
	return d;
}

static json_t *namespaces_json(bool net_host)
{
	static const char *const ns[] = { "pid", "ipc", "uts", "mount", "network" };
	json_t *a = json_array();
	for (size_t i = 0; i < BT_ARRAY_LEN(ns); i++) {
		if (net_host && !strcmp(ns[i], "network"))
			continue;
		json_array_append_new(a, json_pack("{s:s}", "type", ns[i]));
	}
	return a;
}

/* Reads and checks a seccomp profile file. */
static int load_profile(const char *path, json_t **out, bt_err *e)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	json_error_t je;

	if (bt_read_file(path, 1 << 20, &data, &len, e) < 0)
		return bt_err_wrap(e, "seccomp profile %s", path);
	json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "seccomp profile %s: line %d: %s", path, je.line, je.text);
	if (bt_seccomp_check(j, e) < 0) {
		json_decref(j);
		return bt_err_wrap(e, "%s", path);
	}
	*out = j;
	return 0;
}

static int set_process(json_t *proc, json_t *cfg, const berth_spec_opts *o, int rootfd, bt_err *e)
{
	_cleanup_strv_ char **entry = NULL, **cmd = NULL, **img_env = NULL, **args = NULL, **env = NULL;
	berth_spec_user u = { 0 };

	if (config_strv(cfg, "Entrypoint", &entry, e) < 0 || config_strv(cfg, "Cmd", &cmd, e) < 0 ||
	    config_strv(cfg, "Env", &img_env, e) < 0)
		return -1;
	if (o->n_args > MAX_ARGS || o->n_env > MAX_ARGS)
		return bt_err_set(e, BT_INVALID_ARGUMENT, "more than %d arguments or variables", MAX_ARGS);

	/* args: Entrypoint + (the caller's arguments, else Cmd) */
	for (size_t i = 0; entry && entry[i]; i++)
		bt_strv_push(&args, entry[i]);
	if (o->n_args)
		for (size_t i = 0; i < o->n_args; i++)
			bt_strv_push(&args, o->args[i]);
	else
		for (size_t i = 0; cmd && cmd[i]; i++)
			bt_strv_push(&args, cmd[i]);
	if (!args)
		return bt_err_set(e, BT_INVALID_ARGUMENT,
				  "no command: the image has neither Entrypoint nor Cmd, and none was given");

	/* env: the default PATH, the image's over it, then the caller's */
	bt_strv_push(&env, DEFAULT_PATH);
	for (size_t i = 0; img_env && img_env[i]; i++)
		if (strchr(img_env[i], '='))
			env_apply(&env, img_env[i]);
	for (size_t i = 0; i < o->n_env; i++) {
		if (!o->env[i] || !o->env[i][0] || o->env[i][0] == '=')
			return bt_err_set(e, BT_INVALID_ARGUMENT, "env \"%s\": expected KEY=VALUE or KEY",
					  o->env[i] ? o->env[i] : "");
		env_apply(&env, o->env[i]);
	}
	if (o->net_host && !env_has(env, "HOSTNAME")) {
		char host[256] = "";
		if (gethostname(host, sizeof(host) - 1) == 0 && host[0]) {
			_cleanup_free_ char *kv = bt_xasprintf("HOSTNAME=%s", host);
			env_apply(&env, kv);
		}
	}
	if (o->tty && !env_has(env, "TERM"))
		env_apply(&env, "TERM=xterm");

	/* cwd */
	const char *cwd = o->cwd ? o->cwd : config_str(cfg, "WorkingDir");
	if (!cwd || !*cwd)
		cwd = "/";
	if (cwd[0] != '/')
		return bt_err_set(e, BT_INVALID_ARGUMENT, "working directory \"%s\" is not an absolute path", cwd);

	/* user */
	const char *user = o->user ? o->user : config_str(cfg, "User");
	if (!user || !*user)
		user = "0";
	if (berth_spec_resolve_user(rootfd, user, &u, e) < 0)
		return -1;
	json_t *uj = json_pack("{s:I,s:I}", "uid", (json_int_t)u.uid, "gid", (json_int_t)u.gid);
	if (u.n_gids) {
		json_t *g = json_array();
		for (size_t i = 0; i < u.n_gids; i++)
			json_array_append_new(g, json_integer(u.gids[i]));
		json_object_set_new(uj, "additionalGids", g);
	}
	berth_spec_user_clear(&u);

	json_object_set_new(proc, "terminal", json_boolean(o->tty));
	json_object_set_new(proc, "user", uj);
	json_object_set_new(proc, "args", strv_json(args));
	json_object_set_new(proc, "env", strv_json(env));
	json_object_set_new(proc, "cwd", json_string(cwd));
	return 0;
}

static json_t *caps_json(char *const *caps)
{
	json_t *c = json_object();
	json_object_set_new(c, "bounding", strv_json(caps));
	json_object_set_new(c, "effective", strv_json(caps));
	json_object_set_new(c, "permitted", strv_json(caps));
	return c;
}

int berth_spec_build(const char *ns, const char *config_json, size_t len, const berth_spec_opts *o,
		     uint64_t bounding, json_t **out, bt_err *e)
{
	json_t *doc = NULL, *cfg = NULL;
	json_t *spec = NULL, *proc, *linux_, *mounts;
	_cleanup_close_ int rootfd = -1;
	_cleanup_strv_ char **caps = NULL;
	json_error_t je;
	char esc[300];

	*out = NULL;
	if (config_json) {
		if (len > OCI_MAX_CONFIG)
			return bt_err_set(e, BT_RESOURCE_EXHAUSTED, "image config larger than %d bytes", OCI_MAX_CONFIG);
		doc = json_loadb(config_json, len, JSON_REJECT_DUPLICATES, &je);
		if (!doc || !json_is_object(doc)) {
			json_decref(doc);
			return bt_err_set(e, BT_INVALID_ARGUMENT, "image config: %s", doc ? "not an object" : je.text);
		}
		cfg = json_object_get(doc, "config");
		if (cfg && !json_is_object(cfg) && !json_is_null(cfg)) {
			json_decref(doc);
			return bt_err_set(e, BT_INVALID_ARGUMENT, "image config: config is not an object");
		}
	}
	if (o->rootfs) {
		rootfd = open(o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (rootfd < 0) {
			json_decref(doc);
			return bt_err_errno(e, errno, "rootfs %s", bt_escape(esc, sizeof(esc), o->rootfs, strlen(o->rootfs)));
		}
	}

	spec = json_object();
	proc = json_object();
	linux_ = json_object();
	json_object_set_new(spec, "ociVersion", json_string("1.0.2-dev"));
	json_object_set_new(spec, "process", proc);
	json_object_set_new(spec, "root", json_pack("{s:s}", "path", "rootfs"));
	json_object_set_new(spec, "linux", linux_);
	if (set_process(proc, cfg, o, rootfd, e) < 0)
		goto fail;

	caps = berth_spec_caps(bounding, o->privileged);
	json_object_set_new(proc, "capabilities", caps_json(caps));
	json_object_set_new(proc, "rlimits", json_pack("[{s:s,s:i,s:i}]", "type", "RLIMIT_NOFILE", "hard", 1024,
							"soft", 1024));
	json_object_set_new(proc, "noNewPrivileges", json_true());

	/* hostname: the caller's, the id, or with the host's network the host's name */
	char host[256] = "";
	const char *hostname = o->hostname ? o->hostname : o->id;
	if (!hostname && o->net_host && gethostname(host, sizeof(host) - 1) == 0 && host[0])
		hostname = host;
	if (hostname)
		json_object_set_new(spec, "hostname", json_string(hostname));

	mounts = default_mounts();
	json_object_set_new(spec, "mounts", mounts);
	if (o->net_host) {
		static const char *const files[] = { "/etc/hosts", "/etc/resolv.conf" };
		for (size_t i = 0; i < BT_ARRAY_LEN(files); i++)
			if (access(files[i], F_OK) == 0)
				json_array_append_new(mounts, mount_json(files[i], "bind", files[i], "rbind,ro"));
	}
	if (o->privileged) {
		/* a writable /sys: "ro" becomes an explicit "rw", as containerd
		 * writes it, so that the two specs agree option by option */
		size_t i;
		json_t *m;
		json_array_foreach (mounts, i, m)
			if (!strcmp(json_string_value(json_object_get(m, "destination")), "/sys")) {
				json_t *opts = json_object_get(m, "options"), *v;
				size_t k;
				json_array_foreach (opts, k, v)
					if (!strcmp(json_string_value(v), "ro")) {
						if (json_array_set_new(opts, k, json_string("rw")) < 0)
							bt_oom();
						break;
					}
				break;
			}
	}
	for (size_t i = 0; i < o->n_mounts; i++) {
		json_t *m = NULL;
		if (parse_mount(o->mounts[i], &m, e) < 0)
			goto fail;
		mounts_drop(mounts, json_string_value(json_object_get(m, "destination")));
		json_array_append_new(mounts, m);
	}

	if (o->n_annotations) {
		json_t *a = json_object();
		for (size_t i = 0; i < o->n_annotations; i++)
			json_object_set_new(a, o->annotations[i].key, json_string(o->annotations[i].value));
		json_object_set_new(spec, "annotations", a);
	}

	/* linux */
	json_t *res = json_object();
	json_object_set_new(linux_, "resources", res);
	if (o->privileged) {
		json_t *devs = json_array();
		host_devices("/dev", devs, 0);
		json_object_set_new(linux_, "devices", devs);
		json_object_set_new(res, "devices", json_pack("[{s:b,s:s}]", "allow", 1, "access", "rwm"));
	} else {
		json_object_set_new(res, "devices", default_devices());
	}
	if (o->id) {
		_cleanup_free_ char *cg = bt_xasprintf("/%s/%s", ns ? ns : BERTH_DEFAULT_NAMESPACE, o->id);
		json_object_set_new(linux_, "cgroupsPath", json_string(cg));
	}
	json_object_set_new(linux_, "namespaces", namespaces_json(o->net_host));
	if (!o->privileged) {
		json_object_set_new(linux_, "maskedPaths", strs_json(masked_paths, BT_ARRAY_LEN(masked_paths)));
		json_object_set_new(linux_, "readonlyPaths", strs_json(readonly_paths, BT_ARRAY_LEN(readonly_paths)));
		json_t *sc = NULL;
		if (o->seccomp_profile) {
			if (load_profile(o->seccomp_profile, &sc, e) < 0)
				goto fail;
		} else {
			sc = bt_seccomp_default((const char *const *)caps, bt_strv_len(caps), NULL);
		}
		json_object_set_new(linux_, "seccomp", sc);
	} else if (o->seccomp_profile) {
		/* --privileged turns the default off; a profile asked for by name still applies */
		json_t *sc = NULL;
		if (load_profile(o->seccomp_profile, &sc, e) < 0)
			goto fail;
		json_object_set_new(linux_, "seccomp", sc);
	}
	json_decref(doc);
	*out = spec;
	return 0;
fail:
	json_decref(doc);
	json_decref(spec);
	return -1;
}

/* --- libberth entry points ------------------------------------------------------------ */

/* Reads a stored document of at most OCI_MAX_CONFIG bytes. */
static int read_doc(berth_client *c, const char *ns, const char *what, const char *digest, bt_buf *out, bt_err *e)
{
	return berth_read_doc(c, ns, what, digest, OCI_MAX_CONFIG, out, e);
}

int berth_image_config(berth_client *c, const char *ns, const char *image, const char *platform,
		       char **json_out, size_t *len, berth_error *err)
{
	berth_image img;
	bt_err e = { 0 };

	*json_out = NULL;
	*len = 0;
	if (!image || !*image)
		return berth_fail(err, &(bt_err){ .code = BT_INVALID_ARGUMENT, .msg = "no image named" });
	if (berth_image_get(c, ns, image, &img, err) < 0) {
		if (err->code == BERTH_NOT_FOUND) {
			bt_err_set(&e, BT_NOT_FOUND, "image %s is not stored here (berth images pull or import it first)",
				   image);
			return berth_fail(err, &e);
		}
		return -1;
	}
	int rc = berth_image_config_of(c, ns, &img, platform, json_out, len, err);
	berth_image_clear(&img);
	return rc;
}

int berth_image_config_of(berth_client *c, const char *ns, const berth_image *img, const char *platform,
			  char **json_out, size_t *len, berth_error *err)
{
	const char *image = img->name;
	bt_oci_platform want = { 0 };
	bt_oci_desc cur = { 0 };
	bt_oci_manifest m = { 0 };
	bt_buf doc = { 0 };
	bt_err e = { 0 };
	int rc = -1;

	*json_out = NULL;
	*len = 0;
	if (bt_oci_platform_parse(platform ? platform : "", &want, &e) < 0)
		goto out;
	cur.media_type = bt_xstrdup(img->target.media_type);
	snprintf(cur.digest, sizeof(cur.digest), "%s", img->target.digest);
	if (bt_oci_is_index(cur.media_type)) {
		bt_oci_index idx;
		if (read_doc(c, ns, "index", cur.digest, &doc, &e) < 0)
			goto out;
		if (bt_oci_parse_index(doc.data, doc.len, &idx, &e) < 0) {
			bt_err_wrap(&e, "index %s", cur.digest);
			goto out;
		}
		bt_buf_free(&doc);
		int i = bt_oci_index_choose(&idx, &want, &e);
		if (i >= 0)
			bt_oci_desc_copy(&cur, &idx.manifests[i]);
		bt_oci_index_clear(&idx);
		if (i < 0) {
			bt_err_wrap(&e, "image %s", image);
			goto out;
		}
	} else if (!bt_oci_is_manifest(cur.media_type)) {
		bt_err_set(&e, BT_FAILED_PRECONDITION, "image %s: its target is a %s, not a manifest or an index", image,
			   cur.media_type);
		goto out;
	}
	if (read_doc(c, ns, "manifest", cur.digest, &doc, &e) < 0)
		goto out;
	if (bt_oci_parse_manifest(doc.data, doc.len, &m, &e) < 0) {
		bt_err_wrap(&e, "manifest %s", cur.digest);
		goto out;
	}
	bt_buf_free(&doc);
	if (read_doc(c, ns, "config", m.config.digest, &doc, &e) < 0)
		goto out;
	*len = doc.len;
	*json_out = bt_buf_steal(&doc);
	rc = 0;
out:
	bt_buf_free(&doc);
	bt_oci_desc_clear(&cur);
	bt_oci_manifest_clear(&m);
	bt_oci_platform_clear(&want);
	return rc < 0 ? berth_fail(err, &e) : 0;
}

int berth_spec_from_config(const char *ns, const char *config_json, size_t len, const berth_spec_opts *o,
			   char **json_out, berth_error *err)
{
	json_t *spec;
	bt_err e = { 0 };

	*json_out = NULL;
	uint64_t bounding = berth_spec_host_bounding();
	if (!bounding) {
		bt_err_set(&e, BT_INTERNAL, "cannot read the bounding set of capabilities from /proc/self/status");
		return berth_fail(err, &e);
	}
	if (berth_spec_build(ns, config_json, len, o, bounding, &spec, &e) < 0)
		return berth_fail(err, &e);
	*json_out = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(spec);
	if (!*json_out)
		bt_oom();
	return 0;
}

int berth_spec_generate(berth_client *c, const char *ns, const berth_spec_opts *o, char **json_out,
			berth_error *err)
{
	_cleanup_free_ char *cfg = NULL;
	size_t len;
	bt_err e = { 0 };

	*json_out = NULL;
	ns = berth_ns(c, ns);
	if (berth_image_config(c, ns, o->image, o->platform, &cfg, &len, err) < 0)
		return -1;
	if (berth_spec_from_config(ns, cfg, len, o, json_out, err) < 0) {
		bt_err_set(&e, err->code, "image %s: %s", o->image, err->message);
		return berth_fail(err, &e);
	}
	return 0;
}

int berth_spec_image_labels(const char *config_json, size_t len, berth_label **out, size_t *n_out,
			    berth_error *err)
{
	json_error_t je;
	bt_err e = { 0 };
	const char *k;
	json_t *v;

	*out = NULL;
	*n_out = 0;
	json_t *doc = json_loadb(config_json, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		bt_err_set(&e, BT_INVALID_ARGUMENT, "image config: %s", je.text);
		return berth_fail(err, &e);
	}
	json_t *labels = json_object_get(json_object_get(doc, "config"), "Labels");
	if (json_is_object(labels)) {
		*out = bt_xcalloc(json_object_size(labels) + 1, sizeof(**out));
		json_object_foreach (labels, k, v) {
			bt_err ignore;
			/* reserved prefixes (and labels berth would refuse) are left out */
			if (!json_is_string(v) ||
			    bt_label_validate(k, strlen(k), json_string_value(v), json_string_length(v), false, &ignore) < 0)
				continue;
			(*out)[*n_out].key = bt_xstrdup(k);
			(*out)[*n_out].value = bt_xstrdup(json_string_value(v));
			(*n_out)++;
		}
	}
	json_decref(doc);
	return 0;
}

void berth_spec_labels_free(berth_label *l, size_t n)
{
	berth_labels_free(l, n);
}
