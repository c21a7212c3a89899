"""The image scripts/build-image made, taken apart: what the Dockerfile says.

One recipe, two builders (docker build, and scripts/build-image with no engine):
the engine-free build must come out as the Dockerfile describes it, so both
builders give the same image: Debian's Python of the Dockerfile's release,
exactly the locked distributions and the project, the Dockerfile's entrypoint,
user, environment, port and labels, no test kit, and a console script that runs
as uid 10258 on a read-only root filesystem.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.build_image.build import plan
from scripts.build_image.dockerfile import stages
from tests.tools import REPO_ROOT

from .image import ImageArchive, read, run_in, unpack

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
RUNTIME = stages(DOCKERFILE)[-1]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VENV = "opt/ccm"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def rootfs(image_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("image-rootfs")
    unpack(image_archive, target)
    yield target
    shutil.rmtree(target)  # 200 MB: not kept for pytest's last-three-runs retention


def test_the_image_config_is_the_dockerfiles(image_archive: Path) -> None:
    image = read(image_archive)
    config = image.config["config"]
    version = PYPROJECT["project"]["version"]
    assert image.name == f"docker.io/library/xenorchestra-cloud-controller-manager:{version}"
    assert config["User"] == RUNTIME.all("USER")[-1]
    assert config["User"] == "10258:10258"
    assert config["Entrypoint"] == ["xenorchestra-cloud-controller-manager"]
    assert dict(e.split("=", 1) for e in config["Env"]) == RUNTIME.env()
    assert config["ExposedPorts"] == {f"{p}/tcp": {} for p in RUNTIME.all("EXPOSE")}
    assert config["Labels"] == RUNTIME.labels()
    assert "WorkingDir" not in config and "Cmd" not in config
    assert len(image.manifest["layers"]) == 2  # the Debian base, the venv


def dpkg_version(root: Path, package: str) -> str:
    status = (root / "var/lib/dpkg/status").read_text(encoding="utf-8")
    match = re.search(rf"^Package: {re.escape(package)}\n(?:.+\n)*?Version: (\S+)", status, re.M)
    assert match, f"{package} not installed"
    return match[1]


def test_the_python_is_debians_of_the_dockerfiles_release(rootfs: Path) -> None:
    """Both builders install python3 from the same Debian release (the Dockerfile's
    FROM); the venv runs on exactly that interpreter."""
    recipe = plan(DOCKERFILE)
    suite = recipe.bases[-1].suite
    assert (rootfs / "etc/os-release").read_text().count(f"VERSION_CODENAME={suite}") == 1
    python = (rootfs / "usr/bin/python3").readlink().name
    assert python == "python3.11"
    packaged = dpkg_version(rootfs, "python3.11")
    cfg = dict(
        line.split(" = ", 1) for line in (rootfs / VENV / "pyvenv.cfg").read_text().splitlines()
    )
    assert packaged.startswith(cfg["version"] + "-")
    assert cfg["home"] == "/usr/bin"
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, cfg["version"].split(".")[:2])) >= tuple(map(int, minimum.split(".")))
    # Slim as the Debian images: no manuals, no documentation but copyright files.
    assert not (rootfs / "usr/share/man").exists() or not any(
        (rootfs / "usr/share/man").rglob("*.gz")
    )
    assert not any(
        p.name != "copyright" for p in (rootfs / "usr/share/doc").rglob("*") if p.is_file()
    )


def test_the_venv_holds_exactly_the_lock_and_the_project(rootfs: Path) -> None:
    site = rootfs / VENV / "lib/python3.11/site-packages"
    installed = {}
    for metadata in site.glob("*.dist-info/METADATA"):
        fields = dict(
            line.split(": ", 1) for line in metadata.read_text().splitlines() if ": " in line
        )
        installed[normalize(fields["Name"])] = fields["Version"]
    lock = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pins = dict((normalize(n), v) for n, v in (line.split("==") for line in lock if "==" in line))
    project = {normalize(PYPROJECT["project"]["name"]): PYPROJECT["project"]["version"]}
    # pip and setuptools: what `python3 -m venv` puts in every venv (Debian's ensurepip).
    assert set(installed) - set(pins) - set(project) == {"pip", "setuptools"}
    assert {name: installed.get(name) for name in {**pins, **project}} == {**pins, **project}


def test_no_test_kit_is_in_the_image(rootfs: Path, image_archive: Path) -> None:
    site = rootfs / VENV / "lib/python3.11/site-packages"
    assert (site / "adapters" / "xenorchestra").is_dir()
    # The in-memory adapters ship (an embedder composes on them), the test kits do not.
    assert (site / "adapters" / "memory").is_dir()
    assert not (site / "entrypoints" / "testkits").exists()
    image = read(image_archive)
    for sub in ("fake-xo", "demo"):
        done = run_in(rootfs, image, [sub])
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"xenorchestra-cloud-controller-manager: error: the {sub} sub-command needs the test "
            "kits (entrypoints.testkits), which this installation leaves out (the container image "
            "does): run it from a source install"
        ]


def test_the_console_script_runs_as_10258_on_a_read_only_root(
    rootfs: Path, image_archive: Path
) -> None:
    image: ImageArchive = read(image_archive)
    helped = run_in(rootfs, image, ["--help"])
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: xenorchestra-cloud-controller-manager")
    refused = run_in(rootfs, image, ["--cloud-config=/nowhere.yaml"])
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("xenorchestra-cloud-controller-manager: error: cloud config /nowhere")
    probe = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n"
        "    open('/tmp/x', 'w')\n"
        "except OSError as err:\n"
        "    print(err.strerror)\n"
    )
    done = run_in(rootfs, image, ["-c", probe], entrypoint=["python"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["10258 10258", "Read-only file system"]
