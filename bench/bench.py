"""ringpoll's benchmark harness (run through bench/run).

Every scenario runs ringpoll as a user runs it (the release binary, from a config, results read
from its sink) beside the tool a user would pick instead, in the same run, with a warm-up and
several repetitions; the table gives median, min and max and the ratio of the medians. Packets go
to loopback, or stay inside network namespaces this script creates and removes.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RINGPOLL = os.path.join(ROOT, "target", "release", "ringpoll")
USER = "ringpoll-probe"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def timed(cmd, netns=None, env=None, stdout=None):
    """Runs cmd under /usr/bin/time; returns wall (measured here, µs resolution), cpu (user+sys, children included), rss (KB), stdout, stderr."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf.name] + cmd
        if netns:
            full = ["ip", "netns", "exec", netns] + full
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        if stdout is None:
            p = subprocess.run(full, capture_output=True, text=True, env=env)
        else:
            p = subprocess.run(full, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss = tf.read().split()[-1]
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall": wall, "cpu": max(cpu, 1e-6), "rss_kb": int(rss), "out": p.stdout, "err": p.stderr, "rc": p.returncode}


def machine_cpu():
    """Total CPU seconds the machine has spent (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    ticks = sum(int(x) for i, x in enumerate(parts[:8]) if i != 3 and i != 4)  # minus idle, iowait
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def repeat(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    return [fn() for _ in range(reps)]


class Netns:
    def __init__(self, tag):
        self.name = f"rp-bench-{tag}-{os.getpid()}"
        sh("ip", "netns", "del", self.name, check=False)
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    def close(self):
        sh("ip", "netns", "del", self.name, check=False)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def hosts_file(d, n, prefix="127.1"):
    """n distinct loopback addresses from prefix.0.0 on (carrying into the second octet)."""
    first, second = (int(x) for x in prefix.split("."))
    def addr(i):
        k = second * 65536 + i
        return f"{first}.{k // 65536}.{(k // 256) % 256}.{k % 256}"
    assert first == 127 and (second * 65536 + n - 1) // 65536 < 256, "loopback only"
    return write(os.path.join(d, f"hosts-{prefix}-{n}.txt"), "".join(addr(i) + "\n" for i in range(n)))


def sweep_config(d, name, hosts, probe="icmp", timeout="100ms", extra=""):
    return write(os.path.join(d, f"{name}.toml"),
                 f'[node]\nname = "bench"\n[probe]\ntimeout = "{timeout}"\ninterval = "1h"\nmax_targets = 1048576\n{extra}\n'
                 f'[[targets]]\nfile = "{hosts}"\nprobe = "{probe}"\n')


RESULTS = {"scenarios": []}


QUICK = False


def report(scenario, rows, notes=""):
    """rows: list of (label, {metric: stats}); printed as a table and kept for the JSON file."""
    print(f"\n== {scenario}")
    for label, metrics in rows:
        cells = "  ".join(f"{k} {v['median']:.4g} [{v['min']:.4g}..{v['max']:.4g}]" if isinstance(v, dict) else f"{k} {v}" for k, v in metrics.items())
        print(f"  {label:<34} {cells}")
    if notes:
        print(f"  {notes}")
    RESULTS["scenarios"].append({"name": scenario, "rows": [{"label": l, "metrics": m} for l, m in rows], "notes": notes,
                                 "date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": QUICK})


def icmp_sweep(d, reps, sizes):
    for n in sizes:
        hf = hosts_file(d, n)
        cfg = sweep_config(d, f"icmp-{n}", hf)

        def rp():
            r = timed([RINGPOLL, "sweep", "--config", cfg, "--results", "/dev/null"])
            assert f"up {n}," in r["err"], r["err"]
            return r

        def rp_file():
            # The same addresses from the command line: a config sweep must not be slower
            # (issue 28: it was 5-7x).
            r = timed([RINGPOLL, "sweep", "-f", hf, "--timeout", "100ms", "--results", "/dev/null"])
            assert f"up {n}," in r["err"], r["err"]
            return r

        def fp():
            # Both tools report every target (fping's "is alive" lines, ringpoll's JSON lines)
            # to /dev/null.
            r = timed(["fping", "-i", "0", "-r", "0", "-t", "100", "-f", hf], stdout=subprocess.DEVNULL)
            return r

        a, f, b = repeat(rp, reps), repeat(rp_file, reps), repeat(fp, reps)
        rows = []
        for label, runs in (("ringpoll sweep --config", a), ("ringpoll sweep -f", f), ("fping -i 0 -r 0 -t 100", b)):
            rows.append((label, {
                "wall_s": stats([r["wall"] for r in runs]),
                "targets_per_s": stats([n / r["wall"] for r in runs]),
                "cpu_us_per_target": stats([r["cpu"] / n * 1e6 for r in runs]),
                "rss_mb": stats([r["rss_kb"] / 1024 for r in runs]),
            }))
        ratio = statistics.median(r["wall"] for r in a) / statistics.median(r["wall"] for r in b)
        cpu_ratio = statistics.median(r["cpu"] for r in a) / statistics.median(r["cpu"] for r in b)
        by_flag = statistics.median(r["wall"] for r in a) / statistics.median(r["wall"] for r in f)
        report(f"1. ICMP sweep, {n} loopback targets", rows,
               f"ringpoll/fping: wall {ratio:.2f}x, CPU {cpu_ratio:.2f}x (below 1 = ringpoll better); "
               f"--config / -f: wall {by_flag:.2f}x")


def unresponsive(d, reps, n=1024):
    ns = Netns("drop")
    try:
        sh("ip", "netns", "exec", ns.name, "nft", "-f", "-", input=(
            "table ip rpbench { chain input { type filter hook input priority 0; policy accept;\n"
            "  ip daddr 127.200.0.0/16 icmp type echo-request drop; }; }\n"))
        hf = hosts_file(d, n, prefix="127.200")
        cfg = sweep_config(d, "dead", hf, timeout="1s")

        def rp():
            r = timed([RINGPOLL, "sweep", "--config", cfg, "--results", "/dev/null"], netns=ns.name)
            assert f"timeout {n}" in r["err"], r["err"]
            return r

        def fp():
            return timed(["fping", "-i", "0", "-r", "0", "-t", "1000", "-f", hf], netns=ns.name,
                         stdout=subprocess.DEVNULL)

        a, b = repeat(rp, reps), repeat(fp, reps)
        rows = [(label, {"wall_s": stats([r["wall"] for r in runs]), "cpu_s": stats([r["cpu"] for r in runs])})
                for label, runs in (("ringpoll sweep --timeout 1s", a), ("fping -t 1000", b))]
        report(f"2. Unresponsive targets: {n} silently dropped, 1 s timeout", rows,
               f"ringpoll finishes at {statistics.median(r['wall'] for r in a):.3f} s = timeout + {100 * (statistics.median(r['wall'] for r in a) - 1):.1f} %")
    finally:
        ns.close()


def ensure_user():
    if sh("id", USER, check=False).returncode != 0:
        sh("useradd", "-M", "-d", "/", "-s", "/bin/sh", USER)
    sh("usermod", "-p", "*", "-d", "/", "-s", "/bin/sh", USER)
    os.makedirs("/run/sshd", exist_ok=True)


class SshServer:
    """sshd in a namespace of its own, on 0.0.0.0:2222 there, with a host key, a client key
    (`key`) and a known_hosts (`kh`) covering 127.1.*; `hosts(n)` writes n host addresses."""

    def __init__(self, d, tag):
        ensure_user()
        self.ns = Netns(tag)
        self.dir = sd = os.path.join(d, tag)
        os.makedirs(sd)
        os.chmod(sd, 0o755)
        for k in ("host", "id"):
            sh("ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", os.path.join(sd, k))
        shutil.copy(os.path.join(sd, "id.pub"), os.path.join(sd, "authorized_keys"))
        os.chmod(os.path.join(sd, "authorized_keys"), 0o644)
        host_pub = " ".join(open(os.path.join(sd, "host.pub")).read().split()[:2])
        self.key = os.path.join(sd, "id")
        self.kh = write(os.path.join(sd, "known_hosts"), f"[127.1.*]:2222 {host_pub}\n")
        self.config = write(os.path.join(sd, "sshd_config"),
              f"ListenAddress 0.0.0.0:2222\nHostKey {sd}/host\nPidFile {sd}/sshd.pid\nAuthorizedKeysFile {sd}/authorized_keys\n"
              f"UsePAM no\nUseDNS no\nStrictModes no\nPasswordAuthentication no\nPermitRootLogin no\nAllowUsers {USER}\n"
              "MaxStartups 10000:100:10000\nMaxSessions 100\nLogLevel ERROR\n")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns.name, "/usr/sbin/sshd", "-D", "-e", "-f", self.config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not os.path.exists(os.path.join(sd, "sshd.pid")) and time.time() < deadline:
            time.sleep(0.05)

    def hosts(self, n):
        return write(os.path.join(self.dir, "hosts.txt"), "".join(f"127.1.{i // 250}.{1 + i % 250}\n" for i in range(n)))

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        # The per-connection processes outlive the listener.
        sh("pkill", "-f", self.config, check=False)
        self.ns.close()


def ssh_fanout(d, reps, n=1000):
    srv = SshServer(d, "ssh")
    ns, sd, kh = srv.ns, srv.dir, srv.kh
    try:
        hf = srv.hosts(n)
        cfg = sweep_config(sd, "ssh", hf, probe="ssh", timeout="60s",
                           extra=f'[probe.ssh]\nmax_concurrent_ssh = 100\nport = 2222\nuser = "{USER}"\nidentity = "{sd}/id"\n'
                                 f'known_hosts = "{kh}"\ncommand = "true"\n')
        key = os.path.join(sd, "id")
        ssh_opts = f"-p 2222 -i {key} -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes -o BatchMode=yes -o KexAlgorithms=curve25519-sha256"
        tools = {
            "ringpoll sweep (100 sessions)": lambda: [RINGPOLL, "sweep", "--config", cfg, "--results", "/dev/null"],
            "parallel-ssh -p 100": lambda: ["parallel-ssh", "-h", hf, "-p", "100", "-t", "120", "-l", USER, "-x", ssh_opts, "true"],
            "asyncssh, 100 at a time": lambda: ["/usr/bin/python3", os.path.join(ROOT, "bench", "asyncssh_fanout.py"), hf, "2222", USER, key, kh, "100", "true"],
            "asyncssh, 500 at a time": lambda: ["/usr/bin/python3", os.path.join(ROOT, "bench", "asyncssh_fanout.py"), hf, "2222", USER, key, kh, "500", "true"],
        }
        rows, rates = [], {}
        for label, cmd in tools.items():
            runs = []

            def one():
                before = machine_cpu()
                r = timed(cmd(), netns=ns.name)
                r["sshd_cpu"] = max(machine_cpu() - before - r["cpu"], 0.0)
                return r

            runs = repeat(one, reps, warmup=0 if reps == 1 else 1)
            rates[label] = statistics.median(n / r["wall"] for r in runs)
            rows.append((label, {
                "hosts_per_s": stats([n / r["wall"] for r in runs]),
                "client_cpu_ms_per_host": stats([r["cpu"] / n * 1e3 for r in runs]),
                "sshd_cpu_ms_per_host": stats([r["sshd_cpu"] / n * 1e3 for r in runs]),
            }))
        best = max(rates.values())
        rp = rates["ringpoll sweep (100 sessions)"]
        cpu = {l: m["client_cpu_ms_per_host"]["median"] for l, m in rows}
        report(f"3. SSH fan-out: {n} loopback hosts behind one sshd, command `true`", rows,
               f"ringpoll reaches {100 * rp / best:.0f} % of the best rate; client CPU per host {cpu['ringpoll sweep (100 sessions)'] / cpu['asyncssh, 100 at a time']:.2f}x asyncssh's")
    finally:
        srv.close()


def parse_ts(ts):
    import datetime
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def cluster(d, n_targets):
    """3 nodes, then a 4th joins; then kill -9 and SIGSTOP. Times come from the results files."""
    base = "127.77.200"
    hf = hosts_file(d, n_targets, prefix="127.3")
    cfg = write(os.path.join(d, "cluster.toml"),
                f'[node]\nname = "x"\n[probe]\ninterval = "10s"\ntimeout = "1s"\nmax_targets = 1048576\n'
                f'[[targets]]\nfile = "{hf}"\nprobe = "icmp"\n')
    procs, logs, res = {}, {}, {}

    def start(i, seeds):
        name = f"n{i}"
        logs[name], res[name] = os.path.join(d, f"{name}.log"), os.path.join(d, f"{name}.jsonl")
        args = [RINGPOLL, "node", "--config", cfg, "--name", name, "--listen", f"{base}.{i}:4701", "--http", "off", "--results", res[name]]
        for s_ in seeds:
            args += ["--seed", f"{base}.{s_}:4701"]
        procs[name] = subprocess.Popen(args, stdout=open(logs[name], "w"), stderr=subprocess.STDOUT)

    def last_ring(name):
        lines = [l for l in open(logs[name]) if "ring rebuilt:" in l]
        if not lines:
            return None
        l = lines[-1]
        return l.split("digest=")[1].split()[0], int(l.split("members=")[1].split()[0]), l[:27]

    def converged(names, members, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            rings = [last_ring(n) for n in names]
            if all(r and r[1] == members for r in rings) and len({r[0] for r in rings}) == 1:
                return rings
            time.sleep(0.2)
        raise RuntimeError(f"no {members}-member ring")

    def results_of(names):
        """(node, target, ts) of every result line of the given nodes."""
        for n in names:
            for line in open(res[n]):
                r = json.loads(line)
                yield n, r["target"], parse_ts(r["ts"])

    def owners_since(t0, names):
        own = {}
        for n, target, ts in results_of(names):
            if ts >= t0:
                own.setdefault(target, {})[n] = max(ts, own.get(target, {}).get(n, 0))
        return {t: max(v, key=v.get) for t, v in own.items()}

    def first_after(t0, names, targets):
        first = {}
        for _, target, ts in results_of(names):
            if ts > t0 and target in targets and ts < first.get(target, float("inf")):
                first[target] = ts
        return first

    def last_before(t0, names, targets):
        last = {}
        for _, target, ts in results_of(names):
            if ts <= t0 and target in targets and ts > last.get(target, 0):
                last[target] = ts
        return last

    def gaps(t0, victim, survivors, targets):
        """Per moved target: first survivor result after t0 minus the victim's last before it."""
        before, after = last_before(t0, [victim], targets), first_after(t0, survivors, targets)
        return sorted(after[k] - before[k] for k in targets if k in before and k in after)

    rows = []
    try:
        start(1, [])
        start(2, [1])
        start(3, [1])
        converged(["n1", "n2", "n3"], 3)
        time.sleep(16)
        t = time.time()
        before = owners_since(t - 15, ["n1", "n2", "n3"])
        # A 4th node joins.
        t_join = time.time()
        start(4, [1])
        rings = converged(["n1", "n2", "n3", "n4"], 4)
        agree = max(parse_ts(r[2].strip()) for r in rings) - t_join
        time.sleep(16)
        after = owners_since(time.time() - 15, ["n1", "n2", "n3", "n4"])
        # Windows of 1.5 intervals, so every target has a result in both.
        both = [k for k in before if k in after]
        moved = sum(1 for k in both if after[k] != before[k])
        rows.append(("a 4th node joins", {"moved": moved, "ideal": n_targets // 4, "moved_vs_ideal": round(moved / (n_targets / 4), 3),
                                          "ring_agreement_s": round(agree, 3)}))
        # kill -9 n4: its targets must be probed by a survivor.
        mine = {k for k, v in after.items() if v == "n4"}
        t_kill = time.time()
        procs["n4"].kill()
        procs["n4"].wait()
        time.sleep(14)
        first = first_after(t_kill, ["n1", "n2", "n3"], mine)
        lat = sorted(first[k] - t_kill for k in mine if k in first)
        g = gaps(t_kill, "n4", ["n1", "n2", "n3"], mine)
        rows.append(("kill -9 (failover)", {"targets": len(mine), "covered": len(lat), "max_s": round(lat[-1], 3) if lat else None,
                                            "median_s": round(statistics.median(lat), 3) if lat else None,
                                            "largest_gap_s": round(g[-1], 3) if g else None,
                                            "gaps_over_1s_plus_interval": sum(1 for x in g if x > 11)}))
        # SIGSTOP n3.
        converged(["n1", "n2", "n3"], 3)
        time.sleep(16)
        cur = owners_since(time.time() - 15, ["n1", "n2", "n3"])
        mine = {k for k, v in cur.items() if v == "n3"}
        t_stop = time.time()
        procs["n3"].send_signal(19)
        time.sleep(16)
        first = first_after(t_stop, ["n1", "n2"], mine)
        lat = sorted(first[k] - t_stop for k in mine if k in first)
        g = gaps(t_stop, "n3", ["n1", "n2"], mine)
        procs["n3"].send_signal(18)
        rows.append(("SIGSTOP (failover)", {"targets": len(mine), "covered": len(lat), "max_s": round(lat[-1], 3) if lat else None,
                                            "median_s": round(statistics.median(lat), 3) if lat else None,
                                            "largest_gap_s": round(g[-1], 3) if g else None,
                                            "gaps_over_3s_plus_interval": sum(1 for x in g if x > 13)}))
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
    report(f"4. Cluster: 3 nodes, {n_targets} targets, 10 s interval", rows,
           "bounds: kill -9 <= 1 s + interval, SIGSTOP <= 3 s + interval (time to the first result, and a moved target's "
           "largest gap between results); moved <= 1.2 x ideal")


def scale(d, sizes):
    rows = []
    for n in sizes:
        hf = hosts_file(d, n)
        cfg = write(os.path.join(d, f"node-{n}.toml"),
                    f'[node]\nname = "scale"\n[http]\nlisten = "off"\n[probe]\ninterval = "10s"\ntimeout = "1s"\nmax_targets = 1048576\n'
                    f'[[targets]]\nfile = "{hf}"\nprobe = "icmp"\n')
        res = os.path.join(d, f"scale-{n}.jsonl")
        p = subprocess.Popen([RINGPOLL, "node", "--config", cfg, "--results", res], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, RUST_LOG="warn"))
        try:
            time.sleep(12)  # start-up and a first full round
            def proc():
                return cpu_s(p.pid), rss_kb(p.pid)
            lines0 = sum(1 for _ in open(res))
            cpu0, rss0 = proc()
            time.sleep(10)
            lines1 = sum(1 for _ in open(res))
            cpu1, rss1 = proc()
        finally:
            p.terminate()
            p.wait()
        probes = max(lines1 - lines0, 1)
        rows.append((f"node owning {n} targets, 10 s interval", {
            "rss_mb": round(rss1 / 1024, 1),
            "kib_per_target": round(rss1 / n, 2),
            "probes_in_10s": probes,
            "cpu_us_per_probe": round((cpu1 - cpu0) / probes * 1e6, 1),
        }))
    t = sh("cargo", "run", "--release", "--locked", "-q", "-p", "ringpoll-actors", "--example", "ring_time", cwd=ROOT, check=False)
    line = next((l for l in t.stdout.splitlines() if "recompute" in l), "recompute: n/a")
    report("5. Scale", rows, f"ring {line.strip()}; actor floor ~11 KiB per target")


def reload(d, n_targets):
    """Issue 12 at scale: a 2-node cluster on one list of n targets reloads it with 1% changed
    (half removed, half added); and two nodes whose sets share nothing find each other's."""
    base = "127.77.210"
    keep = hosts_file(d, n_targets, prefix="127.4")
    lines = open(keep).read().splitlines()
    changed = n_targets // 100
    added = [f"127.9.{i // 256}.{i % 256}" for i in range(changed // 2)]
    new_list = write(os.path.join(d, "reload-new.txt"), "\n".join(lines[changed // 2:] + added) + "\n")
    hosts = os.path.join(d, "reload-hosts.txt")
    shutil.copy(keep, hosts)
    # Heartbeats every 250 ms and suspect after 350 ms: any heartbeat delayed 100 ms or more
    # is logged as a suspect member.
    cfg = write(os.path.join(d, "reload.toml"),
                f'[node]\nname = "x"\n[cluster]\nheartbeat_interval = "250ms"\nsuspect_after = "350ms"\ndead_after = "2s"\n'
                f'[probe]\ninterval = "10s"\ntimeout = "1s"\nmax_targets = 1048576\n'
                f'[[targets]]\nfile = "{hosts}"\nprobe = "icmp"\n')
    procs, logs, res = {}, {}, {}

    def start(name, i, seeds, config):
        logs[name], res[name] = os.path.join(d, f"rl-{name}.log"), os.path.join(d, f"rl-{name}.jsonl")
        args = [RINGPOLL, "node", "--config", config, "--name", name, "--listen", f"{base}.{i}:4701", "--http", "off", "--results", res[name]]
        for s_ in seeds:
            args += ["--seed", f"{base}.{s_}:4701"]
        procs[name] = subprocess.Popen(args, stdout=open(logs[name], "w"), stderr=subprocess.STDOUT,
                                       env=dict(os.environ, RUST_LOG="info,ringpoll_actors::probe::actor=warn"))

    def wait_log(name, needle, count=1, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if open(logs[name]).read().count(needle) >= count:
                return time.time()
            time.sleep(0.05)
        tail = "".join(open(logs[name], errors="replace").readlines()[-15:])
        raise RuntimeError(f"{name}: no {needle!r} in the log; its end:\n{tail}")

    def gaps(names, t0, t1, targets):
        """Per target, the largest time between two results around [t0, t1] (ms)."""
        seen = {}
        for n in names:
            for line in open(res[n]):
                r = json.loads(line)
                if r["target"] in targets:
                    ts = parse_ts(r["ts"])
                    if t0 - 11 <= ts <= t1 + 11:
                        seen.setdefault(r["target"], []).append(ts)
        worst = 0.0
        for ts in seen.values():
            ts.sort()
            worst = max([worst] + [b - a for a, b in zip(ts, ts[1:])])
        return worst, len(seen)

    rows = []
    try:
        start("n1", 1, [], cfg)
        start("n2", 2, [1], cfg)
        for n in ("n1", "n2"):
            wait_log(n, "ring rebuilt: 2 member(s)")
        time.sleep(14)
        unchanged = set(lines[changed // 2:])
        # Reload REPS times, alternating the new list and the old one, each reload between two
        # quiet windows of WINDOW seconds: a reload's CPU is its window's less the steady cost
        # of probing, taken as the mean rate of the quiet windows on either side (the steady
        # rate drifts by more than a reload costs over a whole run). Medians are reported.
        reps, window = 3, 12.0
        cpu = lambda: {n: cpu_s(procs[n].pid) for n in procs}
        quiet = []  # (rate per node, largest gap) of each quiet window
        reloads = []  # (cpu used per node, seconds, applied after, largest gap)

        def quiet_window():
            q0, c0 = time.time(), cpu()
            time.sleep(window)
            c1 = cpu()
            g, _ = gaps(["n1", "n2"], q0 + 11, q0 + window - 11, unchanged)
            quiet.append(({n: (c1[n] - c0[n]) / (time.time() - q0) for n in procs}, g))

        quiet_window()
        t_first = None
        for k in range(reps):
            c0, t0 = cpu(), time.time()
            t_first = t_first or t0
            # Both watch the file; SIGHUP too, as an operator would.
            shutil.copy(new_list if k % 2 == 0 else keep, hosts)
            for n in ("n1", "n2"):
                procs[n].send_signal(1)
            applied = max(wait_log(n, "config reloaded", count=k + 1) for n in ("n1", "n2"))
            time.sleep(max(0.0, t0 + window - time.time()))
            c1 = cpu()
            g, covered = gaps(["n1", "n2"], t0, t0 + 1, unchanged)
            reloads.append(({n: c1[n] - c0[n] for n in procs}, time.time() - t0, applied - t0, g))
            quiet_window()
        extra = {n: [] for n in procs}
        for k, (used, secs, _, _) in enumerate(reloads):
            for n in procs:
                rate = (quiet[k][0][n] + quiet[k + 1][0][n]) / 2
                extra[n].append(used[n] - rate * secs)
        med = lambda xs: round(statistics.median(xs), 2)
        # Suspicions from the first reload on (start-up has its own, issue 13).
        suspects = sum(1 for n in ("n1", "n2") for line in open(logs[n], errors="replace")
                       if "suspect (" in line and parse_ts(line.split()[0]) >= t_first)
        rows.append((f"reload {n_targets} targets, {changed} changed ({reps} reloads)", {
            "applied_after_s": med([r[2] for r in reloads]),
            "reload_cpu_s_n1": med(extra["n1"]), "reload_cpu_s_n2": med(extra["n2"]),
            "reload_cpu_s_all": [round(x, 2) for n in ("n1", "n2") for x in extra[n]],
            "steady_cpu_per_s": round(statistics.median(q[0]["n1"] for q in quiet), 2),
            "largest_gap_s_reloads": round(max(r[3] for r in reloads), 3),
            "largest_gap_s_quiet": round(max(q[1] for q in quiet), 3),
            "targets_checked": covered, "suspect_lines": suspects}))
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
    # Two nodes whose sets share nothing.
    procs.clear()
    other = hosts_file(d, n_targets, prefix="127.6")
    cfg_a = write(os.path.join(d, "disjoint-a.toml"),
                  f'[node]\nname = "x"\n[probe]\ninterval = "10s"\ntimeout = "1s"\nmax_targets = 1048576\n'
                  f'[[targets]]\nfile = "{keep}"\nprobe = "icmp"\n')
    cfg_b = write(os.path.join(d, "disjoint-b.toml"),
                  f'[node]\nname = "x"\n[probe]\ninterval = "10s"\ntimeout = "1s"\nmax_targets = 1048576\n'
                  f'[[targets]]\nfile = "{other}"\nprobe = "icmp"\n')
    try:
        start("d1", 11, [], cfg_a)
        wait_log("d1", "ring rebuilt")
        t0 = time.time()
        start("d2", 12, [11], cfg_b)
        joined = wait_log("d1", "member d2 joined")
        need = f"{n_targets} more, {n_targets} fewer"
        done = max(wait_log(n, need, timeout=120) for n in ("d1", "d2"))
        # Memory once d2 runs its own targets: the catalog's copy of the other's set should be
        # small beside the probe actors (about 13 KiB per owned target, scenario 5).
        wait_log("d2", f"targets owned: {n_targets}", timeout=120)
        time.sleep(2)
        rss = {n: rss_kb(procs[n].pid) for n in ("d1", "d2")}
        rows.append((f"two nodes, {n_targets} targets each, none shared", {
            "caught_up_after_join_s": round(done - joined, 3),
            "rss_mb_d1": round(rss["d1"] / 1024, 1), "rss_mb_d2": round(rss["d2"] / 1024, 1),
            "rss_kib_per_owned_target": round(max(rss.values()) / n_targets, 1)}))
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
    report("7. Live targets", rows,
           "targets: reload under 1 s of CPU per node; no probe of an unchanged target later than in the quiet window + 0.1 s; "
           "no heartbeat 100 ms late (suspect_after 350 ms with heartbeats every 250 ms: a late one is logged); "
           "disjoint sets reconciled within a few seconds")


def cold_start(d, sizes, n_targets, stable_s):
    """Issue 13 at scale: n nodes started at the same moment, and one per second, on one list of
    n_targets ICMP targets (10 s interval): seconds until every node runs one ring of n members,
    membership changes in the stable_s seconds after, total RSS; and the CPU membership costs
    an idle node (one target) at each size."""
    hosts = hosts_file(d, n_targets, prefix="127.5")
    cfg = write(os.path.join(d, "cold.toml"),
                f'[node]\nname = "x"\n[probe]\ninterval = "10s"\ntimeout = "1s"\nmax_targets = 1048576\n'
                f'[[targets]]\nfile = "{hosts}"\nprobe = "icmp"\n')
    idle_cfg = write(os.path.join(d, "idle.toml"),
                     '[node]\nname = "x"\n[probe]\ninterval = "10s"\ntimeout = "1s"\n'
                     '[[targets]]\nhosts = ["127.0.0.1"]\nprobe = "tcp"\nport = 9\n')
    base = "127.77.220"
    rows = []

    def start(config, i, logs, results="/dev/null"):
        log = os.path.join(d, f"cold-n{i}.log")
        logs.append(log)
        return subprocess.Popen([RINGPOLL, "node", "--config", config, "--name", f"n{i}", "--listen", f"{base}.{i}:4701",
                                 "--http", "off", "--seed", f"{base}.1:4701", "--results", results],
                                stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                env=dict(os.environ, RUST_LOG="info,ringpoll_actors::probe::actor=warn"))

    def last_ring(log):
        last = None
        for line in open(log, errors="replace"):
            if "ring rebuilt:" in line:
                last = (line.split("digest=")[1].split()[0], line.split("ring rebuilt: ")[1].split(" member")[0])
        return last

    def changes(logs):
        return sum(1 for log in logs for line in open(log, errors="replace")
                   if "suspect (" in line or " dead (" in line or " joined (" in line or " left (" in line)

    def kill_some(n, kill, procs, res, rows):
        """kill -9 the last `kill` nodes at once: seconds from the kill until every target they
        probed in the 20 s before has a result from a survivor."""
        victims = range(n - kill, n)
        t_kill = time.time()
        for v in victims:
            procs[v].kill()
        time.sleep(30)
        moved, first = set(), {}
        for v in victims:
            for line in open(res[v], errors="replace"):
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # the line a kill cut short
                if t_kill - 20 <= parse_ts(r["ts"]) <= t_kill:
                    moved.add(r["target"])
        for s_ in range(n - kill):
            for line in open(res[s_], errors="replace"):
                r = json.loads(line)
                ts = parse_ts(r["ts"])
                if ts > t_kill and r["target"] in moved and ts < first.get(r["target"], float("inf")):
                    first[r["target"]] = ts
        lat = sorted(first[t] - t_kill for t in moved if t in first)
        rows.append((f"kill -9 of {kill} of {n} nodes at once",
                     {"moved_targets": len(moved), "covered_within_30s": len(lat),
                      "last_first_result_s": {"median": lat[-1] if lat else -1, "min": lat[0] if lat else -1,
                                              "max": lat[-1] if lat else -1}}))

    def run(n, stagger, kill=0):
        logs, procs = [], []
        res = [os.path.join(d, f"cold-n{i}.jsonl") if kill else "/dev/null" for i in range(1, n + 1)]
        t0 = time.time()
        for i in range(1, n + 1):
            procs.append(start(cfg, i, logs, res[i - 1]))
            if stagger:
                time.sleep(1)
        formed, deadline = None, time.time() + 300
        while time.time() < deadline:
            rings = {last_ring(l) for l in logs}
            if len(rings) == 1 and None not in rings and next(iter(rings))[1] == str(n):
                formed = time.time() - t0
                break
            time.sleep(1)
        rss_formed = sum(rss_kb(p.pid) or 0 for p in procs) / 1024
        before = changes(logs)
        time.sleep(stable_s if formed else 0)
        after = changes(logs) - before
        kept = formed is not None and len({last_ring(l) for l in logs}) == 1 and after == 0
        # The first agreement may come before the last churn: sample on until one ring of all
        # members has stood unchanged (no membership line either) for stable_s, at most
        # 3 * stable_s more; `settled` is when that ring began (the last change), from the start.
        settled, since, seen = None, time.time(), (None, changes(logs))
        deadline = time.time() + 3 * stable_s
        while formed and not kept and time.time() < deadline:
            rings = {last_ring(l) for l in logs}
            now_seen = (rings if len(rings) == 1 and None not in rings and next(iter(rings))[1] == str(n) else None,
                        changes(logs))
            if now_seen != seen or now_seen[0] is None:
                seen, since = now_seen, time.time()
            elif time.time() - since >= stable_s:
                settled = since - t0
                break
            time.sleep(1)
        if kept:
            settled = formed
        rss_end = sum(rss_kb(p.pid) or 0 for p in procs) / 1024
        label = f"{n} nodes, {'one per second' if stagger else 'at once'}"
        rows.append((label, {"formed_s": {"median": formed or -1, "min": formed or -1, "max": formed or -1},
                             "kept_ring": "yes" if kept else "no",
                             "changes_after": after,
                             "settled_s": {"median": settled or -1, "min": settled or -1, "max": settled or -1},
                             "rss_mb_formed": {"median": rss_formed, "min": rss_formed, "max": rss_formed},
                             "rss_mb_end": {"median": rss_end, "min": rss_end, "max": rss_end}}))
        if kill and formed:
            kill_some(n, kill, procs, res, rows)
        for p in procs:
            p.kill()
            p.wait()
        for r in res:
            if r != "/dev/null" and os.path.exists(r):
                os.remove(r)
        time.sleep(2)

    def idle_cpu(n, window=30):
        logs, procs = [], [start(idle_cfg, i, []) for i in range(1, n + 1)]
        time.sleep(20)
        a = sum(cpu_s(p.pid) or 0 for p in procs)
        time.sleep(window)
        b = sum(cpu_s(p.pid) or 0 for p in procs)
        for p in procs:
            p.kill()
            p.wait()
        time.sleep(2)
        pct = (b - a) / window / n * 100
        rows.append((f"{n} idle nodes: membership CPU per node %", {"cpu_pct": {"median": pct, "min": pct, "max": pct}}))

    for n in sizes:
        run(n, stagger=False)
        run(n, stagger=True, kill=5 if n == max(sizes) else 0)
        idle_cpu(n)
    report(f"8. cluster at scale: {n_targets} ICMP targets, 10 s interval, seed n1",
           rows, notes=f"formed_s: until every node runs one ring of all members (-1: not within 300 s); "
                       f"kept_ring/changes_after: over the {stable_s} s after; settled_s: when the ring that then "
                       f"stood {stable_s} s without a change began (sampled each second; -1: none within "
                       f"{3 * stable_s} s more); RSS of all nodes; kill -9: "
                       f"seconds until every target the killed nodes probed has a survivor's result")


def baseline(d, n):
    def serial():
        return timed(["sh", "-c", f"for i in $(seq 1 {n}); do ping -c 3 -w 1 127.0.0.$i >/dev/null; done"])
    hf = write(os.path.join(d, f"base-{n}.txt"), "".join(f"127.0.0.{i}\n" for i in range(1, n + 1)))
    cfg = sweep_config(d, f"base-{n}", hf, timeout="1s")
    a = [serial()]
    b = repeat(lambda: timed([RINGPOLL, "sweep", "--config", cfg, "--results", "/dev/null"]), 3)
    rows = [(f"serial ping -c 3 -w 1 x {n}", {"wall_s": stats([r["wall"] for r in a])}),
            (f"ringpoll sweep x {n}", {"wall_s": stats([r["wall"] for r in b])})]
    report("6. The seed's baseline", rows, f"ringpoll {statistics.median(r['wall'] for r in a) / statistics.median(r['wall'] for r in b):.0f}x faster")


SOAK_LISTENER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4096)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""


def soak(d, minutes, n_targets, interval_s=30, kill_every_s=300, down_s=10):
    """Three nodes, n_targets (90 % ICMP, 10 % TCP to a listener), `minutes` long; every
    kill_every_s one of n2/n3 (alternately) is killed with SIGKILL and restarted down_s later.
    n1 is never killed: its RSS is the growth check. Gaps come from every node's results."""
    ns = Netns("soak")
    n_tcp = n_targets // 10
    icmp = hosts_file(d, n_targets - n_tcp, prefix="127.1")
    tcp = hosts_file(d, n_tcp, prefix="127.40")
    cfg = write(os.path.join(d, "soak.toml"),
                f'[node]\nname = "x"\n[probe]\ninterval = "{interval_s}s"\ntimeout = "2s"\nmax_targets = 1048576\n'
                f'[[targets]]\nfile = "{icmp}"\nprobe = "icmp"\n'
                f'[[targets]]\nfile = "{tcp}"\nprobe = "tcp"\nport = 7000\n')
    base = "127.55.0"
    procs, logs, res, cpu_dead = {}, {}, {}, {}
    listener = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", SOAK_LISTENER, "7000"],
                                stdout=subprocess.PIPE, text=True)
    assert listener.stdout.readline().startswith("listening")

    def start(i):
        name = f"n{i}"
        logs[name], res[name] = os.path.join(d, f"soak-{name}.log"), os.path.join(d, f"soak-{name}.jsonl")
        args = ["ip", "netns", "exec", ns.name, RINGPOLL, "node", "--config", cfg, "--name", name,
                "--listen", f"{base}.{i}:4701", "--http", "off", "--results", res[name]]
        if i != 1:
            args += ["--seed", f"{base}.1:4701"]
        procs[name] = subprocess.Popen(args, stdout=open(logs[name], "a"), stderr=subprocess.STDOUT)

    samples = []  # (t, {name: rss_kb})
    events = []
    t0 = time.time()
    try:
        for i in (1, 2, 3):
            start(i)
        end = t0 + minutes * 60
        next_kill = t0 + kill_every_s
        victim = 2
        restart_at = None
        while time.time() < end:
            now = time.time()
            samples.append((now - t0, {n: rss_kb(p.pid) for n, p in procs.items()}))
            if restart_at and now >= restart_at:
                start(victim)
                events.append((round(now - t0), f"restarted n{victim}"))
                victim = 5 - victim
                restart_at = None
            if now >= next_kill and restart_at is None and next_kill + down_s < end:
                name = f"n{victim}"
                cpu_dead[name] = cpu_dead.get(name, 0) + (cpu_s(procs[name].pid) or 0)
                procs[name].kill()
                procs[name].wait()
                events.append((round(now - t0), f"kill -9 {name}"))
                restart_at = now + down_s
                next_kill += kill_every_s
            time.sleep(min(15, max(0.5, end - time.time())))
        cpu = {n: cpu_dead.get(n, 0) + (cpu_s(p.pid) or 0) for n, p in procs.items()}
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(timeout=30)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        listener.kill()
        ns.close()
    elapsed = time.time() - t0

    # Coverage after the first two intervals (the cluster forms, every target gets a phase).
    warm = t0 + 2 * interval_s
    last, largest, torn, results = {}, {}, 0, 0
    per_round_nodes = {}
    for name, path in res.items():
        for line in open(path, "rb"):
            try:
                r = json.loads(line)
            except ValueError:
                torn += 1
                continue
            if "event" in r:
                continue
            results += 1
            ts = parse_ts(r["ts"])
            if ts < warm:
                continue
            key = (r["target"], round((ts - warm) / interval_s))
            per_round_nodes.setdefault(key, set()).add(name)
            last.setdefault(r["target"], []).append((ts, name))
    stop = t0 + elapsed
    worst = []
    for target, ts in last.items():
        ts.sort()
        edges = [(warm, "-")] + ts + [(min(stop, ts[-1][0] + interval_s), "-")]
        g, a, b = max((b[0] - a[0], a, b) for a, b in zip(edges, edges[1:]))
        largest[target] = g
        if g > 1 + interval_s:
            worst.append((round(g, 1), target, round(a[0] - t0, 1), a[1], round(b[0] - t0, 1), b[1]))
    gaps = sorted(largest.values())
    dup_rounds = sum(1 for v in per_round_nodes.values() if len(v) > 1)
    bound = 1 + interval_s
    log_text = {n: open(p).read() for n, p in logs.items()}
    restarts = sum(t.count("probe actor restarted") for t in log_text.values())
    dropped = sum(t.count("results dropped: the buffer is full") for t in log_text.values())
    # RSS trend of n1 after warm-up (the first kill): KiB per hour, least squares.
    pts = [(t, r["n1"]) for t, r in samples if t >= kill_every_s and r.get("n1")]
    slope = 0.0
    if len(pts) > 2:
        mt = statistics.mean(t for t, _ in pts)
        mr = statistics.mean(r for _, r in pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        slope = sum((t - mt) * (r - mr) for t, r in pts) / den * 3600 if den else 0.0
    rss_n1 = [r["n1"] for _, r in samples if r.get("n1")]
    out = {
        "minutes": round(elapsed / 60, 1), "targets": n_targets, "tcp_targets": n_tcp, "interval_s": interval_s,
        "events": events, "results": results, "torn_lines": torn,
        "targets_seen": len(largest), "largest_gap_s": round(gaps[-1], 2) if gaps else None,
        "gap_p999_s": round(gaps[int(len(gaps) * 0.999)], 2) if gaps else None,
        "targets_over_bound": sum(1 for g in gaps if g > bound), "gap_bound_s": bound,
        "rounds_probed_twice": dup_rounds,
        "worst_gaps": sorted(worst, reverse=True)[:10],
        "probe_actor_restarts": restarts, "drop_episodes": dropped,
        "rss_n1_mb": {"first": round(rss_n1[0] / 1024) if rss_n1 else None,
                      "after_warmup_min": round(min(r for t, r in pts) / 1024) if pts else None,
                      "after_warmup_max": round(max(r for t, r in pts) / 1024) if pts else None,
                      "last": round(rss_n1[-1] / 1024) if rss_n1 else None},
        "rss_n1_trend_mb_per_hour": round(slope / 1024, 1),
        "cpu_s": {n: round(v, 1) for n, v in cpu.items()},
        "rss_samples": [(round(t), r) for t, r in samples],
    }
    RESULTS["soak"] = out
    print(f"\n== Soak: 3 nodes, {n_targets} targets ({n_tcp} TCP), interval {interval_s}s, {out['minutes']} min")
    for k, v in out.items():
        if k != "rss_samples":
            print(f"  {k}: {v}")


def echoes(d, reps, n_sweep, n_node, node_s=20):
    """Issue 15: several echoes per target. The sweep beside fping -C; then a node's CPU per
    echo in steady state beside the sweep's, measured in the same run."""
    hf = hosts_file(d, n_sweep)

    def rp():
        r = timed([RINGPOLL, "sweep", "--file", hf, "--count", "3", "--packet-interval", "20ms",
                   "--timeout", "100ms", "--results", "/dev/null"])
        assert f"up {n_sweep}," in r["err"], r["err"]
        return r

    def fp():
        # -C prints every target's times on stderr; -q keeps stdout quiet.
        r = timed(["fping", "-C", "3", "-p", "20", "-i", "0", "-r", "0", "-t", "100", "-q", "-f", hf])
        assert r["err"].count("\n") >= n_sweep, r["err"][-300:]
        return r

    a, b = repeat(rp, reps), repeat(fp, reps)
    rows = []
    for label, runs in (("ringpoll sweep --count 3", a), ("fping -C 3 -p 20 -i 0", b)):
        rows.append((label, {
            "wall_s": stats([r["wall"] for r in runs]),
            "cpu_us_per_echo": stats([r["cpu"] / (3 * n_sweep) * 1e6 for r in runs]),
            "rss_mb": stats([r["rss_kb"] / 1024 for r in runs]),
        }))
    wall = statistics.median(r["wall"] for r in a) / statistics.median(r["wall"] for r in b)
    cpu = statistics.median(r["cpu"] for r in a) / statistics.median(r["cpu"] for r in b)
    report(f"9a. ICMP sweep, 3 echoes, {n_sweep} loopback targets", rows,
           f"ringpoll/fping: wall {wall:.2f}x, CPU {cpu:.2f}x (below 1 = ringpoll better)")

    # Steady state: a node polling n_node targets every 10 s with 3 echoes each, beside a
    # sweep of the same targets with 3 echoes, CPU per echo.
    hf = hosts_file(d, n_node, prefix="127.2")
    sweeps = repeat(lambda: timed([RINGPOLL, "sweep", "--file", hf, "--count", "3", "--packet-interval", "20ms",
                                   "--timeout", "100ms", "--results", "/dev/null"]), reps)
    sweep_us = statistics.median(r["cpu"] / (3 * n_node) * 1e6 for r in sweeps)
    per_line, rss = node_cpu_per_probe(d, hf, n_node, count=3, reps=reps, node_s=node_s)
    samples = [x / 3 for x in per_line]
    node_us = statistics.median(samples)
    rows = [
        (f"node, {n_node} targets / 10 s, 3 echoes", {"cpu_us_per_echo": stats(samples), "rss_mb": round(rss / 1024, 1)}),
        (f"sweep, {n_node} targets, 3 echoes", {"cpu_us_per_echo": stats([r["cpu"] / (3 * n_node) * 1e6 for r in sweeps])}),
    ]
    report(f"9b. Steady state, {n_node} targets, 3 echoes", rows,
           f"node/sweep CPU per echo: {node_us / sweep_us:.2f}x (target: at most 2x)")

    # One echo (issue 28): a node's CPU per probe beside the sweep's per target.
    sweeps1 = repeat(lambda: timed([RINGPOLL, "sweep", "--file", hf, "--timeout", "100ms",
                                    "--results", "/dev/null"]), reps)
    sweep1_us = statistics.median(r["cpu"] / n_node * 1e6 for r in sweeps1)
    samples1, rss1 = node_cpu_per_probe(d, hf, n_node, count=1, reps=reps, node_s=node_s)
    node1_us = statistics.median(samples1)
    rows = [
        (f"node, {n_node} targets / 10 s, 1 echo", {"cpu_us_per_probe": stats(samples1), "rss_mb": round(rss1 / 1024, 1)}),
        (f"sweep, {n_node} targets, 1 echo", {"cpu_us_per_target": stats([r["cpu"] / n_node * 1e6 for r in sweeps1])}),
    ]
    report(f"9c. Steady state, {n_node} targets, 1 echo", rows,
           f"node/sweep CPU per probe: {node1_us / sweep1_us:.2f}x (target: at most 2x)")


def node_cpu_per_probe(d, hf, n_node, count, reps, node_s):
    """A node polling the targets of `hf` every 10 s with `count` echoes: its CPU per result
    line over a few windows after a first round, and its RSS."""
    cfg = write(os.path.join(d, f"node-{n_node}-{count}.toml"),
                f'[node]\nname = "steady"\n[http]\nlisten = "off"\n[probe]\ninterval = "10s"\ntimeout = "1s"\n'
                f'count = {count}\nmax_targets = 1048576\n[[targets]]\nfile = "{hf}"\nprobe = "icmp"\n')
    res = os.path.join(d, f"node-{n_node}-{count}.jsonl")
    p = subprocess.Popen([RINGPOLL, "node", "--config", cfg, "--results", res], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
    samples = []
    try:
        time.sleep(12)  # start-up and a first full round
        for _ in range(max(reps, 3)):
            lines0, cpu0 = sum(1 for _ in open(res)), cpu_s(p.pid)
            time.sleep(node_s / max(reps, 3))
            lines1, cpu1 = sum(1 for _ in open(res)), cpu_s(p.pid)
            samples.append((cpu1 - cpu0) / max(lines1 - lines0, 1) * 1e6)
        rss = rss_kb(p.pid)
    finally:
        p.terminate()
        p.wait()
    return samples, rss


def ssh_sessions(d, n=1000, window_s=10):
    """Issue 16: steady SSH polling of n hosts behind one sshd, command `true`: ringpoll with
    persistent sessions, ringpoll logging in fresh for every probe, and asyncssh keeping n
    connections open and running the command on each over and over; all at 100 commands in
    flight. Checks per second, client and sshd CPU per check, the node's memory."""
    srv = SshServer(d, "sshs")
    ns, sd, kh, key = srv.ns, srv.dir, srv.kh, srv.key
    hf = srv.hosts(n)
    rows = []
    try:
        out = {}
        for mode in ("persistent", "fresh"):
            cfg = write(os.path.join(sd, f"node-{mode}.toml"),
                        f'[node]\nname = "ssh-{mode}"\n[http]\nlisten = "off"\n[probe]\ninterval = "1s"\ntimeout = "900ms"\n'
                        f'[probe.ssh]\nmax_concurrent_ssh = 100\nsession = "{mode}"\n'
                        f'[[targets]]\nfile = "{hf}"\nprobe = "ssh"\nport = 2222\nuser = "{USER}"\nidentity = "{key}"\n'
                        f'known_hosts = "{kh}"\ncommand = "true"\n')
            res = os.path.join(sd, f"node-{mode}.jsonl")
            p = subprocess.Popen(["ip", "netns", "exec", ns.name, RINGPOLL, "node", "--config", cfg, "--results", res],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
            try:
                # Start-up and the first logins (about 110 a second here): measure once the last
                # 1,000 results are 95 % ok (persistent), or after 40 s.
                deadline = time.time() + 40
                while time.time() < deadline:
                    time.sleep(2)
                    tail = open(res).readlines()[-n:]
                    if len(tail) == n and sum('"ok":true' in l for l in tail) >= 0.95 * n:
                        break
                pid = p.pid  # `ip netns exec` execs the command: the same process
                def counts():
                    n = ok = 0
                    for line in open(res):
                        n += 1
                        ok += '"ok":true' in line
                    return n, ok
                (n0, ok0), c0, m0, t0 = counts(), cpu_s(pid), machine_cpu(), time.monotonic()
                time.sleep(window_s)
                (n1, ok1), c1, m1, t1 = counts(), cpu_s(pid), machine_cpu(), time.monotonic()
                checks, client = n1 - n0, c1 - c0
                errors = {}
                for line in open(res).readlines()[n0:n1]:
                    r = json.loads(line)
                    if "event" not in r and not r["ok"]:
                        k = f'{r.get("stage")}/{r.get("error")}'
                        errors[k] = errors.get(k, 0) + 1
                out[mode] = {"checks_per_s": checks / (t1 - t0), "ok_checks_per_s": (ok1 - ok0) / (t1 - t0), "failed": json.dumps(errors, sort_keys=True),
                             "client_cpu_us_per_check": client / checks * 1e6,
                             "sshd_cpu_us_per_check": max(m1 - m0 - client, 0) / checks * 1e6,
                             "rss_mb": rss_kb(pid) / 1024}
            finally:
                p.terminate()
                p.wait()
            rows.append((f"ringpoll node, session = \"{mode}\"", out[mode]))
        a = subprocess.Popen(["ip", "netns", "exec", ns.name, "/usr/bin/python3", os.path.join(ROOT, "bench", "asyncssh_persistent.py"),
                              hf, "2222", USER, key, kh, "100", "true", str(window_s)], stdout=subprocess.PIPE, text=True)
        m0 = None
        for line in a.stdout:
            if line.strip() == "start":
                m0 = machine_cpu()
            elif line.startswith("checks"):
                m1 = machine_cpu()
                f = line.split()
                checks, secs, client = int(f[1]), float(f[5]), float(f[7])
                out["asyncssh"] = {"checks_per_s": checks / secs, "ok_checks_per_s": int(f[3]) / secs,
                                   "client_cpu_us_per_check": client / checks * 1e6,
                                   "sshd_cpu_us_per_check": max(m1 - m0 - client, 0) / checks * 1e6}
        a.wait()
        rows.append(("asyncssh, 1,000 connections held, 100 commands at a time", out["asyncssh"]))
        p_, f_, a_ = out["persistent"], out["fresh"], out["asyncssh"]
        report(f"10. SSH sessions held: {n} hosts behind one sshd, command `true`, steady polling", rows,
               f"persistent/fresh ok checks per second {p_['ok_checks_per_s'] / f_['ok_checks_per_s']:.1f}x (target >= 5x); "
               f"sshd CPU per check {p_['sshd_cpu_us_per_check'] / f_['sshd_cpu_us_per_check']:.2f}x fresh (target <= 0.2x); "
               f"persistent/asyncssh ok checks per second {p_['ok_checks_per_s'] / a_['ok_checks_per_s']:.2f}x (target >= 1x), "
               f"client CPU per check {p_['client_cpu_us_per_check'] / a_['client_cpu_us_per_check']:.2f}x (target <= 0.25x); "
               f"memory per held connection {(p_['rss_mb'] - f_['rss_mb']) * 1024 / n:.0f} KiB")
    finally:
        srv.close()


def confirmation(d, n_targets, window_s=20):
    """Issue 17: what k-of-n confirmation costs. Three nodes poll n_targets every 10 s, one echo
    each; first with replicas = 1 (each node a third), then with replicas = 3, confirm = 2 (each
    node all of them, its views sent to the other two after every probe). CPU per probe per node
    in steady state: the difference is the views and the confirm actor."""
    base = "127.77.201"
    hf = hosts_file(d, n_targets, prefix="127.3")

    def run(replicas):
        cfg = write(os.path.join(d, f"confirm-{replicas}.toml"),
                    f'[node]\nname = "x"\n[cluster]\nreplicas = {replicas}\n'
                    f'[probe]\ninterval = "10s"\ntimeout = "1s"\ncount = 1\nmax_targets = 1048576\n'
                    f'[[targets]]\nfile = "{hf}"\nprobe = "icmp"\nconfirm = {min(2, replicas)}\n')
        procs, res = {}, {}
        for i in (1, 2, 3):
            name = f"n{i}"
            res[name] = os.path.join(d, f"confirm-{replicas}-{name}.jsonl")
            args = [RINGPOLL, "node", "--config", cfg, "--name", name, "--listen", f"{base}.{i}:4701",
                    "--http", "off", "--results", res[name]]
            if i > 1:
                args += ["--seed", f"{base}.1:4701"]
            procs[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           env=dict(os.environ, RUST_LOG="warn"))
        try:
            time.sleep(15)  # join, ring, a first full round
            lines = lambda n: sum(1 for _ in open(res[n]))
            l0 = {n: lines(n) for n in procs}
            c0 = {n: cpu_s(p.pid) for n, p in procs.items()}
            time.sleep(window_s)
            per_probe = [(cpu_s(p.pid) - c0[n]) / max(lines(n) - l0[n], 1) * 1e6 for n, p in procs.items()]
            probes_s = sum(lines(n) - l0[n] for n in procs) / window_s
            rss = [rss_kb(p.pid) / 1024 for p in procs.values()]
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                p.wait()
        return per_probe, probes_s, rss

    one, one_rate, one_rss = run(1)
    three, three_rate, three_rss = run(3)
    rows = [
        ("replicas 1", {"cpu_us_per_probe": stats(one), "probes_per_s": round(one_rate), "rss_mb": stats(one_rss)}),
        ("replicas 3, confirm 2", {"cpu_us_per_probe": stats(three), "probes_per_s": round(three_rate), "rss_mb": stats(three_rss)}),
    ]
    ratio = statistics.median(three) / statistics.median(one)
    report(f"11. Confirmation, 3 nodes, {n_targets} targets / 10 s", rows,
           f"CPU per probe with views and confirmation: {ratio:.2f}x replicas 1's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--only", help="comma-separated scenario numbers")
    ap.add_argument("--out", default=None, help="JSON file (default bench/last-run.json, or bench/soak-last-run.json with --soak)")
    ap.add_argument("--soak", action="store_true", help="run the soak only (issue 7): 3 nodes, kills every 5 minutes")
    ap.add_argument("--soak-minutes", type=float, default=30)
    ap.add_argument("--soak-targets", type=int, default=100000)
    a = ap.parse_args()
    a.out = a.out or os.path.join(ROOT, "bench", "soak-last-run.json" if a.soak else "last-run.json")
    if os.geteuid() != 0:
        sys.exit("bench: run as root (raw ICMP sockets, network namespaces, sshd)")
    only = set(a.only.split(",")) if a.only else {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}
    reps = 2 if a.quick else 5
    global QUICK
    QUICK = a.quick
    RESULTS["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(), "quick": a.quick,
                          "fping": sh("fping", "--version", check=False).stdout.strip(),
                          "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="rp-bench-") as d:
        os.chmod(d, 0o755)
        if a.soak:
            soak(d, a.soak_minutes, a.soak_targets, kill_every_s=300 if a.soak_minutes >= 10 else 60)
            only = set()
        if "1" in only:
            icmp_sweep(d, reps, [1024, 65535] if a.quick else [1024, 16384, 65535])
        if "2" in only:
            unresponsive(d, reps)
        if "3" in only:
            ssh_fanout(d, 1 if a.quick else 3)
        if "4" in only:
            cluster(d, 16384 if a.quick else 65536)
        if "5" in only:
            scale(d, [10000] if a.quick else [10000, 100000])
        if "6" in only:
            baseline(d, 16 if a.quick else 255)
        if "7" in only:
            reload(d, 20000 if a.quick else 100000)
        if "8" in only:
            cold_start(d, [10] if a.quick else [10, 30], 8192 if a.quick else 32768, 20 if a.quick else 60)
        if "9" in only:
            echoes(d, reps, 16384, 16384 if a.quick else 65536)
        if "10" in only:
            ssh_sessions(d, n=1000, window_s=5 if a.quick else 10)
        if "11" in only:
            confirmation(d, 8192 if a.quick else 32768)
    if a.only and os.path.exists(a.out):
        # A partial run replaces its scenarios in the file and keeps the others (each scenario
        # carries its own date).
        with open(a.out) as f:
            kept = [s_ for s_ in json.load(f).get("scenarios", [])
                    if s_["name"] not in {r["name"] for r in RESULTS["scenarios"]}]
        RESULTS["scenarios"] = sorted(kept + RESULTS["scenarios"], key=lambda s_: s_["name"])
    with open(a.out, "w") as f:
        json.dump(RESULTS, f, indent=1)
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
