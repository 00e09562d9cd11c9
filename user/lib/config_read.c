// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Reading the configuration: the services and, from each live table half,
 * the backends and weights it was built from. Callers that want one
 * configuration hold the pin directory's lock (shared for readers).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "libtcpshift.h"
#include "table.h"

__u64 ts_now_ns(void)
{
	struct timespec ts;

	/* bpf_ktime_get_ns() is CLOCK_MONOTONIC too */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static int cmp_service_name(const void *a, const void *b)
{
	const struct ts_service_cfg *x = a, *y = b;

	return strcmp(x->svc.name, y->svc.name);
}

int ts_backends_read(const struct ts_maps *m, struct ts_backend *all, __u32 n, struct ts_err *err)
{
	__u32 *keys, count = n, out_batch;
	int r = 0;

	if (!n)
		return 0;
	keys = malloc(n * sizeof(*keys));
	if (!keys)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	/* ids 0..n-1: the batch starts at the first key, an array's */
	if (bpf_map_lookup_batch(m->backends, NULL, &out_batch, keys, all, &count, NULL) &&
	    errno != ENOENT)
		r = ts_fail(err, TS_ERR_RUNTIME, "cannot read the backends map: %s",
			    strerror(errno));
	else if (count != n)
		r = ts_fail(err, TS_ERR_RUNTIME, "short read of the backends map (%u entries)",
			    count);
	free(keys);
	return r;
}

int ts_backends_read_all(const struct ts_maps *m, struct ts_backend *all, struct ts_err *err)
{
	return ts_backends_read(m, all, TS_MAX_BACKENDS, err);
}

/* Every service entry, read a batch at a time into cfg (no tables yet). */
static int services_read(const struct ts_maps *m, struct ts_config *cfg, struct ts_err *err)
{
	enum { BATCH = 4096 };
	struct ts_endpoint_key *keys = calloc(BATCH, sizeof(*keys));
	struct ts_service *vals = calloc(BATCH, sizeof(*vals));
	__u32 in_batch, out_batch;
	size_t cap = 0;
	bool first = true, done = false;
	int r = keys && vals ? 0 : ts_fail(err, TS_ERR_RUNTIME, "out of memory");

	while (!r && !done) {
		__u32 got = BATCH;

		/* ENOENT: the last batch, possibly with entries */
		if (bpf_map_lookup_batch(m->services, first ? NULL : &in_batch, &out_batch, keys,
					 vals, &got, NULL)) {
			if (errno != ENOENT) {
				r = ts_fail(err, TS_ERR_RUNTIME, "cannot read the services map: %s",
					    strerror(errno));
				break;
			}
			done = true;
		}
		first = false;
		in_batch = out_batch;
		if (cfg->nservices + got > cap) {
			size_t ncap = cap ? cap * 2 : BATCH;
			void *p;

			while (ncap < cfg->nservices + got)
				ncap *= 2;
			p = realloc(cfg->services, ncap * sizeof(*cfg->services));
			if (!p) {
				r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
				break;
			}
			cfg->services = p;
			cap = ncap;
		}
		for (__u32 i = 0; i < got; i++) {
			struct ts_service_cfg *sc = &cfg->services[cfg->nservices++];

			memset(sc, 0, sizeof(*sc));
			sc->key = keys[i];
			sc->svc = vals[i];
		}
	}
	free(keys);
	free(vals);
	return r;
}

/*
 * The whole configuration: the services in batches, each table's list, then
 * the backends those lists name in one batch (up to the highest id named)
 * rather than a lookup each: the cost of an export, a status, a stats is
 * mostly this, at 65,536 services.
 */
int ts_config_read(const struct ts_maps *m, struct ts_config *cfg, struct ts_err *err)
{
	struct ts_backend *all = NULL;
	__u32 nall = 0;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	r = services_read(m, cfg, err);
	for (size_t i = 0; !r && i < cfg->nservices; i++)
		r = table_read_list(m, &cfg->services[i], err);
	nall = r ? 0 : ts_config_id_limit(cfg);
	if (nall) {
		all = malloc(nall * sizeof(*all));
		r = all ? ts_backends_read(m, all, nall, err)
			: ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	}
	for (size_t i = 0; !r && i < cfg->nservices; i++) {
		struct ts_service_cfg *s = &cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++)
			s->backends[j].be = all[s->backends[j].id];
		qsort(s->backends, s->nbackends, sizeof(s->backends[0]), table_cmp_backend_name);
	}
	free(all);
	if (r) {
		ts_config_free(cfg);
		return r;
	}
	qsort(cfg->services, cfg->nservices, sizeof(*cfg->services), cmp_service_name);
	return 0;
}

/* The one service named name, found through service_names: cfg holds it
 * alone, or nothing when there is no such service. */
int ts_config_read_service(const struct ts_maps *m, const char *name, struct ts_config *cfg,
			   struct ts_err *err)
{
	struct ts_service_name key = {};
	struct ts_service_cfg *s;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (strlen(name) >= sizeof(key.name))
		return 0;
	memcpy(key.name, name, strlen(name));
	s = calloc(1, sizeof(*s));
	if (!s)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	/* an entry left by a killed command names a VIP of another service, or
	 * of none */
	if (bpf_map_lookup_elem(m->service_names, &key, &s->key) ||
	    bpf_map_lookup_elem(m->services, &s->key, &s->svc) || strcmp(s->svc.name, name)) {
		free(s);
		return 0;
	}
	r = table_read_config(m, s, err);
	if (r) {
		free(s);
		return r;
	}
	qsort(s->backends, s->nbackends, sizeof(s->backends[0]), table_cmp_backend_name);
	cfg->services = s;
	cfg->nservices = 1;
	return 0;
}

void ts_config_free(struct ts_config *cfg)
{
	for (size_t i = 0; i < cfg->nservices; i++)
		free(cfg->services[i].backends);
	free(cfg->services);
	memset(cfg, 0, sizeof(*cfg));
}

struct ts_service_cfg *ts_config_service(struct ts_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nservices; i++)
		if (!strcmp(cfg->services[i].svc.name, name))
			return &cfg->services[i];
	return NULL;
}

struct ts_service_cfg *ts_config_service_by_id(struct ts_config *cfg, __u32 id)
{
	for (size_t i = 0; i < cfg->nservices; i++)
		if (cfg->services[i].svc.id == id)
			return &cfg->services[i];
	return NULL;
}

__u32 ts_config_id_limit(const struct ts_config *cfg)
{
	__u32 n = 0;

	for (size_t i = 0; i < cfg->nservices; i++)
		for (size_t j = 0; j < cfg->services[i].nbackends; j++)
			if (cfg->services[i].backends[j].id >= n)
				n = cfg->services[i].backends[j].id + 1;
	return n;
}

struct ts_backend_cfg *ts_service_backend(struct ts_service_cfg *s, const char *name)
{
	for (size_t i = 0; i < s->nbackends; i++)
		if (!strcmp(s->backends[i].be.name, name))
			return &s->backends[i];
	return NULL;
}

int ts_config_read_quiet(const struct ts_maps *m, struct ts_config *cfg, __u64 *generation,
			 struct ts_err *err)
{
	struct ts_settings before, after;
	int r = ts_settings_read(m, &before, err);

	if (r)
		return r;
	if (before.flags & TS_SETTINGS_F_CHANGING)
		return -EAGAIN;
	r = ts_config_read(m, cfg, err);
	if (ts_settings_read(m, &after, err)) {
		if (!r)
			ts_config_free(cfg);
		return -TS_ERR_RUNTIME;
	}
	/* a change began (the flag) or committed (the generation) meanwhile:
	 * what was read may be half of it, or fail for that reason */
	if (after.generation != before.generation || after.flags & TS_SETTINGS_F_CHANGING) {
		if (!r)
			ts_config_free(cfg);
		return -EAGAIN;
	}
	*generation = before.generation;
	return r;
}

int ts_doc_read(const struct ts_maps *m, __u32 seed, struct ts_doc *doc, struct ts_err *err)
{
	struct ts_config cfg;
	int r = ts_config_read(m, &cfg, err);

	if (r)
		return r;
	r = ts_doc_from_config(&cfg, seed, doc, err);
	ts_config_free(&cfg);
	return r;
}

char *ts_doc_text_read(const struct ts_maps *m, struct ts_err *err)
{
	struct ts_settings settings;
	struct ts_doc doc;
	char *text;
	int r = ts_settings_read(m, &settings, err);

	r = r ?: ts_doc_read(m, settings.seed, &doc, err);
	if (r)
		return NULL;
	text = ts_doc_format(&doc);
	ts_doc_free(&doc);
	if (!text)
		ts_fail(err, TS_ERR_RUNTIME, "out of memory formatting the document");
	return text;
}
