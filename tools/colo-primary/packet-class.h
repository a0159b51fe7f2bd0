/*
 * packet-class.h: which of the guest's outgoing packets a client waits
 * for (packet-class.c).  Every packet is held until its checkpoint
 * commits; this only decides which ones start a checkpoint early
 * (session.c's output trigger).
 *
 * A pure TCP acknowledgement (ACK, no payload, no SYN, FIN, RST or URG;
 * a window update is one too) is told apart: docs/network.rst says what
 * measurement decided about it.  Everything else, ARP, UDP, ICMP, TCP
 * with data or a SYN/FIN/RST, and anything not understood, is output a
 * client may wait for.
 */
#ifndef COLO_PRIMARY_PACKET_CLASS_H
#define COLO_PRIMARY_PACKET_CLASS_H

#include "qemu/osdep.h"

/* The bytes of a frame classify_packet() reads at most. */
#define PACKET_CLASS_HEAD 128

/* @frame: the first min(@len, PACKET_CLASS_HEAD) bytes of an Ethernet
 * frame of @len bytes (no vnet header).  True for a pure TCP
 * acknowledgement. */
bool packet_is_pure_ack(const uint8_t *frame, size_t len);

#endif /* COLO_PRIMARY_PACKET_CLASS_H */
