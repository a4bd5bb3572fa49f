/*
 * berth-gatewayd — the public door of the suite.
 *
 * Wires: configuration; the gateway's own services (system) on an inproc
 * server run by a thread; a route per backend service; then the forwarding
 * loop on the public socket until told to stop.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "berth/content/v1/content.pb-c.h"
#include "berth/events/v1/events.pb-c.h"
#include "berth/gc/v1/gc.pb-c.h"
#include "berth/leases/v1/leases.pb-c.h"
#include "berth/images/v1/images.pb-c.h"
#include "berth/namespaces/v1/namespaces.pb-c.h"
#include "berth/snapshots/v1/snapshots.pb-c.h"
#include "berth/system/v1/system.pb-c.h"
#include "berth/tasks/v1/tasks.pb-c.h"
#include "bt_config.h"
#include "bt_daemon.h"
#include "bt_log.h"
#include "bt_util.h"
#include "bt_keys.h"
#include "bt_events.h"
#include "gw_auth.h"
#include "gw_events.h"
#include "gw_gc.h"
#include "gw_leases.h"
#include "gw_ns.h"
#include "gw_proxy.h"
#include "gw_system.h"

#define LOCAL_ENDPOINT "inproc://berth-gateway-local"

/* The backend services the gateway routes to, by wire name, and the
 * configured service whose address serves them (NULL: the same name). */
static const struct {
	const char *service;
	const ProtobufCServiceDescriptor *desc;
	const char *daemon_service;
} backends[] = {
	{ "content", &berth__content__v1__content__descriptor, NULL },
	{ "images", &berth__images__v1__images__descriptor, NULL },
	/* berth-taskd serves both */
	{ "containers", &berth__tasks__v1__containers__descriptor, "tasks" },
	{ "tasks", &berth__tasks__v1__tasks__descriptor, "tasks" },
};

static void *local_main(void *arg)
{
	bt_err e;
	if (bt_server_run(arg, &e) < 0)
		bt_log_err("local services: %s", e.msg);
	return NULL;
}

/* The gateway's CURVE secret key: gateway.key_file, or state/server.key made
 * (with server.pub beside it, for clients) the first time. */
static int load_key(const bt_config *cfg, const char *state, char secret[BT_KEY_LEN + 1], char **path, bt_err *e)
{
	const char *conf = bt_config_str(cfg, "gateway.key_file");
	char pubkey[BT_KEY_LEN + 1];

	if (*conf)
		return bt_key_read(conf, secret, e);
	*path = bt_xasprintf("%s/server.key", state);
	if (access(*path, F_OK) != 0) {
		_cleanup_free_ char *prefix = bt_xasprintf("%s/server", state);
		if (bt_keypair_write(prefix, pubkey, e) < 0)
			return -1;
		bt_log_info("made the gateway's CURVE keypair; its public key (%s/server.pub): %s", state, pubkey);
	}
	return bt_key_read(*path, secret, e);
}

/* What the forwarding loop tells about each request naming a namespace. */
typedef struct ns_hooks {
	gw_ns *reg;
	gw_gc *gc;
} ns_hooks;

static void touch_namespace(void *arg, const char *ns, const char *method)
{
	ns_hooks *h = arg;
	gw_ns_touch(h->reg, ns, method);
	/* a deletion may leave garbage: a collection follows (when configured) */
	if (!strcmp(method, "Delete") || !strcmp(method, "Remove"))
		gw_gc_schedule(h->gc, ns);
}

/* Socket activation (berth-gatewayd.socket): the listening sockets systemd
 * passed for the public ipc endpoint and the unix stream door, 0 for one
 * it did not pass.  A socket at another path is a configuration error:
 * clients would wait on a socket nobody serves. */
static int activated_fds(const char *endpoint, const char *unix_address, int *fd, int *ufd, bt_err *e)
{
	int n = sd_listen_fds(1);
	int rc = 0;

	*fd = *ufd = 0;
	if (n < 0)
		return bt_err_errno(e, -n, "socket activation: LISTEN_FDS");
	for (int i = 0; i < n; i++) {
		int f = SD_LISTEN_FDS_START + i;
		if (rc == 0 && *fd == 0 && bt_startswith(endpoint, "ipc://") &&
		    sd_is_socket_unix(f, SOCK_STREAM, 1, endpoint + 6, 0) > 0) {
			fcntl(f, F_SETFD, FD_CLOEXEC);
			*fd = f;
			continue;
		}
		if (rc == 0 && *ufd == 0 && unix_address && sd_is_socket_unix(f, SOCK_STREAM, 1, unix_address + 7, 0) > 0) {
			fcntl(f, F_SETFD, FD_CLOEXEC);
			*ufd = f;
			continue;
		}
		if (rc == 0)
			rc = bt_err_set(e, BT_INVALID_ARGUMENT,
					"socket activation: systemd passed a socket that is not a listening unix socket "
					"at %s or %s (the public endpoints): make the socket unit's ListenStream= and "
					"gateway.address and gateway.unix_address the same",
					endpoint, unix_address ? unix_address : "(none)");
		close(f);
	}
	if (rc < 0) {
		if (*fd > 0)
			close(*fd);
		if (*ufd > 0)
			close(*ufd);
		*fd = *ufd = 0;
	}
	return rc;
}

static int proxy_run(void *arg, bt_err *e)
{
	return gw_proxy_run(arg, e);
}

static void proxy_stop(void *arg)
{
	gw_proxy_stop(arg);
}

static int64_t proxy_tick(void *arg)
{
	return gw_proxy_last_tick(arg);
}

int main(int argc, char **argv)
{
	bt_daemon_args args;
	bt_config *cfg = NULL;
	bt_server *local = NULL;
	gw_proxy *proxy = NULL;
	gw_backend_ref *refs = NULL;
	size_t nrefs = 0;
	char *addrs[BT_ARRAY_LEN(backends)] = { 0 };
	/* snapshots: one route per snapshotter, chosen by the header's name */
	bt_snapshotter_ref *sns = NULL;
	size_t nsn = 0;
	char **sn_services = NULL;
	_cleanup_free_ char *pub = NULL;
	_cleanup_free_ char *unix_pub = NULL;
	gw_system sys = { 0 };
	gw_ns *nsreg = NULL;
	gw_auth *auth = NULL;
	gw_events *events = NULL;
	gw_gc *gc = NULL;
	gw_leases *leases = NULL;
	_cleanup_free_ char *events_addr = NULL;
	char secret[BT_KEY_LEN + 1] = "";
	_cleanup_free_ char *keyfile = NULL;
	_cleanup_free_ char *state = NULL;
	bt_service svc, nssvc, evsvc, gcsvc, lssvc;
	pthread_t local_thread;
	bool local_running = false;
	bt_err e = { 0 };
	int rc;

	rc = bt_daemon_init("berth-gatewayd", "Routes client requests to the berth services.", argc, argv, &args,
			    &cfg, &e);
	if (rc != 0)
		goto out;
	nsn = bt_config_snapshotters(cfg, &sns);
	refs = bt_xcalloc(BT_ARRAY_LEN(backends) + nsn, sizeof(*refs));
	sn_services = bt_xcalloc(nsn, sizeof(char *));
	for (size_t i = 0; i < BT_ARRAY_LEN(backends); i++) {
		addrs[i] = bt_config_service_address(
			cfg, backends[i].daemon_service ? backends[i].daemon_service : backends[i].service);
		refs[nrefs].service = backends[i].service;
		refs[nrefs++].address = addrs[i];
	}
	for (size_t i = 0; i < nsn; i++) {
		sn_services[i] = bt_xasprintf("snapshots/%s", sns[i].name);
		refs[nrefs].service = sn_services[i];
		refs[nrefs++].address = sns[i].address;
	}

	/* every event subscriber holds a worker of the local server */
	bt_server_opts lo = {
		.daemon = "berth-gatewayd", .endpoint = LOCAL_ENDPOINT, .no_system = true, .max_workers = 1100
	};
	local = bt_server_new(&lo, &e);
	if (!local) {
		rc = -1;
		goto out;
	}
	sys.srv = local;
	sys.backends = refs;
	sys.n_backends = nrefs;
	gw_system_service(&sys, &svc);
	if ((rc = bt_server_add(local, &svc, &e)) < 0)
		goto out;
	state = bt_config_state_dir(cfg, "gateway");
	if ((rc = gw_ns_open(state, refs, nrefs, &nsreg, &e)) < 0)
		goto out;
	gw_ns_service(nsreg, &nssvc);
	if ((rc = bt_server_add(local, &nssvc, &e)) < 0)
		goto out;
	if ((rc = gw_leases_open(state, &leases, &e)) < 0)
		goto out;
	gw_ns_set_leases(nsreg, leases);
	gc = gw_gc_new(refs, nrefs, bt_config_default_snapshotter(cfg), leases);
	gw_leases_set_gc(leases, gc);
	if ((rc = gw_gc_start(gc, bt_config_duration_ms(cfg, "gc.delay"), &e)) < 0)
		goto out;
	gw_gc_service(gc, &gcsvc);
	gw_leases_service(leases, &lssvc);
	if ((rc = bt_server_add(local, &gcsvc, &e)) < 0 || (rc = bt_server_add(local, &lssvc, &e)) < 0)
		goto out;
	events_addr = bt_events_address(cfg);
	if ((rc = gw_events_start(events_addr, (size_t)bt_config_int(cfg, "gateway.event_queue"), &events, &e)) < 0)
		goto out;
	gw_events_service(events, &evsvc);
	if ((rc = bt_server_add(local, &evsvc, &e)) < 0)
		goto out;

	const char *tcp = bt_config_str(cfg, "gateway.tcp_address");
	if (*tcp) {
		if ((rc = load_key(cfg, state, secret, &keyfile, &e)) < 0)
			goto out;
		if ((rc = gw_auth_load(bt_config_str(cfg, "gateway.authorized_keys"), &auth, &e)) < 0 ||
		    (rc = gw_auth_start(auth, &e)) < 0)
			goto out;
	}
	pub = args.address ? bt_xstrdup(args.address) : bt_config_gateway_address(cfg);
	unix_pub = bt_config_gateway_unix_address(cfg);
	if (unix_pub && !bt_startswith(unix_pub, "unix:///")) {
		rc = bt_err_set(&e, BT_INVALID_ARGUMENT, "gateway.unix_address \"%s\": not unix:///PATH or \"off\"",
				unix_pub);
		goto out;
	}
	int listen_fd = 0, unix_fd = 0;
	if ((rc = activated_fds(pub, unix_pub, &listen_fd, &unix_fd, &e)) < 0)
		goto out;
	if (listen_fd > 0)
		bt_log_info("socket activation: serving %s on the socket from systemd", pub);
	if (unix_fd > 0)
		bt_log_info("socket activation: serving %s on the socket from systemd", unix_pub);
	ns_hooks hooks = { .reg = nsreg, .gc = gc };
	unsigned long mode = strtoul(bt_config_str(cfg, "gateway.socket_mode"), NULL, 8);
	gw_proxy_opts po = {
		.public_address = pub,
		.socket_mode = (unsigned)(mode ? mode : 0660),
		.socket_group = bt_config_str(cfg, "gateway.socket_group"),
		.activated_fd = listen_fd,
		.unix_address = unix_pub,
		.unix_activated_fd = unix_fd,
		.max_in_flight = (int)bt_config_int(cfg, "gateway.max_in_flight"),
		.connect_grace_ms = bt_config_duration_ms(cfg, "gateway.connect_grace"),
		.on_namespace = touch_namespace,
		.on_namespace_arg = &hooks,
		.tcp_address = tcp,
		.secret_key = secret,
		.auth = auth,
	};
	proxy = gw_proxy_new(&po, &e);
	if (!proxy) {
		rc = -1;
		goto out;
	}
	gw_gc_set_proxy(gc, proxy);
	gw_route sysroute = { .service = "system",
			      .desc = &berth__system__v1__system__descriptor,
			      .address = LOCAL_ENDPOINT,
			      .no_namespace = true };
	if ((rc = gw_proxy_add_route(proxy, &sysroute, &e)) < 0)
		goto out;
	gw_route nsroute = { .service = "namespaces",
			     .desc = &berth__namespaces__v1__namespaces__descriptor,
			     .address = LOCAL_ENDPOINT,
			     .no_namespace = true };
	if ((rc = gw_proxy_add_route(proxy, &nsroute, &e)) < 0)
		goto out;
	gw_route evroute = { .service = "events",
			     .desc = &berth__events__v1__events__descriptor,
			     .address = LOCAL_ENDPOINT,
			     .no_namespace = true };
	if ((rc = gw_proxy_add_route(proxy, &evroute, &e)) < 0)
		goto out;
	gw_route gcroute = { .service = "gc", .desc = &berth__gc__v1__gc__descriptor, .address = LOCAL_ENDPOINT };
	gw_route lsroute = { .service = "leases",
			     .desc = &berth__leases__v1__leases__descriptor,
			     .address = LOCAL_ENDPOINT };
	if ((rc = gw_proxy_add_route(proxy, &gcroute, &e)) < 0 || (rc = gw_proxy_add_route(proxy, &lsroute, &e)) < 0)
		goto out;
	for (size_t i = 0; i < BT_ARRAY_LEN(backends); i++) {
		gw_route r = { .service = backends[i].service, .desc = backends[i].desc, .address = addrs[i] };
		if ((rc = gw_proxy_add_route(proxy, &r, &e)) < 0)
			goto out;
	}
	for (size_t i = 0; i < nsn; i++) {
		gw_route r = { .service = "snapshots",
			       .desc = &berth__snapshots__v1__snapshots__descriptor,
			       .address = sns[i].address,
			       .snapshotter = sns[i].name,
			       .is_default = strcmp(sns[i].name, bt_config_default_snapshotter(cfg)) == 0 };
		if ((rc = gw_proxy_add_route(proxy, &r, &e)) < 0)
			goto out;
	}
	if (pthread_create(&local_thread, NULL, local_main, local) != 0) {
		rc = bt_err_set(&e, BT_INTERNAL, "cannot start the local services thread");
		goto out;
	}
	local_running = true;

	bt_loop loop = { .run = proxy_run, .stop = proxy_stop, .last_tick = proxy_tick, .arg = proxy, .endpoint = pub };
	rc = bt_daemon_run_loop(&loop, "routing", &e);
out:
	if (rc < 0)
		bt_log_err("%s", e.msg);
	if (local_running) {
		bt_server_stop(local);
		pthread_join(local_thread, NULL);
	}
	/* the gc's scheduler may be fencing through the proxy: it goes first */
	gw_gc_free(&gc);
	gw_proxy_free(&proxy);
	bt_server_free(&local);
	gw_ns_free(&nsreg);
	gw_events_free(&events);
	gw_leases_free(&leases);
	gw_auth_free(&auth);
	explicit_bzero(secret, sizeof(secret));
	for (size_t i = 0; i < BT_ARRAY_LEN(backends); i++)
		free(addrs[i]);
	for (size_t i = 0; sn_services && i < nsn; i++)
		free(sn_services[i]);
	free(sn_services);
	bt_snapshotters_free(sns, nsn);
	free(refs);
	bt_config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
