/* Logging: level filter, timestamps, one write(2) per line so that lines from worker
 * threads never interleave. Escaping of client-controlled strings. */
#include <errno.h>
#include <stdarg.h>
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

__attribute__((format(printf, 3, 0))) static void log_emit(enum log_level lvl, int err,
                                                           const char *fmt, va_list ap)
{
    char line[4096];
    struct timeval tv;
    struct tm tm;
    size_t n;

    if ((int)lvl > atomic_load(&log_level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", (long)tv.tv_usec / 1000,
                          level_names[lvl]);
    int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (w > 0)
        n += (size_t)w;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    if (err) {
        w = snprintf(line + n, sizeof(line) - n, ": %s", strerror(err));
        if (w > 0)
            n += (size_t)w;
        if (n > sizeof(line) - 2)
            n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    /* One write per line: stderr may be a pipe shared by all worker threads. */
    ssize_t r = write(STDERR_FILENO, line, n);
    (void)r;
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
