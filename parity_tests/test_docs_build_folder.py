"""``rmsnorm docs --build DIR`` empties only a folder it built (its marker file).

mkdocs is replaced by a stand-in that does what ``mkdocs build`` does to its site
folder (empties it, keeping dot files, then writes the site), so each case is fast
and a folder that is wrongly accepted visibly loses its files.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from rmsnorm_core.cli import _cli_docs
from rmsnorm_core.cli._cli import main


@pytest.fixture
def builds(monkeypatch):
    """The site folders the stand-in mkdocs built."""
    done = []

    def mkdocs(site):
        site = str(site)
        for entry in os.listdir(site):  # mkdocs' clean_directory
            if not entry.startswith("."):
                path = os.path.join(site, entry)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        with open(os.path.join(site, "sitemap.xml"), "w") as f:
            f.write("<urlset/>")
        with open(os.path.join(site, "index.html"), "w") as f:
            f.write("<html/>")
        done.append(site)
        return subprocess.CompletedProcess(["mkdocs", "build"], 0, "", "")

    monkeypatch.setattr(_cli_docs, "_mkdocs", mkdocs)
    return done


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_static_site_of_the_users_is_refused_and_kept(tmp_path, capsys, builds):
    """Every site generator writes a sitemap.xml: that is no proof this command built it."""
    site = tmp_path / "blog-site"
    (site / "blog").mkdir(parents=True)
    (site / "sitemap.xml").write_text("<urlset/>")
    (site / "important.txt").write_text("mine")
    (site / "blog" / "post.html").write_text("<p>mine</p>")
    before = _snapshot(tmp_path)
    assert main(["docs", "--build", str(site)]) == 2
    err = capsys.readouterr().err
    assert "--build" in err and "is not a built site of rmsnorm docs" in err
    assert _cli_docs.MARKER in err and len(err.strip().splitlines()) == 1
    assert _snapshot(tmp_path) == before and builds == []


def test_a_folder_it_built_is_built_again(tmp_path, builds):
    site = tmp_path / "site"
    assert main(["docs", "--build", str(site)]) == 0
    assert (site / _cli_docs.MARKER).is_file() and (site / "index.html").is_file()
    (site / "stale.html").write_text("from the previous build")
    assert main(["docs", "--build", str(site)]) == 0
    assert len(builds) == 2 and not (site / "stale.html").exists()
    assert (site / _cli_docs.MARKER).is_file()


def test_an_empty_folder_is_built_into(tmp_path, builds):
    (tmp_path / "empty").mkdir()
    assert main(["docs", "--build", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / _cli_docs.MARKER).is_file() and len(builds) == 1


def test_a_file_is_refused(tmp_path, capsys, builds):
    (tmp_path / "f").write_text("mine")
    assert main(["docs", "--build", str(tmp_path / "f")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "mine" and builds == []
