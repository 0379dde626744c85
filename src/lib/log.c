/* Logging: level filter, timestamps, one write(2) per line so that lines from worker
 * threads never interleave. Escaping of client-controlled strings. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "mux443/lib/log.h"

static _Atomic int log_level = LOG_LVL_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl)
{
    atomic_store(&log_level, (int)lvl);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

int log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

static _Atomic int log_format = LOG_FORMAT_TEXT;

void log_set_format(enum log_format f)
{
    atomic_store(&log_format, (int)f);
}

enum log_format log_get_format(void)
{
    return (enum log_format)atomic_load(&log_format);
}

#define LINE_MAX_LEN 4096

/* A line under construction: appends cut at the end, leaving room for the newline. */
struct line {
    char s[LINE_MAX_LEN];
    size_t n;
};

static void put(struct line *l, const char *str, size_t len)
{
    if (len > sizeof(l->s) - 2 - l->n)
        len = sizeof(l->s) - 2 - l->n;
    memcpy(l->s + l->n, str, len);
    l->n += len;
}

static void puts_(struct line *l, const char *str)
{
    put(l, str, strlen(str));
}

/* A JSON string body: '"', '\\' and every byte outside 0x20..0x7e escaped as \u00XX
 * (bytes above 0x7e too, so the line is valid UTF-8 whatever the input). */
static void put_json(struct line *l, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
        if (*p == '"' || *p == '\\')
            put(l, (char[]){'\\', (char)*p}, 2);
        else if (*p >= 0x20 && *p < 0x7f)
            put(l, (const char *)p, 1);
        else
            put(l, e, sizeof(e));
    }
}

/* Timestamp and level: "TS LEVEL " in text, '{"ts":..,"level":..' in JSON. */
static void line_start(struct line *l, enum log_level lvl)
{
    struct timeval tv;
    struct tm tm;
    char ts[64];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)tv.tv_usec / 1000);
    l->n = 0;
    if (log_get_format() == LOG_FORMAT_JSON) {
        puts_(l, "{\"ts\":\"");
        puts_(l, ts);
        puts_(l, "\",\"level\":\"");
        puts_(l, level_names[lvl]);
        puts_(l, "\"");
    } else {
        puts_(l, ts);
        puts_(l, " ");
        puts_(l, level_names[lvl]);
        puts_(l, " ");
    }
}

/* Closes the JSON object if any, and writes the line with one write(2): stderr may be a
 * pipe shared by all worker threads. */
static void line_end(struct line *l)
{
    if (log_get_format() == LOG_FORMAT_JSON) {
        if (l->n > sizeof(l->s) - 3)
            l->n = sizeof(l->s) - 3; /* a cut line still ends as an object */
        puts_(l, "}");
    }
    l->s[l->n++] = '\n';
    ssize_t r = write(STDERR_FILENO, l->s, l->n);
    (void)r;
}

__attribute__((format(printf, 3, 0))) static void log_emit(enum log_level lvl, int err,
                                                           const char *fmt, va_list ap)
{
    char msg[LINE_MAX_LEN];
    struct line l;

    if ((int)lvl > atomic_load(&log_level))
        return;
    int w = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = w < 0 ? 0 : (size_t)w < sizeof(msg) ? (size_t)w : sizeof(msg) - 1;
    if (err)
        snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err));
    line_start(&l, lvl);
    if (log_get_format() == LOG_FORMAT_JSON) {
        puts_(&l, ",\"msg\":\"");
        put_json(&l, msg);
        puts_(&l, "\"");
    } else {
        puts_(&l, msg);
    }
    line_end(&l);
}

void log_fields(enum log_level lvl, const struct log_field *f, size_t nf)
{
    struct line l;
    bool json = log_get_format() == LOG_FORMAT_JSON;

    if ((int)lvl > atomic_load(&log_level))
        return;
    line_start(&l, lvl);
    for (size_t i = 0; i < nf; i++) {
        if (json) {
            puts_(&l, ",\"");
            put_json(&l, f[i].key);
            puts_(&l, "\":");
            if (f[i].kind == LOG_NUMBER) {
                puts_(&l, f[i].val);
                continue;
            }
            puts_(&l, "\"");
            put_json(&l, f[i].val);
            puts_(&l, "\"");
            continue;
        }
        if (i)
            puts_(&l, " ");
        puts_(&l, f[i].key);
        puts_(&l, f[i].kind == LOG_QUOTED ? "=\"" : "=");
        puts_(&l, f[i].val);
        if (f[i].kind == LOG_QUOTED)
            puts_(&l, "\"");
    }
    line_end(&l);
}

#define LOG_BODY(lvl, err)                                                                         \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_emit(lvl, err, fmt, ap);                                                               \
        va_end(ap);                                                                                \
    } while (0)

void log_error(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_ERROR, 0);
}

void log_warn(const char *fmt, ...)
{
    int e = errno;
    LOG_BODY(LOG_LVL_WARN, e);
}

void log_warnx(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_WARN, 0);
}

void log_info(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_INFO, 0);
}

void log_debug(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_DEBUG, 0);
}

void fatal(const char *fmt, ...)
{
    int e = errno;
    LOG_BODY(LOG_LVL_ERROR, e);
    exit(3);
}

void fatalx(const char *fmt, ...)
{
    LOG_BODY(LOG_LVL_ERROR, 0);
    exit(3);
}

char *log_escape(char *dst, size_t cap, const void *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = src;
    size_t o = 0;

    if (cap == 0)
        return dst;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (o + 1 >= cap)
                break;
            dst[o++] = (char)c;
        } else {
            if (o + 4 >= cap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}
