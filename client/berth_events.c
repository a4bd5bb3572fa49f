/*
 * berth_events — the events API of libberth: a subscription that delivers
 * each event to a callback until the callback or the caller stops it.
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/events/v1/events.pb-c.h"
#include "berth_internal.h"
#include "bt_util.h"

int berth_events_subscribe(berth_client *c, const char *ns, const berth_subscribe_opts *o, berth_error *err)
{
	Berth__Events__V1__SubscribeRequest req = BERTH__EVENTS__V1__SUBSCRIBE_REQUEST__INIT;
	bt_callspec cs = berth_spec(c, "events", "Subscribe", ns);
	bt_stream *s;
	bt_err e = { 0 };
	int rc;

	req.filters = (char **)o->filters;
	req.n_filters = o->n_filters;
	req.all_namespaces = o->all_namespaces;
	cs.timeout_ms = -1;
	s = bt_conn_stream(c->conn, &cs, &req.base, &berth__events__v1__envelope__descriptor, &e);
	if (!s)
		return berth_fail(err, &e);
	for (;;) {
		Berth__Events__V1__Envelope *m = NULL;
		rc = bt_stream_next(s, (void **)&m, &e);
		if (rc <= 0)
			break;
		berth_event ev = {
			.timestamp = m->timestamp,
			.namespace_ = m->namespace_,
			.topic = m->topic,
			.source = m->source,
			.n_fields = m->n_fields,
			.dropped = m->dropped,
		};
		berth_label *f = bt_xcalloc(m->n_fields ? m->n_fields : 1, sizeof(*f));
		for (size_t i = 0; i < m->n_fields; i++) {
			f[i].key = m->fields[i]->key;
			f[i].value = m->fields[i]->value;
		}
		ev.fields = f;
		int stop = o->each(o->arg, &ev);
		free(f);
		protobuf_c_message_free_unpacked(&m->base, NULL);
		if (stop) {
			rc = 0;
			break;
		}
	}
	bt_stream_free(&s);
	return rc < 0 ? berth_fail(err, &e) : 0;
}
