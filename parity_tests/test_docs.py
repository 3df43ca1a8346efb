"""The documentation: the site builds with warnings as errors, every public name
has a reference entry, and every guide's code runs, top to bottom.

A guide becomes one script: ```python blocks run in order in one
interpreter; a ```python block with ``title="name.py"`` is written to that
file instead (a script a later shell block runs); ```bash blocks run through
the shell at that point, in the same folder (a fresh temporary one). Blocks
fenced as ```text are output, never run.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
PUBLIC = {
    "rmsnorm_core": "core",
    "rmsnorm_torch": "torch",
    "rmsnorm_flax": "flax",
    "rmsnorm_flax.linen": "flax",
    "rmsnorm_flax.nnx": "flax",
    **{f"rmsnorm_core.{sub}": "core" for sub in ("backends", "testing", "reference", "rules")},
}


pytestmark = pytest.mark.xdist_group("docs-site")  # one worker: the site is built once


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_every_public_name_has_a_reference_entry(site):
    ids = {}
    for page in set(PUBLIC.values()) | {"spec"}:
        html = (site / "reference" / page / "index.html").read_text()
        ids[page] = set(re.findall(r'id="([\w.]+)"', html))
    for module, page in PUBLIC.items():
        names = importlib.import_module(module).__all__
        found = ids[page] | (ids["spec"] if module == "rmsnorm_core" else set())
        missing = [n for n in names if f"{module}.{n}" not in found]
        assert not missing, f"{module}: no reference entry for {missing}"


@pytest.fixture(scope="module")
def api():
    """``api("rmsnorm_flax.linen")``: that module as mkdocstrings reads it (griffe,
    Google docstrings), aliases resolved to their targets."""
    griffe = pytest.importorskip("griffe")
    loader = griffe.GriffeLoader(docstring_parser="google")
    packages = {p: loader.load(p) for p in ("rmsnorm_core", "rmsnorm_torch", "rmsnorm_flax")}
    loader.resolve_aliases(implicit=False, external=False)

    def module(path: str):
        top, _, rest = path.partition(".")
        return packages[top][rest] if rest else packages[top]

    return module


def _target(obj):
    return obj.final_target if obj.is_alias else obj


def _documented_names(*objects) -> set[str]:
    """The names the objects' docstrings list under Args / Attributes (``*`` stripped)."""
    names: set[str] = set()
    for obj in objects:
        for section in obj.docstring.parse("google") if obj.docstring else ():
            if section.kind.value in ("parameters", "attributes", "other parameters"):
                names.update(item.name.lstrip("*") for item in section.value)
    return names


def test_every_public_name_and_member_has_documentation(api):
    """A public name, or a public member of a public class, with no text of its own
    (and, for a member, no entry in its class's or bases' Args / Attributes) is an
    error: mkdocstrings would render a bare heading."""
    bare = []
    for module in PUBLIC:
        tree = api(module)
        for name in importlib.import_module(module).__all__:
            obj = _target(tree[name])
            if not (obj.docstring and obj.docstring.value.strip()):
                bare.append(f"{module}.{name}")
            if not obj.is_class:
                continue
            listed = _documented_names(obj, *obj.mro())
            for key, member in obj.all_members.items():
                member = _target(member)
                if key.startswith("_") or key in listed:
                    continue
                if not (member.docstring and member.docstring.value.strip()):
                    bare.append(f"{module}.{name}.{key}")
    assert not bare, f"{len(bare)} public names without documentation: {bare}"


PORTING_API = [
    *(f"rmsnorm_torch.{n}" for n in ("rms_norm", "rms_norm_residual", "RMSNorm")),
    *(f"rmsnorm_torch.{n}" for n in ("layers_from_module", "layers_from_state_dict")),
    "rmsnorm_torch.load_into_module",
    *(f"rmsnorm_flax.{n}" for n in ("rms_norm", "rms_norm_residual", "linen.RMSNorm")),
    *(f"rmsnorm_flax.{n}" for n in ("nnx.RMSNorm", "layers_from_linen", "layers_from_nnx")),
    *(f"rmsnorm_flax.{n}" for n in ("load_into_linen", "load_into_nnx")),
]


@pytest.mark.parametrize("path", PORTING_API)
def test_the_porting_api_documents_every_parameter(api, path):
    """What the JAX-to-torch guide calls has an Args entry for every parameter (for a
    class: of the constructor it writes, else of its annotated fields, as linen's)."""
    module, _, name = path.rpartition(".")
    obj = _target(api(module)[name])
    if obj.is_class and "__init__" in obj.members:
        params = [p.name for p in obj.members["__init__"].parameters]
    elif obj.is_class:
        params = [k for k, m in obj.members.items() if m.is_attribute and m.annotation]
    else:
        params = [p.name for p in obj.parameters]
    assert params, f"{path}: no parameters found: the check would check nothing"
    listed = _documented_names(obj, *(obj.mro() if obj.is_class else ()))
    missing = [p for p in params if p not in ("self", "cls") and p not in listed]
    assert not missing, f"{path}: no Args entry for {missing}"


def test_docstring_roles_become_links_or_code(site):
    """``:func:`x``` is Sphinx, not Markdown: the build's Griffe extension
    (mkdocs_roles.py) turns it into a link (checked by --strict) or plain code."""
    for page in (site / "reference").glob("*/index.html"):
        html = page.read_text()
        left = re.findall(r".{0,40}:(?:func|class|meth|data|mod|attr|exc):<code>.{0,20}", html)
        assert not left, f"{page.parent.name}: {left[:3]}"
    core = (site / "reference" / "core" / "index.html").read_text()
    assert re.search(r'href="#rmsnorm_core.compare"[^>]*><code>compare</code>', core)


def test_reference_text_never_sends_the_reader_to_private_code(site):
    """A rendered docstring that says "see rmsnorm_core._x" or "the module docstring"
    points at text the site does not show (the type hints' hover titles may name
    private modules: that is where the names live)."""
    for page in [*(site / "reference").glob("*/index.html"), *(site / "guides").glob("*/*.html")]:
        text = re.sub(r'(title|href|id)="[^"]*"', "", page.read_text())
        bad = re.findall(r".{0,60}(?:rmsnorm_\w+\._[a-z]\w*|module docstring).{0,20}", text)
        assert not bad, f"{page.parent.name}: {bad[:3]}"


def test_generated_pages_hold_every_preset_and_command(site):
    from rmsnorm_core import RMSNormSpec

    presets = (site / "reference" / "presets" / "index.html").read_text()
    for name in RMSNormSpec.presets():
        assert f"<code>{name}</code>" in presets, name
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("presets", "spec", "verify", "bench", "infer", "convert", "export"):
        assert f'id="rmsnorm-{command}"' in cli, command


def _script(guide: Path) -> str:
    """The guide as one Python script (module docstring)."""
    lines = ["import subprocess, sys, os", "os.environ['PATH'] = os.path.dirname(sys.executable) "
             "+ os.pathsep + os.environ['PATH']"]  # fmt: skip
    for lang, attrs, body in FENCE.findall(guide.read_text()):
        title = re.search(r'title="([^"]+)"', attrs)
        if lang == "python" and title:
            lines.append(f"open({title.group(1)!r}, 'w').write({body!r})")
        elif lang == "python":
            lines.append(body)
        elif lang == "bash":
            lines.append(f"subprocess.run({body!r}, shell=True, check=True)")
        elif lang != "text":
            raise AssertionError(f"{guide.name}: a ```{lang} block: use python, bash or text")
    return "\n".join(lines)


@pytest.mark.parametrize("guide", GUIDES, ids=[g.stem for g in GUIDES])
def test_guide_runs_top_to_bottom(guide, tmp_path):
    (tmp_path / "guide.py").write_text(_script(guide))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "TRITON_"))}
    done = subprocess.run(
        [sys.executable, "guide.py"], cwd=tmp_path, capture_output=True, text=True,
        env=env, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, f"{guide.name}:\n{done.stdout[-2000:]}\n{done.stderr[:6000]}"


def test_readme_links_every_guide():
    readme = (ROOT / "README.md").read_text()
    for guide in GUIDES:
        assert f"docs/guides/{guide.name}" in readme, guide.name
    nav = json.dumps((ROOT / "mkdocs.yml").read_text())
    assert all(f"guides/{g.name}" in nav for g in GUIDES)
    from rmsnorm_core.cli._cli import build_parser

    # pip users have no mkdocs and no docs/ path to open: the help names `rmsnorm docs`
    assert "Documentation: `rmsnorm docs`" in build_parser().format_help()


def _text(html: str) -> str:
    """A page's text outside code: what a reader sees as prose."""
    html = re.sub(r"<(pre|code|script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", "", html)


def test_the_site_needs_no_network_and_shows_no_raw_markup(site):
    pages = list(site.rglob("*.html"))
    for page in pages:
        html = page.read_text()
        remote = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="(?:https?:)?//[^"]*"', html)
        assert not remote, f"{page.relative_to(site)}: {remote[:2]}"  # no CDN, no web fonts
        text = _text(html)
        raw = re.findall(r".{0,30}(?:\\\(|\\\[|\$\$|``).{0,30}", text)
        assert not raw, f"{page.relative_to(site)}: raw LaTeX or reST: {raw[:3]}"
        escaped = [t for t in re.findall(r"<mtext[^>]*>([^<]*)</mtext>", html) if "\\" in t]
        assert not escaped, f"{page.relative_to(site)}: a backslash shown in math text: {escaped}"
    spec = (site / "reference" / "spec" / "index.html").read_text()
    assert spec.count("<math") >= 5  # the formula, rendered at build time as MathML


def test_the_reference_shows_no_dunder_or_private_names(site):
    for page in (site / "reference").glob("*/index.html"):
        ids = re.findall(r'id="(rmsnorm_[\w.]+)"', page.read_text())  # the objects' entries
        # __version__ is public (in __all__); methods and attributes with _ are not
        bad = [i for i in ids if re.search(r"\._", i) and not i.endswith(".__version__")]
        assert not bad, f"{page.parent.name}: {bad[:5]}"  # __init__, __jit_unused_properties__


def test_cli_help_has_no_rest_markup_or_private_files():
    from rmsnorm_core.cli._cli import build_parser

    parser = build_parser(with_backends=True)
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in [("rmsnorm", parser), *sub.choices.items()]:
        text = command.format_help()
        assert "``" not in text and not re.search(r"\b_\w+\.py\b", text), name
    assert "rmsnorm docs" in parser.format_help()  # where pip users find the docs


EXTRAS = {"torch": "torch", "jax": "flax", "flax": "flax", "onnxruntime": "onnx",
          "onnx": "onnx", "transformers": "hf", "orbax": "orbax"}  # fmt: skip


@pytest.mark.parametrize("guide", GUIDES, ids=[g.stem for g in GUIDES])
def test_each_guide_names_the_extras_it_needs(guide):
    text = guide.read_text()
    line = re.search(r"^Install: (.*?)(?:\n\n)", text, re.M | re.S)
    assert line, f"{guide.name}: no 'Install:' line"
    named = (
        set(re.findall(r"\.\[([\w,]+)\]", line.group(1))[0].split(","))
        if "[" in line.group(1)
        else set()
    )
    if "all" in named:
        named |= {"torch", "flax", "onnx"}
    imported = set(re.findall(r"^(?:import|from) (\w+)", text, re.M))
    needed = {EXTRAS[m] for m in imported if m in EXTRAS}
    assert needed <= named, f"{guide.name} imports need {needed - named}"


def test_rmsnorm_docs_without_the_docs_extra_says_where_the_markdown_is(monkeypatch, capsys):
    import importlib.util

    from rmsnorm_core.cli._cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mkdocs" else real(name, *a)
    )
    assert main(["docs"]) == 0
    assert f"Markdown in {ROOT / 'docs'}" in capsys.readouterr().out
