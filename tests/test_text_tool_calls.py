"""Tool calls written as text (lynkr/toolcalls): formats and variants beyond the dev set, what must
stay prose, bad input, and the streaming rules (same result however the text is cut; prose with no
call-like text is released at once)."""
import json
import random

import pytest

from lynkr.toolcalls import Recoverer, extract

CLINE = [
    {"name": "read_file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}},
                                           "required": ["path"], "additionalProperties": False}},
    {"name": "execute_command", "input_schema": {
        "type": "object", "properties": {"command": {"type": "string"}, "requires_approval": {"type": "boolean"}},
        "required": ["command"]}},
    {"name": "list_files", "input_schema": {
        "type": "object", "properties": {"path": {"type": "string"}, "recursive": {"type": "boolean"},
                                         "depth": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
        "required": ["path"]}},
    {"name": "write_to_file", "input_schema": {
        "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"]}},
]

# (label, text, expected calls, expected prose; None = the text unchanged)
POSITIVE = [
    ("hermes with parameters key and prose after",
     'Reading it now.\n<tool_call>\n{"name": "read_file", "parameters": {"path": "setup.cfg"}}\n</tool_call>\nThen I will decide.',
     [("read_file", {"path": "setup.cfg"})], "Reading it now.\n\nThen I will decide."),
    ("qwen3-coder function block without the tool_call wrapper",
     "Listing.\n<function=list_files>\n<parameter=path>\nsrc\n</parameter>\n<parameter=recursive>\nFalse\n</parameter>\n</function>",
     [("list_files", {"path": "src", "recursive": False})], "Listing."),
    ("llama python_tag, two calls, eot token",
     '<|python_tag|>{"name": "read_file", "parameters": {"path": "a.py"}}; {"name": "read_file", "parameters": {"path": "b.py"}}<|eot_id|>',
     [("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"})], ""),
    ("mistral list after a space, Python True",
     '[TOOL_CALLS] [{"name": "execute_command", "arguments": {"command": "make test", "requires_approval": True}}]',
     [("execute_command", {"command": "make test", "requires_approval": True})], ""),
    ("deepseek v3.1 name<sep>json form",
     'Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{"path": "Cargo.toml"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
     [("read_file", {"path": "Cargo.toml"})], "Sure."),
    ("deepseek lone call token in ASCII spelling",
     'Ok.<|tool_call_begin|>function<|tool_sep|>read_file\n```json\n{"path": "go.sum"}\n```<|tool_call_end|>',
     [("read_file", {"path": "go.sum"})], "Ok."),
    ("glm value coerced through anyOf",
     "<tool_call>list_files\n<arg_key>path</arg_key>\n<arg_value>lib</arg_value>\n<arg_key>depth</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
     [("list_files", {"path": "lib", "depth": 2})], ""),
    ("tool_call fence",
     'Running it:\n```tool_call\n{"name": "execute_command", "arguments": {"command": "ls -a"}}\n```',
     [("execute_command", {"command": "ls -a"})], "Running it:"),
    ("OpenAI-shaped object with string arguments",
     '{"type": "function", "function": {"name": "read_file", "arguments": "{\\"path\\": \\"x.txt\\"}"}}',
     [("read_file", {"path": "x.txt"})], ""),
    ("pythonic call with the name in another case",
     '[READ_FILE(path="main.go")]', [("read_file", {"path": "main.go"})], ""),
    ("llama JSON ending the answer on the same line as the prose",
     'To see why it exits, I will read the log. {"name": "read_file", "parameters": {"path": "app.log"}}<|eot_id|>',
     [("read_file", {"path": "app.log"})], "To see why it exits, I will read the log."),
    ("gemma printing its call through default_api",
     'Opening it.\n```tool_code\nprint(default_api.read_file(path="lib/a.rb"))\n```',
     [("read_file", {"path": "lib/a.rb"})], "Opening it."),
    ("qwen3-coder null for an optional integer",
     "<tool_call>\n<function=list_files>\n<parameter=path>\n.\n</parameter>\n<parameter=depth>\nnull\n</parameter>\n</function>\n</tool_call>",
     [("list_files", {"path": ".", "depth": None})], ""),
    ("Claude-style function_calls / invoke XML",
     'Checking.\n<function_calls>\n<invoke name="execute_command">\n<parameter name="command">git status</parameter>\n'
     '<parameter name="requires_approval">false</parameter>\n</invoke>\n</function_calls>',
     [("execute_command", {"command": "git status", "requires_approval": False})], "Checking."),
    ("MiniMax-M2 wrapper around invoke",
     '<minimax:tool_call>\n<invoke name="read_file">\n<parameter name="path">README.md</parameter>\n</invoke>\n</minimax:tool_call>',
     [("read_file", {"path": "README.md"})], ""),
    ("llama.cpp generic tool_call wrapper", '{"tool_call": {"name": "read_file", "arguments": {"path": "a"}}}',
     [("read_file", {"path": "a"})], ""),
    ("two calls on separate lines of one fence",
     'Two reads:\n```json\n{"name": "read_file", "arguments": {"path": "a"}}\n{"name": "read_file", "arguments": {"path": "b"}}\n```',
     [("read_file", {"path": "a"}), ("read_file", {"path": "b"})], "Two reads:"),
    ("ReAct action / action_input", '{"action": "execute_command", "action_input": {"command": "ls"}}',
     [("execute_command", {"command": "ls"})], ""),
    ("a tool_call tag inside a JSON string does not end the block",
     '<tool_call>{"name": "write_to_file", "arguments": {"path": "d.md", "content": "use <tool_call>x</tool_call>"}}</tool_call>',
     [("write_to_file", {"path": "d.md", "content": "use <tool_call>x</tool_call>"})], ""),
]

NEGATIVE = [
    ("qwen3-coder syntax in inline code",
     "Qwen3-Coder writes `<function=read_file><parameter=path>a</parameter></function>` inside a tool_call block."),
    ("markdown links and references at line starts", "[the docs](https://example.com) explain it.\n[1] and [2] are references."),
    ("markers inside another language's fence",
     'Example:\n```python\nprint("[TOOL_CALLS][{\\"name\\": \\"read_file\\", \\"arguments\\": {\\"path\\": \\"a\\"}}]")\n<tool_call>\n```\nDone.'),
    ("call-shaped JSON whose name is no declared tool", 'Config:\n\n{"name": "my-app", "arguments": {"verbose": true}}\n\nSave it as app.json.'),
    ("a table and braces that are not JSON", "| a | b |\n|---|---|\n| {x} | [y] |\n\n{not json at all}"),
    ("a declared call mid-sentence with prose after it",
     'Maybe I should call {"name": "read_file", "parameters": {"path": "a"}} again? No, it is empty.'),
    ("a declared call shown in inline code", 'Call it like `{"name": "read_file", "arguments": {"path": "a"}}` yourself.'),
]


def _streamed(text, tools, seed):
    rng, r, pieces, pos = random.Random(seed), Recoverer(tools), [], 0
    while pos < len(text):
        n = rng.choice((1, 2, 3, 7, 20))
        pieces += r.feed(text[pos:pos + n])
        pos += n
    pieces += r.finish()
    return ([(p[1].name, p[1].input) for p in pieces if p[0] == "call"],
            "".join(p[1] for p in pieces if p[0] == "text"))


@pytest.mark.parametrize("label,text,calls,prose", POSITIVE, ids=[p[0] for p in POSITIVE])
def test_formats_recover_the_calls_whole_and_streamed(label, text, calls, prose):
    """Each format's call comes out with its name and typed input and the prose around it, and a
    stream cut at random points gives exactly the same result."""
    x = extract(text, CLINE)
    assert [(c.name, c.input) for c in x.calls] == calls
    assert x.prose == prose
    for seed in range(20):
        assert _streamed(text, CLINE, seed) == (calls, prose)


@pytest.mark.parametrize("label,text", NEGATIVE, ids=[n[0] for n in NEGATIVE])
def test_examples_and_mentions_stay_prose(label, text):
    """Code, examples and syntax explanations produce no call and reach the user unchanged."""
    x = extract(text, CLINE)
    assert x.calls == [] and x.rejections == []
    assert x.prose == text
    for seed in range(20):
        assert _streamed(text, CLINE, seed) == ([], text)


def test_think_block_is_thinking_and_never_a_source_of_calls():
    """A call inside <think> is reasoning: not extracted, not prose; the answer after it is prose."""
    x = extract('<think>maybe <|python_tag|>{"name": "read_file", "parameters": {"path": "z"}}</think>No call needed.', CLINE)
    assert x.calls == [] and x.prose == "No call needed." and "python_tag" in x.thinking


def test_rejections_say_why():
    """Undeclared tools, schema violations and empty names are not emitted, and each is recorded
    with its reason; valid calls next to them still are."""
    text = ('<tool_call>{"name": "web_search", "arguments": {"q": "x"}}</tool_call>'
            '<tool_call>{"name": "read_file", "arguments": {"path": "a", "extra": 1}}</tool_call>'
            '<tool_call>{"name": "", "arguments": {}}</tool_call>'
            '<tool_call>{"name": "read_file", "arguments": {"path": "ok.txt"}}</tool_call>')
    x = extract(text, CLINE)
    assert [(c.name, c.input) for c in x.calls] == [("read_file", {"path": "ok.txt"})]
    assert [r.reason for r in x.rejections] == ["undeclared", "schema", "empty_name"]


# ---- bad input ------------------------------------------------------------------------------------

def test_json_that_never_closes_stays_visible_and_is_recorded():
    """An opened call whose JSON never closes (and swallowed the prose after it) is released as text."""
    text = ('Let me run it.\n<tool_call>\n{"name": "execute_command", "arguments": {"command": "echo hi\n\n'
            'Anyway, the rest of my answer is here.')
    x = extract(text, CLINE)
    assert x.calls == []
    assert "the rest of my answer is here." in x.prose and x.prose.startswith("Let me run it.")
    assert [r.reason for r in x.rejections] == ["unclosed"]
    assert _streamed(text, CLINE, 3)[1] == x.prose


def test_a_two_megabyte_argument_streams_through():
    """A 2 MB file content arrives intact as one call, whole or streamed in 1 KB pieces."""
    big = "".join(f"line {i}: " + "x" * 60 + "\n" for i in range(32_000))
    assert len(big) > 2_000_000
    text = "Writing.\n<tool_call>\n" + json.dumps({"name": "write_to_file", "arguments": {"path": "big.txt", "content": big}}) + "\n</tool_call>"
    r, pieces = Recoverer(CLINE), []
    for i in range(0, len(text), 1024):
        pieces += r.feed(text[i:i + 1024])
    pieces += r.finish()
    calls = [p[1] for p in pieces if p[0] == "call"]
    assert len(calls) == 1 and calls[0].input["content"] == big
    assert extract(text, CLINE).calls[0].input["content"] == big


def test_nested_tags_give_the_inner_call_once():
    """Doubled <tool_call> tags: the call is recovered once and no tag leaks into the prose."""
    x = extract('<tool_call><tool_call>{"name": "execute_command", "arguments": {"command": "pwd"}}</tool_call></tool_call> done', CLINE)
    assert [(c.name, c.input) for c in x.calls] == [("execute_command", {"command": "pwd"})]
    assert x.prose == "done"


def test_a_hundred_calls_in_one_message():
    """100 calls in one answer all come out, in order."""
    text = "\n".join('<tool_call>{"name": "execute_command", "arguments": {"command": "echo %d"}}</tool_call>' % i
                     for i in range(100))
    x = extract(text, CLINE)
    assert [c.input["command"] for c in x.calls] == [f"echo {i}" for i in range(100)]


def test_empty_tool_name():
    """An empty name inside call markup is rejected and recorded; as bare JSON it is just text."""
    x = extract('ok\n<tool_call>{"name": "", "arguments": {"command": "ls"}}</tool_call>', CLINE)
    assert x.calls == [] and x.prose == "ok" and [r.reason for r in x.rejections] == ["empty_name"]
    bare = '{"name": "", "arguments": {}}'
    assert extract(bare, CLINE).prose == bare


def test_absurd_nesting_does_not_blow_up():
    """Deeply nested brackets inside and outside markup are handled without recursion errors."""
    x = extract("<tool_call>" + "[" * 100_000 + "</tool_call>", CLINE)
    assert x.calls == [] and [r.reason for r in x.rejections] == ["unparseable"]
    assert extract("[" * 100_000, CLINE).prose == "[" * 100_000


# ---- streaming ----------------------------------------------------------------------------------

def test_prose_without_call_like_text_is_released_at_once():
    """Each fed piece of plain prose comes straight back out (only trailing whitespace waits for
    the next piece); brackets, braces and HTML-ish tags mid-line do not hold anything back."""
    r = Recoverer(CLINE)
    assert r.feed("Hello, this is plain ") == [("text", "Hello, this is plain")]
    assert r.feed("prose { with } [brackets] and <b>tags</b>") == [("text", " prose { with } [brackets] and <b>tags</b>")]
    assert r.finish() == []


def test_only_a_possible_marker_is_held():
    """A tail that may start a marker waits; once it cannot, it is released."""
    r = Recoverer(CLINE)
    assert r.feed("Let me check <tool") == [("text", "Let me check")]
    assert r.feed("tip> here") == [("text", " <tooltip> here")]


FRAGMENTS = ["<tool_call>", "</tool_call>", "<function=execute_command>", "<parameter=command>", "</parameter>",
             "</function>", "<|python_tag|>", "[TOOL_CALLS]", "[ARGS]", "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>",
             "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<think>", "</think>", "```json\n", "```\n", "```python\n", "`",
             '{"name": "execute_command", "arguments": {"command": "ls"}}', '{"name": "x"', "[", "]", "{", "}", '"',
             "'", "\n", "\n\n", " ", "hello ", 'read_file(path="a")', ";", "<|eom_id|>", "\\", "<arg_key>",
             "</arg_value>", "<function_calls>", '<invoke name="read_file">', '<parameter name="path">', "</invoke>"]


def test_any_cutting_of_any_mix_of_markup_gives_the_whole_answer_result():
    """Random mixes of every format's markup, prose and broken pieces: no exception, and a stream
    cut at random points yields exactly the calls and prose of the whole text."""
    rng = random.Random(5)
    for _ in range(400):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 25)))
        r = Recoverer(CLINE)
        whole = r.feed(text) + r.finish()
        expected = ([(p[1].name, p[1].input) for p in whole if p[0] == "call"],
                    "".join(p[1] for p in whole if p[0] == "text"))
        for seed in range(3):
            assert _streamed(text, CLINE, seed) == expected, text
