/* Logging to stderr with levels, relayd-style: log_warn adds strerror(errno),
 * log_warnx does not; fatal logs and exits. Thread-safe (one write(2) per line). */
#ifndef MUX443_LOG_H
#define MUX443_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int log_level_from_name(const char *name);

#define LOG_FMT(a, b) __attribute__((format(printf, a, b)))
void log_error(const char *fmt, ...) LOG_FMT(1, 2);
void log_warn(const char *fmt, ...) LOG_FMT(1, 2); /* appends ": strerror(errno)" */
void log_warnx(const char *fmt, ...) LOG_FMT(1, 2);
void log_info(const char *fmt, ...) LOG_FMT(1, 2);
void log_debug(const char *fmt, ...) LOG_FMT(1, 2);
_Noreturn void fatal(const char *fmt, ...) LOG_FMT(1, 2); /* appends strerror if errno */
_Noreturn void fatalx(const char *fmt, ...) LOG_FMT(1, 2);

/* How lines are written: text (timestamp, level, message) or one JSON object per line
 * ({"ts", "level", then "msg" or the fields of log_fields}). */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };
void log_set_format(enum log_format f);
enum log_format log_get_format(void);

/* A field of a structured line. Values must be printable ASCII (our own names, numbers,
 * or client bytes passed through log_escape). Text writes key=value (LOG_QUOTED: the
 * value in double quotes); JSON writes "key":value, quoted and JSON-escaped unless
 * LOG_NUMBER. */
enum log_kind { LOG_BARE, LOG_QUOTED, LOG_NUMBER };
struct log_field {
    const char *key, *val;
    enum log_kind kind;
};
/* One line made of fields, in the process's format. */
void log_fields(enum log_level lvl, const struct log_field *f, size_t n);

#define log_debug_enabled() (log_get_level() >= LOG_LVL_DEBUG)

/* Copies len bytes of client-controlled data into dst as printable ASCII: bytes outside
 * 0x20..0x7e, '"' and '\\' become \xHH. Always NUL-terminates; cuts at cap. Returns dst. */
char *log_escape(char *dst, size_t cap, const void *src, size_t len);

#endif
