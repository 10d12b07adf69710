/* Fuzz the IPC decoder: a whole frame through ipc_frame_decode() and the same bytes as a stream through the
 * incremental reader, fed in chunks. A frame that decodes must re-encode to exactly the same bytes (the
 * encoding is canonical), and both decoders must agree on it.
 * Seeds in tests/fuzz/seeds/ipc/ are made by the builder: compile this file with -DIPC_FUZZ_SEEDS against
 * libpostern.a and run it with the seed directory as argument. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "ipc.h"

static const struct ipc_field_def a_fields[] = {
	{ 1, IPC_T_U32, IPC_REQUIRED, "n" },
	{ 2, IPC_T_STR, 0, "s" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_field_def b_fields[] = {
	{ 1, IPC_T_STR, IPC_REQUIRED, "queue_id" },
	{ 2, IPC_T_U64, IPC_REQUIRED, "size" },
	{ 3, IPC_T_STR, IPC_REQUIRED | IPC_REPEATED, "rcpt" },
	{ 4, IPC_T_BYTES, IPC_REPEATED, "blob" },
	{ 5, IPC_T_U32, IPC_REPEATED, "flags" },
	{ 0xffff, IPC_T_U64, 0, "last" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_msg_def fuzz_msgs[] = {
	{ 1, "a", a_fields, 0 },
	{ 2, "b", b_fields, IPC_MSG_FD },
	{ 3, "empty", NULL, 0 },
	{ 0, NULL, NULL, 0 },
};
static const struct ipc_proto fuzz_proto = { "fuzz", fuzz_msgs };

#define FUZZ_MAX_FRAME 65536

/* Rebuild a decoded message with the builder. */
static struct ipc_msg *rebuild(const struct ipc_msg *d)
{
	struct ipc_msg *m = ipc_msg_new(d->type);

	m->id = d->id;
	m->flags = d->flags;
	for (size_t i = 0; i < d->nfields; i++) {
		const struct ipc_field *f = &d->fields[i];
		uint32_t u32;
		uint64_t u64;

		switch (f->type) {
		case IPC_T_U32:
			u32 = (uint32_t)f->data[0] | (uint32_t)f->data[1] << 8 | (uint32_t)f->data[2] << 16 |
			      (uint32_t)f->data[3] << 24;
			ipc_put_u32(m, f->tag, u32);
			break;
		case IPC_T_U64:
			u64 = 0;
			for (int b = 7; b >= 0; b--)
				u64 = u64 << 8 | f->data[b];
			ipc_put_u64(m, f->tag, u64);
			break;
		case IPC_T_STR:
			if (f->data[f->len] != '\0' || strlen((const char *)f->data) != f->len)
				__builtin_trap();
			ipc_put_strn(m, f->tag, (const char *)f->data, f->len);
			break;
		case IPC_T_BYTES:
			ipc_put_bytes(m, f->tag, f->data, f->len);
			break;
		default:
			__builtin_trap();
		}
	}
	return m;
}

static void check_getters(const struct ipc_msg *d)
{
	struct ipc_iter it;
	const char *s;
	size_t n = 0, len;

	ipc_iter_init(&it, d, 3);
	if (d->type == 2) {
		while (ipc_iter_str(&it, &s, &len))
			n++;
		if (n == 0 || n != ipc_count(d, 3))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT(4096);
	struct ipc_msg *m = NULL, *again;
	struct ipc_reader r;
	size_t off = 0, chunk = size ? (size_t)(data[size - 1] % 29) + 1 : 1, frames = 0;
	bool whole, stream_err = false;

	whole = ipc_frame_decode(&fuzz_proto, data, size, FUZZ_MAX_FRAME, -1, &m, &err);
	if (whole) {
		struct buf out = BUF_INIT(BUF_NOLIMIT);

		check_getters(m);
		again = rebuild(m);
		if (!ipc_msg_encode(again, &out) || out.len != size || memcmp(out.data, data, size) != 0)
			__builtin_trap();
		buf_free(&out);
		ipc_msg_free(&again);
		ipc_msg_free(&m);
	} else if (m != NULL) {
		__builtin_trap();
	}

	ipc_reader_init(&r, &fuzz_proto, FUZZ_MAX_FRAME);
	while (off < size && !stream_err) {
		size_t n = size - off;
		int rc;

		if (n > chunk)
			n = chunk;
		if (n > ipc_reader_want(&r))
			n = ipc_reader_want(&r);
		buf_reset(&err);
		if (!ipc_reader_feed(&r, data + off, n, &err)) {
			stream_err = true;
			break;
		}
		off += n;
		if (r.in.len > FUZZ_MAX_FRAME)
			__builtin_trap();
		while ((rc = ipc_reader_next(&r, &m, &err)) == 1) {
			check_getters(m);
			frames++;
			ipc_msg_free(&m);
		}
		if (rc < 0)
			stream_err = true;
	}
	/* one valid frame is one message from the stream reader too, with nothing left over */
	if (whole && (stream_err || frames != 1 || r.in.len != 0))
		__builtin_trap();
	ipc_reader_free(&r);
	buf_free(&err);
	return 0;
}

#ifdef IPC_FUZZ_SEEDS
static void write_seed(const char *dir, const char *name, struct ipc_msg *m, struct ipc_msg *m2)
{
	struct buf b = BUF_INIT(BUF_NOLIMIT);
	char path[512];
	FILE *f;

	ipc_msg_encode(m, &b);
	if (m2)
		ipc_msg_encode(m2, &b);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0)
		perror(path);
	buf_free(&b);
}

int main(int argc, char **argv)
{
	struct ipc_msg *a = ipc_msg_new(1), *b = ipc_msg_new(2), *e = ipc_msg_new(3), *x;
	static const uint8_t blob[] = { 0, 0xff, 'x', 0 };

	if (argc != 2)
		return 2;
	a->id = 1;
	ipc_put_u32(a, 1, 42);
	ipc_put_str(a, 2, "hello");
	write_seed(argv[1], "a", a, NULL);
	b->id = 0x0102030405060708ull;
	ipc_put_str(b, 1, "4AbC9");
	ipc_put_u64(b, 2, 123456789);
	ipc_put_str(b, 3, "alice@example.org");
	ipc_put_bytes(b, 4, blob, sizeof(blob));
	ipc_put_str(b, 3, "bob@example.org");
	ipc_put_u32(b, 5, 7);
	ipc_put_u64(b, 0xffff, 1);
	write_seed(argv[1], "b", b, NULL);
	e->flags = IPC_F_REPLY;
	e->id = 9;
	write_seed(argv[1], "empty-reply", e, NULL);
	x = ipc_msg_error(a, 3, "temporary failure");
	write_seed(argv[1], "error", x, NULL);
	write_seed(argv[1], "two-frames", a, b);
	ipc_msg_free(&a);
	ipc_msg_free(&b);
	ipc_msg_free(&e);
	ipc_msg_free(&x);
	return 0;
}
#endif
