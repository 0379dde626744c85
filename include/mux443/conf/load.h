/* Loading the configuration: one INI file, read with inih through a reader that counts
 * lines, validated in one pass; every error is reported as
 * FILE:LINE: [section] key: reason. */
#ifndef MUX443_CONF_LOAD_H
#define MUX443_CONF_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mux443/conf/keys.h"

#define CFG_DEFAULT_PATH "/etc/mux443/mux443.ini"

/* Loads and validates `path`. Returns the description, or NULL after printing every
 * error found to `errs` (one per line, FILE:LINE: [section] key: ...). */
struct cfg *cfg_load(const char *path, FILE *errs, const struct cfg_load_opts *o);
/* The same from an open stream; `name` is used in messages. */
struct cfg *cfg_load_stream(FILE *in, const char *name, FILE *errs, const struct cfg_load_opts *o);
/* Fuzzing entry point: loads a config from memory (names not resolved), discarding
 * messages. Returns 0. */
int cfg_fuzz_load(const uint8_t *data, size_t size);

#endif
