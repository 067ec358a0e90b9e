"""The wheelhouse for the GPU machine: the runtime packages its image lacks, as wheels for its
Python (3.12, x86-64), at the versions installed here, where the tests ran against them.

That machine reaches no package registry, so whatever the tool imports beyond its image travels
with the run. Which packages: the closure of the project's dependencies (`pyproject.toml`), read
from the metadata installed here with the markers evaluated for that machine, less what the image
already holds (`GPU_IMAGE`). A package the image holds is carried too when the tool needs another
version of it (`CARRY_ANYWAY`).

    python -m analysis.wheelhouse build .whl    # here, where pip reaches PyPI
    python -m analysis.wheelhouse check .whl    # every wheel's requirements met, one version each
    python -m analysis.wheelhouse imports       # on the GPU machine: every dependency imports

The folder stays out of git (`.git/info/exclude`) and is installed there with
`pip install --no-index --no-deps --target` (`launchers/gpu_check.sh`).
"""

from __future__ import annotations

import argparse
import email.parser
import importlib
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYTHON = "3.12"
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# the environment the GPU machine's Python evaluates requirement markers in
MARKERS = {
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
# the GPU machine's image (the device's KINDS.md), as canonical names
GPU_IMAGE = frozenset(
    canonicalize_name(n)
    for n in """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cycler cython einops filelock fonttools frozenlist fsspec grpcio h11 h5py hf-xet
    httpcore httpx huggingface-hub idna imageio iniconfig jax jaxlib jinja2 joblib kiwisolver
    lxml markdown markdown-it-py markupsafe matplotlib mdurl ml-dtypes mpmath msgpack multidict
    mypy-extensions narwhals networkx ninja numpy opt-einsum packaging pandas pathspec patsy
    pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
    pygments pyparsing pyproject-hooks python-dateutil pytest pyyaml regex requests rich
    safetensors scikit-learn scipy seaborn sentencepiece setuptools shellingham simplejson six
    sortedcontainers sympy tabulate threadpoolctl tiktoken tokenizers toolz torch torchaudio
    torchvision tqdm transformers triton typer typing-extensions typing-inspect urllib3 wheel
    wrapt xxhash yarl zipp
    """.split()  # noqa: SIM905
)
# held by the image, carried all the same: wandb's generated code needs protobuf ≥ 5 and the
# image's version is not on record
CARRY_ANYWAY = frozenset({"protobuf"})
# the import name of each project dependency, for the check on the GPU machine
IMPORTS = {
    "torch": "torch",
    "mup": "mup",
    "numpy": "numpy",
    "optuna": "optuna",
    "sqlalchemy": "sqlalchemy",
    "hydra-core": "hydra",
    "wandb": "wandb",
    "submitit": "submitit",
    "matplotlib": "matplotlib",
    "rich": "rich",
    "jinja2": "jinja2",
    "plotly": "plotly",
}
LIMIT_BYTES = 56 * 2**20  # what may travel is 64 MiB in all, the working tree included


def project_requirements(pyproject: Path | None = None) -> list[Requirement]:
    """The project's runtime dependencies, from `pyproject.toml`."""
    import tomllib

    path = pyproject or Path(__file__).resolve().parent.parent / "pyproject.toml"
    return [Requirement(r) for r in tomllib.loads(path.read_text())["project"]["dependencies"]]


def applies(requirement: Requirement) -> bool:
    """Whether a requirement holds on the GPU machine (its marker, without extras)."""
    return requirement.marker is None or Marker(str(requirement.marker)).evaluate(MARKERS)


def to_carry(roots: Iterable[Requirement], image: frozenset[str] = GPU_IMAGE) -> dict[str, str]:
    """The packages to carry, name → the version installed here: the dependency closure of
    `roots` as installed, less the image's packages (whose own needs the image meets)."""
    pins: dict[str, str] = {}
    todo = [r for r in roots if applies(r)]
    while todo:
        name = canonicalize_name(todo.pop().name)
        if name in pins or (name in image and name not in CARRY_ANYWAY):
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError as e:
            raise SystemExit(f"error: {name} is needed but not installed here") from e
        pins[name] = dist.version
        todo += [r for r in map(Requirement, dist.requires or []) if applies(r)]
    return dict(sorted(pins.items()))


def download(pins: dict[str, str], dest: Path) -> None:
    """Each pinned wheel for the GPU machine's Python and platform, without its dependencies
    (the pins are the closure already). A package published only as source is built here into
    a wheel, which must then be pure Python (`check` refuses any other)."""
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip = [sys.executable, "-m", "pip", "-q"]
    for name, version in pins.items():
        pin = f"{name}=={version}"
        binary = subprocess.run(
            [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON,
             "--implementation", "cp", *platforms, "-d", str(dest), pin],
            capture_output=True,
        )  # fmt: skip
        if binary.returncode != 0:  # a source-only release
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dest), pin], check=True)


def wheel_metadata(wheel: Path) -> tuple[str, Version, list[Requirement]]:
    """A wheel's name, version and requirements, from its METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(member).decode()
    headers = email.parser.HeaderParser().parsestr(text.replace("\r\n", "\n"))
    field = {"Name": headers["Name"], "Version": headers["Version"]}
    requires = [Requirement(r) for r in headers.get_all("Requires-Dist") or []]
    return canonicalize_name(field["Name"]), Version(field["Version"]), requires


def problems(
    folder: Path,
    roots: Iterable[Requirement],
    image: frozenset[str] = GPU_IMAGE,
    limit: int = LIMIT_BYTES,
) -> list[str]:
    """What would break the install there: a project dependency neither carried nor in the
    image, a wheel's requirement unmet or at a version outside its range, two versions of one
    package, a wheel for another Python or platform, or a folder over the size limit."""
    wheels = sorted(folder.glob("*.whl"))
    found: dict[str, Version] = {}
    issues: list[str] = []
    for wheel in wheels:
        name, version, _ = wheel_metadata(wheel)
        if name in found:
            issues.append(f"{name}: two versions ({found[name]} and {version}); keep one")
        found[name] = version
        tags = wheel.stem.split("-")[-3:]
        if not _fits(tags):
            issues.append(f"{wheel.name}: not a wheel for CPython {PYTHON} on x86-64 Linux")
    needed = [(r, "the project") for r in roots if applies(r)]
    needed += [(r, w.name) for w in wheels for r in wheel_metadata(w)[2] if applies(r)]
    for requirement, by in needed:
        name = canonicalize_name(requirement.name)
        if name in found:
            if not requirement.specifier.contains(found[name], prereleases=True):
                issues.append(f"{by} needs {requirement}, the wheelhouse has {found[name]}")
        elif name not in image:
            issues.append(f"{by} needs {requirement}: neither carried nor in the image")
    size = sum(w.stat().st_size for w in wheels)
    if size > limit:
        issues.append(f"the wheels take {size / 2**20:.1f} MiB, over {limit / 2**20:.0f} MiB")
    return issues


def _fits(tags: list[str]) -> bool:
    python, abi, platform = tags
    pythons = set(python.split("."))
    ok_python = bool(pythons & {"py3", "py2.py3", "cp312", "cp3", "py312"}) or any(
        p.startswith("cp3") and abi == "abi3" and int(p[3:] or 0) <= 12 for p in pythons
    )
    ok_platform = platform == "any" or any(
        p.endswith("x86_64") and p.startswith("manylinux") for p in platform.split(".")
    )
    return ok_python and ok_platform


def missing_imports(modules: dict[str, str] = IMPORTS) -> list[str]:
    """Each dependency that does not import here, with the underlying error."""
    missing = []
    for dist, module in modules.items():
        try:
            importlib.import_module(module)
        except Exception as e:  # an import error, or a broken build raising anything
            missing.append(f"{dist} ({module}): {type(e).__name__}: {e}")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("build", "check"):
        sub.add_parser(command).add_argument("folder", type=Path)
    sub.add_parser("imports")
    args = parser.parse_args(argv)
    if args.command == "imports":
        missing = missing_imports()
        for line in missing:
            print(f"error: cannot import {line}; rebuild the wheelhouse "
                  "(python -m analysis.wheelhouse build .whl)")  # fmt: skip
        return 2 if missing else 0
    roots = project_requirements()
    if args.command == "build":
        pins = to_carry(roots)
        print(f"carrying {len(pins)} packages: " + ", ".join(f"{n}=={v}" for n, v in pins.items()))
        download(pins, args.folder)
    found = problems(args.folder, roots)
    for line in found:
        print(f"error: {line}")
    wheels = list(args.folder.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{args.folder}: {len(wheels)} wheels, {size:.1f} MiB, {len(found)} problems")
    return 2 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
