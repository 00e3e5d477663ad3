# Times how long the daemon takes to refuse a request head with many webhook-signature
# entries and a large body declared but not sent. Usage: sigprobe.py HOST:PORT ENTRIES ROUNDS
# (a daemon on the shipped config, inbox `shop`).
import socket, sys, time, statistics
host, port = sys.argv[1].split(":"); entries = int(sys.argv[2]); rounds = int(sys.argv[3])
sig = " ".join(["v1," + "A" * 43 + "="] * entries)
times = []
for i in range(rounds):
    head = (f"POST /hooks/shop HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: 9437184\r\nwebhook-id: m{i}\r\nwebhook-timestamp: {int(time.time())}\r\n"
            f"webhook-signature: {sig}\r\n\r\n").encode()
    s = socket.create_connection((host, int(port)))
    t = time.perf_counter()
    try:
        s.sendall(head)
    except OSError:
        pass
    data = s.recv(4096)
    times.append((time.perf_counter() - t) * 1000)
    s.close()
    status = data.split(b" ")[1].decode() if data else "none"
times.sort()
print(f"{entries} entries: status {status}, p50 {statistics.median(times):.2f} ms, max {times[-1]:.2f} ms over {rounds}")
