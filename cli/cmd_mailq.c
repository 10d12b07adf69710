/* mailq (sendmail -bp): the classic Postfix-style queue listing, read from the queue directories directly with
 * the queue-file parser, so it works whether or not the mail system is running. Only root and the mail owner
 * can read the queue; everyone else gets a clear "permission denied". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "qfile.h"
#include "sendmail.h"

struct entry {
	struct qfile_envelope env;
	char mark;	/* ' ' waiting, '*' being delivered, '!' on hold */
};

/* Directories a queued message can be in, with the mark Postfix shows for it. */
static const struct {
	const char *dir;
	char mark;
} dirs[] = { { "incoming", ' ' }, { "active", '*' }, { "deferred", ' ' }, { "hold", '!' } };

static int by_arrival(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->env.arrival != y->env.arrival)
		return x->env.arrival < y->env.arrival ? -1 : 1;
	return strcmp(x->env.id ? x->env.id : "", y->env.id ? y->env.id : "");
}

/* Read one directory's messages into *v. false (with a message) when the directory cannot be read. */
static bool read_dir(const char *queue_dir, const char *dir, char mark, struct entry **v, size_t *n, FILE *errf)
{
	struct buf path = BUF_INIT(BUF_NOLIMIT), err = BUF_INIT(4096);
	DIR *d;
	struct dirent *de;
	int dfd;

	buf_printf(&path, "%s/%s", queue_dir, dir);
	if ((d = opendir(buf_cstr(&path))) == NULL) {
		bool missing = errno == ENOENT;
		if (!missing)
			fprintf(errf, "mailq: cannot read the queue (%s: %s)%s\n", buf_cstr(&path), strerror(errno),
			        errno == EACCES ? ": run as root or the mail owner" : "");
		buf_free(&path);
		return missing;	/* a queue without this directory simply has nothing in it */
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		int fd;
		struct entry e = { .mark = mark };
		if (!qfile_id_valid(de->d_name))
			continue;
		/* a message may move to another directory while we look: a vanished file is skipped */
		if ((fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
			continue;
		buf_reset(&err);
		if (qfile_read_envelope(fd, &e.env, &err)) {
			if (!e.env.id)
				e.env.id = xstrdup(de->d_name);
			*v = xreallocarray(*v, *n + 1, sizeof(**v));
			(*v)[(*n)++] = e;
		} else {
			fprintf(errf, "mailq: %s/%s: %s\n", buf_cstr(&path), de->d_name, buf_cstr(&err));
		}
		close(fd);
	}
	closedir(d);
	buf_free(&path);
	buf_free(&err);
	return true;
}

int mailq_list(const char *queue_dir, FILE *out, FILE *errf)
{
	struct entry *v = NULL;
	size_t n = 0;
	unsigned long long total = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!read_dir(queue_dir, dirs[i].dir, dirs[i].mark, &v, &n, errf)) {
			for (size_t k = 0; k < n; k++)
				qfile_envelope_free(&v[k].env);
			free(v);
			return EX_NOPERM;
		}
	}
	if (n == 0) {
		fprintf(out, "Mail queue is empty\n");
		free(v);
		return 0;
	}
	qsort(v, n, sizeof(*v), by_arrival);
	fprintf(out, "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	for (size_t i = 0; i < n; i++) {
		const struct qfile_envelope *e = &v[i].env;
		time_t t = (time_t)e->arrival;
		struct tm tm;
		char when[32] = "";
		if (localtime_r(&t, &tm))
			strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
		fprintf(out, "%-10s%c %8llu %-20s  %s\n", e->id, v[i].mark, (unsigned long long)e->content_len, when,
		        e->sender && *e->sender ? log_safe(e->sender, strlen(e->sender), 300) : "MAILER-DAEMON");
		for (size_t r = 0; r < e->nrcpts; r++)
			fprintf(out, "%42s%s\n", "", log_safe(e->rcpts[r].addr, strlen(e->rcpts[r].addr), 300));
		fputc('\n', out);
		total += e->content_len;
		qfile_envelope_free(&v[i].env);
	}
	fprintf(out, "-- %llu Kbytes in %zu Request%s.\n", (total + 1023) / 1024, n, n == 1 ? "" : "s");
	free(v);
	return 0;
}
