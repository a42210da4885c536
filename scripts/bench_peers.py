"""`scripts/bench --peers`: `once` side by side with its peers (rustypaste, miniserve) and with
physical references (disk, page cache), all in one run. Imported by scripts/bench, whose helpers
(Server, spawn/stop/cleanup, proc_status, reset_peak, start_s3s_fs, measure_transfer, machine)
it uses; this file is not run on its own.

    scripts/bench --peers            # builds once + once-loadgen (unless ONCE_BIN), measures
    scripts/bench --peers --smoke    # 1 repetition, 1 s runs, 8 MiB files, 2 start-ups; peers
                                     # that are not installed are skipped, not installed

Prints one Markdown table (stdout; progress on stderr) and writes every raw result as JSON.
Each figure: median, min and max of ONCE_BENCH_REPEAT repetitions; the ratio `once ÷ that` is
of the medians; "met?" compares the median with the target (peak memory: the largest run).

What runs (127.0.0.1 only, one fresh server and data directory per figure, per repetition for
the cycles; everything stopped and the temporary directory under /tmp removed at the end):

- the generator's own ceiling: `once-loadgen get` of a tiny file from miniserve and of once's
  /healthz, 16 clients, new-connection and keep-alive;
- the small share cycle (create, upload 1 KiB, claim, download; a new TCP connection per
  request) with 1, 16 and 64 clients, against rustypaste's one-shot cycle (upload, download);
  server CPU (utime+stime from /proc/PID/stat over the measured run) per cycle; every
  repetition on a fresh server (see once_cycles);
- the same cycle with PostgreSQL as the metadata store (a fresh database per repetition,
  dropped after it);
- the claim storm (ONCE_BENCH_CLAIMERS concurrent claims of one share, one round per
  repetition): latency p50/p99 and the winners;
- the S3 ticket rate (`once-cycle --create-only`, server on s3s-fs): tickets/s, CPU per ticket;
- ONCE_BENCH_BIG (1 GiB): upload with curl (`PUT /api/v1/files/NAME`; rustypaste `-F file=@`)
  against the disk reference (write + fsync), download to /dev/null (page cache warm) against
  miniserve and a page-cache read, the server's peak RSS (VmHWM over upload + download);
- ONCE_BENCH_HUGE (4 GiB): `once send --no-encrypt` + `once get`, embedded and S3 stores: peak
  RSS of the server and of the CLI;
- start-up (spawn to the first 200 answer, fresh empty directory) and idle RSS (VmRSS 2 s after
  the start) of once, miniserve and rustypaste; 1 KiB file create + fsync + directory fsync/s.

Settings (environment; --smoke changes the defaults in brackets):
    ONCE_BIN, CARGO_TARGET_DIR, ONCE_S3S_FS   as for scripts/bench
    ONCE_LOADGEN          once-loadgen binary (default: next to ONCE_BIN, else built)
    ONCE_BENCH_REPEAT     repetitions per figure (default 5 [1])
    ONCE_BENCH_SECONDS    seconds per measured load run (default 5 [1])
    ONCE_BENCH_WARMUP     seconds of an uncounted load run before each one (default 1 [0.5])
    ONCE_BENCH_BIG        the transfer size (default 1GiB [8MiB])
    ONCE_BENCH_HUGE       the size of the peak-memory transfer (default 4GiB [8MiB])
    ONCE_BENCH_HUGE_REPEAT  its repetitions per store (default 2 [1]: a 4 GiB send + get takes
                          30-70 s on the 2-core machine, 5 of each would not fit in 15 minutes)
    ONCE_BENCH_STARTS     start-ups per server (default 10 [2])
    ONCE_BENCH_CLAIMERS   concurrent claimers in the storm (default 1000)
    ONCE_BENCH_POSTGRES   PostgreSQL server URL without a database
                          (default postgres://postgres@127.0.0.1:5432); unreachable: rows skipped
    ONCE_BENCH_PEERS      where the peers are installed (default target/bench-peers)
    ONCE_BENCH_JSON       the raw results (default target/bench/peers.json)
    ONCE_BENCH_TIMEOUT    seconds for the whole measurement, builds excluded (default 1800 [300])
"""

import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
PEERS = {"rustypaste": "0.18.1", "miniserve": "0.35.0"}

# Per-instance abuse protection that a benchmark from one address would hit.
LOAD_ENV = {
    "ONCE_KEY_RATE_LIMIT": "0",
    "ONCE_ADDRESS_RATE_LIMIT": "0",
    "ONCE_MAX_CONNECTIONS": "4096",
    "ONCE_MAX_CONNECTIONS_PER_ADDRESS": "4096",
}

b = None  # the scripts/bench module
cfg = None  # Settings
databases = []  # PostgreSQL databases created, dropped at the end


def log(message):
    b.log(message)


class Settings:
    def __init__(self, smoke):
        env = os.environ.get
        self.smoke = smoke
        self.repeat = max(1, int(env("ONCE_BENCH_REPEAT", "1" if smoke else "5")))
        self.seconds = float(env("ONCE_BENCH_SECONDS", "1" if smoke else "5"))
        self.warmup = float(env("ONCE_BENCH_WARMUP", "0.5" if smoke else "1"))
        self.big = b.parse_size(env("ONCE_BENCH_BIG", "8MiB" if smoke else "1GiB"))
        self.huge = b.parse_size(env("ONCE_BENCH_HUGE", "8MiB" if smoke else "4GiB"))
        # A 4 GiB send + get takes 30-70 s here; 5 of each on two stores would not fit in 15 min.
        self.huge_repeat = max(1, int(env("ONCE_BENCH_HUGE_REPEAT", "1" if smoke else "2")))
        self.starts = max(1, int(env("ONCE_BENCH_STARTS", "2" if smoke else "10")))
        self.claimers = int(env("ONCE_BENCH_CLAIMERS", "1000"))
        self.postgres = env("ONCE_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432").rstrip("/")
        self.peers_root = os.path.abspath(
            env("ONCE_BENCH_PEERS", os.path.join(b.REPO, "target", "bench-peers")))
        self.json_path = os.path.abspath(
            env("ONCE_BENCH_JSON", os.path.join(b.REPO, "target", "bench", "peers.json")))
        self.budget = int(env("ONCE_BENCH_TIMEOUT", "300" if smoke else "1800"))
        self.binary = self.loadgen = None
        self.peer = {}  # name -> binary path, or None
        self.peer_skip = {}  # name -> why not

    def public(self):
        return {k: v for k, v in vars(self).items() if k not in ("peer_skip",)}


# ---------------------------------------------------------------------------------------------
# binaries


def build_and_find():
    binary = os.environ.get("ONCE_BIN")
    loadgen = os.environ.get("ONCE_LOADGEN")
    target = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(b.REPO, "target"))
    packages = []
    if binary:
        binary = os.path.abspath(binary)
        if not loadgen:
            sibling = os.path.join(os.path.dirname(binary), "once-loadgen")
            if os.access(sibling, os.X_OK):
                loadgen = sibling
            else:
                packages = ["-p", "once-loadgen"]
    else:
        packages = ["-p", "once"] + ([] if loadgen else ["-p", "once-loadgen"])
    if packages:
        log(f"cargo build --release {' '.join(packages)} (CARGO_TARGET_DIR={target})")
        subprocess.run(["cargo", "build", "--release", *packages], cwd=b.REPO, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=target))
        binary = binary or os.path.join(target, "release", "once")
        loadgen = loadgen or os.path.join(target, "release", "once-loadgen")
    for path in (binary, loadgen):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"bench: {path} is not an executable")
    cfg.binary, cfg.loadgen = binary, os.path.abspath(loadgen)


def install_peers():
    """Pinned peers under ONCE_BENCH_PEERS/bin; installed with `cargo install --locked` when
    missing, except in smoke mode (then skipped)."""
    for name, version in PEERS.items():
        path = os.path.join(cfg.peers_root, "bin", name)
        if not os.access(path, os.X_OK):
            if cfg.smoke:
                cfg.peer[name], cfg.peer_skip[name] = None, "skipped: not installed"
                continue
            log(f"cargo install --locked --root {cfg.peers_root} {name}@{version}")
            done = subprocess.run(["cargo", "install", "--locked", "--root", cfg.peers_root,
                                   f"{name}@{version}"], cwd=b.REPO)
            if done.returncode != 0 or not os.access(path, os.X_OK):
                cfg.peer[name] = None
                cfg.peer_skip[name] = f"skipped: cargo install {name}@{version} failed"
                continue
        cfg.peer[name] = path


# ---------------------------------------------------------------------------------------------
# processes and probes


def run_capture(args, env=None, timeout=None, cwd=None):
    """Runs a command to completion (stopped in cleanup if need be); (seconds, returncode,
    stdout, stderr)."""
    out = tempfile.TemporaryFile(dir=b.workdir)
    err = tempfile.TemporaryFile(dir=b.workdir)
    start = time.perf_counter()
    proc = b.spawn(args, env or b.clean_env(), stdout=out, stderr=err, cwd=cwd)
    try:
        proc.wait(timeout=timeout or cfg.budget)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{os.path.basename(args[0])} took longer than {timeout}s")
    finally:
        if proc in b.children:
            b.children.remove(proc)
    elapsed = time.perf_counter() - start
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    out.close()
    err.close()
    return elapsed, proc.returncode, stdout, stderr


def loadgen(workload, *args):
    command = [cfg.loadgen, "--allow-errors", workload, *args]
    _, code, stdout, stderr = run_capture(command, timeout=max(120, 10 * cfg.seconds))
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"once-loadgen {workload} failed ({code}): {stderr.strip()[-2000:]}")
    report = json.loads(lines[-1])
    if report.get("errors"):
        log(f"once-loadgen {workload}: {report['errors']} errors: {stderr.strip()[-600:]}")
    return report


def cpu_seconds(pid):
    """utime + stime of every thread of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def series(pid, workload, args, repeat=None):
    """ONCE_BENCH_REPEAT measured runs, each after its own uncounted warm-up run; with a pid,
    that process's CPU time over each measured run, per operation."""
    runs = []
    for _ in range(repeat or cfg.repeat):
        if cfg.warmup > 0:
            loadgen(workload, *args, "--duration", str(cfg.warmup))
        before = cpu_seconds(pid) if pid else None
        report = loadgen(workload, *args, "--duration", str(cfg.seconds))
        if pid:
            used = cpu_seconds(pid) - before
            report["server_cpu_s"] = used
            report["server_cpu_ms_per_op"] = used * 1000 / report["ops"] if report["ops"] else None
        runs.append(report)
    return runs


def wait_200(port, path, proc, timeout=30):
    """Polls GET path every ms; the time of the first 200, None if the process exited."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status == 200:
                return time.perf_counter()
        except OSError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.001)
    raise RuntimeError(f"GET {path} on port {port} not 200 within {timeout}s")


class Peer:
    """miniserve or rustypaste on a free port of 127.0.0.1, up once GET answers 200
    (miniserve: `/`, rustypaste: `/version`). Files it serves or stores: `self.files`."""

    def __init__(self, kind, directory):
        self.kind = kind
        os.makedirs(directory, exist_ok=True)
        self.files = os.path.join(directory, "files")
        os.makedirs(self.files, exist_ok=True)
        for _ in range(5):
            port = b.free_port()
            env = b.clean_env()
            if kind == "miniserve":
                args, probe = [cfg.peer[kind], "--port", str(port), "-i", "127.0.0.1",
                               self.files], "/"
            else:
                config = os.path.join(directory, "config.toml")
                with open(config, "w") as f:
                    f.write(
                        "[server]\n"
                        f'address = "127.0.0.1:{port}"\n'
                        f'url = "http://127.0.0.1:{port}"\n'
                        'max_content_length = "2GB"\n'
                        f"upload_path = {json.dumps(self.files)}\n"
                        "expose_version = true\n"
                        "[paste]\n"
                        'random_url = { type = "alphanumeric", length = 12 }\n'
                        'default_extension = "txt"\n'
                        "duplicate_files = true\n"
                    )
                env["CONFIG"] = config
                args, probe = [cfg.peer[kind]], "/version"
            self.log_file = open(os.path.join(directory, f"{kind}.log"), "ab")
            self.started = time.perf_counter()
            self.proc = b.spawn(args, env, stdout=self.log_file, stderr=self.log_file,
                                cwd=directory)
            ready = wait_200(port, probe, self.proc)
            if ready is not None:
                self.ready_after = ready - self.started
                self.port, self.base = port, f"http://127.0.0.1:{port}"
                return
            b.stop(self.proc)
            self.log_file.close()
        raise RuntimeError(f"{kind} did not start; see {directory}/{kind}.log")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        b.stop(self.proc)
        self.log_file.close()


def once_server(name, extra_env=None):
    """A fresh `once serve` (its own data dir) with a bootstrap key and the load settings."""
    token = b.api_token()
    env = {"ONCE_BOOTSTRAP_KEY": token, **LOAD_ENV, **(extra_env or {})}
    server = b.Server(cfg.binary, os.path.join(b.workdir, name, "data"), env, name)
    return server, token


def s3_env(endpoint):
    return {
        "ONCE_S3_ENDPOINT": endpoint,
        "ONCE_S3_BUCKET": b.S3_BUCKET,
        "ONCE_S3_REGION": "us-east-1",
        "ONCE_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": b.S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": b.S3_SECRET_KEY,
    }


def remove(name):
    shutil.rmtree(os.path.join(b.workdir, name), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# measurements


def measure_ceiling():
    out = {}
    if cfg.peer["miniserve"]:
        peer = Peer("miniserve", os.path.join(b.workdir, "ceiling-miniserve"))
        with open(os.path.join(peer.files, "tiny.txt"), "w") as f:
            f.write("tiny\n")
        try:
            for mode in ("new", "keepalive"):
                log(f"generator ceiling: GET a tiny file from miniserve, 16 clients, {mode}")
                out[f"miniserve-{mode}"] = series(None, "get", [
                    "--url", f"{peer.base}/tiny.txt", "--clients", "16", "--connection", mode])
        finally:
            peer.stop()
            remove("ceiling-miniserve")
    server, _ = once_server("ceiling-once")
    try:
        for mode in ("new", "keepalive"):
            log(f"generator ceiling: GET once /healthz, 16 clients, {mode}")
            out[f"once-{mode}"] = series(None, "get", [
                "--url", f"{server.base}/healthz", "--clients", "16", "--connection", mode])
    finally:
        server.stop()
        remove("ceiling-once")
    return out


# The cycles start every repetition on a fresh server: rustypaste keeps each viewed one-shot
# file (renamed into oneshot/) and slows down as they pile up (342 -> 122 cycles/s over five
# consecutive runs on one instance), so repetitions on one instance would not be alike.


def once_cycles(label, clients_list, per_run_env=None, after_run=None):
    out = {}
    for clients in clients_list:
        log(f"small share cycle on {label}, {clients} client(s), new connections")
        out[clients] = []
        for rep in range(cfg.repeat):
            name = f"cycle-{label}-{clients}-{rep}"
            server, token = once_server(name, per_run_env(name) if per_run_env else None)
            try:
                out[clients] += series(server.pid, "once-cycle", [
                    "--base", server.base, "--token", token, "--clients", str(clients),
                    "--connection", "new"], repeat=1)
            finally:
                server.stop()
                remove(name)
                if after_run:
                    after_run()
    return out


def rustypaste_cycles(clients_list):
    out = {}
    for clients in clients_list:
        log(f"rustypaste one-shot cycle, {clients} client(s), new connections")
        out[clients] = []
        for rep in range(cfg.repeat):
            name = f"cycle-rustypaste-{clients}-{rep}"
            peer = Peer("rustypaste", os.path.join(b.workdir, name))
            try:
                out[clients] += series(peer.pid, "rustypaste-cycle", [
                    "--base", peer.base, "--clients", str(clients), "--connection", "new"],
                    repeat=1)
            finally:
                peer.stop()
                remove(name)
    return out


def postgres_cycles(clients_list):
    if not (shutil.which("createdb") and shutil.which("dropdb")):
        return {"skipped": "skipped: createdb/dropdb not installed"}
    maintenance = f"{cfg.postgres}/postgres"
    probe = subprocess.run(["psql", maintenance, "-Atc", "select 1"], capture_output=True,
                           text=True, timeout=30) if shutil.which("psql") else None
    if probe is not None and probe.returncode != 0:
        return {"skipped": f"skipped: PostgreSQL not reachable at {cfg.postgres}"}

    def fresh_database(name):
        db = f"once_bench_{os.getpid()}_{name.replace('-', '_')}"[:63]
        done = subprocess.run(["createdb", f"--maintenance-db={maintenance}", db],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"createdb {db}: {done.stderr.strip()}")
        databases.append(db)
        return {"ONCE_DATABASE_URL": f"{cfg.postgres}/{db}"}

    try:
        return once_cycles("postgres", clients_list, per_run_env=fresh_database,
                           after_run=drop_databases)
    finally:
        drop_databases()


def drop_databases():
    for db in list(databases):
        subprocess.run(["dropdb", f"--maintenance-db={cfg.postgres}/postgres", "--force",
                        "--if-exists", db], capture_output=True, timeout=60)
        databases.remove(db)


def measure_storm():
    server, token = once_server("storm")
    try:
        log(f"claim storm: {cfg.claimers} claimers x {cfg.repeat} rounds")
        return loadgen("claim-storm", "--base", server.base, "--token", token,
                       "--claimers", str(cfg.claimers), "--rounds", str(cfg.repeat))
    finally:
        server.stop()
        remove("storm")


def measure_s3_tickets(s3s_fs):
    if not s3s_fs:
        return {"skipped": "skipped: s3s-fs not installed"}
    s3, endpoint = b.start_s3s_fs(s3s_fs, os.path.join(b.workdir, "tickets", "bucket"))
    try:
        server, token = once_server("tickets", s3_env(endpoint))
        try:
            log("S3 ticket rate: once-cycle --create-only, 16 clients, new connections")
            return series(server.pid, "once-cycle", [
                "--base", server.base, "--token", token, "--clients", "16",
                "--connection", "new", "--create-only"])
        finally:
            server.stop()
    finally:
        b.stop(s3)
        remove("tickets")


# --- physical references


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_write(src, dst):
    """Copies src (in the page cache) to dst in 1 MiB writes, fsync, directory fsync: MB/s."""
    buf = bytearray(MiB)
    view = memoryview(buf)
    os.sync()
    start = time.perf_counter()
    with open(src, "rb", buffering=0) as source:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while True:
                n = source.readinto(buf)
                if not n:
                    break
                done = 0
                while done < n:
                    done += os.write(fd, view[done:n])
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(os.path.dirname(dst))
    elapsed = time.perf_counter() - start
    os.remove(dst)
    return os.path.getsize(src) / elapsed / 1e6


def read_all(path):
    buf = bytearray(MiB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def cache_read(path):
    """Reads a file already in the page cache (read once first) to nowhere: MB/s."""
    read_all(path)
    start = time.perf_counter()
    read_all(path)
    return os.path.getsize(path) / (time.perf_counter() - start) / 1e6


def small_files(directory, seconds=1.0):
    """1 KiB files: create, write, fsync, close, fsync the directory, one after another: /s."""
    os.makedirs(directory, exist_ok=True)
    payload = os.urandom(1024)
    dirfd = os.open(directory, os.O_RDONLY)
    n = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            fd = os.open(os.path.join(directory, f"f{n}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o600)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.fsync(dirfd)
            n += 1
    finally:
        os.close(dirfd)
    elapsed = time.perf_counter() - start
    shutil.rmtree(directory, ignore_errors=True)
    return n / elapsed


def warm(directory, min_size):
    """Reads every file of at least min_size bytes under directory (into the page cache)."""
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            try:
                if os.path.getsize(path) >= min_size:
                    read_all(path)
            except OSError:
                pass


# --- transfers


def curl(*args):
    seconds, code, stdout, stderr = run_capture(["curl", "-sS", "-f", *args])
    if code != 0:
        raise RuntimeError(f"curl {' '.join(args[-1:])} failed ({code}): {stderr.strip()}")
    return seconds, stdout


def download(url, size):
    seconds, written = curl("-L", "-o", "/dev/null", "-w", "%{size_download}", url)
    if int(written.strip() or 0) != size:
        raise RuntimeError(f"download of {url}: {written.strip()} bytes, not {size}")
    return size / seconds / 1e6


def measure_big():
    size = cfg.big
    src_dir = os.path.join(b.workdir, "big-source")
    os.makedirs(src_dir)
    src = os.path.join(src_dir, "big.bin")
    log(f"writing {b.human_size(size)} of pseudo-random data")
    b.make_file(src, size)
    read_all(src)
    out = {"size": size, "disk_write": [], "cache_read": [], "small_files": [],
           "once_up": [], "once_down": [], "once_peak_kib": []}
    refs = os.path.join(b.workdir, "big-refs")
    os.makedirs(refs)
    server, token = once_server("big")
    peers = {}
    try:
        if cfg.peer["rustypaste"]:
            peers["rustypaste"] = Peer("rustypaste", os.path.join(b.workdir, "big-rustypaste"))
            out.update({"rustypaste_up": [], "rustypaste_down": [], "rustypaste_peak_kib": []})
        if cfg.peer["miniserve"]:
            peers["miniserve"] = Peer("miniserve", os.path.join(b.workdir, "big-miniserve"))
            os.link(src, os.path.join(peers["miniserve"].files, "big.bin"))
            out["miniserve_down"] = []
        for rep in range(cfg.repeat):
            log(f"{b.human_size(size)}: references, once, peers ({rep + 1}/{cfg.repeat})")
            out["disk_write"].append(disk_write(src, os.path.join(refs, "disk.bin")))
            out["cache_read"].append(cache_read(src))
            out["small_files"].append(small_files(os.path.join(refs, "small")))

            os.sync()
            b.reset_peak(server.pid)
            seconds, link = curl("-H", "Expect:", "-H", f"Authorization: Bearer {token}",
                                 "-T", src, f"{server.base}/api/v1/files/big.bin")
            out["once_up"].append(size / seconds / 1e6)
            warm(server.data_dir, size)
            out["once_down"].append(download(link.strip().splitlines()[-1], size))
            out["once_peak_kib"].append(b.proc_status(server.pid)["VmHWM"])

            if "rustypaste" in peers:
                peer = peers["rustypaste"]
                os.sync()
                b.reset_peak(peer.pid)
                seconds, url = curl("-H", "Expect:", "-F", f"file=@{src}", peer.base)
                out["rustypaste_up"].append(size / seconds / 1e6)
                warm(peer.files, size)
                out["rustypaste_down"].append(download(url.strip().splitlines()[-1], size))
                out["rustypaste_peak_kib"].append(b.proc_status(peer.pid)["VmHWM"])
                for root, _, names in os.walk(peer.files):
                    for name in names:
                        os.remove(os.path.join(root, name))

            if "miniserve" in peers:
                out["miniserve_down"].append(
                    download(f"{peers['miniserve'].base}/big.bin", size))
    finally:
        server.stop()
        for peer in peers.values():
            peer.stop()
        for name in ("big", "big-rustypaste", "big-miniserve", "big-refs", "big-source"):
            remove(name)
    return out


def measure_huge(s3s_fs):
    size = cfg.huge
    src_dir = os.path.join(b.workdir, "huge-source")
    os.makedirs(src_dir)
    src = os.path.join(src_dir, "huge.bin")
    log(f"writing {b.human_size(size)} of pseudo-random data")
    b.make_file(src, size)
    out = {"size": size}
    try:
        for mode in ("fs", "s3"):
            if mode == "s3" and not s3s_fs:
                out[mode] = {"skipped": "skipped: s3s-fs not installed"}
                continue
            token = b.api_token()
            env = {"ONCE_BOOTSTRAP_KEY": token, "ONCE_REAP_INTERVAL": "0s"}
            s3 = None
            base = os.path.join(b.workdir, f"huge-{mode}")
            if mode == "s3":
                s3, endpoint = b.start_s3s_fs(s3s_fs, os.path.join(base, "bucket"))
                env.update(s3_env(endpoint))
            server = b.Server(cfg.binary, os.path.join(base, "data"), env, mode)
            runs = []
            try:
                for rep in range(cfg.huge_repeat):
                    log(f"{mode}: once send --no-encrypt + once get, {b.human_size(size)} "
                        f"({rep + 1}/{cfg.huge_repeat})")
                    runs.append(b.measure_transfer(cfg.binary, mode, server, token, src, size,
                                                   cfg.budget, False))
            finally:
                server.stop()
                if s3:
                    b.stop(s3)
                shutil.rmtree(base, ignore_errors=True)
            out[mode] = runs
    finally:
        shutil.rmtree(src_dir, ignore_errors=True)
    return out


def measure_startup():
    """Start-ups of each server from a fresh empty directory (once: nothing configured);
    in the first ONCE_BENCH_REPEAT rounds also VmRSS 2 s after each one's start."""
    kinds = ["once"] + [k for k in ("miniserve", "rustypaste") if cfg.peer[k]]
    out = {k: {"ready_ms": [], "idle_kib": [], "idle_status": []} for k in kinds}
    for i in range(cfg.starts):
        base = os.path.join(b.workdir, f"start-{i}")
        running = []
        try:
            for kind in kinds:
                if kind == "once":
                    proc = b.Server(cfg.binary, os.path.join(base, "once", "data"), name="start")
                else:
                    proc = Peer(kind, os.path.join(base, kind))
                running.append((kind, proc))
                out[kind]["ready_ms"].append(proc.ready_after * 1000)
            if i < cfg.repeat:
                for kind, proc in running:
                    wait = proc.started + 2 - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    status = b.proc_status(proc.pid)
                    out[kind]["idle_kib"].append(status["VmRSS"])
                    out[kind]["idle_status"].append(status)
        finally:
            for _, proc in running:
                proc.stop()
            shutil.rmtree(base, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# the table


def med(values):
    return statistics.median(values) if values else None


def fmt(value, unit, with_unit=True):
    if value is None:
        return "—"
    if unit == "ms":
        text = f"{value:.2f}" if value < 10 else f"{value:.1f}"
    elif unit == "MiB":
        text = f"{value:.1f}"
    elif unit in ("/s", "MB/s"):
        text = f"{value:,.0f}"
    else:
        text = f"{value:g}"
    return f"{text} {unit}".strip() if with_unit else text


def cell(values, unit):
    if not values:
        return "—"
    if len(values) == 1:
        return fmt(values[0], unit)
    return (f"{fmt(med(values), unit)} "
            f"({fmt(min(values), unit, False)}–{fmt(max(values), unit, False)})")


class Rows:
    """Rows of the one table: a figure of once (values), what it is compared with (values),
    the ratio of the medians, the target and whether it is met."""

    def __init__(self):
        self.rows = []

    def section(self, title):
        self.rows.append({"section": title})

    def add(self, figure, unit, values, compared=None, other=None, target=None, check=None,
            skip=None, other_skip=None, judge="median", note=None):
        values = [v for v in (values or []) if v is not None]
        other = [v for v in (other or []) if v is not None]
        value = (max(values) if judge == "max" else med(values)) if values else None
        ratio = (med(values) / med(other)) if values and other and med(other) else None
        if skip or value is None:
            met = "n/a" if target else "—"
        elif check is None:
            met = "—"
        else:
            verdict = check(value, ratio)
            met = "n/a" if verdict is None else ("yes" if verdict else "**no**")
        self.rows.append({
            "figure": figure, "unit": unit, "once": values, "compared": compared,
            "other": other, "ratio": ratio, "target": target, "met": met,
            "skip": skip, "other_skip": other_skip, "judge": judge, "note": note,
        })

    def markdown(self):
        lines = ["| figure | once: median (min–max) | compared with | that: median (min–max) "
                 "| once ÷ that | target | met? |",
                 "| --- | ---: | --- | ---: | ---: | --- | --- |"]
        for row in self.rows:
            if "section" in row:
                lines.append(f"| **{row['section']}** | | | | | | |")
                continue
            once = row["skip"] or cell(row["once"], row["unit"])
            other = ratio = ""
            if row["compared"]:
                other = row["other_skip"] or cell(row["other"], row["unit"])
                ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "—"
            figure = row["figure"] + (f" ({row['note']})" if row["note"] else "")
            lines.append(f"| {figure} | {once} | {row['compared'] or ''} | {other} | {ratio} "
                         f"| {row['target'] or '—'} | {row['met']} |")
        return "\n".join(lines)


def skipped(result):
    return result.get("skipped") if isinstance(result, dict) else None


def pick(runs, key):
    """Values of one field of loadgen reports (a dotted path such as latency_ms.p99)."""
    if not isinstance(runs, list):
        return []
    values = []
    for run in runs:
        value = run
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return values


def errors_of(runs):
    return sum(r.get("errors", 0) for r in runs) if isinstance(runs, list) else 0


def build_rows(res):
    rows = Rows()
    rp_skip = cfg.peer_skip.get("rustypaste")
    ms_skip = cfg.peer_skip.get("miniserve")
    lt = lambda limit: (lambda v, r: v < limit)  # noqa: E731
    le = lambda limit: (lambda v, r: v <= limit)  # noqa: E731
    at_least = lambda factor: (lambda v, r: None if r is None else r >= factor)  # noqa: E731

    rows.section(f"Generator ceiling (once-loadgen get, 16 clients, {cfg.seconds:g} s runs)")
    ceiling = res["ceiling"]
    for mode, label in (("new", "new connection per request"), ("keepalive", "keep-alive")):
        runs = ceiling.get(f"miniserve-{mode}")
        rows.add(f"GET tiny file from miniserve, {label}: requests/s", "/s", None,
                 "miniserve", pick(runs, "rate"), other_skip=ms_skip)
        rows.add(f"… p99", "ms", None, "miniserve", pick(runs, "latency_ms.p99"),
                 other_skip=ms_skip)
    for mode, label in (("new", "new connection per request"), ("keepalive", "keep-alive")):
        runs = ceiling.get(f"once-{mode}")
        rows.add(f"GET once /healthz, {label}: requests/s", "/s", pick(runs, "rate"))
        rows.add(f"… p99", "ms", pick(runs, "latency_ms.p99"))

    rows.section("Small share cycle, embedded store (SQLite), new TCP connection per request")
    targets = {1: (None, None, "< 8 ms", lt(8)),
               16: ("≥ 3× rustypaste", at_least(3), "< 20 ms", lt(20)),
               64: ("≥ 3× rustypaste", at_least(3), "< 60 ms", lt(60))}
    rp = res["rustypaste_cycle"]
    rp_runs = lambda c: None if skipped(rp) else rp.get(c)  # noqa: E731
    for clients in (1, 16, 64):
        runs = res["once_cycle"][clients]
        other = rp_runs(clients)
        rate_target, rate_check, p99_target, p99_check = targets[clients]
        who = f"{clients} client" + ("s" if clients > 1 else "")
        errs = errors_of(runs)
        rows.add(f"{who}: cycles/s", "/s", pick(runs, "rate"), "rustypaste one-shot cycles/s",
                 pick(other, "rate"), rate_target, rate_check, other_skip=rp_skip,
                 note=f"{errs} errors" if errs else None)
        rows.add(f"{who}: p50", "ms", pick(runs, "latency_ms.p50"), "rustypaste p50",
                 pick(other, "latency_ms.p50"), "< 3 ms" if clients == 1 else None,
                 lt(3) if clients == 1 else None, other_skip=rp_skip)
        rows.add(f"{who}: p99", "ms", pick(runs, "latency_ms.p99"), "rustypaste p99",
                 pick(other, "latency_ms.p99"), p99_target, p99_check, other_skip=rp_skip)
        rows.add(f"{who}: server CPU per cycle", "ms", pick(runs, "server_cpu_ms_per_op"),
                 "rustypaste CPU per cycle", pick(other, "server_cpu_ms_per_op"), "≤ 1 ms",
                 le(1), other_skip=rp_skip)
    rows.add("1 client: cycles/s", "/s", pick(res["once_cycle"][1], "rate"),
             "1 KiB file create + fsync + dir fsync/s (reference)", res["big"]["small_files"])

    pg = res["postgres_cycle"]
    rows.section("Small share cycle, PostgreSQL metadata store (fresh database), new connections")
    for clients in (1, 16):
        who = f"{clients} client" + ("s" if clients > 1 else "")
        runs = None if skipped(pg) else pg[clients]
        sqlite = res["once_cycle"][clients]
        for label, key, unit in (("cycles/s", "rate", "/s"), ("p50", "latency_ms.p50", "ms"),
                                 ("p99", "latency_ms.p99", "ms")):
            rows.add(f"{who}: {label}", unit, pick(runs, key), f"SQLite {label}",
                     pick(sqlite, key), skip=skipped(pg))
        rows.add(f"{who}: server CPU per cycle (once only, not PostgreSQL)", "ms",
                 pick(runs, "server_cpu_ms_per_op"), "SQLite", pick(sqlite, "server_cpu_ms_per_op"),
                 skip=skipped(pg))

    storm = res["storm"]
    rounds = storm.get("per_round", [])
    rows.section(f"Claim storm: {cfg.claimers} concurrent claims of one share, "
                 f"{len(rounds)} round(s)")
    rows.add("claim latency p50 (per round)", "ms", [r["latency_ms"]["p50"] for r in rounds])
    rows.add("claim latency p99 (per round)", "ms", [r["latency_ms"]["p99"] for r in rounds])
    winners = [r["winners"] for r in rounds]
    ok = all(w == 1 for w in winners) and all(r.get("winner_download_ok") for r in rounds)
    rows.add("winners per round", "", winners, target="exactly 1, its download intact",
             check=lambda v, r: ok, judge="max")

    tickets = res["s3_tickets"]
    rows.section("S3 ticket rate (once-cycle --create-only on s3s-fs, 16 clients, new connections)")
    rows.add("tickets/s", "/s", pick(tickets, "rate"), skip=skipped(tickets))
    rows.add("p99", "ms", pick(tickets, "latency_ms.p99"), skip=skipped(tickets))
    rows.add("server CPU per ticket", "ms", pick(tickets, "server_cpu_ms_per_op"),
             skip=skipped(tickets))

    big = res["big"]
    size = b.human_size(big["size"])
    rows.section(f"{size} transfers (curl; downloads to /dev/null with the page cache warm)")
    rows.add(f"{size} upload (`curl -T`, PUT /api/v1/files/…, durable)", "MB/s", big["once_up"],
             "disk write + fsync (reference)", big["disk_write"], "≥ 90 % of disk",
             at_least(0.9))
    rows.add(f"{size} upload", "MB/s", big["once_up"], "rustypaste (`curl -F file=@`, no fsync)",
             big.get("rustypaste_up"), other_skip=rp_skip)
    rows.add(f"{size} download (`curl -L`, claim + 303)", "MB/s", big["once_down"],
             "miniserve", big.get("miniserve_down"), "≥ 2× miniserve", at_least(2),
             other_skip=ms_skip)
    rows.add(f"{size} download", "MB/s", big["once_down"], "page-cache read (reference)",
             big["cache_read"])
    rows.add(f"{size} download", "MB/s", big["once_down"], "rustypaste",
             big.get("rustypaste_down"), other_skip=rp_skip)
    rows.add(f"server peak RSS moving {size} (upload + download)", "MiB",
             [k / 1024 for k in big["once_peak_kib"]], "rustypaste",
             [k / 1024 for k in big.get("rustypaste_peak_kib", [])], other_skip=rp_skip,
             judge="max")

    huge = res["huge"]
    size = b.human_size(huge["size"])
    rows.section(f"{size} with the CLI (`once send --no-encrypt`, `once get -o FILE`), "
                 f"{cfg.huge_repeat} run(s) per store")
    for mode, store in (("fs", "embedded"), ("s3", "S3 (s3s-fs)")):
        runs = huge[mode]
        skip = skipped(runs)
        runs = [] if skip else runs
        intact = all(r["identical"] for r in runs)
        server_peaks = [max(r["send"]["server_hwm_kib"], r["get"]["server_hwm_kib"]) / 1024
                        for r in runs]
        rows.add(f"{store}: server peak RSS (send + get)", "MiB", server_peaks,
                 target="< 16 MiB", check=lt(16), skip=skip, judge="max")
        rows.add(f"{store}: `once send` peak RSS", "MiB",
                 [r["send"]["client_kib"] / 1024 for r in runs], target="< 16 MiB",
                 check=lt(16), skip=skip, judge="max")
        rows.add(f"{store}: `once get` peak RSS", "MiB",
                 [r["get"]["client_kib"] / 1024 for r in runs], target="< 16 MiB",
                 check=lt(16), skip=skip, judge="max")
        rows.add(f"{store}: send", "MB/s", [r["size"] / r["send"]["seconds"] / 1e6 for r in runs],
                 skip=skip)
        rows.add(f"{store}: get", "MB/s", [r["size"] / r["get"]["seconds"] / 1e6 for r in runs],
                 skip=skip, note=None if intact or skip else "**bytes differ**")

    start = res["startup"]
    rows.section(f"Start-up and idle memory (fresh empty directory, {cfg.starts} start-ups)")
    for peer in ("miniserve", "rustypaste"):
        other = start.get(peer, {})
        rows.add("start-up to first 200 (once: /readyz)", "ms", start["once"]["ready_ms"],
                 f"{peer} ({'/' if peer == 'miniserve' else '/version'})",
                 other.get("ready_ms"), "< 8 ms", lt(8), other_skip=cfg.peer_skip.get(peer))
    for peer in ("miniserve", "rustypaste"):
        other = start.get(peer, {})
        rows.add("idle RSS (VmRSS 2 s after start)", "MiB",
                 [k / 1024 for k in start["once"]["idle_kib"]], peer,
                 [k / 1024 for k in other.get("idle_kib", [])], "< 8 MiB", lt(8),
                 other_skip=cfg.peer_skip.get(peer))

    for part, label in (("RssAnon", "heap, stacks"), ("RssFile", "mapped binary, libraries")):
        rows.add(f"… of which {part} ({label})", "MiB",
                 [st[part] / 1024 for st in start["once"]["idle_status"]], "miniserve",
                 [st[part] / 1024 for st in start.get("miniserve", {}).get("idle_status", [])],
                 other_skip=ms_skip)

    rows.section("Physical references (single thread)")
    rows.add(f"disk write + fsync, {b.human_size(big['size'])} from the page cache", "MB/s",
             big["disk_write"])
    rows.add(f"page-cache read, {b.human_size(big['size'])}", "MB/s", big["cache_read"])
    rows.add("1 KiB file create + fsync + directory fsync", "/s", big["small_files"])
    return rows


def print_report(info, rows, res, elapsed):
    version = subprocess.run([cfg.binary, "--version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"# once beside its peers ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print(f"- binary: `{cfg.binary}` ({version}); generator: `{cfg.loadgen}` (1 thread)")
    print(f"- source: {info['git']}")
    print(f"- nproc: {info['nproc']}; CPU: {info['cpu']}; kernel {info['kernel']}; {info['rustc']}")
    print("- peers: " + ", ".join(
        f"{name} {version}" + (f" ({cfg.peer_skip[name]})" if not cfg.peer[name] else "")
        for name, version in PEERS.items()))
    print(f"- {cfg.repeat} repetition(s) per figure; load runs {cfg.seconds:g} s, each after a "
          f"{cfg.warmup:g} s uncounted warm-up run" + ("; **smoke mode**" if cfg.smoke else ""))
    print("- free -g:\n\n```\n" + info["free -g"] + "\n```\n")
    print(rows.markdown())
    print()
    print("Notes:\n")
    print("- `once ÷ that` is the ratio of the medians; **met?** judges the median against the "
          "target, peak memory the largest of the runs.")
    print("- Every `once` server under load runs with `ONCE_KEY_RATE_LIMIT=0 "
          "ONCE_ADDRESS_RATE_LIMIT=0 ONCE_MAX_CONNECTIONS=4096 "
          "ONCE_MAX_CONNECTIONS_PER_ADDRESS=4096`: the rate and connection limits are "
          "per-instance abuse protection, which a benchmark from one address would hit. "
          "Otherwise defaults; one fresh server and data directory per figure, and per "
          "repetition for the small cycles (rustypaste keeps every viewed one-shot file and "
          "slows down as they pile up, so runs on one instance would not be alike).")
    print("- A once cycle is 4 requests (create, upload to the ticket, claim `GET /s/ID` → 303, "
          "download), each on a new TCP connection; rustypaste's one-shot cycle is 2 (multipart "
          "`POST /` with a `oneshot` part, then `GET` the URL). once fsyncs each blob and commits "
          "it to SQLite; rustypaste writes without fsync. New connections also avoid "
          "actix-web's ~40 ms stall per keep-alive request (rustypaste and miniserve; visible "
          "in the miniserve keep-alive row, which therefore measures miniserve, not the "
          "generator — the once /healthz rows show the generator's reach).")
    print("- Server CPU: utime+stime of the server process (all threads) from /proc/PID/stat "
          "over each measured run, divided by its operations; the generator and, on "
          "PostgreSQL, the database server are not counted.")
    print(f"- {b.human_size(res['big']['size'])}: the source file is in the page cache; before "
          "each download the stored file is read once (page cache warm). Uploads use "
          "`Expect:` off; `sync` runs before each upload and the disk reference. Peak RSS: "
          "VmHWM reset through /proc/PID/clear_refs before the upload, read after the download.")
    print(f"- {b.human_size(res['huge']['size'])}: server VmHWM reset before each command; CLI "
          "peak from GNU time `%M` (else VmHWM sampled every 20 ms); the downloaded file is "
          "compared with the original.")
    storm = res["storm"]
    print(f"- Claim storm: {storm.get('claimers')} connections opened first, then every "
          f"`GET /s/ID` released at once; statuses {json.dumps(storm.get('statuses'))}, "
          f"{storm.get('errors')} errors, latency from the release.")
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in res.get("phase_seconds", {}).items())
    print(f"\nThe run took {elapsed:.0f} s ({phases}), builds and installs excluded.")


# ---------------------------------------------------------------------------------------------


def main(bench_module, smoke):
    global b, cfg
    b = bench_module
    cfg = Settings(smoke)
    build_and_find()
    install_peers()

    def on_signal(signum, _frame):
        raise SystemExit(f"bench: stopped by signal {signum}")

    def on_alarm(_signum, _frame):
        raise b.Timeout(f"the measurement took longer than {cfg.budget}s (ONCE_BENCH_TIMEOUT)")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)

    b.workdir = tempfile.mkdtemp(prefix="once-bench-", dir="/tmp")
    started = time.perf_counter()
    signal.alarm(cfg.budget)
    try:
        info = b.machine()
        s3s_fs = b.find_s3s_fs()
        if not s3s_fs:
            log("s3s-fs not found (cargo install s3s-fs@0.14.1 --features binary): S3 rows "
                "skipped")
        res, phases = {}, {}

        def phase(name, measure, *args):
            begun = time.perf_counter()
            res[name] = measure(*args)
            phases[name] = round(time.perf_counter() - begun, 1)
            log(f"{name}: {phases[name]:.0f}s (total {time.perf_counter() - started:.0f}s)")

        log(f"start-up x{cfg.starts}, idle RSS x{min(cfg.repeat, cfg.starts)}")
        phase("startup", measure_startup)
        phase("ceiling", measure_ceiling)
        phase("once_cycle", once_cycles, "sqlite", (1, 16, 64))
        if cfg.peer["rustypaste"]:
            phase("rustypaste_cycle", rustypaste_cycles, (1, 16, 64))
        else:
            res["rustypaste_cycle"] = {"skipped": cfg.peer_skip["rustypaste"]}
        phase("postgres_cycle", postgres_cycles, (1, 16))
        phase("storm", measure_storm)
        phase("s3_tickets", measure_s3_tickets, s3s_fs)
        phase("big", measure_big)
        phase("huge", measure_huge, s3s_fs)
        res["phase_seconds"] = phases
        signal.alarm(0)
        elapsed = time.perf_counter() - started
        rows = build_rows(res)
        print_report(info, rows, res, elapsed)
        os.makedirs(os.path.dirname(cfg.json_path), exist_ok=True)
        with open(cfg.json_path, "w") as f:
            json.dump({"machine": info, "settings": cfg.public(), "elapsed_s": elapsed,
                       "results": res, "rows": rows.rows}, f, indent=1, default=str)
        log(f"raw results: {cfg.json_path}")
        log(f"done in {elapsed:.0f}s")
    finally:
        signal.alarm(0)
        b.cleanup()
        drop_databases()
