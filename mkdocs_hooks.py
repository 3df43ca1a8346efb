"""MkDocs hooks: pages generated from the code when the site is built.

``{{ presets_table }}`` becomes the presets table (fields from
``RMSNormSpec.presets()``, the upstream source from ``_presets.py``'s
docstring), ``{{ cli_help }}`` the ``--help`` of ``rmsnorm`` and every
subcommand, ``{{ verify_table }}`` the summary table of a real (small)
``rmsnorm verify`` run. Generated, so they cannot drift from the code; a
preset without a documented source fails the build.

Math is rendered when the site is built: each ``\\( ... \\)`` / ``\\[ ... \\]``
that ``pymdownx.arithmatex`` marks becomes MathML (``latex2mathml``), which
browsers draw with no script and no network; the site loads nothing from
elsewhere (the theme's web fonts are off too).
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from rmsnorm_core import RMSNormSpec
from rmsnorm_core.cli._cli import build_parser, main
from rmsnorm_core.spec import _presets

DEFAULTS = RMSNormSpec().to_dict()


def _sources() -> dict[str, str]:
    """``{preset: its bullet in _presets' docstring}``, whitespace joined."""
    text = _presets.__doc__ or ""
    bullets = re.findall(r"^- ``(\w+)``: (.*?)(?=^- ``|^\S|\Z)", text, re.M | re.S)
    return {name: " ".join(body.split()) for name, body in bullets}


def presets_table() -> str:
    sources = _sources()
    rows = ["| preset | fields that differ from the defaults | upstream, and its formula |",
            "|---|---|---|"]  # fmt: skip
    for name, spec in RMSNormSpec.presets().items():
        if name not in sources:
            raise ValueError(f"preset {name!r} has no upstream source in _presets.py's docstring")
        fields = {k: v for k, v in spec.to_dict().items() if DEFAULTS.get(k) != v}
        shown = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in fields.items()) or "(defaults)"
        source = sources[name].replace("|", "\\|")
        rows.append(f"| `{name}` | {shown} | {source} |")
    defaults = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in DEFAULTS.items())
    return "\n".join(rows) + f"\n\nThe defaults: {defaults}."


def cli_help() -> str:
    parser = build_parser(with_backends=True)
    parts = [f"## rmsnorm\n\n```text\n{parser.format_help()}```"]
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        parts.append(f"## rmsnorm {name}\n\n```text\n{command.format_help()}```")
    return "\n\n".join(parts)


def verify_table() -> str:
    """The table of ``rmsnorm verify --spec S --quick --backend torch-eager --backend
    flax-linen`` for the guide's spec (Gemma with eps=1e-5), as the guide runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "my_spec.json"
        spec.write_text(RMSNormSpec.preset("gemma", eps=1e-5).to_json())
        out = io.StringIO()
        args = ["verify", "--spec", str(spec), "--quick", "--backend", "torch-eager",
                "--backend", "flax-linen", "--report", str(Path(tmp) / "report.json")]  # fmt: skip
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(args)
    if code != 0:
        raise RuntimeError(f"rmsnorm verify exited {code}:\n{out.getvalue()}")
    lines = [ln for ln in out.getvalue().splitlines() if not ln.startswith("report written")]
    return "```text\n" + "\n".join(lines).rstrip() + "\n```"


GENERATED = {"presets_table": presets_table, "cli_help": cli_help, "verify_table": verify_table}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``{{ name }}`` of :data:`GENERATED` in a page."""
    for name, make in GENERATED.items():
        token = "{{ " + name + " }}"
        if token in markdown:
            markdown = markdown.replace(token, make())
    return markdown


_MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
_TEXT_ARG = re.compile(r"\\(?:texttt|text)\{[^{}]*\}")


def _mathml(match: re.Match) -> str:
    from latex2mathml.converter import convert

    tag, tex = match.group(1), html.unescape(match.group(2)).strip()
    if tex[:2] in ("\\(", "\\[") and tex[-2:] in ("\\)", "\\]"):
        tex = tex[2:-2]
    # latex2mathml copies text-mode arguments verbatim: LaTeX's escaped underscore
    # (\texttt{scale\_offset}) would show its backslash
    tex = _TEXT_ARG.sub(lambda m: m.group(0).replace("\\_", "_"), tex)
    return convert(tex, display="block" if tag == "div" else "inline")


def on_page_content(content: str, page: Any, config: Any, files: Any) -> str:
    """Replace each arithmatex span or block with MathML (see the module docstring)."""
    return _MATH.sub(_mathml, content)
