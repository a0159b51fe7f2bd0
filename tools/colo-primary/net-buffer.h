/*
 * net-buffer.h: the VM's network output, held per checkpoint epoch and
 * released only when the secondary has committed that checkpoint, with
 * stock QEMU's network filters driven over QMP (net-buffer.c).
 *
 * For each netdev that is the peer of a NIC (found with "info network"):
 *
 *   guest -> NIC -> netdev's rx queue:  mirror  ->  F(newest) ... F(oldest)  -> tap
 *
 * rx filters see packets tail first.  At the tail sits a filter-mirror
 * whose copy of every packet comes to us over a UNIX socket: we only
 * count it (packets, bytes, when), nothing goes back.  Behind it, one
 * filter-buffer per epoch (or more: see below), each inserted just
 * before the mirror, so the newest one catches what the guest sends
 * now and the older ones keep what they hold.  Releasing an epoch is
 * object-del of its buffers, oldest first: QEMU hands their packets on
 * towards the tap, in order.
 *
 * Limits: a filter-buffer silently drops what it receives beyond 10,000
 * packets, so a buffer that has caught NET_BUFFER_ROTATE_PACKETS is
 * followed by a fresh one of the same epoch (a rotation; no packet is
 * lost, none leaves early).  An epoch that holds more than
 * NET_BUFFER_EPOCH_PACKETS or NET_BUFFER_EPOCH_BYTES asks for an early
 * checkpoint instead of holding ever more.
 *
 * If colo-primary dies, the release guard (a child process that waits for
 * us to go away) connects to QEMU's QMP socket and deletes every filter
 * we left, so the VM's output flows again (the VM goes on alone).
 *
 * Threads: the session thread calls everything here; a reader thread
 * counts the mirrored packets; a rotation thread adds buffers when one
 * fills (it never blocks the reader: QEMU writes the mirror synchronously
 * and must not wait for a QMP reply of ours).
 */
#ifndef COLO_PRIMARY_NET_BUFFER_H
#define COLO_PRIMARY_NET_BUFFER_H

#include "qemu/osdep.h"

#include "monitor/qmp-client.h"

#define NET_BUFFER_ROTATE_PACKETS 4000
#define NET_BUFFER_EPOCH_PACKETS 40000
#define NET_BUFFER_EPOCH_BYTES (48u << 20)

typedef struct NetBuffer NetBuffer;

typedef struct NetBufferStats {
    guint netdevs;
    uint64_t packets_held, bytes_held;          /* now */
    uint64_t packets_held_peak;                 /* the most at once */
    uint64_t packets_released, bytes_released;  /* so far */
    int64_t latency_mean_us, latency_max_us;    /* caught -> released */
    uint64_t buffers_added, rotations, early_checkpoints;
    uint64_t pure_acks;                         /* of the packets seen */
} NetBufferStats;

/* Called on the reader thread when an epoch holds too much: the owner
 * should checkpoint now. */
typedef void (*NetBufferLimitFn)(void *opaque);
/* Called on the reader thread for the first packet of epoch @epoch of
 * each kind, seen at @at (monotonic us): output is pending.  @ack: a
 * pure TCP acknowledgement (packet-class.h), else output of any other
 * kind. */
typedef void (*NetBufferOutputFn)(void *opaque, uint64_t epoch, int64_t at,
                                  bool ack);

/* What net_buffer_new tells its owner. */
typedef struct NetBufferCallbacks {
    NetBufferLimitFn limit;
    NetBufferOutputFn output;   /* NULL: not told */
    void *opaque;
} NetBufferCallbacks;

/* Finds the VM's netdevs over @qmp and puts a mirror on each (nothing
 * is held yet); @work_dir holds the mirror sockets (unless @qmp passes
 * descriptors: then QEMU gets socket pairs).  Starts the release guard
 * (@guard_exe --x-net-release-guard VM_ARGS..., @vm_args being the
 * options that name QEMU: --qmp PATH or --libvirt-domain NAME ...) unless
 * @guard_exe is
 * NULL (--held-output keep: nothing is released behind the owner's
 * back).  A VM without a NIC
 * gets a NetBuffer with no netdevs.  On error (e.g. a vhost or multiqueue
 * netdev, which QEMU's filters refuse) nothing is left in QEMU. */
NetBuffer *net_buffer_new(QmpClient *qmp, const char *const *vm_args,
                          const char *work_dir, const char *guard_exe,
                          const NetBufferCallbacks *cb, GError **errp);
/* With the VM stopped: a buffer per netdev for @epoch, which starts at
 * the next cont.  Packets of earlier epochs stay where they are. */
bool net_buffer_begin_epoch(NetBuffer *nb, uint64_t epoch, GError **errp);
/* Checkpoint @epoch is committed: releases every epoch <= @epoch. */
bool net_buffer_release(NetBuffer *nb, uint64_t epoch, GError **errp);
/* Releases everything it can (past errors), removes the mirrors; the
 * guard goes. */
void net_buffer_free(NetBuffer *nb);
/* The same, except that what is held stays held in QEMU (buffers of
 * epochs that never committed, and the newest one, which goes on
 * catching): for a cluster manager that must first make sure the standby
 * can no longer take over, then calls net_buffer_release_leftovers(). */
void net_buffer_free_keeping_held(NetBuffer *nb);
/* Deletes every buffer (oldest first), mirror and chardev a colo-primary
 * left in QEMU: the VM's output flows again.  Returns the buffers
 * deleted. */
guint net_buffer_release_leftovers(QmpClient *qmp);
void net_buffer_stats(NetBuffer *nb, NetBufferStats *st);
/* "n0 (tap), n1 (user)" */
char *net_buffer_describe(NetBuffer *nb);

/* colo-primary --x-net-release-guard VM_ARGS...: waits on stdin; at EOF
 * without a "done" line first, reaches QEMU with @open_qemu (NULL: QEMU
 * is gone) and deletes what a dead colo-primary left in it.  Returns the
 * exit status. */
typedef QmpClient *(*NetBufferOpenQemu)(void *opaque, GError **errp);
int net_buffer_guard_main(NetBufferOpenQemu open_qemu, void *opaque);

#endif /* COLO_PRIMARY_NET_BUFFER_H */
