"""The Python examples of the documentation, as test cases.

Collected from the Markdown files (README.md, CONTRIBUTING.md,
docs/**/*.md, experiments/README.md) and from the docstrings of
`keras_ssgd`:

- a fenced block whose info string is `python` runs as a whole, in a fresh
  namespace holding `keras`, `keras_ssgd` and `np` (NumPy), plus, for a
  docstring, the globals of its module;
- a docstring's `>>>` lines run as a doctest (`ELLIPSIS` and
  `NORMALIZE_WHITESPACE`), with the globals of its module and the same
  three names;
- an HTML comment just before a fence, or before a docstring's first
  `>>>` line (blank lines may separate them), is a directive, hidden on
  the rendered page:
  `<!-- example: skip REASON -->` skips the block with that reason, and
  `<!-- example: setup` followed by code lines and `-->` runs that code
  first, in the same namespace (small data standing in for what the
  example assumes).

The files are read as text and the docstrings with `ast`: collecting
imports nothing. See docs/contributing.md.
"""

import ast
import dataclasses
import doctest
import importlib
import pathlib
import re
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = "keras_ssgd"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>```+|~~~+)[ \t]*(?P<info>[^\n`]*)$")
_DIRECTIVE = re.compile(
    r"<!--\s*example:\s*(?P<kind>skip|setup)\b(?P<body>.*?)-->", re.DOTALL
)
_PYTHON_INFOS = ("python", "py")


@dataclasses.dataclass
class Example:
    """One example: where it is, its code and how to run it.

    Attributes:
        path: the file, relative to the repository root.
        line: the 1-based line of the file where the code starts.
        code: the code (a fence's body, or a docstring for a doctest).
        kind: `"fence"` or `"doctest"`.
        setup: code run before it, from a setup directive.
        skip: the reason to skip it, or `None`.
        module: the module whose globals it sees (docstrings), or `None`.
        name: the docstring's owner (`module.Class.method`), or `None`.
    """

    path: str
    line: int
    code: str
    kind: str = "fence"
    setup: str = ""
    skip: str | None = None
    module: str | None = None
    name: str | None = None

    @property
    def id(self):
        where = f"{self.path}:{self.line}"
        return f"{where}[doctest]" if self.kind == "doctest" else where


def markdown_files():
    """The Markdown files whose examples run, relative to the root."""
    files = [
        ROOT / "README.md", ROOT / "CONTRIBUTING.md",
        ROOT / "experiments" / "README.md",
    ]
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def fences(text, first_line=1):
    """`(line, body, directive)` for each Python fence of Markdown `text`.

    `line` is the line of the body's first line, counting `text`'s first
    line as `first_line`; `directive` is `(kind, body)` or `None`.
    """
    lines = text.split("\n")
    found = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, ticks = match["indent"], match["ticks"]
        info = match["info"].strip().split()
        end = i + 1
        while end < len(lines):
            close = lines[end].strip()
            if close.startswith(ticks[0] * len(ticks)) and not close.strip(
                ticks[0]
            ):
                break
            end += 1
        if info and info[0] in _PYTHON_INFOS:
            body = [
                line[len(indent):] if line.startswith(indent) else line
                for line in lines[i + 1:end]
            ]
            found.append((
                first_line + i + 1,
                textwrap.dedent("\n".join(body)),
                _directive_before(lines, i),
            ))
        i = end + 1
    return found


def _directive_before(lines, fence):
    """The `<!-- example: ... -->` comment ending just above line `fence`."""
    end = fence - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return None
    start = end
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    if start < 0:
        return None
    comment = "\n".join(lines[start:end + 1]).strip()
    match = _DIRECTIVE.fullmatch(comment)
    if not match:
        if comment.startswith("<!--") and "example" in comment:
            raise ValueError(
                f"Malformed example directive above line {fence + 1}: "
                f"{comment!r}. Expected `<!-- example: skip REASON -->` or "
                f"`<!-- example: setup` + code + `-->`."
            )
        return None
    kind, body = match["kind"], match["body"]
    if kind == "skip":
        reason = " ".join(body.split())
        if not reason:
            raise ValueError(
                f"An example skipped above line {fence + 1} gives no reason."
            )
        return kind, reason
    return kind, textwrap.dedent(body.strip("\n"))


def _from_fences(path, text, first_line, module=None, name=None):
    examples = []
    for line, body, directive in fences(text, first_line):
        example = Example(path, line, body, module=module, name=name)
        if directive and directive[0] == "skip":
            example.skip = directive[1]
        elif directive:
            example.setup = directive[1]
        examples.append(example)
    return examples


def markdown_examples():
    examples = []
    for file in markdown_files():
        path = file.relative_to(ROOT).as_posix()
        examples += _from_fences(path, file.read_text(encoding="utf-8"), 1)
    return examples


def _docstrings(tree, prefix):
    """`(qualified name, docstring node)` for the module and its defs."""
    if ast.get_docstring(tree, clean=False) is not None:
        yield prefix, tree.body[0].value
    for node in ast.walk(tree):
        if isinstance(
            node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        ) and ast.get_docstring(node, clean=False) is not None:
            yield f"{prefix}.{node.name}", node.body[0].value


def docstring_examples():
    examples = []
    for file in sorted((ROOT / PACKAGE).rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        module = ".".join(file.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(file.read_text(encoding="utf-8"), path)
        for name, node in _docstrings(tree, module):
            raw = node.value
            # The docstring's text starts on the line of its opening quotes.
            first = node.lineno
            text = _clean(raw)
            examples += _from_fences(path, text, first, module, name)
            if doctest.DocTestParser().get_examples(text):
                examples.append(_doctest(path, text, first, module, name))
    return examples


def _doctest(path, text, first_line, module, name):
    """The docstring's `>>>` lines as one example; a directive above the
    first of them applies to all."""
    example = Example(
        path, first_line, text, kind="doctest", module=module, name=name
    )
    lines = text.split("\n")
    prompt = next(
        i for i, line in enumerate(lines) if line.lstrip().startswith(">>>")
    )
    directive = _directive_before(lines, prompt)
    if directive and directive[0] == "skip":
        example.skip = directive[1]
    elif directive:
        example.setup = directive[1]
    return example


def _clean(docstring):
    """The docstring with its indentation removed, keeping line numbers."""
    lines = docstring.expandtabs().split("\n")
    rest = textwrap.dedent("\n".join(lines[1:]))
    return "\n".join([lines[0].strip(), *rest.split("\n")])


def all_examples():
    return markdown_examples() + docstring_examples()


def namespace(example):
    """The globals an example starts from."""
    import keras
    import numpy as np

    import keras_ssgd

    names = {}
    if example.module:
        names.update(vars(importlib.import_module(example.module)))
    names.update({"keras": keras, "keras_ssgd": keras_ssgd, "np": np})
    names["__name__"] = "__example__"
    return names


def run(example):
    """Runs one example; raises on failure (a doctest's report names it)."""
    names = namespace(example)
    if example.setup:
        exec(compile(example.setup, f"{example.path} (setup)", "exec"), names)
    if example.kind == "fence":
        # Padded so that a traceback gives the line in the file.
        code = "\n" * (example.line - 1) + example.code
        exec(compile(code, str(ROOT / example.path), "exec"), names)
        return
    test = doctest.DocTestParser().get_doctest(
        example.code, names, example.name, str(ROOT / example.path),
        example.line - 1,
    )
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    report = []
    runner.run(test, out=report.append)
    if runner.failures:
        raise AssertionError("".join(report))
