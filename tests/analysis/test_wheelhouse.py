"""The wheelhouse for the GPU machine: the right packages, and every way its install would break
found here, before a GPU minute is spent."""

import zipfile

from packaging.requirements import Requirement

from analysis import wheelhouse


def make_wheel(folder, name, version, requires=(), tag="py3-none-any", size=0):
    path = folder / f"{name}-{version}-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\r\nName: {name}\r\nVersion: {version}\r\n"
    metadata += "".join(f"Requires-Dist: {r}\r\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", metadata + "\r\nbody\r\n")
        zf.writestr("pad", b"x" * size)
    return path


def test_the_project_carries_what_the_image_lacks_and_nothing_it_has():
    pins = wheelhouse.to_carry(wheelhouse.project_requirements())
    for name in ("optuna", "hydra-core", "omegaconf", "submitit", "wandb", "mup", "plotly"):
        assert name in pins
    assert "sqlalchemy" in pins and "alembic" in pins  # optuna's, not the project's own
    for name in ("torch", "numpy", "matplotlib", "rich", "jinja2", "pandas", "torchvision"):
        assert name not in pins
    assert "protobuf" in pins  # in the image, carried for its version


def test_markers_are_those_of_the_gpu_machine():
    assert wheelhouse.applies(Requirement("a; python_version >= '3.12'"))
    assert not wheelhouse.applies(Requirement("a; python_version < '3.9'"))
    assert not wheelhouse.applies(Requirement("a; sys_platform == 'win32'"))
    assert not wheelhouse.applies(Requirement("a; extra == 'dev'"))


def test_a_complete_wheelhouse_has_no_problems(tmp_path):
    make_wheel(tmp_path, "tool", "1.0", ["dep>=2", "numpy", "win; sys_platform == 'win32'"])
    make_wheel(tmp_path, "dep", "2.1", tag="cp312-cp312-manylinux_2_17_x86_64")
    make_wheel(tmp_path, "abi", "3.0", tag="cp310-abi3-manylinux2014_x86_64")
    image = frozenset({"numpy"})
    assert wheelhouse.problems(tmp_path, [Requirement("tool")], image) == []


def test_every_way_the_install_would_break_is_named(tmp_path):
    make_wheel(tmp_path, "tool", "1.0", ["dep>=3", "absent"])
    make_wheel(tmp_path, "dep", "2.1")
    make_wheel(tmp_path, "twice", "1.0")
    make_wheel(tmp_path, "twice", "2.0")
    make_wheel(tmp_path, "native", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(tmp_path, "mac", "1.0", tag="cp312-cp312-macosx_11_0_arm64", size=2**20)
    found = wheelhouse.problems(
        tmp_path, [Requirement("tool"), Requirement("torch")], frozenset(), 2**20
    )
    assert "tool-1.0-py3-none-any.whl needs dep>=3, the wheelhouse has 2.1" in found
    assert "tool-1.0-py3-none-any.whl needs absent: neither carried nor in the image" in found
    assert "the project needs torch: neither carried nor in the image" in found
    assert "twice: two versions (1.0 and 2.0); keep one" in found
    assert any(p.startswith("native-1.0-cp311") and "CPython 3.12" in p for p in found)
    assert any(p.startswith("mac-1.0-cp312") and "x86-64 Linux" in p for p in found)
    assert any(p.startswith("the wheels take 1.0 MiB") for p in found)
    assert len(found) == 7


def test_an_import_failure_carries_the_underlying_error():
    missing = wheelhouse.missing_imports({"nope": "sweep_no_such_module", "torch": "torch"})
    assert missing == [
        "nope (sweep_no_such_module): ModuleNotFoundError: No module named 'sweep_no_such_module'"
    ]
