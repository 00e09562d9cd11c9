// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pinned maps' layouts as the BPF object defines them (the skeleton):
 * what the build writes into layout.c's table (tools/gen-layouts.c), and what
 * the tests compare it with. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "tcpshift.skel.h"

int ts_map_layouts_of_object(struct ts_map_layout *out, size_t *n, struct ts_err *err)
{
	struct tcpshift_bpf *skel = tcpshift_bpf__open();
	struct bpf_map *map;
	int r = 0;

	*n = 0;
	if (!skel)
		return ts_fail(err, TS_ERR_RUNTIME, "cannot open the BPF object: %s",
			       strerror(errno));
	bpf_object__for_each_map(map, skel->obj) {
		struct ts_map_layout *l = &out[*n];

		/* pinned by name: the maps of bpf/maps.h, not .rodata */
		if (bpf_map__is_internal(map) || !bpf_map__pin_path(map))
			continue;
		if (*n == TS_MAX_PINNED_MAPS) {
			r = ts_fail(err, TS_ERR_RUNTIME, "more than %d pinned maps",
				    TS_MAX_PINNED_MAPS);
			break;
		}
		snprintf(l->name, sizeof(l->name), "%s", bpf_map__name(map));
		l->type = bpf_map__type(map);
		l->key_size = bpf_map__key_size(map);
		l->value_size = bpf_map__value_size(map);
		l->map_flags = bpf_map__map_flags(map);
		(*n)++;
	}
	tcpshift_bpf__destroy(skel);
	return r;
}
