"""Prove a `sam build` output holds native code for the target architecture only.

Reads the ELF header of every shared object under each built function's code and layers
(e_machine, bytes 18-19: 62 = x86-64, 183 = AArch64) and checks that:
- every ELF file is for the target architecture (one wheel for the wrong platform is a
  function that fails at import on Lambda);
- the processor holds native builds of numpy, scipy and libsndfile (soundfile's bundled
  library), so nothing was silently replaced by a pure-Python fallback or left out.

    python scripts/check_elf_arch.py .aws-sam/build arm64
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections import Counter
from pathlib import Path

E_MACHINE = {62: "x86_64", 183: "arm64"}
ELF_MAGIC = b"\x7fELF"
# Components the processor must hold natively, by where their files live in the layer.
REQUIRED = {
    "numpy": lambda p: "numpy/" in p or "numpy.libs/" in p,
    "scipy": lambda p: "scipy/" in p or "scipy.libs/" in p,
    "libsndfile": lambda p: p.rsplit("/", 1)[-1].startswith("libsndfile"),
}


def elf_machine(path: Path) -> str | None:
    """The architecture an ELF file is built for, or None for a file that is not ELF."""
    with path.open("rb") as stream:
        header = stream.read(20)
    if len(header) < 20 or not header.startswith(ELF_MAGIC):
        return None
    byte_order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(byte_order + "H", header[18:20])
    return E_MACHINE.get(machine, f"e_machine {machine}")


def native_files(directory: Path) -> dict[str, str]:
    """Relative path -> architecture of every ELF file under ``directory``."""
    found = {}
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink() and (".so" in path.name):
            machine = elf_machine(path)
            if machine is not None:
                found[path.relative_to(directory).as_posix()] = machine
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("architecture", choices=sorted(set(E_MACHINE.values())))
    parser.add_argument("--processor", default="ProcessorFunction")
    parser.add_argument("--audio-layer", default="AudioLayer")
    args = parser.parse_args(argv)

    problems = []
    for directory in sorted(p for p in args.build_dir.iterdir() if p.is_dir()):
        files = native_files(directory)
        wrong = {path: arch for path, arch in files.items() if arch != args.architecture}
        counts = Counter(files.values())
        print(f"{directory.name}: {len(files)} native files {dict(counts) or ''}".rstrip())
        problems += [f"{directory.name}/{path}: {arch}" for path, arch in sorted(wrong.items())]

    audio = native_files(args.build_dir / args.audio_layer / "python")
    for component, belongs in REQUIRED.items():
        mine = [p for p, arch in audio.items() if belongs(p) and arch == args.architecture]
        if not mine:
            problems.append(f"{args.audio_layer}: no {args.architecture} build of {component}")
        else:
            in_package = [p for p in mine if ".libs/" not in p] or mine
            example = min(in_package, key=len)
            print(f"{component}: {len(mine)} {args.architecture} files, e.g. {example}")
    for problem in problems:
        print(f"wrong architecture: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
