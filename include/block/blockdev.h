/*
 * blockdev.h: the disks colo-secondary holds for the protected VM (its
 * -blockdev nodes), and what a checkpoint does to all of them at once.
 *
 *   -blockdev driver=file,node-name=NAME,filename=PATH[,read-only=on]
 *             [,x-cache-size=MIB]
 *   -blockdev driver=raw,node-name=NAME,file.driver=file,file.filename=PATH
 *   -blockdev '{"driver": "file", "node-name": ..., "filename": ...}'
 *
 * Owner: main() creates it before the monitor and the migration; the set
 * of disks does not change afterwards, so readers need no lock.
 */
#ifndef BLOCK_BLOCKDEV_H
#define BLOCK_BLOCKDEV_H

#include "qemu/osdep.h"

#include "block/colo-disk.h"

/* QEMU's rule for node names: a letter, then letters, digits, '-', '.',
 * '_'; at most 31 characters. */
#define BLOCK_NODE_NAME_MAX 31

typedef struct BlockDevices BlockDevices;

BlockDevices *block_devices_new(const char *ram_dir);
void block_devices_free(BlockDevices *bd);

/* One -blockdev argument. */
bool block_devices_add_spec(BlockDevices *bd, const char *spec,
                            GError **errp);
bool block_node_name_valid(const char *name);

guint block_devices_count(const BlockDevices *bd);
ColoDisk *block_devices_nth(const BlockDevices *bd, guint i);
ColoDisk *block_devices_find(const BlockDevices *bd, const char *node);

/* Called once when the first write goes straight into an image. */
void block_devices_set_direct_write_hook(BlockDevices *bd, void (*fn)(void *),
                                         void *opaque);

/* The checkpoint side (colo-disk.h has what each step means). */
void block_devices_start_caching(BlockDevices *bd);
void block_devices_seal(BlockDevices *bd, uint64_t number);
void block_devices_discard(BlockDevices *bd);

#endif /* BLOCK_BLOCKDEV_H */
