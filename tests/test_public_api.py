from __future__ import annotations

import greenai
import greenai.testing


def test_public_surface_is_small_and_importable() -> None:
    assert sorted(greenai.__all__) == ["GreenAIError", "Measurement", "Tracker", "current", "track"]
    for name in greenai.__all__:
        assert getattr(greenai, name) is not None
    assert sorted(greenai.testing.__all__) == [
        "FakeClock",
        "FakeGPU",
        "Load",
        "RandomKernels",
        "ReplayDevice",
        "Running",
        "SquareWave",
        "Steady",
        "Steps",
    ]


def test_errors_share_one_base() -> None:
    from greenai import errors

    classes = [
        getattr(errors, n) for n in dir(errors) if n.endswith("Error") and n != "GreenAIError"
    ]
    assert classes and all(issubclass(c, greenai.GreenAIError) for c in classes)
