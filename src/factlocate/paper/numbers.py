"""The papers' own figures that the report sets beside its results (ROME, Meng et al. 2022).

Kept as data: GPT-2 XL (48 layers) and GPT-J (28 layers) rows, metrics x100 as the paper prints them.
"""
from __future__ import annotations

TRACING = {
    "model": "GPT-2 XL, 1,000 known facts, Gaussian noise 3σ, 10 samples, window 10",
    "ATE": 18.6,
    "best hidden AIE at the last subject token": "8.7 (layer 15)",
    "MLP AIE at the last subject token (peak)": "6.6",
    "attention AIE at the last subject token": "1.6 (attention matters at the last token)",
}

SEVERED = ("GPT-2 XL: with the MLP path severed, the hidden state's effect at the last subject token "
           "falls in the early-to-middle layers; severing attention changes it much less.")

SWEEP = ("GPT-2 XL: ROME's generalisation peaks when editing layer 18 (1-based) at the last subject token; "
         "the released hyperparameters edit layer 17 (0-based).")

TABLE2_COLUMNS = ("S", "ES", "EM", "PS", "PM", "NS", "NM", "GE", "RS")
TABLE2 = {
    "GPT-2 XL": {
        "unedited": (30.5, 22.2, -4.8, 24.7, -5.0, 78.1, 5.0, 626.6, 31.9),
        "FT": (65.1, 100.0, 98.8, 87.9, 46.6, 40.4, -6.2, 607.1, 40.5),
        "FT+L": (66.9, 99.1, 91.5, 48.7, 28.9, 70.3, 3.5, 621.4, 37.4),
        "KN": (35.6, 28.7, -3.4, 28.0, -3.3, 72.9, 3.7, 570.4, 30.3),
        "KE": (52.2, 84.3, 33.9, 75.4, 14.6, 30.9, -11.0, 586.6, 31.2),
        "KE-CF": (18.1, 99.9, 97.0, 95.8, 59.2, 6.9, -63.2, 383.0, 24.5),
        "MEND": (57.9, 99.1, 70.9, 65.4, 12.2, 37.9, -11.6, 624.2, 34.8),
        "MEND-CF": (14.9, 100.0, 99.2, 97.0, 65.6, 5.5, -69.9, 570.0, 33.2),
        "ROME": (89.2, 100.0, 97.9, 96.4, 62.7, 75.4, 4.2, 621.9, 41.9),
    },
    "GPT-J": {
        "unedited": (23.6, 16.3, -7.2, 18.6, -7.4, 83.0, 7.3, 621.8, 29.8),
        "FT": (25.5, 100.0, 99.9, 96.6, 71.0, 10.3, -50.7, 387.8, 24.6),
        "FT+L": (68.7, 99.6, 95.0, 47.9, 30.4, 78.6, 6.8, 622.8, 35.5),
        "MEND": (63.2, 97.4, 71.5, 53.6, 11.0, 53.9, -6.0, 620.5, 32.6),
        "ROME": (91.5, 99.9, 99.4, 99.1, 74.1, 78.9, 5.2, 620.1, 43.0),
    },
}

TABLE1_COLUMNS = ("efficacy", "paraphrase", "specificity")
TABLE1 = {
    "GPT-2 XL": {
        "unedited": (22.2, 21.3, 24.2),
        "FT": (99.6, 82.1, 23.2),
        "FT+L": (92.3, 47.2, 23.4),
        "KE": (65.5, 61.4, 24.9),
        "KE-zsRE": (92.4, 90.0, 23.8),
        "MEND": (75.9, 65.3, 24.1),
        # ../shared/paper-numbers.md labels this row MEND-CF; the paper's Table 1 names it MEND-zsRE
        # (trained on zsRE, beside KE-zsRE), and it compares with mend-zsre here.
        "MEND-zsRE": (99.4, 99.3, 24.1),
        "ROME": (99.8, 88.1, 24.2),
    },
}

CURIE = ("The paper's Figure 6 rewrites Pierre Curie's field to medicine: ROME's generations speak of "
         "medicine fluently; FT+L's and MEND's repeat or fail to generalise; KE's degrade.")

SEQUENTIAL = ("AlphaEdit (Fang et al., ICLR 2025), Llama3-8B, CounterFact, 2,000 edits in batches of 100: "
              "MEMIT efficacy 65.7, specificity 51.6, fluency 437; AlphaEdit 98.9, 67.9, 622.")


def table(columns, rows: dict[str, tuple], title: str) -> str:
    """A markdown table of one paper model's rows."""
    lines = [f"**{title}**", "", "| editor | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(f"{v:g}" for v in values) + " |" for name, values in rows.items()]
    return "\n".join(lines)
