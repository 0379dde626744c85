/* The one table of traffic-class names: what the configuration calls a class, and the
 * label a connection is logged and counted under (which says whether the class was
 * found inside TLS that mux443 terminated: "https", "wss", "turns", ...). */
#ifndef MUX443_LIB_CLASSES_H
#define MUX443_LIB_CLASSES_H

#include <stdbool.h>

#include "mux443/lib/probe.h"

/* "tls", "http", "websocket", "stun", "ice-tcp", "sip", "mqtt", "ssh", "quic", "unknown",
 * "timeout"; "none" for
 * CLASS_NONE and out-of-range values. */
const char *class_name(enum mux_class cls);
/* Inverse of class_name; CLASS_NONE when unknown. */
enum mux_class class_from_name(const char *name);

/* Labels: the plain classes in enum order, then what was found inside terminated TLS.
 * A connection's label is class_label_of(cls, inside_tls). */
enum class_label {
    LABEL_NONE,
    LABEL_TLS,
    LABEL_HTTP,
    LABEL_WEBSOCKET,
    LABEL_STUN,
    LABEL_ICE_TCP,
    LABEL_SIP,
    LABEL_MQTT,
    LABEL_SSH,
    LABEL_QUIC, /* never a TCP connection: the class exists for UDP routes */
    LABEL_UNKNOWN,
    LABEL_TIMEOUT,
    LABEL_HTTPS,
    LABEL_WSS,
    LABEL_TURNS,
    LABEL_SIPS,    /* SIP inside terminated TLS */
    LABEL_MQTTS,   /* MQTT inside terminated TLS */
    LABEL_SSH_TLS, /* SSH inside terminated TLS */
    LABEL_COUNT
};

/* The label of a connection whose first bytes were of class cls, inside_tls when mux443
 * terminated the client's TLS. */
enum class_label class_label_of(enum mux_class cls, bool inside_tls);
/* The label's name in metrics ("https"). */
const char *class_label_name(enum class_label l);
/* The name a connection's close line shows: the label name, except that what inside
 * TLS was unrecognised or silent shows as "tls-unknown" / "tls-timeout" (counted under
 * unknown). */
const char *class_log_name(enum mux_class cls, bool inside_tls);

#endif
