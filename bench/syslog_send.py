"""Sends N RFC 5424 syslog messages, newline framed, over one TCP connection (bench/syslog.sh).

Every hundredth message is an sshd authentication failure; the rest are routine daemon lines.
"""
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
routine = b"<30>1 2026-12-04T10:00:00.000Z gw-%d app 100 - - heartbeat ok seq=%d\n"
attack = b"<38>1 2026-12-04T10:00:00.000Z gw-%d sshd 22 - - Failed password for root from 203.0.113.9 port %d ssh2\n"
s = socket.create_connection((host, port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
batch = []
for i in range(n):
    batch.append((attack if i % 100 == 0 else routine) % (i % 50, i))
    if len(batch) == 1000:
        s.sendall(b"".join(batch))
        batch = []
if batch:
    s.sendall(b"".join(batch))
s.shutdown(socket.SHUT_WR)
s.close()
