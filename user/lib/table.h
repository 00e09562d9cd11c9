/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Inside libtcpshift: a service's table (table.c), for reading the
 * configuration (config_read.c) and changing it (config.c). */
#ifndef TCPSHIFT_TABLE_H
#define TCPSHIFT_TABLE_H

#include "libtcpshift.h"

/* A service's table, open. */
struct table_view {
	int	fd;
	__u32	half_len;
};

int table_cmp_backend_name(const void *a, const void *b);
void table_close(struct table_view *t);
/* Open service svc's table, checked against what svc says of it. */
int table_open(const struct ts_maps *m, const struct ts_service *svc, struct table_view *t,
	       struct ts_err *err);
/* Entries [first, first + n), with one batch command. */
int table_read(struct table_view *t, __u32 first, __u32 n, struct ts_table_entry *out,
	       struct ts_err *err);
int table_write(struct table_view *t, __u32 first, __u32 n,
		const struct ts_table_entry *in, struct ts_err *err);
/* Build half `half` of t for b[0..n) (sorted by name) and write it. */
int table_put_half(struct table_view *t, __u32 half, __u32 size,
		   const struct ts_backend_cfg *b, size_t n, struct ts_err *err);
/* Write one half: the Maglev slots for b[0..n) (sorted by name), then the
 * configuration they come from. */
int table_write_half(struct ts_table_entry *half, __u32 size, const struct ts_backend_cfg *b,
		     size_t n, struct ts_err *err);
/* A new table for service svc (its id, table_size and half_len; its halves not
 * written yet: the change that makes one live writes it first), put in
 * `tables`: live once a service entry refers to it. */
int table_create(struct ts_maps *m, const struct ts_service *svc, struct ts_err *err);
/* The same for n services with one update of `tables`: each update of an array
 * of maps waits for an RCU grace period (milliseconds), a batch once. */
int table_create_many(struct ts_maps *m, const struct ts_service *svcs, size_t n,
		      struct ts_err *err);
/* An id no service's table holds (searched from where this process last
 * found one). */
int table_free_id(struct ts_maps *m, __u32 *id, struct ts_err *err);
/* How many backends a table of size M lists (ts_service.half_len = M + 1 +
 * room): a size that follows the backends has room up to the next size. */
__u32 table_room(__u32 size, bool fixed);
/* Build s's table from b[0..n) into the half that is not live, set the
 * membership bits, switch: the commit of a change to a service. */
int table_install(struct ts_maps *m, struct ts_service_cfg *s, const struct ts_backend_cfg *b,
		  size_t n, struct ts_err *err);
/* The (id, weight) pairs of s's live half (ids checked against the limit). */
int table_read_list(const struct ts_maps *m, struct ts_service_cfg *s, struct ts_err *err);
/* The same, and their backends. */
int table_read_config(const struct ts_maps *m, struct ts_service_cfg *s, struct ts_err *err);
/* Make s's backends members of its live half only (unsettled), so that its
 * flows' packets read its entry: before the delete of the service. */
int table_unsettle(struct ts_maps *m, const struct ts_service_cfg *s, struct ts_err *err);

#endif /* TCPSHIFT_TABLE_H */
