"""A fifth memory scenario, written as sealed held-out data: composed without reading the
extractor's rules, never run while it was written, never tuned on. A Rust CLI (a log-slicing tool)
and, as project B, the Terraform repo of the team's infrastructure; facts said the ways people say
them to a coding agent: plain statements, preferences, asides inside a longer request, small talk
first, lowercase without a final stop, two facts in one turn.

    python benchmarks/memory_eval.py --scenario fresh5
"""

A, B = "/home/kenji/src/logslice", "/home/kenji/infra/platform-tf"

FACTS_A = [   # sessions 1 and 2
    "hey! so for context, the MSRV for this crate is 1.74 and CI checks it",
    "We parse arguments with clap 4 using the derive API.",
    "please never use unwrap() in library code, only in tests and examples",
    "Can you rename the `--out` flag to `--output`? Also, the binary reports errors with anyhow but the library crate defines its own with thiserror.",
    "Release binaries are built by cargo-dist for x86_64-unknown-linux-musl, aarch64-apple-darwin and x86_64-pc-windows-msvc.",
    "Benchmarks live in benches/ and use criterion; a PR fails if parse_line regresses by more than 5%.",
    "Marta owns the parser module, so loop her in on anything under src/parse/",
    "Fix the clippy warnings in src/output.rs — oh and btw, the default config file is ~/.config/logslice/config.toml, not the XDG data dir.",
    "We publish to crates.io as logslice-cli because the name logslice was already taken.",
    "the longest line we accept is 64 KiB, anything longer gets truncated with a warning",
    "Morning! Snapshot tests use insta, so review them with cargo insta review before committing.",
    "Async is tokio with the current_thread runtime; we don't want the multi-threaded scheduler in a CLI.",
    "I'd rather you take &str than String in public function signatures wherever you can.",
    "colors are turned off when NO_COLOR is set or stdout isn't a tty, the owo-colors crate handles that",
    "The changelog is generated from conventional commits by git-cliff, so please don't edit CHANGELOG.md by hand.",
    "Integration tests spawn the real binary with assert_cmd and live in tests/cli/.",
    "Before you start on the pager thing: our Windows CI runner is flaky and takes about 25 minutes, so don't block on it.",
    "Exit code 2 means bad usage and 3 means no lines matched. Keep those stable, people's scripts depend on them.",
    "Dependencies are checked with cargo-deny and anything GPL-licensed is rejected.",
    "Shell completions for bash, zsh and fish are generated at build time in build.rs.",
]
NEEDS_FACT = [   # session 3: (question, the fact it needs, by its index in FACTS_A)
    ("What's the oldest Rust toolchain we have to stay compatible with?", 0),
    ("Can I just panic if the config key is missing in the lib?", 2),
    ("What should I use for the lib's error enum?", 3),
    ("Which platforms do we ship prebuilt executables for?", 4),
    ("Who should review my changes to the parsing code?", 6),
    ("Where does the tool look for its settings by default?", 7),
    ("Which runtime flavor does the CLI run its futures on?", 11),
    ("Can I fix a typo in the release notes file directly?", 14),
    ("What status does the program return when nothing matches?", 17),
    ("How do users get tab completion in zsh?", 19),
]
NO_FACT = [
    "Explain the difference between Rc and Arc.",
    "How do lifetimes work when a struct holds a reference?",
    "What does #[inline] actually do in Rust?",
    "Write a bash one-liner that counts the lines of every .txt file under a directory.",
    "How do I squash my last three commits into one?",
    "When should I use a BTreeMap instead of a HashMap?",
    "How does UTF-8 encode a character outside the Basic Multilingual Plane?",
    "What's the difference between SIGTERM and SIGKILL?",
    "What does a trait object's vtable contain?",
    "Is binary search O(log n) even on a linked list?",
]
FACTS_B = [
    "fyi the state lives in an S3 bucket with DynamoDB locking, one state file per environment",
    "Everything runs in eu-central-1 except the DR copy in eu-west-1.",
    "We pin Terraform to 1.7.5 with tfenv.",
    "Modules come from our private registry at app.terraform.io/acme, never from GitHub refs.",
    "Jonas has to approve anything that touches IAM.",
    "Please always plan and apply through Atlantis instead of running terraform apply locally.",
]
QUESTIONS_B = ["Which AWS region are we deployed in?", "Who signs off on IAM policy changes?", "What Terraform version are we on?"]
