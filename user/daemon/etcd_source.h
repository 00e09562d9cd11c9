/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent's configuration source: a document in etcd (etcd_source.c). */
#ifndef TCPSHIFT_ETCD_SOURCE_H
#define TCPSHIFT_ETCD_SOURCE_H

#include <pthread.h>

#include "etcd.h"
#include "prom.h"

/*
 * etcd_source.c: the configuration from etcd. A thread of its own watches
 * url's key and makes the instance's configuration equal to every document
 * stored there (ts_doc_import, as `tcpshift import`), through m, maps
 * opened for this thread alone. status_key (NULL: none) is a key of the same etcd
 * where it reports, after each document, which revision is in force here.
 */
struct etcd_source;

int etcd_source_start(struct etcd_source **out, const struct ts_etcd_url *url,
		      const char *status_key, struct ts_maps *m, struct ts_err *err);
/* Its counters and state now (for the metrics). */
void etcd_source_metrics(struct etcd_source *s, struct ts_source_metrics *out);
/* Stop the thread (within a moment, whatever it waits for) and free s. */
void etcd_source_stop(struct etcd_source *s);

#endif /* TCPSHIFT_ETCD_SOURCE_H */
