"""A run's pack: every file MLflow reads of a run's folder, in one file, written atomically."""

from __future__ import annotations

import json

from gravtrain.tracking.run_pack import PACK_FILE, file_signature, read_run_pack, write_run_pack


def test_the_pack_holds_every_file_but_the_artifacts_byte_for_byte(tmp_path):
    run = tmp_path / "1" / "abc"
    files = {"meta.yaml": "status: 3\n", "params/Training.0.lr": "0.001", "metrics/physics/efficiency":
             "1 0.5 0\n2 0.75 1\n", "tags/gravtrain.stage": "fine-tune", "tags/empty": ""}
    for relative, text in files.items():
        (run / relative).parent.mkdir(parents=True, exist_ok=True)
        (run / relative).write_text(text)
    (run / "artifacts" / "model").mkdir(parents=True)
    (run / "artifacts" / "model" / "model.keras").write_bytes(b"\x00weights")
    path = write_run_pack(run)
    assert path == run / PACK_FILE and not list(run.glob(".*partial"))
    pack = read_run_pack(path.read_bytes())
    assert {relative: data.decode() for relative, (data, _) in pack.items()} == files
    status = (run / "metrics/physics/efficiency").stat()
    assert pack["metrics/physics/efficiency"][1] == file_signature(status.st_size, status.st_mtime)
    write_run_pack(run)  # written again at a later end (a resumed run): the old pack is not packed into it
    assert PACK_FILE not in read_run_pack((run / PACK_FILE).read_bytes())


def test_anything_but_a_pack_of_this_format_reads_as_none():
    assert read_run_pack(b"{not json") is None
    assert read_run_pack(json.dumps({"format": 999, "files": {}}).encode()) is None
    assert read_run_pack(json.dumps({"format": 1, "files": {"a": {"text": 3}}}).encode()) is None


def test_a_pack_that_cannot_be_written_is_a_warning_not_an_error(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.yaml").write_bytes(b"\xff\xfe")  # not text (MLflow never writes such a file)
    assert write_run_pack(run) is None
    assert "could not write the summary file" in caplog.text and not (run / PACK_FILE).exists()
