"""`dainctl.profiling`: exclusive section times, nothing recorded outside `recording()`."""

from __future__ import annotations

import threading
import time

from dainctl.profiling import Recorder, recording, section


def test_nested_sections_are_exclusive_and_add_up():
    with recording() as recorder:
        with section("outer"):
            time.sleep(0.02)
            with section("inner"):
                time.sleep(0.05)
            time.sleep(0.02)
        with section("inner"):
            time.sleep(0.01)
    # outer excludes the 50 ms spent in inner; inner sums both of its entries.
    assert 0.035 <= recorder.seconds["outer"] < 0.05 + 0.035
    assert recorder.seconds["inner"] >= 0.06
    assert recorder.total == sum(recorder.seconds.values())


def test_sections_outside_recording_and_on_other_threads_record_nothing():
    with section("before"):
        pass
    with recording() as recorder:
        worker = threading.Thread(target=lambda: section("elsewhere").__enter__())
        worker.start()
        worker.join()
        with section("here"):
            pass
    with section("after"):
        pass
    assert set(recorder.seconds) == {"here"}


def test_an_exception_closes_the_section():
    recorder = Recorder()
    recorder.enter("a")
    recorder.exit()
    try:
        with recording() as active:
            with section("failing"):
                raise ValueError("boom")
    except ValueError:
        pass
    assert set(active.seconds) == {"failing"} and active._stack == []
    assert set(recorder.seconds) == {"a"}
