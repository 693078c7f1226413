"""PEP 517 build backend of shared-infra-event-bus: maturin's, after checking that Rust is there.

pip uses it to build from the sdist or a checkout, where no prebuilt wheel fits. Without cargo,
maturin would stop on a failed `cargo metadata`; this says what is missing and what to do.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import maturin

RUST = "1.88"


def _require_rust() -> None:
    cargo = os.environ.get("CARGO", "cargo")
    if shutil.which(cargo) is None:
        raise RuntimeError(
            f"shared-infra-event-bus: building from source needs Rust >= {RUST} "
            f"({cargo!r} is not on PATH; install it from https://rustup.rs). Prebuilt wheels "
            "exist for Linux x86_64 and aarch64, glibc (manylinux_2_17) and musl "
            "(musllinux_1_2), CPython >= 3.10: pip picks one when its platform fits "
            "(pip install --only-binary :all: shared-infra-event-bus)."
        )


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return list(maturin.get_requires_for_build_wheel(config_settings))


def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    return list(maturin.get_requires_for_build_sdist(config_settings))


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:
    _require_rust()
    return str(maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings))


def build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    _require_rust()
    return str(maturin.build_wheel(wheel_directory, config_settings, metadata_directory))


def build_editable(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    _require_rust()
    return str(maturin.build_editable(wheel_directory, config_settings, metadata_directory))


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    _require_rust()
    return str(maturin.build_sdist(sdist_directory, config_settings))
