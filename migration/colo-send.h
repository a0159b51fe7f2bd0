/*
 * colo-send.h: the primary's side of QEMU's COLO protocol: a connection to
 * one secondary, its messages, and the framing of the initial stream and
 * of each checkpoint.  Used by colo-primary and colo-test-primary; the
 * byte layouts are in include/migration/wire.h and docs/colo.rst.
 *
 * Owner: the thread that drives the secondary.
 */
#ifndef MIGRATION_COLO_SEND_H
#define MIGRATION_COLO_SEND_H

#include "qemu/osdep.h"

#include "crypto/tls-session.h"
#include "migration/qemu-file.h"
#include "migration/ram-save.h"
#include "migration/wire.h"

typedef struct ColoPeer {
    char *uri;
    int fd;
    QEMUFile *in;               /* the secondary's messages */
    TlsPump *tls;               /* with TLS: @fd is its plaintext side */
    int stall_limit_ms;         /* 0: none (colo_peer_set_stall_limit) */
} ColoPeer;

/* tcp:HOST:PORT or unix:PATH, over TLS if @tls names credentials (an
 * endpoint=client tls-creds-x509; the server's certificate must carry
 * @tls->hostname, or HOST if that is empty).  Writes to a closed peer
 * fail with EPIPE (never SIGPIPE). */
ColoPeer *colo_peer_connect(const char *uri, const TlsParams *tls,
                            GError **errp);
void colo_peer_free(ColoPeer *p);
/* From now on a send that moves no byte, or a reply due that brings no
 * byte, for @ms milliseconds fails (ETIMEDOUT) naming the stalled link;
 * 0: no limit but TCP's own. */
void colo_peer_set_stall_limit(ColoPeer *p, int ms);
/* Any thread: shuts the connection down both ways, so that a thread
 * blocked sending to or reading from the secondary returns at once. */
void colo_peer_shutdown(ColoPeer *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoPeer, colo_peer_free)

bool colo_peer_send(ColoPeer *p, const void *data, size_t len,
                    GError **errp);
bool colo_peer_send_bytes(ColoPeer *p, GBytes *bytes, GError **errp);
/* A bare message word (CHECKPOINT_REQUEST, ...). */
bool colo_peer_send_message(ColoPeer *p, COLOMessage msg, GError **errp);
/* VMSTATE_SIZE and its be64. */
bool colo_peer_send_vmstate_size(ColoPeer *p, uint64_t size, GError **errp);
/* Reads one message word; an error names what came instead, or is the
 * secondary's own reason if it sent an X_STANDBY_ERROR report. */
bool colo_peer_expect(ColoPeer *p, COLOMessage msg, GError **errp);
/* After a failure on the link (*@errp set): if the secondary has sent
 * the reason it gave up (within COLO_PEER_REPORT_WAIT_MS), *@errp
 * becomes that and true is returned. */
#define COLO_PEER_REPORT_WAIT_MS 200
bool colo_peer_explain(ColoPeer *p, GError **errp);

/* When each step of colo_peer_send_checkpoint() ended (monotonic us). */
typedef struct ColoSendTimes {
    int64_t sent_us;            /* the last byte handed to the socket */
    int64_t received_us;        /* VMSTATE_RECEIVED read */
    int64_t loaded_us;          /* VMSTATE_LOADED read: committed */
} ColoSendTimes;

/*
 * The rest of a checkpoint once REQUEST and REPLY have been exchanged
 * (colo-primary does that while the VM is stopped): @live (from
 * colo_put_checkpoint_head() to _tail()), the size of @devices and
 * @devices, then wait for RECEIVED and LOADED.  @times (may be NULL)
 * gets when each step ended.
 */
bool colo_peer_send_checkpoint(ColoPeer *p, GBytes *live, GBytes *devices,
                               ColoSendTimes *times, GError **errp);

/* True if QEMU sends SWITCHOVER_START for @machine (pc-*-9.2 and newer:
 * the receiving QEMU of those machines expects it). */
bool colo_machine_sends_switchover(const char *machine);

/* What is COLO's own in a stream; the rest of the framing is
 * savevm-put.h's and ram-save.h's. */

/* Stream header, CONFIGURATION with @machine and the ENABLE_COLO
 * command: how an initial COLO stream starts. */
void colo_put_stream_head(QEMUFile *f, const char *machine);

/* VMSTATE_SEND, SWITCHOVER_START if @switchover, SECTION_END header: what
 * comes before a checkpoint's page records. */
void colo_put_checkpoint_head(QEMUFile *f, uint32_t section_id,
                              bool switchover);
/* EOS, footer and EOF after them. */
void colo_put_checkpoint_tail(RAMSaveState *rs, uint32_t section_id);

#endif /* MIGRATION_COLO_SEND_H */
