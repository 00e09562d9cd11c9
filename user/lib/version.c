// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Versions: this build's (VERSION, through build/version.h), and the running
 * object's. The loader writes its own version into the object's .rodata
 * (bpf/tcpshift.bpf.c: tcpshift_version) before the load, and the kernel keeps
 * that map as long as the programs live; it is read back here through the
 * attached program's map ids, the variable found by name in the map's BTF.
 * No pinned map holds it: their layouts stay as they are.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "version.h"

const char *ts_version(void)
{
	return TS_VERSION;
}

/* The variable tcpshift_version in a .rodata map (by its BTF): 0, -ENOENT
 * when that map has none (an object of a release before 0.3.0). */
static int rodata_version(int map_fd, const struct bpf_map_info *info, char *buf, size_t len)
{
	const struct btf_var_secinfo *vsi;
	const struct btf_type *t;
	struct btf *btf;
	__u32 zero = 0;
	char *value;
	int r = -ENOENT;

	if (!info->btf_id || !info->btf_value_type_id || !info->value_size)
		return -ENOENT;
	btf = btf__load_from_kernel_by_id(info->btf_id);
	if (!btf)
		return -errno;
	value = calloc(1, info->value_size);
	t = btf__type_by_id(btf, info->btf_value_type_id);
	if (!value || !t || !btf_is_datasec(t))
		goto out;
	if (bpf_map_lookup_elem(map_fd, &zero, value)) {
		r = -errno;
		goto out;
	}
	vsi = btf_var_secinfos(t);
	for (__u16 i = 0; i < btf_vlen(t); i++, vsi++) {
		const struct btf_type *var = btf__type_by_id(btf, vsi->type);
		size_t n;

		if (!var || strcmp(btf__name_by_offset(btf, var->name_off), "tcpshift_version") ||
		    vsi->offset + vsi->size > info->value_size)
			continue;
		n = strnlen(value + vsi->offset, vsi->size);
		if (n >= len)
			n = len - 1;
		memcpy(buf, value + vsi->offset, n);
		buf[n] = '\0';
		r = 0;
		break;
	}
out:
	free(value);
	btf__free(btf);
	return r;
}

int ts_prog_version(__u32 prog_id, char *buf, size_t len)
{
	struct bpf_prog_info info = {};
	__u32 ids[64], ilen = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(prog_id), r = -ENOENT;

	buf[0] = '\0';
	if (fd < 0)
		return -errno;
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen)) {
		r = -errno;
		close(fd);
		return r;
	}
	close(fd);
	for (__u32 i = 0; i < info.nr_map_ids && i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		const char *dot;
		int mfd = bpf_map_get_fd_by_id(ids[i]);

		if (mfd < 0)
			continue;
		dot = bpf_obj_get_info_by_fd(mfd, &mi, &mlen) ? NULL : strrchr(mi.name, '.');
		if (dot && !strcmp(dot, ".rodata"))
			r = rodata_version(mfd, &mi, buf, len);
		close(mfd);
		if (!r)
			break;
	}
	return r;
}

int ts_object_version(const struct ts_settings *s, const struct ts_owner *own, char *buf,
		      size_t len)
{
	buf[0] = '\0';
	for (__u32 i = 0; i < s->ndevices && i < TS_MAX_DEVICES; i++) {
		__u32 prog;

		if (ts_attached_prog((int)s->ifindex[i], own, &prog) == TS_SLOT_OURS && prog)
			return ts_prog_version(prog, buf, len) == -ENOENT ? -ENODATA : 0;
	}
	return -ENOENT;
}
