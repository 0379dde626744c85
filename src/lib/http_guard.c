/* The admin API's request guards: Host, Content-Type and bearer token checks. */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mux443/lib/http_guard.h"

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

bool http_host_allowed(const char *host, char *const *names, size_t n)
{
    char name[256];
    size_t len;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        struct in6_addr a6;
        if (!end || (end[1] && (end[1] != ':' || !all_digits(end + 2))))
            return false;
        len = (size_t)(end - host - 1);
        if (len >= sizeof(name))
            return false;
        memcpy(name, host + 1, len);
        name[len] = '\0';
        return inet_pton(AF_INET6, name, &a6) == 1;
    }
    const char *colon = strchr(host, ':');
    if (colon && !all_digits(colon + 1))
        return false;
    len = colon ? (size_t)(colon - host) : strlen(host);
    if (len == 0 || len >= sizeof(name))
        return false;
    memcpy(name, host, len);
    name[len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1)
        return true;
    if (name[len - 1] == '.')
        name[--len] = '\0'; /* localhost. is localhost */
    if (strcasecmp(name, "localhost") == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(names[i], name) == 0)
            return true;
    return false;
}

bool http_media_type_is(const char *ctype, const char *type)
{
    size_t n = strlen(type);
    if (strncasecmp(ctype, type, n) != 0)
        return false;
    const char *rest = ctype + n + strspn(ctype + n, " \t");
    return *rest == '\0' || *rest == ';';
}

bool http_token_eq(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char d = gl != wl;
    for (size_t i = 0; i < wl; i++)
        d |= (unsigned char)(want[i] ^ given[i < gl ? i : 0]);
    return d == 0;
}

/* Decodes standard base64 (RFC 4648, padding optional) into out (cap bytes, NUL added).
 * False on a bad character or when it does not fit. */
static bool base64_decode(const char *in, char *out, size_t cap)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    size_t n = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        const char *c = strchr(alphabet, *in);
        if (!c || !*in)
            return false;
        acc = acc << 6 | (uint32_t)(c - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return false;
            out[n++] = (char)(acc >> bits & 0xff);
        }
    }
    while (*in == '=')
        in++;
    out[n] = '\0';
    return *in == '\0' && memchr(out, '\0', n) == NULL;
}

bool http_auth_carries(const char *a, const char *want)
{
    char plain[512];
    if (strncasecmp(a, "Bearer ", 7) == 0)
        return http_token_eq(a + 7 + strspn(a + 7, " "), want);
    if (strncasecmp(a, "Basic ", 6) != 0 ||
        !base64_decode(a + 6 + strspn(a + 6, " "), plain, sizeof(plain)))
        return false;
    const char *colon = strchr(plain, ':');
    return colon && http_token_eq(colon + 1, want);
}
