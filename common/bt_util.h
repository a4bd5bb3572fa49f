/*
 * bt_util — memory, cleanup attributes, time and small file-system helpers
 * shared by every berth process.
 *
 * Out of memory aborts (the supervisor restarts the daemon); the bt_x*
 * allocators never return NULL.
 */
#ifndef BT_UTIL_H
#define BT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bt_err.h"

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(bt_freep)
#define _cleanup_close_ _cleanup_(bt_closep)
#define _cleanup_fclose_ _cleanup_(bt_fclosep)
#define _cleanup_dir_ _cleanup_(bt_closedirp)
#define _cleanup_strv_ _cleanup_(bt_strv_freep)

/* Hands ownership over: yields p and leaves NULL behind. */
#define BT_STEAL(p) ({ __typeof__(p) _bt_t = (p); (p) = NULL; _bt_t; })
/* Same for file descriptors: yields fd and leaves -1 behind. */
#define BT_STEAL_FD(fd) ({ int _bt_t = (fd); (fd) = -1; _bt_t; })

#define BT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BT_MAX(a, b) ((a) > (b) ? (a) : (b))
#define BT_UNUSED __attribute__((unused))

void bt_freep(void *p);
void bt_closep(int *fd);
void bt_fclosep(FILE **f);
void bt_closedirp(void *d);
void bt_strv_freep(char ***v);
void bt_strv_free(char **v);
size_t bt_strv_len(char *const *v);
/* Appends a copy of s to a NULL-terminated vector (grown as needed). */
void bt_strv_push(char ***v, const char *s);

void *bt_xmalloc(size_t n);
void *bt_xzalloc(size_t n);
void *bt_xcalloc(size_t n, size_t size);
void *bt_xrealloc(void *p, size_t n);
char *bt_xstrdup(const char *s);
char *bt_xstrndup(const char *s, size_t n);
char *bt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *bt_xvasprintf(const char *fmt, va_list ap);
_Noreturn void bt_oom(void);

/* A growable byte buffer; data is always NUL-terminated for convenience. */
typedef struct bt_buf {
	char *data;
	size_t len;
	size_t cap;
} bt_buf;
void bt_buf_append(bt_buf *b, const void *p, size_t n);
void bt_buf_appendf(bt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bt_buf_free(bt_buf *b);
/* Takes the buffer's data (caller frees) and resets it. */
char *bt_buf_steal(bt_buf *b);

/* Time: wall-clock nanoseconds since the epoch, and a monotonic clock in ms/ns. */
int64_t bt_now_ns(void);
/* The instant ns nanoseconds from now on clock clk, for a timed wait
 * (pthread_cond_timedwait uses the clock its condattr names). */
struct timespec bt_timespec_in(int clk, int64_t ns);
int64_t bt_mono_ms(void);
int64_t bt_mono_ns(void);
/* Formats ns since the epoch as RFC 3339 UTC with nanoseconds into buf (≥ 40 bytes). */
const char *bt_time_fmt(int64_t ns, char *buf, size_t len);

/* Sets O_NONBLOCK on fd. Returns 0 or -1 (errno). */
int bt_set_nonblock(int fd);
/* mkdir -p with mode for each component it creates. */
int bt_mkdir_p(const char *path, mode_t mode, bt_err *e);
/* Writes data to path atomically: temp file in the same directory, fsync, rename, fsync dir. */
int bt_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, bt_err *e);
/* Reads a whole file of at most max bytes; *out is NUL-terminated, caller frees. */
int bt_read_file(const char *path, size_t max, char **out, size_t *len, bt_err *e);
/* fsync of the directory holding path (or of path itself when it is a directory). */
int bt_fsync_dir(const char *dir, bt_err *e);
/* rm -rf; a missing path is not an error. Does not cross mount points. */
int bt_rm_rf(const char *path, bt_err *e);
/* Writes all bytes, retrying on EINTR and short writes. */
int bt_write_all(int fd, const void *p, size_t n);
/* pwrite/pread of all bytes; pread_all returns bytes read (short only at EOF) or -1. */
int bt_pwrite_all(int fd, const void *p, size_t n, off_t off);
ssize_t bt_pread_all(int fd, void *p, size_t n, off_t off);

/* Parses a non-negative decimal integer that must fill the whole string. */
int bt_parse_u64(const char *s, uint64_t *out);
/* Parses sizes like "16MiB", "512k", "1G" (binary units) or plain bytes. */
int bt_parse_size(const char *s, uint64_t *out);
/* Parses durations like "30s", "500ms", "2m", "1h" into milliseconds. */
int bt_parse_duration_ms(const char *s, int64_t *out);

/* Renders untrusted bytes for a message: printable ASCII as is, '"' and
 * '\\' backslashed, everything else as \xHH; cut with "..." when it does not
 * fit. buf must hold at least 8 bytes; returns buf. */
const char *bt_escape(char *buf, size_t size, const char *s, size_t len);

/* true when s starts with prefix. */
bool bt_startswith(const char *s, const char *prefix);
bool bt_endswith(const char *s, const char *suffix);

/* Keeps large buffers (blob chunks of 1 MiB) on the heap and freed memory
 * in the process, instead of a fresh mmap per buffer whose every page
 * faults on first touch: page faults dominate bulk transfer on small VMs.
 * Called at the start of every berth binary. */
void bt_tune_malloc(void);

/* Fills buf with n random bytes from getrandom(2). */
void bt_random_bytes(void *buf, size_t n);
/* A random hex id of 2*nbytes characters (caller frees). */
char *bt_random_hex(size_t nbytes);

#endif
