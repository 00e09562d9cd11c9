// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The set of pinned maps and the layout each must have, read from the BPF
 * object's own map definitions (the skeleton, bpf/maps.h) when tcpshift is
 * built: a map added there is opened, validated and unpinned with no change
 * here. One source for the
 * set of maps (doc/DESIGN.md, "Instance identity and ownership").
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"

/*
 * What ts_map_layouts_of_object finds, written at build time (tools/gen-layouts.c,
 * build/layouts.h): a command that only opens the pinned maps does not parse
 * the BPF object and its BTF, which took two thirds of `tcpshift weight`.
 */
#include "layouts.h"

int ts_map_layouts(struct ts_map_layout *out, size_t *n, struct ts_err *err)
{
	*n = sizeof(ts_built_layouts) / sizeof(ts_built_layouts[0]);
	memcpy(out, ts_built_layouts, sizeof(ts_built_layouts));
	return 0;
}

/* Is fd a BPF map (a pin can also hold a program or a link)? */
static bool fd_is_map(int fd)
{
	char path[64], target[64];
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	len = readlink(path, target, sizeof(target) - 1);
	if (len < 0)
		return false;
	target[len] = '\0';
	return !strcmp(target, "anon_inode:bpf-map");
}

int ts_map_check(int fd, const char *path, const struct ts_map_layout *l, struct ts_err *err)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (!fd_is_map(fd))
		return ts_fail(err, TS_ERR_RUNTIME,
			       "%s is not a BPF map: the pin directory is not tcpshift's "
			       "(give another --pin-dir); nothing was changed",
			       path);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return ts_fail(err, TS_ERR_RUNTIME, "cannot inspect %s: %s", path,
			       strerror(errno));
	/* the kernel makes every devmap read-only to programs on its own */
	if (info.type == BPF_MAP_TYPE_DEVMAP_HASH)
		info.map_flags &= ~BPF_F_RDONLY_PROG;
	if (info.type != l->type || info.key_size != l->key_size ||
	    info.value_size != l->value_size || info.map_flags != l->map_flags)
		return ts_fail(err, TS_ERR_RUNTIME,
			       "pinned map %s has another layout (type %u, key %u, value %u bytes; "
			       "this tcpshift expects type %u, key %u, value %u): it is not this "
			       "tcpshift's; nothing was changed (give another --pin-dir, or "
			       "remove it after checking what it is)",
			       path, info.type, info.key_size, info.value_size, l->type,
			       l->key_size, l->value_size);
	return 0;
}

int ts_check_pin_dir(const char *dir, struct ts_err *err)
{
	struct ts_map_layout maps[TS_MAX_PINNED_MAPS];
	size_t n, longest = 0, comp = 0;

	if (!*dir)
		return ts_fail(err, TS_ERR_USAGE, "--pin-dir is empty: give a directory on bpffs");
	for (const char *p = dir; *p; p++) {
		comp = *p == '/' ? 0 : comp + 1;
		if (comp > NAME_MAX)
			return ts_fail(err, TS_ERR_USAGE,
				       "pin directory %.40s...: a path component is longer than %d "
				       "characters",
				       dir, NAME_MAX);
	}
	if (ts_map_layouts(maps, &n, err))
		return -err->status;
	for (size_t i = 0; i < n; i++)
		if (strlen(maps[i].name) > longest)
			longest = strlen(maps[i].name);
	/* dir/name must fit PATH_MAX (libbpf's pin path buffer) and our own */
	if (strlen(dir) + 1 + longest + 1 > TS_PIN_DIR_MAX)
		return ts_fail(err, TS_ERR_USAGE,
			       "pin directory %.40s... is too long (%zu characters; at most %zu): "
			       "give a shorter --pin-dir",
			       dir, strlen(dir), TS_PIN_DIR_MAX - longest - 2);
	return 0;
}
