"""Project A is the Laravel 10 / PHP 8.2 e-commerce backend of a shop called Kettle & Crumb
(MySQL, Redis, Horizon, Mollie payments, Filament admin). Project B is a WordPress plugin
(kc-storefront-bridge) that partner sites install to pull products from that backend's API.
Facts are phrased the way a developer tells a coding agent things: plain statements, rules
and preferences, decisions with reasons, ownership, paths, ports, hosts and limits, some
lowercase and unpunctuated, some after a greeting, a few tucked into a larger request.
Project B repeats some topics (PHP version, branch, port, owner, database, caching) with
different values."""

A, B = "/home/ruben/projects/kettlecrumb-api", "/home/ruben/projects/kc-storefront-bridge"

FACTS_A = [
    # 0
    "hey! quick context before we start: prod runs PHP 8.2, so please don't use anything that only exists in 8.3",
    # 1
    "the main database is MySQL 8.0, schema name kc_shop, and read-heavy reports should go to the replica at db-ro.kettlecrumb.internal",
    # 2
    "Please ask me before adding any new composer package. We had a supply-chain scare last year and every dependency now goes through a review.",
    # 3
    "redis is on port 6380, not the default one. cache and queues share the instance but cache uses db 1 and queues use db 2",
    # 4
    "FYI we went with Mollie for payments instead of Stripe — switched in March because the iDEAL fees were way lower for our Dutch customers.",
    # 5
    "The order state machine lives in app/Domain/Orders/OrderStateMachine.php. Don't add order status transitions anywhere else.",
    # 6
    "Can you fix the flaky CheckoutTest? fyi the staging DB is wiped and reloaded from an anonymized dump every night at 02:30, so don't rely on fixture ids sticking around.",
    # 7
    "deploys go out through Envoyer and only from the release branch, never straight from main",
    # 8
    "Priya Raman owns the inventory sync module (app/Domain/Inventory/Sync). Anything touching it needs her review before merging.",
    # 9
    "business rule from the ops team: a cart can hold at most 50 line items, and that limit is enforced in CartService, not in the controller",
    # 10
    "we write tests with Pest, not plain PHPUnit classes, and feature tests use LazilyRefreshDatabase instead of RefreshDatabase",
    # 11
    "Horizon runs three queues: high, default and mails. Every email has to be dispatched on the mails queue, no exceptions.",
    # 12
    "product images are stored in the S3 bucket kc-media-prod (eu-central-1) and served via cdn.kettlecrumb.com",
    # 13
    "All public endpoints are under /api/v2 now. v1 is frozen, no new changes there, and it gets removed on 30 September.",
    # 14
    "Morning! Just so you know, the public storefront API is rate limited to 120 requests per minute per token, it's configured in RouteServiceProvider",
    # 15
    "we run Laravel Pint with our own pint.json on top of the psr12 preset, CI fails if `pint --test` finds anything",
    # 16
    "Decision we made a while ago: money is stored as integer cents in BIGINT columns, never DECIMAL, because we kept getting rounding bugs with VAT.",
    # 17
    "the Sentry project for this app is kettle-backend and alerts go to the #shop-alerts slack channel",
    # 18
    "The admin panel is Filament v3 mounted at /control instead of /admin, bots kept hammering /admin",
    # 19
    "local dev is Laravel Sail, the app is on http://localhost:8088 and mailpit's web UI is on 8026",
]

NEEDS_FACT = [
    ("What port is our Redis on again? my local connection keeps getting refused", 3),
    ("I need to implement refunds for orders. Which payment provider's API should I be looking at?", 4),
    ("Where should I add the new 'partially_shipped' status and the transitions into it?", 5),
    ("this hotfix is tiny, can I just deploy it from main?", 7),
    ("Who needs to review my changes to the stock syncing code?", 8),
    ("what's the maximum number of products a customer can put in their basket, and where is that checked?", 9),
    ("I'm adding an OrderShippedMail notification — which Horizon queue should it be dispatched on?", 11),
    ("I'm trying to log into the admin dashboard locally but /admin just gives me a 404, what's the right URL?", 18),
    ("For the new discount_amount column, should I use decimal(10,2)?", 16),
    ("spatie/laravel-query-builder would make the product filtering way easier, can you just composer require it and wire it up?", 2),
]

NO_FACT = [
    "What's the difference between Eloquent's with() and load()?",
    "How do I wrap something in a database transaction with automatic retries on deadlock in Laravel?",
    "explain the N+1 query problem and how to spot it",
    "What does the readonly modifier on PHP class properties actually do?",
    "how do I mock a facade in a Pest test?",
    "Is there an artisan one-liner to list all routes that use a particular middleware?",
    "When should I use a queued job versus a queued event listener?",
    "can you explain how composer's psr-4 autoload mapping resolves a class to a file?",
    "what's the difference between firstOrCreate and updateOrCreate",
    "How do backed enums work with Eloquent attribute casting?",
]

FACTS_B = [
    "this plugin has to support WordPress 6.2+ and PHP 7.4, a lot of our partner sites are still on cheap shared hosting",
    "The plugin talks to the shop API at https://api.kettlecrumb.com/api/v2 and the partner's API key is stored in the wp_options row kcsb_api_key.",
    "no Redis here — product responses are cached in transients for 15 minutes",
    "Releases are tagged from the trunk branch and pushed to the wordpress.org SVN by Tomasz Wójcik, he's the only one with commit access there.",
    "local wordpress runs with wp-env on port 8890",
    "tests use PHPUnit 9 with the WP core test suite against MariaDB 10.6 in docker",
]

QUESTIONS_B = [
    "What's the lowest PHP version this plugin has to run on? Can I use match expressions?",
    "who can push a new release of the plugin to wordpress.org?",
    "how long do we cache product data from the API, and where is it stored?",
]
