"""Project A is fernbook-web, a Next.js 14 (app router) / TypeScript web app for online book clubs, using pnpm, Tailwind, TanStack Query, Zustand, Clerk, Vercel, PostHog and Sentry. Project B is @fernbook/ui, the shared design-system package (yarn, vanilla-extract, changesets, Chromatic). Facts are stated as a developer briefing an agent: stack choices, rules like 'no default exports', owners, env vars, breakpoints, limits and ports, some casual and some embedded in a request."""
A, B = "/home/jonas/work/fernbook-web", "/home/jonas/work/fernbook-ui"

FACTS_A = [
    "We're on Next.js 14 with the app router, please don't create anything under pages/.",
    "package manager is pnpm, never commit a package-lock.json",
    "Hi! For context: the backend API is https://api.fernbook.dev/v2 and the client reads the base URL from NEXT_PUBLIC_API_URL.",
    "We use TanStack Query for server state and Zustand for client state. No Redux please.",
    "Styling is Tailwind only. We dropped styled-components last year because of the SSR hydration mismatches.",
    "our breakpoints are custom: sm is 480px, md 768px, lg 1200px. don't rely on the tailwind defaults",
    "Vitest for unit tests, Playwright for e2e, and the e2e specs live in tests/e2e.",
    "Can you look at the header overlapping the search bar on mobile? Also fyi, Lena Fischer owns the checkout flow, anything under app/(shop)/checkout goes through her review.",
    "auth is Clerk. don't roll our own session handling",
    "We deploy on Vercel: every PR gets a preview deployment and production deploys from the release branch.",
    "Book cover uploads are capped at 4 MB, enforced both client-side and in the route handler.",
    "Naming: component files are PascalCase, hooks are camelCase starting with use, and we only use named exports, except page.tsx and layout.tsx which need defaults.",
    "node is pinned to 20.11 in .nvmrc",
    "i18n is next-intl, we support en, de and pt-BR, and the translations are in messages/*.json",
    "Analytics events must go through our own track() helper in lib/analytics.ts, which forwards to PostHog. Don't call posthog directly.",
    "tsconfig has the strict stuff on including noUncheckedIndexedAccess, so array index access is typed as possibly undefined",
    "Please don't touch the legacy /admin routes, another team is rewriting them and they get removed in Q3.",
    "Sentry traces sample rate in prod is 0.2 and it needs to stay there, we blew through our quota the last time someone raised it.",
    "We use Storybook 8 for the app-level components, `pnpm storybook` starts it on port 6007.",
    "images are served via Cloudinary, cloud name is fernbook-media",
]

NEEDS_FACT = [
    ("Should the new settings page go in pages/settings.tsx or somewhere else?", 0),
    ("how do I install the dependencies, just npm install?", 1),
    ("Which env var holds the backend base URL?", 2),
    ("I need some global UI state for the reading-list drawer, what should I reach for?", 3),
    ("At what width does the md breakpoint kick in for us?", 5),
    ("Who has to review my change to the checkout page?", 7),
    ("How big can a cover image be before the upload gets rejected?", 10),
    ("which languages does the app ship translations for right now?", 13),
    ("I want to fire an event when someone finishes a book, how should I send it?", 14),
    ("Can I bump the Sentry tracing rate to 1.0 to debug a slow page in production?", 17),
]

NO_FACT = [
    "What's the difference between a server component and a client component in React?",
    "How does the cleanup function in useEffect work?",
    "what does the `satisfies` operator do in TypeScript?",
    "When should I use `type` vs `interface` in TypeScript?",
    "How do I debounce an input in React without pulling in a library?",
    "Why does React complain about missing keys in lists?",
    "what's the difference between position: sticky and position: fixed in CSS?",
    "how do I do an exhaustive check on a discriminated union in TS?",
    "Can you explain what hydration means in server-side rendering?",
    "How do CORS preflight requests work?",
]

FACTS_B = [
    "This package is published to our private registry npm.fernbook.dev under the @fernbook scope.",
    "we use yarn 4 in this repo, not pnpm",
    "Styling in the design system is vanilla-extract, not Tailwind, so the kit has no runtime CSS dependency on the apps.",
    "Tomasz Nowak owns the design system and approves every design token change.",
    "Storybook for the kit runs on port 6010 and gets published to Chromatic on every push.",
    "Releases are done with changesets and the default branch here is develop.",
]

QUESTIONS_B = [
    "which registry does this package get published to?",
    "Who has to approve a change to the color tokens?",
    "What port does Storybook run on for the kit?",
]
