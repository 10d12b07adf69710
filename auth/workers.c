/* Hash-check threads; see workers.h. One mutex guards both queues; the pipe only wakes the loop. */
#include "workers.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

#define AUTH_WORKERS_MAX 16

struct work {
	struct work *next;
	struct auth_job *job;
	void *ctx;
};

struct auth_workers {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct work *todo, **todo_tail;
	struct work *done, **done_tail;
	bool stopping;
	size_t busy;
	pthread_t threads[AUTH_WORKERS_MAX];
	unsigned nthreads;
	int wake[2];		/* workers write a byte to [1]; the loop reads [0] */
	struct event *ev;
	auth_workers_done_fn *done_fn;
	void *arg;
};

static void push(struct work ***tailp, struct work *w)
{
	w->next = NULL;
	**tailp = w;
	*tailp = &w->next;
}

static struct work *pop(struct work **head, struct work ***tailp)
{
	struct work *w = *head;
	if (w) {
		*head = w->next;
		if (*head == NULL)
			*tailp = head;
	}
	return w;
}

static void *worker(void *arg)
{
	struct auth_workers *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct work *item;
		while ((item = pop(&w->todo, &w->todo_tail)) == NULL && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		if (item == NULL)
			break;
		pthread_mutex_unlock(&w->mu);
		auth_job_run(item->job);
		pthread_mutex_lock(&w->mu);
		push(&w->done_tail, item);
		/* a full pipe already holds a wake-up: the byte is not needed */
		ssize_t n = write(w->wake[1], "", 1);
		(void)n;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* On the loop thread: answer every finished job. */
static void drain(struct auth_workers *w)
{
	for (;;) {
		pthread_mutex_lock(&w->mu);
		struct work *item = pop(&w->done, &w->done_tail);
		if (item)
			w->busy--;
		pthread_mutex_unlock(&w->mu);
		if (item == NULL)
			return;
		w->done_fn(item->job, item->ctx, w->arg);
		free(item);
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	char scratch[256];
	(void)what;

	while (read(fd, scratch, sizeof scratch) > 0)
		;
	drain(arg);
}

struct auth_workers *auth_workers_new(struct event_base *base, unsigned nthreads, auth_workers_done_fn *done,
                                      void *arg)
{
	struct auth_workers *w = xcalloc(1, sizeof *w);

	if (nthreads == 0 || nthreads > AUTH_WORKERS_MAX)
		panic("auth_workers_new: %u threads", nthreads);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->todo_tail = &w->todo;
	w->done_tail = &w->done;
	w->done_fn = done;
	w->arg = arg;
	if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("auth: pipe for the hash threads");
	if ((w->ev = event_new(base, w->wake[0], EV_READ | EV_PERSIST, on_wake, w)) == NULL || event_add(w->ev, NULL) < 0)
		fatalx("auth: cannot watch the hash threads' pipe");
	for (; w->nthreads < nthreads; w->nthreads++) {
		int rc = pthread_create(&w->threads[w->nthreads], NULL, worker, w);
		if (rc != 0)
			fatalx("auth: cannot start a hash thread: %s", strerror(rc));
	}
	return w;
}

void auth_workers_submit(struct auth_workers *w, struct auth_job *job, void *ctx)
{
	struct work *item = xcalloc(1, sizeof *item);

	item->job = job;
	item->ctx = ctx;
	pthread_mutex_lock(&w->mu);
	push(&w->todo_tail, item);
	w->busy++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

size_t auth_workers_busy(const struct auth_workers *w)
{
	return w->busy;
}

void auth_workers_free(struct auth_workers **wp)
{
	struct auth_workers *w = *wp;

	if (w == NULL)
		return;
	/* the threads finish the queue before they see stopping */
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	drain(w);
	event_free(w->ev);
	close(w->wake[0]);
	close(w->wake[1]);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	*wp = NULL;
}
