"""The packages' layer order (docs/architecture.md): every import of one of our modules, at module level
or inside a function, goes to the importing module's own layer or one below it. Parses the source with
`ast`; imports nothing."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("keras_alexnet", "pipelines", "callbacks")

# Lowest first (docs/architecture.md says why each layer sits where it does).
ORDER = ("base", "pipelines", "core", "evaluation", "callbacks", "training", "study", "cli")
# A module's layer is that of the longest of these prefixes its dotted name starts with.
LAYER_OF_PREFIX = {
    "keras_alexnet": "core",  # models, layers, metrics, export, runs, figures, weight import, ...
    "keras_alexnet.errors": "base",
    "keras_alexnet.atomic": "base",
    "keras_alexnet.outputs": "base",
    "keras_alexnet.progress": "base",
    "pipelines": "pipelines",
    "keras_alexnet.evaluation": "evaluation",
    "callbacks": "callbacks",
    "keras_alexnet.training": "training",
    "keras_alexnet.study": "study",
    "keras_alexnet.cli": "cli",
}
# Imports allowed against the order: (importing module, imported name) -> why. Empty: no loop is left.
EXCEPTIONS = {}


def layer_of(name: str) -> str:
    """The layer of a dotted name of ours (a module, or a name imported from one)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYER_OF_PREFIX:
            return LAYER_OF_PREFIX[prefix]
    raise KeyError(name)


def modules():
    """(dotted module name, path) of every module of our packages."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield dotted.removesuffix(".__init__"), path


def imports(module: str, path: pathlib.Path):
    """(line, imported dotted name) of every import of our packages in `path`, functions included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield node.lineno, name


def test_every_import_goes_to_the_same_layer_or_below():
    violations = []
    seen = set()
    for module, path in modules():
        mine = layer_of(module)
        for line, name in imports(module, path):
            theirs = layer_of(name)
            if ORDER.index(theirs) > ORDER.index(mine) and (module, name) not in EXCEPTIONS:
                violations.append(f"{path.relative_to(ROOT)}:{line}: {module} ({mine}) imports {name} ({theirs}): "
                                  f"{mine} may import only {', '.join(ORDER[:ORDER.index(mine) + 1])}")
            seen.add((module, name))
    assert not violations, "imports against the layer order (docs/architecture.md):\n" + "\n".join(violations)
    stale = [key for key in EXCEPTIONS if key not in seen]
    assert not stale, f"exceptions whose import is gone: {stale}"


def test_the_walk_sees_module_and_function_level_imports():
    found = dict(modules())
    training = set(name for _, name in imports("keras_alexnet.training.callbacks",
                                               found["keras_alexnet.training.callbacks"]))
    assert "callbacks.summaries.run_name" in training  # module level
    assert "callbacks.nan_guard.NanGuard" in training  # inside a function
    assert layer_of("keras_alexnet.atomic.write_json") == "base"
    assert layer_of("keras_alexnet.export.saved_model_dir") == "core"
    assert layer_of("keras_alexnet.evaluation.models.load_keras_model") == "evaluation"


def test_every_prefix_names_a_module_and_every_layer_is_used():
    for prefix in LAYER_OF_PREFIX:
        path = ROOT.joinpath(*prefix.split("."))
        assert path.is_dir() or path.with_suffix(".py").is_file(), prefix
    assert sorted(set(LAYER_OF_PREFIX.values())) == sorted(ORDER)
