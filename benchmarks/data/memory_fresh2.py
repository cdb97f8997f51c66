"""A third memory scenario, written after the extractor's rules were widened on memory_fresh.py and
run once against them, not tuned on then (the current rule set was developed with it in view: it is in-sample now, docs/memory.md): a data project and a Rails app, facts said the ways a
person says them in passing ("For context, …", "As a rule …", "Use X instead of Y").

    python benchmarks/memory_eval.py --scenario fresh2
"""

A, B = "/home/lee/src/churn-model", "/home/lee/src/storefront"

FACTS_A = [   # sessions 1 and 2
    "For context, the training data sits in s3://acme-ml/churn/v3.",
    "We've been using Polars instead of pandas for all the feature code.",
    "As a rule, notebooks go in notebooks/ and never get imported by the package.",
    "The model registry is MLflow at mlflow.acme.dev.",
    "Use uv for dependency management, not poetry.",
    "Experiments are tracked under the MLflow experiment churn-2026.",
    "The label column is called churned_90d.",
    "Our feature store is Feast with a Redis online store.",
    "Random seeds are fixed to 1337 everywhere.",
    "Training jobs run on the gpu-a100 node pool.",
    "The evaluation metric we report is PR-AUC, not accuracy.",
    "Data scientists on this project are Kenji and Aisha.",
    "Prefer scikit-learn pipelines over hand-rolled preprocessing.",
    "The weekly retrain is triggered by Airflow DAG churn_retrain at 04:00 UTC on Mondays.",
    "Customer IDs are hashed with SHA-256 before they leave the warehouse.",
    "Snowflake is the warehouse; the schema is ANALYTICS.CHURN.",
    "Plots are made with plotnine, never matplotlib directly.",
    "We pin Python to 3.11 because of the CUDA wheels.",
    "Model cards live in docs/model-cards as Markdown.",
    "Predictions are written back to the table CHURN_SCORES nightly.",
]
NEEDS_FACT = [   # session 3: (question, the fact it needs, by its index in FACTS_A)
    ("Where is the training data stored?", 0),
    ("Should I use pandas for this new feature?", 1),
    ("Where does the model registry live?", 3),
    ("How do I add a dependency?", 4),
    ("What's the name of the label column?", 6),
    ("What seed should I set?", 8),
    ("Which metric should the report show?", 10),
    ("How is the weekly retrain scheduled?", 13),
    ("Which Python version does the project use?", 17),
    ("Where do model cards go?", 18),
]
NO_FACT = [
    "What's the difference between L1 and L2 regularisation?",
    "How do I compute a rolling mean in SQL?",
    "Explain the bias-variance trade-off in two sentences.",
    "How do I read a CSV file in Rust?",
    "What does a p-value of 0.03 mean?",
    "How do I revert a merged pull request on GitHub?",
    "Write a shell loop that renames all .txt files to .md.",
    "What is a vector clock?",
    "How do I make a Python dataclass immutable?",
    "When should I use a B-tree index versus a hash index?",
]
FACTS_B = [
    "For context, the storefront runs Rails 7.1 on Ruby 3.3.",
    "We've been using Sidekiq for background jobs.",
    "As a rule, money is stored in cents as integers.",
    "The payment provider is Adyen.",
    "Use RSpec, not minitest, for new specs.",
    "The storefront data scientist contact is Aisha for analytics questions.",
]
QUESTIONS_B = ["Which Rails version is this?", "How is money stored?", "What do we use for background jobs?"]
