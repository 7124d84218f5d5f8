"""asyncssh keeping a connection per host open and running a command on each, over and over,
N commands at a time, for a fixed time (the fair peer of ringpoll's persistent SSH sessions).

Prints `start` when the measured window begins (every connection open, after a warm-up), then
`checks C ok K seconds S cpu_s U` for that window, U being this process's CPU time in it."""
import asyncio
import resource
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import asyncssh  # noqa: E402


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main(hosts_file, port, user, key, known_hosts, concurrency, command, seconds):
    hosts = [h.strip() for h in open(hosts_file) if h.strip()]
    sem = asyncio.Semaphore(concurrency)

    async def connect(host):
        async with sem:
            return await asyncssh.connect(host, port=port, username=user, client_keys=[key],
                                          known_hosts=known_hosts, kex_algs=["curve25519-sha256"])

    conns = await asyncio.gather(*(connect(h) for h in hosts))
    counting = False
    checks = ok = 0
    stop_at = None

    async def loop(conn):
        nonlocal checks, ok
        while stop_at is None or time.monotonic() < stop_at:
            async with sem:
                r = await conn.run(command, check=False, timeout=60)
            if counting:
                checks += 1
                ok += r.exit_status == 0

    tasks = [asyncio.create_task(loop(c)) for c in conns]
    await asyncio.sleep(2)  # warm-up
    print("start", flush=True)
    counting, t0, c0 = True, time.monotonic(), cpu()
    stop_at = t0 + seconds
    await asyncio.gather(*tasks)
    elapsed, used = time.monotonic() - t0, cpu() - c0
    print(f"checks {checks} ok {ok} seconds {elapsed:.3f} cpu_s {used:.3f}", flush=True)
    for c in conns:
        c.close()


if __name__ == "__main__":
    f, port, user, key, kh, n, cmd, secs = sys.argv[1:9]
    asyncio.run(main(f, int(port), user, key, kh, int(n), cmd, float(secs)))
