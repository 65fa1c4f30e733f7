# Run by segue's master as `python -c THIS TARGET SETTINGS_JSON` in a short-lived subprocess of
# the app's own interpreter (the master never runs Python itself). It executes a
# gunicorn.conf.py the way gunicorn does (gunicorn/app/base.py) and writes one JSON report to
# the original stdout; everything the config itself prints goes to stderr, so no print() can
# be mistaken for the report. Python 3.9+: no match statements, no 3.10+ APIs.
import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import traceback
import types

# Values of names that are not gunicorn settings are reported only so that a typo can be
# named; their text does not matter, and a big helper value must not blow the report up.
UNKNOWN_VALUE_LIMIT = 200
UNKNOWN_VALUES = 8


def main():
    target = sys.argv[1]
    settings = set(json.loads(sys.argv[2]))
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    # gunicorn puts its chdir (the working directory unless --chdir) first on sys.path before
    # it reads the config, so a config may import the project's modules.
    cwd = os.getcwd()
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    if cwd not in sys.path:
        sys.path.insert(0, cwd)

    path = None
    try:
        if target.startswith("python:"):
            name = target[len("python:"):]
            spec = importlib.util.find_spec(name)
            if spec is None:
                raise ModuleNotFoundError("No module named %r" % name, name=name)
            if spec.origin and os.path.isfile(spec.origin):
                path = os.path.abspath(spec.origin)
            namespace = vars(importlib.import_module(name))
        else:
            path = target[len("file:"):] if target.startswith("file:") else target
            path = os.path.abspath(path)
            if os.path.splitext(path)[1] in (".py", ".pyc"):
                spec = importlib.util.spec_from_file_location("__config__", path)
            else:
                loader = importlib.machinery.SourceFileLoader("__config__", path)
                spec = importlib.util.spec_from_file_location("__config__", path, loader=loader)
            module = importlib.util.module_from_spec(spec)
            sys.modules["__config__"] = module
            spec.loader.exec_module(module)
            namespace = vars(module)
    except BaseException as e:  # SystemExit and KeyboardInterrupt are the file's doing too
        write(report, failure(e, path))
        return

    lines, imported, star_line = top_level(path)
    entries = []
    for name, value in list(namespace.items()):
        entry = describe(name, value, settings, imported)
        if entry is None:
            continue
        entry["line"] = lines.get(name, star_line if name in settings else 0)
        entries.append(entry)
    write(report, {"ok": True, "file": path, "entries": entries})


def write(report, obj):
    report.write(json.dumps(obj))
    report.flush()


def same_file(a, b):
    return bool(a) and bool(b) and os.path.abspath(a) == b


def failure(e, path):
    line = 0
    if isinstance(e, SyntaxError) and same_file(e.filename, path):
        line = e.lineno or 0
    for frame in traceback.extract_tb(e.__traceback__):
        if same_file(frame.filename, path):
            line = frame.lineno or 0
    message = str(e)
    if isinstance(e, SystemExit):
        message = "the file called sys.exit(%r)" % (e.code,)
    return {
        "ok": False,
        "file": path,
        "type": type(e).__name__,
        "message": message,
        "line": line,
        "traceback": "".join(traceback.format_exception(type(e), e, e.__traceback__)),
    }


def top_level(path):
    """Line of the last top-level binding of each name (inside if/try/with/for blocks too,
    never inside a def or class body), the names bound by imports, and the line of the last
    `from x import *` (whose names have no line of their own)."""
    lines, imported, star_line = {}, set(), 0
    if not path or path.endswith((".pyc", ".so", ".pyd")):
        return lines, imported, star_line
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return lines, imported, star_line

    def targets(node):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                for name in targets(element):
                    yield name
        elif isinstance(node, ast.Starred):
            for name in targets(node.value):
                yield name

    def visit(statements):
        nonlocal star_line
        for node in statements:
            bound = []
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    bound.extend(targets(target))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                bound.extend(targets(node.target))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.append(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        star_line = node.lineno
                        continue
                    name = alias.asname or alias.name.split(".")[0]
                    imported.add(name)
                    lines[name] = node.lineno
            for name in bound:
                imported.discard(name)
                lines[name] = node.lineno
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and not isinstance(
                    node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                ):
                    visit(inner)
            for handler in getattr(node, "handlers", None) or []:
                visit(handler.body)

    visit(tree.body)
    return lines, imported, star_line


def scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def describe(name, value, settings, imported):
    """The report of one module-level name, or None for what is clearly not a setting:
    private and upper-case names (gunicorn matches names exactly, so WORKERS is ignored),
    modules, imported helpers, classes other than a worker or logger class, None (gunicorn's
    "leave the default")."""
    known = name in settings
    if name.startswith("_") or name != name.lower() or value is None:
        return None
    if isinstance(value, types.ModuleType):
        return None
    if name in imported and not known:
        return None
    if inspect.isclass(value):
        if not known:
            return None
        return {"name": name, "kind": "class",
                "values": ["%s.%s" % (value.__module__, value.__qualname__)]}
    if callable(value):
        label = getattr(value, "__qualname__", None) or getattr(value, "__name__", name)
        return {"name": name, "kind": "callable", "values": ["<function %s>" % label]}
    one = scalar(value)
    if one is not None:
        values, kind = [one], "value"
    elif isinstance(value, (list, tuple, set, frozenset)) and all(
        scalar(v) is not None for v in value
    ):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        values, kind = [scalar(v) for v in items], "list"
    elif isinstance(value, dict):
        values, kind = [json.dumps(value, sort_keys=True, default=str)], "dict"
    else:
        values, kind = [repr(value)], "other"
    if not known:
        values = [v if len(v) <= UNKNOWN_VALUE_LIMIT else v[:UNKNOWN_VALUE_LIMIT] + "..."
                  for v in values[:UNKNOWN_VALUES]]
    return {"name": name, "kind": kind, "values": values}


main()
