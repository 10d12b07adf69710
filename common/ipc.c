/* IPC codec: message builder, strict table-driven decoder, field getters and the incremental frame reader.
 * See ipc.h and docs/ARCHITECTURE.md ("IPC") for the wire format. All integers are little-endian. */
#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

static const struct ipc_field_def error_fields[] = {
	{ IPC_TAG_ERR_CODE, IPC_T_U32, IPC_REQUIRED, "code" },
	{ IPC_TAG_ERR_TEXT, IPC_T_STR, IPC_REQUIRED, "text" },
	{ 0, 0, 0, NULL },
};
static const struct ipc_msg_def error_def = { IPC_TYPE_ERROR, "error", error_fields, 0 };

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ---- building ---- */

struct ipc_msg *ipc_msg_new(uint32_t type)
{
	struct ipc_msg *m = xcalloc(1, sizeof(*m));

	m->type = type;
	m->fd = -1;
	buf_init(&m->payload, IPC_MAX_FRAME_LIMIT - IPC_HDR_LEN);
	return m;
}

struct ipc_msg *ipc_msg_reply_to(const struct ipc_msg *req, uint32_t type)
{
	struct ipc_msg *m = ipc_msg_new(type);

	m->id = req->id;
	m->flags = IPC_F_REPLY;
	return m;
}

struct ipc_msg *ipc_msg_error(const struct ipc_msg *req, uint32_t code, const char *text)
{
	struct ipc_msg *m = req ? ipc_msg_reply_to(req, IPC_TYPE_ERROR) : ipc_msg_new(IPC_TYPE_ERROR);

	ipc_put_u32(m, IPC_TAG_ERR_CODE, code);
	ipc_put_str(m, IPC_TAG_ERR_TEXT, text);
	return m;
}

void ipc_msg_free(struct ipc_msg **mp)
{
	struct ipc_msg *m = *mp;

	if (m == NULL)
		return;
	if (m->fd >= 0)
		close(m->fd);
	/* IPC carries passwords (auth VERIFY): no copy outlives its message */
	buf_free_wipe(&m->payload);
	for (size_t i = 0; i < m->nfields; i++)
		explicit_bzero((void *)m->fields[i].data, m->fields[i].len);
	free(m->fields);
	free(m->arena);
	free(m);
	*mp = NULL;
}

static void put_field(struct ipc_msg *m, uint16_t tag, uint8_t type, const void *p, size_t len)
{
	uint8_t h[IPC_FIELD_HDR_LEN];

	if (tag == 0)
		panic("ipc_put: tag 0 is reserved");
	if (m->fields != NULL)
		panic("ipc_put: message was decoded, not built");
	if (len > UINT32_MAX || !buf_reserve(&m->payload, IPC_FIELD_HDR_LEN + len))
		panic("ipc_put: message type %u larger than %u bytes", m->type, IPC_MAX_FRAME_LIMIT);
	put_le16(h, tag);
	h[2] = type;
	h[3] = 0;
	put_le32(h + 4, (uint32_t)len);
	buf_append(&m->payload, h, sizeof(h));
	buf_append(&m->payload, p, len);
}

void ipc_put_u32(struct ipc_msg *m, uint16_t tag, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	put_field(m, tag, IPC_T_U32, b, sizeof(b));
}

void ipc_put_u64(struct ipc_msg *m, uint16_t tag, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	put_field(m, tag, IPC_T_U64, b, sizeof(b));
}

void ipc_put_strn(struct ipc_msg *m, uint16_t tag, const char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL)
		panic("ipc_put_strn: NUL byte inside a string field (tag %u)", tag);
	put_field(m, tag, IPC_T_STR, s, len);
}

void ipc_put_str(struct ipc_msg *m, uint16_t tag, const char *s)
{
	put_field(m, tag, IPC_T_STR, s, strlen(s));
}

void ipc_put_bytes(struct ipc_msg *m, uint16_t tag, const void *p, size_t len)
{
	put_field(m, tag, IPC_T_BYTES, p, len);
}

void ipc_msg_set_fd(struct ipc_msg *m, int fd)
{
	if (m->fd >= 0 && m->fd != fd)
		close(m->fd);
	m->fd = fd;
}

int ipc_msg_take_fd(struct ipc_msg *m)
{
	int fd = m->fd;

	m->fd = -1;
	return fd;
}

bool ipc_msg_encode(const struct ipc_msg *m, struct buf *out)
{
	uint8_t h[IPC_HDR_LEN];
	uint16_t flags = (uint16_t)(m->flags & IPC_F_REPLY);

	if (m->fields != NULL)
		panic("ipc_msg_encode: message was decoded, not built");
	if (m->fd >= 0)
		flags |= IPC_F_FD;
	h[0] = IPC_MAGIC0;
	h[1] = IPC_MAGIC1;
	put_le16(h + 2, IPC_VERSION);
	put_le16(h + 4, flags);
	put_le16(h + 6, 0);
	put_le32(h + 8, m->type);
	put_le32(h + 12, (uint32_t)m->payload.len);
	put_le64(h + 16, m->id);
	if (!buf_reserve(out, sizeof(h) + m->payload.len))
		return false;
	buf_append(out, h, sizeof(h));
	buf_append(out, m->payload.data, m->payload.len);
	return true;
}

/* ---- decoding ---- */

bool ipc_hdr_decode(const void *p, size_t max_frame, struct ipc_hdr *h, struct buf *err)
{
	const uint8_t *b = p;

	if (max_frame == 0)
		max_frame = IPC_MAX_FRAME_DEFAULT;
	if (max_frame > IPC_MAX_FRAME_LIMIT)
		max_frame = IPC_MAX_FRAME_LIMIT;
	if (b[0] != IPC_MAGIC0 || b[1] != IPC_MAGIC1) {
		buf_printf(err, "not a Postern IPC frame (bad magic 0x%02x%02x)", b[0], b[1]);
		return false;
	}
	h->version = get_le16(b + 2);
	h->flags = get_le16(b + 4);
	h->type = get_le32(b + 8);
	h->len = get_le32(b + 12);
	h->id = get_le64(b + 16);
	if (h->version != IPC_VERSION) {
		buf_printf(err, "IPC version mismatch: peer speaks version %u, we speak version %u "
		           "(are all Postern programs from the same build?)", h->version, IPC_VERSION);
		return false;
	}
	if (h->flags & ~IPC_F_KNOWN) {
		buf_printf(err, "unknown IPC header flags 0x%04x", h->flags);
		return false;
	}
	if (get_le16(b + 6) != 0) {
		buf_printf(err, "reserved IPC header bytes are not zero");
		return false;
	}
	if (h->type == 0) {
		buf_printf(err, "IPC message type 0 is invalid");
		return false;
	}
	if ((uint64_t)h->len + IPC_HDR_LEN > max_frame) {
		buf_printf(err, "IPC frame of %llu bytes exceeds the limit of %zu bytes",
		           (unsigned long long)h->len + IPC_HDR_LEN, max_frame);
		return false;
	}
	return true;
}

static const struct ipc_msg_def *find_def(const struct ipc_proto *proto, uint32_t type)
{
	if (type == IPC_TYPE_ERROR)
		return &error_def;
	if (proto == NULL || proto->msgs == NULL)
		return NULL;
	for (const struct ipc_msg_def *d = proto->msgs; d->name != NULL; d++)
		if (d->type == type)
			return d;
	return NULL;
}

const char *ipc_type_name(const struct ipc_proto *proto, uint32_t type)
{
	const struct ipc_msg_def *d = find_def(proto, type);
	return d ? d->name : "unknown";
}

static const char *ftype_name(uint8_t t)
{
	switch (t) {
	case IPC_T_U32: return "u32";
	case IPC_T_U64: return "u64";
	case IPC_T_STR: return "string";
	case IPC_T_BYTES: return "bytes";
	default: return "unknown-type";
	}
}

bool ipc_payload_decode(const struct ipc_proto *proto, const struct ipc_hdr *h, const void *payload, int fd,
                        struct ipc_msg **out, struct buf *err)
{
	const uint8_t *p = payload;
	const struct ipc_msg_def *def = find_def(proto, h->type);
	const char *pname = proto && proto->name ? proto->name : "ipc";
	size_t ndefs = 0, nf = 0, off = 0, aoff = 0;
	unsigned *seen = NULL;
	struct ipc_msg *m = NULL;

	*out = NULL;
	if (def == NULL) {
		buf_printf(err, "%s: unknown message type %u", pname, h->type);
		goto fail;
	}
	if (((h->flags & IPC_F_FD) != 0) != (fd >= 0)) {
		buf_printf(err, "%s %s: %s", pname, def->name,
		           fd >= 0 ? "descriptor received but not announced" : "announced descriptor missing");
		goto fail;
	}
	if (fd >= 0 && !(def->flags & IPC_MSG_FD)) {
		buf_printf(err, "%s %s: a descriptor is not allowed with this message", pname, def->name);
		goto fail;
	}
	if (def->fields)
		while (def->fields[ndefs].tag != 0)
			ndefs++;
	seen = xcalloc(ndefs + 1, sizeof(*seen));
	m = ipc_msg_new(h->type);
	m->flags = h->flags & IPC_F_REPLY;
	m->id = h->id;
	/* every field has an 8-byte header, so len / 8 bounds the count; each value gets a NUL after it */
	m->fields = xcalloc(h->len / IPC_FIELD_HDR_LEN + 1, sizeof(*m->fields));
	m->arena = xmalloc((size_t)h->len + h->len / IPC_FIELD_HDR_LEN + 1);
	while (off < h->len) {
		const struct ipc_field_def *fd_def = NULL;
		uint16_t tag;
		uint8_t type;
		uint32_t len;
		size_t i;

		if (h->len - off < IPC_FIELD_HDR_LEN) {
			buf_printf(err, "%s %s: truncated field header at offset %zu", pname, def->name, off);
			goto fail;
		}
		tag = get_le16(p + off);
		type = p[off + 2];
		len = get_le32(p + off + 4);
		if (p[off + 3] != 0) {
			buf_printf(err, "%s %s: reserved field byte not zero at offset %zu", pname, def->name, off);
			goto fail;
		}
		off += IPC_FIELD_HDR_LEN;
		if (len > h->len - off) {
			buf_printf(err, "%s %s: field tag %u claims %u bytes, only %zu left", pname, def->name, tag,
			           len, h->len - off);
			goto fail;
		}
		for (i = 0; i < ndefs; i++)
			if (def->fields[i].tag == tag) {
				fd_def = &def->fields[i];
				break;
			}
		if (fd_def == NULL) {
			buf_printf(err, "%s %s: unknown field tag %u", pname, def->name, tag);
			goto fail;
		}
		if (type != fd_def->type) {
			buf_printf(err, "%s %s: field %s is %s, expected %s", pname, def->name, fd_def->name,
			           ftype_name(type), ftype_name(fd_def->type));
			goto fail;
		}
		if ((type == IPC_T_U32 && len != 4) || (type == IPC_T_U64 && len != 8)) {
			buf_printf(err, "%s %s: field %s has bad length %u", pname, def->name, fd_def->name, len);
			goto fail;
		}
		if (type == IPC_T_STR && memchr(p + off, '\0', len) != NULL) {
			buf_printf(err, "%s %s: field %s contains a NUL byte", pname, def->name, fd_def->name);
			goto fail;
		}
		if (seen[i]++ && !(fd_def->flags & IPC_REPEATED)) {
			buf_printf(err, "%s %s: field %s repeated", pname, def->name, fd_def->name);
			goto fail;
		}
		memcpy(m->arena + aoff, p + off, len);
		m->arena[aoff + len] = '\0';
		m->fields[nf].tag = tag;
		m->fields[nf].type = type;
		m->fields[nf].len = len;
		m->fields[nf].data = m->arena + aoff;
		nf++;
		aoff += (size_t)len + 1;
		off += len;
	}
	for (size_t i = 0; i < ndefs; i++)
		if ((def->fields[i].flags & IPC_REQUIRED) && seen[i] == 0) {
			buf_printf(err, "%s %s: required field %s missing", pname, def->name, def->fields[i].name);
			goto fail;
		}
	m->nfields = nf;
	m->fd = fd;
	free(seen);
	*out = m;
	return true;
fail:
	free(seen);
	ipc_msg_free(&m);
	if (fd >= 0)
		close(fd);
	return false;
}

bool ipc_frame_decode(const struct ipc_proto *proto, const void *p, size_t len, size_t max_frame, int fd,
                      struct ipc_msg **out, struct buf *err)
{
	struct ipc_hdr h;

	*out = NULL;
	if (len < IPC_HDR_LEN) {
		buf_printf(err, "truncated IPC frame: %zu bytes, header needs %d", len, IPC_HDR_LEN);
		goto fail;
	}
	if (!ipc_hdr_decode(p, max_frame, &h, err))
		goto fail;
	if (len - IPC_HDR_LEN < h.len) {
		buf_printf(err, "truncated IPC frame: payload %zu of %u bytes", len - IPC_HDR_LEN, h.len);
		goto fail;
	}
	if (len - IPC_HDR_LEN > h.len) {
		buf_printf(err, "%zu trailing bytes after IPC frame", len - IPC_HDR_LEN - h.len);
		goto fail;
	}
	return ipc_payload_decode(proto, &h, (const uint8_t *)p + IPC_HDR_LEN, fd, out, err);
fail:
	if (fd >= 0)
		close(fd);
	return false;
}

/* ---- getters ---- */

static const struct ipc_field *find_field(const struct ipc_msg *m, uint16_t tag, uint8_t type, size_t from,
                                          size_t *pos)
{
	for (size_t i = from; i < m->nfields; i++)
		if (m->fields[i].tag == tag) {
			if (m->fields[i].type != type)
				panic("ipc_get: field tag %u of message type %u read as %s, is %s", tag, m->type,
				      ftype_name(type), ftype_name(m->fields[i].type));
			if (pos)
				*pos = i;
			return &m->fields[i];
		}
	return NULL;
}

static void field_value(const struct ipc_field *f, void *out, const void **ptr, size_t *len)
{
	switch (f->type) {
	case IPC_T_U32: *(uint32_t *)out = get_le32(f->data); break;
	case IPC_T_U64: *(uint64_t *)out = get_le64(f->data); break;
	default:
		*ptr = f->data;
		if (len)
			*len = f->len;
	}
}

bool ipc_get_u32(const struct ipc_msg *m, uint16_t tag, uint32_t *out)
{
	const struct ipc_field *f = find_field(m, tag, IPC_T_U32, 0, NULL);
	if (f)
		field_value(f, out, NULL, NULL);
	return f != NULL;
}

bool ipc_get_u64(const struct ipc_msg *m, uint16_t tag, uint64_t *out)
{
	const struct ipc_field *f = find_field(m, tag, IPC_T_U64, 0, NULL);
	if (f)
		field_value(f, out, NULL, NULL);
	return f != NULL;
}

bool ipc_get_str(const struct ipc_msg *m, uint16_t tag, const char **out, size_t *len)
{
	const struct ipc_field *f = find_field(m, tag, IPC_T_STR, 0, NULL);
	if (f)
		field_value(f, NULL, (const void **)out, len);
	return f != NULL;
}

bool ipc_get_bytes(const struct ipc_msg *m, uint16_t tag, const void **out, size_t *len)
{
	const struct ipc_field *f = find_field(m, tag, IPC_T_BYTES, 0, NULL);
	if (f)
		field_value(f, NULL, out, len);
	return f != NULL;
}

size_t ipc_count(const struct ipc_msg *m, uint16_t tag)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nfields; i++)
		n += m->fields[i].tag == tag;
	return n;
}

void ipc_iter_init(struct ipc_iter *it, const struct ipc_msg *m, uint16_t tag)
{
	it->msg = m;
	it->tag = tag;
	it->pos = 0;
}

static const struct ipc_field *iter_next(struct ipc_iter *it, uint8_t type)
{
	size_t pos;
	const struct ipc_field *f = find_field(it->msg, it->tag, type, it->pos, &pos);

	it->pos = f ? pos + 1 : it->msg->nfields;
	return f;
}

bool ipc_iter_u32(struct ipc_iter *it, uint32_t *out)
{
	const struct ipc_field *f = iter_next(it, IPC_T_U32);
	if (f)
		field_value(f, out, NULL, NULL);
	return f != NULL;
}

bool ipc_iter_u64(struct ipc_iter *it, uint64_t *out)
{
	const struct ipc_field *f = iter_next(it, IPC_T_U64);
	if (f)
		field_value(f, out, NULL, NULL);
	return f != NULL;
}

bool ipc_iter_str(struct ipc_iter *it, const char **out, size_t *len)
{
	const struct ipc_field *f = iter_next(it, IPC_T_STR);
	if (f)
		field_value(f, NULL, (const void **)out, len);
	return f != NULL;
}

bool ipc_iter_bytes(struct ipc_iter *it, const void **out, size_t *len)
{
	const struct ipc_field *f = iter_next(it, IPC_T_BYTES);
	if (f)
		field_value(f, NULL, out, len);
	return f != NULL;
}

bool ipc_msg_is_error(const struct ipc_msg *m, uint32_t *code, const char **text)
{
	uint32_t c = 0;
	const char *t = "";

	if (m->type != IPC_TYPE_ERROR)
		return false;
	(void)ipc_get_u32(m, IPC_TAG_ERR_CODE, &c);
	(void)ipc_get_str(m, IPC_TAG_ERR_TEXT, &t, NULL);
	if (code)
		*code = c;
	if (text)
		*text = t;
	return true;
}

/* ---- incremental reader ---- */

void ipc_reader_init(struct ipc_reader *r, const struct ipc_proto *proto, size_t max_frame)
{
	if (max_frame == 0)
		max_frame = IPC_MAX_FRAME_DEFAULT;
	if (max_frame > IPC_MAX_FRAME_LIMIT)
		max_frame = IPC_MAX_FRAME_LIMIT;
	if (max_frame < IPC_HDR_LEN)
		max_frame = IPC_HDR_LEN;
	r->proto = proto;
	r->max_frame = max_frame;
	buf_init(&r->in, max_frame);
	r->have_hdr = false;
	r->fd = -1;
}

void ipc_reader_free(struct ipc_reader *r)
{
	buf_free_wipe(&r->in);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->have_hdr = false;
}

size_t ipc_reader_want(const struct ipc_reader *r)
{
	if (!r->have_hdr)
		return IPC_HDR_LEN - r->in.len;
	return IPC_HDR_LEN + (size_t)r->hdr.len - r->in.len;
}

bool ipc_reader_feed(struct ipc_reader *r, const void *p, size_t n, struct buf *err)
{
	if (n > ipc_reader_want(r)) {
		buf_printf(err, "ipc_reader_feed: %zu bytes fed, frame needs %zu", n, ipc_reader_want(r));
		return false;
	}
	if (!buf_append(&r->in, p, n)) {
		buf_printf(err, "IPC frame exceeds %zu bytes", r->max_frame);
		return false;
	}
	if (!r->have_hdr && r->in.len == IPC_HDR_LEN) {
		/* the size is checked here, before the buffer grows for the payload */
		if (!ipc_hdr_decode(r->in.data, r->max_frame, &r->hdr, err))
			return false;
		r->have_hdr = true;
	}
	return true;
}

bool ipc_reader_feed_fd(struct ipc_reader *r, int fd, struct buf *err)
{
	if (r->fd >= 0) {
		close(fd);
		buf_printf(err, "more than one descriptor received with one IPC frame");
		return false;
	}
	r->fd = fd;
	return true;
}

int ipc_reader_next(struct ipc_reader *r, struct ipc_msg **out, struct buf *err)
{
	bool ok;
	int fd;

	*out = NULL;
	if (!r->have_hdr || ipc_reader_want(r) != 0)
		return 0;
	fd = r->fd;
	r->fd = -1;
	ok = ipc_payload_decode(r->proto, &r->hdr, r->in.data + IPC_HDR_LEN, fd, out, err);
	r->have_hdr = false;
	if (r->in.data)
		explicit_bzero(r->in.data, r->in.len);	/* the decoded message has its own copy */
	/* keep small buffers for the next frame, give big ones back */
	if (r->in.cap > 65536)
		buf_free(&r->in);
	else
		buf_reset(&r->in);
	return ok ? 1 : -1;
}
