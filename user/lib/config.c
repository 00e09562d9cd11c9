// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Changes: services, backends, weights, drains, and applying a document.
 *
 * Every change validates all of its input first, then ends with one map
 * update that commits it (invariant 3):
 *  - a service's table (Maglev slots plus the backend ids and weights it was
 *    built from) is written into the half of its table map that is not live,
 *    and the halves switch with one update of the service's `services` entry;
 *  - a service appears with its `services` insert and disappears with its
 *    delete.
 * Writes before the commit (a new backend's entry and its backend_addrs
 * index) send no flow anywhere until the commit; writes after it (marking a
 * removed backend, dropping its index entry) only tidy up. A backend
 * entry no current table refers to is free for reuse, so a command killed
 * half-way leaves nothing that matters.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "libtcpshift.h"
#include "table.h"

/* Read the configuration, lock against concurrent changes, find a service. */
static int begin_change(struct ts_maps *m, struct ts_config *cfg, const char *service,
			struct ts_service_cfg **s, struct ts_err *err)
{
	int r = ts_maps_lock(m, err);

	r = r ?: ts_config_read(m, cfg, err);
	if (r || !service)
		return r;
	*s = ts_config_service(cfg, service);
	if (!*s) {
		ts_config_free(cfg);
		return ts_fail(err, TS_ERR_USAGE,
			       "unknown service '%s': see 'tcpshift service list'", service);
	}
	return 0;
}

static int unknown_backend(struct ts_err *err, const char *service, const char *name)
{
	return ts_fail(err, TS_ERR_USAGE,
		       "service '%s' has no backend '%s': see 'tcpshift service list'", service,
		       name);
}

/* live[id]: backend id is in a service's live table. */
static void live_backends(const struct ts_config *cfg, bool live[TS_MAX_BACKENDS])
{
	for (size_t i = 0; i < cfg->nservices; i++)
		for (size_t j = 0; j < cfg->services[i].nbackends; j++)
			live[cfg->services[i].backends[j].id] = true;
}

/* Tidying after a commit: read the entry afresh (table_install changed it). */
static void backend_mark_removed(struct ts_maps *m, __u32 id)
{
	struct ts_backend be;

	if (bpf_map_lookup_elem(m->backends, &id, &be) || be.state == TS_BACKEND_REMOVED)
		return;
	be.state = TS_BACKEND_REMOVED;
	bpf_map_update_elem(m->backends, &id, &be, BPF_EXIST);
}

/*
 * Tidy what a command killed just before or after its commit left behind:
 * backends that no live table refers to are marked removed (the data plane
 * already ignores them: they are members of no live half), and backend_addrs
 * entries that name no live backend at its own address are dropped (else the
 * data plane would rewrite replies from an address that is no backend). Run
 * under the lock by the commands that add or remove backends and services.
 */
static int repair_leftovers(struct ts_maps *m, const struct ts_config *cfg, struct ts_err *err)
{
	struct ts_backend *all = calloc(TS_MAX_BACKENDS, sizeof(*all));
	struct ts_endpoint_key *stale = calloc(TS_MAX_BACKENDS, sizeof(*stale));
	struct ts_endpoint_key key, cur;
	bool live[TS_MAX_BACKENDS] = { false };
	void *prev = NULL;
	size_t nstale = 0;
	int r;

	r = all && stale ? ts_backends_read_all(m, all, err)
			 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (r)
		goto out;
	live_backends(cfg, live);
	for (__u32 id = 0; id < TS_MAX_BACKENDS; id++)
		if (all[id].state == TS_BACKEND_ACTIVE && !live[id])
			backend_mark_removed(m, id);
	/* collect first: deleting the key being iterated restarts the walk */
	while (nstale < TS_MAX_BACKENDS && !bpf_map_get_next_key(m->backend_addrs, prev, &key)) {
		const struct ts_backend *be;
		struct ts_reply reply;

		cur = key;
		prev = &cur;
		if (bpf_map_lookup_elem(m->backend_addrs, &key, &reply) ||
		    reply.backend_id >= TS_MAX_BACKENDS || !live[reply.backend_id]) {
			stale[nstale++] = key;
			continue;
		}
		be = &all[reply.backend_id];
		if (memcmp(be->addr, key.addr, sizeof(key.addr)) || be->port != key.port ||
		    be->family != key.family)
			stale[nstale++] = key;
	}
	for (size_t i = 0; i < nstale; i++)
		bpf_map_delete_elem(m->backend_addrs, &stale[i]);
out:
	free(all);
	free(stale);
	return r;
}

/* After a commit: the local connections of backends it removed are closed
 * now, with those of drains past their deadline (doc/DESIGN.md, "Local
 * clients"). The change stands whatever happens here. */
static void sweep_local(const struct ts_maps *m)
{
	struct ts_err e;

	if (ts_local_sweep(m, &e))
		fprintf(stderr, "tcpshift: warning: %s\n", e.msg);
}

/* ---- services --------------------------------------------------------------- */

static void endpoint_key(const __be32 addr[4], __be16 port, __u8 family,
			 struct ts_endpoint_key *key)
{
	memset(key, 0, sizeof(*key));
	memcpy(key->addr, addr, sizeof(key->addr));
	key->port = port;
	key->proto = IPPROTO_TCP;
	key->family = family;
}

/* backend_addrs: replies from b get s's VIP:port as source. */
static int backend_index_set(struct ts_maps *m, const struct ts_service_cfg *s,
			     const struct ts_backend_cfg *b, struct ts_err *err)
{
	struct ts_reply reply = { .vport = s->key.port, .backend_id = b->id };
	struct ts_endpoint_key key;

	endpoint_key(b->be.addr, b->be.port, b->be.family, &key);
	memcpy(reply.vip, s->key.addr, sizeof(reply.vip));
	if (bpf_map_update_elem(m->backend_addrs, &key, &reply, BPF_ANY))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot index backend %s: %s", b->be.name,
			       strerror(errno));
	return 0;
}

static void backend_index_del(struct ts_maps *m, const struct ts_backend_cfg *b)
{
	struct ts_endpoint_key key;
	struct ts_reply reply;

	endpoint_key(b->be.addr, b->be.port, b->be.family, &key);
	if (!bpf_map_lookup_elem(m->backend_addrs, &key, &reply) && reply.backend_id == b->id)
		bpf_map_delete_elem(m->backend_addrs, &key);
}

/* ---- one change pipeline ---------------------------------------------------
 *
 * Every change states the service it wants (a struct ts_doc_service: name,
 * VIP, table size, backends with addresses and weights) and goes through one
 * path: validate (check_service, backend_list_build) -> build the table ->
 * write the half that is not live -> switch (service_update), or, for a new
 * service, build its whole table and insert it (service_create). service
 * add and del, backend add and del, weight, drain and import all end there.
 */

static int backend_set_deadline(struct ts_maps *m, __u32 id, __u64 deadline_ns,
				struct ts_err *err)
{
	struct ts_backend be;

	if (bpf_map_lookup_elem(m->backends, &id, &be))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read backend %u: %s", id,
			       strerror(errno));
	if (be.drain_deadline_ns == deadline_ns)
		return 0;
	be.drain_deadline_ns = deadline_ns;
	if (bpf_map_update_elem(m->backends, &id, &be, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the drain deadline of %s: %s",
			       be.name, strerror(errno));
	return 0;
}

static bool backend_at(const struct ts_backend *be, const struct ts_endpoint *ep)
{
	return be->family == ep->family && be->port == ep->port &&
	       !memcmp(be->addr, ep->addr, sizeof(be->addr));
}

/* What every service must be, whatever the change. */
static int check_service(const struct ts_doc_service *want, struct ts_err *err)
{
	int r = ts_parse_name(want->name, "service", err);

	if (r)
		return r;
	if (!ts_is_prime(want->table_size) || want->table_size < TS_MIN_TABLE_SIZE ||
	    want->table_size > TS_MAX_TABLE_SIZE)
		return ts_fail(err, TS_ERR_USAGE, "table size %u is not a prime in %u-%u",
			       want->table_size, TS_MIN_TABLE_SIZE, TS_MAX_TABLE_SIZE);
	if (want->nbackends > TS_MAX_SERVICE_BACKENDS)
		return ts_fail(err, TS_ERR_USAGE,
			       "service '%s' has %d backends, the most allowed: remove one first",
			       want->name, TS_MAX_SERVICE_BACKENDS);
	return ts_health_check_valid(&want->health, err);
}

/* Service s as it is, as the service a change wants; b holds room for
 * TS_MAX_SERVICE_BACKENDS + 1 backends (one more for an addition). */
static void want_of(const struct ts_service_cfg *s, struct ts_doc_service *w,
		    struct ts_doc_backend *b)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", s->svc.name);
	w->vip.family = s->key.family;
	memcpy(w->vip.addr, s->key.addr, sizeof(w->vip.addr));
	w->vip.port = s->key.port;
	w->table_size = s->svc.table_size;
	w->health = s->svc.health;
	w->backends = b;
	w->nbackends = s->nbackends;
	for (size_t i = 0; i < s->nbackends; i++) {
		const struct ts_backend_cfg *sb = &s->backends[i];

		memset(&b[i], 0, sizeof(b[i]));
		snprintf(b[i].name, sizeof(b[i].name), "%s", sb->be.name);
		b[i].addr.family = sb->be.family;
		memcpy(b[i].addr.addr, sb->be.addr, sizeof(b[i].addr.addr));
		b[i].addr.port = sb->be.port;
		b[i].weight = sb->weight;
	}
}

static struct ts_doc_backend *want_backend(struct ts_doc_service *w, const char *name)
{
	for (size_t i = 0; i < w->nbackends; i++)
		if (!strcmp(w->backends[i].name, name))
			return &w->backends[i];
	return NULL;
}

static int service_update(struct ts_maps *m, struct ts_config *cfg, struct ts_service_cfg *s,
			  const struct ts_doc_service *want, struct ts_err *err);
static int service_create(struct ts_maps *m, struct ts_config *cfg,
			  const struct ts_doc_service *want, struct ts_err *err);

/* A change of one existing service: lock, read, let edit() state the service
 * it wants, and run the pipeline. */
typedef int (*edit_fn)(struct ts_config *cfg, struct ts_service_cfg *s,
		       struct ts_doc_service *want, void *arg, struct ts_err *err);

static int change_service(struct ts_maps *m, const char *service, edit_fn edit, void *arg,
			  struct ts_err *err)
{
	struct ts_doc_backend *wb = calloc(TS_MAX_SERVICE_BACKENDS + 1, sizeof(*wb));
	struct ts_doc_service want;
	struct ts_service_cfg *s;
	struct ts_config cfg = {};
	int r;

	if (!wb)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = begin_change(m, &cfg, service, &s, err);
	if (r)
		goto out;
	r = repair_leftovers(m, &cfg, err);
	if (r)
		goto out;
	want_of(s, &want, wb);
	r = edit(&cfg, s, &want, arg, err);
	r = r ?: check_service(&want, err);
	r = r ?: service_update(m, &cfg, s, &want, err);
	if (!r)
		sweep_local(m);
out:
	ts_config_free(&cfg);
	free(wb);
	return r;
}

int ts_service_add(struct ts_maps *m, const char *name, const struct ts_endpoint *vip,
		   __u32 table_size, struct ts_err *err)
{
	struct ts_doc_service want = { .vip = *vip, .table_size = table_size };
	struct ts_config cfg;
	int r;

	snprintf(want.name, sizeof(want.name), "%s", name);
	r = ts_parse_name(name, "service", err);
	r = r ?: check_service(&want, err);
	r = r ?: begin_change(m, &cfg, NULL, NULL, err);
	if (r)
		return r;
	r = repair_leftovers(m, &cfg, err);
	r = r ?: service_create(m, &cfg, &want, err);
	ts_config_free(&cfg);
	return r;
}

int ts_service_del(struct ts_maps *m, const char *name, struct ts_err *err)
{
	struct ts_service_cfg *s;
	struct ts_config cfg;
	int r;

	r = begin_change(m, &cfg, name, &s, err);
	if (r)
		return r;
	r = repair_leftovers(m, &cfg, err);
	if (r)
		goto out;
	/* The commit: packets to the VIP are no longer ours (invariant 5:
	 * passed untouched), whether or not their flow was pinned. */
	if (bpf_map_delete_elem(m->services, &s->key)) {
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot delete service %s: %s", name,
			    strerror(errno));
		goto out;
	}
	/* Its backends' ids are free for reuse; their flow entries age out. */
	for (size_t i = 0; i < s->nbackends; i++) {
		backend_index_del(m, &s->backends[i]);
		backend_mark_removed(m, s->backends[i].id);
	}
	bpf_map_delete_elem(m->tables, &s->svc.id);
	sweep_local(m);
out:
	ts_config_free(&cfg);
	return r;
}

/* ---- backends, weights, drains: edits of the service a change wants ------------ */

struct backend_addition {
	const char		*name;
	const struct ts_endpoint *addr;
	__u32			weight;
};

static int edit_backend_add(struct ts_config *cfg, struct ts_service_cfg *s,
			    struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct backend_addition *a = arg;
	char ep[TS_ADDRSTRLEN];

	ts_format_endpoint(a->addr->addr, a->addr->port, a->addr->family, ep, sizeof(ep));
	if (a->addr->family != s->key.family)
		return ts_fail(err, TS_ERR_USAGE,
			       "backend %s is IPv%u but service '%s' is IPv%u: use a matching "
			       "address",
			       ep, a->addr->family, s->svc.name, s->key.family);
	if (want_backend(want, a->name))
		return ts_fail(err, TS_ERR_USAGE,
			       "service '%s' already has a backend '%s': pick another name",
			       s->svc.name, a->name);
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct ts_service_cfg *o = &cfg->services[i];

		/* One service per backend address:port: its replies name one VIP. */
		for (size_t j = 0; j < o->nbackends; j++)
			if (backend_at(&o->backends[j].be, a->addr))
				return ts_fail(err, TS_ERR_USAGE,
					       "%s is already backend '%s' of service '%s': a "
					       "backend address:port serves one service",
					       ep, o->backends[j].be.name, o->svc.name);
		/* A backend at a VIP:port would loop its packets into the gateway. */
		if (o->key.family == a->addr->family && o->key.port == a->addr->port &&
		    !memcmp(o->key.addr, a->addr->addr, sizeof(o->key.addr)))
			return ts_fail(err, TS_ERR_USAGE,
				       "%s is the VIP of service '%s': a backend cannot be a "
				       "VIP:port",
				       ep, o->svc.name);
	}
	/* check_service refuses the 257th: a usage error, as in import */
	want->backends[want->nbackends++] = (struct ts_doc_backend){
		.addr = *a->addr,
		.weight = a->weight,
	};
	snprintf(want->backends[want->nbackends - 1].name, TS_NAME_LEN, "%s", a->name);
	return 0;
}

int ts_backend_add(struct ts_maps *m, const char *service, const char *name,
		   const struct ts_endpoint *addr, __u32 weight, struct ts_err *err)
{
	struct backend_addition a = { name, addr, weight };
	int r = ts_parse_name(name, "backend", err);

	if (r)
		return r;
	if (weight > TS_MAX_WEIGHT)
		return ts_fail(err, TS_ERR_USAGE, "weight %u is out of range: give 0-%d", weight,
			       TS_MAX_WEIGHT);
	return change_service(m, service, edit_backend_add, &a, err);
}

static int edit_backend_del(struct ts_config *cfg, struct ts_service_cfg *s,
			    struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	struct ts_doc_backend *b = want_backend(want, arg);

	if (!b)
		return unknown_backend(err, s->svc.name, arg);
	/* the commit drops it from the new half: its flows are closed */
	*b = want->backends[--want->nbackends];
	return 0;
}

int ts_backend_del(struct ts_maps *m, const char *service, const char *name,
		   struct ts_err *err)
{
	return change_service(m, service, edit_backend_del, (void *)name, err);
}

struct weight_change {
	char		(*names)[TS_NAME_LEN];
	const __u32	*weights;
	size_t		n;
};

static int edit_weights(struct ts_config *cfg, struct ts_service_cfg *s,
			struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct weight_change *w = arg;

	for (size_t i = 0; i < w->n; i++) {
		struct ts_doc_backend *b = want_backend(want, w->names[i]);

		if (!b)
			return unknown_backend(err, s->svc.name, w->names[i]);
		b->weight = w->weights[i];
	}
	return 0;
}

int ts_weights_set(struct ts_maps *m, const char *service, char (*names)[TS_NAME_LEN],
		   const __u32 *weights, size_t n, struct ts_err *err)
{
	struct weight_change w = { names, weights, n };

	for (size_t i = 0; i < n; i++) {
		if (weights[i] > TS_MAX_WEIGHT)
			return ts_fail(err, TS_ERR_USAGE, "weight %u is out of range: give 0-%d",
				       weights[i], TS_MAX_WEIGHT);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(names[i], names[j]))
				return ts_fail(err, TS_ERR_USAGE,
					       "backend '%s' is given twice: give each weight once",
					       names[i]);
	}
	/* A backend given weight again is no longer draining: service_update
	 * clears its deadline before the commit. */
	return change_service(m, service, edit_weights, &w, err);
}

struct drain {
	const char	*name;
	__u64		deadline_ns;
	__u32		id;	/* out: the backend drained */
};

static int edit_drain(struct ts_config *cfg, struct ts_service_cfg *s,
		      struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	struct drain *d = arg;
	struct ts_doc_backend *b = want_backend(want, d->name);

	if (!b)
		return unknown_backend(err, s->svc.name, d->name);
	b->weight = 0;
	d->id = ts_service_backend(s, d->name)->id;
	return 0;
}

int ts_backend_drain(struct ts_maps *m, const char *service, const char *name,
		     __u64 timeout_ns, struct ts_err *err)
{
	struct drain d = { .name = name };
	int r;

	r = change_service(m, service, edit_drain, &d, err);
	if (r)
		return r;
	/* After the commit, still under the lock: a command killed here has
	 * drained without a deadline, never the reverse. */
	return backend_set_deadline(m, d.id, timeout_ns ? ts_now_ns() + timeout_ns : 0, err);
}

/* ---- health: the checks (operator) and each backend's state (agent) ------------- */

/* Store backend b's health before the commit: the data plane does not read
 * it; the switch that follows makes the effective weight. A command killed in
 * between leaves a health that the next change of the service builds into
 * its table (service_update compares effective weights with the live half). */
static int backend_write_health(struct ts_maps *m, struct ts_backend_cfg *b, __u8 health,
				__u64 since_s, struct ts_err *err)
{
	struct ts_backend be;

	if (bpf_map_lookup_elem(m->backends, &b->id, &be))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot read backend %s: %s", b->be.name,
			       strerror(errno));
	be.health = health;
	be.health_since_s = since_s;
	if (bpf_map_update_elem(m->backends, &b->id, &be, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the health of backend %s: %s",
			       b->be.name, strerror(errno));
	b->be.health = health;	/* the list the table is built from copies s */
	b->be.health_since_s = since_s;
	return 0;
}

struct health_checks {
	struct ts_maps			*m;
	const struct ts_health_check	*hc;
};

static int edit_health(struct ts_config *cfg, struct ts_service_cfg *s,
		       struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct health_checks *a = arg;
	const struct ts_health_check *hc = a->hc;
	int r = ts_health_check_valid(hc, err);

	want->health = *hc;
	/* No checks: nothing will ever mark a backend up again, so all are. */
	for (size_t i = 0; !r && hc->check == TS_CHECK_NONE && i < s->nbackends; i++)
		if (s->backends[i].be.health != TS_HEALTH_UP)
			r = backend_write_health(a->m, &s->backends[i], TS_HEALTH_UP,
						 (__u64)time(NULL), err);
	return r;
}

int ts_health_set(struct ts_maps *m, const char *service, const struct ts_health_check *hc,
		  struct ts_err *err)
{
	struct health_checks a = { m, hc };

	return change_service(m, service, edit_health, &a, err);
}

struct health_change {
	struct ts_maps	*m;
	const char	*name;
	__u8		health;
	__u64		since_s;
};

static int edit_backend_health(struct ts_config *cfg, struct ts_service_cfg *s,
			       struct ts_doc_service *want, void *arg, struct ts_err *err)
{
	const struct health_change *h = arg;
	struct ts_backend_cfg *b = ts_service_backend(s, h->name);

	if (!b)
		return unknown_backend(err, s->svc.name, h->name);
	if (b->be.health == h->health)
		return 0;
	return backend_write_health(h->m, b, h->health, h->since_s, err);
}

int ts_backend_health_set(struct ts_maps *m, const char *service, const char *name,
			  enum ts_health health, __u64 since_s, struct ts_err *err)
{
	struct health_change h = { m, name, (__u8)health, since_s };

	return change_service(m, service, edit_backend_health, &h, err);
}

/* ---- the pipeline's steps --------------------------------------------------------- */

/* n ids for new backends and their generations: never-used ids first, then
 * ones no table refers to (removed, or left by a command killed before its
 * commit). */
static int backend_alloc_many(struct ts_maps *m, const struct ts_config *cfg, size_t n,
			      __u32 *ids, __u32 *gens, struct ts_err *err)
{
	struct ts_backend *all;
	bool referenced[TS_MAX_BACKENDS] = { false };
	size_t k = 0;
	int r;

	if (!n)
		return 0;
	all = calloc(TS_MAX_BACKENDS, sizeof(*all));
	r = all ? ts_backends_read_all(m, all, err) : ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (r) {
		free(all);
		return r;
	}
	for (size_t i = 0; i < cfg->nservices; i++)
		for (size_t j = 0; j < cfg->services[i].nbackends; j++)
			referenced[cfg->services[i].backends[j].id] = true;
	for (int pass = 0; pass < 2; pass++)
		for (__u32 i = 0; i < TS_MAX_BACKENDS && k < n; i++) {
			bool ok = pass == 0 ? all[i].state == TS_BACKEND_FREE
					    : all[i].state != TS_BACKEND_FREE && !referenced[i];

			if (ok) {
				ids[k] = i;
				gens[k++] = all[i].generation + 1;
			}
		}
	free(all);
	if (k < n)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "too many backends (at most %d in all, counting those being "
			       "replaced)",
			       TS_MAX_BACKENDS);
	return 0;
}

/*
 * want's backends as a table's list, sorted by name: a backend of s (NULL for
 * a new service) with the same name and address:port keeps its id, and so its
 * pinned flows; every other one gets a new id (is_new). Writes nothing.
 */
static int backend_list_build(struct ts_maps *m, const struct ts_config *cfg,
			      struct ts_service_cfg *s, const struct ts_doc_service *want,
			      struct ts_backend_cfg *list, bool *is_new, size_t *nnew,
			      struct ts_err *err)
{
	__u32 ids[TS_MAX_SERVICE_BACKENDS], gens[TS_MAX_SERVICE_BACKENDS];
	size_t n = want->nbackends, k = 0;
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct ts_doc_backend *wb = &want->backends[i];

		r = ts_parse_name(wb->name, "backend", err);
		if (r)
			return r;
		if (wb->weight > TS_MAX_WEIGHT)
			return ts_fail(err, TS_ERR_USAGE,
				       "backend '%s': weight %u is out of range: give 0-%d",
				       wb->name, wb->weight, TS_MAX_WEIGHT);
		if (wb->addr.family != want->vip.family)
			return ts_fail(err, TS_ERR_USAGE,
				       "backend '%s' is IPv%u but service '%s' is IPv%u: use a "
				       "matching address",
				       wb->name, wb->addr.family, want->name, want->vip.family);
		memset(&list[i], 0, sizeof(list[i]));
		snprintf(list[i].be.name, sizeof(list[i].be.name), "%s", wb->name);
		memcpy(list[i].be.addr, wb->addr.addr, sizeof(list[i].be.addr));
		list[i].be.port = wb->addr.port;
		list[i].be.family = wb->addr.family;
		list[i].be.state = TS_BACKEND_ACTIVE;
		list[i].weight = wb->weight;
	}
	qsort(list, n, sizeof(*list), table_cmp_backend_name);
	for (size_t i = 0; i < n; i++) {
		struct ts_endpoint ep = { .family = list[i].be.family, .port = list[i].be.port };
		struct ts_backend_cfg *cur = s ? ts_service_backend(s, list[i].be.name) : NULL;

		if (i && !strcmp(list[i].be.name, list[i - 1].be.name))
			return ts_fail(err, TS_ERR_USAGE,
				       "service '%s' is given backend '%s' twice: give each once",
				       want->name, list[i].be.name);
		memcpy(ep.addr, list[i].be.addr, sizeof(ep.addr));
		is_new[i] = !cur || !backend_at(&cur->be, &ep);
		if (!is_new[i]) {
			__u32 weight = list[i].weight;

			list[i] = *cur;
			list[i].weight = weight;
		} else {
			k++;
		}
	}
	r = backend_alloc_many(m, cfg, k, ids, gens, err);
	if (r)
		return r;
	for (size_t i = 0, j = 0; i < n; i++)
		if (is_new[i]) {
			list[i].id = ids[j];
			list[i].be.generation = gens[j++];
		}
	*nnew = k;
	return 0;
}

/* The new backends' entries, fresh counters and backend_addrs entries: sends
 * no flow anywhere until a table refers to them. */
static int backends_write_new(struct ts_maps *m, const struct ts_service_cfg *s,
			      const struct ts_backend_cfg *list, const bool *is_new, size_t n,
			      struct ts_err *err)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		if (!is_new[i])
			continue;
		if (bpf_map_update_elem(m->backends, &list[i].id, &list[i].be, BPF_ANY))
			return ts_fail(err, TS_ERR_RUNTIME, "cannot write backend %s: %s",
				       list[i].be.name, strerror(errno));
		r = ts_backend_stats_reset(m, list[i].id, err);
		r = r ?: backend_index_set(m, s, &list[i], err);
		if (r)
			return r;
	}
	return 0;
}

/* An existing service, same VIP and table size: one table switch. */
static int service_update(struct ts_maps *m, struct ts_config *cfg, struct ts_service_cfg *s,
			  const struct ts_doc_service *want, struct ts_err *err)
{
	struct ts_backend_cfg *list = calloc(TS_MAX_SERVICE_BACKENDS, sizeof(*list));
	bool is_new[TS_MAX_SERVICE_BACKENDS], changed;
	__u32 eff[TS_MAX_SERVICE_BACKENDS];
	size_t n = want->nbackends, nnew = 0, nkept = 0;
	int r;

	if (!list)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	r = backend_list_build(m, cfg, s, want, list, is_new, &nnew, err);
	if (r)
		goto out;
	changed = nnew > 0 || memcmp(&want->health, &s->svc.health, sizeof(want->health));
	ts_effective_weights(list, n, eff);
	for (size_t i = 0; i < n; i++)
		if (!is_new[i]) {
			nkept++;
			changed |= list[i].weight != ts_service_backend(s, list[i].be.name)->weight;
			/* health changes the effective weight: the live half
			 * says whether it was > 0 when it was built */
			changed |= !eff[i] != !(list[i].be.weighted_halves &
						 (1U << (s->svc.table_half & 1)));
		}
	if (!changed && nkept == s->nbackends)
		goto out; /* nothing differs: no write at all */
	r = backends_write_new(m, s, list, is_new, n, err);
	if (r)
		goto out;
	/* A backend with weight is not draining: before the commit, so that a
	 * kill in between leaves a drain without a deadline, never the reverse. */
	for (size_t i = 0; !r && i < n; i++)
		if (!is_new[i] && list[i].weight)
			r = backend_set_deadline(m, list[i].id, 0, err);
	if (r)
		goto out;
	/* The commit: additions, removals, weights and health checks, all at
	 * once (the health checks ride in the same `services` update). */
	s->svc.health = want->health;
	r = table_install(m, s, list, n, err);
	if (r)
		goto out;
	/* After the commit, tidying up: a removed backend's replies are no
	 * longer ours. */
	for (size_t i = 0; i < s->nbackends; i++) {
		bool kept = false;

		for (size_t j = 0; j < n && !kept; j++)
			kept = !is_new[j] && list[j].id == s->backends[i].id;
		if (!kept) {
			backend_index_del(m, &s->backends[i]);
			backend_mark_removed(m, s->backends[i].id);
		}
	}
out:
	free(list);
	return r;
}

/* A new service, with its whole table: the `services` insert commits it. */
static int service_create(struct ts_maps *m, struct ts_config *cfg,
			  const struct ts_doc_service *want, struct ts_err *err)
{
	struct ts_backend_cfg *list = calloc(TS_MAX_SERVICE_BACKENDS, sizeof(*list));
	struct ts_service_cfg *ns = calloc(1, sizeof(*ns));
	bool used[TS_MAX_SERVICES] = { false }, is_new[TS_MAX_SERVICE_BACKENDS];
	size_t n = want->nbackends, nnew;
	char ep[TS_ADDRSTRLEN];
	struct table_view t;
	int r = 0;

	if (!list || !ns) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	endpoint_key(want->vip.addr, want->vip.port, want->vip.family, &ns->key);
	ts_format_endpoint(want->vip.addr, want->vip.port, want->vip.family, ep, sizeof(ep));
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct ts_service_cfg *s = &cfg->services[i];

		if (!strcmp(s->svc.name, want->name)) {
			r = ts_fail(err, TS_ERR_USAGE,
				    "service '%s' already exists: pick another name or "
				    "'tcpshift service del %s' first",
				    want->name, want->name);
			goto out;
		}
		if (!memcmp(&s->key, &ns->key, sizeof(ns->key))) {
			r = ts_fail(err, TS_ERR_USAGE,
				    "%s is already used by service '%s': pick another VIP:port", ep,
				    s->svc.name);
			goto out;
		}
		for (size_t j = 0; j < s->nbackends; j++)
			if (backend_at(&s->backends[j].be, &want->vip)) {
				r = ts_fail(err, TS_ERR_USAGE,
					    "%s is backend '%s' of service '%s': a VIP:port cannot "
					    "be a backend",
					    ep, s->backends[j].be.name, s->svc.name);
				goto out;
			}
		used[s->svc.id] = true;
	}
	for (ns->svc.id = 0; ns->svc.id < TS_MAX_SERVICES && used[ns->svc.id]; ns->svc.id++)
		;
	if (ns->svc.id == TS_MAX_SERVICES) {
		r = ts_fail(err, TS_ERR_RUNTIME, "too many services (at most %d)",
			    TS_MAX_SERVICES);
		goto out;
	}
	ns->svc.table_size = want->table_size;
	ns->svc.health = want->health;
	snprintf(ns->svc.name, sizeof(ns->svc.name), "%s", want->name);
	r = backend_list_build(m, cfg, NULL, want, list, is_new, &nnew, err);
	/* members of half 0, the half that goes live with the service */
	for (size_t i = 0; !r && i < n; i++) {
		list[i].be.table_halves = 1U << 0;
		list[i].be.weighted_halves = list[i].weight ? 1U << 0 : 0;
	}
	r = r ?: backends_write_new(m, ns, list, is_new, n, err);
	/* Its table, built in the half that will be live, before anything
	 * refers to it. */
	r = r ?: table_create(m, ns->svc.id, want->table_size, want->name, err);
	r = r ?: table_open(m, &ns->svc, true, &t, err);
	if (r)
		goto out;
	r = table_write_half(t.e, want->table_size, list, n, err);
	table_unmap(&t);
	if (r)
		goto out;
	/* The commit: the VIP is balanced from here on, by the whole table. */
	if (bpf_map_update_elem(m->services, &ns->key, &ns->svc, BPF_NOEXIST))
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot add service %s: %s", want->name,
			    strerror(errno));
out:
	free(list);
	free(ns);
	return r;
}

int ts_service_apply(struct ts_maps *m, const struct ts_doc_service *want, struct ts_err *err)
{
	struct ts_endpoint_key key;
	struct ts_service_cfg *s;
	struct ts_config cfg;
	int r;

	r = check_service(want, err);
	r = r ?: begin_change(m, &cfg, NULL, NULL, err);
	if (r)
		return r;
	r = repair_leftovers(m, &cfg, err);
	if (r) {
		ts_config_free(&cfg);
		return r;
	}
	endpoint_key(want->vip.addr, want->vip.port, want->vip.family, &key);
	s = ts_config_service(&cfg, want->name);
	if (s && (memcmp(&s->key, &key, sizeof(key)) || s->svc.table_size != want->table_size)) {
		/* A new VIP or table size: a new service under the old name. */
		ts_config_free(&cfg);
		r = ts_service_del(m, want->name, err);
		r = r ?: begin_change(m, &cfg, NULL, NULL, err);
		if (r)
			return r;
		s = NULL;
	}
	r = s ? service_update(m, &cfg, s, want, err) : service_create(m, &cfg, want, err);
	ts_config_free(&cfg);
	return r;
}

/* ---- applying ---------------------------------------------------------------------- */

/* New flows hash with the new seed; pinned flows keep their backends. */
static int seed_write(struct ts_maps *m, __u32 seed, struct ts_err *err)
{
	struct ts_settings s;
	__u32 zero = 0;
	int r = ts_settings_read(m, &s, err);

	if (r || s.seed == seed)
		return r;
	s.seed = seed;
	if (bpf_map_update_elem(m->settings, &zero, &s, BPF_EXIST))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot write the seed to settings: %s",
			       strerror(errno));
	return 0;
}

/* err, prefixed with where the import stopped and what that means. */
static int stopped(struct ts_err *err, const char *what)
{
	char msg[sizeof(err->msg)];

	snprintf(msg, sizeof(msg), "%s", err->msg);
	return ts_fail(err, err->status,
		       "import stopped at %s: %s (services changed before it stay changed: "
		       "import is atomic per service; fix and import again)",
		       what, msg);
}

int ts_doc_apply(struct ts_maps *m, const struct ts_doc *want, struct ts_err *err)
{
	struct ts_config cfg;
	char what[64];
	int r;

	/* Held until ts_maps_close: no other change interleaves. */
	r = ts_maps_lock(m, err);
	r = r ?: ts_config_read(m, &cfg, err);
	if (r)
		return r;
	/* Services that go, or that change VIP or table size, are deleted
	 * first: their VIPs and backend ids may be reused by the document. */
	for (size_t i = 0; i < cfg.nservices; i++) {
		const struct ts_service_cfg *c = &cfg.services[i];
		const struct ts_doc_service *w = NULL;
		struct ts_endpoint_key key;

		for (size_t j = 0; j < want->nservices && !w; j++)
			if (!strcmp(want->services[j].name, c->svc.name))
				w = &want->services[j];
		if (w)
			endpoint_key(w->vip.addr, w->vip.port, w->vip.family, &key);
		if (w && !memcmp(&key, &c->key, sizeof(key)) && w->table_size == c->svc.table_size)
			continue;
		r = ts_service_del(m, c->svc.name, err);
		if (r) {
			snprintf(what, sizeof(what), "service '%s'", c->svc.name);
			ts_config_free(&cfg);
			return stopped(err, what);
		}
	}
	ts_config_free(&cfg);
	for (size_t i = 0; i < want->nservices; i++) {
		r = ts_service_apply(m, &want->services[i], err);
		if (r) {
			snprintf(what, sizeof(what), "service '%s'", want->services[i].name);
			return stopped(err, what);
		}
	}
	r = seed_write(m, want->seed, err);
	sweep_local(m);
	return r ? stopped(err, "the seed") : 0;
}

int ts_doc_import(struct ts_maps *m, const struct ts_doc *want, bool dry_run,
		  struct ts_plan *plan, struct ts_err *err)
{
	struct ts_settings settings;
	struct ts_doc have = {};
	struct ts_config cfg;
	int r;

	memset(plan, 0, sizeof(*plan));
	/* Locked from reading the configuration to the last change. */
	r = ts_maps_lock(m, err);
	r = r ?: ts_settings_read(m, &settings, err);
	r = r ?: ts_config_read(m, &cfg, err);
	if (r)
		goto out;
	r = ts_doc_from_config(&cfg, settings.seed, &have, err);
	ts_config_free(&cfg);
	r = r ?: ts_doc_plan(&have, want, plan, err);
	if (!r && !dry_run)
		r = ts_doc_apply(m, want, err);
	ts_doc_free(&have);
out:
	ts_maps_unlock(m);
	return r;
}
