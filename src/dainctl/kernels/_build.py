"""Build-on-first-use and caching of the compiled dainctl op library (sources under `csrc/`).

The library is compiled with `torch.utils.cpp_extension.load` into a fresh temporary folder and moved
into place atomically as `<cache>/<variant>-<digest>/`. The digest covers every file under `csrc/`
(headers included: torch's own rebuild check only looks at the listed sources), the torch and CUDA
versions, the Python ABI and, for the CUDA variant, the GPU architectures it is built for; so a second
process, or a second run, loads the cached library without compiling. Where two processes build at once,
the first to finish wins and the other discards its copy.

Variants: "cpu" (C++/OpenMP drivers) everywhere; "cuda" (CPU and CUDA drivers) where torch was built
with CUDA, a GPU is visible and a CUDA toolkit is found. Only one variant can be loaded per process,
since both register the same `dainctl::` ops.

`DAINCTL_FORCE_CUDA_BUILD=1` builds (and loads) the CUDA variant where torch was built with CUDA and a
toolkit is found but no GPU is visible: for checking the build on a machine without a GPU
(`scripts/build_cuda_variant.sh`). It needs `TORCH_CUDA_ARCH_LIST` (e.g. "8.0;9.0"), since there is no
GPU to take the architecture from; it is never the default.

Cache root: `$DAINCTL_CACHE_DIR/kernels`, else `$XDG_CACHE_HOME/dainctl/kernels`, else
`~/.cache/dainctl/kernels`. A failed build leaves its compiler output in `<cache>/build-<variant>-<digest>.log`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from dainctl.errors import EngineError

CSRC_DIR = Path(__file__).resolve().parent / "csrc"
LIBRARY_NAME = "dainctl_ops"

_CPU_SOURCES = ("torch/ops.cpp", "torch/autograd.cpp", "cpu/drivers.cpp")
_CUDA_SOURCES = ("torch/ops_cuda.cpp", "cuda/kernels.cu")

_lock = threading.Lock()
# Per-process caches: the variant loaded (with its path), or the error that stopped the build.
_loaded: dict[str, Path] = {}
_failed: dict[str, EngineError] = {}


def load_library(need_cuda: bool = False) -> Path:
    """Build (once per cache) and load the op library into this process; returns its path.

    `need_cuda`: the caller has CUDA tensors, so the CUDA variant is required. Raises `EngineError`
    (one line, naming the build log where there is one) when the library cannot be built or loaded.
    """
    with _lock:
        variant = "cuda" if _cuda_build_possible() else "cpu"
        if need_cuda and variant != "cuda":
            raise EngineError(f"the compiled kernels cannot run on CUDA: {_no_cuda_reason()}")
        if variant in _loaded:
            return _loaded[variant]
        if variant in _failed:
            raise _failed[variant]
        try:
            path = _build_and_load(variant)
        except EngineError as error:
            _failed[variant] = error
            raise
        _loaded[variant] = path
        return path


def cache_root() -> Path:
    """Folder holding the built libraries (see the module docstring)."""
    if os.environ.get("DAINCTL_CACHE_DIR"):
        return Path(os.environ["DAINCTL_CACHE_DIR"]) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dainctl" / "kernels"


def source_files() -> list[Path]:
    """Every file under csrc/, sorted: what the digest covers and what the package ships."""
    return sorted(p for p in CSRC_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def build_key(variant: str) -> str:
    """The cache key of `variant`: a digest of the sources, toolchain versions and GPU architectures."""
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.relative_to(CSRC_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    parts = [variant, torch.__version__, str(torch.version.cuda), sysconfig.get_config_var("SOABI") or sys.version]
    if variant == "cuda":
        parts.append(os.environ.get("TORCH_CUDA_ARCH_LIST", ""))
        parts += [str(torch.cuda.get_device_capability(i)) for i in range(torch.cuda.device_count())]
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()[:20]


FORCE_CUDA_ENV_VAR = "DAINCTL_FORCE_CUDA_BUILD"


def _cuda_build_forced() -> bool:
    """`DAINCTL_FORCE_CUDA_BUILD=1`: build the CUDA variant even where no GPU is visible (a build check)."""
    return os.environ.get(FORCE_CUDA_ENV_VAR, "").strip().lower() in ("1", "true", "yes")


def _cuda_build_possible() -> bool:
    if torch.version.cuda is None:
        return False
    forced = _cuda_build_forced()
    if not forced and not torch.cuda.is_available():
        return False
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        return False
    if forced and not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip():
        raise EngineError(
            f"{FORCE_CUDA_ENV_VAR}=1 without a visible GPU needs TORCH_CUDA_ARCH_LIST (e.g. \"8.0;9.0\")"
        )
    return True


def _no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) was built without CUDA"
    if not torch.cuda.is_available() and not _cuda_build_forced():
        return f"no GPU is visible (only {FORCE_CUDA_ENV_VAR}=1 builds the CUDA variant without one)"
    return "no CUDA toolkit (nvcc) was found to build them (set CUDA_HOME to the toolkit's folder)"


def _build_and_load(variant: str) -> Path:
    key = build_key(variant)
    root = cache_root()
    final_dir = root / f"{variant}-{key}"
    library = final_dir / f"{LIBRARY_NAME}.so"
    if library.is_file():
        try:
            torch.ops.load_library(str(library))
        except OSError as error:
            raise EngineError(f"could not load the compiled dainctl kernels from {library}: {error}") from error
    else:
        # cpp_extension.load has already loaded the freshly built copy. Loading the cached one as well
        # would register the dainctl ops twice (fatal) when another process won the race to the cache.
        _build(variant, key, root, final_dir)
    from dainctl.kernels import _autograd, _fake

    _fake.register_fake_kernels()
    _autograd.register_autocast_rules()
    _autograd.register_twin_backwards()
    return library


def _build(variant: str, key: str, root: Path, final_dir: Path) -> None:
    log_path = root / f"build-{variant}-{key}.log"
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging_dir = Path(tempfile.mkdtemp(prefix=f".{variant}-{key}-", dir=root))
    except OSError as error:
        raise EngineError(f"cannot create the kernel build folder under {root}: {error}") from error

    sys.stderr.write(f"dainctl: compiling the {variant.upper()} kernels (first use only) into {final_dir} ...")
    sys.stderr.flush()
    try:
        from torch.utils import cpp_extension

        sources = _CPU_SOURCES + (_CUDA_SOURCES if variant == "cuda" else ())
        with _quiet_torch_build():
            cpp_extension.load(
                name=LIBRARY_NAME,
                sources=[str(CSRC_DIR / s) for s in sources],
                extra_include_paths=[str(CSRC_DIR / "include")],
                extra_cflags=["-O3", "-fopenmp"],
                extra_cuda_cflags=["-O3"],
                extra_ldflags=["-fopenmp"],
                build_directory=str(staging_dir),
                is_python_module=False,
                verbose=False,
            )
    except Exception as error:  # compiler missing, compile error, ninja missing: all end the same way
        sys.stderr.write(" failed\n")
        shutil.rmtree(staging_dir, ignore_errors=True)
        try:
            log_path.write_text(f"{type(error).__name__}: {error}\n")
        except OSError:
            pass
        raise EngineError(f"could not build the compiled dainctl kernels (see {log_path})") from error
    sys.stderr.write(" done\n")

    try:
        staging_dir.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        os.replace(staging_dir, final_dir)  # atomic: readers see a complete folder or none
    except OSError:
        # Another process finished first; its library is equivalent (same key).
        shutil.rmtree(staging_dir, ignore_errors=True)


@contextmanager
def _quiet_torch_build() -> Iterator[None]:
    """Keep the build to our one status line: torch's own advice (compiler checks, arch lists) is
    silenced while building; a failure's full compiler output goes to the build log instead."""
    torch_logger = logging.getLogger("torch.utils.cpp_extension")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_logger.setLevel(level)
