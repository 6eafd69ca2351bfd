"""The repository snapshot an agent works on: path rules, reads and writes, and what counts as a change."""

from __future__ import annotations

import contextlib

import pytest

from libs.agent.repository import MAX_FILE_BYTES, Changes, PathError, Repository, normalize

BASE = {"src/app.py": "def main():\n    return 1\n", "README.md": "# demo\n"}


# --- normalize --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("src/app.py", "src/app.py"),
        ("./src/app.py", "src/app.py"),
        ("src//app.py", "src/app.py"),
        ("src/lib/../app.py", "src/app.py"),
        ("src\\app.py", "src/app.py"),
        ("  src/app.py  ", "src/app.py"),
    ],
)
def test_normalize_gives_the_clean_relative_path(given: str, expected: str) -> None:
    assert normalize(given) == expected


@pytest.mark.parametrize("path", ["/etc/passwd", "//etc/passwd", "\\etc\\passwd", "/src/app.py"])
def test_normalize_refuses_absolute_paths(path: str) -> None:
    with pytest.raises(PathError, match="outside the repository"):
        normalize(path)


@pytest.mark.parametrize("path", ["..", "../secrets.txt", "src/../../secrets.txt", "..\\x.py", "a/b/../../../c"])
def test_normalize_refuses_paths_escaping_the_repository(path: str) -> None:
    with pytest.raises(PathError, match="outside the repository"):
        normalize(path)


@pytest.mark.parametrize("path", [".git/config", "src/.GIT/hooks/pre-commit", ".git", "a/../.git/HEAD"])
def test_normalize_refuses_gits_own_folder(path: str) -> None:
    with pytest.raises(PathError, match=r"inside '\.git'"):
        normalize(path)


@pytest.mark.parametrize("path", [".", "./", "src/.."])
def test_normalize_refuses_the_repository_root_itself(path: str) -> None:
    with pytest.raises(PathError):
        normalize(path)


@pytest.mark.parametrize("path", ["", "   ", "src/a\x00.py", "\x00"])
def test_normalize_refuses_empty_and_nul_paths(path: str) -> None:
    with pytest.raises(PathError, match="non-empty string"):
        normalize(path)


def test_normalize_refuses_a_path_that_is_not_a_string() -> None:
    with pytest.raises(PathError):
        normalize(42)  # type: ignore[arg-type]


# --- reading and writing ----------------------------------------------------------------------


def test_a_fresh_repository_shows_its_base_files_and_has_no_changes() -> None:
    repo = Repository(BASE)

    assert repo.paths() == ["README.md", "src/app.py"]
    assert repo.read("src/app.py") == BASE["src/app.py"]
    assert repo.read("./src/app.py") == BASE["src/app.py"]
    assert repo.read("missing.py") is None
    assert repo.current() == BASE
    assert repo.changes() == Changes(files={}, deleted=[])


def test_the_repository_keeps_its_own_copy_of_the_files() -> None:
    files = dict(BASE)
    repo = Repository(files)
    files["src/app.py"] = "changed outside"

    assert repo.read("src/app.py") == BASE["src/app.py"]


def test_write_returns_the_normalized_path_and_is_read_back() -> None:
    repo = Repository(BASE)

    assert repo.write("./src/new.py", "x = 1\n") == "src/new.py"
    assert repo.read("src/new.py") == "x = 1\n"
    assert repo.paths() == ["README.md", "src/app.py", "src/new.py"]
    assert repo.current()["src/new.py"] == "x = 1\n"


def test_write_refuses_paths_outside_the_repository() -> None:
    repo = Repository(BASE)

    with pytest.raises(PathError):
        repo.write("../escape.py", "x")
    assert repo.changes() == Changes(files={}, deleted=[])


def test_changes_hold_new_and_modified_files_sorted_by_path() -> None:
    repo = Repository(BASE)
    repo.write("src/app.py", "def main():\n    return 2\n")
    repo.write("docs/new.md", "new\n")

    changes = repo.changes()

    assert changes.files == {"docs/new.md": "new\n", "src/app.py": "def main():\n    return 2\n"}
    assert list(changes.files) == ["docs/new.md", "src/app.py"]
    assert changes.deleted == []


def test_a_write_that_restores_the_base_content_is_not_a_change() -> None:
    repo = Repository(BASE)
    repo.write("src/app.py", "something else\n")
    repo.write("src/app.py", BASE["src/app.py"])

    assert repo.changes() == Changes(files={}, deleted=[])
    assert repo.read("src/app.py") == BASE["src/app.py"]


def test_delete_of_a_base_file_is_a_deletion() -> None:
    repo = Repository(BASE)

    assert repo.delete("./README.md") == "README.md"

    assert repo.read("README.md") is None
    assert repo.paths() == ["src/app.py"]
    assert "README.md" not in repo.current()
    assert repo.changes() == Changes(files={}, deleted=["README.md"])


def test_delete_of_a_modified_base_file_drops_the_write_too() -> None:
    repo = Repository(BASE)
    repo.write("src/app.py", "changed\n")
    repo.delete("src/app.py")

    assert repo.read("src/app.py") is None
    assert repo.changes() == Changes(files={}, deleted=["src/app.py"])


def test_deleting_a_file_the_agent_created_leaves_no_deletion() -> None:
    repo = Repository(BASE)
    repo.write("scratch.txt", "temp\n")
    repo.delete("scratch.txt")

    assert repo.read("scratch.txt") is None
    assert repo.paths() == ["README.md", "src/app.py"]
    assert repo.changes() == Changes(files={}, deleted=[])


def test_writing_a_deleted_base_file_again_undoes_the_deletion() -> None:
    repo = Repository(BASE)
    repo.delete("README.md")
    repo.write("README.md", "# rewritten\n")

    assert repo.paths() == ["README.md", "src/app.py"]
    assert repo.changes() == Changes(files={"README.md": "# rewritten\n"}, deleted=[])


def test_restoring_a_deleted_base_file_with_its_content_is_no_change() -> None:
    repo = Repository(BASE)
    repo.delete("README.md")
    repo.write("README.md", BASE["README.md"])

    assert repo.changes() == Changes(files={}, deleted=[])


def test_deleting_a_missing_file_is_refused() -> None:
    repo = Repository(BASE)

    with pytest.raises(PathError, match=r"'nope\.py' does not exist"):
        repo.delete("nope.py")


def test_deleting_a_file_twice_is_refused_the_second_time() -> None:
    repo = Repository(BASE)
    repo.delete("README.md")

    with pytest.raises(PathError, match="does not exist"):
        repo.delete("README.md")
    assert repo.changes().deleted == ["README.md"]


def test_nul_in_written_content_becomes_the_replacement_character() -> None:
    repo = Repository({})
    repo.write("data.txt", "a\x00b\x00")

    assert repo.read("data.txt") == "a\ufffdb\ufffd"
    assert repo.changes().files == {"data.txt": "a\ufffdb\ufffd"}


def test_a_file_of_exactly_the_size_limit_is_accepted() -> None:
    repo = Repository({})
    repo.write("big.txt", "x" * MAX_FILE_BYTES)

    assert len(repo.read("big.txt") or "") == MAX_FILE_BYTES


def test_a_file_over_the_size_limit_is_refused_and_not_written() -> None:
    repo = Repository({})

    with pytest.raises(PathError, match=f"larger than {MAX_FILE_BYTES} bytes"):
        repo.write("big.txt", "x" * (MAX_FILE_BYTES + 1))
    assert repo.read("big.txt") is None
    assert repo.changes() == Changes(files={}, deleted=[])


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    repo = Repository({})
    too_big = "é" * (MAX_FILE_BYTES // 2 + 1)  # two bytes each

    with pytest.raises(PathError):
        repo.write("big.txt", too_big)


def test_no_stored_file_is_larger_than_the_size_limit_even_after_nul_replacement() -> None:
    # U+0000 is one byte, its replacement U+FFFD three: the limit must hold for what is stored.
    repo = Repository({})

    with contextlib.suppress(PathError):
        repo.write("blob.txt", "\x00" * MAX_FILE_BYTES)

    stored = repo.read("blob.txt")
    stored_bytes = None if stored is None else len(stored.encode())
    assert stored_bytes is None or stored_bytes <= MAX_FILE_BYTES
