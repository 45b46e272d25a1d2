"""Extract transformers' common model tests from its PyPI sdist into a git-ignored folder (run by ``make setup``).

The sdist of transformers ships only the top-level ``tests/test_*.py`` files. ``test_modeling_common.py`` also
imports ``tests/exporters/test_export.py``, ``tests/generation/test_utils.py`` and (through
``test_configuration_common.py``) ``tests/utils/test_configuration_utils.py``, which the sdist lacks. This script
writes placeholders for those three modules that say so: the export mixin contributes no tests, the generation mixin
is only used by ``issubclass`` checks (ElasticBERT cannot generate), and ``config_common_kwargs`` is ``None``: the
one config check needing it is left out by the test module.

    python tests/helpers/extract_transformers_tests.py .venv/sdist/transformers-5.23.0.tar.gz .venv/transformers_tests

The package is written as ``<dest>/transformers_common_tests``; put ``<dest>`` on ``sys.path`` to import it.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
from pathlib import Path

PACKAGE = "transformers_common_tests"
FILES = ("test_modeling_common.py", "test_configuration_common.py")
PLACEHOLDERS = {
    "exporters/test_export.py": (
        '"""Placeholder: the transformers sdist lacks tests/exporters/test_export.py (no export tests)."""\n\n\n'
        "class ExportTesterMixin:\n    pass\n"
    ),
    "generation/test_utils.py": (
        '"""Placeholder: the transformers sdist does not ship tests/generation/test_utils.py."""\n\n\n'
        "class GenerationTesterMixin:\n    pass\n"
    ),
    "utils/test_configuration_utils.py": (
        '"""Placeholder: the transformers sdist does not ship tests/utils/test_configuration_utils.py."""\n\n'
        "config_common_kwargs = None\n"
    ),
}


def extract(sdist: Path, dest: Path) -> Path:
    """Write ``dest/transformers_common_tests`` (replacing an older one) and return its path."""
    package = dest / PACKAGE
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = {Path(m.name).relative_to(Path(m.name).parts[0]).as_posix(): m for m in tar.getmembers()}
        for name in FILES:
            member = members.get(f"tests/{name}")
            if member is None:
                raise FileNotFoundError(f"{sdist} has no tests/{name}")
            (package / name).write_bytes(tar.extractfile(member).read())
    for relative, text in PLACEHOLDERS.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        (path.parent / "__init__.py").touch()
    (package / "__init__.py").write_text(f'"""tests/ of {sdist.name} (extracted by {Path(__file__).name})."""\n')
    return package


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sdist", type=Path, help="transformers-<version>.tar.gz")
    parser.add_argument("dest", type=Path, help="folder that receives the transformers_common_tests package")
    args = parser.parse_args(argv)
    print(f"extracted to {extract(args.sdist, args.dest)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
