"""Metrics of ROME's evaluation: CounterFact (`counterfact`), zsRE (`zsre`), GE (`fluency`),
RS (`consistency`), success rates over many records (`success`, the sequential curves'), and their
aggregation into Table-2 rows (`summary`). Past teacher forcing: success judged on greedy generations
(`generated`, WILD's decoding and normalisation), one-hop portability (`portability`, KnowEdit's) and
known-fact retention (`retention`)."""
