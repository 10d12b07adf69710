"""A minimal SMTP sink for the queue tests: accepts everything on a loopback port, one thread per session, and
records each message's content once the final dot has been read (the moment it answers 250). Can be opened and
closed while a test runs, to play a next hop that is down."""
import re
import socket
import threading


class Sink:
    def __init__(self, port, host='127.0.0.1'):
        self.host, self.port = host, port
        self.messages = []
        self.lock = threading.Lock()
        self.sock = None
        self.threads = []

    def open(self):
        s = socket.socket(socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        self.sock = s
        t = threading.Thread(target=self._accept, args=(s,), daemon=True)
        t.start()
        self.threads.append(t)

    def close(self):
        s, self.sock = self.sock, None
        if s:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, s):
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        conn.settimeout(60)
        try:
            f = conn.makefile('rwb')

            def say(text):
                f.write(text.encode() + b'\r\n')
                f.flush()
            say('220 sink.test ESMTP sink')
            rcpts = []
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line.decode('utf-8', 'replace').split(' ', 1)[0].strip().upper()
                if verb == 'EHLO':
                    say('250-sink.test')
                    say('250-PIPELINING')
                    say('250 8BITMIME')
                elif verb == 'HELO':
                    say('250 sink.test')
                elif verb == 'MAIL':
                    rcpts = []
                    say('250 2.1.0 ok')
                elif verb == 'RCPT':
                    m = re.search(rb'<([^>]*)>', line)
                    rcpts.append(m.group(1).decode() if m else '')
                    say('250 2.1.5 ok')
                elif verb == 'DATA':
                    say('354 go')
                    data = []
                    while True:
                        l = f.readline()
                        if not l:
                            return      # cut off mid-message: not received
                        if l == b'.\r\n':
                            break
                        data.append(l[1:] if l.startswith(b'..') else l)
                    with self.lock:
                        self.messages.append((list(rcpts), b''.join(data)))
                    say('250 2.0.0 queued')
                elif verb == 'RSET':
                    rcpts = []
                    say('250 2.0.0 ok')
                elif verb == 'QUIT':
                    say('221 bye')
                    return
                else:
                    say('250 ok' if verb == 'NOOP' else '502 5.5.2 what')
        except OSError:
            pass
        finally:
            conn.close()

    def subjects(self, pattern):
        """Counts of the regex group 1 of pattern over every message's Subject line."""
        seen = {}
        with self.lock:
            msgs = list(self.messages)
        for _, data in msgs:
            m = re.search(pattern, data.decode('utf-8', 'replace'), re.M)
            if m:
                seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        return seen
