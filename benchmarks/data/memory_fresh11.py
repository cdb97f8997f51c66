"""Scenario 11: project A is "shiftly-api", a Ruby on Rails 7.1 SaaS backend for restaurant shift scheduling (Postgres, Sidekiq, Redis, Render, Stripe, Postmark, RSpec); project B is "shiftly-mobile", its React Native client (Metro, WatermelonDB, EAS Update, Bugsnag). Facts are phrased the way a developer talks to a coding agent: plain statements, rules and preferences, decisions with reasons, ownership, hosts/ports/versions/limits, some lowercase without final punctuation, some opening with small talk, and a few tucked inside a larger request. Project B repeats several of A's topics (local port, branch model, owner, error tracking, storage) with different values."""

A, B = "/home/dana/code/shiftly-api", "/home/dana/code/shiftly-mobile"

FACTS_A = [
    "hey, so our main db is Postgres 15 on Render, the managed instance is called shiftly-pg-prod. please don't suggest moving anything to MySQL",
    "we run the rails server on port 3005 locally because 3000 is already taken by the marketing site's next.js dev server",
    "please don't add new gems without asking me first, the Gemfile is already a mess",
    "Sidekiq queues are critical, default, mailers and low. Payroll exports always go on critical.",
    "fyi sidekiq concurrency is capped at 8 per process on Render because the starter plan only has 512MB of RAM",
    "Can you fix the flaky spec in spec/models/shift_spec.rb? fyi the test DB on the CI box is reset every night at 3am UTC by a cron job.",
    "we went with Pundit over CanCanCan because the single Ability file was getting unreadable",
    "morning! just so you know, Priya owns everything under app/services/billing — anything touching Stripe goes to her for review",
    "feature branches get cut from develop, not main. main is only what's deployed to production",
    "staging lives at https://staging.shiftly.app and auto-deploys from develop",
    "the API is versioned under /api/v2. v1 is frozen and only kept alive for the old iOS build, so don't touch the v1 controllers",
    "we write specs in RSpec with FactoryBot, no fixtures please",
    "ruby is 3.2.2 and rails 7.1, both pinned (.ruby-version and the Gemfile)",
    "All timestamps are stored in UTC, but shift times are displayed in the restaurant's time zone, which lives on locations.time_zone.",
    "rate limiting is done with rack-attack: 300 requests per 5 minutes per API token",
    "sidekiq uses the Render key-value instance from REDIS_URL, the rails cache uses a separate one under REDIS_CACHE_URL",
    "we don't soft delete anything except employees — that's the discarded_at column via the discard gem",
    "errors go to Sentry, project name shiftly-api. the Honeybadger initializer is legacy, ignore it",
    "Migrations have to stay backwards compatible with the previous release because Render runs them before the new instances take over. That's why we have strong_migrations installed.",
    "transactional emails go through Postmark and the templates live in Postmark itself, not in app/views — we only pass the template alias and the model",
]

NEEDS_FACT = [
    ("what port is the API on when I run it on my machine?", 1),
    ("which sidekiq queue should the new PayrollCsvExportJob go on?", 3),
    ("who should review my change to the Stripe webhook handler?", 7),
    ("I'm starting on the shift swap feature, which branch do I base it on?", 8),
    ("how should I add a check so only managers can publish a schedule?", 6),
    ("can I just pull in money-rails for the currency formatting?", 2),
    ("a customer says they keep getting 429s from us — what's our request limit?", 14),
    ("I need to rename the notes column on shifts, anything I should watch out for when it deploys?", 18),
    ("where do I change the wording of the welcome email?", 19),
    ("the shift_spec failures on CI always seem to show up early in the morning — does something happen to the test database around then?", 5),
]

NO_FACT = [
    "what's the difference between includes, preload and eager_load in ActiveRecord?",
    "how do I add a partial index in a Rails migration?",
    "when should I use find_each instead of each?",
    "what does sidekiq_options retry: 5 actually control?",
    "how do I squash my last 3 commits into one?",
    "what's the idiomatic way to memoize a method in Ruby when the result can be nil or false?",
    "can you explain the N+1 query problem in simple terms?",
    "how do I freeze time in an RSpec example?",
    "has_many :through vs has_and_belongs_to_many — when would I pick each?",
    "give me a regex for a US zip code with an optional +4 suffix",
]

FACTS_B = [
    "offline data in the app is stored in WatermelonDB (sqlite under the hood), not AsyncStorage",
    "metro runs on port 8088 in this repo because 8081 clashes with something on my laptop",
    "no develop branch here — branch off main, and releases are tagged v*.*.* from main",
    "Marco owns the push notification code in src/notifications, ping him before changing anything in there",
    "crash reports from the mobile app go to Bugsnag, not Sentry",
    "we use Zustand for global state; we ripped Redux out last year, please don't bring it back",
]

QUESTIONS_B = [
    "which port is the Metro bundler supposed to be on?",
    "who do I talk to before touching the push notification handlers?",
    "where do app crashes show up so I can look at this one?",
]
