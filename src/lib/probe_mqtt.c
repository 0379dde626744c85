/* MQTT probe: the CONNECT packet a client sends first (MQTT 3.1.1 section 3.1, MQTT 5.0
 * section 3.1; MQTT 3.1 used the name "MQIsdp" with level 3). */
#include <string.h>

#include "mux443/lib/probe_mqtt.h"

/* A variable byte integer (at most 4 bytes) at p[*pos]: 1 read, 0 need more, -1 bad. */
static int varint(const uint8_t *p, size_t n, size_t *pos, uint32_t *v)
{
    *v = 0;
    for (unsigned k = 0; k < 4; k++) {
        if (*pos >= n)
            return 0;
        uint8_t b = p[(*pos)++];
        *v |= (uint32_t)(b & 0x7f) << (7 * k);
        if (!(b & 0x80))
            return 1;
    }
    return -1;
}

/* The parse; *need is the length at which the answer can change (on AGAIN). */
static enum probe_result parse(const uint8_t *p, size_t n, struct probe_out *out, size_t *need,
                               const char **why)
{
    size_t pos = 1;
    uint32_t rem, props = 0;
    int r;

#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (n < (k)) {                                                                             \
            *need = (k);                                                                           \
            return PROBE_AGAIN;                                                                    \
        }                                                                                          \
    } while (0)
#define BAD(text)                                                                                  \
    do {                                                                                           \
        *why = (text);                                                                             \
        return PROBE_NOMATCH;                                                                      \
    } while (0)

    NEED(1);
    if (p[0] != 0x10)
        BAD("not an MQTT CONNECT (first byte 0x10)");
    if ((r = varint(p, n, &pos, &rem)) <= 0) {
        if (r < 0)
            BAD("MQTT remaining length longer than 4 bytes");
        NEED(pos + 1);
    }
    size_t end = pos + rem; /* the packet's end */
    if (rem < 12)
        BAD("MQTT CONNECT shorter than its fields");
    NEED(pos + 2);
    size_t nl = (size_t)p[pos] << 8 | p[pos + 1];
    const char *name = nl == 4 ? "MQTT" : nl == 6 ? "MQIsdp" : NULL;
    if (!name)
        BAD("not an MQTT protocol name length (4 or 6)");
    pos += 2;
    for (size_t i = 0; i < nl; i++) {
        NEED(pos + i + 1);
        if (p[pos + i] != (uint8_t)name[i])
            BAD("not the MQTT protocol name");
    }
    pos += nl;
    NEED(pos + 1);
    uint8_t level = p[pos];
    if (nl == 6 ? level != 3 : (level != 4 && level != 5))
        BAD("unknown MQTT protocol level");
    NEED(pos + 2);
    if (p[pos + 1] & 1)
        BAD("MQTT CONNECT reserved flag set");
    pos += 4; /* level, flags, keep alive */
    if (level == 5) {
        NEED(pos + 1);
        if ((r = varint(p, n, &pos, &props)) <= 0) {
            if (r < 0)
                BAD("MQTT properties length longer than 4 bytes");
            NEED(pos + 1);
        }
        pos += props;
    }
    if (pos + 2 > end)
        BAD("MQTT CONNECT shorter than its fields");
    NEED(pos + 2);
    size_t cl = (size_t)p[pos] << 8 | p[pos + 1];
    pos += 2;
    if (pos + cl > end)
        BAD("MQTT client identifier longer than the packet");
    size_t keep = cl > PROBE_NAME_MAX ? PROBE_NAME_MAX : cl;
    NEED(pos + keep);
    memcpy(out->mqtt_client, p + pos, keep);
    out->mqtt_client[keep] = '\0';
    out->mqtt_client_len = (uint16_t)keep;
    out->mqtt_client_cut = keep < cl;
    out->mqtt_level = level;
    out->consumed = pos + keep; /* what was read: the packet may go on (will, password) */
    out->cls = CLASS_MQTT;
    return PROBE_MATCH;
#undef NEED
#undef BAD
}

enum probe_result probe_mqtt(const uint8_t *p, size_t n, struct probe_out *out)
{
    size_t need = 0;
    const char *why = NULL;

    memset(out, 0, sizeof(*out));
    enum probe_result r = parse(p, n, out, &need, &why);
    if (r != PROBE_MATCH) {
        memset(out, 0, sizeof(*out));
        out->why = why;
    }
    return r;
}

size_t probe_mqtt_need(const uint8_t *p, size_t n)
{
    struct probe_out out;
    size_t need = 0;
    const char *why = NULL;

    return parse(p, n, &out, &need, &why) == PROBE_AGAIN ? need : 0;
}

enum probe_result probe_mqtt_step(struct probe_state *st, const uint8_t *p, size_t n,
                                  struct probe_out *out, size_t *need)
{
    (void)st;
    enum probe_result r = probe_mqtt(p, n, out);
    if (r == PROBE_AGAIN)
        *need = probe_mqtt_need(p, n);
    return r;
}
