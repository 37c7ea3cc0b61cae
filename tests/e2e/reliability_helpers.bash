# Helpers of tests/e2e/reliability.bats.
# shellcheck shell=bash

# start_with_config JSON: start_metrics_daemon with this config
start_with_config() {
	echo "$1" >"$T/c.json"
	start_metrics_daemon -c "$T/c.json"
}

# slowloris PORT N SECONDS READY: keep N connections to 127.0.0.1:PORT,
# each sending a request line and then one header line a second, never the
# end of the headers; one the server closes is replaced at once. Writes
# READY once the first N are connected. At the end one JSON line: how many
# the server cut, how long they had lived (min, max), how many it answered
# instead, and the age of the oldest still open.
slowloris() {
	python3 - "$@" <<'EOF'
import json, socket, sys, time

port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conns, lived, answered = {}, [], 0

def connect():
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    conns[s] = [time.monotonic(), 0]

for _ in range(n):
    connect()
open(sys.argv[4], "w").write("connected\n")
end = time.monotonic() + secs
while time.monotonic() < end:
    for s in list(conns):
        t0, k = conns[s]
        closed = False
        try:
            if s.recv(4096):
                answered += 1
            closed = True
        except BlockingIOError:
            try:
                s.send(b"X-Pad-%d: x\r\n" % k)
                conns[s][1] += 1
            except BlockingIOError:
                pass
            except OSError:
                closed = True
        except OSError:
            closed = True
        if closed:
            lived.append(time.monotonic() - t0)
            s.close()
            del conns[s]
            connect()
    time.sleep(1)
now = time.monotonic()
print(json.dumps({"cut": len(lived), "answered": answered,
                  "min_lived": round(min(lived, default=0), 1),
                  "max_lived": round(max(lived, default=0), 1), "open": len(conns),
                  "oldest_open": round(max((now - c[0] for c in conns.values()), default=0), 1)}))
EOF
}

# held N: at least N client sockets are connected to the metrics port
held() {
	[ "$(ss -Htn state established "( dport = :$MPORT )" | wc -l)" -ge "$1" ]
}
