"""The demo's hardening section: every corrupt copy refused, intact files read back, fast."""

from __future__ import annotations

import time

import pytest

from qifsim.events.io.selfcheck import FORMATS, hardening_section

pytest.importorskip("aedat")


def test_hardening_section_refuses_every_corrupt_copy(tmp_path):
    lines: list[str] = []
    start = time.perf_counter()
    result = hardening_section(tmp_path, echo=lines.append)
    assert time.perf_counter() - start < 20  # < 5 s on a quiet machine; loose for CI load
    assert result["all_refused"] and set(result["formats"]) == set(FORMATS)
    for fmt, row in result["formats"].items():
        assert row["intact"]
        for case in ("truncated", "outside", "header"):
            message = row[case]
            if message is None:  # AEDAT 2.0: 7-bit coordinates cannot leave the sensor
                assert (fmt, case) == ("aedat2", "outside")
                continue
            assert message.startswith(f"{fmt} file ") and " at byte " in message, message
            assert "\n" not in message
    assert "netx" in result and len(lines) == 1 + 4 * len(FORMATS) + 1
