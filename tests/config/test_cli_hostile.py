"""Input an outsider could hand the command line is refused with exit 2, naming it."""

from tests.conftest import run_evidence


def test_an_argument_that_is_not_utf8_exits_2_naming_it(tmp_path) -> None:
    settings = tmp_path / "evidence.toml"
    settings.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    bad = str(tmp_path) + "/\udcffname"  # the bytes b"\xffname", as Python hands them over
    for args in [("case", "open", "\udcff42"), ("verify", bad), ("ingest", "scan", "--station", "ST01", bad)]:
        result = run_evidence("--config", str(settings), *args)
        assert result.returncode == 2, result.stderr
        assert "not valid UTF-8" in result.stderr and "\\xff" in result.stderr
        assert "internal error" not in result.stderr
