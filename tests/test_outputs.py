"""The output-folder guard and atomic writes: refuse before the work, lock, never touch a user's file, usual modes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from interference.io import atomic
from interference.io.errors import InterferenceError
from interference.io.outputs import MARKER, check_file_target, check_folder_target, claim_output


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_claim_creates_the_folder_and_records_what_it_writes(tmp_path):
    out = tmp_path / "a" / "b"
    with claim_output(out, "demo") as folder:
        folder.write_text("results.json", "{}")
        with folder.directory("model") as tmp:
            (tmp / "weights.bin").write_bytes(b"x")
    marker = json.loads((out / MARKER).read_text())
    assert marker == {"kind": "demo", "files": ["model/weights.bin", "results.json"]}


def test_a_file_a_file_parent_and_an_unwritable_folder_are_refused(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InterferenceError, match="is a file, not a folder"):
        with claim_output(afile, "demo"):
            pass
    with pytest.raises(InterferenceError, match="afile is a file"):
        with claim_output(afile / "sub" / "deeper", "demo"):
            pass
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root may write anywhere: make the check see what another user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    with pytest.raises(InterferenceError, match="not writable"):
        with claim_output(locked / "out", "demo"):
            pass
    assert afile.read_text() == "x" and not (locked / "out").exists()


def test_file_and_folder_targets(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InterferenceError, match="afile is a file"):
        check_file_target(afile / "k.jsonl")
    with pytest.raises(InterferenceError, match="is a folder, not a file"):
        check_file_target(tmp_path)
    with pytest.raises(InterferenceError, match="is a file, not a folder"):
        check_folder_target(afile, "cache folder")
    check_file_target(tmp_path / "new" / "k.jsonl")
    check_folder_target(tmp_path / "new" / "cache")
    assert not (tmp_path / "new").exists()  # checks create nothing


def test_user_files_are_refused_and_never_deleted_even_with_overwrite(tmp_path):
    out = tmp_path / "U"
    (out / "model").mkdir(parents=True)
    (out / "model" / "notes.txt").write_text("mine")
    (out / "checkpoint-final").mkdir()
    (out / "checkpoint-final" / "best.bin").write_text("mine")
    with pytest.raises(InterferenceError, match=r"holds files interference did not write \(checkpoint-final/best.bin, "
                                                r"model/notes.txt\).*--overwrite \(they are kept\)"):
        with claim_output(out, "train"):
            raise AssertionError("the work must not start")
    # --overwrite: a run that would replace model/ is still refused before the work
    with pytest.raises(InterferenceError, match="notes.txt was not written by interference"):
        with claim_output(out, "train", overwrite=True, writes=["model", "checkpoint-*"]):
            raise AssertionError("the work must not start")
    # --overwrite and writes elsewhere: allowed, and the user's files are kept
    with claim_output(out, "train", overwrite=True) as folder:
        folder.write_text("metrics.json", "{}")
        with pytest.raises(InterferenceError, match="would be replaced"):
            with folder.directory("model"):
                pass
        with pytest.raises(InterferenceError, match="would be replaced"):
            folder.remove("checkpoint-final")
    assert (out / "model" / "notes.txt").read_text() == "mine"
    assert (out / "checkpoint-final" / "best.bin").read_text() == "mine"


def test_an_earlier_run_of_the_same_command_is_replaced_but_another_commands_is_refused(tmp_path):
    out = tmp_path / "r"
    with claim_output(out, "analyses.ffn") as folder:
        folder.write_text("results.json", "1")
        folder.write_text("old.json", "1")
    with claim_output(out, "analyses.ffn") as folder:
        assert folder.earlier == {"results.json", "old.json"}
        folder.write_text("results.json", "2")
        assert folder.remove_earlier() == ["old.json"]
    assert (out / "results.json").read_text() == "2" and not (out / "old.json").exists()
    with pytest.raises(InterferenceError, match="holds a run of analyses.ffn"):
        with claim_output(out, "analyses.overlap"):
            pass
    with pytest.raises(InterferenceError, match="cannot resume"):
        with claim_output(out, "train", resume=True, overwrite=True):
            pass
    with claim_output(out, "analyses.overlap", overwrite=True) as folder:
        folder.remove("results.json")  # the toolkit wrote it, so --overwrite may replace or remove it
    assert not (out / "results.json").exists()


def test_a_file_added_inside_a_toolkit_folder_is_foreign(tmp_path):
    out = tmp_path / "o"
    with claim_output(out, "train") as folder:
        with folder.directory("model") as tmp:
            (tmp / "w.bin").write_text("w")
    (out / "model" / "notes.txt").write_text("mine")
    with pytest.raises(InterferenceError, match="model/notes.txt"):
        with claim_output(out, "train"):
            pass


def test_a_subfolder_claimed_by_its_own_run_is_the_toolkit_s_even_when_a_kill_kept_it_from_the_marker(tmp_path):
    out = tmp_path / "suite"
    with claim_output(out, "analyses.suite") as folder:
        folder.write_text("index.html", "<p>")
    # the suite was killed while its parts ran: their folders hold their own markers, the suite's lists none of them
    for part in ("forgetting", ".workers/overlap-0"):
        with claim_output(out / part, f"analyses.{part.rsplit('-', 1)[0]}") as inner:
            inner.write_text("results.json", "{}")
    (out / ".workers" / "overlap-0" / f".report.html.abc{atomic.TMP_SUFFIX}").write_text("partial")
    with claim_output(out, "analyses.suite") as folder:
        assert folder.foreign() == [] and folder.foreign("forgetting/results.json") == []
        assert (out / ".workers" / "overlap-0" / f".report.html.abc{atomic.TMP_SUFFIX}").exists()  # its run's to clear
        folder.remove(".workers/overlap-0")  # a killed worker's report, redone by this run
        assert not (out / ".workers" / "overlap-0").exists()
    (out / "forgetting" / "notes.txt").write_text("mine")  # what the part's marker does not list is still a user's
    with pytest.raises(InterferenceError, match="forgetting/notes.txt"):
        with claim_output(out, "analyses.suite"):
            pass
    (out / "forgetting" / "notes.txt").unlink()
    (out / "forgetting" / MARKER).write_text("not json")  # a damaged marker vouches for nothing
    with pytest.raises(InterferenceError, match="forgetting/"):
        with claim_output(out, "analyses.suite"):
            pass
    assert (out / "forgetting" / "results.json").exists()


def test_a_folder_is_replaced_by_one_with_fewer_files_and_the_marker_follows(tmp_path):
    out = tmp_path / "o"
    with claim_output(out, "train") as folder:
        with folder.directory("model") as tmp:
            (tmp / "a.bin").write_text("a")
            (tmp / "b.bin").write_text("b")
        with folder.directory("model") as tmp:
            (tmp / "a.bin").write_text("a2")
    assert sorted(p.name for p in (out / "model").iterdir()) == ["a.bin"]
    assert json.loads((out / MARKER).read_text())["files"] == ["model/a.bin"]
    with claim_output(out, "train") as folder:
        assert folder.foreign() == []


def test_a_second_run_is_refused_while_the_first_holds_the_lock_and_released_after(tmp_path):
    out = tmp_path / "o"
    with claim_output(out, "train"):
        with pytest.raises(InterferenceError, match=f"another run is writing to {out}"):
            with claim_output(out, "train"):
                pass
        child = os.fork()  # another process (the modules are already imported: no second start-up)
        if child == 0:
            try:
                with claim_output(out, "train"):
                    os._exit(1)
            except InterferenceError as err:
                os._exit(0 if str(err) == f"another run is writing to {out}" else 2)
            os._exit(3)
        assert os.waitpid(child, 0)[1] == 0
    with claim_output(out, "train"):
        pass  # released


def test_leftover_temporaries_of_a_killed_run_are_removed_and_not_counted_as_foreign(tmp_path):
    out = tmp_path / "o"
    with claim_output(out, "train") as folder:
        folder.write_text("metrics.json", "{}")
    (out / f".train_state.pt.abc123{atomic.TMP_SUFFIX}").write_bytes(b"partial")
    (out / f".model.xyz{atomic.TMP_SUFFIX}").mkdir()
    (out / f".model.xyz{atomic.TMP_SUFFIX}" / "w.bin").write_bytes(b"partial")
    with claim_output(out, "train") as folder:
        assert sorted(p.name for p in out.iterdir()) == [MARKER, "metrics.json"]
        staging = out / f".checkpoint-1.staging{atomic.TMP_SUFFIX}"
        staging.mkdir()
        (staging / "w.bin").write_bytes(b"being written")
        assert folder.foreign() == []  # a write under way is not a user's file


def test_atomic_writes_get_the_usual_modes_and_leave_nothing_on_failure(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic.write_text(tmp_path / "a.txt", "x")
        assert _mode(path) == 0o644
        with atomic.directory(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
            atomic.write_text(tmp / "g", "z")
        assert _mode(tmp_path / "d") == 0o755
        assert _mode(tmp_path / "d" / "f") == 0o644 and _mode(tmp_path / "d" / "g") == 0o644
        os.umask(0o077)
        assert _mode(atomic.write_text(tmp_path / "private.txt", "x")) == 0o600  # the umask is respected
    finally:
        os.umask(old)

    def broken(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_with(tmp_path / "b.txt", broken)
    with pytest.raises(RuntimeError):
        with atomic.directory(tmp_path / "e") as tmp:
            (tmp / "f").write_text("partial")
            raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d", "private.txt"]


def test_a_big_foreign_folder_is_refused_after_a_few_files(tmp_path):
    for i in range(6):
        (tmp_path / f"mine-{i}.txt").write_text("mine")
    with pytest.raises(InterferenceError, match=r"\(mine-0.txt, mine-1.txt, mine-2.txt and more\)"):
        with claim_output(tmp_path, "demo"):
            pass
    assert not (tmp_path / MARKER).exists()


def test_json_text_gives_the_data_back_with_scalar_lists_and_records_on_one_line():
    data = {"seeds": [0, 1, 2], "facts": [{"subject": "Bergadena", "forgotten": True, "p": 0.25}, {"x": [1, 2]}],
            "nested": {"a": {"b": None}}, 3: (1, 2), "empty": {}, "rows": [[1, 2], []], "nan": float("nan")}
    text = atomic.json_text(data)
    assert json.loads(text) == {**json.loads(json.dumps(data)), "nan": None}  # NaN as null, keys as json writes them
    lines = text.splitlines()
    assert '  "seeds": [0, 1, 2],' in lines
    assert '    {"subject": "Bergadena", "forgotten": true, "p": 0.25},' in lines  # a record is one row
    assert '  "nested": {' in lines and '      "b": null' in lines  # an object that is no record stays indented
    assert '  "3": [1, 2],' in lines and text.endswith("}\n")
    with pytest.raises(ValueError):
        atomic.json_text([float("inf")], allow_nan=False)
