/*
 * shim_loop — berth-shim's one poll loop: the listening socket, client
 * connections (requests in, replies out, none waiting on another), the
 * signalfd that reports exits of runtime jobs and of container processes,
 * and the stdio pumps.  Nothing in it blocks except poll(2).
 */
#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bt_seqrpc.h"
#include "bt_util.h"

enum { K_LISTEN, K_SIGNAL, K_CONN, K_PUMP };

static shim_conn *conn_find(shim *s, uint64_t id)
{
	for (shim_conn *c = s->conns; c; c = c->next)
		if (c->id == id && !c->dead)
			return c;
	return NULL;
}

void shim_reply(shim *s, uint64_t conn_id, uint64_t request_id, const bt_err *status,
		const ProtobufCMessage *body)
{
	shim_conn *c = conn_find(s, conn_id);
	if (c == NULL)
		return; /* the client went away; its answer goes nowhere */
	bt_err e = { 0 };
	if (bt_seqrpc_reply(c->fd, request_id, status, body, MSG_DONTWAIT, &e) < 0) {
		/* a client that does not read its replies loses its connection */
		fprintf(stderr, "berth-shim: %s: reply to a client: %s; dropping it\n", s->id, e.msg);
		c->dead = true;
	}
}

static void conn_accept(shim *s)
{
	for (int i = 0; i < 16; i++) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct ucred cr;
		socklen_t len = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != geteuid()) {
			close(fd);
			continue;
		}
		shim_conn *c = bt_xzalloc(sizeof(*c));
		c->id = ++s->next_conn_id;
		c->fd = fd;
		c->next = s->conns;
		s->conns = c;
	}
}

static void conn_read(shim *s, shim_conn *c)
{
	for (int i = 0; i < 16 && !c->dead; i++) {
		_cleanup_free_ uint8_t *buf = NULL;
		size_t len;
		bt_err e = { 0 };
		int r = bt_seqrpc_recv(c->fd, MSG_DONTWAIT, &buf, &len, &e);
		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0 && errno == E2BIG) {
			shim_reply(s, c->id, 0, &e, NULL);
			continue;
		}
		if (r <= 0) {
			c->dead = true;
			return;
		}
		shim_rpc_dispatch(s, c, buf, len);
	}
}

static void conns_sweep(shim *s)
{
	for (shim_conn **cp = &s->conns; *cp;) {
		shim_conn *c = *cp;
		if (!c->dead) {
			cp = &c->next;
			continue;
		}
		*cp = c->next;
		/* its waiters wait no more */
		for (shim_proc *p = s->procs; p; p = p->next)
			for (shim_waiter **wp = &p->waiters; *wp;) {
				if ((*wp)->conn_id == c->id) {
					shim_waiter *w = *wp;
					*wp = w->next;
					free(w);
				} else {
					wp = &(*wp)->next;
				}
			}
		close(c->fd);
		free(c);
	}
}

static void on_signal(shim *s)
{
	struct signalfd_siginfo si;
	bool chld = false;
	while (read(s->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			chld = true;
		else if (shim_can_exit(s))
			s->shutting_down = true;
		else
			fprintf(stderr, "berth-shim: %s: signal %u ignored: the task is not deleted\n", s->id,
				si.ssi_signo);
	}
	if (!chld)
		return;
	for (;;) {
		int ws;
		pid_t pid = waitpid(-1, &ws, WNOHANG);
		if (pid <= 0)
			break;
		shim_rt_reaped(s, pid, ws);
	}
}

static void add_fd(shim *s, size_t *n, int fd, short events, int kind, void *what)
{
	if (*n == s->pcap) {
		s->pcap = s->pcap ? s->pcap * 2 : 16;
		s->pfds = bt_xrealloc(s->pfds, s->pcap * sizeof(*s->pfds));
		s->pwhat = bt_xrealloc(s->pwhat, s->pcap * sizeof(*s->pwhat));
		s->pkind = bt_xrealloc(s->pkind, s->pcap);
	}
	s->pfds[*n] = (struct pollfd){ .fd = fd, .events = events };
	s->pwhat[*n] = what;
	s->pkind[*n] = (unsigned char)kind;
	(*n)++;
}

int shim_loop_run(shim *s, bt_err *e)
{
	while (!s->shutting_down) {
		size_t n = 0;
		add_fd(s, &n, s->listen_fd, POLLIN, K_LISTEN, NULL);
		add_fd(s, &n, s->signal_fd, POLLIN, K_SIGNAL, NULL);
		for (shim_conn *c = s->conns; c; c = c->next)
			add_fd(s, &n, c->fd, POLLIN, K_CONN, c);
		int64_t next = -1;
		for (shim_proc *p = s->procs; p; p = p->next) {
			shim_pump *pumps[3] = { &p->in, &p->out, &p->err };
			for (int i = 0; i < 3; i++) {
				int fd;
				int ev = shim_pump_events(pumps[i], &fd);
				if (ev)
					add_fd(s, &n, fd, (short)ev, K_PUMP, pumps[i]);
			}
			if (p->exited && !p->announced && (next < 0 || p->drain_deadline < next))
				next = p->drain_deadline;
		}
		int timeout = -1;
		if (next >= 0)
			timeout = (int)BT_MAX(0, next - bt_mono_ms());
		int r = poll(s->pfds, n, timeout);
		if (r < 0 && errno != EINTR)
			return bt_err_errno(e, errno, "poll");
		if (r > 0) {
			/* pumps first: later steps may free the processes they belong to */
			for (size_t i = 0; i < n; i++)
				if (s->pkind[i] == K_PUMP && s->pfds[i].revents)
					shim_pump_run(s->pwhat[i], s->pfds[i].revents & POLLOUT);
			for (size_t i = 0; i < n; i++) {
				if (!s->pfds[i].revents)
					continue;
				if (s->pkind[i] == K_SIGNAL)
					on_signal(s);
				else if (s->pkind[i] == K_CONN)
					conn_read(s, s->pwhat[i]);
				else if (s->pkind[i] == K_LISTEN)
					conn_accept(s);
			}
		}
		shim_proc_announce_ready(s);
		conns_sweep(s);
	}
	return 0;
}
