/* main.cf-style configuration shared by every program. Values are stored raw and expanded ($name, ${name}) when
 * read; typed getters check syntax and range and name the file and line where a bad value was set.
 * Every parameter a program reads must be in the parameter table (common/params.c) with its default. */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct config;

/* One row of the parameter table: name, default (may use $name), one-line description. */
struct config_param {
	const char *name;
	const char *def;
	const char *doc;
};
extern const struct config_param config_params[];	/* terminated by a row with name == NULL */

struct config *config_new(void);
void config_free(struct config **cfg);

/* Limits: one logical line (name, value and its continuation lines), a whole main.cf, a value after
 * expansion, and how deeply $name expansions may nest. Past any of them is an error, never a cut. */
#define CONFIG_LINE_MAX (64 * 1024)
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define CONFIG_VALUE_MAX (1024 * 1024)
#define CONFIG_EXPAND_DEPTH 20

/* Read name = value lines. On a syntax error, err gets "FILE:LINE: what is wrong" and false is returned.
 * Unknown parameter names are warnings (appended to warn, if not NULL), not errors.
 * (Messages are appended to err and warn; each warning ends with a newline.) Nothing is set on an error. */
bool config_load_file(struct config *cfg, const char *path, struct buf *err, struct buf *warn);
/* The same on a file already in memory; name is how messages name it ("FILE" in "FILE:LINE: ..."). */
bool config_load_mem(struct config *cfg, const char *name, const char *data, size_t len, struct buf *err,
                     struct buf *warn);
/* Load the main.cf of dir: an instance directory (dir/etc/main.cf; instance_directory is set to dir first so
 * every path follows it) or a configuration directory (dir/main.cf; config_directory is set to dir first).
 * The path chosen is stored in *pathp when pathp is not NULL (free() it). */
bool config_load_dir(struct config *cfg, const char *dir, char **pathp, struct buf *err, struct buf *warn);
/* The row of the parameter table for name, or NULL when it is not a known parameter. */
const struct config_param *config_param_find(const char *name);
/* A syntactically valid parameter name: [A-Za-z0-9_]+ */
bool config_name_valid(const char *name, size_t len);
/* Set one value; origin is how errors will name it ("main.cf:12", "-o", "command line"). */
void config_set(struct config *cfg, const char *name, const char *value, const char *origin);
/* Parse "name=value" (a -o override); false with a message in err when it has no '='. */
bool config_set_override(struct config *cfg, const char *assignment, struct buf *err);
/* Where a parameter's value came from, or NULL when it has its default. */
const char *config_origin(struct config *cfg, const char *name);
/* Raw (unexpanded) value as set, or NULL when unset. */
const char *config_raw(struct config *cfg, const char *name);

/* Expanded string: the set value or the table default, "" when neither. Panics on a name missing from the
 * parameter table (a programming error). The pointer stays valid until the config is freed or the value set. */
const char *config_str(struct config *cfg, const char *name);
/* The same, but an expansion error (a loop, nesting deeper than CONFIG_EXPAND_DEPTH, a result over
 * CONFIG_VALUE_MAX, bad $ syntax) returns false with "ORIGIN: NAME: what is wrong" in err, where config_str
 * calls fatalx(). */
bool config_try_str(struct config *cfg, const char *name, const char **out, struct buf *err);
/* Expand every parameter once; false with one message per line in err for each that fails. For `check`. */
bool config_check(struct config *cfg, struct buf *err);

/* Typed getters. The try_ forms return false and write "ORIGIN: NAME: what is wrong" into err; the plain forms
 * call fatalx() with that message (for daemons at start-up). */
bool config_try_int(struct config *cfg, const char *name, int64_t min, int64_t max, int64_t *out, struct buf *err);
int64_t config_int(struct config *cfg, const char *name, int64_t min, int64_t max);
/* yes/no, true/false, on/off, 1/0 */
bool config_try_bool(struct config *cfg, const char *name, bool *out, struct buf *err);
bool config_bool(struct config *cfg, const char *name);
/* Durations: a number with an optional unit s, m, h, d, w (default seconds); result in seconds. */
bool config_try_time(struct config *cfg, const char *name, int64_t min, int64_t max, int64_t *out, struct buf *err);
int64_t config_time(struct config *cfg, const char *name, int64_t min, int64_t max);
/* Sizes: a number with an optional unit k, m, g (powers of 1024); result in bytes. */
bool config_try_size(struct config *cfg, const char *name, uint64_t min, uint64_t max, uint64_t *out, struct buf *err);
uint64_t config_size(struct config *cfg, const char *name, uint64_t min, uint64_t max);
/* Lists: items separated by commas and/or white space. Returns a NULL-terminated array; free with
 * config_list_free(). */
char **config_list(struct config *cfg, const char *name, size_t *count);
bool config_try_list(struct config *cfg, const char *name, char ***out, size_t *count, struct buf *err);
void config_list_free(char ***list);

/* Iterate over every parameter (table order, then unknown ones): calls fn with name, expanded value, and
 * whether it was set explicitly. For `postern config show`. A value that fails to expand is passed raw
 * (config_check() reports why). */
void config_foreach(struct config *cfg, void (*fn)(const char *name, const char *value, bool set, void *arg),
                    void *arg);

/* Rewrite path with name = value (replacing an existing assignment, keeping comments and order, else
 * appending), atomically: temp file, fsync, rename, fsync directory. false with err on failure. */
bool config_file_set(const char *path, const char *name, const char *value, struct buf *err);
/* The text rewrite behind config_file_set: appends to out the file text data with name = value applied.
 * The last assignment of name (with its continuation lines) is replaced in place; comment and blank lines
 * are kept. */
void config_text_set(const char *data, size_t len, const char *name, const char *value, struct buf *out);

#endif
