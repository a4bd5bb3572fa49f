/*
 * libberth — the C client library of berth.
 *
 * A berth_client is a connection to the gateway (or, for operators, straight
 * to one service's socket).  Every call takes a namespace (NULL: the
 * client's default) and returns 0 on success or -1 with *err filled: a code
 * (gRPC's numbering, BERTH_* below) and a message saying what went wrong.
 * A client is used by one thread at a time; make one per thread.
 *
 * Ownership: functions named *_free release what the library returned; every
 * string in a returned structure belongs to that structure.
 */
#ifndef BERTH_BERTH_H
#define BERTH_BERTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BERTH_DEFAULT_ADDRESS "unix:///run/berth/berth-unix.sock"
#define BERTH_DEFAULT_NAMESPACE "default"

enum berth_code {
	BERTH_OK = 0,
	BERTH_CANCELLED = 1,
	BERTH_UNKNOWN = 2,
	BERTH_INVALID_ARGUMENT = 3,
	BERTH_DEADLINE_EXCEEDED = 4,
	BERTH_NOT_FOUND = 5,
	BERTH_ALREADY_EXISTS = 6,
	BERTH_PERMISSION_DENIED = 7,
	BERTH_RESOURCE_EXHAUSTED = 8,
	BERTH_FAILED_PRECONDITION = 9,
	BERTH_ABORTED = 10,
	BERTH_OUT_OF_RANGE = 11,
	BERTH_UNIMPLEMENTED = 12,
	BERTH_INTERNAL = 13,
	BERTH_UNAVAILABLE = 14,
	BERTH_DATA_LOSS = 15,
	BERTH_UNAUTHENTICATED = 16,
};

typedef struct berth_error {
	int code;           /* enum berth_code */
	int transport;      /* 1 when the error arose in transit: retrying may succeed */
	char message[1024]; /* what went wrong, context first */
} berth_error;

/* "NOT_FOUND" for BERTH_NOT_FOUND, and so on. */
const char *berth_code_name(int code);

typedef struct berth_client berth_client;

typedef struct berth_options {
	const char *address;   /* NULL: $BERTH_ADDRESS, else BERTH_DEFAULT_ADDRESS */
	const char *namespace_; /* default namespace; NULL: $BERTH_NAMESPACE, else "default" */
	int64_t timeout_ms;    /* deadline of each unary call; 0: 30 s */
	/* CURVE for tcp:// addresses (z85 keys, 40 characters); NULL for none. */
	const char *server_key;
	const char *public_key;
	const char *secret_key;
} berth_options;

/* Connects lazily: a server that is not up yet is waited for at the first call. */
berth_client *berth_client_new(const berth_options *opts, berth_error *err);
/* Closes the connection and NULLs *c. */
void berth_client_free(berth_client **c);
void berth_client_set_namespace(berth_client *c, const char *ns);
/* Borrowed. */
const char *berth_client_namespace(const berth_client *c);
const char *berth_client_address(const berth_client *c);

/* --- labels ---------------------------------------------------------------- */
typedef struct berth_label {
	char *key;
	char *value;
} berth_label;

/* --- version and health ---------------------------------------------------- */
typedef struct berth_daemon_info {
	char *daemon;
	char *version;
	uint32_t protocol;
	int32_t pid;
	int64_t uptime_seconds;
} berth_daemon_info;

typedef struct berth_backend {
	char *service;
	char *address;
	bool healthy;
	berth_daemon_info daemon; /* when healthy */
	char *error;              /* when not */
	int64_t latency_us;
} berth_backend;

typedef struct berth_version {
	berth_daemon_info gateway;
	size_t n_backends;
	berth_backend *backends;
} berth_version;

/* Asks the gateway for its version and every backend's health. */
int berth_version_get(berth_client *c, berth_version **out, berth_error *err);
void berth_version_free(berth_version **v);
/* Health of the daemon at the other end (gateway or a service socket). */
int berth_health(berth_client *c, berth_daemon_info *out, berth_error *err);
void berth_daemon_info_clear(berth_daemon_info *d);

/* --- content --------------------------------------------------------------- */
typedef struct berth_content_info {
	char digest[72];
	int64_t size;
	int64_t created_at; /* ns since the epoch */
	int64_t updated_at;
	size_t n_labels;
	berth_label *labels;
} berth_content_info;

typedef struct berth_ingest_status {
	char *ref;
	int64_t offset;
	int64_t total;
	char expected[72];
	int64_t started_at;
	int64_t updated_at;
} berth_ingest_status;

void berth_content_info_clear(berth_content_info *i);
void berth_content_infos_free(berth_content_info *v, size_t n);
void berth_ingest_status_clear(berth_ingest_status *s);
void berth_ingest_statuses_free(berth_ingest_status *v, size_t n);

int berth_content_get_info(berth_client *c, const char *ns, const char *digest, berth_content_info *out,
		       berth_error *err);
/* filters: containerd's syntax (fields digest, size, labels.KEY); NULL/0 for all. */
int berth_content_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		       berth_content_info **out, size_t *n_out, berth_error *err);
/* Sets labels per mask ("labels", "labels.KEY"; none: replace all). out may be NULL. */
int berth_content_update(berth_client *c, const char *ns, const char *digest, const berth_label *labels,
			 size_t n_labels, const char *const *mask, size_t n_mask, berth_content_info *out,
			 berth_error *err);
int berth_content_delete(berth_client *c, const char *ns, const char *digest, berth_error *err);

/* Receives read data in order; return -1 to stop the read. */
typedef int (*berth_sink_fn)(void *arg, const void *data, size_t len);
/* Reads size bytes (0: to the end) from offset; resumes by itself if the
 * path to the service drops mid-way. */
int berth_content_read(berth_client *c, const char *ns, const char *digest, int64_t offset, int64_t size,
		       berth_sink_fn sink, void *arg, berth_error *err);

/* A blob read as a stream the caller pulls from (rather than a sink it is
 * pushed into): for consumers such as decompressors and tar readers. It
 * resumes by itself when the path to the service drops. */
typedef struct berth_reader berth_reader;
berth_reader *berth_content_reader(berth_client *c, const char *ns, const char *digest, int64_t offset,
				   berth_error *err);
/* Fills buf with up to len bytes; returns the count, 0 at the end, -1 on error. */
int64_t berth_reader_read(berth_reader *r, void *buf, size_t len, berth_error *err);
void berth_reader_free(berth_reader **r);

/* Supplies ingest data: fills buf with up to len bytes, returns the count, 0 at the end, -1 on error. */
typedef int64_t (*berth_source_fn)(void *arg, void *buf, size_t len);
/* Optional: positions the source at offset (to resume); return -1 if it cannot
 * (the library then reads and discards up to offset). */
typedef int (*berth_seek_fn)(void *arg, int64_t offset);
/* Called as bytes are stored. */
typedef void (*berth_progress_fn)(void *arg, int64_t offset, int64_t total);

typedef struct berth_ingest_opts {
	const char *ref;             /* names the ingest; required */
	const char *expected_digest; /* checked at commit; NULL: none */
	int64_t expected_size;       /* checked at commit; 0: unknown */
	const berth_label *labels;   /* applied at commit */
	size_t n_labels;
	berth_source_fn source;
	berth_seek_fn seek;          /* may be NULL */
	void *arg;
	berth_progress_fn progress;  /* may be NULL */
	void *progress_arg;
	int64_t retry_ms;            /* keep retrying a lost path this long; 0: 60 s, <0: never */
} berth_ingest_opts;

/* Writes a blob through an ingest: resumes an ingest of the same ref where it
 * stopped, retries when the path to the service drops, commits, and returns
 * the committed digest. */
int berth_content_ingest(berth_client *c, const char *ns, const berth_ingest_opts *o, char digest_out[72],
			 berth_error *err);
int berth_content_status(berth_client *c, const char *ns, const char *ref, berth_ingest_status *out,
			 berth_error *err);
int berth_content_list_statuses(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
				berth_ingest_status **out, size_t *n_out, berth_error *err);
int berth_content_abort(berth_client *c, const char *ns, const char *ref, berth_error *err);

/* --- snapshots ------------------------------------------------------------- */
/* Every call names the snapshotter (NULL or "": the gateway's default, or
 * whichever one answers at a snapshotter's own socket). Keys and names are
 * 1-1024 bytes of UTF-8 without control characters, "..", or empty '/'
 * segments. */
enum berth_snapshot_kind {
	BERTH_SNAPSHOT_UNKNOWN = 0,
	BERTH_SNAPSHOT_VIEW = 1,      /* read-only, made by View */
	BERTH_SNAPSHOT_ACTIVE = 2,    /* writable, made by Prepare */
	BERTH_SNAPSHOT_COMMITTED = 3, /* immutable; the only kind that can be a parent */
};

/* A mount to perform: `mount -t type -o options source target`. */
typedef struct berth_mount {
	char *type;
	char *source;
	char *target; /* below the mount target; "" for the target itself */
	size_t n_options;
	char **options;
} berth_mount;

typedef struct berth_snapshot_info {
	char *name;   /* key (active, view) or name (committed) */
	char *parent; /* "" when none */
	int kind;     /* enum berth_snapshot_kind */
	int64_t created_at; /* ns since the epoch */
	int64_t updated_at;
	size_t n_labels;
	berth_label *labels;
} berth_snapshot_info;

typedef struct berth_snapshot_usage {
	int64_t size;   /* bytes allocated by the snapshot's own layer */
	int64_t inodes;
} berth_snapshot_usage;

/* "active", "view", "committed" or "unknown". */
const char *berth_snapshot_kind_name(int kind);
void berth_mounts_free(berth_mount *v, size_t n);
void berth_snapshot_info_clear(berth_snapshot_info *i);
void berth_snapshot_infos_free(berth_snapshot_info *v, size_t n);

/* Makes the active snapshot key on parent (NULL: none); *mounts (may be
 * NULL when not wanted) receives what to mount to use it. */
int berth_snapshot_prepare(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			   const char *parent, const berth_label *labels, size_t n_labels, berth_mount **mounts,
			   size_t *n_mounts, berth_error *err);
/* Makes the read-only view key of parent. */
int berth_snapshot_view(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			const char *parent, const berth_label *labels, size_t n_labels, berth_mount **mounts,
			size_t *n_mounts, berth_error *err);
/* The mounts of an active snapshot or a view. */
int berth_snapshot_mounts(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			  berth_mount **mounts, size_t *n_mounts, berth_error *err);
/* Commits the active snapshot key as name (key is gone afterwards). */
int berth_snapshot_commit(berth_client *c, const char *ns, const char *snapshotter, const char *name,
			  const char *key, const berth_label *labels, size_t n_labels, berth_error *err);
/* Removes a snapshot that is no other's parent. */
int berth_snapshot_remove(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			  berth_error *err);
int berth_snapshot_stat(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			berth_snapshot_info *out, berth_error *err);
/* Sets labels per mask ("labels", "labels.KEY"; none: replace all). out may be NULL. */
int berth_snapshot_update(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			  const berth_label *labels, size_t n_labels, const char *const *mask, size_t n_mask,
			  berth_snapshot_info *out, berth_error *err);
/* filters: containerd's syntax (fields name, parent, kind, labels.KEY); NULL/0 for all. */
int berth_snapshot_list(berth_client *c, const char *ns, const char *snapshotter, const char *const *filters,
			size_t n_filters, berth_snapshot_info **out, size_t *n_out, berth_error *err);
int berth_snapshot_get_usage(berth_client *c, const char *ns, const char *snapshotter, const char *key,
			 berth_snapshot_usage *out, berth_error *err);
/* Removes directories no snapshot owns; *removed (may be NULL) counts them. */
int berth_snapshot_cleanup(berth_client *c, const char *ns, const char *snapshotter, int64_t *removed,
			   berth_error *err);

/* Mounts mounts[0..n) onto target, in this process's mount namespace (root
 * only); overlays too long for one page are handled. On failure nothing
 * stays mounted. */
int berth_mount_all(const berth_mount *mounts, size_t n, const char *target, berth_error *err);
/* Unmounts everything mounted at target (retrying a busy target briefly;
 * never lazily). */
int berth_unmount(const char *target, berth_error *err);


/* --- garbage collection ---------------------------------------------------- */
/* One object a collection removed (or would remove). */
typedef struct berth_gc_removed {
	char kind[16];      /* "content" or "snapshot" */
	char *id;           /* digest or snapshot key */
	char *snapshotter;  /* "" for content */
	int64_t size;       /* a blob's size; a snapshot's own usage */
} berth_gc_removed;

typedef struct berth_gc_report {
	berth_gc_removed *removed;
	size_t n_removed;
	int64_t content_bytes, snapshot_bytes;
	int64_t kept_content, kept_snapshots;
	int64_t duration_us;
} berth_gc_report;

void berth_gc_report_clear(berth_gc_report *r);
/* Collects the namespace's garbage (docs/gc.md): content and snapshots that
 * no image, container or gc.root reaches.  dry_run: only report.
 * UNAVAILABLE while the image service transfers into the namespace. */
int berth_gc_collect(berth_client *c, const char *ns, bool dry_run, berth_gc_report *out, berth_error *err);

/* --- leases ---------------------------------------------------------------- */
/* A lease holds resources against garbage collection (docs/gc.md). */
typedef struct berth_lease {
	char *id;
	int64_t created_at;
	int64_t expires_at; /* 0: never */
	size_t n_labels;
	berth_label *labels;
} berth_lease;

/* type: "content" (id: digest), "ingests" (id: ref), "images" (id: name),
 * "snapshots/<snapshotter>" (id: key). */
typedef struct berth_lease_resource {
	char *type;
	char *id;
} berth_lease_resource;

void berth_lease_clear(berth_lease *l);
void berth_leases_free(berth_lease *v, size_t n);
void berth_lease_resources_free(berth_lease_resource *v, size_t n);
/* id NULL or "": a random one.  expire_after_ms 0: none.  out may be NULL. */
int berth_lease_create(berth_client *c, const char *ns, const char *id, const berth_label *labels, size_t n_labels,
		       int64_t expire_after_ms, berth_lease *out, berth_error *err);
/* filters on id, labels.KEY; NULL/0 for all. */
int berth_lease_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		     berth_lease **out, size_t *n_out, berth_error *err);
/* sync: a collection of the namespace runs before the answer. */
int berth_lease_delete(berth_client *c, const char *ns, const char *id, bool sync, berth_error *err);
int berth_lease_add_resource(berth_client *c, const char *ns, const char *id, const char *type, const char *rid,
			     berth_error *err);
int berth_lease_delete_resource(berth_client *c, const char *ns, const char *id, const char *type, const char *rid,
				berth_error *err);
int berth_lease_list_resources(berth_client *c, const char *ns, const char *id, berth_lease_resource **out,
			       size_t *n_out, berth_error *err);

/* --- namespaces ------------------------------------------------------------ */
/* The gateway's registry.  A namespace also comes into being by its first
 * write in any service. */
typedef struct berth_namespace {
	char *name;
	berth_label *labels;
	size_t n_labels;
} berth_namespace;

void berth_namespace_clear(berth_namespace *n);
void berth_namespaces_free(berth_namespace *v, size_t n);
int berth_namespace_get(berth_client *c, const char *name, berth_namespace *out, berth_error *err);
/* filters on name and labels.KEY; NULL/0 for all.  Sorted by name. */
int berth_namespace_list(berth_client *c, const char *const *filters, size_t n_filters, berth_namespace **out,
			 size_t *n_out, berth_error *err);
/* ALREADY_EXISTS when it exists. out may be NULL. */
int berth_namespace_create(berth_client *c, const char *name, const berth_label *labels, size_t n_labels,
			   berth_namespace *out, berth_error *err);
/* mask: "labels", "labels.KEY"; none: replace all labels. out may be NULL. */
int berth_namespace_update(berth_client *c, const char *name, const berth_label *labels, size_t n_labels,
			   const char *const *mask, size_t n_mask, berth_namespace *out, berth_error *err);
/* FAILED_PRECONDITION naming what remains while any service holds anything in it. */
int berth_namespace_delete(berth_client *c, const char *name, berth_error *err);

/* --- events ---------------------------------------------------------------- */
typedef struct berth_event {
	int64_t timestamp;        /* ns since the epoch */
	const char *namespace_;
	const char *topic;        /* "/images/create", "/tasks/exit", … */
	const char *source;       /* the daemon that published it */
	const berth_label *fields; /* name, digest, key, id, exit_status, … */
	size_t n_fields;
	uint64_t dropped;         /* events missed just before this one (a slow reader) */
} berth_event;

typedef struct berth_subscribe_opts {
	const char *const *filters; /* on topic, namespace, source, fields.KEY; any may match */
	size_t n_filters;
	bool all_namespaces;        /* every namespace the caller may see */
	/* Called per event (borrowed); return non-zero to end the subscription. */
	int (*each)(void *arg, const berth_event *ev);
	void *arg;
} berth_subscribe_opts;

/* Streams events of ns (NULL: the client's default) until each returns non-zero. */
int berth_events_subscribe(berth_client *c, const char *ns, const berth_subscribe_opts *o, berth_error *err);

/* --- images -------------------------------------------------------------- */
typedef struct berth_descriptor {
	char *media_type;
	char digest[72];
	int64_t size;
	size_t n_annotations;
	berth_label *annotations;
} berth_descriptor;

typedef struct berth_image {
	char *name; /* "docker.io/library/busybox:latest" or any name chosen */
	size_t n_labels;
	berth_label *labels;
	berth_descriptor target; /* a manifest or an index */
	int64_t created_at;      /* ns since the epoch */
	int64_t updated_at;
} berth_image;

void berth_descriptor_clear(berth_descriptor *d);
void berth_image_clear(berth_image *i);
void berth_images_free(berth_image *v, size_t n);

int berth_image_get(berth_client *c, const char *ns, const char *name, berth_image *out, berth_error *err);
/* filters on name, target.digest, target.media_type, labels.KEY; NULL/0 for all. */
int berth_image_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		     berth_image **out, size_t *n_out, berth_error *err);
/* ALREADY_EXISTS when the name is taken. out may be NULL. */
int berth_image_create(berth_client *c, const char *ns, const berth_image *img, berth_image *out, berth_error *err);
/* mask: "labels", "labels.KEY", "target"; none: labels and target. out may be NULL. */
int berth_image_update(berth_client *c, const char *ns, const berth_image *img, const char *const *mask,
		       size_t n_mask, berth_image *out, berth_error *err);
int berth_image_delete(berth_client *c, const char *ns, const char *name, berth_error *err);

/* Where one blob of a transfer stands. */
typedef struct berth_progress {
	const char *kind;  /* "index", "manifest", "config", "layer" */
	const berth_descriptor *desc;
	const char *state; /* waiting, downloading, exists, unpacking, unpacked, done, uploading, mounted, error */
	int64_t offset;
	int64_t total;
	const char *message;
} berth_progress;
/* Called with the entries that changed since the last call (borrowed). */
typedef void (*berth_progress_fn_t)(void *arg, const berth_progress *items, size_t n);

typedef struct berth_pull_opts {
	const char *ref;         /* "busybox", "registry:5000/app:v1", "…@sha256:…" */
	const char *platform;    /* "os/arch[/variant]"; NULL: the host's */
	const char *snapshotter; /* NULL: the default */
	bool unpack;
	bool plain_http;
	const char *user; /* "user:password" or NULL */
	const berth_label *labels;
	size_t n_labels;
	berth_progress_fn_t progress;
	void *arg;
	const char *lease; /* NULL: none; else holds what the pull stores or reuses */
} berth_pull_opts;

/* Pulls into the content store (and unpacks); out (may be NULL) gets the record.
 * The transfer goes on in the service if the caller stops waiting. */
int berth_image_pull(berth_client *c, const char *ns, const berth_pull_opts *o, berth_image *out, berth_error *err);

typedef struct berth_push_opts {
	const char *name;     /* local image */
	const char *ref;      /* where to; NULL: the image's name */
	const char *platform; /* NULL: everything stored */
	bool plain_http;
	const char *user;
	berth_progress_fn_t progress;
	void *arg;
} berth_push_opts;

int berth_image_push(berth_client *c, const char *ns, const berth_push_opts *o, char digest_out[72],
		     berth_error *err);
/* What an image holds in the content store, for one platform. */
typedef struct berth_image_report {
	char **platforms;     /* every platform the image names (NULL-terminated) */
	int64_t size;         /* bytes of the index, manifest, config and layers for the platform */
	int64_t present_size; /* of which stored */
	int blobs;            /* blobs for the platform */
	int present;          /* of which stored */
	bool complete;        /* all of them stored */
} berth_image_report;

/* platform NULL: the host's. */
int berth_image_inspect(berth_client *c, const char *ns, const berth_image *img, const char *platform,
			berth_image_report *out, berth_error *err);
void berth_image_report_clear(berth_image_report *r);
/* 1 when the image's layers for platform are unpacked in snapshotter (chain
 * gets the top chain ID), 0 when not, -1 on error. */
int berth_image_unpacked(berth_client *c, const char *ns, const berth_image *img, const char *platform,
			 const char *snapshotter, char chain[72], berth_error *err);

typedef struct berth_export_opts {
	const char *const *names; /* images to export */
	size_t n_names;
	const char *platform;     /* the platform whose blobs go in (NULL: the host's) … */
	bool all_platforms;       /* … or every platform of an index (all must be stored) */
	berth_sink_fn sink;       /* receives the archive, in order */
	void *arg;
} berth_export_opts;

/* Writes an OCI layout archive (with Docker's manifest.json) of images,
 * streaming blobs from the content store. */
int berth_image_export(berth_client *c, const char *ns, const berth_export_opts *o, berth_error *err);

typedef struct berth_import_opts {
	berth_source_fn source;   /* the archive (tar, or tar compressed with gzip, zstd or xz), in order */
	void *arg;
	const char *base_name;    /* names images the archive names only by a tag, or not at all */
	const char *platform;     /* the platform that must be complete (NULL: the host's) … */
	bool all_platforms;       /* … or every platform of an index */
	const berth_label *labels; /* set on every image */
	size_t n_labels;
	berth_progress_fn_t progress; /* one entry per blob as it is stored (may be NULL) */
	void *progress_arg;
} berth_import_opts;

/* Reads an OCI layout archive or a `docker save` archive as a stream: blobs go
 * into the content store as they pass; once all of it is read and every image
 * is complete, the images are created (or re-pointed, when the name exists).
 * out gets the records (free with berth_images_free). */
int berth_image_import(berth_client *c, const char *ns, const berth_import_opts *o, berth_image **out,
		       size_t *n_out, berth_error *err);

/* Unpacks a stored image into a snapshotter; chain_out gets the top chain ID. */
int berth_image_unpack(berth_client *c, const char *ns, const char *name, const char *platform,
		       const char *snapshotter, berth_progress_fn_t progress, void *arg, char chain_out[72],
		       berth_error *err);

/* --- OCI runtime spec ------------------------------------------------------ */
/* What a container's OCI runtime spec (config.json) is built from, besides
 * the image's config.  Every field may be left zero. */
typedef struct berth_spec_opts {
	const char *image;            /* the image (berth_spec_generate only) */
	const char *platform;         /* "os/arch[/variant]"; NULL: the host's */
	const char *id;               /* container id: the hostname and cgroupsPath "/NS/ID"; NULL: neither */
	const char *hostname;         /* NULL: the id */
	const char *const *args;      /* replace the image's Cmd (its Entrypoint stays); none: Cmd */
	size_t n_args;
	const char *const *env;       /* after the image's Env: "K=V" sets or replaces K, "K" removes it */
	size_t n_env;
	const char *cwd;              /* absolute; NULL: the image's WorkingDir, else "/" */
	const char *user;             /* "uid", "uid:gid", "name", "name:group", "uid:group", "name:gid";
				       * NULL: the image's User, else root */
	const char *rootfs;           /* the image's root file system, mounted: user and group names and
				       * supplementary groups are read from its /etc/passwd and /etc/group,
				       * every path resolved inside it; NULL: numeric ids only, taken as given */
	const char *const *mounts;    /* extra mounts, ctr's syntax: "type=bind,src=/a,dst=/b,options=rbind:ro" */
	size_t n_mounts;
	bool net_host;                /* the host's network namespace, /etc/hosts and /etc/resolv.conf */
	bool privileged;              /* every capability the host can grant, host devices, no masked or
				       * read-only paths, no seccomp */
	bool tty;                     /* process.terminal (and TERM=xterm unless set) */
	const char *seccomp_profile;  /* a JSON file in linux.seccomp's format replacing the default profile */
	const berth_label *annotations; /* the spec's annotations */
	size_t n_annotations;
} berth_spec_opts;

/* The OCI runtime spec of a container of o->image as containerd builds it
 * (image config, then the default Linux spec, then o), as JSON in *json_out
 * (caller frees).  Capabilities are limited to the host's bounding set; the
 * default seccomp profile names only syscalls the host's libseccomp knows.
 * ns: NULL for the client's default (it names the cgroupsPath too). */
int berth_spec_generate(berth_client *c, const char *ns, const berth_spec_opts *o, char **json_out,
			berth_error *err);
/* The same from an image config document already read (o->image unused);
 * needs no daemon. */
int berth_spec_from_config(const char *ns, const char *config_json, size_t len, const berth_spec_opts *o,
			   char **json_out, berth_error *err);
/* The config document of image for platform (NULL: the host's), read from
 * the content store: *json_out (caller frees, NUL-terminated) and *len. */
int berth_image_config(berth_client *c, const char *ns, const char *image, const char *platform,
		       char **json_out, size_t *len, berth_error *err);
/* The same for an image record the caller has already read. */
int berth_image_config_of(berth_client *c, const char *ns, const berth_image *img, const char *platform,
			  char **json_out, size_t *len, berth_error *err);
/* The labels of an image config (config.Labels) a container takes on, those
 * with reserved prefixes left out; free with berth_spec_labels_free. */
int berth_spec_image_labels(const char *config_json, size_t len, berth_label **out, size_t *n_out,
			    berth_error *err);
void berth_spec_labels_free(berth_label *l, size_t n);

/* --- containers and tasks ------------------------------------------------ */
/* A container: what to run (an OCI runtime spec, JSON), on which root
 * filesystem (an active snapshot), with which runtime. */
typedef struct berth_container {
	char *id;
	char *image;          /* informational */
	char *spec;           /* OCI runtime spec, JSON */
	char *snapshotter;    /* "" : the default */
	char *snapshot_key;
	char *runtime;        /* "runc" (default) or "crun" */
	char *runtime_binary; /* "" : the runtime's name in PATH */
	char *runtime_root;   /* "" : the service's default */
	size_t n_labels;
	berth_label *labels;
	int64_t created_at; /* ns since the epoch */
	int64_t updated_at;
} berth_container;

void berth_container_clear(berth_container *c);
void berth_containers_free(berth_container *v, size_t n);
int berth_container_get(berth_client *c, const char *ns, const char *id, berth_container *out, berth_error *err);
/* filters on id, image, snapshotter, snapshot_key, runtime.name, labels.KEY; NULL/0 for all. */
int berth_container_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
			 berth_container **out, size_t *n_out, berth_error *err);
/* ALREADY_EXISTS when the id is taken; INVALID_ARGUMENT for a spec that is not JSON. out may be NULL. */
int berth_container_create(berth_client *c, const char *ns, const berth_container *in, berth_container *out,
			   berth_error *err);
/* mask: "labels", "labels.KEY", "image", "spec", "snapshotter", "snapshot_key", "runtime"; none: all. */
int berth_container_update(berth_client *c, const char *ns, const berth_container *in, const char *const *mask,
			   size_t n_mask, berth_container *out, berth_error *err);
/* FAILED_PRECONDITION while the container has a task. */
int berth_container_delete(berth_client *c, const char *ns, const char *id, berth_error *err);

enum berth_task_status {
	BERTH_TASK_UNKNOWN = 0,
	BERTH_TASK_CREATED = 1,
	BERTH_TASK_RUNNING = 2,
	BERTH_TASK_PAUSED = 3,
	BERTH_TASK_STOPPED = 4,
};
/* "created", "running", "paused", "stopped" or "unknown". */
const char *berth_task_status_name(int status);

/* Stdio of a process: paths of FIFOs (or files, devices) the caller made;
 * NULL or "" is /dev/null.  With terminal, output comes on out only. */
typedef struct berth_stdio {
	const char *in, *out, *err;
	bool terminal;
} berth_stdio;

typedef struct berth_process {
	char *container_id;
	char *exec_id; /* "" for the task's init process */
	int status;    /* enum berth_task_status */
	uint32_t pid;
	uint32_t exit_status; /* when stopped: the code, or 128 + signal */
	int64_t exited_at;
	bool terminal;
	char *in, *out, *err;
	char *reason; /* why, when the shim could not say ("" normally) */
} berth_process;

void berth_process_clear(berth_process *p);
void berth_processes_free(berth_process *v, size_t n);

/* Creates the task of container id (its root filesystem mounted, its shim
 * started, the process created but not started). */
int berth_task_create(berth_client *c, const char *ns, const char *id, const berth_stdio *io, uint32_t *pid,
		      berth_error *err);
/* Starts the task (exec_id NULL) or an exec. */
int berth_task_start(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t *pid,
		     berth_error *err);
/* Deletes a stopped task (everything of it goes) or exec; returns its exit. */
int berth_task_delete(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t *exit_status,
		      int64_t *exited_at, berth_error *err);
int berth_task_get(berth_client *c, const char *ns, const char *id, const char *exec_id, berth_process *out,
		   berth_error *err);
/* filters on container_id, status, pid. */
int berth_task_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		    berth_process **out, size_t *n_out, berth_error *err);
/* signal 0: SIGTERM; all: every process of the container. */
int berth_task_kill(berth_client *c, const char *ns, const char *id, const char *exec_id, int signal, bool all,
		    berth_error *err);
/* Registers an exec: process_json is an OCI "process" object. */
int berth_task_exec(berth_client *c, const char *ns, const char *id, const char *exec_id, const char *process_json,
		    const berth_stdio *io, berth_error *err);
int berth_task_resize(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t width,
		      uint32_t height, berth_error *err);
/* The process's stdin reaches EOF once what was written is read. */
int berth_task_close_stdin(berth_client *c, const char *ns, const char *id, const char *exec_id, berth_error *err);
int berth_task_pause(berth_client *c, const char *ns, const char *id, berth_error *err);
int berth_task_resume(berth_client *c, const char *ns, const char *id, berth_error *err);

typedef struct berth_pid_info {
	uint32_t pid;
	char *exec_id; /* "" for init and processes it started */
} berth_pid_info;
void berth_pid_infos_free(berth_pid_info *v, size_t n);
int berth_task_pids(berth_client *c, const char *ns, const char *id, berth_pid_info **out, size_t *n_out,
		    berth_error *err);
/* resources_json: an OCI LinuxResources object. */
int berth_task_update(berth_client *c, const char *ns, const char *id, const char *resources_json,
		      berth_error *err);

typedef struct berth_task_metrics {
	int cgroup_version;
	uint64_t cpu_usage_ns, cpu_user_ns, cpu_system_ns;
	uint64_t memory_usage, memory_limit; /* limit 0: none */
	uint64_t pids_current, pids_limit;
	char freezer_state[16]; /* THAWED, FREEZING, FROZEN */
	char cgroup[512];
} berth_task_metrics;
int berth_task_metrics_get(berth_client *c, const char *ns, const char *id, berth_task_metrics *out,
			   berth_error *err);
/* Blocks (no deadline) until the process exits. */
int berth_task_wait(berth_client *c, const char *ns, const char *id, const char *exec_id, uint32_t *exit_status,
		    int64_t *exited_at, berth_error *err);

#ifdef __cplusplus
}
#endif

#endif
