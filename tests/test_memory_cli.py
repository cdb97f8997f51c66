"""`lynkr memory list|search|forget [--project P]`: a project's memories are listed and searched on
their own, and forgetting is scoped — an id of another project is refused and nothing is deleted."""
import json

import pytest

from lynkr.cli import main
from lynkr.kit.embed import get_embedder
from lynkr.memory.bank import Limits, MemoryBank
from lynkr.memory.scope import Scope
from lynkr.memory.store import MemoryStore

SHOP, BILLING = "/home/dev/shop-api", "/home/dev/billing's \"odd\" service"


@pytest.fixture
def memory_file(tmp_path):
    path = tmp_path / "memory.duckdb"
    store = MemoryStore(384, str(path))
    bank = MemoryBank(store, get_embedder(), Limits())
    bank.learn(Scope("", SHOP), "This project uses PostgreSQL 15. The API runs on port 8420.")
    bank.learn(Scope("", BILLING), "This project uses MySQL 8 for the ledger.")
    store.close()
    return str(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["memory", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_search_stay_in_the_project(memory_file, capsys):
    code, out, _ = run(capsys, "list", "--project", SHOP, "--path", memory_file, "--json")
    rows = json.loads(out)
    assert code == 0 and {r["project"] for r in rows} == {SHOP} and len(rows) == 2
    code, out, _ = run(capsys, "search", "which", "database", "--project", SHOP, "--path", memory_file, "--json")
    found = json.loads(out)
    assert code == 0 and "PostgreSQL" in found[0]["text"] and not any("MySQL" in r["text"] for r in found)
    code, out, _ = run(capsys, "list", "--path", memory_file)
    assert SHOP in out and BILLING in out


def test_forget_is_scoped_to_the_project(memory_file, capsys):
    billing_id = json.loads(run(capsys, "list", "--project", BILLING, "--path", memory_file, "--json")[1])[0]["id"]
    code, out, err = run(capsys, "forget", billing_id, "--project", SHOP, "--path", memory_file)
    assert code == 1 and "forgot 0" in out and "not found in /home/dev/shop-api" in err
    assert len(json.loads(run(capsys, "list", "--project", BILLING, "--path", memory_file, "--json")[1])) == 1
    code, out, _ = run(capsys, "forget", billing_id, "--project", BILLING, "--path", memory_file)
    assert code == 0 and "forgot 1 memory" in out
    code, out, _ = run(capsys, "forget", "--project", SHOP, "--all", "--path", memory_file)
    assert code == 0 and "forgot 2 memories" in out
    assert run(capsys, "list", "--path", memory_file)[1].strip() == "no memories"


def test_a_missing_file_or_argument_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "list", "--path", str(tmp_path / "none.duckdb"))
    assert code == 1 and "no memory file" in err
    (tmp_path / "m.duckdb").touch()
    code, _, err = run(capsys, "forget", "--path", str(tmp_path / "m.duckdb"))
    assert code == 1 and "needs memory ids" in err
