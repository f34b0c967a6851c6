# Measures inside bench/daemon.sh's namespace: argv = RUNS WORKDIR HOSTDEVD.
import os, resource, socket, statistics, subprocess, sys, threading, time
runs, w, hostdevd = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sock = f"{w}/hostdevd.sock"
tick = os.sysconf("SC_CLK_TCK")
env = dict(os.environ)
env.pop("HOSTDEV_ROOT", None)
daemon = subprocess.Popen([hostdevd, "--config", f"{w}/d.toml", "--socket", sock],
                          env=dict(env, HOSTDEV_LOG="warn"), stderr=subprocess.DEVNULL)
while not os.path.exists(sock):
    time.sleep(0.01)
time.sleep(0.5)

def dcpu():
    f = open(f"/proc/{daemon.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def rss(key):
    for l in open(f"/proc/{daemon.pid}/status"):
        if l.startswith(key):
            return int(l.split()[1]) / 1024
    return 0.0

def measure(argv, mode):
    e = dict(env, HOSTDEV_SOCKET=sock if mode == "daemon" else "")
    out = subprocess.run(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    walls = []
    c0, d0 = resource.getrusage(resource.RUSAGE_CHILDREN), dcpu()
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append((time.perf_counter() - t) * 1000)
    c1, d1 = resource.getrusage(resource.RUSAGE_CHILDREN), dcpu()
    client = ((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)) / runs * 1000
    dms = (d1 - d0) / runs * 1000
    walls.sort()
    p99 = walls[min(len(walls) - 1, int(len(walls) * 0.99))]
    return statistics.median(walls), p99, client, dms, out

print(f"{runs} runs each; wall time per command; CPU per command (user+sys), the daemon's share measured from /proc")
print()
idle = rss("VmRSS")
print("| `hostdevctl list` | p50 (ms) | p99 (ms) | client CPU (ms) | daemon CPU (ms) | total CPU (ms) |")
print("|---|---:|---:|---:|---:|---:|")
base = None
for mode in ["direct", "daemon"]:
    p50, p99, c, d, out = measure([f"{w}/bin/hostdevctl", "list"], mode)
    base = base or out
    same = "" if out == base else " (OUTPUT DIFFERS)"
    print(f"| {mode}{same} | {p50:.1f} | {p99:.1f} | {c:.1f} | {d:.1f} | {c + d:.1f} |")

# The same request as an API client makes it (no process started, nothing
# rendered): one connection per request, the whole answer read.
def api(path):
    walls = []
    d0 = dcpu()
    for _ in range(runs * 5):
        t = time.perf_counter()
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock)
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: hostdevd\r\nConnection: close\r\n\r\n".encode())
        while c.recv(1 << 20):
            pass
        c.close()
        walls.append((time.perf_counter() - t) * 1000)
    dms = (dcpu() - d0) / (runs * 5) * 1000
    walls.sort()
    p99 = walls[min(len(walls) - 1, int(len(walls) * 0.99))]
    return statistics.median(walls), p99, dms
p50, p99, d = api("/v1/devices")
print(f"| GET /v1/devices (API client, no process) | {p50:.2f} | {p99:.2f} | - | {d:.1f} | {d:.1f} |")

# 64 clients at once, each listing.
def client():
    subprocess.run([f"{w}/bin/hostdevctl", "list"], env=dict(env, HOSTDEV_SOCKET=sock),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ts = [threading.Thread(target=client) for _ in range(64)]
t0 = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
burst = (time.perf_counter() - t0) * 1000
print()
print(f"daemon RSS: idle {idle:.1f} MiB; peak {rss('VmHWM'):.1f} MiB after 64 concurrent `list` clients (all done in {burst:.0f} ms)")
print()
print("| libvirt's call | Debian mdevctl CPU (ms) | direct CPU (ms) | direct / mdevctl | daemon total CPU (ms) | daemon / mdevctl | daemon p50 (ms) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for args in [["list", "--dumpjson", "--defined"], ["list", "--dumpjson"]]:
    _, _, peer, _, pout = measure(["/usr/bin/mdevctl"] + args, "direct")
    _, _, dc, _, dout = measure([f"{w}/bin/mdevctl"] + args, "direct")
    p50, _, c, d, tout = measure([f"{w}/bin/mdevctl"] + args, "daemon")
    flag = "" if pout == dout == tout else " (OUTPUT DIFFERS)"
    print(f"| {' '.join(args)}{flag} | {peer:.1f} | {dc:.1f} | {dc / peer:.3f} | {c + d:.1f} | {(c + d) / peer:.3f} | {p50:.1f} |")
print()
daemon.terminate()
daemon.wait()
