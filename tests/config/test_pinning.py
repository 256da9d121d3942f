"""Pinning the custody key's fingerprint into a settings file edited as text."""

import tomllib
from pathlib import Path

import pytest

from config.pinning import pin

FP, OTHER = "ab" * 32, "cd" * 32


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ('unit = "KZCG"\n', [FP]),
        ('unit = "KZCG"\n[ingest]\nstable_seconds = 0.0\n', [FP]),
        ('[custody]\nsigning_key = "k.pem"  # the key\n[retention]\ngrace_days = 7\n', [FP]),
        (f'[custody]\ntrusted_keys = [\n  "{OTHER}",\n]\n', [OTHER, FP]),
        ("[custody]\ntrusted_keys = []\n", [FP]),
    ],
    ids=["no tables", "other tables", "custody table", "multi-line list", "empty list"],
)
def test_the_pin_lands_in_custody_and_nothing_else_moves(tmp_path: Path, before: str, expected) -> None:
    settings = tmp_path / "evidence.toml"
    settings.write_text(before, encoding="utf-8")
    original = tomllib.loads(before)
    assert pin(settings, tmp_path / "unused", FP) == (settings, True)
    after = tomllib.loads(settings.read_text(encoding="utf-8"))
    assert after["custody"]["trusted_keys"] == expected
    assert {k: v for k, v in after.items() if k != "custody"} == {
        k: v for k, v in original.items() if k != "custody"
    }
    assert pin(settings, tmp_path / "unused", FP) == (settings, False)  # once
    # A line appended later still belongs to the file's last table, as before the pin.
    if "[ingest]" in before:
        with open(settings, "a", encoding="utf-8") as f:
            f.write('after_archive = "delete"\n')
        assert tomllib.loads(settings.read_text(encoding="utf-8"))["ingest"]["after_archive"] == "delete"
