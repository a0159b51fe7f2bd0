/*
 * packet-class.c: a pure TCP acknowledgement, told from the first bytes
 * of an Ethernet frame (packet-class.h).  Layouts: Ethernet II with up
 * to two 802.1Q/802.1ad tags, IPv4 (RFC 791) with options, IPv6 (RFC
 * 8200) without extension headers, TCP (RFC 9293).
 */
#include "qemu/osdep.h"

#include "tools/colo-primary/packet-class.h"

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define IPPROTO_TCP_NUM 6
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define TCP_URG 0x20

static uint16_t be16_at(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* The TCP header at @tcp (@avail bytes of it read) carries no data
 * beyond @seg_len - its own length, and only an ACK. */
static bool tcp_pure_ack(const uint8_t *tcp, size_t avail, size_t seg_len)
{
    size_t hlen;
    uint8_t flags;

    if (avail < 20 || seg_len < 20) {
        return false;
    }
    hlen = (size_t)(tcp[12] >> 4) * 4;
    flags = tcp[13];
    return hlen >= 20 && seg_len == hlen && (flags & TCP_ACK) &&
           !(flags & (TCP_FIN | TCP_SYN | TCP_RST | TCP_URG));
}

bool packet_is_pure_ack(const uint8_t *frame, size_t len)
{
    size_t have = MIN(len, (size_t)PACKET_CLASS_HEAD);
    size_t off = ETH_HLEN;
    uint16_t type;

    if (have < ETH_HLEN) {
        return false;
    }
    type = be16_at(frame + 12);
    for (int tags = 0; tags < 2 &&
         (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ); tags++) {
        if (have < off + 4) {
            return false;
        }
        type = be16_at(frame + off + 2);
        off += 4;
    }
    if (type == ETHERTYPE_IPV4) {
        const uint8_t *ip = frame + off;
        size_t ihl, total;

        if (have < off + 20 || (ip[0] >> 4) != 4) {
            return false;
        }
        ihl = (size_t)(ip[0] & 0x0f) * 4;
        total = be16_at(ip + 2);
        /* a fragment is not understood: more fragments or an offset */
        if (ihl < 20 || total < ihl || total > len - off ||
            (be16_at(ip + 6) & 0x3fff) || ip[9] != IPPROTO_TCP_NUM ||
            have < off + ihl) {
            return false;
        }
        return tcp_pure_ack(ip + ihl, have - off - ihl, total - ihl);
    }
    if (type == ETHERTYPE_IPV6) {
        const uint8_t *ip = frame + off;
        size_t payload;

        if (have < off + 40 || (ip[0] >> 4) != 6 || ip[6] != IPPROTO_TCP_NUM) {
            return false;
        }
        payload = be16_at(ip + 4);
        if (payload > len - off - 40) {
            return false;
        }
        return tcp_pure_ack(ip + 40, have - off - 40, payload);
    }
    return false;
}
