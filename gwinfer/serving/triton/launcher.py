"""Find, start and stop a real NVIDIA Triton Inference Server (``tritonserver``) on a model repository.

Used by ``tests/serving/test_triton_real.py`` and ``bench/bench_serving.py`` to check that gwinfer's
exported repositories run in the real server; also usable by hand (:mod:`gwinfer.cli.triton`)::

    python -m gwinfer.cli.triton --repo model_repo            # foreground, ports 8000/8001
    python -m gwinfer.cli.triton --repo model_repo --check    # where is Triton, can it run here?

Where the binary comes from (:func:`find_triton`, first match wins):

1. ``$GWINFER_TRITON_ENV`` if set (and only it): a Python venv with ``nvidia-pytriton`` installed (which
   bundles ``tritonserver``, its libraries and the Python backend), or a Triton install folder holding
   ``bin/tritonserver`` (and ``backends/``);
2. ``.triton-env`` in the repository root or the current folder (``make triton-env`` creates it);
3. ``/work/tritonenv`` (this project's build machine);
4. ``tritonserver`` on ``PATH`` (e.g. inside NVIDIA's ``nvcr.io/nvidia/tritonserver`` container).

How the pytriton bundle is run (found by experiment, Triton 2.51 from nvidia-pytriton 0.7.0):

* ``--backend-directory=DIR`` where ``DIR/python/`` holds (symlinks to) pytriton's
  ``tritonserver/backends/python/*`` *plus* ``triton_python_backend_stub`` taken from
  ``tritonserver/python_backend_stubs/<X.Y>/`` for the venv's Python version: the Python backend starts
  the stub found next to ``libtriton_python.so`` (pytriton does the same by copying the whole tree).
* The stub links ``libpython<X.Y>.so.1.0``: ``LD_LIBRARY_PATH`` gets the venv interpreter's ``LIBDIR``
  and pytriton's bundled ``nvidia_pytriton.libs``.
* The stub embeds the first ``python3`` on ``PATH`` and so imports that venv's packages: ``PATH`` starts
  with the venv's ``bin``. That venv needs ``numpy<2`` -- with numpy 2 this stub loads the model but
  reads input tensors wrongly and returns empty outputs (no error) -- and ``onnxruntime`` for the
  ``model.py`` of ``gwinfer export --backend python``.
* ``--backend-config=python,shm-region-prefix-name=...`` gives each server its own shared-memory
  regions in ``/dev/shm`` (several servers can run at once).

:class:`TritonServer` starts it on 127.0.0.1 with free HTTP and gRPC ports (metrics off unless asked),
waits until ``/v2/health/ready`` answers 200 (or ``live`` with ``strict=False``) and stops it (SIGTERM,
then SIGKILL of its process group). Anything that prevents a start raises :class:`TritonUnavailable` with a one-line reason (binary
missing, no stub for the Python version, a shared library not found, numpy>=2 or no onnxruntime in the
venv, the server exiting or not getting ready -- with the tail of its log).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gwinfer.errors import GwinferError

ENV_VAR = "GWINFER_TRITON_ENV"
REPO_ROOT = Path(__file__).resolve().parents[3]  # the checkout holding gwinfer/
DEFAULT_ENVS = (REPO_ROOT / ".triton-env", Path(".triton-env"), Path("/work/tritonenv"))

PROBE = r"""
import json, sys, sysconfig
out = {"version": "%d.%d" % sys.version_info[:2], "libdir": sysconfig.get_config_var("LIBDIR"),
       "soname": sysconfig.get_config_var("INSTSONAME")}
for mod in ("numpy", "onnxruntime"):
    try:
        out[mod] = __import__(mod).__version__
    except Exception as err:
        out[mod] = None
        out[mod + "_error"] = " ".join(str(err).split())[:200]
print(json.dumps(out))
"""


class TritonUnavailable(GwinferError):
    """Triton cannot be found or started here; the message is the one-line reason."""


@dataclass
class TritonInstall:
    """A runnable ``tritonserver``: binary, backend folder, environment additions, and the stub's Python."""

    binary: Path
    source: str  # how it was found, for messages
    env: Path | None = None  # the venv (pytriton bundle) or install folder
    backends: Path | None = None  # the backend folder to expose (None: the binary's default)
    stub: Path | None = None  # the Python-backend stub to place next to libtriton_python.so
    library_path: list[Path] = field(default_factory=list)  # prepended to LD_LIBRARY_PATH
    bin_path: list[Path] = field(default_factory=list)  # prepended to PATH (the stub's python3)
    python: dict = field(default_factory=dict)  # the stub interpreter's version, numpy, onnxruntime
    pytriton: bool = False

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) with LD_LIBRARY_PATH and PATH extended for this install."""
        env = dict(os.environ if base is None else base)
        for key, extra in (("LD_LIBRARY_PATH", self.library_path), ("PATH", self.bin_path)):
            parts = [str(p) for p in extra] + ([env[key]] if env.get(key) else [])
            if parts:
                env[key] = os.pathsep.join(parts)
        env.setdefault("OMP_NUM_THREADS", "1")
        return env


def run_quiet(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``cmd`` run to completion (``timeout`` s), its output captured as text, never raising on failure."""
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def probe_python(python: Path) -> dict:
    """Version, LIBDIR, numpy and onnxruntime of the interpreter ``python`` (TritonUnavailable if it fails)."""
    try:
        res = run_quiet([str(python), "-c", PROBE])
    except (OSError, subprocess.TimeoutExpired) as err:
        raise TritonUnavailable(f"cannot run {python}: {err}") from None
    if res.returncode != 0:
        tail = " ".join(res.stderr.split())[-300:]
        raise TritonUnavailable(f"{python} fails: {tail}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def install_from(root: Path, source: str) -> TritonInstall:
    """A TritonInstall from a venv with nvidia-pytriton, or from a Triton install folder."""
    if not root.is_dir():
        raise TritonUnavailable(f"{source}: {root} is not a folder")
    plain = root / "bin" / "tritonserver"
    if plain.is_file():  # a Triton install (e.g. /opt/tritonserver)
        backends = root / "backends"
        return TritonInstall(plain, source, env=root, backends=backends if backends.is_dir() else None)
    bundles = sorted(root.glob("lib/python3*/site-packages/pytriton/tritonserver"))
    if not bundles:
        raise TritonUnavailable(
            f"{source}: {root} has neither bin/tritonserver nor nvidia-pytriton "
            f"(pip install nvidia-pytriton in that venv)"
        )
    tree = bundles[-1]
    binary = tree / "bin" / "tritonserver"
    if not binary.is_file():
        raise TritonUnavailable(f"{source}: {binary} does not exist (a broken nvidia-pytriton install?)")
    python = root / "bin" / "python"
    if not python.exists():
        raise TritonUnavailable(f"{source}: {python} does not exist (not a venv?)")
    info = probe_python(python)
    stub = tree / "python_backend_stubs" / info["version"] / "triton_python_backend_stub"
    if not stub.is_file():
        stubs = tree / "python_backend_stubs"
        have = sorted(p.name for p in stubs.iterdir()) if stubs.is_dir() else []
        raise TritonUnavailable(
            f"{source}: nvidia-pytriton has no Python-backend stub for Python {info['version']} (has {have})"
        )
    libs = [Path(info["libdir"])] if info.get("libdir") else []
    libs.append(tree.parent.parent / "nvidia_pytriton.libs")
    return TritonInstall(
        binary,
        source,
        env=root,
        backends=tree / "backends",
        stub=stub,
        library_path=[p for p in libs if p.is_dir()],
        bin_path=[root / "bin"],
        python=info,
        pytriton=True,
    )


def find_triton(env: str | Path | None = None) -> TritonInstall:
    """The Triton to use: ``env`` if given, else the lookup order of the module docstring.

    Raises :class:`TritonUnavailable` (one line) if there is none or the one chosen is unusable.
    """
    if env is not None:
        return install_from(Path(env).expanduser().resolve(), str(env))
    if os.environ.get(ENV_VAR):
        return install_from(Path(os.environ[ENV_VAR]).expanduser().resolve(), f"${ENV_VAR}={os.environ[ENV_VAR]}")
    for root in DEFAULT_ENVS:
        if root.is_dir():
            return install_from(root.resolve(), str(root))
    found = shutil.which("tritonserver")
    if found:
        return TritonInstall(Path(found), "PATH")
    raise TritonUnavailable(
        f"no Triton found: set {ENV_VAR} to a venv with nvidia-pytriton (make triton-env), "
        f"or put tritonserver on PATH (looked in {', '.join(map(str, DEFAULT_ENVS))})"
    )


def uses_python_backend(repo: Path) -> bool:
    """True if a model of repository ``repo`` names ``backend: "python"`` in its config.pbtxt."""
    return any(
        re.search(r'^\s*backend\s*:\s*"python"', p.read_text(errors="replace"), re.M)
        for p in repo.glob("*/config.pbtxt")
    )


def check_install(install: TritonInstall, repo: str | Path | None = None) -> None:
    """Checks before a start: the stub's numpy/onnxruntime and the shared libraries (TritonUnavailable)."""
    if install.pytriton:
        numpy = install.python.get("numpy")
        if numpy is None:
            raise TritonUnavailable(
                f"numpy is not importable in {install.env} (the Python backend needs it: "
                f"{install.env}/bin/pip install 'numpy<2'): {install.python.get('numpy_error')}"
            )
        if int(numpy.split(".")[0]) >= 2:
            raise TritonUnavailable(
                f"numpy {numpy} in {install.env}: the Python-backend stub of nvidia-pytriton "
                f"is built for numpy<2 (with numpy 2 it corrupts tensors); "
                f"{install.env}/bin/pip install 'numpy<2'"
            )
        if repo is not None and install.python.get("onnxruntime") is None and uses_python_backend(Path(repo)):
            raise TritonUnavailable(
                f"onnxruntime is not importable in {install.env} (gwinfer's model.py needs it: "
                f"{install.env}/bin/pip install onnxruntime 'numpy<2'): "
                f"{install.python.get('onnxruntime_error')}"
            )
    if shutil.which("ldd") is None:
        return
    env = install.environment()
    for exe in (install.binary, install.stub):
        if exe is None:
            continue
        try:
            res = run_quiet(["ldd", str(exe)], env=env, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return
        missing = sorted({line.split("=>")[0].strip() for line in res.stdout.splitlines() if "not found" in line})
        if missing:
            hint = ""
            if any(m.startswith("libpython") for m in missing):
                hint = (
                    f" (the interpreter of {install.env} has no shared libpython in "
                    f"{install.python.get('libdir')}: use a Python built with --enable-shared)"
                )
            raise TritonUnavailable(
                f"{exe.name}: {', '.join(missing)} not found with "
                f"LD_LIBRARY_PATH={env.get('LD_LIBRARY_PATH', '')}{hint}"
            )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (another process may take it before it is bound)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def prepare_backends(install: TritonInstall, workdir: Path) -> Path | None:
    """The ``--backend-directory`` to pass: for the pytriton bundle a folder of symlinks with the stub next
    to ``libtriton_python.so``; else the install's backends folder (None: the binary's default)."""
    if install.stub is None:
        return install.backends
    out = workdir / "backends"
    out.mkdir(parents=True, exist_ok=True)
    for backend in sorted(install.backends.iterdir()) if install.backends else []:
        if not backend.is_dir():
            continue
        if backend.name != "python":
            (out / backend.name).symlink_to(backend, target_is_directory=True)
            continue
        (out / "python").mkdir()
        for f in backend.iterdir():
            if f.name != "__pycache__":
                (out / "python" / f.name).symlink_to(f)
    if not (out / "python").is_dir():
        raise TritonUnavailable(f"{install.backends} has no python backend")
    (out / "python" / "triton_python_backend_stub").symlink_to(install.stub)
    return out


def triton_command(
    install: TritonInstall,
    repo: str | Path,
    http_port: int,
    grpc_port: int,
    metrics_port: int | None = None,
    backend_dir: Path | None = None,
    host: str = "127.0.0.1",
    shm_prefix: str | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The ``tritonserver`` command line (``metrics_port`` None: metrics off)."""
    cmd = [
        str(install.binary),
        f"--model-repository={Path(repo).resolve()}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
    ]
    if metrics_port is None:
        cmd.append("--allow-metrics=false")
    else:
        cmd += [f"--metrics-address={host}", f"--metrics-port={metrics_port}", "--allow-gpu-metrics=false"]
    if backend_dir is not None:
        cmd.append(f"--backend-directory={backend_dir}")
    if shm_prefix is not None:
        cmd.append(f"--backend-config=python,shm-region-prefix-name={shm_prefix}")
    cmd += ["--exit-timeout-secs=5", *extra]
    return cmd


class TritonServer:
    """A ``tritonserver`` subprocess on ``host`` serving ``repo``; ``with TritonServer(repo) as t: ...``.

    Ports 0 (default) are free ports picked at start; ``url`` (HTTP) and ``grpc_url`` are
    ``"host:port"`` as tritonclient takes them. ``metrics=True`` also opens a metrics port.

    ``strict=True`` (Triton's default): the server exits if a model fails to load, and ``start`` waits
    for ``/v2/health/ready``. ``strict=False`` (``--exit-on-error=false``): ``start`` returns once the
    server is live (models are loaded before the endpoints open), and a model that failed to load is
    ``UNAVAILABLE`` in the repository index with its reason -- so a broken model is told apart from a
    server that cannot run here.
    """

    def __init__(
        self,
        repo: str | Path,
        install: TritonInstall | None = None,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        metrics: bool = False,
        timeout: float = 120.0,
        strict: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.repo = Path(repo)
        self.strict = strict
        self.install = install
        self.host = host
        self.want = (http_port, grpc_port)
        self.metrics = metrics
        self.timeout = timeout
        self.extra_args = tuple(extra_args)
        self.http_port = self.grpc_port = 0
        self.metrics_port: int | None = None
        self.command: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self.startup_s = float("nan")
        self.shm_prefix: str | None = None  # the Python backend's /dev/shm regions (ours alone)

    @property
    def url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's output, without Triton's table borders."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = [ln.rstrip() for ln in self.log_path.read_text(errors="replace").splitlines()]
        text = [ln for ln in text if ln.strip() and not re.fullmatch(r"[+\-|= ]*", ln)]  # table borders
        return "\n".join(text[-lines:])

    def failure(self) -> str:
        """The server's last error lines (Triton's ``E...`` log lines, ``error: ...``), else its log tail."""
        lines = self.log_tail(400).splitlines()
        pattern = r"^E\d{4} |^error:|unrecognized option|^Bad option|invalid argument"
        errors = [
            ln for ln in lines if re.search(pattern, ln) and "CudaDriverHelper" not in ln
        ]  # (logged on every machine without a GPU driver)
        return " | ".join(" ".join(ln.split()) for ln in (errors[-3:] or lines[-4:]))[-1500:]

    def _ready(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.http_port, timeout=2)
        try:
            conn.request("GET", "/v2/health/ready" if self.strict else "/v2/health/live")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def start(self) -> TritonServer:
        if not self.repo.is_dir():
            raise TritonUnavailable(f"model repository {self.repo} does not exist")
        if self.install is None:
            self.install = find_triton()
        check_install(self.install, self.repo)
        self.workdir = Path(tempfile.mkdtemp(prefix="gwinfer-triton-"))
        try:
            backend_dir = prepare_backends(self.install, self.workdir)
            for _ in range(3):  # a free port can be taken by someone else between picking and binding
                if self._launch(backend_dir):
                    return self
            raise TritonUnavailable(f"tritonserver could not bind free ports: {self.log_tail(1)}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, backend_dir: Path | None) -> bool:
        self.http_port = self.want[0] or free_port(self.host)
        self.grpc_port = self.want[1] or free_port(self.host)
        self.metrics_port = free_port(self.host) if self.metrics else None
        if self.install.stub is not None:
            self.shm_prefix = f"gwinfer{os.getpid()}-{secrets.token_hex(3)}-"
        self.command = triton_command(
            self.install,
            self.repo,
            self.http_port,
            self.grpc_port,
            self.metrics_port,
            backend_dir,
            self.host,
            self.shm_prefix,
            self.extra_args + (() if self.strict else ("--exit-on-error=false",)),
        )
        self.log_path = self.workdir / "tritonserver.log"
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.install.environment(),
                start_new_session=True,
            )
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                if "ddress already in use" in self.log_tail(50) and not any(self.want):
                    return False
                raise TritonUnavailable(f"tritonserver exited with code {code} before getting ready: {self.failure()}")
            if self._ready():
                self.startup_s = time.monotonic() - t0
                return True
            if time.monotonic() - t0 > self.timeout:
                reason = self.failure()
                self._terminate()
                raise TritonUnavailable(f"tritonserver not ready after {self.timeout:.0f} s: {reason}")
            time.sleep(0.1)

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the server and its stubs only
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def stop(self) -> None:
        self._terminate()
        if self.shm_prefix is not None:  # left behind when the server had to be killed or timed out exiting
            for region in Path("/dev/shm").glob(self.shm_prefix + "*"):
                region.unlink(missing_ok=True)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> TritonServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
