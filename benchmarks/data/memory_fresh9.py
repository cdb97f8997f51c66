"""Project A is the data platform of a grocery-delivery company (Pantrywise): Airflow 2.8 on MWAA, dbt 1.7 on Snowflake, Fivetran, Looker. Project B is the churn-model ML training repo that reads features from the same company's Snowflake and trains on SageMaker with MLflow tracking. Facts are phrased as a data engineer briefs an agent: naming conventions, pinned versions, schedules and SLAs, roles and schemas, owners, rules, some with a greeting or inside a request."""
A, B = "/home/amara/repos/orbit-data-platform", "/home/amara/repos/churn-model-training"

FACTS_A = [
    "The warehouse is Snowflake (account pw38211.eu-central-1) and dbt connects with the TRANSFORMER role.",
    "We're on Airflow 2.8 on MWAA. DAGs go in dags/ and get synced to S3 when a PR merges.",
    "dbt is pinned to 1.7.x, please don't upgrade to 1.8 yet, the semantic layer changes break our metrics.",
    "model prefixes: stg_ for staging, int_ for intermediate, fct_ and dim_ for marts. keep that convention",
    "good morning! fyi the Shopify orders data lands in RAW.SHOPIFY every hour at :15 via Fivetran",
    "All timestamps in the marts are UTC. We only convert to Europe/Berlin in Looker.",
    "The daily_orders DAG has an SLA of 06:30 UTC because the finance dashboard refreshes at 7.",
    "Can you take a look at why the customers snapshot takes 40 minutes? btw dev schemas are named DBT_<your initials>, e.g. DBT_AO for me.",
    "Kwame Mensah owns the finance marts in models/marts/finance, any change there needs his sign-off.",
    "we lint SQL with sqlfluff, snowflake dialect, max line length 100",
    "Incremental models use the merge strategy with a unique_key, and we run a full refresh every Sunday at 02:00 UTC.",
    "Please never use SELECT * in a mart model, list the columns explicitly.",
    "Airflow connections live in AWS Secrets Manager under the prefix airflow/connections/",
    "We decided to use Great Expectations only on the raw layer; inside dbt we rely on dbt tests and dbt-expectations.",
    "transformations run on the TRANSFORM_WH warehouse, size Medium, auto-suspend after 60 seconds",
    "Raw event data is kept for 400 days, after that the cleanup DAG prunes it.",
    "failed DAG alerts go to #data-alerts on Slack",
    "DAG code is Python 3.11 and pre-commit runs ruff and mypy.",
    "PII columns have to be tagged with meta: {pii: true} in schema.yml, the masking policy picks them up automatically.",
    "main deploys to prod through GitHub Actions, and the dbt docs site is at docs.data.pantrywise.io",
]

NEEDS_FACT = [
    ("what Snowflake role does dbt log in with?", 0),
    ("Can I use the unit tests feature that came with dbt 1.8?", 2),
    ("What should I call a new model that joins orders with deliveries before it goes into a mart?", 3),
    ("When does new Shopify order data show up in the warehouse?", 4),
    ("By what time does the daily orders pipeline need to be done?", 6),
    ("Which schema should my local dbt runs write to?", 7),
    ("who do I need approval from to change fct_revenue?", 8),
    ("When do the incremental models get fully rebuilt?", 10),
    ("Where are the credentials for the Airflow connections stored?", 12),
    ("I'm adding an email column to dim_customers, what do I have to do so it's masked?", 18),
]

NO_FACT = [
    "Is a CTE slower than a subquery, or does the optimizer treat them the same?",
    "How does an Airflow sensor in reschedule mode differ from poke mode?",
    "Can you explain what a type 2 slowly changing dimension is?",
    "what does dbt's ref() function actually compile to?",
    "What's the difference between ROW_NUMBER, RANK and DENSE_RANK?",
    "explain the difference between the ephemeral and view materializations in dbt",
    "What does it mean for a data pipeline task to be idempotent?",
    "how do I dedupe rows in SQL and keep only the latest one per key?",
    "Why does Airflow's logical date lag behind the time the run actually starts?",
    "Why would a LEFT JOIN return more rows than the left table has?",
]

FACTS_B = [
    "The training code reads features from the ML_FEATURES Snowflake share using the ML_READER role.",
    "Experiments are tracked in MLflow at mlflow.ml.pantrywise.io",
    "python in this repo is 3.10 because of the CUDA 11.8 torch wheels",
    "Sofia Lindqvist owns the churn model and has to approve any change to the feature list.",
    "Training jobs run on SageMaker on a ml.g5.2xlarge instance with a max runtime of 4 hours.",
    "The default branch here is develop; main only gets release merges.",
]

QUESTIONS_B = [
    "which Snowflake role does the training code use to read features?",
    "What Python version are we on in this repo?",
    "where can I look at the metrics from past training runs?",
]
