"""asyncssh fan-out: run a command on every host of a file, N at a time (a benchmark peer)."""
import asyncio
import sys
import warnings

warnings.filterwarnings("ignore")
import asyncssh  # noqa: E402


async def main(hosts_file, port, user, key, known_hosts, concurrency, command):
    hosts = [h.strip() for h in open(hosts_file) if h.strip()]
    sem = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(host):
        nonlocal ok
        async with sem:
            try:
                async with asyncssh.connect(host, port=port, username=user, client_keys=[key],
                                            known_hosts=known_hosts, kex_algs=["curve25519-sha256"]) as conn:
                    r = await conn.run(command, check=False, timeout=60)
                    ok += r.exit_status == 0
            except Exception as e:  # counted as failed
                print(f"{host}: {e}", file=sys.stderr)

    await asyncio.gather(*(one(h) for h in hosts))
    print(f"ok {ok} of {len(hosts)}")


if __name__ == "__main__":
    f, port, user, key, kh, n, cmd = sys.argv[1:8]
    asyncio.run(main(f, int(port), user, key, kh, int(n), cmd))
