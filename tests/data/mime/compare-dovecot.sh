#!/usr/bin/env bash
# Compare our BODYSTRUCTURE, BODY and ENVELOPE expectations (NAME.bs/.body/.env beside each NAME.eml) with what
# Dovecot's imap answers for the same messages. Optional: needs Dovecot 2.3 (Debian dovecot-core and
# dovecot-imapd), either installed (DOVECOT_ROOT=/) or unpacked with "dpkg -x" into a directory
# (DOVECOT_ROOT=that directory). No server is started: imap runs in PREAUTH mode on stdin/stdout over a
# temporary Maildir. Run as root it drops to "nobody" (Dovecot refuses mail access as root).
#   tests/data/mime/compare-dovecot.sh [DIR]        (DIR defaults to this directory)
# Differences we keep on purpose (see docs of common/mime.h and imap_body.h):
#   - "--bx" is not a boundary line for boundary "b" (RFC 2046 grammar); Dovecot matches prefixes.
#   - Content-* fields of a part without Content-Type are honoured; Dovecot then sends the bare default.
#   - An invalid Content-Type means text/plain (RFC 2045 5.2).
#   - A message/rfc822 part with a transfer encoding other than 7bit/8bit/binary (RFC 2046 5.2.1 forbids it) is
#     not parsed as a message: its ENVELOPE is all NIL; Dovecot parses the encoded bytes.
#   - Non-extended sections of an RFC 2231 value are percent-encoded when joined to extended ones.
#   - Beyond the nesting limit we send an empty text/plain part; quoted strings are escaped rather than sent
#     as literals.
set -eu
dir=$(cd "${1:-$(dirname "$0")}" && pwd)
root=${DOVECOT_ROOT:-/}
imap=$root/usr/lib/dovecot/imap
doveconf=$root/usr/bin/doveconf
[ -x "$imap" ] && [ -x "$doveconf" ] || { echo "Dovecot not found under $root (set DOVECOT_ROOT)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/mail/cur" "$work/mail/new" "$work/mail/tmp" "$work/run" "$work/home"
user=$(id -un)
run=()
if [ "$(id -u)" = 0 ]; then
	user=nobody
	run=(setpriv --reuid nobody --regid "$(id -gn nobody)" --clear-groups)
	chmod 755 "$work"
fi
cat > "$work/dovecot.conf" <<CONF
mail_location = maildir:$work/mail
ssl = no
log_path = /dev/null
base_dir = $work/run
state_dir = $work/run
first_valid_uid = 0
first_valid_gid = 0
default_login_user = $user
default_internal_user = $user
default_internal_group = $(id -gn "$user")
CONF
names=()
i=0
for f in "$dir"/*.eml; do
	i=$((i + 1))
	n=$(basename "$f" .eml)
	names+=("$n")
	cp "$f" "$work/mail/cur/$((100000 + i)).$n:2,"
done
[ "$(id -u)" = 0 ] && chown -R nobody "$work/mail" "$work/run" "$work/home"
printf 'a SELECT INBOX\nb FETCH 1:* (BODYSTRUCTURE)\nc FETCH 1:* (BODY)\nd FETCH 1:* (ENVELOPE)\ne LOGOUT\n' |
	LD_LIBRARY_PATH="$root/usr/lib/dovecot" USER=$user HOME="$work/home" timeout 60 "${run[@]}" \
		"$doveconf" -c "$work/dovecot.conf" -e "$imap" > "$work/out" 2>&1
python3 - "$work/out" "$dir" "${names[@]}" <<'PY'
import re, sys
data = open(sys.argv[1], 'rb').read()
d, names = sys.argv[2], sys.argv[3:]
got = {}
pos = 0
pat = re.compile(rb'\* (\d+) FETCH \((BODYSTRUCTURE|BODY|ENVELOPE) ')
while True:
    m = pat.search(data, pos)
    if not m:
        break
    j, depth, out = m.end(), 0, bytearray()
    while True:
        c = data[j:j + 1]
        if c == b'"':
            k = j + 1
            while data[k:k + 1] != b'"':
                k += 2 if data[k:k + 1] == b'\\' else 1
            out += data[j:k + 1]; j = k + 1; continue
        if c == b'{':
            k = data.index(b'}', j); n = int(data[j + 1:k])
            out += data[j:k + 3 + n]; j = k + 3 + n; continue
        if c == b'(':
            depth += 1
        elif c == b')':
            if depth == 0:
                break
            depth -= 1
        out += c; j += 1
    got[(int(m.group(1)), m.group(2).decode())] = bytes(out)
    pos = j
diffs = 0
for i, n in enumerate(names, 1):
    for item, ext in (('BODYSTRUCTURE', 'bs'), ('BODY', 'body'), ('ENVELOPE', 'env')):
        want = open(f'{d}/{n}.{ext}', 'rb').read().rstrip(b'\n')
        if item != 'ENVELOPE':
            want = b'(' + want + b')'
        if got.get((i, item)) != want:
            diffs += 1
            print(f'--- {n} {item}\n dovecot: {got.get((i, item))!r}\n    ours: {want!r}')
print(f'{len(names)} messages, {diffs} differences')
PY
