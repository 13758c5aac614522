"""Whether this machine has a working NVML (an NVIDIA driver): tests of the no-GPU path skip."""

from __future__ import annotations

import pynvml
import pytest


def nvml_driver_version() -> str | None:
    """The driver version when the real NVML initialises here, else None."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except pynvml.NVMLError:
        return "unknown"
    finally:
        pynvml.nvmlShutdown()


def skip_if_nvml_works() -> None:
    """Skip a test of the real pynvml without a driver on a machine that has one."""
    version = nvml_driver_version()
    if version is not None:
        pytest.skip(
            f"NVML works here (NVIDIA driver {version}): this test needs a machine without one"
        )
