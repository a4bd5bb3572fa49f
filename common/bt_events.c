/*
 * bt_events — the event publisher (see bt_events.h).
 */
#define _GNU_SOURCE
#include "bt_events.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <zmq.h>

#include "berth/events/v1/events.pb-c.h"
#include "bt_labels.h"
#include "bt_log.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"

#define MAX_FIELDS 16

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void *pub;
static char *source;

char *bt_events_address(const bt_config *cfg)
{
	return bt_config_service_address(cfg, "events");
}

void bt_events_open(const bt_config *cfg, const char *src)
{
	_cleanup_free_ char *addr = bt_events_address(cfg);
	bt_err e;
	int zero = 0, hwm = 10000;

	pthread_mutex_lock(&mu);
	if (!pub) {
		pub = bt_zmq_socket(ZMQ_PUB, &e);
		if (pub) {
			zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof(zero));
			zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof(hwm));
			if (zmq_connect(pub, addr) < 0) {
				bt_log_warn("events: connect %s: %s (no events will be published)", addr,
					    zmq_strerror(errno));
				bt_zmq_close(&pub);
			}
		} else {
			bt_log_warn("events: %s (no events will be published)", e.msg);
		}
		free(source);
		source = bt_xstrdup(src);
	}
	pthread_mutex_unlock(&mu);
}

void bt_events_close(void)
{
	pthread_mutex_lock(&mu);
	bt_zmq_close(&pub);
	free(source);
	source = NULL;
	pthread_mutex_unlock(&mu);
}

void bt_event(const char *ns, const char *topic, ...)
{
	Berth__Events__V1__Envelope env = BERTH__EVENTS__V1__ENVELOPE__INIT;
	bt_labels fields = { 0 };
	va_list ap;

	if (!pub)
		return;
	va_start(ap, topic);
	for (int i = 0; i < MAX_FIELDS; i++) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		bt_labels_set(&fields, k, v ? v : "");
	}
	va_end(ap);
	env.timestamp = bt_now_ns();
	env.namespace_ = (char *)(ns ? ns : "");
	env.topic = (char *)topic;
	env.fields = (Berth__Events__V1__Envelope__FieldsEntry **)bt_pbmap_from_labels(
		&fields, &berth__events__v1__envelope__fields_entry__descriptor, &env.n_fields);
	pthread_mutex_lock(&mu);
	if (pub) {
		env.source = source;
		bt_send_pb(pub, &env.base, ZMQ_DONTWAIT);
	}
	pthread_mutex_unlock(&mu);
	bt_pbmap_free((void **)env.fields, env.n_fields);
	bt_labels_clear(&fields);
}
