"""memory: per-project long-term memory through the proxy — facts stated in one session come back in
a later one, in the newest user turn only, repeated byte for byte on later turns (the provider's
prompt cache keeps hitting); never across projects; the memory tools are answered by the proxy in
every client protocol; bad input is a bounded tool error, never a 5xx."""
import json
from pathlib import Path

import aiohttp
import orjson
import pytest

from lynkr.cli.replay import prefix_violations
from lynkr.memory.extract import extract
from lynkr.memory.scope import project_of, scope_of
from tests.conftest import start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message, tool_message

APP = "/home/dev/inventory-app"
OTHER = "/home/dev/billing-service"

PIPELINE = """
version: 1
name: memory-e2e
state_dir: {state}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: memory, uses: memory}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""

TOOLS = [{"name": "Bash", "description": "run a command", "input_schema": {"type": "object", "properties": {}}}]


def claude_body(project: str, *turns: str, answers=(), stream=False) -> dict:
    """A Claude Code-shaped request: the working directory in the system prompt, the user's turns
    (each with a system-reminder, as Claude Code sends them) and the answers between them."""
    messages = []
    for i, t in enumerate(turns):
        messages.append({"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nAs you answer, use the context.\n</system-reminder>"},
            {"type": "text", "text": t}]})
        if i < len(turns) - 1:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answers[i] if i < len(answers) else "OK."}]})
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"model": "claude-test", "max_tokens": 200, "stream": stream, "tools": TOOLS,
            "system": [{"type": "text", "text": f"You are Claude Code.\n<env>\nPrimary working directory: {project}\n</env>"}],
            "messages": messages}


async def post(base, body, session, path="/v1/messages", headers=None):
    async with aiohttp.ClientSession() as s:
        h = {"x-api-key": "k", "x-claude-code-session-id": session, **(headers or {})}
        async with s.post(base + path, json=body, headers=h) as r:
            return r.status, await r.read()


@pytest.fixture
async def proxy(lynkr, write_pipeline, tmp_path):
    """A proxy with `memory` in front of a scripted Anthropic upstream that records every request."""
    up = AnthropicUpstream(lambda body: text_message("Noted."))
    runner, url = await start_app(up.app())
    _, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
    yield up, base
    await runner.cleanup()


async def settle(state, project=APP, n=1):
    """Learning happens after the response (the stage's `after`): wait until `project` has `n`
    memories, or 10 s."""
    import asyncio
    from lynkr.memory.store import close_memory, open_memory
    store = open_memory(str(state / "memory.duckdb"), 384)     # the running pipeline's store
    try:
        for _ in range(500):
            if sum(1 for m in store.list() if m.project == project) >= n:
                return
            await asyncio.sleep(0.02)
    finally:
        close_memory(store)


def answer_text(raw: bytes) -> str:
    """The assistant's text as the client reads it: a JSON body, or a stream's text deltas joined
    (Anthropic, OpenAI Chat or Responses events)."""
    text = raw.decode()
    if not text.lstrip().startswith(("event:", "data:")):
        return text
    out = []
    for line in text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        d = ev.get("delta")
        if isinstance(d, dict) and isinstance(d.get("text"), str):
            out.append(d["text"])
        elif isinstance(d, str) and ev.get("type") == "response.output_text.delta":
            out.append(d)
        for c in ev.get("choices") or ():
            out.append((c.get("delta") or {}).get("content") or "")
    return "".join(out)


def last_user_texts(request: dict) -> list[str]:
    return [b.get("text", "") for b in request["messages"][-1]["content"] if b.get("type") == "text"]


def memory_blocks(request: dict) -> list[tuple[int, str]]:
    return [(i, b["text"]) for i, m in enumerate(request["messages"]) if isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "text" and b["text"].startswith("<lynkr-memory>")]


# -- the rules, the scope ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,kind", [
    ("This project uses PostgreSQL 15 for storage.", "fact"),
    ("We decided to use pytest, not unittest.", "decision"),
    ("I prefer tabs over spaces in Makefiles.", "preference"),
    ("Remember that the staging server is staging.example.com.", "note"),
    ("The API runs on port 8080.", "fact"),
    ("For context, the training data sits in s3://acme-ml/churn/v3.", "fact"),
    ("Feature flags come from LaunchDarkly.", "fact"),
    ("The team agreed to use gRPC between the tracker and the dispatcher.", "decision"),
    ("We've been using Sidekiq for background jobs.", "preference"),
    ("Don't use time.Now() directly; inject the clock from internal/clock.", "preference"),
    ("Use RSpec, not minitest, for new specs.", "preference"),
])
def test_statements_are_candidates_with_their_kind(text, kind):
    """Each rule of the documented set finds its kind of statement."""
    got = extract(text)
    assert len(got) == 1 and got[0].kind == kind


@pytest.mark.parametrize("text", ["What database does the project use?", "Fix the failing test please.",
                                  "how do I reverse a list", "ok", "Show me the API routes."])
def test_questions_and_commands_are_not_remembered(text):
    assert extract(text) == []


@pytest.mark.parametrize("text", [
    "The test in src/foo.py fails with KeyError.", "It looks like the build is broken.", "The tests are slow.",
    "I'm getting an error on line 12.", "The function returns None.", "This PR is ready for review.",
    "return re.sub(r'[^a-z0-9]+', '-', s.lower()).strip('-')", "let total = items.reduce(add, 0);",
    "Use the helper in utils.py to fix this."])
def test_what_is_happening_now_and_pasted_code_are_not_remembered(text):
    """A statement about the work at hand (a failure, the function being edited, the PR), one that
    names nothing particular, or a line of code is no fact for next week's sessions."""
    assert extract(text) == []


# Written for these tests (not taken from the benchmark scenarios): facts said the ways people say
# them in passing, in other domains than the scenarios', and turns of agent sessions that state none.
SAID_IN_PASSING = [
    "oh and btw the staging database is on port 5433",
    "Quick note: our Kubernetes namespace is payments-prod.",
    "The cron job that cleans temp files runs every 15 minutes.",
    "ok so the mobile app targets Android 8 and up",
    "hey, so the docs site is built by mkdocs and hosted at https://docs.example.dev",
    "Sorry, one more thing: Jenkins builds the Docker images, not GitHub Actions.",
    "The config loader reads settings.toml before environment variables.",
    "All timestamps in the database are stored in UTC.",
    "Passwords are hashed with argon2id.",
    "Public endpoints are versioned under /api/v3.",
    "For the record, the license is Apache-2.0.",
    "Max upload size is 25 MB.",
    "I usually run the app with make dev, which starts docker compose.",
    "Error messages shown to users are translated with i18next.",
    "Don't add new dependencies without asking Marco first.",
    "Prefer composition over inheritance in the domain layer.",
    "Feature branches are named feature/<ticket-id>.",
    "The primary key of the orders table is a bigint sequence.",
    "The web app and the admin app share the ui-kit package.",
    "Hey, just FYI, Dmitri is the DBA and approves schema changes.",
    "I'm on macOS 14 with an M2, so x86 images need emulation.",
    "Staging deploys happen automatically on merge to develop.",
    "Thanks, that fixed it. Btw Ingrid from compliance reviews every change to the consent module.",
    "Kafka is our message bus.",
    "Code review needs two approvals.",
    "All monetary values are in cents.",
    "I work on the backend; Sara does the frontend.",
    "Don't use time.Now() directly; inject the clock from internal/clock.",
]
NOT_FACTS = [
    "Can you add a health check endpoint to the API?", "Please fix the failing test in tests/test_orders.py.",
    "Make the button blue.", "I think the issue is in the cache layer.",
    "I tried bumping the version but it still fails.", "I ran npm install and got a bunch of warnings.",
    "That worked, thanks!", "Thanks Claude, that was really helpful!", "It crashes when I click save.",
    "Let's add logging to the retry loop.", "Write a migration that adds an index on orders.created_at.",
    "Store.remove lets stock go negative.", "The build is failing on CI with exit code 137.",
    "I'm getting a 502 from nginx when I hit /api/orders.", "Maybe we should cache the results in Redis.",
    "I want you to rename getUser to fetchUser everywhere.", "I've added the env var to .env.local.",
    "This PR adds pagination to /orders.", "Try again with --verbose.", "The tests pass locally but fail in CI.",
    "Make the CLI print a friendly message instead of a stack trace when the config file is missing.",
    "Users report that the export button does nothing on Safari 17.",
    "I ran it locally and the 500 is gone, but now the response takes 3 seconds.",
    "The signup form should reject emails without a TLD. Please add that validation and a test for it.",
    "The modal closes when I click inside it, which it shouldn't.", "Use a map instead of the nested loops here.",
    "Justify each decision.", "Looks good, ship it.",
]


@pytest.mark.parametrize("text", SAID_IN_PASSING)
def test_a_statement_naming_something_particular_is_a_candidate_however_it_is_said(text):
    """Candidacy does not depend on phrasing: a declarative statement about the project that names
    something particular, or states a rule, is taken whatever lead-in or small talk comes with it,
    and the lead-in is not part of the memory."""
    (c,) = extract(text)
    assert not c.text.lower().startswith(("oh", "ok", "quick", "sorry", "hey", "for the record", "thanks", "btw"))


def test_a_compound_turn_yields_each_statement_and_none_of_the_requests():
    """A turn that mixes small talk, facts and requests is split into sentences and clauses: the
    statements are kept (clauses of one sentence that are all statements stay one memory), the
    greeting, the lead-in and the question are not."""
    turn = ("Thanks! Quick note, the target board is an nRF52840. Can you check the pin map? "
            "Also the BLE stack is SoftDevice S140; please keep the advertising interval at 100 ms.")
    got = [c.text for c in extract(turn)]
    assert got == ["The target board is an nRF52840.",
                   "The BLE stack is SoftDevice S140; please keep the advertising interval at 100 ms."]


@pytest.mark.parametrize("turn,kept", [
    ("Can you rename the `--out` flag to `--output`? Also, the binary reports errors with anyhow but the library "
     "crate defines its own with thiserror.",
     "The binary reports errors with anyhow but the library crate defines its own with thiserror."),
    ("Could you bump the timeout? btw our staging DB is pg-stage-2.", "Our staging DB is pg-stage-2."),
    ("Fix the flaky test please. Also the CI image is node:20-alpine.", "The CI image is node:20-alpine."),
    ("Rename the helper please. fwiw the worker retries jobs with exponential backoff.",
     "The worker retries jobs with exponential backoff."),
    ("Can you add pagination? The frontend fetches lists using react-query.",
     "The frontend fetches lists using react-query."),
])
def test_a_fact_said_after_a_request_in_the_same_turn_is_kept_without_the_request(turn, kept):
    """A request and then a statement about the project: the statement is a candidate even when it
    names its tools only with plain lowercase words, told by the construction (a part of the project
    doing something with/using/via a means), and the request is not part of it."""
    assert [c.text for c in extract(turn)] == [kept]


@pytest.mark.parametrize("turn,kept", [
    ("Exit code 2 means bad usage and 3 means no lines matched. Keep those stable, people's scripts depend on them.",
     "Exit code 2 means bad usage and 3 means no lines matched. Keep those stable, people's scripts depend on them."),
    ("Status 409 means the slot was taken by someone else.", "Status 409 means the slot was taken by someone else."),
    ("HTTP 422 from our API means validation failed.", "HTTP 422 from our API means validation failed."),
    ("The API returns 201 on create; don't change that.", "The API returns 201 on create; don't change that."),
])
def test_what_a_named_code_means_is_a_fact_and_a_rule_pointing_back_at_it_goes_with_it(turn, kept):
    """A definition of a code the project uses is a standing fact even when what it stands for is a
    failure ("validation failed") and even when the code's noun is also a verb ("Exit"); a rule that
    it must not change ("keep those", "don't change that") is kept with the statement it points back
    to, in the same sentence or the next."""
    (c,) = extract(turn)
    assert c.text == kept


@pytest.mark.parametrize("turn,kept", [
    ("Ask me before adding a new dependency.", "Ask me before adding a new dependency."),
    ("please run the linter before committing", "Please run the linter before committing"),
    ("Check with Omar before you touch the billing cron.", "Check with Omar before you touch the billing cron."),
    ("Nadia owns ingestion (src/ingest). Ping her before touching the MQTT consumer",
     "Nadia owns ingestion (src/ingest). Ping her before touching the MQTT consumer"),
])
def test_a_routine_step_with_when_it_is_due_is_a_rule(turn, kept):
    """"Ask me before adding a dependency" is a standing procedure like "before adding a dependency,
    ask me"; a step that names its person only as "her" stays with the sentence that names her."""
    (c,) = extract(turn)
    assert c.text == kept


@pytest.mark.parametrize("text", ["Fix the failing test before merging.", "Fix this before merging.",
                                  "Can you run the tests before merging?", "Please run the tests before committing this change.",
                                  "Rename the flag before shipping it."])
def test_a_task_with_a_deadline_is_not_a_procedure(text):
    assert extract(text) == []


NEAR_MISSES = [
    "Can you fix it? Also it fails when I run the tests.", "Also, please add a test.",
    "Keep those stable.", "Don't change that.", "Great, that works. Don't touch it.",
    "Add exit codes 2 and 3. Keep those stable.", "Add a test. Keep it short.",
    "The 500 means the server crashed.", "A 500 here means something in the handler blew up.",
    "TS2322 means the types don't match.", "Getting a 500 on login means the session expired.",
    "Check port 8080 is free.", "Mock the `requests.get` call for the whole test module.",
    "Fix the flaky test please. Also the page loads with a blank screen.",
    "The endpoint returns the user with missing fields.", "The build finishes with warnings.",
    "The old code computes totals with floats, which is why the cents are off.",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_of_a_fact_after_a_request_a_definition_and_a_rule_pointing_back_are_not_candidates(text):
    """The shapes next to those: a report after a request, a request after "Also", a rule pointing
    back at nothing or at a request, the code in front of the model ("the 500 means …", a compiler's
    error code), a check that something holds, how something behaves (no means, or "with" telling
    which), the code at hand doing something with something."""
    assert extract(text) == []


@pytest.mark.parametrize("text", NOT_FACTS)
def test_requests_reports_of_what_happens_now_and_opinions_are_not_candidates(text):
    """Requests about the task (however wide: "rename X everywhere"; with their spec: "the form
    should …"), reports of a failure or of what just happened, hedged opinions and thanks state
    nothing to carry into next week's sessions."""
    assert extract(text) == []


def test_pasted_output_code_and_logs_are_never_candidates():
    """Tracebacks, logs, test and linter output, diffs, JSON and code pasted into a turn — fenced or
    not, introduced by a line ending in ':' or not — yield nothing, while a fact stated in the same
    turn is kept."""
    turn = ("Here's what I get:\n\nTraceback (most recent call last):\n  File \"/app/main.py\", line 12, in <module>\n"
            "    from api import create_app\nImportError: cannot import name 'bp' from 'api.routes'\n\n"
            "2026/11/21 10:02:11 [error] 3141#3141: upstream timed out while reading response header\n"
            "src/shop/cart.py:12:5: F841 Local variable `tmp` is assigned to but never used\n\n"
            "```python\ndef load(path):\n    return json.load(open(path))\n```\n"
            "d = {'a': 1}\n\nFYI the API gateway is Kong 3.4.")
    assert [c.text for c in extract(turn)] == ["The API gateway is Kong 3.4."]


def test_facts_given_as_a_list_or_after_a_colon_are_kept_and_an_indented_paste_is_not():
    """A list of facts after "Some context:" (labels such as "Port: 5433" included) and prose lines
    after an introducing colon are statements; a pasted `git status` (an indented line in a
    paragraph that is not a list) is output, even where its lines read like prose."""
    listed = extract("Some context:\n- DB: Postgres 16\n- Port: 5433\n\nFor you:\n\nThe API runs on 8080.\n"
                     "Deploys go through Argo CD.")
    assert [c.text for c in listed] == ["DB: Postgres 16", "Port: 5433", "The API runs on 8080.",
                                        "Deploys go through Argo CD."]
    status = ("git status gives me\n\nOn branch feature/cart\nYour branch is ahead of 'origin/feature/cart' by 2 "
              "commits.\n  (use \"git push\" to publish your local commits)")
    assert extract(status) == []


def test_the_recorded_agent_sessions_store_nothing_and_never_from_tool_results_or_reminders(tmp_path):
    """The NOISE check on real traffic: the recorded Claude Code and Codex sessions (task requests,
    system reminders, environment context, tool results with file contents, grep output and JSON)
    replayed through a pipeline with `memory` store no memory; each user message's own text yields
    no candidate either, and a tool result's text would yield none even if a person had pasted it."""
    from lynkr.cli.replay import replay_sessions
    from lynkr.memory.extract import turn_text
    from tests.conftest import FIXTURES

    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPELINE.format(url="http://127.0.0.1:9", state=tmp_path / "state"))
    kept = []
    replay_sessions(str(FIXTURES), str(pipe), inspect=lambda p: kept.extend(p.stages["memory"].bank.store.list()))
    assert kept == []
    users, tools = set(), set()
    for f in FIXTURES.rglob("req_*.json"):
        body = json.loads(f.read_text())["body"]
        for m in body.get("messages") or body.get("input") or ():
            if isinstance(m, dict) and m.get("role") == "user":
                users.add(turn_text({"content": [{**b, "type": "text"} if b.get("type") == "input_text" else b
                                                 for b in m["content"]]} if isinstance(m["content"], list) else m))
                tools.update(str(b.get("content")) for b in m["content"] if isinstance(m["content"], list)
                             and isinstance(b, dict) and b.get("type") == "tool_result")
    assert len(users) >= 3 and len(tools) >= 4
    assert [c for t in users for c in extract(t)] == []
    assert [c for t in tools for c in extract(t)] == []


def test_made_up_agent_turns_store_few_memories(tmp_path):
    """The NOISE check on agent-session turns written for it (benchmarks/data/memory_noise.jsonl:
    task requests, follow-ups, pasted tracebacks, logs, test output, diffs, code, JSON, chat; none
    states a fact): replayed through the stage, at most 2 of the 62 turns leave a memory."""
    noise = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "memory_noise.jsonl"
    turns = [json.loads(line)["turn"] for line in noise.read_text().splitlines() if line.strip()]
    for i, t in enumerate(turns):
        (tmp_path / "s" / f"{i:03d}").mkdir(parents=True)
        (tmp_path / "s" / f"{i:03d}" / "req_000.json").write_text(json.dumps(
            {"path": "/v1/messages", "headers": {}, "body": claude_body("/home/dev/noise", t)}))
    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPELINE.format(url="http://127.0.0.1:9", state=tmp_path / "state"))
    kept = []
    from lynkr.cli.replay import replay_sessions
    replay_sessions(str(tmp_path / "s"), str(pipe), inspect=lambda p: kept.extend(p.stages["memory"].bank.store.list()))
    assert len(turns) == 62 and len(kept) <= 2, [m.text for m in kept]


def test_word_overlap_meets_a_word_in_another_form():
    """Retrieval's lexical half matches a word's forms: a question about injecting meets a memory
    about injection, one about a migration meets "migrations", one about deploying "deployment",
    "the lib" and "env vars" meet "library" and "environment variables"."""
    from lynkr.memory.rank import words

    assert {"inject"} <= words("How should I inject dependencies?") & words("Prefer constructor injection.")
    assert words("Where does a new migration go?") & words("Migrations are stored in db/migrations.")
    assert words("When do we deploy?") & words("The deployment runs nightly.")
    assert words("library environment variable") <= words("Can the lib read env vars?") & words("Library code, environment variables")


@pytest.mark.parametrize("text", [
    "What's the lowest Node version we still support?",
    "Can I add lodash to the frontend?",
    "Where do feature flags get defined?",
    "Who approves schema changes?",
    "Which queue does the mailer consume from?",
    "Is it OK to call the billing API from a cron job?",
    "Should the new endpoint return 201 or 200?",
    "How do I run the tests for this service locally?",
    "I need a new table for audit events, what should its primary key look like?",
])
def test_a_turn_about_the_projects_own_ways_lowers_the_bar(text):
    from lynkr.memory.question import PROJECT, about_project
    assert about_project(text) == PROJECT


@pytest.mark.parametrize("text", [
    "Explain how a B-tree index works.",
    "What's the difference between a mutex and a read-write lock?",
    "Write a bash loop that renames every .jpeg file to .jpg",
    "What does the `yield` keyword do in Python?",
    "How do I parse a date string in JavaScript?",
    "How do I rebase my branch onto another one?",
    "When should I use a set instead of a list?",
    "How does a left join differ from an inner join?",
    "What is a monad, in plain words?",
])
def test_a_question_any_developer_might_ask_raises_it(text):
    from lynkr.memory.question import GENERAL, about_project
    assert about_project(text) == GENERAL


@pytest.mark.parametrize("text", ["What time zone are the cron jobs in?", "Is quicksort stable?",
                                  "How do I undo the last commit but keep the changes?", "thanks, that worked"])
def test_a_turn_that_says_neither_keeps_min_relevance(text):
    from lynkr.memory.question import NEITHER, about_project
    from lynkr.memory.rank import bar
    assert about_project(text) == NEITHER and bar(0.28, about_project(text)) == 0.28


RULE = "Background work goes through Celery; no threads in request handlers."
RULE_ASKED = "Can I spawn a thread to send the welcome email?"       # relevance 0.23: below 0.28, above 0.18


@pytest.mark.parametrize("adaptive", [True, False])
def test_adaptive_bar_off_holds_every_turn_to_min_relevance(adaptive):
    """The same rule asked about in other words comes back with the moving bar and not without it;
    memory_search (not a turn) always uses min_relevance."""
    import os

    from lynkr.kit.embed import get_embedder
    from lynkr.memory.bank import Limits, MemoryBank
    from lynkr.memory.scope import Scope
    from lynkr.memory.store import MemoryStore

    bank = MemoryBank(MemoryStore(384, None), get_embedder(os.environ["LYNKR_EMBED_MODEL_PATH"]),
                      Limits(adaptive_bar=adaptive))
    scope = Scope("", "/home/dev/shop")
    assert [o for o, _m in bank.learn(scope, RULE)] == ["added"]
    assert bool(bank.recall(scope, RULE_ASKED, turn=True)) is adaptive
    assert bank.recall(scope, RULE_ASKED) == []


def test_nothing_comes_back_below_the_bar_and_neighbours_of_the_best_come_with_it():
    """The best memory must reach the bar; once it does, memories up to SPREAD below the bar come
    along (a fact asked in other words ranks just under its neighbour), and none further down."""
    import numpy as np

    from lynkr.memory.rank import SPREAD, rank

    def unit(cos):      # a memory vector whose cosine to the query e0 is `cos`
        return np.array([cos, (1 - cos * cos) ** 0.5, 0.0], dtype=np.float32)
    # relevance = 0.75 * cosine (the texts share no word)
    matrix = np.stack([unit(0.44), unit((0.30 - SPREAD + 0.02) / 0.75), unit((0.30 - SPREAD - 0.02) / 0.75)])
    args = dict(word_sets=[frozenset()] * 3, importance=np.zeros(3), last_used=np.zeros(3),
                query=np.array([1.0, 0.0, 0.0], dtype=np.float32), query_words=frozenset({"x"}), now=0.0, limit=5)
    assert [row for _s, _r, row in rank(matrix, min_relevance=0.30, spread=SPREAD, **args)] == [0, 1]
    assert [row for _s, _r, row in rank(matrix, min_relevance=0.30, **args)] == [0]        # memory_search
    assert rank(matrix, min_relevance=0.34, spread=SPREAD, **args) == []


def test_a_long_statement_is_cut_at_a_word_and_a_flood_of_sentences_is_bounded():
    long = "This project uses " + "very " * 400 + "long names."
    (c,) = extract(long, max_chars=200)
    assert len(c.text) <= 200 and not c.text.endswith("ver")
    many = " ".join(f"This project uses tool{i}." for i in range(1000))
    assert len(extract(many, max_candidates=8)) == 8


def test_one_shot_developer_prompts_yield_almost_no_candidates():
    """The 678 distinct prompts of the semantic cache's dev sets (developer questions, requests with
    verbs of every kind, pasted error messages), as a user's own turns: at most 1 % yield a
    candidate memory."""
    from tests.conftest import SHARED

    prompts = {json.loads(line)[k] for name in ("coding-cache-dev.jsonl", "coding-cache-dev2.jsonl")
               for line in (SHARED / "eval" / name).read_text().splitlines() if line.strip() for k in ("a", "b")}
    taken = [p for p in prompts if extract(p)]
    assert len(prompts) > 600 and len(taken) <= len(prompts) // 100, taken


def test_the_project_is_the_working_directory_each_client_states():
    """Claude Code states it in the system prompt (or, newer, in an environment reminder of the first
    message), Codex in `<cwd>`; a request that states none has no project."""
    claude = claude_body(APP, "hi")
    assert project_of(claude) == APP
    codex = {"messages": [{"role": "user", "content": [{"type": "text", "text": f"<environment_context>\n  <cwd>{OTHER}/</cwd>\n</environment_context>"}]}]}
    assert project_of(codex) == OTHER
    newer = {"messages": [{"role": "user", "content": [{"type": "text", "text": (
        "<system-reminder>\n# Environment\nYou have been invoked in the following environment: \n"
        f" - Primary working directory: {APP}\n - Is a git repository: false\n</system-reminder>")}]}]}
    assert project_of(newer) == APP
    assert project_of({"system": [{"type": "text", "text": "You are helpful."}], "messages": []}) is None


def test_odd_characters_in_a_path_stay_one_bounded_project():
    odd = "/tmp/we'ird \"name\"; DROP TABLE memories;--/\u00e9\u6f22\x00\x07" + "x" * 5000
    s = scope_of(claude_body(odd, "hi"), {})
    assert s is not None and len(s.project) <= 1024 and "\x00" not in s.project and s.project.startswith("/tmp/we'ird")
    assert scope_of(claude_body(APP, "hi"), {"x-lynkr-tenant": "a"}, tenant_headers=["x-lynkr-tenant"]) != \
        scope_of(claude_body(APP, "hi"), {"x-lynkr-tenant": "b"}, tenant_headers=["x-lynkr-tenant"])


# -- through the proxy ------------------------------------------------------------------------------

async def test_a_fact_from_one_session_comes_back_in_the_next_after_the_breakpoint(proxy, tmp_path):
    """Session 1 states a fact; session 2's question gets it appended to its newest user turn,
    after the client's own (cache-marked) block; the system prompt and tools are untouched."""
    up, base = proxy
    status, _ = await post(base, claude_body(APP, "Note: the inventory API runs on port 8089."), "s1")
    assert status == 200
    await settle(tmp_path / "state")
    body = claude_body(APP, "Which port does the inventory API listen on?")
    status, _ = await post(base, body, "s2")
    assert status == 200
    sent = up.requests[-1]
    assert sent["system"] == body["system"]
    texts = last_user_texts(sent)
    assert texts[:2] == [b["text"] for b in body["messages"][-1]["content"]]       # the client's blocks first
    assert "port 8089" in texts[-1] and texts[-1].startswith("<lynkr-memory>")
    assert "cache_control" in sent["messages"][-1]["content"][1]                   # the breakpoint stays before it
    assert "cache_control" not in sent["messages"][-1]["content"][-1]


async def test_lynkrs_own_breakpoints_go_before_the_memory_block(proxy, tmp_path):
    """A client that sets no cache markers gets Lynkr's breakpoints (provider_call's prompt cache):
    the newest turn's marker lands on the client's last block, never on the memory after it, and
    the next turn repeats the previous turn's bytes."""
    up, base = proxy
    await post(base, claude_body(APP, "Note: the inventory exports are written to s3://inv-exports."), "p1")
    await settle(tmp_path / "state")

    def unmarked(body):
        for m in body["messages"]:
            for b in m["content"]:
                b.pop("cache_control", None)
        body["system"][0]["text"] += " " + "Follow the project's conventions. " * 400     # long enough to cache
        return body
    q = "Where are the inventory exports written?"
    await post(base, unmarked(claude_body(APP, q)), "p2")
    turn1 = up.requests[-1]
    last = turn1["messages"][-1]["content"]
    assert last[-1]["text"].startswith("<lynkr-memory>") and "cache_control" not in last[-1]
    assert "cache_control" in last[-2]
    await post(base, unmarked(claude_body(APP, q, "Thanks, and who reads them?", answers=["s3://inv-exports"])), "p2")
    assert prefix_violations(turn1, up.requests[-1]) == []


async def test_later_turns_repeat_the_injection_byte_for_byte(proxy, tmp_path):
    """Turn n+1 re-sends turn n's message without the memory; the proxy puts the same block back,
    so what goes upstream repeats turn n's bytes (0 prefix violations) and nothing is shown twice."""
    up, base = proxy
    await post(base, claude_body(APP, "Remember that releases are tagged from the main branch on Fridays."), "s1")
    await settle(tmp_path / "state")
    q = "When and from which branch do we tag releases?"
    await post(base, claude_body(APP, q), "s2")
    turn1 = up.requests[-1]
    await post(base, claude_body(APP, q, "And how do we tag a release, the same way?", answers=["Fridays, from main."]), "s2")
    turn2 = up.requests[-1]
    assert memory_blocks(turn1) and prefix_violations(turn1, turn2) == []
    assert [i for i, _ in memory_blocks(turn2)] == [0]          # shown once, in the turn that asked


async def test_no_injection_when_nothing_is_relevant_and_never_across_projects(proxy, tmp_path):
    up, base = proxy
    await post(base, claude_body(OTHER, "Note: the billing service stores invoices in the ledger_v2 table."), "b1")
    await settle(tmp_path / "state", OTHER)
    await post(base, claude_body(APP, "Where are invoices stored?"), "a1")
    assert memory_blocks(up.requests[-1]) == []                  # another project's fact
    await post(base, claude_body(OTHER, "How do I reverse a list in Python?"), "b2")
    assert memory_blocks(up.requests[-1]) == []                  # nothing relevant
    await post(base, claude_body(OTHER, "Which table holds the invoices?"), "b3")
    assert "ledger_v2" in memory_blocks(up.requests[-1])[0][1]


async def test_a_house_rule_asked_in_other_words_comes_back_and_a_general_question_does_not(proxy, tmp_path):
    """"Can I spawn a thread to send the welcome email?" shares one word with "Background work goes
    through Celery; no threads in request handlers" and sits below `min_relevance`; asked about the
    project's own ways, it gets the rule. A general question about threads gets nothing."""
    up, base = proxy
    await post(base, claude_body(APP, RULE), "f1")
    await settle(tmp_path / "state")
    await post(base, claude_body(APP, "Explain how threads differ from processes in Python."), "f2")
    assert memory_blocks(up.requests[-1]) == []
    await post(base, claude_body(APP, RULE_ASKED), "f3")
    assert "Celery" in memory_blocks(up.requests[-1])[0][1]


KEYED = PIPELINE + """keys:
  alice: {{secret_sha256: "{alice}", team: payments}}
  bob: {{secret_sha256: "{bob}", team: payments}}
  carol: {{secret_sha256: "{carol}", team: web}}
teams:
  payments: {{}}
  web: {{}}
"""


@pytest.mark.parametrize("share,bob_sees,carol_sees", [("team", True, False), ("key", False, False),
                                                       ("project", True, True)])
async def test_client_keys_partition_a_projects_memories_by_team_or_key(lynkr, write_pipeline, tmp_path, share,
                                                                      bob_sees, carol_sees):
    """With client keys, one project's memories belong to the stating key's team (`share: team`),
    to the key alone (`share: key`) or to every key (`share: project`): bob is alice's teammate,
    carol is on another team, all three in the same working directory."""
    import hashlib

    def sha(s):
        return hashlib.sha256(s.encode()).hexdigest()
    up = AnthropicUpstream(lambda body: text_message("Noted."))
    runner, url = await start_app(up.app())
    state = tmp_path / "state"
    text = KEYED.format(url=url, state=state, alice=sha("alice-secret-1"), bob=sha("bob-secret-12"),
                        carol=sha("carol-secret-1")).replace("{id: memory, uses: memory}",
                                                            f"{{id: memory, uses: memory, with: {{share: {share}}}}}")
    _, base = await lynkr(write_pipeline(text))
    try:
        status, _ = await post(base, claude_body(APP, "Note: the inventory API runs on port 8089."), "s1",
                               headers={"x-api-key": "alice-secret-1"})
        assert status == 200
        await settle(state, APP)
        for who, secret, sees in (("bob", "bob-secret-12", bob_sees), ("carol", "carol-secret-1", carol_sees),
                                  ("alice", "alice-secret-1", True)):
            status, _ = await post(base, claude_body(APP, "Which port does the inventory API listen on?"), f"q-{who}",
                                   headers={"x-api-key": secret})
            assert status == 200
            blocks = memory_blocks(up.requests[-1])
            assert bool(blocks and "8089" in blocks[0][1]) is sees, (who, blocks)
    finally:
        await runner.cleanup()


async def test_a_request_without_a_project_is_left_alone(proxy):
    up, base = proxy
    body = {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": "Note: we use tabs."}]}
    status, _ = await post(base, body, "n1")
    assert status == 200 and up.requests[-1]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Note: we use tabs."}]}]
    assert "tools" not in up.requests[-1]


async def test_memories_survive_a_restart(lynkr, write_pipeline, tmp_path):
    up = AnthropicUpstream(lambda body: text_message("Noted."))
    runner, url = await start_app(up.app())
    try:
        pipe = write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state"))
        engine, base = await lynkr(pipe)
        await post(base, claude_body(APP, "Note: the warehouse codes are three letters, like BER."), "r1")
        await settle(tmp_path / "state")
        await engine.stop()
        _, base2 = await lynkr(pipe)
        await post(base2, claude_body(APP, "What do warehouse codes look like?"), "r2")
        assert "three letters" in memory_blocks(up.requests[-1])[0][1]
    finally:
        await runner.cleanup()


# -- the tools --------------------------------------------------------------------------------------

def tool_script(calls, final="Done."):
    """Calls each memory tool in `calls` (one per round), then answers with what the results said."""
    def script(body):
        msgs = body["messages"]
        n = sum(1 for m in msgs if m["role"] == "assistant" and any(
            b.get("type") == "tool_use" and b["name"].startswith("memory_") for b in m["content"]))
        if n < len(calls):
            name, args = calls[n] if not callable(calls[n]) else calls[n](body)
            return tool_message(name, args, text=f"step {n}")
        results = [b for m in msgs for b in (m["content"] if isinstance(m["content"], list) else ())
                   if b.get("type") == "tool_result"]
        return text_message(final + " " + " | ".join(str(r.get("content")) + ("!" if r.get("is_error") else "") for r in results))
    return script


@pytest.mark.parametrize("stream", [False, True])
async def test_memory_add_and_search_are_answered_by_the_proxy(lynkr, write_pipeline, tmp_path, stream):
    """The model adds a memory and searches for it; the proxy answers both and the client sees one
    assistant message without any memory tool call."""
    up = AnthropicUpstream(tool_script([("memory_add", {"content": "Deploys need the VPN on.", "kind": "fact"}),
                                        ("memory_search", {"query": "what do deploys need?"})]))
    runner, url = await start_app(up.app())
    try:
        _, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
        status, raw = await post(base, claude_body(APP, "Save that deploys need the VPN.", stream=stream), "t1")
    finally:
        await runner.cleanup()
    assert status == 200
    assert {t["name"] for t in up.requests[0]["tools"]} >= {"Bash", "memory_search", "memory_add", "memory_forget"}
    assert len(up.requests) == 3
    text = raw.decode()
    assert "memory_add" not in text and "memory_search" not in text and "tool_use" not in text
    text = answer_text(raw)
    assert "Saved as m_" in text and "Deploys need the VPN on." in text


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
@pytest.mark.parametrize("stream", [False, True])
async def test_memory_tools_in_the_openai_protocols(lynkr, write_pipeline, tmp_path, path, stream):
    up = AnthropicUpstream(tool_script([("memory_add", {"content": "The cache TTL is 300 seconds."}),
                                        ("memory_search", {"query": "cache ttl"})]))
    runner, url = await start_app(up.app())
    cwd = f"<environment_context>\n  <cwd>{APP}</cwd>\n</environment_context>"
    tool = {"type": "function", "function": {"name": "shell", "description": "run", "parameters": {"type": "object", "properties": {}}}}
    if path == "/v1/responses":
        body = {"model": "claude-test", "stream": stream, "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": cwd}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Save the cache TTL."}]}],
            "tools": [{"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object", "properties": {}}}]}
    else:
        body = {"model": "claude-test", "stream": stream, "tools": [tool], "messages": [
            {"role": "user", "content": cwd}, {"role": "user", "content": "Save the cache TTL."}]}
    try:
        _, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
        async with aiohttp.ClientSession() as s:
            async with s.post(base + path, json=body, headers={"authorization": "Bearer k"}) as r:
                status, raw = r.status, await r.read()
    finally:
        await runner.cleanup()
    assert status == 200, raw[:500]
    text = raw.decode()
    assert len(up.requests) == 3 and "memory_" not in text
    assert "The cache TTL is 300 seconds." in answer_text(raw)


async def test_bad_tool_input_is_a_bounded_tool_error(lynkr, write_pipeline, tmp_path):
    """A 1 MB memory, 10,000 memory_add calls in one turn and a memory_forget of another project's id
    each get a clear tool error (at most 20 adds are answered per turn, the refused 1 MB one among
    them); the request still answers 200 and nothing unbounded is stored."""
    other_id = {}

    def forget_other(body):
        return "memory_forget", {"id": other_id["id"]}

    flood = {"type": "tool_use", "name": "memory_add"}

    def script(body):
        msgs = body["messages"]
        rounds = sum(1 for m in msgs if m["role"] == "assistant")
        if rounds == 0:
            msg = tool_message("memory_add", {"content": "x" * 1_000_000})
            for i in range(10_000):
                msg["content"].append({**flood, "id": f"toolu_f{i}", "input": {"content": f"Fact number {i} is true."}})
            return msg
        if rounds == 1:
            return tool_message(*forget_other(body))
        results = [b for m in msgs for b in (m["content"] if isinstance(m["content"], list) else ()) if b.get("type") == "tool_result"]
        return text_message(json.dumps([[r.get("is_error", False), str(r["content"])[:200]] for r in results]))

    up = AnthropicUpstream(lambda body: text_message("Noted."))
    runner, url = await start_app(up.app())
    try:
        engine, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
        await post(base, claude_body(OTHER, "Note: the billing service retries webhooks five times."), "o1")
        await settle(tmp_path / "state", OTHER)
        up.script = script
        from lynkr.memory.store import open_memory, close_memory
        store = open_memory(str(tmp_path / "state" / "memory.duckdb"), 384)
        try:
            other_id["id"] = next(m.id for m in store.list() if m.project == OTHER)
        finally:
            close_memory(store)
        status, raw = await post(base, claude_body(APP, "Save these facts."), "o2")
    finally:
        await runner.cleanup()
    assert status == 200
    results = json.loads(orjson.loads(raw)["content"][-1]["text"])
    big, *adds, forget = results
    assert big[0] and "at most 500 characters" in big[1] and "1,000,000" in big[1]
    assert sum(1 for e, _ in adds if not e) == 19 and all("at most 20 memory_add" in t for e, t in adds if e)
    assert forget[0] and "no memory" in forget[1] and "in this project" in forget[1]


# -- the dashboard panel, telemetry -----------------------------------------------------------------

async def test_the_dashboard_lists_and_forgets_and_telemetry_never_holds_memory_text(lynkr, write_pipeline, tmp_path):
    """The memory panel's API lists a project's memories behind the admin token and deletes one;
    the forgotten memory is not injected any more; no telemetry row holds a memory's text, and
    `lynkr report --export` writes memories only when asked (`--memory FILE`)."""
    import duckdb

    up = AnthropicUpstream(lambda body: text_message("Noted."))
    runner, url = await start_app(up.app())
    tel = tmp_path / "tel.duckdb"
    try:
        pipe = write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")
                              + "dashboard: {enabled: true}\nserver: {admin_token: s3cret}\n")
        engine, base = await lynkr(pipe, telemetry_path=str(tel))
        await post(base, claude_body(APP, "Note: the nightly backup bucket is s3://zebra-backups-17."), "d1")
        await settle(tmp_path / "state")
        await post(base, claude_body(APP, "Which bucket holds the nightly backups?"), "d2")
        assert "zebra-backups-17" in memory_blocks(up.requests[-1])[0][1]
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/dashboard/api/memory") as r:
                assert r.status == 401
            async with s.get(base + "/dashboard/api/memory", params={"project": APP},
                             headers={"Authorization": "Bearer s3cret"}) as r:
                data = await r.json()
            assert data["enabled"] and data["projects"] == [{"project": APP, "tenant": "", "memories": 1}]
            (m,) = data["memories"]
            assert "zebra-backups-17" in m["text"]
            async with s.delete(base + f"/dashboard/api/memory/{m['id']}", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200
            async with s.delete(base + f"/dashboard/api/memory/{m['id']}", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 404
        await post(base, claude_body(APP, "Which bucket holds the nightly backups?"), "d3")
        assert memory_blocks(up.requests[-1]) == []
        await post(base, claude_body(APP, "Note: our deploy window is Tuesday 14:00 UTC."), "d4")
        await settle(tmp_path / "state")
        await engine.stop()
    finally:
        await runner.cleanup()
    con = duckdb.connect(str(tel), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        dump = " ".join(str(row) for t in tables for row in con.execute(f'SELECT * FROM "{t}"').fetchall())
    finally:
        con.close()
    assert "stage_events" in tables or tables
    assert "zebra-backups" not in dump and "Tuesday" not in dump and "m_" in dump    # ids and counts only
    from lynkr.telemetry.reports import export_parquet
    plain = [Path(f).name for f, _n in export_parquet(str(tel), str(tmp_path / "out1"))]
    assert "memories.parquet" not in plain
    asked = dict(export_parquet(str(tel), str(tmp_path / "out2"), memory=str(tmp_path / "state" / "memory.duckdb")))
    assert asked[str(tmp_path / "out2" / "memories.parquet")] == 1


def test_recorded_sessions_replay_with_memory_on_and_zero_prefix_violations(tmp_path):
    """`lynkr replay` of the recorded Claude Code and Codex sessions through a pipeline with
    `memory` (plus a session that states a fact and one that is answered from it): turn n+1
    always repeats what turn n sent upstream."""
    from lynkr.cli.replay import replay_sessions
    from tests.conftest import FIXTURES
    import shutil

    root = tmp_path / "sessions"
    shutil.copytree(FIXTURES, root / "fixtures")
    for name, turns in (("a-states", ["Note: the inventory API runs on port 8089."]),
                        ("b-asks", ["Which port does the inventory API listen on?", "And in production?"])):
        folder = root / name
        folder.mkdir()
        for k in range(1, len(turns) + 1):
            body = claude_body("/home/dev/inventory-app", *turns[:k])
            (folder / f"req_{k:03d}.json").write_text(json.dumps(
                {"path": "/v1/messages", "headers": {"x-claude-code-session-id": name}, "body": body}))
    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPELINE.format(url="http://127.0.0.1:9", state=tmp_path / "state"))
    rep = replay_sessions(str(root), str(pipe))["a"]
    assert rep["total"]["violations"] == 0
    injected = [e["detail"].get("injected") for s in rep["sessions"] for r in s["requests"] for e in r["events"]
                if e["id"] == "memory" and e["detail"].get("injected")]
    assert injected, "the asking session got the fact"


async def test_a_statement_in_a_failed_request_is_learned_when_the_retry_succeeds(lynkr, write_pipeline, tmp_path):
    """Learning waits for a successful answer: the upstream fails the first try, the client retries
    the same request, and the fact is stored then (not lost, not stored twice)."""
    up = AnthropicUpstream(lambda body: text_message("Noted."))
    up.fail_next.append((500, {"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    runner, url = await start_app(up.app())
    try:
        no_retry = PIPELINE.format(url=url, state=tmp_path / "state").replace(
            'base_url: "%s"}' % url, 'base_url: "%s", retry: {attempts: 1}}' % url)
        _, base = await lynkr(write_pipeline(no_retry))
        body = claude_body(APP, "Note: the search index is rebuilt every Sunday at 03:00.")
        first, _ = await post(base, body, "f1")
        again, _ = await post(base, body, "f1")
        await settle(tmp_path / "state")
    finally:
        await runner.cleanup()
    assert first == 500 and again == 200
    from lynkr.memory.store import close_memory, open_memory
    store = open_memory(str(tmp_path / "state" / "memory.duckdb"), 384)
    try:
        assert [m.text for m in store.list()] == ["The search index is rebuilt every Sunday at 03:00."]
    finally:
        close_memory(store)
