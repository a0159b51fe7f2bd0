/*
 * test-packet-class: which outgoing frames are pure TCP acknowledgements
 * (packet-class.h).  Each frame is built here field by field from the
 * RFCs' layouts, independently of the classifier: Ethernet II (with
 * 802.1Q tags), IPv4 with and without options, IPv6, TCP with options,
 * and the cases that must not count (data, SYN, FIN, RST, URG, a
 * fragment, a cut frame, other protocols).
 */
#include "qemu/osdep.h"

#include "tools/colo-primary/packet-class.h"

typedef struct Frame {
    uint8_t b[256];
    size_t len;
} Frame;

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

/* An Ethernet frame of @type with @vlans 802.1Q tags. */
static size_t eth(Frame *f, uint16_t type, int vlans)
{
    size_t off = 12;

    memset(f->b, 0, sizeof(f->b));
    memset(f->b, 0x52, 6);                      /* dst */
    memset(f->b + 6, 0x54, 6);                  /* src */
    for (int i = 0; i < vlans; i++) {
        put16(f->b + off, 0x8100);
        put16(f->b + off + 2, 100 + i);
        off += 4;
    }
    put16(f->b + off, type);
    return off + 2;
}

/* TCP at @p: header of 20 + @opts bytes, @flags, then @data bytes. */
static size_t tcp(uint8_t *p, uint8_t flags, size_t opts, size_t data)
{
    size_t hlen = 20 + opts;

    put16(p, 7779);
    put16(p + 2, 40000);
    p[12] = (hlen / 4) << 4;
    p[13] = flags;
    put16(p + 14, 512);
    memset(p + 20, 1, opts);                    /* NOPs */
    memset(p + hlen, 'x', data);
    return hlen + data;
}

static void ipv4(Frame *f, uint8_t flags, size_t opts, size_t data,
                 int vlans, size_t ip_opts, uint16_t frag, uint8_t proto)
{
    size_t off = eth(f, 0x0800, vlans);
    uint8_t *ip = f->b + off;
    size_t ihl = 20 + ip_opts;
    size_t seg = tcp(ip + ihl, flags, opts, data);

    ip[0] = 0x40 | (ihl / 4);
    put16(ip + 2, ihl + seg);
    put16(ip + 6, frag);
    ip[8] = 64;
    ip[9] = proto;
    f->len = MAX(off + ihl + seg, (size_t)60);  /* Ethernet's padding */
}

static void ipv6(Frame *f, uint8_t flags, size_t opts, size_t data)
{
    size_t off = eth(f, 0x86dd, 0);
    uint8_t *ip = f->b + off;
    size_t seg = tcp(ip + 40, flags, opts, data);

    ip[0] = 0x60;
    put16(ip + 4, seg);
    ip[6] = 6;
    ip[7] = 64;
    f->len = off + 40 + seg;
}

#define ACK 0x10

static bool pure(const Frame *f)
{
    return packet_is_pure_ack(f->b, f->len);
}

static void test_pure_acks(void)
{
    Frame f;

    ipv4(&f, ACK, 0, 0, 0, 0, 0x4000, 6);       /* DF set: fine */
    g_assert_true(pure(&f));
    ipv4(&f, ACK, 12, 0, 0, 0, 0, 6);           /* timestamps */
    g_assert_true(pure(&f));
    ipv4(&f, ACK | 0x08, 12, 0, 0, 0, 0, 6);    /* PSH, no data */
    g_assert_true(pure(&f));
    ipv4(&f, ACK, 12, 0, 2, 0, 0, 6);           /* two VLAN tags */
    g_assert_true(pure(&f));
    ipv4(&f, ACK, 12, 0, 0, 8, 0, 6);           /* IP options */
    g_assert_true(pure(&f));
    ipv6(&f, ACK, 12, 0);
    g_assert_true(pure(&f));
}

static void test_output_a_client_waits_for(void)
{
    Frame f;

    ipv4(&f, ACK, 12, 1, 0, 0, 0, 6);           /* one byte of data */
    g_assert_false(pure(&f));
    ipv4(&f, ACK | 0x08, 12, 64, 0, 0, 0, 6);   /* a reply */
    g_assert_false(pure(&f));
    ipv4(&f, ACK | 0x02, 12, 0, 0, 0, 0, 6);    /* SYN-ACK */
    g_assert_false(pure(&f));
    ipv4(&f, ACK | 0x01, 12, 0, 0, 0, 0, 6);    /* FIN */
    g_assert_false(pure(&f));
    ipv4(&f, ACK | 0x04, 0, 0, 0, 0, 0, 6);     /* RST */
    g_assert_false(pure(&f));
    ipv4(&f, ACK | 0x20, 0, 0, 0, 0, 0, 6);     /* URG */
    g_assert_false(pure(&f));
    ipv4(&f, 0x00, 0, 0, 0, 0, 0, 6);           /* no ACK */
    g_assert_false(pure(&f));
    ipv4(&f, ACK, 0, 0, 0, 0, 0, 17);           /* UDP */
    g_assert_false(pure(&f));
    ipv6(&f, ACK, 0, 8);
    g_assert_false(pure(&f));
}

static void test_not_understood_counts_as_output(void)
{
    Frame f;

    ipv4(&f, ACK, 0, 0, 0, 0, 0x2000, 6);       /* more fragments */
    g_assert_false(pure(&f));
    ipv4(&f, ACK, 0, 0, 0, 0, 0x0010, 6);       /* a fragment's offset */
    g_assert_false(pure(&f));
    ipv4(&f, ACK, 0, 0, 3, 0, 0, 6);            /* three VLAN tags */
    g_assert_false(pure(&f));
    ipv4(&f, ACK, 0, 0, 0, 0, 0, 6);
    f.b[14] = 0x44;                             /* IHL 16 bytes */
    g_assert_false(pure(&f));
    ipv4(&f, ACK, 0, 0, 0, 0, 0, 6);
    f.b[14 + 20 + 12] = 0x40;                   /* TCP header of 16 */
    g_assert_false(pure(&f));
    ipv4(&f, ACK, 0, 0, 0, 0, 0, 6);
    put16(f.b + 16, 1500);                      /* longer than the frame */
    g_assert_false(pure(&f));
    eth(&f, 0x0806, 0);                         /* ARP */
    f.len = 42;
    g_assert_false(pure(&f));
    for (size_t cut = 0; cut < 54; cut++) {     /* every cut of an ACK */
        ipv4(&f, ACK, 0, 0, 0, 0, 0, 6);
        g_assert_false(packet_is_pure_ack(f.b, cut));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/packet-class/pure-acks", test_pure_acks);
    g_test_add_func("/packet-class/output", test_output_a_client_waits_for);
    g_test_add_func("/packet-class/not-understood",
                    test_not_understood_counts_as_output);
    return g_test_run();
}
