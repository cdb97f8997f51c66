"""A sixth memory scenario, written as sealed held-out data: composed without reading the
extractor's rules, never run while it was written, never tuned on. A Django monolith (invoicing
and billing) and, as project B, the company's Android app; facts said the ways people say them to a
coding agent: plain statements, preferences, asides inside a longer request, small talk first,
lowercase without a final stop, two facts in one turn.

    python benchmarks/memory_eval.py --scenario fresh6
"""

A, B = "/home/priya/work/ledgerly", "/home/priya/work/ledgerly-android"

FACTS_A = [   # sessions 1 and 2
    "hi! before we start — we're on Django 4.2 LTS and Python 3.11",
    "The production database is Postgres 15 on RDS.",
    "Background jobs go through Celery with Redis as the broker.",
    "please don't add new raw SQL, use the ORM or ask Priya first",
    "Can you add a created_by field to Invoice? Also heads up, migrations have to stay backwards compatible because we deploy with zero downtime, so never rename a column in one step.",
    "Tests use pytest-django with factory_boy, not JSON fixtures",
    "Settings are split into config/settings/base.py, dev.py and prod.py.",
    "Our payment provider is Adyen and the webhook handler is in billing/webhooks.py.",
    "The app runs on GKE and ArgoCD deploys it from the ledgerly-deploy repo.",
    "frontend is server-rendered templates with HTMX and Alpine.js, we are not adding React",
    "ok the flaky test in tests/api/test_exports.py is back, can you look? btw money is always stored as integer cents in a BigIntegerField, never as floats.",
    "Sentry catches errors in prod; the DSN comes from the SENTRY_DSN env var.",
    "Thanks for that. Going forward, staging is at staging.ledgerly.io and its database is reset every Sunday night.",
    "I'd prefer class-based views for anything new, except tiny one-off endpoints.",
    "The REST API is built with Django REST Framework and versioned under /api/v2/.",
    "line length is 100, enforced by ruff in pre-commit",
    "Emails are sent through Postmark, and in dev they land in MailHog on port 8025.",
    "Tomasz owns the billing domain, talk to him before touching invoice numbering.",
    "The celery beat schedule lives in config/celery.py. The nightly dunning job runs at 02:30 UTC.",
    "we translate with django's gettext, the supported languages are English, German and Polish",
]
NEEDS_FACT = [   # session 3: (question, the fact it needs, by its index in FACTS_A)
    ("What Django release is this project pinned to?", 0),
    ("What do we use to run tasks asynchronously outside the request cycle?", 2),
    ("Is it fine to write a hand-tuned query with cursor.execute for this report?", 3),
    ("Can I rename the customer_email column in a single migration?", 4),
    ("Where do the payment gateway's callbacks get handled?", 7),
    ("Should I build the new dashboard widget as a React component?", 9),
    ("What field type should I use for an invoice total?", 10),
    ("Function-based or class-based for the new CSV export view?", 13),
    ("Which service delivers our transactional mail?", 16),
    ("Who should I check with before changing how invoice numbers are generated?", 17),
]
NO_FACT = [
    "What's the difference between select_related and prefetch_related?",
    "When does adding a database index make writes slower?",
    "How do I write a Python decorator that takes arguments?",
    "What does the GIL actually prevent?",
    "Give me a regex that matches a UK postcode.",
    "How do I undo my last git commit but keep the changes?",
    "What's the difference between a list and a tuple in Python?",
    "Explain CSRF in a couple of sentences.",
    "How do dataclasses compare to namedtuples?",
    "Which HTTP methods are supposed to be idempotent?",
]
FACTS_B = [
    "Heads up: minSdk is 26 and we target SDK 34.",
    "the UI is all Jetpack Compose, no XML layouts",
    "We use Hilt for dependency injection.",
    "Release builds go to the internal testing track in Play Console first.",
    "Our Android lead is Oluwaseun.",
    "I'd rather you use coroutines and Flow than RxJava.",
]
QUESTIONS_B = ["What's the lowest API level we support?", "Should I wire this up with RxJava?", "Who leads the Android side?"]
