/* Unit tests for udp_demux: captured UDP first datagrams (turnutils_stunclient's Binding,
 * turnutils_uclient's Allocate, Chromium's ICE check without its RFC 4571 frame,
 * Chromium's QUIC Initial), hand-built DTLS/ChannelData/RTP/RTCP/QUIC headers, and every
 * first byte with every length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux443/lib/udp_demux.h"
#include "test_util.h"

static struct udp_first out;

/* udp_demux over an exact-size heap copy, so ASan sees any over-read. */
static void demux(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);

    if (n > 0)
        memcpy(c, p, n);
    udp_demux(c, n, &out);
    free(c);
    assert_true(out.ufrag_len <= UFRAG_MAX);
    assert_int_equal(out.ufrag[out.ufrag_len], '\0');
    assert_true((out.kind == UDP_OTHER) == (out.side == UDP_SIDE_NONE && out.why != NULL) ||
                ((out.kind == UDP_STUN || out.kind == UDP_QUIC) && out.side == UDP_SIDE_NONE));
    assert_true(out.side != UDP_SIDE_QUIC || (out.kind == UDP_QUIC && n >= QUIC_INITIAL_MIN));
}

static void test_stun_vectors(void **state)
{
    size_t n;
    uint8_t *p = tu_load("turnutils-stunclient-udp.bin", &n);

    demux(p, n);
    assert_int_equal(out.kind, UDP_STUN);
    assert_int_equal(out.stun_method, STUN_M_BINDING);
    assert_int_equal(out.stun_class, STUN_REQUEST);
    assert_int_equal(out.side, UDP_SIDE_TURN); /* no USERNAME: the STUN server's */
    assert_int_equal(out.ufrag_len, 0);
    assert_memory_equal(out.tid, p + 8, 12);
    /* a byte more or less is not one STUN message */
    demux(p, n - 1);
    assert_int_equal(out.kind, UDP_OTHER);
    free(p);

    p = tu_load("turnutils-uclient-udp.bin", &n);
    demux(p, n);
    assert_int_equal(out.kind, UDP_STUN);
    assert_int_equal(out.stun_method, STUN_M_ALLOCATE);
    assert_int_equal(out.stun_class, STUN_REQUEST);
    assert_int_equal(out.side, UDP_SIDE_TURN);
    assert_null(out.why);
    p[7] ^= 1; /* cookie */
    demux(p, n);
    assert_int_equal(out.kind, UDP_OTHER);
    assert_string_equal(out.why, "no STUN magic cookie");
    free(p);
}

static void test_ice_check(void **state)
{
    size_t n;
    uint8_t *p = tu_load("chromium-ice-tcp-binding.bin", &n);

    /* the STUN message inside the RFC 4571 frame is what Chromium sends over UDP */
    demux(p + 2, n - 2);
    assert_int_equal(out.kind, UDP_STUN);
    assert_int_equal(out.stun_method, STUN_M_BINDING);
    assert_int_equal(out.side, UDP_SIDE_MEDIA);
    assert_string_equal(out.ufrag, "dptM");
    assert_int_equal(out.ufrag_len, 4);
    assert_null(out.why);
    /* what a UDP fan-out asks of a check: a client ufrag too, and MESSAGE-INTEGRITY */
    assert_true(out.cufrag_ok);
    assert_true(out.integrity);

    /* the same check as a success response: back to whoever asked, never a new flow */
    p[2] = 0x01, p[3] = 0x01;
    demux(p + 2, n - 2);
    assert_int_equal(out.stun_class, STUN_SUCCESS);
    assert_int_equal(out.side, UDP_SIDE_REPLY);
    /* and as an Allocate success: a reply too */
    p[3] = 0x03;
    demux(p + 2, n - 2);
    assert_int_equal(out.side, UDP_SIDE_REPLY);
    /* a Data indication comes from servers only */
    p[2] = 0x00, p[3] = 0x17;
    demux(p + 2, n - 2);
    assert_int_equal(out.stun_method, STUN_M_DATA);
    assert_int_equal(out.side, UDP_SIDE_NONE);
    assert_non_null(out.why);
    free(p);
}

/* Appends a STUN attribute (value padded to 4) to the message m of *n bytes, and sets
 * the header's length. */
static void attr(uint8_t *m, size_t *n, uint16_t type, const char *v, size_t len)
{
    m[*n] = (uint8_t)(type >> 8), m[*n + 1] = (uint8_t)type;
    m[*n + 2] = 0, m[*n + 3] = (uint8_t)len;
    memcpy(m + *n + 4, v, len);
    memset(m + *n + 4 + len, 0, 3);
    *n += 4 + ((len + 3) & ~(size_t)3);
    m[3] = (uint8_t)(*n - 20);
}

static void test_username_edges(void **state)
{
    uint8_t m[96] = {0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42};
    size_t n = 20;

    /* a server ufrag shorter than 4: an ICE check nobody can own */
    attr(m, &n, 0x0006, "ab:cd", 5);
    demux(m, n);
    assert_int_equal(out.kind, UDP_STUN);
    assert_int_equal(out.side, UDP_SIDE_NONE);
    assert_string_equal(out.why, "STUN USERNAME server ufrag is not a valid ufrag");

    /* a USERNAME after MESSAGE-INTEGRITY does not count */
    n = 20;
    attr(m, &n, 0x0008, "AAAA", 4);
    attr(m, &n, 0x0006, "abcd:efgh", 9);
    demux(m, n);
    assert_int_equal(out.side, UDP_SIDE_TURN);
    assert_int_equal(out.ufrag_len, 0);

    n = 20;
    attr(m, &n, 0x0006, "abcd:efgh", 9);
    demux(m, n);
    assert_int_equal(out.side, UDP_SIDE_MEDIA);
    assert_string_equal(out.ufrag, "abcd");
    assert_true(out.cufrag_ok);
    assert_false(out.integrity); /* no MESSAGE-INTEGRITY: never fanned out */
    /* a client ufrag shorter than 4 still routes by the server's, but cannot fan out */
    n = 20;
    attr(m, &n, 0x0006, "abcd:ef", 7);
    attr(m, &n, 0x001C, "AAAA", 4); /* MESSAGE-INTEGRITY-SHA256 */
    demux(m, n);
    assert_int_equal(out.side, UDP_SIDE_MEDIA);
    assert_false(out.cufrag_ok);
    assert_true(out.integrity);
    n = 20;
    attr(m, &n, 0x0006, "abcd:efgh", 9);
    demux(m, n);
    /* an attribute longer than the datagram */
    m[23] = 0x40;
    demux(m, n);
    assert_int_equal(out.kind, UDP_OTHER);
    assert_string_equal(out.why, "STUN attribute overruns the datagram");
}

static void test_other_protocols(void **state)
{
    /* DTLS 1.2 ClientHello record header, as Chromium sends (content type 22, fe fd) */
    static const uint8_t dtls[] = {22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60, 1};
    uint8_t chan[] = {0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4};
    static const uint8_t rtp[12] = {0x80, 0x6f, 0x12, 0x34};
    static const uint8_t rtcp[8] = {0x81, 0xc9, 0x00, 0x01};
    static const uint8_t quic[8] = {0xc3, 0x00, 0x00, 0x00, 0x01, 0, 0, 0x55};

    demux(dtls, sizeof(dtls));
    assert_int_equal(out.kind, UDP_DTLS);
    assert_int_equal(out.side, UDP_SIDE_MEDIA);
    demux(dtls, 12);
    assert_int_equal(out.kind, UDP_OTHER);
    demux(chan, sizeof(chan));
    assert_int_equal(out.kind, UDP_CHANNEL);
    assert_int_equal(out.side, UDP_SIDE_TURN);
    assert_int_equal(out.channel, 0x4001);
    /* an RFC 5766 channel number, as coturn's turnutils_uclient picks */
    chan[0] = 0x70;
    demux(chan, sizeof(chan));
    assert_int_equal(out.kind, UDP_CHANNEL);
    assert_int_equal(out.channel, 0x7001);
    demux(chan, sizeof(chan) - 1); /* length 4 with 3 bytes of data */
    assert_int_equal(out.kind, UDP_OTHER);
    demux(rtp, sizeof(rtp));
    assert_int_equal(out.kind, UDP_RTP);
    assert_int_equal(out.rtcp, 0);
    assert_int_equal(out.side, UDP_SIDE_MEDIA);
    demux(rtcp, sizeof(rtcp));
    assert_int_equal(out.kind, UDP_RTP);
    assert_int_equal(out.rtcp, 1);
    demux(rtp, 8); /* an RTP header cut at 8 bytes */
    assert_int_equal(out.kind, UDP_OTHER);
    demux(quic, sizeof(quic)); /* a long header, too short to be a client's Initial */
    assert_int_equal(out.kind, UDP_QUIC);
    assert_int_equal(out.quic_version, 1);
    assert_int_equal(out.side, UDP_SIDE_NONE);
    demux(quic, 6); /* the SCID length byte is missing */
    assert_int_equal(out.kind, UDP_OTHER);
    demux(NULL, 0);
    assert_string_equal(out.why, "empty datagram");
}

/* Chromium's first QUIC datagram (tests/vectors): a v1 Initial padded to 1250 bytes opens
 * a QUIC flow; the same header in shapes no client sends first does not. */
static void test_quic_initial(void **state)
{
    size_t n;
    uint8_t *p = tu_load("chromium-quic-initial-udp.bin", &n);

    assert_int_equal(n, 1250);
    demux(p, n);
    assert_int_equal(out.kind, UDP_QUIC);
    assert_int_equal(out.side, UDP_SIDE_QUIC);
    assert_int_equal(out.quic_version, 1);
    assert_int_equal(out.quic_dcid_len, p[5]);
    assert_null(out.why);
    demux(p, QUIC_INITIAL_MIN - 1); /* not padded to 1200: not a client's Initial */
    assert_int_equal(out.kind, UDP_QUIC);
    assert_int_equal(out.side, UDP_SIDE_NONE);
    assert_non_null(out.why);
    demux(p, QUIC_INITIAL_MIN);
    assert_int_equal(out.side, UDP_SIDE_QUIC);
    p[0] = (uint8_t)((p[0] & 0xcf) | 0x20); /* v1 Handshake */
    demux(p, n);
    assert_int_equal(out.side, UDP_SIDE_NONE);
    p[1] = 0x6b, p[2] = 0x33, p[3] = 0x43, p[4] = 0xcf; /* v2 (RFC 9369): type 1 is Initial */
    p[0] = (uint8_t)((p[0] & 0xcf) | 0x10);
    demux(p, n);
    assert_int_equal(out.side, UDP_SIDE_QUIC);
    assert_int_equal(out.quic_version, 0x6b3343cf);
    p[1] = p[2] = p[3] = p[4] = 0; /* Version Negotiation: only servers send it */
    demux(p, n);
    assert_int_equal(out.side, UDP_SIDE_NONE);
    p[4] = 0x2a; /* a version mux443 does not know: the backend negotiates */
    demux(p, n);
    assert_int_equal(out.side, UDP_SIDE_QUIC);
    p[5] = 255; /* a DCID longer than the datagram's rest */
    demux(p, 200);
    assert_int_equal(out.kind, UDP_OTHER);
    free(p);
    (void)state;
}

/* Every first byte, every length up to 80 of a buffer that otherwise looks like STUN:
 * the kind depends on the first byte's RFC 9443 range only. */
static void test_every_first_byte(void **state)
{
    uint8_t b[80] = {0};

    b[4] = 0x21, b[5] = 0x12, b[6] = 0xa4, b[7] = 0x42;
    for (unsigned v = 0; v < 256; v++) {
        for (size_t n = 0; n <= sizeof(b); n++) {
            b[0] = (uint8_t)v;
            b[1] = 0xfe;
            b[3] = (uint8_t)(n >= 20 ? n - 20 : 0);
            demux(b, n);
            if (out.kind == UDP_OTHER)
                continue;
            assert_true(n > 0);
            switch (out.kind) {
            case UDP_STUN:
                assert_true(v <= 3);
                break;
            case UDP_DTLS:
                assert_true(v >= 20 && v <= 63);
                break;
            case UDP_CHANNEL:
                assert_true(v >= 64 && v <= 127);
                break;
            case UDP_RTP:
                assert_true(v >= 128 && v <= 191);
                break;
            case UDP_QUIC:
                assert_true(v >= 192);
                break;
            default:
                fail();
            }
            assert_string_not_equal(udp_kind_name(out.kind), "?");
            assert_string_not_equal(udp_side_name(out.side), "?");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stun_vectors),     cmocka_unit_test(test_ice_check),
        cmocka_unit_test(test_username_edges),   cmocka_unit_test(test_other_protocols),
        cmocka_unit_test(test_every_first_byte), cmocka_unit_test(test_quic_initial),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
