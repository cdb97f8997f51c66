"""Project A is "Harbormaster", an Elixir/Phoenix LiveView app where marinas manage and book berths
(Ecto/Postgres, Oban, PubSub, Swoosh, deployed to Cloud Run). Project B is its separate Terraform repo
for Google Cloud (state bucket, Cloud SQL, Cloud Armor, Atlantis). Facts are told the way a developer
tells a coding agent: plain statements, rules, decisions with reasons, conventions, owners, paths,
ports, versions and limits. Some are lowercase with no final period, some open with a greeting, and a
few are buried inside a longer request."""

A, B = "/home/marta/projects/harbormaster", "/home/marta/projects/harbormaster-infra"

FACTS_A = [
    # 0
    "hey! quick context before we start: we're on Elixir 1.16.2 with OTP 26.2, both pinned in .tool-versions, so use asdf and not the system elixir",
    # 1
    "Please don't add new hex packages without asking me first. Any change to mix.lock needs a review from Ilse anyway.",
    # 2
    "postgres for dev runs in docker on port 5433, not 5432, because my local postgres 14 already sits on 5432",
    # 3
    "We went with Oban instead of Quantum for scheduled jobs because we need retries and jobs that survive a deploy.",
    # 4
    "Can you fix the flaky test in berth_map_live_test.exs? btw we mock the Mollie payment client with Mox, and all the mock definitions are in test/support/mocks.ex",
    # 5
    "convention: every LiveView lives under lib/harbormaster_web/live/<context>/ and function component modules end in Component, e.g. BerthCardComponent",
    # 6
    "Oban queues are default: 10, mailers: 5 and payments: 2. payments stays at 2 because Mollie starts rate limiting us above that",
    # 7
    "Staging is https://staging.harbormaster.app and it auto-deploys from the develop branch, prod only gets tagged releases.",
    # 8
    "Ilse Vermeulen owns the billing context. anything under lib/harbormaster/billing goes through her before merge",
    # 9
    "we use Tailwind but no daisyUI or other component kits, just our own components in core_components.ex. keep it that way please",
    # 10
    "The session cookie max_age is 14 days, product asked for that explicitly so don't shorten it.",
    # 11
    "Emails go out through Swoosh with the Postmark adapter, and the API key comes from the POSTMARK_API_KEY secret in Secret Manager",
    # 12
    "ok so PubSub topics are namespaced like \"marina:#{marina_id}:berths\" — please follow that pattern for anything new",
    # 13
    "the berth map LiveView doesn't poll anymore, everything is pushed over PubSub. we ripped out the 30s polling in March and it shouldn't come back",
    # 14
    "Credo runs in CI with --strict and the build fails on any warning. Same for mix format --check-formatted and compiling with --warnings-as-errors.",
    # 15
    "all timestamps are stored as utc_datetime_usec, and we display them in the marina's own timezone, default Europe/Amsterdam",
    # 16
    "The release is built with mix release in a multi-stage Dockerfile and deployed to the Cloud Run service harbormaster-web in europe-west4.",
    # 17
    "morning! heads up, rate limiting on the public booking API uses Hammer, 60 requests per minute per IP",
    # 18
    "Feature flags are FunWithFlags backed by Postgres, and the flags UI is mounted at /admin/flags behind basic auth.",
    # 19
    "Thanks for the help yesterday. One more thing for the future: user-facing strings go through Gettext, we ship nl and en, and Dutch is the default locale.",
]

NEEDS_FACT = [
    ("what port is my dev postgres on again? connection refused on the default one", 2),
    ("Is it fine if I pull in req_fuse for the Mollie calls, or is there a process for adding dependencies?", 1),
    ("Which branch do I need to merge into so my change shows up on staging?", 7),
    ("How many payment jobs can run concurrently in our job queue setup?", 6),
    ("who should review my change to the invoice PDF generation?", 8),
    ("how long does a user stay logged in before they have to sign in again?", 10),
    ("I want to broadcast berth updates for a marina from the new import job — what topic name should I use?", 12),
    ("where do I define a mock for the new weather API client?", 4),
    ("which GCP region is the web app actually running in?", 16),
    ("What's the per-IP throttle on the public booking endpoints?", 17),
]

NO_FACT = [
    "What's the difference between mount and handle_params in a LiveView, and which one runs on live navigation?",
    "how do I pattern match on a map with a string key in elixir",
    "Can you explain what Ecto.Multi is for and when I'd use it instead of Repo.transaction with a function?",
    "What does the pin operator ^ do inside an Ecto query?",
    "how do i write a GenServer that schedules work for itself every 5 minutes",
    "What's the difference between assign/3 and assign_new/3?",
    "quick one: how do I get the last element of a list in Elixir?",
    "Explain LiveView streams vs temporary_assigns — why did they add streams?",
    "when should I use `with` instead of nested case statements?",
    "How can I inspect a process's message queue length from iex when I suspect its mailbox is growing?",
]

FACTS_B = [
    "the terraform state lives in the GCS bucket hm-tfstate-prod-7731 under the prefix envs/, never edit it by hand",
    "We're on Terraform 1.7.5 and the google provider is pinned to ~> 5.21.",
    "Changes go to main via PR, Atlantis posts the plan, and nobody runs apply until Joost Bakker has approved it.",
    "Cloud SQL is Postgres 15, instance hm-pg-main, and when I run the Cloud SQL Auth Proxy on my laptop it listens on port 6543",
    "please don't pull modules from the public registry without asking, we vendor every module under modules/",
    "the Cloud Armor policy in front of the load balancer throttles at 300 requests per minute per IP",
]

QUESTIONS_B = [
    "which bucket holds our terraform state?",
    "Who has to sign off before I can apply the plan?",
    "what port does the Cloud SQL proxy use locally?",
]
