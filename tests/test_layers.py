"""The floors of docs/architecture.md hold: no module in lynkr/ or stages/ imports upward, the
siblings of the library floor do not import each other, and stages do not import each other."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top; a module may import its own package and any floor below its own.
FLOORS = [
    {"errors", "exchange", "stage", "redact", "body"},
    {"kit", "toolcalls"},
    {"wire"},
    {"config"},
    {"storage"},
    {"providers", "cache", "routing", "savings", "telemetry", "memory", "teams", "mcp"},
    {"engine"},
    {"stages"},
    {"server"},
    {"cli"},
]
FRONT_DOOR = {"lynkr", "lynkr.__version__"}       # lynkr/__init__.py re-exports the contract
# The stages' own libraries: above the engine, only stages use them (the server goes through the engine).
STAGE_LIBRARIES = {"cache", "savings", "routing", "mcp"}

# Crossings still to remove, each with the module that makes it (none today).
KNOWN: set[tuple[str, str]] = set()


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "lynkr" or module in FRONT_DOOR:
        return None
    return parts[1] if len(parts) > 1 else None


def _floor(unit: str) -> int:
    for i, names in enumerate(FLOORS):
        if unit in names:
            return i
    raise AssertionError(f"lynkr.{unit} is on no floor: add it to docs/architecture.md and FLOORS")


def _modules():
    for path in sorted((ROOT / "lynkr").rglob("*.py")):
        rel = path.relative_to(ROOT / "lynkr").with_suffix("")
        if rel.parts == ("__init__",) or rel.parts[0] == "data":
            continue
        yield path, rel.parts[0] if len(rel.parts) > 1 else rel.parts[0]
    for path in sorted((ROOT / "stages").rglob("*.py")):
        yield path, "stages"


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
            if node.module == "lynkr":
                for alias in node.names:
                    yield f"lynkr.{alias.name}", node.lineno


def _crossings():
    found = []
    for path, unit in _modules():
        here = _floor(unit)
        for target, line in _imports(path):
            there = _unit(target)
            if there is None or there == unit:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if _floor(there) > here:
                found.append(((unit, there), f"{where}: floor {there} is above {unit}"))
            elif _floor(there) == here and here != 0:
                found.append(((unit, there), f"{where}: {unit} and {there} are siblings"))
            elif there in STAGE_LIBRARIES and unit not in ("stages", "cli"):
                found.append(((unit, there), f"{where}: {there} is a stage's library; go through the engine"))
    return found


def test_no_module_imports_upward_or_sideways():
    bad = [why for pair, why in _crossings() if pair not in KNOWN]
    assert not bad, "layering broken (docs/architecture.md):\n" + "\n".join(bad)


KNOWN_STAGE_IMPORTS: set[tuple[str, str]] = set()


def _stage_imports():
    for path in sorted((ROOT / "stages").glob("*.py")):
        for target, line in _imports(path):
            if target.startswith(("lynkr.stages.", "stages.")):
                yield (path.stem, target), f"{path.relative_to(ROOT)}:{line} imports {target}"


def test_stages_do_not_import_each_other():
    bad = [why for pair, why in _stage_imports() if pair not in KNOWN_STAGE_IMPORTS]
    assert not bad, "\n".join(bad)


def test_the_known_exceptions_still_exist():
    """An exception listed here that the code no longer has must be removed from KNOWN."""
    seen = {pair for pair, _why in _crossings()}
    assert KNOWN <= seen, f"no longer crossed, drop from KNOWN: {sorted(KNOWN - seen)}"
    stage_seen = {pair for pair, _why in _stage_imports()}
    assert KNOWN_STAGE_IMPORTS <= stage_seen, f"drop from KNOWN_STAGE_IMPORTS: {sorted(KNOWN_STAGE_IMPORTS - stage_seen)}"
