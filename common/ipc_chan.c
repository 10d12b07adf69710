/* Output queue of a non-blocking IPC connection: see ipc_chan.h. */
#include "ipc_chan.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"

void ipc_outq_init(struct ipc_outq *q)
{
	q->head = NULL;
	q->tailp = &q->head;
	q->bytes = 0;
}

void ipc_outq_free(struct ipc_outq *q)
{
	struct ipc_outframe *f, *next;

	for (f = q->head; f != NULL; f = next) {
		next = f->next;
		buf_free_wipe(&f->data);
		if (f->fd >= 0)
			close(f->fd);
		free(f);
	}
	ipc_outq_init(q);
}

bool ipc_outq_push(struct ipc_outq *q, struct ipc_msg *m)
{
	struct ipc_outframe *f = xcalloc(1, sizeof(*f));

	buf_init(&f->data, IPC_MAX_FRAME_LIMIT);
	if (!ipc_msg_encode(m, &f->data)) {
		buf_free_wipe(&f->data);
		free(f);
		return false;
	}
	f->fd = ipc_msg_take_fd(m);
	*q->tailp = f;
	q->tailp = &f->next;
	q->bytes += f->data.len;
	return true;
}

ssize_t ipc_chan_send(int sock, const void *p, size_t len, int fd)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = { (void *)p, len };
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.space;
		mh.msg_controllen = sizeof(cbuf.space);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n;
}

int ipc_outq_flush(struct ipc_outq *q, int sock)
{
	struct ipc_outframe *f;

	while ((f = q->head) != NULL) {
		ssize_t n = ipc_chan_send(sock, f->data.data + f->off, f->data.len - f->off, f->off == 0 ? f->fd : -1);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		if (f->fd >= 0) {
			close(f->fd);
			f->fd = -1;
		}
		f->off += (size_t)n;
		q->bytes -= (size_t)n;
		if (f->off == f->data.len) {
			q->head = f->next;
			if (q->head == NULL)
				q->tailp = &q->head;
			buf_free_wipe(&f->data);
			free(f);
		}
	}
	return 1;
}
