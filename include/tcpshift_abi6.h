/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Layout 6 (release 0.x before scaling): the map values and sizes whose layout
 * differs from today's (include/tcpshift.h), as that layout pinned them. Only
 * `load`'s migration and `downgrade` (user/lib/migrate.c) and `unload` of such
 * an instance use them; layout 5 had the same for all of these.
 *
 * What layout 7 changed:
 *   services        value: pad became half_len, flags added; allocated as it fills
 *   service_names   new (service name -> VIP)
 *   tables          256 entries -> 65,536; each table's halves were M + 1 + 256
 *   backends        4,096 entries -> 262,144
 *   backend_addrs   allocated as it fills
 *   backend_stats   per-CPU array -> per-CPU hash, allocated as it fills
 *   rollouts        256 entries -> 65,536
 *   settings        same value; TS_SETTINGS_F_CHANGING is new
 */
#ifndef TCPSHIFT_ABI6_H
#define TCPSHIFT_ABI6_H

#include "tcpshift.h"

#define TS_ABI6_VERSION			6
#define TS_ABI6_MAX_SERVICES		256
#define TS_ABI6_MAX_BACKENDS		4096
#define TS_ABI6_MAX_SERVICE_BACKENDS	256

/* services: today's struct ts_service without flags, pad for half_len */
struct ts_service_abi6 {
	__u32	id;
	__u32	table_size;
	__u32	table_half;
	__u32	pad;
	char	name[TS_NAME_LEN];
	struct ts_health_check health;
};

#endif /* TCPSHIFT_ABI6_H */
