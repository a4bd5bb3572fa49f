/*
 * berth_namespaces — the namespaces API of libberth (the gateway's registry).
 */
#define _GNU_SOURCE
#include <string.h>

#include "berth/namespaces/v1/namespaces.pb-c.h"
#include "berth_internal.h"
#include "bt_pbmap.h"
#include "bt_rpc.h"
#include "bt_util.h"

void berth_namespace_clear(berth_namespace *n)
{
	free(n->name);
	berth_labels_free(n->labels, n->n_labels);
	memset(n, 0, sizeof(*n));
}

void berth_namespaces_free(berth_namespace *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		berth_namespace_clear(&v[i]);
	free(v);
}

static void from_pb(const Berth__Namespaces__V1__Namespace *p, berth_namespace *out)
{
	memset(out, 0, sizeof(*out));
	out->name = bt_xstrdup(p->name);
	out->n_labels = p->n_labels;
	out->labels = berth_labels_to_public((void *const *)p->labels, p->n_labels);
}

/* A pb Namespace borrowing name and the labels (released with pb_release). */
typedef struct pb_ns {
	Berth__Namespaces__V1__Namespace m;
	bt_labels labels;
} pb_ns;

static void to_pb(const char *name, const berth_label *l, size_t n, pb_ns *p)
{
	memset(p, 0, sizeof(*p));
	berth__namespaces__v1__namespace__init(&p->m);
	berth_labels_from_public(l, n, &p->labels);
	p->m.name = (char *)name;
	p->m.labels = (Berth__Namespaces__V1__Namespace__LabelsEntry **)bt_pbmap_from_labels(
		&p->labels, &berth__namespaces__v1__namespace__labels_entry__descriptor, &p->m.n_labels);
}

static void pb_release(pb_ns *p)
{
	bt_pbmap_free((void **)p->m.labels, p->m.n_labels);
	bt_labels_clear(&p->labels);
}

/* The namespace of a reply into out (may be NULL). */
static int take(const Berth__Namespaces__V1__Namespace *p, const char *what, berth_namespace *out, bt_err *e)
{
	if (!p)
		return bt_err_set(e, BT_INTERNAL, "namespaces.%s: reply without a namespace", what);
	if (out)
		from_pb(p, out);
	return 0;
}

int berth_namespace_get(berth_client *c, const char *name, berth_namespace *out, berth_error *err)
{
	Berth__Namespaces__V1__GetNamespaceRequest req = BERTH__NAMESPACES__V1__GET_NAMESPACE_REQUEST__INIT;
	_cleanup_pb_ Berth__Namespaces__V1__GetNamespaceResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "namespaces", "Get", NULL);
	bt_err e;

	cs.ns = NULL;
	req.name = (char *)name;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__namespaces__v1__get_namespace_response__descriptor,
			 (void **)&resp, &e) < 0 ||
	    take(resp->namespace_, "Get", out, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

int berth_namespace_list(berth_client *c, const char *const *filters, size_t n_filters, berth_namespace **out,
			 size_t *n_out, berth_error *err)
{
	Berth__Namespaces__V1__ListNamespacesRequest req = BERTH__NAMESPACES__V1__LIST_NAMESPACES_REQUEST__INIT;
	_cleanup_pb_ Berth__Namespaces__V1__ListNamespacesResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "namespaces", "List", NULL);
	bt_err e;

	cs.ns = NULL;
	req.filters = (char **)filters;
	req.n_filters = n_filters;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__namespaces__v1__list_namespaces_response__descriptor,
			 (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	*out = bt_xcalloc(resp->n_namespaces ? resp->n_namespaces : 1, sizeof(**out));
	for (size_t i = 0; i < resp->n_namespaces; i++)
		from_pb(resp->namespaces[i], &(*out)[i]);
	*n_out = resp->n_namespaces;
	return 0;
}

int berth_namespace_create(berth_client *c, const char *name, const berth_label *labels, size_t n_labels,
			   berth_namespace *out, berth_error *err)
{
	Berth__Namespaces__V1__CreateNamespaceRequest req = BERTH__NAMESPACES__V1__CREATE_NAMESPACE_REQUEST__INIT;
	_cleanup_pb_ Berth__Namespaces__V1__CreateNamespaceResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "namespaces", "Create", NULL);
	pb_ns p;
	bt_err e;

	cs.ns = NULL;
	to_pb(name, labels, n_labels, &p);
	req.namespace_ = &p.m;
	int rc = bt_conn_call(c->conn, &cs, &req.base, &berth__namespaces__v1__create_namespace_response__descriptor,
			      (void **)&resp, &e);
	pb_release(&p);
	if (rc < 0 || take(resp->namespace_, "Create", out, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

int berth_namespace_update(berth_client *c, const char *name, const berth_label *labels, size_t n_labels,
			   const char *const *mask, size_t n_mask, berth_namespace *out, berth_error *err)
{
	Berth__Namespaces__V1__UpdateNamespaceRequest req = BERTH__NAMESPACES__V1__UPDATE_NAMESPACE_REQUEST__INIT;
	_cleanup_pb_ Berth__Namespaces__V1__UpdateNamespaceResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "namespaces", "Update", NULL);
	pb_ns p;
	bt_err e;

	cs.ns = NULL;
	to_pb(name, labels, n_labels, &p);
	req.namespace_ = &p.m;
	req.update_mask = (char **)mask;
	req.n_update_mask = n_mask;
	int rc = bt_conn_call(c->conn, &cs, &req.base, &berth__namespaces__v1__update_namespace_response__descriptor,
			      (void **)&resp, &e);
	pb_release(&p);
	if (rc < 0 || take(resp->namespace_, "Update", out, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}

int berth_namespace_delete(berth_client *c, const char *name, berth_error *err)
{
	Berth__Namespaces__V1__DeleteNamespaceRequest req = BERTH__NAMESPACES__V1__DELETE_NAMESPACE_REQUEST__INIT;
	_cleanup_pb_ Berth__Namespaces__V1__DeleteNamespaceResponse *resp = NULL;
	bt_callspec cs = berth_spec(c, "namespaces", "Delete", NULL);
	bt_err e;

	cs.ns = NULL;
	req.name = (char *)name;
	if (bt_conn_call(c->conn, &cs, &req.base, &berth__namespaces__v1__delete_namespace_response__descriptor,
			 (void **)&resp, &e) < 0)
		return berth_fail(err, &e);
	return 0;
}
