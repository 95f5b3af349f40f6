"""The wheel carries metadata.yml: it lives at the repository's root, where people edit it
and the layout promises it, and the build copies it into the package beside the read side
that reads it (``ledger/readside/app.py:default_metadata_path``). Everything else about
the package is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

METADATA = "metadata.yml"
PACKAGED = Path("ledger", "readside", METADATA)


class BuildWithMetadata(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the root's file itself
            self.copy_file(METADATA, str(Path(self.build_lib, PACKAGED)))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib, PACKAGED))]


setup(cmdclass={"build_py": BuildWithMetadata})
