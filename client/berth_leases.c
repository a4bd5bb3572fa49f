/*
 * berth_leases — the leases API of libberth (the gateway's leases service).
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/leases/v1/leases.pb-c.h"
#include "berth_internal.h"
#include "bt_pbmap.h"
#include "bt_util.h"

void berth_lease_clear(berth_lease *l)
{
	free(l->id);
	berth_labels_free(l->labels, l->n_labels);
	memset(l, 0, sizeof(*l));
}

void berth_leases_free(berth_lease *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_lease_clear(&v[i]);
	free(v);
}

void berth_lease_resources_free(berth_lease_resource *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].type);
		free(v[i].id);
	}
	free(v);
}

static void from_pb(const Berth__Leases__V1__Lease *p, berth_lease *out)
{
	memset(out, 0, sizeof(*out));
	out->id = bt_xstrdup(p->id);
	out->created_at = p->created_at;
	out->expires_at = p->expires_at;
	out->n_labels = p->n_labels;
	out->labels = berth_labels_to_public((void *const *)p->labels, p->n_labels);
}

int berth_lease_create(berth_client *c, const char *ns, const char *id, const berth_label *labels, size_t n_labels,
		       int64_t expire_after_ms, berth_lease *out, berth_error *err)
{
	Berth__Leases__V1__CreateRequest req = BERTH__LEASES__V1__CREATE_REQUEST__INIT;
	_cleanup_pb_ Berth__Leases__V1__CreateResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "leases", "Create", ns);
	bt_labels l = { 0 };
	bt_err e;

	berth_labels_from_public(labels, n_labels, &l);
	req.id = (char *)(id ? id : "");
	req.expire_after_ms = expire_after_ms;
	req.labels = (Berth__Leases__V1__CreateRequest__LabelsEntry **)bt_pbmap_from_labels(
		&l, &berth__leases__v1__create_request__labels_entry__descriptor, &req.n_labels);
	int rc = bt_conn_call(c->conn, &cs, &req.base, &berth__leases__v1__create_response__descriptor, (void **)&resp,
			      &e);
	bt_pbmap_free((void **)req.labels, req.n_labels);
	bt_labels_clear(&l);
	if (rc == 0 && !resp->lease)
		rc = bt_err_set(&e, BT_INTERNAL, "leases.Create: reply without a lease");
	if (rc < 0)
		return berth_fail(err, &e);
	if (out)
		from_pb(resp->lease, out);
	return 0;
}

int berth_lease_list(berth_client *c, const char *ns, const char *const *filters, size_t n_filters,
		     berth_lease **out, size_t *n_out, berth_error *err)
{
	Berth__Leases__V1__ListRequest req = BERTH__LEASES__V1__LIST_REQUEST__INIT;
	_cleanup_pb_ Berth__Leases__V1__ListResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "leases", "List", ns);
	bt_err e;

	*out = NULL;
	*n_out = 0;
	req.filters = (char **)filters;
	req.n_filters = n_filters;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__leases__v1__list_response__descriptor, (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	*out = bt_xcalloc(resp->n_leases + 1, sizeof(**out));
	for (size_t i = 0; i < resp->n_leases; i++)
		from_pb(resp->leases[i], &(*out)[i]);
	*n_out = resp->n_leases;
	return 0;
}

int berth_lease_delete(berth_client *c, const char *ns, const char *id, bool sync, berth_error *err)
{
	Berth__Leases__V1__DeleteRequest req = BERTH__LEASES__V1__DELETE_REQUEST__INIT;
	_cleanup_pb_ Berth__Leases__V1__DeleteResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "leases", "Delete", ns);
	bt_err e;

	req.id = (char *)id;
	req.sync = sync;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__leases__v1__delete_response__descriptor, (void **)&resp, &e) <
	    0)
		return berth_fail(err, &e);
	return 0;
}

static int resource_call(berth_client *c, const char *ns, const char *method, const char *id, const char *type,
			 const char *rid, berth_error *err)
{
	/* AddResource and DeleteResource carry the same fields */
	Berth__Leases__V1__AddResourceRequest req = BERTH__LEASES__V1__ADD_RESOURCE_REQUEST__INIT;
	Berth__Leases__V1__Resource r = BERTH__LEASES__V1__RESOURCE__INIT;
	void *resp = NULL;
	bt_callspec cs = berth_spec(c, "leases", method, ns);
	bt_err e;

	r.type = (char *)type;
	r.id = (char *)rid;
	req.id = (char *)id;
	req.resource = &r;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__leases__v1__add_resource_response__descriptor, &resp, &e) < 0)
		return berth_fail(err, &e);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int berth_lease_add_resource(berth_client *c, const char *ns, const char *id, const char *type, const char *rid,
			     berth_error *err)
{
	return resource_call(c, ns, "AddResource", id, type, rid, err);
}

int berth_lease_delete_resource(berth_client *c, const char *ns, const char *id, const char *type, const char *rid,
				berth_error *err)
{
	return resource_call(c, ns, "DeleteResource", id, type, rid, err);
}

int berth_lease_list_resources(berth_client *c, const char *ns, const char *id, berth_lease_resource **out,
			       size_t *n_out, berth_error *err)
{
	Berth__Leases__V1__ListResourcesRequest req = BERTH__LEASES__V1__LIST_RESOURCES_REQUEST__INIT;
	_cleanup_pb_ Berth__Leases__V1__ListResourcesResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "leases", "ListResources", ns);
	bt_err e;

	*out = NULL;
	*n_out = 0;
	req.id = (char *)id;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__leases__v1__list_resources_response__descriptor,
			 (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	*out = bt_xcalloc(resp->n_resources + 1, sizeof(**out));
	for (size_t i = 0; i < resp->n_resources; i++) {
		(*out)[i].type = bt_xstrdup(resp->resources[i]->type);
		(*out)[i].id = bt_xstrdup(resp->resources[i]->id);
	}
	*n_out = resp->n_resources;
	return 0;
}
