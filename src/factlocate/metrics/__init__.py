"""Metrics of ROME's evaluation: CounterFact (`counterfact`), zsRE (`zsre`), GE (`fluency`),
RS (`consistency`), and their aggregation into Table-2 rows (`summary`)."""
