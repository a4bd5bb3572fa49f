/*
 * image_hosts — how to reach a registry: the endpoints to try for a
 * reference's domain (containerd's hosts.toml, Docker's certs.d), the
 * credentials to present (Docker's config.json, berth's own list), and the
 * parsing of what a registry asks for (WWW-Authenticate challenges, token
 * answers).
 *
 * Host directories.  For a domain D under the configuration root (berth's
 * default is /etc/berth/certs.d; the caller passes it), the first of these
 * directories that exists is used, exactly as containerd does on Linux
 * (core/remotes/docker/config/config_unix.go, hostPaths): "D_PORT_" when D
 * has a port (containerd's hostDirectory() turns "host:5000" into
 * "host_5000_"), then "D" itself ("host:5000" as written: ':' is allowed in
 * Linux file names), then "_default".  The "host_port_" form without ':' is
 * the Windows spelling containerd also accepts everywhere.  In the
 * directory, hosts.toml is read if present; otherwise Docker's convention
 * applies to the registry's own server: "*.crt" files are CA certificates,
 * "X.cert" with "X.key" a client certificate and key.
 *
 * hosts.toml (containerd's format):
 *
 *   server = "https://registry.example"      # default: the domain itself
 *   capabilities = ["pull", "resolve", "push"]
 *   ca = "ca.pem"                            # or ["a.pem", "b.pem"]; relative to the directory
 *   client = [["cert.pem", "key.pem"]]       # or "both.pem", or ["both.pem"]
 *   skip_verify = false
 *   override_path = false                    # true: the URL's path is the API root (no "/v2" added)
 *   dial_timeout = "5s"
 *   [header]
 *     x-custom = "value"                     # or ["v1", "v2"]
 *   [host."https://mirror.example"]          # mirrors, tried in file order before the server
 *     capabilities = ["pull", "resolve"]
 *     …same keys…
 *
 * A URL without a scheme gets https://; http:// means plain HTTP.  An http
 * URL that also carries TLS settings (ca, client, skip_verify) on a port
 * other than 80 is tried with TLS first and plain HTTP if the handshake
 * fails, as containerd does.  Without configuration, "localhost" and
 * loopback addresses with a port other than 443 (and 80) are tried with TLS
 * without verification first, then plain HTTP; docker.io is served by
 * registry-1.docker.io.  The caller's plain_http flag (ctr --plain-http)
 * makes the default server plain HTTP; an explicit "https://" in hosts.toml
 * still wins.  A malformed hosts.toml is an error naming the file (berth
 * does not fall back to defaults, which could send credentials elsewhere).
 *
 * Everything here is plain data and pure functions; thread-safe.
 */
#ifndef IMAGE_HOSTS_H
#define IMAGE_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_err.h"

#define IMG_CAP_PULL 1u
#define IMG_CAP_RESOLVE 2u
#define IMG_CAP_PUSH 4u
#define IMG_CAP_ALL (IMG_CAP_PULL | IMG_CAP_RESOLVE | IMG_CAP_PUSH)

/* One place to send requests to. */
typedef struct img_endpoint {
	char *scheme;          /* "https" or "http" */
	char *host;            /* "mirror.example:5000", "[::1]:5000" */
	char *path;            /* API root: "/v2" (or the URL's path with override_path) */
	unsigned caps;         /* IMG_CAP_* */
	bool is_server;        /* the last entry: the registry's own server */
	bool proxy;            /* a host other than the reference's domain: requests add ?ns=<domain> */
	bool http_fallback;    /* TLS first; plain HTTP when the TLS handshake fails */
	bool skip_verify;      /* no verification of the server's certificate */
	char **ca_files;       /* extra CA files (absolute), NULL-terminated, or NULL: system CAs only */
	char *client_cert;     /* client certificate file, or NULL; curl takes one pair: the first */
	char *client_key;      /* its key file, or NULL when the certificate file holds the key */
	char **headers;        /* "Name: value" lines sent with every request, NULL-terminated, or NULL */
	int64_t dial_timeout_ms; /* 0: the registry's default */
} img_endpoint;

/* The endpoints of a domain, in the order to try them; the server is last. */
typedef struct img_hosts {
	img_endpoint *v;
	size_t n;
	char *source;          /* the hosts.toml or directory used, "" for built-in defaults */
} img_hosts;

/* Loads the endpoints of domain (a reference's domain, "docker.io", "host:5000") from the configuration
 * root dir (NULL or a missing directory: defaults).  Reads files on the calling thread.  *out is owned
 * by the caller (img_hosts_clear).  Errors: INVALID_ARGUMENT for a malformed hosts.toml or a bad
 * domain, naming the file and the key. */
int img_hosts_load(const char *dir, const char *domain, bool plain_http, img_hosts *out, bt_err *e);
void img_hosts_clear(img_hosts *h);

/* true for "localhost", "127.x.y.z", "::1" and "[::1]", with or without a port. */
bool img_host_is_local(const char *host);

/* ---- credentials --------------------------------------------------------------------------- */

typedef struct img_cred {
	char *host;            /* normalized key: "docker.io", "registry.example:5000" */
	char *username;
	char *password;
	char *identity_token;  /* OAuth refresh token ("identitytoken" in config.json), or NULL */
} img_cred;

typedef struct img_creds {
	img_cred *v;
	size_t n;
} img_creds;

/* Normalizes a credentials key or a host: scheme and path dropped, lower case, and
 * "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/" all become "docker.io".
 * Caller frees. */
char *img_creds_key(const char *host_or_url);
/* Appends a copy (host normalized).  Earlier entries win on lookup. */
void img_creds_add(img_creds *c, const char *host, const char *username, const char *password,
		   const char *identity_token);
/* Appends the "auths" of a Docker config.json: each entry's base64 "auth" ("user:password") or its
 * "username"/"password", and "identitytoken".  path NULL: $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json.  A missing file is not an error; a malformed one is INVALID_ARGUMENT
 * (RESOURCE_EXHAUSTED over 1 MiB).  credsStore and credHelpers are not supported (ignored). */
int img_creds_load_docker(img_creds *c, const char *path, bt_err *e);
/* The credentials for host ("registry-1.docker.io" finds "docker.io"), or NULL.  Borrowed. */
const img_cred *img_creds_find(const img_creds *c, const char *host);
void img_creds_clear(img_creds *c);

/* "Basic <base64(user:password)>" for an Authorization header; caller frees. */
char *img_basic_auth(const char *username, const char *password);
/* Standard base64 of n bytes; caller frees. */
char *img_base64(const void *p, size_t n);

/* ---- what a registry asks for -------------------------------------------------------------- */

typedef enum { IMG_AUTH_NONE, IMG_AUTH_BASIC, IMG_AUTH_BEARER } img_auth_scheme;

typedef struct img_challenge {
	img_auth_scheme scheme;
	char *realm;           /* Bearer: the token server URL; Basic: informational */
	char *service;         /* or NULL */
	char *scope;           /* space-separated scopes the server asked for, or NULL */
	char *error;           /* "insufficient_scope", "invalid_token", … or NULL */
} img_challenge;

/* Parses a WWW-Authenticate value (RFC 7235: several challenges, quoted strings with escapes) and
 * keeps the one berth can answer: Bearer (which needs a realm) over Basic.  NOT_FOUND when none
 * is usable, INVALID_ARGUMENT when malformed.  *out owned by the caller (img_challenge_clear). */
int img_challenge_parse(const char *value, img_challenge *out, bt_err *e);
void img_challenge_clear(img_challenge *c);

/* A token server's JSON answer: "token" or else "access_token"; "expires_in" seconds (60 when absent
 * or not positive, as the distribution spec says).  *token owned by the caller.  INVALID_ARGUMENT
 * when malformed or without a token. */
int img_token_parse(const char *json, size_t len, char **token, int64_t *expires_in_s, bt_err *e);

#endif
