/*
 * shim — berth-shim's shared types: the shim's context, its processes
 * (the task's init and its execs), runtime jobs in flight and client
 * connections.  One thread, one poll loop (shim_loop.c); nothing here is
 * used outside shim/.
 */
#ifndef SHIM_H
#define SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#include "bt_err.h"
#include "berth/shim/v1/shim.pb-c.h"

typedef struct shim shim;
typedef struct shim_proc shim_proc;
typedef struct shim_job shim_job;
typedef struct shim_conn shim_conn;

/* Process states; a registered exec not yet started is PS_NEW. */
enum { PS_NEW, PS_CREATING, PS_CREATED, PS_RUNNING, PS_PAUSED, PS_STOPPED, PS_DELETED };

/* One copy direction between a client's stdio path and the process. */
typedef struct shim_pump {
	int src, dst;  /* -1 once closed */
	bool splice;   /* both ends are pipes: splice(2), no user buffer */
	bool blocked;  /* dst was full: wait for POLLOUT on dst */
	bool closing;  /* stdin after CloseIO: close dst once src is drained */
} shim_pump;

typedef struct shim_waiter {
	struct shim_waiter *next;
	uint64_t conn_id, request_id;
} shim_waiter;

struct shim_proc {
	shim_proc *next;
	char *exec_id;          /* NULL: the init process */
	int status;             /* PS_* */
	pid_t pid;
	bool exited;            /* reaped, record on disk */
	bool announced;         /* output drained, waiters answered */
	int exit_status;
	int64_t exited_at_ns;
	int64_t drain_deadline; /* monotonic ms: announce even if output still flows */
	bool terminal;
	char *path_in, *path_out, *path_err;
	int master;             /* pty master, -1 */
	shim_pump in, out, err;
	int child_fd[3];        /* the process's ends, until the runtime has them */
	shim_waiter *waiters;
	bool busy;              /* a runtime job acts on it */
	bool delete_pending;    /* Delete waits for the exit of a killed created process */
	uint64_t del_conn, del_req;
};

enum { JOB_CREATE, JOB_START, JOB_EXEC, JOB_KILL, JOB_PAUSE, JOB_RESUME, JOB_PS, JOB_UPDATE,
       JOB_DELETE, JOB_CLEANUP };

struct shim_job {
	shim_job *next;
	int kind;
	pid_t pid;
	shim_proc *proc;
	uint64_t conn_id, request_id;
	int logfd;          /* memfd: the runtime's --log and stderr */
	int outfd;          /* memfd: its stdout (ps) */
	int console;        /* listening --console-socket, -1 */
	char *console_path;
};

struct shim_conn {
	shim_conn *next;
	uint64_t id;
	int fd;
	bool dead; /* closed at the end of the loop's turn */
};

/* A reaped child the shim could not map yet (its pid file is not read). */
typedef struct shim_orphan {
	pid_t pid;
	int status;
	int64_t at_ns;
} shim_orphan;

struct shim {
	char *ns, *id, *dir, *runtime, *runtime_root;
	int dirfd;
	int listen_fd, signal_fd;
	shim_conn *conns;
	uint64_t next_conn_id;
	shim_proc *procs;     /* init first once created */
	shim_job *jobs;
	shim_orphan orphans[32];
	unsigned n_orphans;
	bool init_deleted;
	bool shutting_down;
	uint64_t next_console;
	/* the poll set, rebuilt every turn */
	struct pollfd *pfds;
	void **pwhat;
	unsigned char *pkind;
	size_t pcap;
};

/* shim_loop.c */
int shim_loop_run(shim *s, bt_err *e);
/* Sends a reply on connection conn_id if it is still open (errors drop it). */
void shim_reply(shim *s, uint64_t conn_id, uint64_t request_id, const bt_err *status,
		const ProtobufCMessage *body);

/* shim_proc.c */
shim_proc *shim_proc_find(shim *s, const char *exec_id);
shim_proc *shim_proc_new(shim *s, const char *exec_id);
void shim_proc_free(shim *s, shim_proc *p);
/* Opens the client's stdio paths and makes the pipes (not for terminal). */
int shim_proc_stdio(shim_proc *p, const Berth__Shim__V1__Stdio *io, bt_err *e);
/* The pty master arrived: wire it to the stdio paths. */
void shim_proc_set_master(shim_proc *p, int master);
/* Closes the process's ends after the runtime took them. */
void shim_proc_close_child_fds(shim_proc *p);
/* A child exited: writes the exit record, then announces once drained. */
void shim_proc_exited(shim *s, shim_proc *p, int wstatus, int64_t at_ns);
/* Announces exits whose output is drained or whose drain time is up. */
void shim_proc_announce_ready(shim *s);
/* Exit record path (caller frees). */
char *shim_proc_file(const shim *s, const shim_proc *p, const char *suffix);
void shim_proc_fill_state(const shim_proc *p, Berth__Shim__V1__ProcessState *st);
/* Pumps: poll set building and servicing. */
int shim_pump_events(const shim_pump *pm, int *fd);
void shim_pump_run(shim_pump *pm, bool writable);
void shim_pump_close(shim_pump *pm);
int shim_status_code(int wstatus);

/* shim_runtime.c */
/* Starts `runtime <args…> <id>` for kind; stdio_fds are the child's 0,1,2
 * (-1: /dev/null, or the job's memfds).  The job is owned by s->jobs. */
shim_job *shim_rt_start(shim *s, int kind, shim_proc *p, const char *const *args, const int *stdio,
			int extra_fd, bt_err *e);
/* The runtime's error message from the job's log (caller frees). */
char *shim_rt_error(shim_job *j);
void shim_job_free(shim_job *j);
/* A reaped pid: job done, process exit or orphan. */
void shim_rt_reaped(shim *s, pid_t pid, int wstatus);
/* Takes a reaped child's status kept before its pid was known; 0 or -1. */
int shim_rt_orphan_take(shim *s, pid_t pid, int *wstatus, int64_t *at_ns);
/* A listening --console-socket in the state directory (*path: caller frees). */
int shim_console_listen(shim *s, char **path, bt_err *e);
/* The pty master the runtime sent to a console socket, or -1. */
int shim_console_recv(int lfd, bt_err *e);

/* shim_rpc.c */
void shim_rpc_dispatch(shim *s, shim_conn *c, const uint8_t *buf, size_t len);
void shim_rpc_job_done(shim *s, shim_job *j, int wstatus);
/* Completes a Delete that waited for the process's exit announcement. */
void shim_rpc_finish_delete(shim *s, shim_proc *p);
bool shim_can_exit(const shim *s);

/* shim_json.c */
/* 0 when s[0..len) is one JSON object; else -1 with a message. */
int shim_json_check_object(const char *s, size_t len, const char *what, bt_err *e);
/* The "msg" of the last error (else last) line of a runtime's JSON log; NULL when none. */
char *shim_json_log_msg(const char *log);
/* Parses `ps --format json` ([pid, …]); returns count or -1. */
int shim_json_pids(const char *s, int **pids);

#endif
