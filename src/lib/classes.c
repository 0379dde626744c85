/* Class names and labels: one table. */
#include <string.h>

#include "mux443/lib/classes.h"

static const struct {
    const char *plain;          /* class_name: configuration and plain connections */
    const char *inside;         /* logged name when found inside terminated TLS */
    enum class_label inside_lb; /* counted label when found inside terminated TLS */
} classes[CLASS_COUNT] = {
    /* Handshake done (or under way), nothing recognised yet. */
    [CLASS_NONE] = {"none", "tls", LABEL_TLS},
    [CLASS_TLS] = {"tls", "tls", LABEL_TLS},
    [CLASS_HTTP] = {"http", "https", LABEL_HTTPS},
    [CLASS_WEBSOCKET] = {"websocket", "wss", LABEL_WSS},
    [CLASS_STUN] = {"stun", "turns", LABEL_TURNS},
    [CLASS_ICE_TCP] = {"ice-tcp", "tls", LABEL_TLS},
    [CLASS_SIP] = {"sip", "sips", LABEL_SIPS},
    [CLASS_MQTT] = {"mqtt", "mqtts", LABEL_MQTTS},
    [CLASS_SSH] = {"ssh", "ssh-tls", LABEL_SSH_TLS},
    [CLASS_QUIC] = {"quic", "tls", LABEL_TLS}, /* UDP only: never found inside TLS */
    [CLASS_UNKNOWN] = {"unknown", "tls-unknown", LABEL_UNKNOWN},
    [CLASS_TIMEOUT] = {"timeout", "tls-timeout", LABEL_UNKNOWN},
};

static const char *const label_names[LABEL_COUNT] = {
    "none", "tls",     "http",    "websocket", "stun", "ice-tcp", "sip",  "mqtt",  "ssh",
    "quic", "unknown", "timeout", "https",     "wss",  "turns",   "sips", "mqtts", "ssh-tls"};

_Static_assert((int)LABEL_TIMEOUT == (int)CLASS_TIMEOUT,
               "plain labels are the classes in enum order");

const char *class_name(enum mux_class cls)
{
    return (unsigned)cls < CLASS_COUNT ? classes[cls].plain : "none";
}

enum mux_class class_from_name(const char *name)
{
    for (unsigned i = 0; name && i < CLASS_COUNT; i++)
        if (strcmp(classes[i].plain, name) == 0)
            return (enum mux_class)i;
    return CLASS_NONE;
}

enum class_label class_label_of(enum mux_class cls, bool inside_tls)
{
    if ((unsigned)cls >= CLASS_COUNT)
        return LABEL_NONE;
    return inside_tls ? classes[cls].inside_lb : (enum class_label)cls;
}

const char *class_label_name(enum class_label l)
{
    return (unsigned)l < LABEL_COUNT ? label_names[l] : "none";
}

const char *class_log_name(enum mux_class cls, bool inside_tls)
{
    if ((unsigned)cls >= CLASS_COUNT)
        return "none";
    return inside_tls ? classes[cls].inside : classes[cls].plain;
}
