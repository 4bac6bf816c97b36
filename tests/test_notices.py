from __future__ import annotations

import io
import logging
import threading
import warnings

from greenai.errors import MeasurementWarning
from greenai.notices import said_once, unsaid


def test_each_problem_is_said_once_whichever_channel_says_it_first() -> None:
    out = io.StringIO()
    log = logging.getLogger("greenai")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with said_once(out) as said:
            worker = threading.Thread(target=log.warning, args=("greenai: %s", "sink X failed"))
            worker.start()  # sinks note their problems on their own threads
            worker.join()
            warnings.warn("sink X failed", MeasurementWarning, stacklevel=1)  # the stop warning
            warnings.warn("store full", MeasurementWarning, stacklevel=1)
            warnings.warn("store full", MeasurementWarning, stacklevel=1)
            warnings.warn("not ours", UserWarning, stacklevel=1)
        log.warning("greenai: %s", "after the block")  # the handler is gone
    assert out.getvalue() == "greenai: warning: sink X failed\n"
    assert [str(w.message) for w in shown] == ["store full", "not ours"]
    assert said == {"sink X failed", "store full"}
    notes = ["sink X failed", "run store: store full", "model figures are estimates"]
    assert unsaid(notes, said) == ["model figures are estimates"]
    assert unsaid(notes, set()) == notes


def test_the_otlp_exporters_own_log_lines_are_muted_while_greenai_says_its_own() -> None:
    otel = logging.getLogger("opentelemetry.exporter.otlp.proto.http.metric_exporter")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    keep = Keep()
    otel.addHandler(keep)
    try:
        with said_once(io.StringIO()):
            otel.error("Failed to export metrics batch due to timeout")
        otel.error("after the block")
    finally:
        otel.removeHandler(keep)
    assert seen == ["after the block"]
    assert logging.getLogger("opentelemetry").level == logging.NOTSET  # restored
